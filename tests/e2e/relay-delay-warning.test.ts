/**
 * `mailbox serve --relay mx --delay-warning 2s` end to end: the MX host (a second `mailbox serve
 * --faults` on port 25 of a random 127.x.y.z, found through dnsmasq) answers 451 to every RCPT.
 * The local sender gets one "delayed" report (RFC 3464) for the recipient that gave no NOTIFY
 * and the one that asked for DELAY, none for NOTIFY=NEVER, however often the relay tries again;
 * Python's email package reads it as multipart/report.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import type { Background } from '../helpers/background.ts';
import { startDnsmasq, verifyPeersUnavailableReason, type DnsmasqHandle } from '../helpers/verify-peers.ts';
import { MAILBOX_BIN, SYSTEM_PYTHON, cleanupServesAfterAll, makeTempDir, runCommand, runPython, startServe, waitForLog, type ServeHandle, type TempDir } from './harness.ts';
import { randomLoopbackNet, startFaultyHost } from './relay-peers.ts';

const unavailable = verifyPeersUnavailableReason();
cleanupServesAfterAll();

const MX = `${randomLoopbackNet()}.1`;
let tmp: TempDir;
let dns: DnsmasqHandle | undefined;
let mx: Background | undefined;
let relay: ServeHandle;

beforeAll(async () => {
  if (unavailable) return;
  tmp = await makeTempDir('mailbox-delay-warning-');
  dns = await startDnsmasq(['mx-host=late.test,mx.late.test,10', `host-record=mx.late.test,${MX}`]);
  mx = await startFaultyHost(join(tmp.path, 'mx'), MX, 'late.test', [{ stage: 'rcpt', reply: '451 4.7.1 Greylisted, try again later' }]);
  relay = await startServe({
    args: [
      '--relay', 'mx', '--dns', dns.server, '--hostname', 'relay.test', '--log', 'json',
      '--relay-timeout', '2s', '--retry-after', '1s', '--retry-max', '1s', '--relay-cool-off', '1s', '--queue-lifetime', '1h',
      '--delay-warning', '2s', '--workers', '1',
    ],
  });
}, 60_000);

afterAll(async () => {
  if (unavailable) return;
  await relay?.cleanup();
  await mx?.stop();
  await dns?.stop();
  await tmp?.remove();
});

const deferrals = (to: string) => relay.logs().split('\n').filter((l) => l.includes('"event":"deferred"') && l.includes(`"to":"${to}"`)).length;

describe.skipIf(unavailable !== undefined)('serve --delay-warning', () => {
  test('one "delayed" report to the local sender, for NOTIFY absent or DELAY, none for NEVER', async () => {
    const sent = await runPython(
      `import smtplib, sys
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    s.ehlo('client.test')
    s.mail('alice@relay.test')
    for to, opts in (('plain@late.test', []), ('delay@late.test', ['NOTIFY=DELAY']), ('never@late.test', ['NOTIFY=NEVER'])):
        code, text = s.rcpt(to, opts)
        assert code == 250, (to, code, text)
    code, text = s.data(b'From: alice@relay.test\\r\\nTo: friends@late.test\\r\\nSubject: Slow\\r\\nMessage-ID: <slow@relay.test>\\r\\n\\r\\nHello.\\r\\n')
    assert code == 250, (code, text)`,
      [String(relay.port)],
    );
    expect(sent.stderr).toBe('');
    await waitForLog(relay, /"event":"report"[^\n]*"action":"delayed"/, 30_000);
    // The relay goes on trying, and says nothing more.
    const seen = deferrals('plain@late.test');
    const deadline = Date.now() + 20_000;
    while (deferrals('plain@late.test') < seen + 3 && Date.now() < deadline) await Bun.sleep(100);
    expect(deferrals('plain@late.test')).toBeGreaterThanOrEqual(seen + 3);
    expect(relay.logs().split('\n').filter((l) => l.includes('"event":"report"')).length).toBe(1);

    const listed = await runCommand([MAILBOX_BIN, 'queue', 'list', '--local', '--to', 'alice@relay.test', '--json', '--data', relay.dataDir]);
    expect(listed.stderr).toBe('');
    const reports = JSON.parse(listed.stdout) as { id: string; sender: string; subject: string }[];
    expect(reports.map((m) => [m.sender, m.subject])).toEqual([['<>', 'Delayed Mail (still being retried)']]);
    const raw = await runCommand([MAILBOX_BIN, 'queue', 'show', reports[0].id, '--raw', '--data', relay.dataDir]);
    expect(raw.code).toBe(0);
    const parsed = await runCommand([SYSTEM_PYTHON, join(import.meta.dir, '..', 'helpers', 'dsn-report.py')], { stdin: JSON.stringify([Buffer.from(raw.stdout).toString('base64')]) });
    expect(parsed.stderr).toBe('');
    const [report] = JSON.parse(parsed.stdout);
    expect([report.type, report.reportType, report.parts, report.defects]).toEqual(['multipart/report', 'delivery-status', ['text/plain', 'message/delivery-status', 'text/rfc822-headers'], []]);
    expect(report.perMessage['Reporting-MTA']).toBe('dns; relay.test');
    expect(report.recipients.map((r: Record<string, string>) => [r['Final-Recipient'], r.Action, r.Status, r['Remote-MTA'], r['Diagnostic-Code']])).toEqual([
      ['rfc822; plain@late.test', 'delayed', '4.7.1', `dns; mx.late.test[${MX}]:25`, 'smtp; 451 4.7.1 Greylisted, try again later'],
      ['rfc822; delay@late.test', 'delayed', '4.7.1', `dns; mx.late.test[${MX}]:25`, 'smtp; 451 4.7.1 Greylisted, try again later'],
    ]);
    // RFC 3464 §2.3.8: when the relay gives up, an hour (--queue-lifetime) after arrival.
    const until = Date.parse(report.recipients[0]['Will-Retry-Until']);
    const arrival = Date.parse(report.perMessage['Arrival-Date']);
    expect(until - arrival).toBe(3_600_000);
    expect(report.original.subject).toBe('Slow');
  }, 60_000);
});
