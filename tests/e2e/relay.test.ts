/**
 * `mailbox serve --relay mx` end to end against real peers: dnsmasq on loopback gives MX records,
 * A-only hosts, a null MX and missing domains, and forwards one domain to a responder that answers
 * SERVFAIL; the mail hosts listen on port 25 of their own 127.x.y.z addresses (chosen at random per
 * run): Postfix's smtp-sink, aiosmtpd, two `mailbox serve --faults`, and one that never answers.
 * Checks: one copy per domain with only its recipients, byte-identical but for the trace header;
 * 450 then success; 550 on one of three; a 421 greeting and a connection dropped mid-DATA, then
 * exactly one copy; NXDOMAIN 5.1.2 and null MX 5.1.10 bounced (and RCPT 556 once the null MX is
 * known); SERVFAIL deferred; TLS required and not offered deferred; SMTPUTF8 towards a server
 * without it bounced 5.6.7 (a UTF-8 address) or 5.6.9 (UTF-8 header fields); 8-bit mail towards one without 8BITMIME (smtp-sink -8) converted to
 * quoted-printable, and bounced 5.6.3 when DKIM-signed; a receiver that never answers deferred, then expired with 4.4.7; the
 * report reaches the sender as multipart/report with every RFC 3464 field.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdir } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { cleanupServesAfterAll, makeTempDir, runPython, startServe, waitForLog, type ServeHandle, type TempDir } from './harness.ts';
import { randomLoopbackNet, startFaultyHost, waitForAccepted } from './relay-peers.ts';
import type { Background } from '../helpers/background.ts';
import { smtpSinkUnavailableReason, startSmtpSink, type SmtpSinkHandle } from '../helpers/postfix.ts';
import { parseWithPython, startAiosmtpd, type AiosmtpdPeer } from '../helpers/send-peers.ts';
import { startDnsmasq, verifyPeersUnavailableReason, type DnsmasqHandle } from '../helpers/verify-peers.ts';

const unavailable = verifyPeersUnavailableReason() ?? smtpSinkUnavailableReason();
cleanupServesAfterAll();

/** 127.x.y.0/24 of this run, so that a concurrent run never shares port 25 of an address. */
const NET = randomLoopbackNet();
const SINK = `${NET}.1`;
const AIO = `${NET}.2`;
const FAULTS = `${NET}.3`;
const SILENT = `${NET}.4`;
const DROPS = `${NET}.5`;
const SEVEN = `${NET}.6`;

let tmp: TempDir;
let dns: DnsmasqHandle;
let servfail: UdpSocket;
let sink: SmtpSinkHandle;
let seven: SmtpSinkHandle;
let aio: AiosmtpdPeer;
let faults: Background;
let drops: Background;
let silent: { stop(): Promise<void> };
let relay: ServeHandle;
/** Everything started, stopped after all even when a start failed half-way. */
const running: { stop(): Promise<void> }[] = [];
function started<T extends { stop(): Promise<void> }>(peer: T): T {
  running.push(peer);
  return peer;
}

/** A UDP DNS server that answers SERVFAIL to every question (RFC 1035 §4.1.1 RCODE 2). */
async function startServfail(): Promise<UdpSocket> {
  const socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    const out = Buffer.from(query);
    out.writeUInt16BE(0x8182, 2);
    socket.send(out, peer.port, peer.address);
  });
  await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
  return socket;
}

/** Accepts connections and never says a word. */
async function startSilentHost(host: string): Promise<{ stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(25, host, () => ready());
  });
  return {
    stop: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
}


