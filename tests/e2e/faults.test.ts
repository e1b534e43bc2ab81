// End to end: dist/mailbox serve --faults against Python's smtplib (raw sockets where smtplib
// cannot say it): 421 at the greeting, 450 then success, 550 for one recipient of three, a drop
// mid-DATA, a server that never answers, a rate limit, SIGHUP reloading the rules, and a bad
// file stopping serve with exit 78 and one line.
import { describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runCommand, runPython, startServe, waitForLog, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

/** Starts serve with these rules in a faults file; returns the server and the file. */
async function serveWith(rules: unknown[], args: string[] = []): Promise<{ server: ServeHandle; file: string }> {
  const dir = await makeTempDir('mailbox-faults-');
  const file = join(dir.path, 'faults.json');
  writeFileSync(file, JSON.stringify({ rules }));
  const server = await startServe({ args: ['--faults', file, ...args] });
  const cleanup = server.cleanup;
  server.cleanup = async () => {
    await cleanup();
    await dir.remove();
  };
  return { server, file };
}

/** Sends one message with smtplib; prints the refused recipients as JSON, or the error. */
const SEND = String.raw`
import json, smtplib, sys
host, port, sender, rcpts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(',')
body = sys.argv[5] if len(sys.argv) > 5 else 'Subject: fault test\r\n\r\nhello\r\n'
try:
    with smtplib.SMTP(host, port, timeout=20) as s:
        refused = s.sendmail(sender, rcpts, body)
        print(json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))
except smtplib.SMTPRecipientsRefused as e:
    print('refused', json.dumps({k: [v[0], v[1].decode()] for k, v in e.recipients.items()}))
except smtplib.SMTPResponseException as e:
    print('error', e.smtp_code, e.smtp_error.decode())
except (smtplib.SMTPServerDisconnected, ConnectionError) as e:
    print('disconnected', type(e).__name__)
`;

async function send(server: ServeHandle, rcpts: string[], body?: string): Promise<string> {
  const r = await runPython(SEND, [server.host, String(server.port), 'sender@client.test', rcpts.join(','), ...(body === undefined ? [] : [body])]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

describe('serve --faults', () => {
  test('421 at connect, every second connection', async () => {
    const { server } = await serveWith([{ stage: 'connect', reply: '421 4.3.2 Not now', every: 2 }]);
    // The harness's greeting probe was one connection; which of the next two is refused depends
    // on it, so the two together must give one of each.
    const r = await runPython(
      String.raw`
import smtplib, sys
for _ in range(2):
    try:
        s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
        print(220)
        s.quit()
    except smtplib.SMTPConnectError as e:
        print(e.smtp_code, e.smtp_error.decode())
`,
      [server.host, String(server.port)],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').sort()).toEqual(['220', '421 4.3.2 Not now']);
    expect(await waitForLog(server, /fault rule=1 name=#1 stage=connect action="?reply 421 4\.3\.2"? client=127\.0\.0\.1/)).toMatch(/fault rule=1 name=#1 stage=connect/);
  }, 60_000);

  test('450 on RCPT the first two times, then the message is accepted', async () => {
    const { server } = await serveWith([{ name: 'greylist', stage: 'rcpt', address: '@example.org', reply: '450 4.2.0 Greylisted, try later', times: 2 }]);
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await send(server, ['alice@example.org']));
    expect(outcomes).toEqual([
      'refused {"alice@example.org": [450, "4.2.0 Greylisted, try later"]}',
      'refused {"alice@example.org": [450, "4.2.0 Greylisted, try later"]}',
      '{}',
    ]);
    const log = await waitForLog(server, /accepted .*alice@example\.org/);
    expect(log.match(/fault rule=1 name=greylist stage=rcpt address=alice@example\.org/g)).toHaveLength(2);
  }, 60_000);

  test('550 on one recipient of three, chosen by pattern; the other two get the message', async () => {
    const { server } = await serveWith([{ stage: 'rcpt', address: 'bob@*', reply: { code: 550, enhanced: '5.1.1', text: 'No such user' } }]);
    expect(await send(server, ['ann@one.test', 'bob@two.test', 'cyd@three.test'])).toBe('{"bob@two.test": [550, "5.1.1 No such user"]}');
    const log = await waitForLog(server, /accepted /);
    expect(log).toMatch(/accepted .*ann@one\.test.*cyd@three\.test/);
    expect(log).not.toMatch(/accepted .*bob@two\.test/);
  }, 60_000);

  test('a connection dropped mid-DATA: nothing is stored', async () => {
    const { server } = await serveWith([{ stage: 'data', drop: { afterBytes: 1000 }, times: 1 }]);
    const big = `Subject: big\r\n\r\n${'x'.repeat(70)}\r\n`.repeat(200);
    expect(await send(server, ['a@b.test'], big)).toStartWith('disconnected');
    await waitForLog(server, /fault rule=1 .*stage=data action="?drop after 1000 bytes/);
    // The rule fired once: the same message now goes through, and is the only one stored.
    expect(await send(server, ['a@b.test'], big)).toBe('{}');
    const log = await waitForLog(server, /accepted /);
    expect(log.match(/accepted /g)).toHaveLength(1);
  }, 60_000);

  test('a server that never answers: the client times out, and the idle timeout closes without a word', async () => {
    const { server } = await serveWith([{ stage: 'mail', silent: true }], ['--command-timeout', '2s']);
    const r = await runPython(
      String.raw`
import smtplib, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
# smtplib gives up after its timeout (it reports that as a disconnection, and closes).
s = smtplib.SMTP(host, port, timeout=20)
print(s.ehlo()[0])
s.sock.settimeout(0.5)
try:
    s.mail('a@b.test')
    print('answered')
except smtplib.SMTPServerDisconnected as e:
    print('gave up' if 'timed out' in str(e) else 'closed: %s' % e)
# A client that waits instead sees the connection closed at --command-timeout, without a reply.
c = socket.create_connection((host, port), timeout=30)
f = c.makefile('rb')
print(f.readline()[:3].decode())
c.sendall(b'EHLO c\r\n')
while True:
    line = f.readline()
    if line[3:4] == b' ':
        break
c.sendall(b'MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n')
print(repr(f.read()))
`,
      [server.host, String(server.port)],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['250', 'gave up', '220', "b''"]);
    await waitForLog(server, /fault rule=1 .*stage=mail .*action="?silence/);
  }, 60_000);

  test('a rate limit: two MAILs per window, then 451; 421 closes', async () => {
    const { server } = await serveWith([
      { stage: 'mail', address: '@limited.test', rateLimit: { limit: 2, windowMs: 3_600_000, code: 451 } },
      { stage: 'rcpt', rateLimit: { limit: 3, windowMs: 3_600_000, code: 421 } },
    ]);
    const r = await runPython(
      String.raw`
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
s.ehlo()
for _ in range(3):
    print(s.mail('x@limited.test')[0], s.rset()[0])
print(s.mail('x@free.test')[0])
for i in range(4):
    try:
        print(s.rcpt('r%d@b.test' % i)[0])
    except smtplib.SMTPServerDisconnected:
        print('disconnected')
`,
      [server.host, String(server.port)],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['250 250', '250 250', '451 250', '250', '250', '250', '250', '421']);
  }, 60_000);

  test('SIGHUP re-reads the rules; a broken file is logged and the rules in force stay', async () => {
    const { server, file } = await serveWith([{ stage: 'rcpt', reply: '550 5.7.1 First rules' }]);
    expect(await send(server, ['a@b.test'])).toBe('refused {"a@b.test": [550, "5.7.1 First rules"]}');

    writeFileSync(file, JSON.stringify({ rules: [{ stage: 'rcpt', reply: '451 4.3.0 Second rules' }] }));
    server.proc.kill('SIGHUP');
    await waitForLog(server, /faults-reloaded .*rules=1/);
    expect(await send(server, ['a@b.test'])).toBe('refused {"a@b.test": [451, "4.3.0 Second rules"]}');

    writeFileSync(file, '{"rules": [{"stage": "rcpt", "reply": 550');
    server.proc.kill('SIGHUP');
    const log = await waitForLog(server, /faults-reload-failed/);
    expect(log).toMatch(/faults-reload-failed .*not JSON/);
    expect(await send(server, ['a@b.test'])).toBe('refused {"a@b.test": [451, "4.3.0 Second rules"]}');
  }, 60_000);

  test('a bad faults file stops serve at start: exit 78 and one line, from the flag and the config file', async () => {
    await using dir = await makeTempDir('mailbox-faults-bad-');
    const bad = join(dir.path, 'bad.json');
    writeFileSync(bad, JSON.stringify({ rules: [{ stage: 'rcpt', reply: '450 4.2.0 later' }, { stage: 'helo', reply: '550' }] }));
    const conf = join(dir.path, 'mailbox.conf');
    writeFileSync(conf, `faults ${bad}\n`);
    const expected = `mailbox: --faults ${bad}: rule 2: "stage" must be one of connect, ehlo, starttls, auth, mail, rcpt, data, end-of-data, bdat, quit, not "helo"\n`;
    for (const args of [['--faults', bad], ['--config', conf]]) {
      const r = await runCommand([MAILBOX_BIN, 'serve', '--listen', '127.0.0.1:0', '--data', join(dir.path, 'data'), ...args]);
      expect({ code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({ code: 78, stderr: expected, stdout: '' });
    }
    writeFileSync(bad, '[{"stage": "rcpt",]');
    const r = await runCommand([MAILBOX_BIN, 'serve', '--listen', '127.0.0.1:0', '--data', join(dir.path, 'data'), '--faults', bad]);
    expect(r.code).toBe(78);
    expect(r.stderr).toStartWith(`mailbox: --faults ${bad}: not JSON: `);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  }, 60_000);
});
