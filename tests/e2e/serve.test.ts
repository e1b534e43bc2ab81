// End to end: dist/mailbox serve against Python's smtplib, swaks and raw sockets.
import { describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSpool } from '../../src/spool/spool.ts';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runCommand, runPython, runSwaks, smtpDialogue, startServe, waitForLog, type ServeHandle } from './harness.ts';
import { openSocket } from '../helpers/ports.ts';

cleanupServesAfterAll();

const quietLog = { info() {}, warn() {}, error() {} };

/** Opens the spool of a stopped server and returns its messages without our Received header. */
async function readSpool(dataDir: string): Promise<Map<string, Buffer>> {
  const spool = await openSpool({ dir: dataDir, hostname: 'test', now: Date.now, log: quietLog });
  try {
    const out = new Map<string, Buffer>();
    for (const info of spool.list()) {
      const raw = Buffer.from(await spool.readMessage(info.id));
      const text = raw.toString('latin1');
      const m = /^Received: [^\r]*\r\n(?:\t[^\r]*\r\n)*/.exec(text);
      expect(m).not.toBeNull();
      out.set(info.id, raw.subarray(m![0].length));
    }
    return out;
  } finally {
    await spool.close();
  }
}

/**
 * Sends each message with smtplib's low-level calls and prints, per message, the id from
 * "250 … queued as ID" and the bytes smtplib put on the wire after undoing its dot-stuffing.
 */
const SMTPLIB_SENDER = String.raw`
import base64, json, smtplib, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
messages = json.load(open(path))
s = smtplib.SMTP(host, port, timeout=60)
s.ehlo('client.test')
out = []
for m in messages:
    body = base64.b64decode(m['b64'])
    opts = ['SMTPUTF8'] if m.get('utf8') else []
    code, _ = s.mail(m['from'], opts + (['BODY=8BITMIME'] if any(b > 127 for b in body) else []))
    assert code == 250, code
    for r in m['to']:
        code, _ = s.rcpt(r)
        assert code == 250, code
    code, reply = s.data(body)
    assert code == 250, (code, reply)
    # smtplib.data() sends bytes as they are, dot-stuffed, and adds a final CRLF when missing.
    wire = body if body.endswith(b'\r\n') else body + b'\r\n'
    out.append({'id': reply.decode().rsplit(' ', 1)[1], 'b64': base64.b64encode(wire).decode()})
s.quit()
print(json.dumps(out))
`;

