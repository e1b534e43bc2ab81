/**
 * Readers benchmark, query part (run by scripts/bench-readers.ts after its ingest part, or alone):
 * `dist/mailbox serve --http` holding --messages stored messages (100,000 by default), asked over
 * HTTP, p50 and p90 of --reps requests each, the answer read whole:
 *   list newest 50          GET /api/v1/messages                           target p50 ≤ 5 ms
 *   one free-text word      GET /api/v1/search?query=<word>                target p50 ≤ 50 ms
 *   to:user@x.test          GET /api/v1/search?query=to:user7@x.test       target p50 ≤ 50 ms
 *   subject:"two words"     GET /api/v1/search?query=subject:"quarterly report"   ≤ 50 ms
 *   three-term AND          GET /api/v1/search?query=from:alice subject:report invoice   ≤ 50 ms
 *   wait after the 250      an open GET /api/mailbox/v1/wait?rcpt=… answers after the 250 of
 *                           the message it waits for (time from the 250 to the answer) ≤ 50 ms
 * Beside each p50, serve's CPU time per request (all its threads, from /proc), the steadier figure
 * on a shared machine, and the load average. MailDev (the npm devDependency) beside it, filled with --maildev-messages (10,000 by default:
 * it keeps every message in memory and takes minutes for more), over its /api/email/summary
 * (its search is one free-text string: the field and AND queries have no MailDev form).
 * The mail is generated from a seed, so every run stores the same: mailbox's spool is written
 * directly (the group-commit path SMTP uses, without the sockets), `mailbox reindex` builds the
 * index (the time is printed; serve would build it at start too, but at nice 10 and with its
 * final merge still running while the first queries come), and serve then opens it as current;
 * MailDev is filled over SMTP by `mailbox replay`.
 *
 * With --data DIR, mailbox's spool and index live in DIR and are kept: the first run fills and
 * indexes them, later runs (of this or another build, MAILBOX_BIN) reuse them as they are. Each
 * run's wait probes add --reps small messages to it, which none of the queries match.
 *
 * usage: npm run bench:readers -- --part queries [--messages N] [--maildev-messages N] [--reps N]
 *        bash scripts/bun scripts/bench-readers-queries.ts [same flags] [--data DIR]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatRecord, formatSegmentHeader } from '../src/spool/segment-format.ts';
import { openSpool } from '../src/spool/spool.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { dotStuff } from '../src/core/data.ts';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';
import { seededRandom } from '../tests/helpers/seeded-random.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const MAILDEV = join(ROOT, 'node_modules/maildev/dist/bin/maildev.js');

const WORDS = (
  'alpha amber anchor apple arrow autumn badge banner basket beacon bridge bronze cabin candle canyon carbon cedar ' +
  'chapter cinder circle cobalt copper coral cotton crystal delta desert dragon eagle ember engine falcon feather ' +
  'fern forest fossil garden garnet glacier granite harbor hazel helmet horizon island ivory jasmine jungle kernel ' +
  'ladder lantern lemon linen lotus marble meadow mirror monsoon nectar nickel oasis ocean olive onyx orbit orchid ' +
  'paddle pebble pepper pilot planet plaza prairie quartz quill raven ribbon river rocket saddle saffron salmon ' +
  'shadow signal silver sparrow spruce summit swallow temple thunder timber topaz tundra valley velvet violet ' +
  'walnut willow window winter yonder zephyr'
).split(' ');
const SENDERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
const SUBJECTS = ['weekly digest', 'quarterly report', 'invoice reminder', 'password reset', 'welcome aboard', 'meeting notes', 'report draft', 'shipping update'];
/** A word each message has with probability 1/200: the free-text query. */
const RARE = 'zircon';

export interface QueryBenchOptions {
  readonly messages: number;
  readonly maildevMessages: number;
  readonly reps: number;
  /** Where mailbox's spool and index are kept between runs (filled when absent); a temp dir when undefined. */
  readonly data?: string;
}

interface Row {
  readonly name: string;
  readonly target: number | null;
  readonly mailbox: number[];
  readonly maildev: number[] | null;
  /** serve's CPU time per request (all its threads, from /proc), or null where not measured. */
  readonly cpuMs: number | null;
}

