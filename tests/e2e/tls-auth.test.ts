// End to end: STARTTLS, implicit TLS, AUTH and the relay policy of dist/mailbox serve, with
// openssl s_client, swaks, Python's smtplib and raw sockets upgraded with node:tls.
import { beforeAll, afterAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { openSpool, type MessageInfo } from '../../src/spool/spool.ts';
import { createSelfSigned } from '../../src/tls/self-signed.ts';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runCommand, runPython, runSwaks, smtpDialogue, startServe, waitForLog, type ServeHandle, type TempDir } from './harness.ts';
import { findFreePort, isCompleteReply, openSocket } from '../helpers/ports.ts';

cleanupServesAfterAll();

const quietLog = { info() {}, warn() {}, error() {} };
const PASSWORD = 'correct horse battery staple';
let dir: TempDir;
let usersFile: string;

beforeAll(async () => {
  dir = await makeTempDir();
  usersFile = join(dir.path, 'users');
  // The users file is written by the binary itself, the way an operator would (password on stdin).
  const r = await runCommand([MAILBOX_BIN, 'users', 'add', 'alice', '--users', usersFile], { stdin: `${PASSWORD}\n` });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});

afterAll(() => dir?.remove());

/** Spool messages of a stopped server. */
async function spoolMessages(dataDir: string): Promise<MessageInfo[]> {
  const spool = await openSpool({ dir: dataDir, hostname: 'test', now: Date.now, log: quietLog });
  try {
    return spool.list();
  } finally {
    await spool.close();
  }
}