async function sendWithSmtplib(server: ServeHandle, messages: { from: string; to: string[]; body: Buffer; utf8?: boolean }[]) {
  const dir = await makeTempDir();
  try {
    const file = join(dir.path, 'messages.json');
    writeFileSync(file, JSON.stringify(messages.map((m) => ({ from: m.from, to: m.to, utf8: m.utf8, b64: m.body.toString('base64') }))));
    const r = await runPython(SMTPLIB_SENDER, [server.host, String(server.port), file], { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as { id: string; b64: string }[]).map((x) => ({ id: x.id, wire: Buffer.from(x.b64, 'base64') }));
  } finally {
    await dir.remove();
  }
}

describe('mailbox serve with real clients', () => {
  test('smtplib: messages read back from the spool are byte-identical after dot-unstuffing', async () => {
    const server = await startServe();
    const line998 = 'y'.repeat(998);
    const big = Buffer.alloc(20 * 1024 * 1024);
    const chunk = Buffer.from(`${'0123456789abcdef'.repeat(4)}\r\n.dot at start\r\n`);
    for (let i = 0; i + chunk.length <= big.length; i += chunk.length) chunk.copy(big, i);
    const messages = [
      { from: 'a@client.test', to: ['b@mailbox.test'], body: Buffer.from('Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n...\r\nend\r\n') },
      { from: 'a@client.test', to: ['b@mailbox.test'], body: Buffer.from(`Subject: long\r\n\r\n${line998}\r\n${line998}\r\n`) },
      { from: 'jörg@exämple.test', to: ['用户@例子.测试'], utf8: true, body: Buffer.from('Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nÜnïcödé 8-bit body ✓\r\n') },
      { from: '', to: ['b@mailbox.test'], body: Buffer.alloc(0) },
      { from: 'a@client.test', to: ['b@mailbox.test', 'c@elsewhere.test'], body: big.subarray(0, big.length - (big.length % chunk.length)) },
    ];
    const sent = await sendWithSmtplib(server, messages);
    expect((await server.stop()).exitCode).toBe(0);
    const stored = await readSpool(server.dataDir);
    expect(stored.size).toBe(messages.length);
    for (const { id, wire } of sent) {
      const got = stored.get(id);
      expect(got).toBeDefined();
      expect(got!.equals(wire)).toBe(true);
    }
    await server.cleanup();
  }, 180_000);

  test('swaks sends through serve and the message is in the spool', async () => {
    const server = await startServe();
    const r = await runSwaks([
      '--server', `${server.host}:${server.port}`, '--from', 'swaks@client.test', '--to', 'dev@mailbox.test',
      '--header', 'Subject: from swaks', '--body', 'Hello from swaks\n.with a leading dot', '--pipeline',
    ]);
    expect(r.code).toBe(0);
    const id = /queued as (\S+)/.exec(r.stdout)?.[1];
    expect(id).toBeDefined();
    await server.stop();
    const stored = await readSpool(server.dataDir);
    const text = stored.get(id!)!.toString('utf8');
    expect(text).toContain('Subject: from swaks\r\n');
    expect(text).toContain('\r\nHello from swaks\r\n.with a leading dot\r\n');
    await server.cleanup();
  }, 60_000);

  test('--domain limits accepted recipients; relaying is refused with 550 5.7.1', async () => {
    const server = await startServe({ args: ['--domain', 'mailbox.test'] });
    const d = await smtpDialogue(server.host, server.port, [
      'EHLO c.test\r\n',
      'MAIL FROM:<a@c.test>\r\n',
      'RCPT TO:<x@MAILBOX.test>\r\n',
      'RCPT TO:<x@elsewhere.test>\r\n',
      'QUIT\r\n',
    ]);
    expect(d.replies.slice(1, 4).map((r) => r?.slice(0, 9))).toEqual(['250 2.1.0', '250 2.1.5', '550 5.7.1']);
    expect(await waitForLog(server, 'rejected')).toContain('rejected');
    await server.cleanup();
  });
});

describe('mailbox serve under bad input', () => {
  async function goodClientWorks(server: ServeHandle): Promise<void> {
    const r = await runPython(
      `import smtplib,sys\ns=smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)\nprint(s.sendmail('a@c.test',['b@m.test'],'Subject: ok\\r\\n\\r\\nfine\\r\\n'))\ns.quit()`,
      [server.host, String(server.port)],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('{}');
  }

  test('junk, NUL bytes, 100 KB lines and a DATA that never ends leave the server answering', async () => {
    const server = await startServe({ args: ['--data-timeout', '2s'] });
    const junk = new Uint8Array(64 * 1024).map((_, i) => (i * 7919 + 13) % 256);
    let d = await smtpDialogue(server.host, server.port, [{ send: junk, replies: 1 }]);
    expect(d.replies[0] ?? '421').toMatch(/^(500|421|554)/);
    await goodClientWorks(server);

    d = await smtpDialogue(server.host, server.port, ['EHLO c.test\r\n', 'NOOP\x00\x00\x00\r\n', '\x00\x00\r\n', 'NOOP\r\n']);
    expect(d.replies[3]).toStartWith('250');
    await goodClientWorks(server);

    d = await smtpDialogue(server.host, server.port, [`NOOP ${'z'.repeat(100 * 1024)}\r\n`, 'NOOP\r\n']);
    expect(d.replies[0]).toStartWith('500 5.5.6');
    expect(d.replies[1]).toStartWith('250');
    d = await smtpDialogue(server.host, server.port, [
      'HELO c.test\r\n', 'MAIL FROM:<a@c.test>\r\n', 'RCPT TO:<b@m.test>\r\n', 'DATA\r\n',
      { send: `${'w'.repeat(100 * 1024)}\r\n.\r\n`, replies: 1 },
    ]);
    expect(d.replies[4]).toStartWith('554 5.6.0');
    await goodClientWorks(server);

    // A DATA that never ends: the data timeout closes it with 421 4.4.2.
    d = await smtpDialogue(
      server.host,
      server.port,
      ['HELO c.test\r\n', 'MAIL FROM:<a@c.test>\r\n', 'RCPT TO:<b@m.test>\r\n', 'DATA\r\n', { send: 'partial line without end', replies: 1 }],
      { replyTimeoutMs: 20_000 },
    );
    expect(d.replies[4]).toStartWith('421 4.4.2');
    await goodClientWorks(server);
    await server.cleanup();
  }, 60_000);

  test('1,000 connections opened at once; the next good client is served', async () => {
    const server = await startServe();
    const sockets = await Promise.all(Array.from({ length: 1000 }, () => openSocket(server.host, server.port, 20_000)));
    const greeted = await Promise.all(
      sockets.map(
        (s) =>
          new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 20_000);
            s.once('data', (chunk: Buffer) => {
              clearTimeout(timer);
              resolve(chunk.toString().startsWith('220'));
            });
          }),
      ),
    );
    expect(greeted.filter(Boolean).length).toBe(1000);
    await goodClientWorks(server);
    for (const s of sockets) s.destroy();
    await goodClientWorks(server);
    await server.cleanup();
  }, 60_000);
});

