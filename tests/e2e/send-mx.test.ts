/**
 * `mailbox send --mx` end to end under the MX policy (RFC 7435 opportunistic TLS): dnsmasq on
 * loopback gives the MX records; aiosmtpd receivers offer STARTTLS, one with a certificate for its
 * MX name signed by a CA mailbox was not told about, one self-signed; both must take the message
 * over TLS, with the MX name sent as SNI. A host that answers 421 passes the turn to the next, and
 * a session already open to that host carries the second domain's transaction. A host whose TLS
 * handshake fails gets the message in clear on a new connection, unless a policy checks TLS.
 * Every receiver is on a loopback address: the policy must not care (no loopback exemption).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { MAILBOX_BIN, makeTempDir, runCommand, type TempDir } from './harness.ts';
import { findFreePort } from '../helpers/ports.ts';
import { makeCertificates, makeHostCertificate, startAiosmtpd, type AiosmtpdPeer } from '../helpers/send-peers.ts';
import { startDnsmasq, type DnsmasqHandle } from '../helpers/verify-peers.ts';

const SIGNED = '127.0.7.1';
const SELF = '127.0.7.2';
const BUSY = '127.0.7.3';
const BROKEN = '127.0.7.4';

let tmp: TempDir;
let port: number;
let signed: AiosmtpdPeer;
let self: AiosmtpdPeer;
let broken: AiosmtpdPeer;
let busy: { server: Server; connections: number; close(): Promise<void> };
let dns: DnsmasqHandle;

/** A mail host that is there but says "try later" at once (RFC 5321 §3.1: 421 greeting). */
async function startBusyHost(host: string, listenPort: number) {
  const sockets = new Set<Socket>();
  const handle = {
    connections: 0,
    server: createServer((socket) => {
      handle.connections++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.end('421 4.3.2 busy.turn.test too busy, try later\r\n');
    }),
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        handle.server.close(() => done());
      }),
  };
  await new Promise<void>((ready, fail) => {
    handle.server.once('error', fail);
    handle.server.listen(listenPort, host, () => ready());
  });
  return handle;
}

beforeAll(async () => {
  tmp = await makeTempDir('mailbox-send-mx-');
  makeCertificates(tmp.path);
  port = await findFreePort(SIGNED);
  const signedCert = makeHostCertificate(tmp.path, 'mx.signed.test', 'ca');
  const selfCert = makeHostCertificate(tmp.path, 'mx.self.test', 'self');
  const brokenCert = makeHostCertificate(tmp.path, 'mx.broken.test', 'self');
  await Promise.all([mkdir(join(tmp.path, 'signed')), mkdir(join(tmp.path, 'self')), mkdir(join(tmp.path, 'broken'))]);
  [signed, self, busy, broken, dns] = await Promise.all([
    startAiosmtpd({ dir: join(tmp.path, 'signed'), host: SIGNED, port, tls: 'starttls', certificates: signedCert }),
    startAiosmtpd({ dir: join(tmp.path, 'self'), host: SELF, port, tls: 'starttls', certificates: selfCert }),
    startBusyHost(BUSY, port),
    startAiosmtpd({ dir: join(tmp.path, 'broken'), host: BROKEN, port, tls: 'starttls', certificates: brokenCert, brokenTls: true }),
    startDnsmasq([
      'mx-host=signed.test,mx.signed.test,10', `host-record=mx.signed.test,${SIGNED}`,
      'mx-host=self.test,mx.self.test,10', `host-record=mx.self.test,${SELF}`,
      // turn.test: the best MX is busy; the next one is the host signed.test uses.
      'mx-host=turn.test,busy.turn.test,10', `host-record=busy.turn.test,${BUSY}`,
      'mx-host=turn.test,mx.signed.test,20',
      'mx-host=broken.test,mx.broken.test,10', `host-record=mx.broken.test,${BROKEN}`,
    ]),
  ]);
});

afterAll(async () => {
  await Promise.all([signed?.stop(), self?.stop(), busy?.close(), broken?.stop(), dns?.stop()]);
  await tmp?.remove();
});

const sniLines = (peer: AiosmtpdPeer) => peer.logs().match(/^SNI .*$/gm) ?? [];

