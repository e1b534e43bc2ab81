/**
 * The relay across crashes and outages, end to end:
 * - SIGKILL during delivery under load, three times, then a restart on the same spool: every
 *   acknowledged message reaches the sink, and the duplicates are within the README's promise
 *   (at most once more per recipient in flight at a crash).
 * - Backup MX (RFC 5321 §5.1): primary and backup are both `mailbox serve` on port 25 of their own
 *   127.x.y.z; the backup is `--relay-domain`. The primary stops under load, the backup accepts and
 *   queues; the primary comes back and everything arrives exactly once.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runPython, startServe, waitForLog, type ServeHandle, type TempDir } from './harness.ts';
import { startBackground, type Background } from '../helpers/background.ts';
import { smtpSinkUnavailableReason, startSmtpSink } from '../helpers/postfix.ts';
import { startDnsmasq, verifyPeersUnavailableReason, type DnsmasqHandle } from '../helpers/verify-peers.ts';

const unavailable = verifyPeersUnavailableReason() ?? smtpSinkUnavailableReason();
cleanupServesAfterAll();

const NET = `127.${2 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
const PRIMARY = `${NET}.1`;
const BACKUP = `${NET}.2`;

/** The README's promise: at most once more per recipient in flight; in flight ≤ cap × 8 per crash. */
const IN_FLIGHT_CAP = 10 * 8;

let tmp: TempDir;
let dns: DnsmasqHandle;

beforeAll(async () => {
  if (unavailable) return;
  tmp = await makeTempDir('mailbox-relay-recovery-');
  dns = await startDnsmasq([
    'mx-host=bk.test,mx1.bk.test,10', `host-record=mx1.bk.test,${PRIMARY}`,
    'mx-host=bk.test,mx2.bk.test,20', `host-record=mx2.bk.test,${BACKUP}`,
  ]);
}, 30_000);

afterAll(async () => {
  if (unavailable) return;
  await dns?.stop();
  await tmp?.remove();
});

/** Sends `count` messages in one smtplib session, each with its own Message-ID; returns those acknowledged. */
async function sendMany(port: number, prefix: string, count: number, to: string): Promise<string[]> {
  const r = await runPython(
    `import smtplib, sys, json
done = []
try:
    with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
        for i in range(int(sys.argv[3])):
            mid = '%s-%d@relay.test' % (sys.argv[2], i)
            s.sendmail('load@relay.test', [sys.argv[4]], ('Message-ID: <%s>\\r\\nSubject: load %d\\r\\n\\r\\n' % (mid, i) + 'x' * 900 + '\\r\\n').encode())
            done.append(mid)
except Exception:
    pass
print(json.dumps(done))`,
    [String(port), prefix, String(count), to],
  );
  return JSON.parse(r.stdout);
}

/** Message-IDs in smtp-sink's dumps, with how many times each arrived. */
async function arrivals(dir: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const name of await readdir(dir)) {
    // smtp-sink removes the dump of a transaction that did not end (a SIGKILL mid-DATA).
    const text = await readFile(join(dir, name), 'latin1').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    for (const m of text.matchAll(/^Message-ID: <([^>]+)>/gim)) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  return counts;
}

