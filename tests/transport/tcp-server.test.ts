// The listener is protocol-free: a second protocol (a small line protocol defined here, as POP3
// and IMAP will be) runs on it beside SMTP, sends raw bytes, and shares the connection caps.
import { afterEach, expect, test } from 'bun:test';
import type { ProtocolSession, ProtocolStep } from '../../src/core/protocol-session.ts';
import { formatReply } from '../../src/core/reply.ts';
import { replies } from '../../src/core/replies.ts';
import { DEFAULT_LIMITS } from '../../src/core/limits.ts';
import { ServerSession } from '../../src/core/server-session.ts';
import { ConnectionLimits } from '../../src/transport/connection-limits.ts';
import { BindError, listen, type Listener, type SessionHost } from '../../src/transport/tcp-server.ts';
import { openSocket } from '../helpers/ports.ts';

type LineEvent = { readonly kind: 'line'; readonly text: string } | { readonly kind: 'gone' };

/** "+OK" greeting; BYTES answers with bytes that are not UTF-8; QUIT closes; the end of the connection is an event. */
class LineSession implements ProtocolSession<LineEvent> {
  deadline = Infinity;
  #pending = '';

  greet(): ProtocolStep<LineEvent> {
    return step('+OK ready\r\n');
  }

  receive(bytes: Uint8Array): ProtocolStep<LineEvent> {
    this.#pending += new TextDecoder('latin1').decode(bytes);
    const lines = this.#pending.split('\r\n');
    this.#pending = lines.pop() ?? '';
    const events = lines.map((text) => ({ kind: 'line' as const, text }));
    if (lines.includes('QUIT')) return { ...step('+OK bye\r\n', true), events };
    if (lines.includes('BYTES')) return { ...step(new Uint8Array([0x2b, 0xff, 0x00, 0xfe, 0x0d, 0x0a])), events };
    return { ...step(''), events };
  }

  tick(): ProtocolStep<LineEvent> {
    return step('');
  }

  tlsStarted(): ProtocolStep<LineEvent> {
    return step('');
  }

  shutdown(): ProtocolStep<LineEvent> {
    return step('-ERR shutting down\r\n', true);
  }

  peerClosed(): ProtocolStep<LineEvent> {
    return { ...step(''), events: [{ kind: 'gone' }] };
  }
}

function step(out: ProtocolStep<LineEvent>['out'], close = false): ProtocolStep<LineEvent> {
  return { out, events: [], close, startTls: false, delayMs: 0 };
}

const lineHost = (seen: string[]): SessionHost<LineSession> => ({
  openSession: () => new LineSession(),
  handleEvents: (_conn, events) => seen.push(...events.map((e) => (e.kind === 'line' ? e.text : '(gone)'))),
  formatRefusal: (reply) => `-ERR [SYS/TEMP] ${reply.lines[0]}\r\n`,
  formatInternalError: () => '-ERR internal error\r\n',
  internalError: () => {},
});

const smtpHost: SessionHost<ServerSession> = {
  openSession: (client, now) =>
    new ServerSession(
      {
        hostname: 'mx.test',
        limits: DEFAULT_LIMITS,
        localDomains: null,
        relay: false,
        trusted: false,
        clientAddress: client.address,
        tls: 'none',
        requireTls: false,
        auth: null,
        newId: () => 'id',
        postmaster: { local: 'postmaster', domain: 'mx.test' },
      },
      now,
    ),
  handleEvents: () => {},
  formatRefusal: formatReply,
  formatInternalError: () => formatReply(replies.internalError()),
  internalError: () => {},
};

const open: Listener[] = [];
afterEach(() => {
  for (const l of open.splice(0)) void l.close();
});

/** Reads from a fresh connection until `done` holds for what came, or the peer closes. */
async function exchange(port: number, send: string[], done: (bytes: Uint8Array) => boolean): Promise<Uint8Array> {
  const socket = await openSocket('127.0.0.1', port);
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const finish = () => {
      socket.destroy();
      resolve(new Uint8Array(Buffer.concat(chunks)));
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (done(new Uint8Array(Buffer.concat(chunks)))) finish();
    });
    socket.on('close', finish);
    socket.on('error', reject);
    for (const line of send) socket.write(line);
  });
}

const endsWith = (suffix: number[]) => (bytes: Uint8Array) =>
  bytes.length >= suffix.length && suffix.every((b, i) => bytes[bytes.length - suffix.length + i] === b);

test('a line protocol on port 0: the bound port is reported, raw bytes go out as they are', async () => {
  const seen: string[] = [];
  const listener = listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, lineHost(seen), { now: Date.now });
  open.push(listener);
  expect(listener.port).toBeGreaterThan(0);
  expect(listener.address).toBe(`127.0.0.1:${listener.port}`);
  const got = await exchange(listener.port, ['BYTES\r\n'], endsWith([0xfe, 0x0d, 0x0a]));
  expect([...got]).toEqual([...new TextEncoder().encode('+OK ready\r\n'), 0x2b, 0xff, 0x00, 0xfe, 0x0d, 0x0a]);
  expect(seen).toEqual(['BYTES']);
});

test('the end of the connection reaches the session', async () => {
  const seen: string[] = [];
  const gone = Promise.withResolvers<void>();
  const host = { ...lineHost(seen), closed: () => gone.resolve() };
  const listener = listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, host, { now: Date.now });
  open.push(listener);
  await exchange(listener.port, ['QUIT\r\n'], () => false);
  await gone.promise;
  expect(seen).toEqual(['QUIT', '(gone)']);
});

test('one set of caps counts listeners of two protocols together; each refuses in its own words', async () => {
  const limits = new ConnectionLimits({ maxConnections: 1, maxPerAddress: 10, exempt: () => false });
  const line = listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, lineHost([]), { now: Date.now, limits });
  const smtp = listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, smtpHost, { now: Date.now, limits });
  open.push(line, smtp);

  const held = await openSocket('127.0.0.1', smtp.port);
  const greeted = new Promise<void>((resolve) => held.once('data', () => resolve()));
  await greeted;
  expect(limits.total).toBe(1);
  const refused = new TextDecoder().decode(await exchange(line.port, [], () => false));
  expect(refused).toStartWith('-ERR [SYS/TEMP] Too many connections');
  held.destroy();

  const closed = Promise.withResolvers<void>();
  const waitFree = setInterval(() => limits.total === 0 && closed.resolve(), 5);
  await closed.promise;
  clearInterval(waitFree);
  const greeting = new TextDecoder().decode(await exchange(line.port, ['QUIT\r\n'], (b) => new TextDecoder().decode(b).includes('bye')));
  expect(greeting).toBe('+OK ready\r\n+OK bye\r\n');
});

test('an address in use is a BindError carrying the address and the code', () => {
  const first = listen({ kind: 'tcp', host: '127.0.0.1', port: 0 }, lineHost([]), { now: Date.now });
  open.push(first);
  let caught: unknown;
  try {
    open.push(listen({ kind: 'tcp', host: '127.0.0.1', port: first.port }, lineHost([]), { now: Date.now }));
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(BindError);
  expect((caught as BindError).code).toBe('EADDRINUSE');
  expect((caught as BindError).message).toBe(`cannot listen on 127.0.0.1:${first.port}: the address is in use (EADDRINUSE)`);
});