/** Clock ticks per second in /proc/PID/stat (USER_HZ). */
const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK'], { stdout: 'pipe', stderr: 'ignore' }).stdout.toString().trim()) || 100;

/** CPU time (user + system, ms) a process has used so far; on a shared machine steadier than wall time. */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** A 1 KB-ish message to user(k % 1000)@x.test from one of SENDERS. */
function message(k: number, random: () => number): { from: string; to: string; bytes: Uint8Array } {
  const from = `${SENDERS[k % SENDERS.length]}@x.test`;
  const to = `user${k % 1000}@x.test`;
  const subject = `${SUBJECTS[Math.floor(random() * SUBJECTS.length)]} ${k}`;
  const words: string[] = [];
  while (words.join(' ').length < 900) words.push(WORDS[Math.floor(random() * WORDS.length)]);
  if (random() < 1 / 200) words.splice(Math.floor(random() * words.length), 0, RARE);
  if (random() < 0.3) words.push('invoice');
  const lines: string[] = [];
  for (let i = 0; i < words.length; i += 12) lines.push(words.slice(i, i + 12).join(' '));
  const text = `From: ${from}\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <bench-${k}@x.test>\r\nDate: Wed, 02 Dec 2026 00:00:00 +0000\r\n\r\n${lines.join('\r\n')}\r\n`;
  return { from, to, bytes: new TextEncoder().encode(text) };
}

function* transactions(count: number): Generator<{ id: string; timeMs: number; envelope: Envelope; stuffed: Uint8Array }> {
  const random = seededRandom(20261202);
  for (let k = 0; k < count; k++) {
    const m = message(k, random);
    const [fl, fd] = m.from.split('@');
    const [tl, td] = m.to.split('@');
    yield {
      id: `bench${k.toString(36).padStart(8, '0')}`,
      timeMs: 1_796_000_000_000 + k,
      envelope: { sender: { local: fl, domain: fd }, mailParams: [], recipients: [{ mailbox: { local: tl, domain: td }, local: true, params: [] }], utf8: false, body: '7BIT', declaredSize: null, authUser: null },
      stuffed: dotStuff(m.bytes),
    };
  }
}

/** One segment of `count` transactions, for `mailbox replay`. */
function writeSegment(path: string, count: number): void {
  const chunks: Uint8Array[] = [formatSegmentHeader('bench.test')];
  for (const t of transactions(count)) chunks.push(formatRecord({ ...t, local: [true] }));
  writeFileSync(path, Buffer.concat(chunks));
}

/** Commits `count` messages to a spool in `dir`, 512 to a group commit. */
async function fillSpool(dir: string, count: number): Promise<void> {
  const quiet = { info() {}, warn() {}, error() {} };
  const spool = await openSpool({ dir, hostname: 'bench.test', now: Date.now, log: quiet });
  try {
    let batch: Promise<void>[] = [];
    for (const t of transactions(count)) {
      batch.push(spool.commit(t));
      if (batch.length === 512) {
        await Promise.all(batch);
        batch = [];
      }
    }
    await Promise.all(batch);
  } finally {
    await spool.close();
  }
}

async function replay(segment: string, port: number): Promise<void> {
  const proc = Bun.spawn([MAILBOX_BIN, 'replay', segment, '--server', `127.0.0.1:${port}`, '-c', '10'], { stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`mailbox replay exited ${code}: ${err || out}`);
  console.log(`  ${out.trim().split('\n').at(-1)}`);
}

async function timed(url: string): Promise<number> {
  const started = performance.now();
  const r = await fetch(url);
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
  return performance.now() - started;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];
}