/** One message with smtplib; returns what RCPT answered to each recipient that was refused. */
async function send(sender: string, recipients: string[], message: string, utf8 = false): Promise<Record<string, [number, string]>> {
  const r = await runPython(
    `import smtplib, sys, json
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    opts = ['SMTPUTF8'] if sys.argv[5] == '1' else []
    try:
        refused = s.sendmail(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4].encode(), mail_options=opts)
    except smtplib.SMTPRecipientsRefused as e:
        refused = e.recipients
    print(json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))`,
    [String(relay.port), sender, JSON.stringify(recipients), message, utf8 ? '1' : '0'],
  );
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

function message(subject: string, body = 'Hello.\r\n'): string {
  return `From: sender@aio.test\r\nTo: friends\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@aio.test>\r\n\r\n${body}`;
}

/** The relay's log lines of one event (json), for recipient `to`. */
function lines(event: string, to: string): Record<string, unknown>[] {
  return relay
    .logs()
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`) && l.includes(`"to":"${to}"`))
    .map((l) => JSON.parse(l.slice(l.indexOf('{'))));
}

async function waitForLine(event: string, to: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  await waitForLog(relay, new RegExp(`"event":"${event}"[^\\n]*"to":"${to.replace(/[.+]/g, '\\$&')}"`), timeoutMs);
  const found = lines(event, to);
  if (found.length === 0) throw new Error(`no ${event} line for ${to}:\n${relay.logs()}`);
  return found[0];
}

beforeAll(async () => {
  if (unavailable) return;
  tmp = await makeTempDir('mailbox-relay-');
  servfail = await startServfail();
  [dns, sink, aio, silent, seven] = await Promise.all([
    startDnsmasq([
      'mx-host=sink.test,mx.sink.test,10', `host-record=mx.sink.test,${SINK}`,
      // aio.test has no MX: its A record is its implicit MX (RFC 5321 §5.1).
      `host-record=aio.test,${AIO}`,
      'mx-host=flt.test,mx.flt.test,10', `host-record=mx.flt.test,${FAULTS}`,
      'mx-host=drop.test,mx.drop.test,10', `host-record=mx.drop.test,${DROPS}`,
      'mx-host=silent.test,mx.silent.test,10', `host-record=mx.silent.test,${SILENT}`,
      'mx-host=tls.test,mx.sink.test,10',
      'mx-host=utf8.test,mx.sink.test,10',
      'mx-host=seven.test,mx.seven.test,10', `host-record=mx.seven.test,${SEVEN}`,
      'dns-rr=null.test,15,000000',
      `server=/servfail.test/127.0.0.1#${servfail.address().port}`,
    ]).then(started),
    startSmtpSink({ address: SINK, port: 25, dumpDir: join(tmp.path, 'sink') }).then(started),
    mkdir(join(tmp.path, 'aio')).then(() => startAiosmtpd({ dir: join(tmp.path, 'aio'), host: AIO, port: 25 })).then(started),
    startSilentHost(SILENT).then(started),
    // smtp-sink -8: a server that does not announce 8BITMIME (nor SMTPUTF8).
    startSmtpSink({ address: SEVEN, port: 25, dumpDir: join(tmp.path, 'seven'), extraArgs: ['-8'] }).then(started),
  ]);
  [faults, drops] = await Promise.all([
    startFaultyHost(join(tmp.path, 'faults-flt'), FAULTS, 'flt.test', [
      { stage: 'rcpt', address: 'grey@flt.test', reply: '450 4.2.0 Greylisted, try again later', times: 1 },
      { stage: 'rcpt', address: 'nobody@flt.test', reply: '550 5.1.1 No such user here' },
    ]).then(started),
    startFaultyHost(join(tmp.path, 'faults-drop'), DROPS, 'drop.test', [
      { stage: 'connect', reply: '421 4.3.2 Too busy', times: 1 },
      { stage: 'data', drop: { afterBytes: 50 }, times: 1 },
    ]).then(started),
  ]);
  relay = await startServe({
    args: [
      '--relay', 'mx', '--dns', dns.server, '--hostname', 'relay.test', '--log', 'json', '--http', 'off',
      '--relay-timeout', '2s', '--retry-after', '1s', '--retry-max', '1s', '--relay-cool-off', '1s', '--queue-lifetime', '8s',
      '--tls-policy', 'tls.test=require', '--workers', '2',
    ],
  });
}, 60_000);

afterAll(async () => {
  if (unavailable) return;
  await relay?.cleanup();
  await Promise.all(running.map((p) => p.stop()));
  await new Promise<void>((done) => (servfail ? servfail.close(() => done()) : done()));
  await tmp?.remove();
});

