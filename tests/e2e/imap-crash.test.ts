// End to end, issue 13's crash check: serve is killed with SIGKILL while an imaplib client stores
// flags one message after another. After the restart every UID and the UIDVALIDITY are unchanged
// and every flag the server acknowledged (tagged OK) is there; the same after the index database
// is deleted too, since a login's state lives in the journal (spool/login-state.ts).
import { expect, test } from 'bun:test';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { requirePeers } from '../helpers/capabilities.ts';
import { SYSTEM_PYTHON, cleanupServesAfterAll, listeningAddresses, makeTempDir, portOf, runPython, startServe, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const MESSAGES = 40;

async function startImap(dataDir: string): Promise<ServeHandle & { imap: number }> {
  const server = await startServe({ args: ['--imap', '127.0.0.1:0', '--pop3', 'off', '--log', 'json'], dataDir });
  return Object.assign(server, { imap: portOf((await listeningAddresses(server)).imap[0]) });
}

/** The INBOX of crash@x.test as a new session sees it: UIDVALIDITY, and per UID its Message-ID and flags. */
async function inbox(port: number): Promise<{ validity: string; messages: Record<string, { id: string; flags: string[] }> }> {
  const r = await runPython(
    `import imaplib, json, re, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=20)
m.login('crash@x.test', 'any')
m.select('INBOX')
validity = m.untagged_responses.get('UIDVALIDITY', [b'0'])[0].decode()
out = {}
for item in m.uid('FETCH', '1:*', '(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')[1]:
    if not isinstance(item, tuple):
        continue
    head = item[0].decode()
    uid = re.search(r'UID (\\d+)', head).group(1)
    flags = re.search(r'FLAGS \\(([^)]*)\\)', head).group(1).split()
    out[uid] = {'id': item[1].decode().strip(), 'flags': sorted(f for f in flags if f != '\\\\Recent')}
m.logout()
print(json.dumps({'validity': validity, 'messages': out}))`,
    [String(port)],
    { timeoutMs: 60_000 },
  );
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout.trim());
}

test('kill -9 while flags are stored: UIDs unchanged and every acknowledged flag kept, also with the index database deleted', async () => {
  requirePeers('python3');
  await using dir = await makeTempDir();
  const first = await startImap(dir.path);
  const fill = await runPython(
    `import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
for i in range(${MESSAGES}):
    s.sendmail('app@sender.test', ['crash@x.test'], f'Subject: {i}\\r\\nMessage-ID: <m{i}@sender.test>\\r\\n\\r\\nbody {i}\\r\\n')
s.quit()`,
    [String(first.port)],
    { timeoutMs: 60_000 },
  );
  expect(fill.stderr).toBe('');
  const before = await inbox(first.imap);
  expect(Object.keys(before.messages)).toHaveLength(MESSAGES);

  // Stores +FLAGS on each UID in turn, printing each one the server acknowledged, until killed.
  const storer = Bun.spawn(
    [
      SYSTEM_PYTHON,
      '-c',
      `import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=20)
m.login('crash@x.test', 'any')
m.select('INBOX')
for uid in range(1, ${MESSAGES} + 1):
    typ, _ = m.uid('STORE', str(uid), '+FLAGS', '(\\\\Flagged \\\\Seen $Kept%d)' % uid)
    if typ == 'OK':
        print('ack', uid, flush=True)`,
      String(first.imap),
    ],
    { stdout: 'pipe', stderr: 'pipe' },
  );
  const acked: number[] = [];
  const reader = storer.stdout.getReader();
  let buffer = '';
  while (acked.length < MESSAGES / 4) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += new TextDecoder().decode(value);
    for (const line of buffer.split('\n').slice(0, -1)) acked.push(Number(line.split(' ')[1]));
    buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
  }
  await first.kill9();
  // Acknowledgements already on their way when the server died count too.
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += new TextDecoder().decode(value);
  }
  for (const line of buffer.split('\n')) if (line.startsWith('ack ')) acked.push(Number(line.split(' ')[1]));
  await storer.exited;
  expect(acked.length).toBeGreaterThanOrEqual(MESSAGES / 4);
  // The kill came while flags were being stored, not after the last one.
  expect(acked.length).toBeLessThan(MESSAGES);

  const check = (after: Awaited<ReturnType<typeof inbox>>) => {
    expect(after.validity).toBe(before.validity);
    for (const [uid, m] of Object.entries(before.messages)) expect(after.messages[uid]?.id).toBe(m.id);
    expect(Object.keys(after.messages)).toHaveLength(MESSAGES);
    for (const uid of acked) expect(after.messages[String(uid)]!.flags).toEqual([`$Kept${uid}`, '\\Flagged', '\\Seen'].sort());
  };

  const second = await startImap(dir.path);
  check(await inbox(second.imap));
  await second.stop();

  for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir.path, `index.db${suffix}`), { force: true });
  const third = await startImap(dir.path);
  try {
    check(await inbox(third.imap));
    expect(third.logs()).toContain('index-rebuild');
  } finally {
    await third.stop();
  }
}, 120_000);