/** Sends one message over SMTP and resolves with the time its 250 arrived (performance.now()). */
async function sendOne(port: number, to: string): Promise<number> {
  const { promise, resolve, reject } = Promise.withResolvers<number>();
  let buffer = '';
  let replies = 0;
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(s, chunk) {
        buffer += chunk.toString();
        const complete = buffer.split('\r\n').filter((l) => /^\d{3} /.test(l)).length;
        if (complete > replies) {
          replies = complete;
          // Greeting, EHLO, MAIL, RCPT, DATA (354), then the 250 for the message.
          if (replies === 6) {
            resolve(performance.now());
            s.end('QUIT\r\n');
          }
        }
      },
      error: (_s, e) => reject(e),
      close: () => reject(new Error('closed before the 250')),
    },
  });
  socket.write(`EHLO bench.test\r\nMAIL FROM:<bench@x.test>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
  await Bun.sleep(5);
  socket.write(`Subject: wait probe\r\nFrom: bench@x.test\r\n\r\nprobe\r\n.\r\n`);
  return promise;
}

export async function runQueryBench(options: QueryBenchOptions): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-queries-'));
  const procs: ReturnType<typeof Bun.spawn>[] = [];
  const data = options.data === undefined ? join(dir, 'mailbox') : resolve(options.data);
  try {
    if (options.data !== undefined && existsSync(data)) {
      console.log(`queries: reusing mailbox's spool and index in ${data}`);
    } else {
      console.log(`queries: writing ${options.messages.toLocaleString('en-US')} messages to mailbox's spool`);
      const filled = performance.now();
      await fillSpool(data, options.messages);
      console.log(`  ${((performance.now() - filled) / 1000).toFixed(1)} s`);
      const reindex = Bun.spawn([MAILBOX_BIN, 'reindex', '--data', data], { stdout: 'pipe', stderr: 'pipe' });
      const [reindexOut, reindexErr, reindexCode] = await Promise.all([new Response(reindex.stdout).text(), new Response(reindex.stderr).text(), reindex.exited]);
      if (reindexCode !== 0) throw new Error(`mailbox reindex exited ${reindexCode}: ${(reindexErr || reindexOut).trim()}`);
      console.log(`  mailbox reindex: ${reindexOut.trim()}`);
    }
    const smtp = await findFreePort();
    const http = await findFreePort();
    const mailbox = Bun.spawn([MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${smtp}`, '--http', `127.0.0.1:${http}`, '--pop3', 'off', '--imap', 'off', '--data', data, '--log-file', join(dir, 'mailbox.log')], { stdout: 'ignore', stderr: 'ignore' });
    procs.push(mailbox);
    await waitForGreeting('127.0.0.1', smtp, { timeoutMs: 20_000 });
    const base = `http://127.0.0.1:${http}`;
    const started = performance.now();
    for (;;) {
      // HTTP starts after the SMTP listeners and the index: until then the connection is refused.
      const info = (await fetch(`${base}/api/v1/info`)
        .then((r) => r.json())
        .catch(() => ({ Messages: -1 }))) as { Messages: number };
      if (info.Messages >= options.messages) break;
      if (performance.now() - started > 900_000) throw new Error(`mailbox indexed ${info.Messages} of ${options.messages} in 15 minutes`);
      await Bun.sleep(200);
    }
    console.log(`  serve answered with all of them ${((performance.now() - started) / 1000).toFixed(1)} s after its start`);

    let maildevBase: string | null = null;
    if (options.maildevMessages > 0) {
      const mdSmtp = await findFreePort();
      const mdWeb = await findFreePort();
      const md = Bun.spawn(['node', MAILDEV, '--smtp', String(mdSmtp), '--ip', '127.0.0.1', '--web', String(mdWeb), '--web-ip', '127.0.0.1', '--mail-directory', join(dir, 'maildev'), '--silent'], { stdout: 'ignore', stderr: 'ignore' });
      procs.push(md);
      await waitForGreeting('127.0.0.1', mdSmtp, { timeoutMs: 30_000 });
      const mdSegment = join(dir, 'maildev.smtp');
      // Replayed over SMTP: MailDev's store is its own.
      writeSegment(mdSegment, options.maildevMessages);
      console.log(`queries: filling MailDev with ${options.maildevMessages.toLocaleString('en-US')} messages`);
      await replay(mdSegment, mdSmtp);
      maildevBase = `http://127.0.0.1:${mdWeb}`;
      for (;;) {
        const r = (await (await fetch(`${maildevBase}/api/email/summary?limit=1`)).json()) as { storeTotal: number };
        if (r.storeTotal >= options.maildevMessages) break;
        await Bun.sleep(200);
      }
    }

    const q = (query: string) => `${base}/api/v1/search?query=${encodeURIComponent(query)}`;
    const md = (search: string | null) => (maildevBase === null ? null : `${maildevBase}/api/email/summary?limit=50${search === null ? '' : `&search=${encodeURIComponent(search)}`}`);
    const cases: { name: string; target: number; mailbox: string; maildev: string | null }[] = [
      { name: 'list newest 50', target: 5, mailbox: `${base}/api/v1/messages`, maildev: md(null) },
      { name: `one free-text word (${RARE})`, target: 50, mailbox: q(RARE), maildev: md(RARE) },
      { name: 'to:user7@x.test', target: 50, mailbox: q('to:user7@x.test'), maildev: md('user7@x.test') },
      { name: 'subject:"quarterly report"', target: 50, mailbox: q('subject:"quarterly report"'), maildev: md('quarterly report') },
      { name: 'from:alice subject:report invoice', target: 50, mailbox: q('from:alice subject:report invoice'), maildev: null },
    ];
    const rows: Row[] = [];
    for (const c of cases) {
      const mailboxTimes: number[] = [];
      const maildevTimes: number[] = [];
      await timed(c.mailbox);
      if (c.maildev) await timed(c.maildev);
      const cpuBefore = cpuMsOf(mailbox.pid);
      for (let i = 0; i < options.reps; i++) {
        mailboxTimes.push(await timed(c.mailbox));
        if (c.maildev) maildevTimes.push(await timed(c.maildev));
      }
      const cpuMs = (cpuMsOf(mailbox.pid) - cpuBefore) / options.reps;
      rows.push({ name: c.name, target: c.target, mailbox: mailboxTimes, maildev: c.maildev ? maildevTimes : null, cpuMs });
    }

    // wait: a waiter is open for a fresh recipient; the time from the 250 to its answer.
    const waits: number[] = [];
    for (let i = 0; i < options.reps; i++) {
      const to = `probe${i}-${Date.now()}@x.test`;
      const cursor = ((await (await fetch(`${base}/api/mailbox/v1/cursor`)).json()) as { cursor: string }).cursor;
      const answered = fetch(`${base}/api/mailbox/v1/wait?after=${cursor}&rcpt=${encodeURIComponent(to)}&timeout=30`).then(async (r) => {
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`wait answered ${r.status}`);
        return performance.now();
      });
      await Bun.sleep(20);
      const at250 = await sendOne(smtp, to);
      waits.push((await answered) - at250);
    }
    rows.push({ name: 'wait: answer after the 250', target: 50, mailbox: waits, maildev: null, cpuMs: null });

    const ms = (v: number) => `${v.toFixed(1)}`;
    console.log(`\nqueries at ${options.messages.toLocaleString('en-US')} stored messages (MailDev: ${options.maildevMessages.toLocaleString('en-US')}), ms, p50 (p90) of ${options.reps}, over HTTP; load average ${loadavg()[0].toFixed(2)}`);
    console.log("serve CPU = serve's CPU time per request, all threads (on a loaded machine the wall time also counts waiting for a core)");
    console.log('| query | mailbox | target p50 | serve CPU | MailDev |');
    console.log('|---|---:|---:|---:|---:|');
    for (const r of rows) {
      const md = r.maildev === null ? 'n/a' : `${ms(percentile(r.maildev, 0.5))} (${ms(percentile(r.maildev, 0.9))})`;
      const p50 = percentile(r.mailbox, 0.5);
      const verdict = r.target === null ? '' : p50 <= r.target ? ` ≤ ${r.target}: met` : ` ≤ ${r.target}: NOT met`;
      console.log(`| ${r.name} | ${ms(p50)} (${ms(percentile(r.mailbox, 0.9))}) |${verdict} | ${r.cpuMs === null ? 'n/a' : ms(r.cpuMs)} | ${md} |`);
    }
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '100000' },
      'maildev-messages': { type: 'string', default: '10000' },
      reps: { type: 'string', default: '30' },
      data: { type: 'string' },
    },
  });
  runQueryBench({ messages: Number(values.messages), maildevMessages: Number(values['maildev-messages']), reps: Number(values.reps), data: values.data }).catch((error: unknown) => {
    console.error(`bench:readers queries: ${(error as Error).message}`);
    process.exit(1);
  });
}
