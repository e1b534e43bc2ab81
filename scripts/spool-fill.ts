/**
 * Fills a spool quickly through the spool writer (no SMTP), then measures how long `mailbox serve`
 * takes to start on it and its RSS once it greets.
 * Usage: npm run bench:startup -- --dir DIR [--messages 1000000] [--size 1024]
 *          [--in-flight 2000] [--no-fill] [--starts 3] [--bin dist/mailbox] [--index-wait SECONDS]
 *          [--ingest N] [--queries] [--no-jit]
 * Start-up is timed from spawn to the 220 greeting (wall clock, and the CPU time serve used, which
 * a busy machine distorts less), and reported with the spool-opened log line. With --index-wait,
 * each start then waits (up to SECONDS) for the mail index to catch up with the spool (its
 * index-ready or index-rebuilt line) and reports serve's RSS then, and the most it reached on the way.
 * With --queries (and --index-wait), serve also listens for HTTP, and once the index has caught up
 * the query set of the readers benchmark, in forms this spool's mail matches (every message is
 * from filler@client.example to box@mailbox.test with the same body and subject "message N"), is
 * asked once over the Mailpit API: list newest 50, a free-text word, to:, subject:"two words" and
 * a three-term AND. Each answer's time and messages_count are printed, then serve's RSS.
 * With --ingest N (and --index-wait), once the index has caught up Postfix's smtp-source sends N
 * more 1 KB messages over SMTP (10 sessions, reused); serve's RSS is printed once the index holds
 * them all, full text too, with the most it reached while they were sent and the most after, until
 * then (before the query set, if asked).
 * Each RSS line also gives serve's exact peak so far (VmHWM), which 100 ms samples can miss.
 * With --no-jit, serve runs with JavaScriptCore's JIT compilers off (BUN_JSC_useJIT=false): what
 * RSS serve's own data and work take, without the memory the JIT takes while it compiles the code
 * that a burst makes hot. Accepting is then about 2.5 times slower.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dotStuff } from '../src/core/data.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { Database } from 'bun:sqlite';
import { openSpool } from '../src/spool/spool.ts';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(name);
  return at < 0 ? fallback : args[at + 1];
};
const dir = option('--dir', '');
if (dir === '') {
  console.error('usage: spool-fill.ts --dir DIR [--messages N] [--size BYTES] [--in-flight N] [--no-fill] [--starts N] [--bin PATH] [--index-wait SECONDS] [--ingest N] [--queries] [--no-jit]');
  process.exit(2);
}
const messages = Number(option('--messages', '1000000'));
const size = Number(option('--size', '1024'));
const inFlight = Number(option('--in-flight', '2000'));
const starts = Number(option('--starts', '3'));
const bin = path.resolve(option('--bin', path.join(import.meta.dir, '../dist/mailbox')));
const indexWaitS = Number(option('--index-wait', '0'));
const queries = args.includes('--queries');
const ingest = Number(option('--ingest', '0'));
const noJit = args.includes('--no-jit');
/** The readers benchmark's query set (scripts/bench-readers-queries.ts) in forms this spool's mail matches. */
const QUERY_SET: readonly (readonly [string, string])[] = [
  ['list newest 50', '/api/v1/messages'],
  ['free-text word: fox', `/api/v1/search?query=fox`],
  ['to:box@mailbox.test', `/api/v1/search?query=${encodeURIComponent('to:box@mailbox.test')}`],
  ['subject:"message 12345"', `/api/v1/search?query=${encodeURIComponent('subject:"message 12345"')}`],
  ['from:filler subject:message lazy', `/api/v1/search?query=${encodeURIComponent('from:filler subject:message lazy')}`],
];

const quiet = { info() {}, warn() {}, error: (m: string, f?: unknown) => console.error(m, f) };
const envelope: Envelope = {
  sender: { local: 'filler', domain: 'client.example' },
  mailParams: [],
  recipients: [{ mailbox: { local: 'box', domain: 'mailbox.test' }, params: [], local: true }],
  utf8: false,
  body: '7BIT',
  declaredSize: null,
  authUser: null,
};
const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';