/** Starts serve with an implicit-TLS listener too; `tlsPort` is where it is. */
async function startTlsServe(args: string[] = []): Promise<ServeHandle & { tlsPort: number }> {
  const tlsPort = await findFreePort();
  const server = await startServe({ args: ['--listen-tls', `127.0.0.1:${tlsPort}`, '--users', usersFile, ...args] });
  return Object.assign(server, { tlsPort });
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const plain = (user: string, password: string) => b64(`\0${user}\0${password}`);
const queuedId = (text: string) => /250 2\.0\.0 OK queued as (\S+)/.exec(text)?.[1];

/** A client that reads whole replies and can switch to TLS in the middle, with exact bytes. */
class Client {
  #socket: Socket | TLSSocket;
  #buffer = '';
  #closed = false;
  #wake: (() => void) | null = null;

  private constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    this.#listen(socket);
  }

  static async connect(port: number): Promise<Client> {
    return new Client(await openSocket('127.0.0.1', port));
  }

  static async connectTls(port: number): Promise<Client> {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    return new Client(socket);
  }

  #listen(socket: Socket | TLSSocket): void {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer += chunk.toString('latin1');
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  write(text: string | Uint8Array): void {
    this.#socket.write(text);
  }

  /** The next complete reply, or null when the server closed first or 10 s passed. */
  async reply(): Promise<string | null> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      let end = 0;
      while (end < this.#buffer.length) {
        const eol = this.#buffer.indexOf('\r\n', end);
        if (eol < 0) break;
        end = eol + 2;
        const candidate = this.#buffer.slice(0, end);
        if (isCompleteReply(candidate)) {
          this.#buffer = this.#buffer.slice(end);
          return candidate;
        }
      }
      if (this.#closed || Date.now() > deadline) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  async command(line: string): Promise<string | null> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** Upgrades the connection (after a 220 to STARTTLS); what was buffered in clear is kept apart. */
  async startTls(): Promise<{ leftover: string; certificate: X509Certificate }> {
    const leftover = this.#buffer;
    this.#buffer = '';
    const raw = this.#socket;
    raw.removeAllListeners('data');
    const secure = tlsConnect({ socket: raw as Socket, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#listen(secure);
    return { leftover, certificate: new X509Certificate(secure.getPeerCertificate(true).raw) };
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#socket.destroy();
  }
}

describe('TLS with real clients', () => {
  test('openssl s_client -starttls smtp: AUTH PLAIN, a message in the spool with its user', async () => {
    const server = await startTlsServe();
    const script = [
      'EHLO client.test', `AUTH PLAIN ${plain('alice', PASSWORD)}`, 'MAIL FROM:<alice@client.test>', 'RCPT TO:<bob@mailbox.test>', 'DATA',
      'Subject: over STARTTLS', '', 'sent by openssl', '.', 'QUIT', '',
    ].join('\r\n');
    const r = await runCommand(
      ['openssl', 's_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${server.port}`, '-quiet', '-ign_eof', '-name', 'client.test'],
      { stdin: script },
    );
    expect(r.stdout).toContain('235 2.7.0');
    const id = queuedId(r.stdout);
    expect(id).toBeDefined();
    expect(r.stdout).toContain('221 2.0.0');
    await server.stop();
    const m = (await spoolMessages(server.dataDir)).find((x) => x.id === id)!;
    expect(m.envelope.authUser).toBe('alice');
    expect(server.logs()).toMatch(/accepted id=\S+ .*user=alice tls=TLSv1\.[23]/);
    await server.cleanup();
  }, 30_000);

  test('openssl s_client -connect to the implicit-TLS port: AUTH LOGIN and a message', async () => {
    const server = await startTlsServe();
    const script = [
      'EHLO client.test', 'AUTH LOGIN', b64('alice'), b64(PASSWORD), 'MAIL FROM:<alice@client.test>', 'RCPT TO:<bob@mailbox.test>', 'DATA',
      'Subject: implicit TLS', '', 'sent over port 465 style TLS', '.', 'QUIT', '',
    ].join('\r\n');
    const r = await runCommand(['openssl', 's_client', '-connect', `127.0.0.1:${server.tlsPort}`, '-quiet', '-ign_eof'], { stdin: script });
    expect(r.stdout).toStartWith('220 ');
    expect(r.stdout).toContain('334 VXNlcm5hbWU6'); // "Username:"
    expect(r.stdout).toContain('235 2.7.0');
    // The session is encrypted from the first byte, so STARTTLS is not offered.
    expect(r.stdout).not.toContain('STARTTLS');
    const id = queuedId(r.stdout);
    await server.stop();
    expect((await spoolMessages(server.dataDir)).find((x) => x.id === id)?.envelope.authUser).toBe('alice');
    await server.cleanup();
  }, 30_000);

  test('swaks --tls --auth PLAIN and --tls-on-connect --auth LOGIN', async () => {
    const server = await startTlsServe();
    const common = ['--from', 'alice@client.test', '--to', 'bob@mailbox.test', '--auth-user', 'alice', '--auth-password', PASSWORD, '--header', 'Subject: swaks'];
    const starttls = await runSwaks(['--server', `127.0.0.1:${server.port}`, '--tls', '--auth', 'PLAIN', ...common]);
    expect(starttls.code).toBe(0);
    expect(starttls.stdout).toContain('<~  235 2.7.0');
    const implicit = await runSwaks(['--server', `127.0.0.1:${server.tlsPort}`, '--tls-on-connect', '--auth', 'LOGIN', ...common]);
    expect(implicit.code).toBe(0);
    expect(implicit.stdout).toContain('<~  235 2.7.0');
    const ids = [queuedId(starttls.stdout), queuedId(implicit.stdout)];
    await server.stop();
    const stored = await spoolMessages(server.dataDir);
    for (const id of ids) expect(stored.find((m) => m.id === id)?.envelope.authUser).toBe('alice');
    await server.cleanup();
  }, 30_000);

  test('Python smtplib: starttls() verifying the self-signed certificate, login(), a wrong password refused', async () => {
    const server = await startTlsServe();
    const code = String.raw`
import smtplib, ssl, sys
port, cafile, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP('127.0.0.1', port, timeout=20)
s.ehlo('client.test')
assert 'auth' not in s.esmtp_features, 'AUTH offered before TLS'
s.starttls(context=ctx)
s.ehlo('client.test')
try:
    s.login('alice', 'wrong password')
    print('wrong password accepted')
except smtplib.SMTPAuthenticationError as e:
    print('refused', e.smtp_code)
s.login('alice', password)
print(s.sendmail('alice@client.test', ['bob@mailbox.test'], 'Subject: smtplib\r\n\r\nverified TLS\r\n'))
s.quit()
`;
    const r = await runPython(code, [String(server.port), join(server.dataDir, 'tls', 'cert.pem'), PASSWORD]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['refused 535', '{}']);
    await server.stop();
    const stored = await spoolMessages(server.dataDir);
    expect(stored.map((m) => m.envelope.authUser)).toEqual(['alice']);
    expect(server.logs()).toMatch(/auth-failed user=alice client=127\.0\.0\.1 mechanism=PLAIN reason=bad-password/);
    expect(server.logs()).not.toContain('wrong password');
    await server.cleanup();
  }, 30_000);

  test('AUTH needs TLS unless --allow-insecure-auth; --require-tls refuses MAIL in clear', async () => {
    let server = await startServe({ args: ['--users', usersFile, '--require-tls'] });
    let d = await smtpDialogue(server.host, server.port, ['EHLO c.test\r\n', `AUTH PLAIN ${plain('alice', PASSWORD)}\r\n`, 'MAIL FROM:<a@c.test>\r\n']);
    expect(d.replies[0]).toContain('250-STARTTLS');
    expect(d.replies[0]).not.toContain('AUTH');
    expect(d.replies[1]).toStartWith('538 5.7.11');
    expect(d.replies[2]).toStartWith('530 5.7.0');
    await server.cleanup();

    server = await startServe({ args: ['--users', usersFile, '--allow-insecure-auth'] });
    d = await smtpDialogue(server.host, server.port, ['EHLO c.test\r\n', `AUTH PLAIN ${plain('alice', PASSWORD)}\r\n`]);
    expect(d.replies[0]).toContain('250-AUTH PLAIN LOGIN');
    expect(d.replies[1]).toStartWith('235 2.7.0');
    await server.cleanup();
  }, 30_000);

  test('--auth-any records whatever user name the client gives', async () => {
    const server = await startServe({ args: ['--auth-any', '--allow-insecure-auth'] });
    const d = await smtpDialogue(server.host, server.port, [
      'EHLO c.test\r\n', `AUTH PLAIN ${plain('dev-app', 'anything')}\r\n`, 'MAIL FROM:<app@c.test>\r\n', 'RCPT TO:<x@m.test>\r\n', 'DATA\r\n',
      'Subject: any\r\n\r\nbody\r\n.\r\n', 'QUIT\r\n',
    ]);
    expect(d.replies[1]).toStartWith('235');
    const id = queuedId(d.replies[5] ?? '');
    await server.stop();
    expect((await spoolMessages(server.dataDir)).find((m) => m.id === id)?.envelope.authUser).toBe('dev-app');
    expect(server.logs()).toContain('auth-any');
    await server.cleanup();
  }, 30_000);
});

describe('STARTTLS injection (CVE-2011-0411): plaintext pipelined after STARTTLS is never executed', () => {
  for (const injected of ['RSET', 'MAIL FROM:<x@y.test>']) {
    test(`"STARTTLS\\r\\n${injected}\\r\\n" in one write`, async () => {
      const server = await startServe();
      const c = await Client.connect(server.port);
      expect(await c.reply()).toStartWith('220 ');
      expect(await c.command('EHLO c.test')).toContain('250-STARTTLS');
      c.write(`STARTTLS\r\n${injected}\r\n`);
      expect(await c.reply()).toStartWith('220 2.0.0');
      const { leftover } = await c.startTls();
      expect(leftover).toBe('');
      // RFC 3207 §4.2: the session starts again; the first reply in TLS is the EHLO's own.
      const ehlo = await c.command('EHLO c.test');
      expect(ehlo).toStartWith('250-');
      expect(ehlo).not.toContain('STARTTLS');
      // Had the injected MAIL run, this RCPT would be accepted.
      expect(await c.command('RCPT TO:<a@m.test>')).toStartWith('503 5.5.1');
      expect(await c.command('NOOP')).toStartWith('250 2.0.0');
      expect(await c.command('QUIT')).toStartWith('221');
      c.close();
      await server.cleanup();
    }, 30_000);
  }

  test('STARTTLS twice, and STARTTLS inside a transaction, are refused', async () => {
    const server = await startServe();
    const c = await Client.connect(server.port);
    await c.reply();
    await c.command('EHLO c.test');
    expect(await c.command('MAIL FROM:<a@c.test>')).toStartWith('250');
    expect(await c.command('STARTTLS')).toStartWith('503 5.5.1');
    expect(await c.command('RSET')).toStartWith('250');
    expect(await c.command('STARTTLS')).toStartWith('220');
    await c.startTls();
    await c.command('EHLO c.test');
    expect(await c.command('STARTTLS')).toStartWith('503 5.5.1');
    c.close();
    await server.cleanup();
  }, 30_000);
});

describe('relay policy: never an open relay', () => {
  test('untrusted, unauthenticated client × {local, remote} × {clear, TLS}: only local recipients', async () => {
    const server = await startTlsServe(['--trust', 'none', '--domain', 'local.test']);
    for (const tls of [false, true]) {
      const c = await Client.connect(server.port);
      await c.reply();
      await c.command('EHLO stranger.test');
      if (tls) {
        expect(await c.command('STARTTLS')).toStartWith('220');
        await c.startTls();
        await c.command('EHLO stranger.test');
      }
      expect(await c.command('MAIL FROM:<s@stranger.test>')).toStartWith('250');
      expect(await c.command('RCPT TO:<postmaster@local.test>')).toStartWith('250 2.1.5');
      expect(await c.command('RCPT TO:<victim@remote.test>')).toStartWith('550 5.7.1');
      expect(await c.command('RCPT TO:<victim@local.test.remote.test>')).toStartWith('550 5.7.1');
      c.close();
    }
    // Authenticated (and trusted loopback) clients cannot relay either while no relay exists.
    const c = await Client.connectTls(server.tlsPort);
    await c.reply();
    await c.command('EHLO c.test');
    expect(await c.command(`AUTH PLAIN ${plain('alice', PASSWORD)}`)).toStartWith('235');
    expect(await c.command('MAIL FROM:<alice@c.test>')).toStartWith('250');
    expect(await c.command('RCPT TO:<victim@remote.test>')).toStartWith('550 5.7.1');
    c.close();
    await server.cleanup();
  }, 30_000);
});

describe('certificates', () => {
  test('the self-signed certificate is made once, kept 0600, logged with its fingerprint, and reused', async () => {
    const data = await makeTempDir();
    let server = await startServe({ dataDir: data.path });
    const certPem = readFileSync(join(data.path, 'tls', 'cert.pem'), 'utf8');
    const cert = new X509Certificate(certPem);
    expect(statSync(join(data.path, 'tls', 'key.pem')).mode & 0o777).toBe(0o600);
    // The greeting can come before the start-up log lines are read from the pipe.
    expect(await waitForLog(server, `sha256=${cert.fingerprint256}`)).toContain(`sha256=${cert.fingerprint256}`);
    expect(server.logs()).toContain('created=true');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    const c = await Client.connect(server.port);
    await c.reply();
    await c.command('EHLO c.test');
    await c.command('STARTTLS');
    const { certificate } = await c.startTls();
    expect(certificate.fingerprint256).toBe(cert.fingerprint256);
    c.close();
    await server.cleanup();

    server = await startServe({ dataDir: data.path });
    // created= is on the same line as the fingerprint: once that line is read, its absence counts.
    expect(await waitForLog(server, `sha256=${cert.fingerprint256}`)).toContain(`sha256=${cert.fingerprint256}`);
    expect(server.logs()).not.toContain('created=true');
    await server.cleanup();
    await data.remove();
  }, 30_000);

  test('--tls-cert/--tls-key are re-read on SIGHUP: new handshakes get the new one, open sessions go on', async () => {
    const files = await makeTempDir();
    const certFile = join(files.path, 'cert.pem');
    const keyFile = join(files.path, 'key.pem');
    const first = createSelfSigned({ hostname: 'first.test', nowMs: Date.now() });
    const second = createSelfSigned({ hostname: 'second.test', nowMs: Date.now() });
    writeFileSync(certFile, first.cert);
    writeFileSync(keyFile, first.key);
    const server = await startTlsServe(['--tls-cert', certFile, '--tls-key', keyFile]);
    const subjectOf = async (port: number) => {
      const c = await Client.connect(port);
      await c.reply();
      await c.command('EHLO c.test');
      await c.command('STARTTLS');
      const { certificate } = await c.startTls();
      c.close();
      return certificate.subject;
    };
    expect(await subjectOf(server.port)).toBe('CN=first.test');

    // A session opened under the first certificate, mid-transaction across the reload.
    const open = await Client.connect(server.port);
    await open.reply();
    await open.command('EHLO c.test');
    await open.command('STARTTLS');
    await open.startTls();
    await open.command('EHLO c.test');
    expect(await open.command('MAIL FROM:<a@c.test>')).toStartWith('250');

    // A broken pair is refused and the old certificate stays.
    writeFileSync(certFile, second.cert);
    server.proc.kill('SIGHUP');
    expect(await waitForLog(server, 'tls-reload-failed')).toContain('tls-reload-failed');
    expect(await subjectOf(server.port)).toBe('CN=first.test');

    writeFileSync(keyFile, second.key);
    server.proc.kill('SIGHUP');
    expect(await waitForLog(server, 'tls-reloaded')).toContain('tls-reloaded');
    expect(await subjectOf(server.port)).toBe('CN=second.test');
    const implicit = await runCommand(['openssl', 's_client', '-connect', `127.0.0.1:${server.tlsPort}`], { stdin: 'QUIT\r\n' });
    expect(implicit.stdout).toContain('subject=CN = second.test');

    expect(await open.command('RCPT TO:<b@m.test>')).toStartWith('250');
    expect(await open.command('DATA')).toStartWith('354');
    expect(await open.command('Subject: across a reload\r\n\r\nstill here\r\n.')).toStartWith('250 2.0.0');
    open.close();
    await server.cleanup();
    await files.remove();
  }, 30_000);

  test('a bad certificate path or a mismatched key: one line and exit 78, no stack trace', async () => {
    const data = await makeTempDir();
    const port = String(await findFreePort());
    const missing = await runCommand([MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data.path, '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem']);
    expect(missing.code).toBe(78);
    expect(missing.stderr.trim().split('\n').filter((l) => /mailbox:/.test(l))).toEqual(['mailbox: --tls-cert: cannot read /nonexistent/cert.pem: no such file']);
    expect(missing.stderr).not.toContain('    at ');

    const a = createSelfSigned({ hostname: 'a.test', nowMs: Date.now() });
    const b = createSelfSigned({ hostname: 'b.test', nowMs: Date.now() });
    writeFileSync(join(data.path, 'cert.pem'), a.cert);
    writeFileSync(join(data.path, 'key.pem'), b.key);
    const mismatched = await runCommand([MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', join(data.path, 'spool'), '--tls-cert', join(data.path, 'cert.pem'), '--tls-key', join(data.path, 'key.pem')]);
    expect(mismatched.code).toBe(78);
    expect(mismatched.stderr).toContain('do not belong together');
    expect(mismatched.stderr).not.toContain('    at ');

    const half = await runCommand([MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data.path, '--tls-cert', join(data.path, 'cert.pem')]);
    expect(half.code).toBe(64);
    await data.remove();
  }, 30_000);
});
