// MX hand-offs (delivery/mx-delivery.ts) over loopback to the server core on a node:net socket:
// recipients grouped per domain, and one session carrying several transactions: two domains
// whose MX is the same host, then a second message through the caller's SessionPool.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createServer, type Server, type Socket } from 'node:net';
import { formatMailbox } from '../../src/core/address.ts';
import { DEFAULT_LIMITS } from '../../src/core/limits.ts';
import { ServerSession, type ServerConfig, type Step } from '../../src/core/server-session.ts';
import { handOffToMx, SessionPool } from '../../src/delivery/mx-delivery.ts';
import { OPPORTUNISTIC } from '../../src/delivery/mx-policy.ts';
import type { MailRouteResolver } from '../../src/dns/mail-route.ts';
import type { Lookup, LookupType } from '../../src/dns/resolver.ts';
import { mailbox } from '../helpers/mailbox.ts';

const ENCODER = new TextEncoder();
let server: Server;
let port: number;
let connections = 0;
const sockets = new Set<Socket>();
const arrived: string[][] = [];

beforeAll(async () => {
  server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let ids = 0;
    const config: ServerConfig = {
      hostname: 'mx.test', postmaster: mailbox('postmaster@mx.test'), localDomains: null, relay: false, trusted: false,
      clientAddress: '127.0.0.1', tls: 'none', requireTls: false, auth: null, newId: () => `ID${++ids}`, limits: DEFAULT_LIMITS,
    };
    const session = new ServerSession(config, 0);
    const apply = (step: Step) => {
      for (const event of step.events) {
        if (event.kind !== 'message') continue;
        arrived.push(event.envelope.recipients.map((r) => formatMailbox(r.mailbox)));
        apply(session.resolve(event.requestId, { ok: true }, 0));
      }
      if (step.out.length > 0) socket.write(step.out);
      if (step.close) socket.end();
    };
    socket.on('data', (chunk: Buffer) => apply(session.receive(new Uint8Array(chunk), 0)));
    socket.on('error', () => {});
    apply(session.greet(0));
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', () => ready()));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((done) => server.close(() => done()));
});

/** a.test and b.test both have mx.test (127.0.0.1) as their MX. */
const resolver: MailRouteResolver = {
  lookup: async (name: string, type: LookupType): Promise<Lookup> => {
    const mx = type === 'MX' && (name === 'a.test' || name === 'b.test');
    const a = type === 'A' && name === 'mx.test';
    const records = mx
      ? [{ name, ttl: 60, data: { type: 'MX' as const, preference: 10, exchange: 'mx.test' } }]
      : a ? [{ name, ttl: 60, data: { type: 'A' as const, address: '127.0.0.1' } }] : [];
    return { name, type, status: records.length > 0 ? 'answer' : 'nodata', records, answers: [], detail: '' };
  },
};

const plan = { ehloName: 'client.test', timeoutMs: 10_000, tlsSettings: {}, chunking: true, quitAfter: null };
const message = (to: string[]) => ({ sender: mailbox('s@example.org'), recipients: to.map(mailbox), render: () => ENCODER.encode('Subject: x\n\nbody\n') });

test('two domains on one MX share one session; a pool carries the next message on it too', async () => {
  const pool = new SessionPool();
  const first = await handOffToMx(message(['x@a.test', 'y@b.test', 'z@a.test']), plan, { resolver, port, policy: OPPORTUNISTIC }, pool);
  const second = await handOffToMx(message(['w@b.test']), plan, { resolver, port, policy: OPPORTUNISTIC }, pool);
  await pool.closeAll();
  expect([...first, ...second].map((h) => [h.domain, h.failure, h.reply?.code])).toEqual([
    ['a.test', null, 250],
    ['b.test', null, 250],
    ['b.test', null, 250],
  ]);
  expect(arrived).toEqual([['x@a.test', 'z@a.test'], ['y@b.test'], ['w@b.test']]);
  expect(connections).toBe(1);
});