describe.skipIf(unavailable !== undefined)('relay recovery', () => {
  test('SIGKILL during delivery, three times: no acknowledged message lost, duplicates within the promise', async () => {
    const dumps = join(tmp.path, 'sink');
    // -w 1: the sink waits a second before each DATA reply, so deliveries are in flight when the kills come.
    const sink = await startSmtpSink({ dumpDir: dumps, extraArgs: ['-w', '1'] });
    const dataDir = join(tmp.path, 'kill');
    await mkdir(dataDir);
    const args = ['--relay', `smtp://127.0.0.1:${sink.port}`, '--relay-timeout', '5s', '--retry-after', '1s', '--retry-max', '1s', '--relay-cool-off', '1s', '--log', 'json', '--http', 'off'];
    try {
      let serve: ServeHandle = await startServe({ dataDir, args });
      const acked = await sendMany(serve.port, 'kill', 200, 'someone@example.org');
      expect(acked.length).toBe(200);
      for (let kill = 0; kill < 3; kill++) {
        await Bun.sleep(1500);
        await serve.kill9();
        serve = await startServe({ dataDir, args });
      }
      const deadline = Date.now() + 60_000;
      let got = await arrivals(dumps);
      while (acked.some((id) => !got.has(id)) && Date.now() < deadline) {
        await Bun.sleep(200);
        got = await arrivals(dumps);
      }
      expect(acked.filter((id) => !got.has(id))).toEqual([]);
      const duplicates = [...got.values()].reduce((n, c) => n + c - 1, 0);
      console.log(`relay recovery: ${acked.length} acknowledged, all delivered, ${duplicates} duplicates after 3 SIGKILLs`);
      expect(duplicates).toBeLessThanOrEqual(3 * IN_FLIGHT_CAP);
      await serve.stop();
    } finally {
      await sink.stop();
    }
  }, 120_000);

  test('backup MX: the primary stops under load, the backup queues, the primary returns, each message arrives once', async () => {
    const primaryDir = join(tmp.path, 'primary');
    const startPrimary = (): Background =>
      startBackground([MAILBOX_BIN, 'serve', '--listen', `${PRIMARY}:25`, '--data', primaryDir, '--domain', 'bk.test', '--hostname', 'mx1.bk.test', '--pop3', 'off', '--imap', 'off', '--http', 'off', '--log', 'json']);
    const waitListening = async (p: Background) => {
      const deadline = Date.now() + 15_000;
      while (!p.output().includes('"event":"listening"')) {
        if (p.proc.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start: ${p.output()}`);
        await Bun.sleep(20);
      }
    };
    const common = ['--dns', dns.server, '--relay-timeout', '2s', '--retry-after', '1s', '--retry-max', '1s', '--relay-cool-off', '1s', '--log', 'json', '--http', 'off'];
    let primary = startPrimary();
    const first = primary;
    const backup = startBackground([MAILBOX_BIN, 'serve', '--listen', `${BACKUP}:25`, '--data', join(tmp.path, 'backup'), '--hostname', 'mx2.bk.test', '--relay-domain', 'bk.test', '--pop3', 'off', '--imap', 'off', ...common]);
    let sender: ServeHandle | null = null;
    try {
      await Promise.all([waitListening(primary), waitListening(backup)]);
      sender = await startServe({ args: ['--relay', 'mx', ...common] });
      // The primary stops while mail flows to it; what is sent after the stop can only go through
      // the backup (the relay can deliver all of a first batch before a stop takes effect).
      const loading = sendMany(sender.port, 'bk', 20, 'user@bk.test');
      await waitForLog(sender, '"event":"delivered"');
      await primary.stop();
      const acked = [...(await loading), ...(await sendMany(sender.port, 'bk-later', 40, 'user@bk.test'))];
      expect(acked.length).toBe(60);
      await waitForLog(sender, new RegExp(`"event":"delivered"[^\\n]*"relay":"mx2\\.bk\\.test`), 30_000);
      const firstCount = first.output().split('\n').filter((l) => l.includes('"event":"accepted"')).length;
      await Bun.sleep(500);
      primary = startPrimary();
      await waitListening(primary);
      const deadline = Date.now() + 60_000;
      const acceptedNow = () => primary.output().split('\n').filter((l) => l.includes('"event":"accepted"')).length;
      while (firstCount + acceptedNow() < 60 && Date.now() < deadline) await Bun.sleep(100);
      await Bun.sleep(1500);
      // Each message once: before the stop, or through the backup after the restart.
      expect(firstCount + acceptedNow()).toBe(60);
      expect(backup.output()).toContain('"event":"delivered"');
      expect(backup.output()).toContain(`mx1.bk.test[${PRIMARY}]:25`);
    } finally {
      await sender?.cleanup();
      await Promise.all([primary.stop(), backup.stop()]);
    }
  }, 120_000);
});
