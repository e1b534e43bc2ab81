// The stub resolver against a scripted DNS server on loopback (UDP and TCP on one port): every
// outcome is kept apart (answer, NODATA, NXDOMAIN, SERVFAIL, REFUSED, timeout), a datagram that
// does not answer our question is ignored, and a truncated answer is asked again over TCP.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { parseDnsServer, parseResolvConf } from '../../src/dns/resolv-conf.ts';
import { DnsResolver } from '../../src/dns/resolver.ts';

const MX_RDATA = Uint8Array.from([0, 10, 2, ...Buffer.from('mx'), 4, ...Buffer.from('test'), 0]);

/** The answer to `query`: same id and question, QR and RA set, the rcode, and MX answers. */
function answer(query: Uint8Array, opts: { rcode?: number; tc?: boolean; mx?: number; idDelta?: number }): Uint8Array {
  let end = 12;
  while (query[end] !== 0) end += query[end] + 1;
  end += 5;
  const rr = Uint8Array.from([0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, MX_RDATA.length, ...MX_RDATA]);
  const count = opts.mx ?? 0;
  const out = new Uint8Array(end + rr.length * count);
  out.set(query.subarray(0, end), 0);
  for (let i = 0; i < count; i++) out.set(rr, end + i * rr.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, (view.getUint16(0) + (opts.idDelta ?? 0)) & 0xffff);
  view.setUint16(2, 0x8180 | (opts.tc ? 0x0200 : 0) | (opts.rcode ?? 0));
  view.setUint16(6, count);
  return out;
}

function questionName(query: Uint8Array): string {
  const labels: string[] = [];
  for (let at = 12; query[at] !== 0; at += query[at] + 1) labels.push(Buffer.from(query.subarray(at + 1, at + 1 + query[at])).toString());
  return labels.join('.');
}

const SCRIPT: Record<string, Parameters<typeof answer>[1] | 'silent'> = {
  'mx.test': { mx: 2 },
  'nodata.test': {},
  'missing.test': { rcode: 3 },
  'servfail.test': { rcode: 2 },
  'refused.test': { rcode: 5 },
  'silent.test': 'silent',
  'wrong-id.test': { mx: 1, idDelta: 1 },
  'big.test': { tc: true },
};

let udp: UdpSocket;
let tcp: Server;
let port = 0;
let tcpQueries = 0;

/** Binds UDP on a free port, then TCP on the same one; a TCP port already taken means another try. */
async function bindBoth(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    udp = createSocket('udp4');
    udp.on('message', (query, peer) => {
      const script = SCRIPT[questionName(query)];
      if (script === undefined || script === 'silent') return;
      udp.send(answer(query, script), peer.port, peer.address);
    });
    await new Promise<void>((done) => udp.bind(0, '127.0.0.1', done));
    port = udp.address().port;
    tcp = createServer((socket) => {
      socket.once('data', (framed: Buffer) => {
        tcpQueries++;
        const reply = answer(new Uint8Array(framed.subarray(2)), { mx: 3 });
        const out = Buffer.alloc(reply.length + 2);
        out.writeUInt16BE(reply.length, 0);
        out.set(reply, 2);
        socket.end(out);
      });
    });
    const bound = await new Promise<boolean>((done) => {
      tcp.once('error', () => done(false));
      tcp.listen(port, '127.0.0.1', () => done(true));
    });
    if (bound) return;
    await new Promise<void>((done) => udp.close(() => done()));
    if (attempt >= 20) throw new Error('no port free for both UDP and TCP');
  }
}

beforeAll(bindBoth);

afterAll(async () => {
  await new Promise<void>((done) => udp.close(() => done()));
  await new Promise<void>((done) => tcp.close(() => done()));
});

/** The server answers from this same process: 5 s per try leaves room for a loaded machine. */
const resolver = (timeoutMs = 5000) => new DnsResolver({ server: { host: '127.0.0.1', port }, timeoutMs, attempts: 2 });

describe('DnsResolver', () => {
  test('each outcome is its own status', async () => {
    const r = resolver();
    const status = async (name: string) => (await r.lookup(name, 'MX')).status;
    expect(await status('mx.test')).toBe('answer');
    expect(await status('nodata.test')).toBe('nodata');
    expect(await status('missing.test')).toBe('nxdomain');
    expect(await status('servfail.test')).toBe('servfail');
    expect(await status('refused.test')).toBe('refused');
  });

  test('the answer records and their zone-file text', async () => {
    const lookup = await resolver().lookup('mx.test', 'MX');
    expect(lookup.records).toHaveLength(2);
    expect(lookup.answers).toEqual(['mx.test. 60 IN MX 10 mx.test.', 'mx.test. 60 IN MX 10 mx.test.']);
    expect(lookup.detail).toBe('NOERROR, 2 records');
  });

  test('no answer is a timeout after every try; a wrong id is no answer', async () => {
    // Nothing will answer: a short timeout keeps the test quick.
    const r = resolver(300);
    const silent = await r.lookup('silent.test', 'MX');
    expect(silent.status).toBe('timeout');
    expect(silent.detail).toBe(`no answer from 127.0.0.1:${port} within 0.3 s (2 tries)`);
    expect((await r.lookup('wrong-id.test', 'MX')).status).toBe('timeout');
  });

  test('a truncated answer is asked again over TCP (RFC 7766)', async () => {
    const before = tcpQueries;
    const lookup = await resolver().lookup('big.test', 'MX');
    expect(lookup.status).toBe('answer');
    expect(lookup.records).toHaveLength(3);
    expect(tcpQueries).toBe(before + 1);
  });

  test('each question is asked once per resolver', async () => {
    const r = resolver();
    await Promise.all([r.lookup('mx.test', 'MX'), r.lookup('MX.test', 'MX'), r.lookup('mx.test', 'MX')]);
    await r.lookup('mx.test', 'MX');
    expect(r.queriesSent).toBe(1);
  });
});

describe('choosing the server', () => {
  test('resolv.conf: the first nameserver that is an IP address', () => {
    expect(parseResolvConf('# generated\nsearch example.org\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n')).toEqual({ host: '10.0.0.53', port: 53 });
    expect(parseResolvConf('nameserver ::1\n')).toEqual({ host: '::1', port: 53 });
    expect(parseResolvConf('options ndots:2\n')).toBeNull();
  });
  test('--dns HOST[:PORT]', () => {
    expect(parseDnsServer('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(parseDnsServer('9.9.9.9')).toEqual({ host: '9.9.9.9', port: 53 });
    expect(parseDnsServer('[::1]:5353')).toEqual({ host: '::1', port: 5353 });
    expect(parseDnsServer('2001:db8::53')).toEqual({ host: '2001:db8::53', port: 53 });
    expect(parseDnsServer('dns.example:53')).toHaveProperty('error');
    expect(parseDnsServer('127.0.0.1:99999')).toHaveProperty('error');
  });
});
