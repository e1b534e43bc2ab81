// End to end: the resource limits of dist/mailbox serve against hostile clients — connection
// floods overall and per address, slow clients, AUTH brute force, garbage after STARTTLS — and
// the Unix-domain socket listener.
import { describe, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { openSpool } from '../../src/spool/spool.ts';
import { cleanupServesAfterAll, makeTempDir, runPython, smtpDialogue, startServe, waitForLog, type ServeHandle } from './harness.ts';
import { findFreePort, isCompleteReply, openSocket } from '../helpers/ports.ts';

cleanupServesAfterAll();

/** Opens a connection and resolves with its first reply (or "" if it closed without one). */
async function firstReply(server: ServeHandle): Promise<{ socket: Socket; reply: string }> {
  const socket = await openSocket(server.host, server.port, 10_000);
  socket.on('error', () => {});
  const reply = await new Promise<string>((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(text), 10_000);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (isCompleteReply(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
  return { socket, reply };
}

/**
 * Holds `n` greeted connections. The harness's own greeting probe (or a connection the test just
 * closed) may still be counted for a moment, so a refused attempt is retried until `n` are held;
 * how long that moment lasts depends on the machine's load, so the bound is a deadline.
 */
async function holdConnections(server: ServeHandle, n: number): Promise<Socket[]> {
  const held: Socket[] = [];
  for (const deadline = Date.now() + 30_000; held.length < n && Date.now() < deadline;) {
    const { socket, reply } = await firstReply(server);
    if (reply.startsWith('220')) held.push(socket);
    else {
      socket.destroy();
      await Bun.sleep(20);
    }
  }
  expect(held.length).toBe(n);
  return held;
}

async function goodClientWorks(server: ServeHandle, starttls = false): Promise<void> {
  const r = await runPython(
    String.raw`
import smtplib, ssl, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
if sys.argv[3] == '1':
    s.starttls(context=ssl._create_unverified_context())
print(s.sendmail('a@c.test', ['b@m.test'], 'Subject: ok\r\n\r\nfine\r\n'))
s.quit()`,
    [server.host, String(server.port), starttls ? '1' : '0'],
  );
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('{}');
}

describe('connection caps', () => {
  test('--max-connections: the next connection gets 421 4.7.0 and is closed; a freed slot is reused', async () => {
    const server = await startServe({ args: ['--max-connections', '5'] });
    const held = await holdConnections(server, 5);
    const over = await firstReply(server);
    expect(over.reply).toStartWith('421 4.7.0');
    await new Promise((resolve) => (over.socket.destroyed ? resolve(null) : over.socket.once('close', resolve)));
    held.pop()!.destroy();
    held.push(...(await holdConnections(server, 1)));
    for (const s of held) s.destroy();
    await goodClientWorks(server);
    expect(await waitForLog(server, /refused client=127\.0\.0\.1 .*421 4\.7\.0/)).toMatch(/refused client=127\.0\.0\.1 .*421 4\.7\.0/);
    await server.cleanup();
  }, 60_000);

  test('--max-connections-per-ip applies to untrusted clients (--trust none), not to trusted ones', async () => {
    let server = await startServe({ args: ['--max-connections-per-ip', '3', '--trust', 'none'] });
    let held = await holdConnections(server, 3);
    const over = await firstReply(server);
    expect(over.reply).toStartWith('421 4.7.0 Too many connections from your address');
    for (const s of held) s.destroy();
    await server.cleanup();

    // Loopback is trusted by default while every listener is on loopback: exempt from the cap.
    server = await startServe({ args: ['--max-connections-per-ip', '3'] });
    held = await holdConnections(server, 10);
    for (const s of held) s.destroy();
    await server.cleanup();
  }, 60_000);
});

describe('slow and hostile clients', () => {
  test('a silent client, and ones that never finish a TLS handshake, are closed by --command-timeout', async () => {
    const tlsPort = await findFreePort();
    // Each client must say its first lines within the timeout: 3 s leaves a loaded machine room.
    const server = await startServe({ args: ['--command-timeout', '3s', '--listen-tls', `127.0.0.1:${tlsPort}`] });
    // Implicit TLS: a client that connects and never sends its ClientHello.
    const silent = await openSocket(server.host, tlsPort);
    silent.on('error', () => {});
    const [d, stalled] = await Promise.all([
      smtpDialogue(server.host, server.port, [{ send: 'EHLO slow.test\r\n', replies: 1 }, { send: '', replies: 1 }], { replyTimeoutMs: 20_000 }),
      smtpDialogue(server.host, server.port, ['EHLO slow.test\r\n', 'STARTTLS\r\n', { send: '', replies: 1 }], { replyTimeoutMs: 20_000 }),
      new Promise((resolve) => silent.once('close', resolve)),
    ]);
    expect(d.replies[1]).toStartWith('421 4.4.2');
    expect(stalled.replies[1]).toStartWith('220 2.0.0');
    // Nothing can be said in clear once TLS was agreed: the connection just ends.
    expect(stalled.replies[2]).toBeNull();
    expect(stalled.closed).toBe(true);
    await goodClientWorks(server);
    await server.cleanup();
  }, 60_000);

  test('AUTH brute force: after 5 failures the address gets 454 4.7.0, even with the right password', async () => {
    const data = await makeTempDir();
    const users = join(data.path, 'users');
    await Bun.write(users, `alice:${await Bun.password.hash('Right-Pass-7')}\n`);
    const server = await startServe({ args: ['--users', users, '--allow-insecure-auth'] });
    const attempt = (password: string) => `AUTH PLAIN ${Buffer.from(`\0alice\0${password}`).toString('base64')}\r\n`;
    // Two sessions, so the per-session error cap is not what stops the client.
    let d = await smtpDialogue(server.host, server.port, ['EHLO c.test\r\n', attempt('Guess-Pass-1'), attempt('Guess-Pass-2'), attempt('Guess-Pass-3')]);
    expect(d.replies.slice(1).map((r) => r?.slice(0, 9))).toEqual(['535 5.7.8', '535 5.7.8', '535 5.7.8']);
    d = await smtpDialogue(server.host, server.port, ['EHLO c.test\r\n', attempt('Guess-Pass-4'), attempt('Guess-Pass-5'), attempt('Right-Pass-7')]);
    expect(d.replies.slice(1).map((r) => r?.slice(0, 9))).toEqual(['535 5.7.8', '535 5.7.8', '454 4.7.0']);
    // Every failure is logged, the throttled one too (the log is flushed once per event-loop turn).
    const failures = () => server.logs().match(/auth-failed user=alice/g)?.length ?? 0;
    for (const deadline = Date.now() + 30_000; failures() < 6 && Date.now() < deadline;) await Bun.sleep(10);
    expect(failures()).toBe(6);
    expect(server.logs()).toContain('reason=throttled');
    expect(server.logs()).toContain('locked=true');
    // Passwords never reach the log.
    expect(server.logs()).not.toMatch(/Guess-Pass|Right-Pass/);
    await server.cleanup();
    await data.remove();
  }, 60_000);

  test('repeated errors slow the client down, and pipelined replies still come back in order', async () => {
    const server = await startServe();
    const bad = Array.from({ length: 6 }, (_, i) => `BOGUS${i}\r\n`).join('');
    const d = await smtpDialogue(server.host, server.port, [{ send: `EHLO c.test\r\n${bad}NOOP\r\n`, replies: 8 }], { replyTimeoutMs: 15_000 });
    const codes = (d.replies[0] ?? '').split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3));
    expect(codes).toEqual(['250', '500', '500', '500', '500', '500', '500', '250']);
    await server.cleanup();
  }, 30_000);

  test('1 MB of random bytes after STARTTLS: that connection ends, the server goes on', async () => {
    const server = await startServe();
    for (let i = 0; i < 3; i++) {
      const socket = await openSocket(server.host, server.port);
      socket.on('error', () => {});
      let text = '';
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.write('EHLO c.test\r\nSTARTTLS\r\n');
      for (const deadline = Date.now() + 20_000; !text.includes('220 2.0.0') && Date.now() < deadline;) await Bun.sleep(10);
      expect(text).toContain('220 2.0.0');
      // Half of the runs start with a plausible TLS record header.
      const junk = randomBytes(1024 * 1024);
      if (i % 2 === 1) junk.set([0x16, 0x03, 0x01, 0x02, 0x00]);
      socket.write(junk);
      await closed;
    }
    await goodClientWorks(server, true);
    expect(await waitForLog(server, 'tls-failed')).toContain('tls-failed');
    await server.cleanup();
  }, 60_000);
});

describe('Unix-domain socket listener', () => {
  test('--listen unix:/path: Python smtplib over AF_UNIX sends a message', async () => {
    const sockDir = await makeTempDir();
    const path = join(sockDir.path, 'smtp.sock');
    const server = await startServe({ args: ['--listen', `unix:${path}`, '--trust', 'none'] });
    const r = await runPython(
      String.raw`
import smtplib, socket, sys
class UnixSMTP(smtplib.SMTP):
    def _get_socket(self, host, port, timeout):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(host)
        return s
s = UnixSMTP(timeout=20)
print(s.connect(sys.argv[1])[0])
code, features = s.ehlo('cron.local')
print('STARTTLS' in features.decode())
print(s.sendmail('cron@host.test', ['root@host.test'], 'Subject: from cron\r\n\r\nnightly\r\n'))
s.quit()`,
      [path],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['220', 'False', '{}']);
    expect(await waitForLog(server, /listening .*unix=unix:\S*smtp\.sock/)).toMatch(/listening .*unix=unix:\S*smtp\.sock/);
    await server.stop();
    const spool = await openSpool({ dir: server.dataDir, hostname: 'test', now: Date.now, log: { info() {}, warn() {}, error() {} } });
    expect(spool.list().map((m) => m.sender)).toEqual(['cron@host.test']);
    await spool.close();
    await server.cleanup();
    await sockDir.remove();
  }, 30_000);
});
