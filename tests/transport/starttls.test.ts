// The STARTTLS bridge alone, over a real loopback Bun.listen socket: handshake, a large echo
// under backpressure (Bun's write takes part of a chunk; the rest waits for drain), teardown.
import { afterEach, expect, test } from 'bun:test';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type TLSSocket } from 'node:tls';
import { Outbox } from '../../src/transport/outbox.ts';
import { TlsBridge } from '../../src/transport/starttls.ts';
import { createSelfSigned } from '../../src/tls/self-signed.ts';

const material = createSelfSigned({ hostname: 'bridge.test', nowMs: Date.now() });
const context = createSecureContext({ cert: material.cert, key: material.key });

interface Server {
  port: number;
  bridges: TlsBridge[];
  ended: (Error | null)[];
  partialWrites: number;
  stop(): void;
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.stop();
});

/** A Bun.listen server that says 220, bridges every connection to TLS and echoes what it decrypts. */
function echoServer(): Server {
  const state: Server = { port: 0, bridges: [], ended: [], partialWrites: 0, stop: () => listener.stop(true) };
  const listener = Bun.listen<{ bridge: TlsBridge | null }>({
    hostname: '127.0.0.1',
    port: 0,
    data: { bridge: null },
    socket: {
      open(socket) {
        const raw = {
          write(data: string | Uint8Array) {
            const n = socket.write(data);
            if (n < data.length) state.partialWrites++;
            return n;
          },
          end: () => socket.end(),
        };
        const outbox = new Outbox();
        outbox.send(raw, '220 go ahead\r\n');
        const bridge = new TlsBridge(raw, outbox, context, {
          secure() {},
          data: (plain) => bridge.write(plain),
          ended: (error) => state.ended.push(error),
        });
        socket.data = { bridge };
        state.bridges.push(bridge);
      },
      data: (socket, bytes) => socket.data.bridge?.receive(bytes),
      drain: (socket) => socket.data.bridge?.drain(),
      close: (socket) => socket.data.bridge?.rawClosed(),
    },
  });
  state.port = listener.port;
  servers.push(state);
  return state;
}

/** Connects, reads the clear-text 220, then starts TLS over the same socket. */
async function client(port: number): Promise<TLSSocket> {
  const raw: Socket = netConnect(port, '127.0.0.1');
  await new Promise<void>((resolve) => raw.once('data', () => resolve()));
  const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('error', reject);
  });
  return secure;
}

/** Polls `condition`; the deadline is generous, since the polling ends as soon as it holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; !condition() && Date.now() < deadline;) await Bun.sleep(5);
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

test('a 16 MB echo through the bridge arrives intact while the reader stalls', async () => {
  const server = echoServer();
  const secure = await client(server.port);
  const payload = randomBytes(16 * 1024 * 1024);
  const received: Buffer[] = [];
  let total = 0;
  secure.on('data', (chunk: Buffer) => {
    received.push(chunk);
    total += chunk.length;
  });
  secure.pause();
  secure.write(payload);
  // The client reads nothing until the server could not write everything at once.
  await until(() => server.partialWrites > 0, 'a partial write on the server');
  secure.resume();
  await until(() => total >= payload.length, 'the whole echo');
  expect(Buffer.concat(received).equals(payload)).toBe(true);
  secure.end();
  await until(() => server.ended.length === 1, 'the bridge to end');
  expect(server.ended).toEqual([null]);
  expect(server.bridges[0].closed).toBe(true);
}, 60_000);

test('end() sends close_notify after pending data, then closes the raw socket', async () => {
  const server = echoServer();
  const secure = await client(server.port);
  let text = '';
  let sawEnd = false;
  secure.on('data', (c: Buffer) => (text += c.toString()));
  secure.on('end', () => (sawEnd = true));
  secure.write('hello\r\n');
  await until(() => text === 'hello\r\n', 'the echo');
  server.bridges[0].write('221 bye\r\n');
  server.bridges[0].end();
  await until(() => sawEnd, 'the end of the TLS stream');
  expect(text).toBe('hello\r\n221 bye\r\n');
});

test('a client that vanishes mid-handshake, or sends garbage, tears the bridge down once', async () => {
  const server = echoServer();
  const raw = netConnect(server.port, '127.0.0.1');
  raw.on('error', () => {});
  await new Promise<void>((resolve) => raw.once('data', () => resolve()));
  raw.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30]));
  raw.destroy();
  await until(() => server.ended.length === 1, 'the first bridge to end');
  expect(server.bridges[0].closed).toBe(true);

  const junk = netConnect(server.port, '127.0.0.1');
  junk.on('error', () => {});
  await new Promise<void>((resolve) => junk.once('data', () => resolve()));
  junk.write(randomBytes(64 * 1024));
  await until(() => server.ended.length === 2, 'the second bridge to end');
  expect(server.ended[1]).toBeInstanceOf(Error);
  // Anything handed to a closed bridge is dropped.
  server.bridges[1].receive(Buffer.from('late'));
  server.bridges[1].write('late');
  server.bridges[1].end();
  expect(server.ended.length).toBe(2);
});