function message(n: number): Uint8Array {
  const head =
    `Received: from fill by mailbox\r\nFrom: Filler <filler@client.example>\r\nTo: box@mailbox.test\r\n` +
    `Subject: message ${n}\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\nMessage-ID: <${n}@fill.example>\r\n\r\n`;
  const text = head + line.repeat(Math.max(1, Math.ceil((size - head.length) / line.length)));
  return dotStuff(Buffer.from(text.slice(0, Math.max(size, head.length + 2))));
}

if (!args.includes('--no-fill')) {
  fs.mkdirSync(dir, { recursive: true });
  const spool = await openSpool({ dir, hostname: 'fill.example', now: Date.now, log: quiet });
  const t0 = performance.now();
  let next = spool.stats().messages;
  const end = next + messages;
  const worker = async () => {
    while (next < end) {
      const n = next++;
      await spool.commit({ id: `fill-${n}`, timeMs: 1_764_547_200_000 + n, envelope, stuffed: message(n) });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const { bytes, segments } = spool.stats();
  await spool.close();
  const s = (performance.now() - t0) / 1000;
  console.log(`filled ${messages.toLocaleString('en')} messages of ${size} B in ${s.toFixed(1)} s: ${segments} segments, ${(bytes / 2 ** 20).toFixed(0)} MiB`);
}

for (let i = 0; i < starts; i++) {
  const port = await findFreePort('127.0.0.1');
  const httpPort = queries ? await findFreePort('127.0.0.1') : 0;
  const t0 = performance.now();
  const proc = Bun.spawn([bin, 'serve', '--pop3', 'off', '--imap', 'off', '--http', queries ? `127.0.0.1:${httpPort}` : 'off', '--listen', `127.0.0.1:${port}`, '--data', dir, '--log', 'json'], {
    stdout: 'ignore',
    stderr: 'pipe',
    env: noJit ? { ...process.env, BUN_JSC_useJIT: 'false' } : process.env,
  });
  let log = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) log += decoder.decode(chunk, { stream: true });
  })();
  await waitForGreeting('127.0.0.1', port, { timeoutMs: 120_000, abort: () => (proc.exitCode === null ? undefined : `serve exited ${proc.exitCode}`) });
  const ms = performance.now() - t0;
  const rss = rssMiB(proc.pid);
  const startPeak = rssMiB(proc.pid, 'VmHWM');
  const cpuMs = cpuMsOf(proc.pid);
  let indexed = '';
  if (indexWaitS > 0) {
    let peak = rss;
    const until = performance.now() + indexWaitS * 1000;
    const caughtUp = () => log.split('\n').find((l) => /"event":"index-(ready|rebuilt)"/.test(l));
    while (caughtUp() === undefined && performance.now() < until && proc.exitCode === null) {
      await Bun.sleep(250);
      peak = Math.max(peak, rssMiB(proc.pid));
    }
    const line = caughtUp();
    indexed =
      proc.exitCode !== null
        ? `\n  serve exited (${proc.exitCode}) before the index caught up, RSS at most ${peak.toFixed(0)} MiB; its last lines:\n${log.trimEnd().split('\n').slice(-5).join('\n')}`
        : line === undefined
        ? `\n  the index had not caught up after ${indexWaitS} s: RSS ${rssMiB(proc.pid).toFixed(0)} MiB, at most ${peak.toFixed(0)} MiB`
        : `\n  index caught up after ${((performance.now() - t0) / 1000).toFixed(1)} s (${cpuMsOf(proc.pid)} ms CPU): RSS ${rssMiB(proc.pid).toFixed(0)} MiB, at most ${peak.toFixed(0)} MiB; ${line}`;
    if (ingest > 0 && line !== undefined && proc.exitCode === null) indexed += `\n  ${await ingestMore(proc.pid, port)}`;
    if (queries && line !== undefined && proc.exitCode === null) {
      let most = rssMiB(proc.pid);
      for (const [name, path] of QUERY_SET) {
        const started = performance.now();
        const answer = fetch(`http://127.0.0.1:${httpPort}${path}`).then(async (r) => ({ status: r.status, body: (await r.json()) as { messages_count?: number } }));
        let done = false;
        void answer.finally(() => (done = true));
        while (!done) {
          await Bun.sleep(20);
          most = Math.max(most, rssMiB(proc.pid));
        }
        const { status, body } = await answer;
        indexed += `\n  ${name}: ${status} in ${(performance.now() - started).toFixed(0)} ms, messages_count ${body.messages_count ?? 'n/a'}`;
      }
      indexed += `\n  after the query set: RSS ${rssMiB(proc.pid).toFixed(0)} MiB, at most ${most.toFixed(0)} MiB while it ran`;
    }
  }
  proc.kill('SIGTERM');
  await proc.exited;
  await reading;
  const opened = log.split('\n').find((l) => l.includes('spool-opened')) ?? '';
  console.log(`start ${i + 1}: greeting after ${ms.toFixed(0)} ms (${cpuMs} ms CPU), RSS ${rss.toFixed(0)} MiB (peak ${startPeak.toFixed(0)}); ${opened}${indexed}`);
}