describe.skipIf(unavailable !== undefined)('serve --relay mx', () => {
  test('one copy per domain with only its recipients, byte-identical but for the trace header', async () => {
    const original = message('Two domains', 'Line one.\r\n..a line that starts with a dot\r\nEnd.\r\n');
    expect(await send('sender@aio.test', ['a@sink.test', 'b@sink.test', 'c@aio.test'], original)).toEqual({});
    const [dump] = await sink.completeDumps(1);
    const text = await Bun.file(dump).text();
    expect([...text.matchAll(/^X-Rcpt-Args: <(.*)>$/gm)].map((m) => m[1])).toEqual(['a@sink.test', 'b@sink.test']);
    await waitForLine('delivered', 'c@aio.test');
    const saved = await aio.messages();
    expect(saved.length).toBe(1);
    expect(saved[0].meta.rcpt_tos).toEqual(['c@aio.test']);
    const bytes = Buffer.from(saved[0].bytes).toString('latin1');
    // The relay's own Received field, then the message exactly as the client sent it.
    expect(bytes).toMatch(/^Received: from [^\r]+\r\n\tby relay\.test \(mailbox\) with ESMTP id \w+;\r\n\t[^\r]+\r\n/);
    expect(bytes.slice(bytes.indexOf('From: '))).toBe(original);
    const line = await waitForLine('delivered', 'a@sink.test');
    expect(line.relay).toBe(`mx.sink.test[${SINK}]:25`);
    expect(line.dsn).toBe('2.0.0');
    expect(String(line.reply)).toStartWith('250');
  }, 30_000);

  test('450 on RCPT is retried and delivered once; 550 on one of three is bounced to the sender', async () => {
    expect(await send('sender@aio.test', ['grey@flt.test', 'ok@flt.test', 'nobody@flt.test'], message('Three at flt'))).toEqual({});
    const deferred = await waitForLine('deferred', 'grey@flt.test');
    expect(deferred.dsn).toBe('4.2.0');
    expect(String(deferred.reply)).toContain('Greylisted');
    const bounced = await waitForLine('bounced', 'nobody@flt.test');
    expect(bounced.dsn).toBe('5.1.1');
    await waitForLine('delivered', 'grey@flt.test');
    await waitForLine('delivered', 'ok@flt.test');
    const copies = await waitForAccepted(faults, 2);
    // The first attempt carried ok@ (grey@ deferred, nobody@ refused); the retry carried grey@ alone.
    const recipients = copies.map((l) => l.to).flat().sort();
    expect(recipients).toEqual(['grey@flt.test', 'ok@flt.test']);
    // The report: from <> to the sender, multipart/report with every RFC 3464 field.
    const deadline = Date.now() + 20_000;
    let report: Uint8Array | undefined;
    while (report === undefined && Date.now() < deadline) {
      const found = (await aio.messages()).find((m) => m.meta.rcpt_tos.includes('sender@aio.test') && Buffer.from(m.bytes).includes('nobody@flt.test'));
      if (found) expect(found.meta.mail_from).toBeOneOf(['', '<>']);
      report = found?.bytes;
      if (report === undefined) await Bun.sleep(100);
    }
    expect(report).toBeDefined();
    const parsed = parseWithPython(report!);
    expect(parsed.tree[0]).toBe('multipart/report');
    expect(parsed.tree).toContain('message/delivery-status');
    expect(parsed.defects).toEqual([]);
    const status = Buffer.from(report!).toString('latin1');
    for (const field of ['Reporting-MTA: dns; relay.test', 'Arrival-Date: ', 'Final-Recipient: rfc822; nobody@flt.test', 'Action: failed', 'Status: 5.1.1', `Remote-MTA: dns; mx.flt.test`, 'Diagnostic-Code: smtp; 550 5.1.1 No such user here']) {
      expect({ field, found: status.includes(field) }).toEqual({ field, found: true });
    }
  }, 30_000);

  test('a 421 greeting and a connection dropped mid-DATA are retried; the message arrives exactly once', async () => {
    expect(await send('sender@aio.test', ['x@drop.test'], message('Dropped'))).toEqual({});
    await waitForLine('delivered', 'x@drop.test');
    const tries = lines('deferred', 'x@drop.test');
    expect(tries.length).toBe(2);
    expect(tries.map((t) => t.dsn)).toEqual(['4.3.2', '4.4.2']);
    expect((await waitForAccepted(drops, 1)).length).toBe(1);
  }, 30_000);

  test('NXDOMAIN bounces with 5.1.2; a null MX bounces with 5.1.10, and RCPT then answers 556 without waiting on DNS', async () => {
    expect(await send('sender@aio.test', ['u@nx.test', 'v@null.test'], message('Nowhere'))).toEqual({});
    expect((await waitForLine('bounced', 'u@nx.test')).dsn).toBe('5.1.2');
    expect((await waitForLine('bounced', 'v@null.test')).dsn).toBe('5.1.10');
    const refused = await send('sender@aio.test', ['w@null.test', 'c@aio.test'], message('Null again'));
    expect(refused['w@null.test'][0]).toBe(556);
    expect(refused['w@null.test'][1]).toStartWith('5.1.10');
  }, 30_000);

  test('SERVFAIL defers, never bounces; TLS required and not offered defers', async () => {
    expect(await send('sender@aio.test', ['s@servfail.test', 't@tls.test'], message('Later'))).toEqual({});
    const dnsLine = await waitForLine('deferred', 's@servfail.test');
    expect(dnsLine.dsn).toBe('4.4.3');
    const tlsLine = await waitForLine('deferred', 't@tls.test');
    expect(String(tlsLine.dsn)).toStartWith('4.');
    expect(lines('bounced', 's@servfail.test').length + lines('delivered', 't@tls.test').length).toBe(0);
  }, 30_000);

  test('SMTPUTF8 mail towards a server without SMTPUTF8 bounces: 5.6.7 for a UTF-8 address, 5.6.9 for UTF-8 header fields', async () => {
    expect(await send('sender@aio.test', ['jörg@utf8.test'], message('Umlaut'), true)).toEqual({});
    expect((await waitForLine('bounced', 'jörg@utf8.test')).dsn).toBe('5.6.7');
    expect(await send('sender@aio.test', ['header@utf8.test'], message('Grüße aus Köln'), true)).toEqual({});
    const headers = await waitForLine('bounced', 'header@utf8.test');
    expect(headers.dsn).toBe('5.6.9');
    expect(String(headers.reply)).toContain('SMTPUTF8');
  }, 30_000);

  test('8-bit mail towards a server without 8BITMIME arrives as quoted-printable, the same text once decoded; DKIM-signed 8-bit mail bounces with 5.6.3', async () => {
    const body = 'Grüße aus Köln, naïve café.\r\n..a line that starts with a dot\r\nÉnde: ½ € ✓\r\n';
    const head = 'From: sender@aio.test\r\nTo: friends\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n';
    const sent = await runPython(
      `import smtplib, sys
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.sendmail('sender@aio.test', ['eight@seven.test'], (sys.argv[2] + 'Subject: Eight\\r\\n\\r\\n' + sys.argv[3]).encode(), mail_options=['BODY=8BITMIME'])
    s.sendmail('sender@aio.test', ['signed@seven.test'], ('DKIM-Signature: v=1; a=rsa-sha256; d=aio.test; s=k; h=from; bh=x; b=y\\r\\n' + sys.argv[2] + 'Subject: Signed\\r\\n\\r\\n' + sys.argv[3]).encode(), mail_options=['BODY=8BITMIME'])`,
      [String(relay.port), head, body],
    );
    expect(sent.stderr).toBe('');
    await waitForLine('delivered', 'eight@seven.test');
    const [dump] = await seven.completeDumps(1);
    const raw = await Bun.file(dump).bytes();
    expect(raw.some((b) => b >= 0x80)).toBe(false);
    expect(Buffer.from(raw).toString('latin1')).not.toMatch(/^X-Mail-Args: .*BODY=8BITMIME/m);
    const read = await runPython(
      `import email, email.policy, sys, json
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
print(json.dumps({'cte': msg['Content-Transfer-Encoding'], 'subject': msg['Subject'], 'body': msg.get_payload(decode=True).decode('utf-8'), 'defects': [type(d).__name__ for d in msg.defects]}))`,
      [dump],
    );
    expect(read.stderr).toBe('');
    const decoded = JSON.parse(read.stdout);
    expect([decoded.cte, decoded.subject, decoded.defects]).toEqual(['quoted-printable', 'Eight', []]);
    // smtp-sink ends its dump with an empty line of its own.
    expect(decoded.body.replace(/\r?\n$/, '').replaceAll('\r\n', '\n')).toBe(body.replaceAll('\r\n', '\n'));
    const bounced = await waitForLine('bounced', 'signed@seven.test');
    expect(bounced.dsn).toBe('5.6.3');
    expect(String(bounced.reply)).toContain('DKIM');
    expect((await seven.dumps()).length).toBe(1);
    // The refusal is this relay's, not the server's: the report names no Remote-MTA and does not
    // present the reply as the server's (RFC 3464 §2.3.5, §2.3.6).
    const deadline = Date.now() + 20_000;
    let report: string | undefined;
    while (report === undefined && Date.now() < deadline) {
      report = (await aio.messages()).map((m) => Buffer.from(m.bytes).toString('latin1')).find((text) => text.includes('Final-Recipient: rfc822; signed@seven.test'));
      if (report === undefined) await Bun.sleep(100);
    }
    expect(report).toBeDefined();
    expect(report).toContain('Status: 5.6.3');
    expect(report).not.toContain('Remote-MTA:');
    expect(report).toMatch(/^Diagnostic-Code: X-mailbox; 554 5\.6\.3 /m);
  }, 30_000);

  test('a receiver that never answers is deferred, then expires with 4.4.7 and the last reply', async () => {
    expect(await send('sender@aio.test', ['q@silent.test'], message('Silence'))).toEqual({});
    const first = await waitForLine('deferred', 'q@silent.test');
    expect(String(first.reply)).toContain('no reply within 2 s');
    const expired = await waitForLine('bounced', 'q@silent.test', 30_000);
    expect(expired.dsn).toBe('4.4.7');
    expect(String(expired.reply)).toContain('no reply within 2 s');
  }, 40_000);
});
