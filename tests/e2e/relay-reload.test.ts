/**
 * SIGHUP while `mailbox serve --config FILE` relays: the config file's relay settings are read
 * again and the next delivery follows them. Before: `relay mx`, no TLS policy, no faults. After:
 * `relay smtp://B:25?tls=insecure` (a smarthost), `route special.test=mx`, `route secure.test=mx`
 * with `tls-policy secure.test=verify`, and a `faults` file. Both mail hosts are `mailbox serve` on port 25 of a random 127.x.y.z; dnsmasq
 * gives the MX records. A session kept open from before the reload is not used after it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Background } from '../helpers/background.ts';
import { startDnsmasq, verifyPeersUnavailableReason, type DnsmasqHandle } from '../helpers/verify-peers.ts';
import { cleanupServesAfterAll, makeTempDir, runPython, startServe, waitForLog, type ServeHandle, type TempDir } from './harness.ts';
import { acceptedLines, randomLoopbackNet, startFaultyHost } from './relay-peers.ts';

const unavailable = verifyPeersUnavailableReason();
cleanupServesAfterAll();

const NET = randomLoopbackNet();
const MX = `${NET}.1`;
const SMARTHOST = `${NET}.2`;
let tmp: TempDir;
let dns: DnsmasqHandle | undefined;
let mx: Background | undefined;
let smarthost: Background | undefined;
let relay: ServeHandle;
let config: string;
let common: string[];

beforeAll(async () => {
  if (unavailable) return;
  tmp = await makeTempDir('mailbox-relay-reload-');
  dns = await startDnsmasq([
    'mx-host=far.test,mx.far.test,10', `host-record=mx.far.test,${MX}`,
    'mx-host=special.test,mx.far.test,10',
    'mx-host=secure.test,mx.far.test,10',
  ]);
  // Catch-all hosts: each takes mail for any domain, with STARTTLS on a self-signed certificate.
  [mx, smarthost] = await Promise.all([
    startFaultyHost(join(tmp.path, 'mx'), MX, null, []),
    startFaultyHost(join(tmp.path, 'smarthost'), SMARTHOST, null, []),
  ]);
  config = join(tmp.path, 'mailbox.conf');
  common = ['hostname relay.test', 'log json', `dns ${dns.server}`, 'relay-timeout 2s', 'retry-after 1s', 'retry-max 1s', 'relay-cool-off 1s', 'workers 1'];
  await writeFile(config, [...common, 'relay mx'].join('\n'));
  relay = await startServe({ args: ['--config', config] });
}, 60_000);

afterAll(async () => {
  if (unavailable) return;
  await relay?.cleanup();
  await Promise.all([mx?.stop(), smarthost?.stop(), dns?.stop()]);
  await tmp?.remove();
});

/** One message; what RCPT refused, by recipient. */
async function send(recipients: string[], subject: string): Promise<Record<string, [number, string]>> {
  const r = await runPython(
    `import smtplib, sys, json
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    try:
        refused = s.sendmail('alice@relay.test', json.loads(sys.argv[2]), ('Subject: %s\\r\\n\\r\\nHello.\\r\\n' % sys.argv[3]).encode())
    except smtplib.SMTPRecipientsRefused as e:
        refused = e.recipients
    print(json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))`,
    [String(relay.port), JSON.stringify(recipients), subject],
  );
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

function line(event: string, to: string): Record<string, unknown> | undefined {
  const found = relay.logs().split('\n').find((l) => l.includes(`"event":"${event}"`) && l.includes(`"to":"${to}"`));
  return found === undefined ? undefined : JSON.parse(found.slice(found.indexOf('{')));
}

async function waitForLine(event: string, to: string): Promise<Record<string, unknown>> {
  await waitForLog(relay, new RegExp(`"event":"${event}"[^\\n]*"to":"${to.replace(/[.+]/g, '\\$&')}"`), 20_000);
  return line(event, to)!;
}

/** The recipients a host logged as accepted, once there are `count` (its log can trail the relay's). */
async function receivedBy(host: Background, count: number): Promise<string[]> {
  const seen = () => acceptedLines(host).flatMap((l) => l.to as string[]).sort();
  const deadline = Date.now() + 10_000;
  while (seen().length < count && Date.now() < deadline) await Bun.sleep(50);
  return seen();
}

describe.skipIf(unavailable !== undefined)('serve: SIGHUP re-reads the relay settings', () => {
  test('after SIGHUP the next delivery follows the new --relay, --route, --tls-policy and faults', async () => {
    expect(await send(['a@far.test', 'x@secure.test', 'blocked@far.test'], 'Before')).toEqual({});
    expect((await waitForLine('delivered', 'a@far.test')).relay).toBe(`mx.far.test[${MX}]:25`);
    // Opportunistic STARTTLS: the host's self-signed certificate does not stop delivery.
    expect((await waitForLine('delivered', 'x@secure.test')).tls).toStartWith('TLS');
    await waitForLine('delivered', 'blocked@far.test');

    const faults = join(tmp.path, 'relay-faults.json');
    await writeFile(faults, JSON.stringify({ rules: [{ stage: 'rcpt', address: 'blocked@far.test', reply: '550 5.7.1 Blocked by the new rules' }] }));
    await writeFile(config, [...common, `relay smtp://${SMARTHOST}:25?tls=insecure`, 'route special.test=mx', 'route secure.test=mx', 'tls-policy secure.test=verify', `faults ${faults}`].join('\n'));
    relay.proc.kill('SIGHUP');
    await waitForLog(relay, /"event":"relay-reloaded"/);
    await waitForLog(relay, /"event":"faults-reloaded"/);

    const refused = await send(['b@far.test', 'c@special.test', 'y@secure.test', 'blocked@far.test'], 'After');
    expect(refused).toEqual({ 'blocked@far.test': [550, '5.7.1 Blocked by the new rules'] });
    // --relay: far.test goes to the smarthost now, not to its MX.
    expect((await waitForLine('delivered', 'b@far.test')).relay).toBe(`${SMARTHOST}[${SMARTHOST}]:25`);
    // --route: special.test still goes to its MX.
    expect((await waitForLine('delivered', 'c@special.test')).relay).toBe(`mx.far.test[${MX}]:25`);
    // --tls-policy verify: the self-signed certificate is refused, even with a session from before still warm.
    const refusedTls = await waitForLine('deferred', 'y@secure.test');
    expect(refusedTls.dsn).toBe('4.7.5');
    expect(String(refusedTls.reply)).toContain('certificate');
    expect(line('delivered', 'y@secure.test')).toBeUndefined();
    expect(await receivedBy(mx!, 4)).toEqual(['a@far.test', 'blocked@far.test', 'c@special.test', 'x@secure.test']);
    expect(await receivedBy(smarthost!, 1)).toEqual(['b@far.test']);
  }, 60_000);
});