describe('send --mx: opportunistic TLS with the MX name', () => {
  test('a CA-signed and a self-signed MX both take the message over STARTTLS; a busy host passes the turn; one session carries two domains', async () => {
    const r = await runCommand([
      MAILBOX_BIN, 'send', '--mx', '--dns', dns.server, '--port', String(port), '--timeout', '10',
      '--from', 'a@example.org', '--to', 'x@signed.test', '--to', 'y@self.test', '--to', 'z@turn.test',
      '--subject', 'MX policy', '--body', 'opportunistic', '--json', '-v',
    ], { timeoutMs: 60_000 });
    expect([r.code, r.stderr.split('\n').filter((l) => l.startsWith('mailbox:'))]).toEqual([0, []]);
    const json = JSON.parse(r.stdout);
    expect(json.deliveries.map((d: { domain: string; server: string; ok: boolean; tls: unknown }) => [d.domain, d.server, d.ok, d.tls !== null])).toEqual([
      ['signed.test', `${SIGNED}:${port}`, true, true],
      ['self.test', `${SELF}:${port}`, true, true],
      ['turn.test', `${SIGNED}:${port}`, true, true],
    ]);

    const signedMessages = await signed.messages();
    expect(signedMessages.map((m) => [m.meta.rcpt_tos, m.meta.tls])).toEqual([[['x@signed.test'], true], [['z@turn.test'], true]]);
    const selfMessages = await self.messages();
    expect(selfMessages.map((m) => [m.meta.rcpt_tos, m.meta.tls])).toEqual([[['y@self.test'], true]]);

    // SNI carries the MX name (not the address), and the signed host saw one handshake: turn.test's
    // transaction went over the session signed.test opened.
    expect(sniLines(signed)).toEqual(['SNI mx.signed.test']);
    expect(sniLines(self)).toEqual(['SNI mx.self.test']);
    expect(busy.connections).toBe(1);
    expect(r.stderr).toContain(`# connecting to ${BUSY}:${port}`);
    expect(r.stderr).toContain('S: 421 4.3.2 busy.turn.test too busy, try later');
    expect(r.stderr.match(/^C: STARTTLS$/gm)).toHaveLength(2);
  }, 60_000);

  test('a failed TLS handshake is followed by clear text on a new connection (RFC 7435); with a policy that checks, it is not', async () => {
    const r = await runCommand([
      MAILBOX_BIN, 'send', '--mx', '--dns', dns.server, '--port', String(port), '--timeout', '10',
      '--from', 'a@example.org', '--to', 'u@broken.test', '--body', 'in clear after all', '-v',
    ], { timeoutMs: 60_000 });
    expect([r.code, r.stderr.split('\n').filter((l) => l.startsWith('mailbox:'))]).toEqual([0, []]);
    expect(r.stderr.match(new RegExp(`^# connecting to ${BROKEN.replace(/\./g, '\\.')}:${port}$`, 'gm'))).toHaveLength(2);
    expect(r.stderr).toContain('C: STARTTLS');
    expect((await broken.messages()).map((m) => [m.meta.rcpt_tos, m.meta.tls])).toEqual([[['u@broken.test'], false]]);

    const required = await runCommand([
      MAILBOX_BIN, 'send', '--mx', '--dns', dns.server, '--port', String(port), '--timeout', '10', '--tls', 'starttls', '--insecure',
      '--from', 'a@example.org', '--to', 'u2@broken.test', '--body', 'never in clear',
    ], { timeoutMs: 60_000 });
    expect(required.code).toBe(76);
    expect(await broken.messages()).toHaveLength(1);
  }, 60_000);

  test('--tls starttls asks for a certificate check against the MX name: the CA-signed host passes with --tls-ca, the self-signed one fails', async () => {
    const ok = await runCommand([
      MAILBOX_BIN, 'send', '--mx', '--dns', dns.server, '--port', String(port), '--timeout', '10', '--tls', 'starttls', '--tls-ca', join(tmp.path, 'ca.pem'),
      '--from', 'a@example.org', '--to', 'v@signed.test', '--body', 'checked',
    ], { timeoutMs: 60_000 });
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    expect((await signed.messages()).slice(-1)[0].meta.rcpt_tos).toEqual(['v@signed.test']);

    const before = (await self.messages()).length;
    const refused = await runCommand([
      MAILBOX_BIN, 'send', '--mx', '--dns', dns.server, '--port', String(port), '--timeout', '10', '--tls', 'starttls',
      '--from', 'a@example.org', '--to', 'w@self.test', '--body', 'checked',
    ], { timeoutMs: 60_000 });
    // A certificate nobody vouches for: TLS trouble (76), and nothing sent in clear instead.
    expect(refused.code).toBe(76);
    expect(refused.stderr).toMatch(/^mailbox: .*self[- ]signed certificate/m);
    expect((await self.messages()).length).toBe(before);
  }, 60_000);
});
