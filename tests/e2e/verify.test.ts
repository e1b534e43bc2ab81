/**
 * End to end: `dist/mailbox verify` against dnsmasq and real SMTP receivers on their own loopback
 * addresses, port 25 (127.0.6.0/24): aiosmtpd accepting listed users, a catch-all, a greylisting
 * server, one answering 552 for a full mailbox, one answering VRFY, and a private Postfix with a
 * virtual mailbox map; a domain whose first MX is down, one with only an A record, a null MX, a
 * missing domain, one whose DNS server never answers. Each address gets its verdict and reason,
 * and the JSON carries the DNS answers and every SMTP reply. Then a batch of 1,000 addresses
 * over 10 domains: in order, within the per-domain connection cap. No timing is asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { startPostfix, type PostfixHandle } from '../helpers/postfix.ts';
import {
  startDnsmasq,
  startReceiver,
  startSilentDns,
  type DnsmasqHandle,
  type ReceiverHandle,
  type SilentDnsHandle,
} from '../helpers/verify-peers.ts';
import { cleanupServesAfterAll, MAILBOX_BIN, runCommand, startServe } from './harness.ts';


const BATCH_DOMAINS = 10;
const BATCH_PER_DOMAIN = 100;
const BATCH_USERS = 50;
const batchHost = (i: number) => `127.0.6.${20 + i}`;

interface Parsed {
  input: string;
  address: string | null;
  verdict: string;
  reason: string;
  detail: string;
  dns?: { route: string; lookups: { query: string; status: string; answers: string[] }[] };
  smtp?: {
    attempts: { address: string; ok: boolean; detail: string }[];
    server: { address: string; tls: boolean } | null;
    session: string[];
    transcript: string[];
    catchAll: { acceptsAll: boolean | null } | null;
  };
}

function parseLines(stdout: string): Parsed[] {
  return stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Parsed);
}

cleanupServesAfterAll();

describe('mailbox verify against dnsmasq, aiosmtpd and Postfix', () => {
  let dns: DnsmasqHandle;
  let silent: SilentDnsHandle;
  let postfix: PostfixHandle;
  const receivers: ReceiverHandle[] = [];

  beforeAll(async () => {
    requirePeers('root', 'dnsmasq', 'aiosmtpd', 'postfix');
    silent = await startSilentDns();
    const batchRecords = Array.from({ length: BATCH_DOMAINS }, (_, i) => [
      `mx-host=b${i}.test,mx.b${i}.test,10`,
      `host-record=mx.b${i}.test,${batchHost(i)}`,
    ]).flat();
    dns = await startDnsmasq([
      // Two MX: the preferred one has nothing listening.
      'mx-host=two-mx.test,mx-down.two-mx.test,10',
      'mx-host=two-mx.test,mx-up.two-mx.test,20',
      'host-record=mx-down.two-mx.test,127.0.6.1',
      'host-record=mx-up.two-mx.test,127.0.6.2',
      // No MX, only an address: the implicit MX (RFC 5321 §5.1); a catch-all listens there.
      'host-record=a-only.test,127.0.6.3',
      // RFC 7505 null MX: preference 0, exchange "." (RDATA 0000 00).
      'dns-rr=null-mx.test,15,000000',
      'mx-host=grey.test,mx.grey.test,10',
      'host-record=mx.grey.test,127.0.6.4',
      'mx-host=pf.test,mx.pf.test,10',
      'host-record=mx.pf.test,127.0.6.5',
      'mx-host=vrfy.test,mx.vrfy.test,10',
      'host-record=mx.vrfy.test,127.0.6.6',
      'mx-host=dead.test,mx.dead.test,10',
      'host-record=mx.dead.test,127.0.6.7',
      `server=/slow.test/127.0.0.1#${silent.port}`,
      ...batchRecords,
    ]);
    const started = await Promise.all([
      startReceiver({ host: '127.0.6.2', mode: 'full', users: ['alice', 'bob', 'carol'], full: ['carol'] }),
      startReceiver({ host: '127.0.6.3', mode: 'catch-all' }),
      startReceiver({ host: '127.0.6.4', mode: 'greylist', users: ['alice', 'bob'] }),
      startReceiver({ host: '127.0.6.6', mode: 'catch-all', users: ['alice'], vrfy: true }),
      ...Array.from({ length: BATCH_DOMAINS }, (_, i) =>
        startReceiver({ host: batchHost(i), mode: 'users', users: Array.from({ length: BATCH_USERS }, (_, u) => `u${u}`) })),
    ]);
    receivers.push(...started);
    // Postfix rejects unknown recipients at RCPT for its virtual mailbox domains
    // (smtpd_reject_unlisted_recipient, on by default, checks virtual_mailbox_maps).
    postfix = await startPostfix({
      address: '127.0.6.5',
      port25: true,
      mainCf: {
        virtual_mailbox_domains: 'pf.test',
        virtual_mailbox_maps: 'inline:{ known@pf.test=known/ }',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...receivers.map((r) => r.stop()), dns?.stop(), silent?.stop(), postfix?.stop()]);
  }, 30_000);

  /**
   * --timeout is every reply's deadline: long enough here for receivers slowed by a loaded machine.
   * A test that needs the DNS timeout to expire (x@slow.test) passes a shorter one.
   */
  const verify = (args: string[], stdin?: string, timeoutSeconds = 10) =>
    runCommand([MAILBOX_BIN, 'verify', '--dns', dns.server, '--timeout', String(timeoutSeconds), '--ehlo', 'verify.test', ...args], { stdin, timeoutMs: 60_000 });

  test('each address gets its verdict, reason and evidence', async () => {
    const addresses = [
      'alice@two-mx.test',
      'ghost@two-mx.test',
      'carol@two-mx.test',
      'anyone@a-only.test',
      'x@null-mx.test',
      'x@no-such-domain.test',
      'x@slow.test',
      'alice@grey.test',
      'known@pf.test',
      'ghost@pf.test',
      'x@dead.test',
      'alice@[127.0.6.2]',
      'pelé@two-mx.test',
      'two..dots@two-mx.test',
    ];
    // x@slow.test waits out the DNS timeout twice (two tries), so it is 3 s rather than 10.
    const { code, stdout, stderr } = await verify(['--json', '--rate', '0', ...addresses], undefined, 3);
    expect(stderr).toBe('');
    expect(code).toBe(1);
    const results = parseLines(stdout);
    expect(results.map((r) => r.input)).toEqual(addresses);
    const got = Object.fromEntries(results.map((r) => [r.input, `${r.verdict} ${r.reason}`]));
    expect(got).toEqual({
      'alice@two-mx.test': 'deliverable accepted',
      'ghost@two-mx.test': 'undeliverable rejected',
      'carol@two-mx.test': 'risky mailbox-full',
      'anyone@a-only.test': 'risky catch-all',
      'x@null-mx.test': 'undeliverable null-mx',
      'x@no-such-domain.test': 'undeliverable no-such-domain',
      'x@slow.test': 'unknown dns-timeout',
      'alice@grey.test': 'risky greylisted',
      'known@pf.test': 'deliverable accepted',
      'ghost@pf.test': 'undeliverable rejected',
      'x@dead.test': 'unknown smtp-unreachable',
      'alice@[127.0.6.2]': 'deliverable accepted',
      'pelé@two-mx.test': 'undeliverable smtputf8-unsupported',
      'two..dots@two-mx.test': 'undeliverable invalid-syntax',
    });
    const by = (input: string) => results.find((r) => r.input === input)!;

    // The first MX was tried and refused, the second answered; the replies are verbatim.
    const alice = by('alice@two-mx.test');
    expect(alice.smtp!.attempts.map((a) => [a.address, a.ok])).toEqual([['127.0.6.1', false], ['127.0.6.2', true]]);
    expect(alice.smtp!.attempts[0].detail).toBe('connection refused');
    expect(alice.dns!.lookups[0]).toMatchObject({ query: 'two-mx.test MX', status: 'answer' });
    expect(alice.dns!.lookups[0].answers.sort()).toEqual(['two-mx.test. 0 IN MX 10 mx-down.two-mx.test.', 'two-mx.test. 0 IN MX 20 mx-up.two-mx.test.']);
    expect(alice.smtp!.transcript).toContain('C: RCPT TO:<alice@two-mx.test>');
    expect(alice.smtp!.transcript).toContain('S: 250 2.1.5 OK');
    expect(alice.smtp!.transcript.at(-2)).toBe('C: RSET');
    expect(alice.smtp!.catchAll).toMatchObject({ acceptsAll: false });
    expect(alice.smtp!.session[0]).toMatch(/^S: 220 /);
    expect(by('ghost@two-mx.test').smtp!.transcript).toContain('S: 550 5.1.1 <ghost@two-mx.test>: Recipient address rejected: User unknown');
    expect(by('carol@two-mx.test').detail).toBe('RCPT TO: 552 5.2.2 Mailbox full');
    expect(by('anyone@a-only.test').dns!.route).toBe('implicit-mx');
    expect(by('x@null-mx.test').dns!.lookups[0].answers).toEqual(['null-mx.test. 0 IN MX 0 .']);
    expect(by('x@no-such-domain.test').dns!.lookups[0].status).toBe('nxdomain');
    expect(by('x@slow.test').dns!.lookups[0].status).toBe('timeout');
    expect(by('x@dead.test').detail).toContain('outbound SMTP to port 25 may be blocked from this machine');
    expect(by('ghost@pf.test').smtp!.transcript.join('\n')).toMatch(/S: 550 5\.1\.1 <ghost@pf\.test>: Recipient address rejected: User unknown/);
    // Postfix offers PIPELINING: MAIL, RCPT(s) and RSET went as one group.
    expect(by('known@pf.test').smtp!.session.join('\n')).toContain('PIPELINING');
    expect(by('two..dots@two-mx.test').detail).toBe('the local part has an empty dot-separated part');
    expect(receivers.some((r) => r.sawData())).toBe(false);
  }, 60_000);

  test('--retry-greylist waits and asks again: the greylisted address becomes deliverable', async () => {
    const { code, stdout } = await verify(['--json', '--retry-greylist', '1', 'bob@grey.test']);
    const [bob] = parseLines(stdout);
    expect(`${bob.verdict} ${bob.reason}`).toBe('deliverable accepted');
    expect(bob.smtp!.transcript.join('\n')).toMatch(/450 4\.7\.1[\s\S]*asked again after 1 s[\s\S]*250 2\.1\.5 OK/);
    expect(code).toBe(0);
  }, 30_000);

  test('--vrfy on a catch-all: VRFY tells the real mailbox from the rest', async () => {
    const { stdout } = await verify(['--json', '--vrfy', 'alice@vrfy.test', 'ghost@vrfy.test']);
    expect(parseLines(stdout).map((r) => `${r.verdict} ${r.reason}`)).toEqual(['deliverable vrfy-confirmed', 'undeliverable vrfy-rejected']);
  }, 30_000);

  test('human output: one line per address, evidence with -v, exit 0 when all are deliverable', async () => {
    const plain = await verify(['alice@two-mx.test']);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^deliverable +alice@two-mx\.test {2}accepted: RCPT TO: 250 2\.1\.5 OK\n$/);
    const verbose = await verify(['-v', 'ghost@two-mx.test']);
    expect(verbose.code).toBe(1);
    expect(verbose.stdout).toContain('two-mx.test. 0 IN MX 10 mx-down.two-mx.test.');
    expect(verbose.stdout).toContain('connect mx-down.two-mx.test [127.0.6.1]:25 connection refused');
    expect(verbose.stdout).toContain('C: RCPT TO:<ghost@two-mx.test>');
    expect(verbose.stderr).toMatch(/^# 1 addresses, 1 domains, .* SMTP connections/m);
  }, 30_000);

  test('--level dns and --level syntax stop early and contact no SMTP server', async () => {
    const before = receivers[0].connections().total;
    const dnsLevel = await verify(['--level', 'dns', 'alice@two-mx.test', 'x@null-mx.test']);
    expect(dnsLevel.stdout).toMatch(/^unknown +alice@two-mx\.test {2}mail-host-found: mail host: mx-down\.two-mx\.test, mx-up\.two-mx\.test$/m);
    expect(dnsLevel.stdout).toMatch(/^undeliverable x@null-mx\.test {2}null-mx: /m);
    expect(dnsLevel.code).toBe(1);
    const syntaxLevel = await verify(['--level', 'syntax', 'a@b.test', 'user@bücher.test']);
    expect(syntaxLevel.code).toBe(0);
    expect(syntaxLevel.stdout).toContain('user@xn--bcher-kva.test');
    expect(receivers[0].connections().total).toBe(before);
  }, 30_000);

  test('when no mail host answers at all, the likely cause is named once: outbound SMTP blocked here', async () => {
    const { code, stdout, stderr } = await verify(['x@dead.test', 'y@[127.0.6.8]']);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^unknown +x@dead\.test {2}smtp-unreachable: no mail host answered on port 25 \(mx\.dead\.test 127\.0\.6\.7: connection refused\)/m);
    expect(stderr).toContain('none of the 2 SMTP connection attempts got an answer on port 25; outbound SMTP to port 25 is probably blocked from this machine');
  }, 30_000);

  test('STARTTLS when offered: mailbox serve (a catch-all) on a domain literal', async () => {
    await startServe({ host: '127.0.6.9', args: ['--listen', '127.0.6.9:25'] });
    const { stdout } = await verify(['--json', 'alice@[127.0.6.9]']);
    const [alice] = parseLines(stdout);
    expect(`${alice.verdict} ${alice.reason}`).toBe('risky catch-all');
    expect(alice.smtp!.session).toContain('C: STARTTLS');
    expect(alice.smtp!.server).toMatchObject({ address: '127.0.6.9', tls: true });
  }, 30_000);

  test('usage errors exit 64 with one line', async () => {
    const bad = await verify(['--level', 'deep', 'a@b.test']);
    expect(bad.code).toBe(64);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('--level deep');
    const none = await runCommand([MAILBOX_BIN, 'verify'], { stdin: '' });
    expect(none.code).toBe(64);
    const missing = await verify(['--file', '/nonexistent/list.txt']);
    expect(missing.code).toBe(66);
    expect(missing.stderr).not.toContain('    at ');
  }, 30_000);

  test('a batch of 1,000 addresses over 10 domains: input order, at most --per-domain connections per domain', async () => {
    const inputs: string[] = [];
    for (let k = 0; k < BATCH_DOMAINS * BATCH_PER_DOMAIN; k++) inputs.push(`u${Math.floor(k / BATCH_DOMAINS)}@b${k % BATCH_DOMAINS}.test`);
    const batch = receivers.slice(4);
    const before = batch.map((r) => r.connections().total);
    const { code, stdout } = await verify(['--json', '--per-domain', '2', '--rate', '0', '--file', '-'], `${inputs.join('\n')}\n`);
    expect(code).toBe(1);
    const results = parseLines(stdout);
    expect(results.map((r) => r.input)).toEqual(inputs);
    for (const r of results) {
      const user = Number(/^u(\d+)@/.exec(r.input)![1]);
      expect({ input: r.input, verdict: r.verdict }).toEqual({ input: r.input, verdict: user < BATCH_USERS ? 'deliverable' : 'undeliverable' });
    }
    // Never more than --per-domain at once; and reuse: each connection takes up to 100 probes, so
    // 100 addresses need 2 (3 or 4 if one connection ran ahead of the other and was recycled).
    batch.forEach((receiver, i) => {
      const { total, maxOpen } = receiver.connections();
      expect({ host: receiver.host, withinCap: maxOpen >= 1 && maxOpen <= 2, fewConnections: total - before[i] <= 4 })
        .toEqual({ host: receiver.host, withinCap: true, fewConnections: true });
    });
  }, 120_000);
});
