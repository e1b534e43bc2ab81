/**
 * `mailbox replay` as a load generator, beside Postfix's smtp-source in the same run: N messages
 * of 1 KB into one smtp-sink at 10 and 50 connections, sessions reused (smtp-source -d -s C -m N
 * -l 1024; replay -c C). The spool replayed is written first in the spool's own format (the
 * messages shaped as smtp-source's: four header fields, then 1,024 bytes of 80-octet lines).
 * Runs alternate between the two tools, cell by cell; the table shows median messages/s over the
 * repetitions (wall clock, process start to exit, for both) and replay's ratio to smtp-source.
 *
 * usage: npm run bench:replay -- [--messages N] [--connections 10,50] [--reps N] [--quick]
 * Needs dist/mailbox (npm run build) and Postfix's smtp-source and smtp-sink (scripts/install-peers).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatRecord, formatSegmentHeader } from '../src/spool/segment-format.ts';
import { smtpSinkUnavailableReason, startSmtpSink } from '../tests/helpers/postfix.ts';
import { mailbox } from '../tests/helpers/mailbox.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const SMTP_SOURCE = '/usr/sbin/smtp-source';
/** The spool's own segment size (spool.ts): a new file every 64 MB. */
const SEGMENT_BYTES = 64 * 1024 * 1024;
const PAYLOAD_BYTES = 1024;

const { values } = parseArgs({
  options: {
    messages: { type: 'string' },
    connections: { type: 'string', default: '10,50' },
    reps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: bash scripts/bun scripts/bench-replay.ts [--messages N] [--connections 10,50] [--reps N] [--quick]');
  process.exit(0);
}
const messages = Number(values.messages ?? (values.quick ? 10_000 : 100_000));
const reps = Number(values.reps ?? (values.quick ? 1 : 3));
const cells = values.connections.split(',').map(Number);

/** A message shaped as smtp-source's: From, To, Date, Message-Id, then 1,024 bytes of "NXXX…" lines. */
function message(n: number): Buffer {
  const head = `From: <foo@bench.test>\r\nTo: <bar@bench.test>\r\nDate: Fri, 27 Nov 2026 02:12:17 +0000\r\nMessage-Id: <${n}.bench@bench.test>\r\n\r\n`;
  let body = '';
  for (let line = 1; body.length < PAYLOAD_BYTES; line++) {
    const text = `${line}${'X'.repeat(78)}`.slice(0, Math.min(78, PAYLOAD_BYTES - body.length - 2));
    body += `${text}\r\n`;
  }
  return Buffer.from(head + body, 'latin1');
}

/** Writes N records into 64 MB segment files under DIR/segments, as serve would have. */
async function writeSpool(dir: string, count: number): Promise<number> {
  const segments = join(dir, 'segments');
  mkdirSync(segments, { recursive: true });
  const envelope = {
    sender: mailbox('foo@bench.test'),
    mailParams: [],
    recipients: [{ mailbox: mailbox('bar@bench.test'), local: false, params: [] }],
    utf8: false,
    body: '7BIT' as const,
    declaredSize: null,
    authUser: null,
  };
  let seq = 1;
  let parts: Uint8Array[] = [formatSegmentHeader('bench.test')];
  let size = 0;
  let total = 0;
  const flush = async () => {
    await Bun.write(join(segments, `${String(seq++).padStart(8, '0')}.smtp`), Buffer.concat(parts));
    parts = [formatSegmentHeader('bench.test')];
    size = 0;
  };
  for (let i = 0; i < count; i++) {
    const record = formatRecord({ id: `b${i}`, timeMs: 1_764_209_537_000 + i, envelope, stuffed: message(i), local: [false] });
    if (size + record.length > SEGMENT_BYTES) await flush();
    parts.push(record);
    size += record.length;
    total += record.length;
  }
  await flush();
  return total;
}

async function timed(argv: string[]): Promise<{ seconds: number; code: number; output: string }> {
  const started = performance.now();
  const proc = Bun.spawn(argv, { stdout: 'pipe', stderr: 'pipe' });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  return { seconds: (performance.now() - started) / 1000, code, output: `${out}${err}` };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const unavailable = smtpSinkUnavailableReason() ?? (existsSync(SMTP_SOURCE) ? undefined : `${SMTP_SOURCE} is missing (run scripts/install-peers)`);
  if (unavailable !== undefined) throw new Error(unavailable);
  if (!existsSync(MAILBOX_BIN)) throw new Error(`${MAILBOX_BIN} is missing: npm run build first`);

  const dir = await mkdtemp(join(tmpdir(), 'mailbox-bench-replay-'));
  const sink = await startSmtpSink({});
  try {
    const t0 = performance.now();
    const bytes = await writeSpool(dir, messages);
    console.log(`# spool: ${fmt(messages)} messages, ${(bytes / 1e6).toFixed(1)} MB in ${dir}/segments (${((performance.now() - t0) / 1000).toFixed(1)} s to write)`);
    console.log(`# sink: smtp-sink on 127.0.0.1:${sink.port}; ${cpus().length} CPUs; ${reps} repetitions per cell, tools alternating`);
    const rates = new Map<string, number[]>();
    const add = (key: string, rate: number) => rates.set(key, [...(rates.get(key) ?? []), rate]);
    for (let rep = 1; rep <= reps; rep++) {
      for (const c of cells) {
        const runs = [
          ['smtp-source', [SMTP_SOURCE, '-d', '-s', String(c), '-m', String(messages), '-l', String(PAYLOAD_BYTES), `127.0.0.1:${sink.port}`]],
          ['mailbox replay', [MAILBOX_BIN, 'replay', dir, '--server', `127.0.0.1:${sink.port}`, '--tls', 'off', '-c', String(c)]],
        ] as const;
        // Alternate which tool goes first, so neither always meets a warmer sink.
        for (const [tool, argv] of rep % 2 === 1 ? runs : [...runs].reverse()) {
          const r = await timed([...argv]);
          if (r.code !== 0) throw new Error(`${tool} exited ${r.code}: ${r.output.slice(-500)}`);
          if (tool === 'mailbox replay' && !r.output.includes(`${messages.toLocaleString('en-US')} sent`)) throw new Error(`replay did not send everything: ${r.output.slice(-500)}`);
          const rate = messages / r.seconds;
          add(`${tool}|${c}`, rate);
          console.log(`# rep ${rep} ${String(c).padStart(2)} connections  ${tool.padEnd(14)} ${r.seconds.toFixed(2)} s  ${fmt(rate)} msg/s`);
        }
      }
    }
    console.log('');
    console.log(`| connections | smtp-source msg/s | mailbox replay msg/s | replay / smtp-source | per-pair ratios |`);
    console.log(`|---:|---:|---:|---:|---|`);
    for (const c of cells) {
      const sources = rates.get(`smtp-source|${c}`)!;
      const replays = rates.get(`mailbox replay|${c}`)!;
      // Each repetition runs the two tools back to back: their ratio is less exposed to load
      // that comes and goes on a shared machine than the two medians are.
      const pairs = replays.map((r, i) => r / sources[i]);
      const source = median(sources);
      const replay = median(replays);
      console.log(`| ${c} | ${fmt(source)} | ${fmt(replay)} | ${(replay / source).toFixed(2)}× | ${pairs.map((p) => `${p.toFixed(2)}×`).join(' ')} |`);
    }
    console.log(`\n${fmt(messages)} messages of ${PAYLOAD_BYTES} bytes of payload each, sessions reused; medians of ${reps}.`);
  } finally {
    await sink.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