/** Sends `ingest` more messages over SMTP and waits until the index holds them, full text too (its backlog empty). */
async function ingestMore(pid: number, port: number): Promise<string> {
  const db = () => new Database(path.join(dir, 'index.db'), { readonly: true });
  const count = (sql: string) => {
    const reader = db();
    try {
      return (reader.query(sql).get() as { n: number }).n;
    } finally {
      reader.close();
    }
  };
  const before = count('SELECT count(*) AS n FROM messages');
  // RSS every 100 ms: the most while smtp-source sends, then the most until the index holds it all
  // (serve indexes a burst after it while nobody reads: src/store/mail-index.ts Rule 6).
  let most = rssMiB(pid);
  const started = performance.now();
  const source = Bun.spawn(['/usr/sbin/smtp-source', '-s', '10', '-d', '-l', '1024', '-m', String(ingest), '-f', 'bench@client.example', '-t', 'box@mailbox.test', `127.0.0.1:${port}`], { stdout: 'ignore', stderr: 'pipe' });
  while (source.exitCode === null) {
    await Bun.sleep(100);
    most = Math.max(most, rssMiB(pid));
  }
  if (source.exitCode !== 0) return `smtp-source exited ${source.exitCode}: ${await new Response(source.stderr).text()}`;
  const sentMs = performance.now() - started;
  let after = rssMiB(pid);
  for (let tick = 1; ; tick++) {
    await Bun.sleep(100);
    after = Math.max(after, rssMiB(pid));
    if (tick % 5 !== 0) continue;
    if (count('SELECT count(*) AS n FROM messages') >= before + ingest && count('SELECT count(*) AS n FROM backlog') === 0) break;
    if (performance.now() - started > 600_000) return `the index did not take the ${ingest} messages in 10 minutes`;
  }
  return `${ingest.toLocaleString('en')} more messages by SMTP in ${(sentMs / 1000).toFixed(1)} s, indexed (full text too) after ${((performance.now() - started) / 1000).toFixed(1)} s: RSS ${rssMiB(pid).toFixed(0)} MiB; at most ${most.toFixed(0)} MiB while sent, ${after.toFixed(0)} MiB after; peak since start ${rssMiB(pid, 'VmHWM').toFixed(0)} MiB`;
}

/** serve's RSS (or its peak so far, VmHWM), or 0 once it has exited. */
function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0;
  }
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
}

/** utime + stime in clock ticks (100 per second on Linux): CPU spent, whatever else runs. */
function cpuMsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(stat[11]) + Number(stat[12])) * 10;
}