describe('mailbox serve operations', () => {
  test('SIGTERM lets an open transaction finish, then exits 0', async () => {
    const server = await startServe();
    const socket = await openSocket(server.host, server.port);
    const replies: string[] = [];
    socket.on('data', (c: Buffer) => replies.push(c.toString()));
    const until = async (re: RegExp) => {
      const deadline = Date.now() + 20_000;
      while (!re.test(replies.join('')) && Date.now() < deadline) await Bun.sleep(10);
    };
    await until(/^220/);
    socket.write('HELO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@m.test>\r\nDATA\r\n');
    await until(/354/);
    server.proc.kill('SIGTERM');
    // The message goes only once the server has taken the signal in (it logs "stopping" then),
    // so the transaction really spans the start of the shutdown.
    await waitForLog(server, 'stopping');
    socket.write('Subject: late\r\n\r\nstill accepted\r\n.\r\n');
    await until(/421/);
    expect(replies.join('')).toMatch(/250 2\.0\.0 OK queued as \S+\r\n421 4\.3\.2 /);
    expect(await server.proc.exited).toBe(0);
    // It has exited: stop() sends nothing now and waits for the rest of its output to be read.
    await server.stop();
    expect(server.logs()).toContain('stopping');
    expect(server.logs()).toContain('stopped');
    await server.cleanup();
  }, 60_000);

  test('a second server on the same spool stops with one line and exit 71', async () => {
    const first = await startServe();
    const r = await runCommand([MAILBOX_BIN, 'serve', '--pop3', 'off', '--imap', 'off', '--http', 'off', '--listen', '127.0.0.1:0', '--data', first.dataDir], { timeoutMs: 15_000 });
    expect(r.code).toBe(71);
    expect(r.stderr.trim()).toMatch(/^mailbox: the spool .* is in use by mailbox serve \(process \d+\)/);
    expect(r.stderr.trim().split('\n').length).toBe(1);
    await first.cleanup();
  });

  test('SIGHUP reopens --log-file, so a rotated log is followed by a new one', async () => {
    const dir = await makeTempDir();
    const logFile = join(dir.path, 'mailbox.log');
    const server = await startServe({ args: ['--log-file', logFile] });
    renameSync(logFile, `${logFile}.1`);
    server.proc.kill('SIGHUP');
    // The message must come after the reopen, or its log line goes to the rotated file.
    const reopened = () => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('log-reopened');
    for (const deadline = Date.now() + 20_000; !reopened() && Date.now() < deadline;) await Bun.sleep(10);
    const d = await smtpDialogue(server.host, server.port, ['HELO c.test\r\n', 'MAIL FROM:<a@c.test>\r\n', 'RCPT TO:<b@m.test>\r\n', 'DATA\r\n', 'x\r\n.\r\n', 'QUIT\r\n']);
    expect(d.replies[4]).toStartWith('250');
    expect((await server.stop()).exitCode).toBe(0);
    expect(readFileSync(`${logFile}.1`, 'utf8')).toContain(' listening ');
    const fresh = readFileSync(logFile, 'utf8');
    expect(fresh).toContain('log-reopened');
    expect(fresh).toContain(' accepted ');
    await server.cleanup();
    await dir.remove();
  });

  test('--config supplies settings and the command line wins', async () => {
    const dir = await makeTempDir();
    const file = join(dir.path, 'mailbox.conf');
    writeFileSync(file, '# test config\ndomain from-file.test\nmax-size 1K\nlog json\n');
    const server = await startServe({ args: ['--config', file, '--max-size', '2K'] });
    const d = await smtpDialogue(server.host, server.port, ['EHLO c.test\r\n', 'MAIL FROM:<a@c.test>\r\n', 'RCPT TO:<x@from-file.test>\r\n', 'RCPT TO:<x@other.test>\r\n']);
    expect(d.replies[0]).toContain('SIZE 2048');
    expect(d.replies[2]).toStartWith('250');
    expect(d.replies[3]).toStartWith('550 5.7.1');
    expect((await waitForLog(server, '"event":"listening"')).split('\n').find((l) => l.includes('"event":"listening"'))).toBeDefined();
    await server.cleanup();
    await dir.remove();
  });
});
