// The server as services: drain() waits for the transaction under way, close() releases the
// spool last; a start that fails closes what had started.
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServeConfig } from '../../src/config.ts';
import { SetupError } from '../../src/exit-status.ts';
import type { Logger } from '../../src/log.ts';
import { startServer } from '../../src/serve/server.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { openSpool } from '../../src/spool/spool.ts';
import { openSocket } from '../helpers/ports.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailbox-server-'));
  dirs.push(dir);
  return dir;
}

function recordingLog(events: string[]): Logger {
  const record = (event: string) => events.push(event);
  return { info: record, warn: record, error: record, reopen() {}, close() {} };
}

const quiet = { info() {}, warn() {}, error() {} };

/** A client that collects what the server says and waits for a pattern in it. */
async function client(port: number): Promise<{ socket: Socket; until(re: RegExp): Promise<string>; closed: Promise<void> }> {
  const socket = await openSocket('127.0.0.1', port);
  let text = '';
  const waiting: { re: RegExp; resolve: (t: string) => void }[] = [];
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    for (const w of waiting.splice(0)) {
      if (w.re.test(text)) w.resolve(text);
      else waiting.push(w);
    }
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    socket,
    closed,
    until: (re) => (re.test(text) ? Promise.resolve(text) : new Promise((resolve) => waiting.push({ re, resolve }))),
  };
}

test('drain waits for the open transaction while idle sessions end at once; close releases the spool', async () => {
  const data = tempDir();
  const config = buildServeConfig({ listen: ['127.0.0.1:0', '127.0.0.1:0'], pop3: 'off', imap: 'off', http: 'off', data, starttls: false, hostname: 'mx.test' }, {});
  const events: string[] = [];
  const server = await startServer(config, { now: Date.now, log: recordingLog(events) });
  expect(server.listeners.map((l) => l.port).every((p) => p > 0)).toBe(true);
  // The spool, the two listeners, the mail index, then the control socket.
  expect(server.services.length).toBe(5);
  expect(server.mailIndex).not.toBeNull();

  const busy = await client(server.listeners[0].port);
  const idle = await client(server.listeners[1].port);
  await Promise.all([busy.until(/^220 /), idle.until(/^220 /)]);
  busy.socket.write('HELO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@m.test>\r\nDATA\r\n');
  await busy.until(/354 /);

  let drained = false;
  const draining = Promise.all(server.services.map((s) => s.drain())).then(() => (drained = true));
  expect(await idle.until(/421 /)).toMatch(/421 4\.3\.2 /);
  await idle.closed;
  expect(drained).toBe(false);
  busy.socket.write('Subject: late\r\n\r\nstill accepted\r\n.\r\n');
  expect(await busy.until(/421 /)).toMatch(/250 2\.0\.0 OK queued as \S+\r\n421 4\.3\.2 /);
  await draining;
  expect(server.connections).toBe(0);
  await server.close();

  // The lock is gone and the message is there.
  const spool = await openSpool({ dir: data, hostname: 'test', now: Date.now, log: quiet });
  expect(spool.stats().messages).toBe(1);
  await spool.close();
  expect(events).toContain('listening');
});

test('a listener that cannot bind: one SetupError naming the flag, and the spool is closed again', async () => {
  const first = await startServer(buildServeConfig({ listen: '127.0.0.1:0', pop3: 'off', imap: 'off', http: 'off', data: tempDir(), starttls: false }, {}), { now: Date.now, log: recordingLog([]) });
  const taken = first.listeners[0].port;
  const data = tempDir();
  const config = buildServeConfig({ listen: ['127.0.0.1:0', `127.0.0.1:${taken}`], pop3: 'off', imap: 'off', http: 'off', data, starttls: false }, {});
  let caught: unknown;
  await startServer(config, { now: Date.now, log: recordingLog([]) }).catch((error: unknown) => (caught = error));
  expect(caught).toBeInstanceOf(SetupError);
  expect((caught as Error).message).toBe(`cannot listen on 127.0.0.1:${taken}: the address is in use (EADDRINUSE); change --listen`);
  const spool = await openSpool({ dir: data, hostname: 'test', now: Date.now, log: quiet });
  await spool.close();
  await first.close();
});

test('POP3 is a service beside SMTP: one set of connection caps for both, and drain ends its idle sessions', async () => {
  const data = tempDir();
  const config = buildServeConfig({ listen: '127.0.0.1:0', pop3: '127.0.0.1:0', imap: 'off', http: 'off', maxConnections: '1', data, starttls: false, hostname: 'mx.test' }, {});
  const events: string[] = [];
  const server = await startServer(config, { now: Date.now, log: recordingLog(events) });
  // The spool, SMTP, POP3, the mail index and the control socket.
  expect(server.services.length).toBe(5);
  const [smtpPort, pop3Port] = server.listeners.map((l) => l.port);

  const smtp = await client(smtpPort);
  await smtp.until(/^220 /);
  const refused = await client(pop3Port);
  expect(await refused.until(/\r\n/)).toBe('-ERR [SYS/TEMP] Too many connections, try again later\r\n');
  await refused.closed;
  smtp.socket.end();
  await smtp.closed;
  // The server counts the connection out when its side has closed too.
  while (server.connections > 0) await Bun.sleep(5);

  const pop3 = await client(pop3Port);
  expect(await pop3.until(/\r\n/)).toBe('+OK mx.test POP3 mailbox ready\r\n');
  await Promise.all(server.services.map((s) => s.drain()));
  expect(await pop3.until(/-ERR/)).toEndWith('-ERR [SYS/TEMP] mx.test is shutting down, try again later\r\n');
  await pop3.closed;
  expect(server.connections).toBe(0);
  await server.close();
});

test('a start while `mailbox queue` holds the spool waits for it; one held past the wait is one SetupError naming it', async () => {
  const data = tempDir();
  const config = buildServeConfig({ listen: '127.0.0.1:0', pop3: 'off', imap: 'off', http: 'off', data, starttls: false }, {});
  const { lockPath } = createLayout(data);
  // This process stands for the command: its pid is alive, and the file says what it is.
  writeFileSync(lockPath, `${process.pid} queue\n`);
  const events: string[] = [];
  const starting = startServer(config, { now: Date.now, log: recordingLog(events) });
  while (!events.includes('spool-busy')) await Bun.sleep(5);
  rmSync(lockPath);
  const server = await starting;
  expect(server.listeners[0].port).toBeGreaterThan(0);
  await server.close();

  writeFileSync(lockPath, `${process.pid} sendmail\n`);
  let caught: unknown;
  await startServer(config, { now: Date.now, log: recordingLog([]), lockWaitMs: 200 }).catch((error: unknown) => (caught = error));
  expect(caught).toBeInstanceOf(SetupError);
  expect((caught as Error).message).toStartWith(`the spool ${data} is still in use by the sendmail link (process ${process.pid}) after `);
  rmSync(lockPath);
});
