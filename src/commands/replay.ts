/**
 * @module `mailbox replay`: spool segments, message files, mbox files and Maildirs → concurrent
 * client sessions (src/replay/runner.ts) → a line per transaction, a summary, an exit code.
 * Rule: no protocol logic here; flags become ReplayOptions, the sources are planned before any
 * connection is made, and main.ts turns a thrown error into one line and a sysexits code.
 */
import type { CAC } from 'cac';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import {
  addConnectionOptions,
  parseConnectionFlags,
  parseServerFlag,
  readClientAuth,
  readTlsSettings,
  DEFAULT_SERVER,
  type ConnectionFlags,
  type ConnectionIo,
  type ServerAddress,
} from '../cli/connection-options.ts';
import { EXIT, UsageError } from '../cli/exit-codes.ts';
import { formatProgressLine, ProgressLine } from '../cli/progress.ts';
import { colorsFor, paintError } from '../cli/render.ts';
import {
  formatProblemJson,
  formatProblemLine,
  formatResultJson,
  formatResultLine,
  formatSummary,
  formatSummaryJson,
  type SummaryInfo,
} from '../cli/replay-render.ts';
import { formatPeer } from '../transport/tcp-client.ts';
import { parseEnvelopeRules, type EnvelopeRules } from '../replay/envelope-rules.ts';
import { FailedSpool } from '../replay/failed-spool.ts';
import { countResult, emptyTotals, parseExpectedCode, type ExpectedCode } from '../replay/outcome.ts';
import { createIdGenerator } from '../ids.ts';
import { runReplay } from '../replay/runner.ts';
import { planSources, readSources } from '../replay/sources.ts';
import { TranscriptLog } from '../replay/transcript-log.ts';
import { list, single } from '../cli/flags.ts';

export interface ReplayDeps {
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly stdin: ConnectionIo['stdin'];
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean };
  readonly stderr: { write(text: string): unknown; readonly isTTY?: boolean };
  readonly env: Record<string, string | undefined>;
  readonly hostname: () => string;
  readonly newId: () => string;
  readonly readFile: (path: string) => Promise<Uint8Array>;
}

export interface ReplayOptions extends ConnectionFlags {
  readonly paths: readonly string[];
  readonly dataDir: string | null;
  readonly ids: readonly string[];
  readonly server: ServerAddress;
  readonly chunking: boolean;
  readonly rules: EnvelopeRules;
  readonly concurrency: number;
  readonly ratePerSecond: number | null;
  readonly verbose: boolean;
  readonly transcriptFile: string | null;
  readonly json: boolean;
  readonly expect: ExpectedCode | null;
  readonly failedOut: string | null;
}

/** The real world: process streams, the clock, the host name, files. */
export function systemDeps(env: Record<string, string | undefined>, now: () => number): ReplayDeps {
  return {
    env,
    now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    hostname,
    newId: createIdGenerator(now),
    readFile: async (path) => new Uint8Array(await readFile(path)),
  };
}

const RATE_UNITS: Record<string, number> = { s: 1, sec: 1, m: 60, min: 60, h: 3600 };


/** "200", "200/s", "6000/m", "50/h" → transactions per second. */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:\/(s|sec|m|min|h))?$/.exec(text.trim());
  const rate = m ? Number(m[1]) / RATE_UNITS[m[2] ?? 's'] : NaN;
  if (!(rate > 0)) throw new UsageError(`--rate ${text}: expected a number of transactions per second, e.g. 200 or 200/s (also /m, /h)`);
  return rate;
}

/** Turns cac's parsed flags into ReplayOptions; every mistake is a UsageError. */
export function parseReplayFlags(paths: readonly string[], flags: Record<string, unknown>, env: Record<string, string | undefined> = {}): ReplayOptions {
  const connection = parseConnectionFlags(flags);
  const concurrencyText = single(flags.concurrency, '--concurrency');
  const concurrency = concurrencyText === null ? 1 : Number(concurrencyText);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) throw new UsageError(`--concurrency ${concurrencyText}: expected a whole number from 1 to 10000`);
  const rateText = single(flags.rate, '--rate');
  const expectText = single(flags.expect, '--expect');
  const expect = expectText === null ? null : parseExpectedCode(expectText);
  if (expectText !== null && expect === null) throw new UsageError(`--expect ${expectText}: expected a reply code such as 250, or 2xx`);
  const ids = list(flags.id)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  return {
    paths,
    dataDir: single(flags.data, '--data'),
    ids,
    server: parseServerFlag(single(flags.server, '--server'), connection.tls, env),
    ...connection,
    chunking: flags.chunking !== false,
    rules: parseEnvelopeRules(flags),
    concurrency,
    ratePerSecond: rateText === null ? null : parseRate(rateText),
    verbose: flags.verbose === true,
    transcriptFile: single(flags.transcript, '--transcript'),
    json: flags.json === true,
    expect,
    failedOut: single(flags.failedOut, '--failed-out'),
  };
}

export function register(cli: CAC, deps: ReplayDeps): void {
  const command = cli
    .command('replay [...paths]', 'Send recorded mail again: spool segments, .eml files, mbox files or Maildirs, to any server')
    .option('--data <dir>', 'Replay from this spool (data directory); with --id only those messages')
    .option('--id <id>', 'A message id in the spool of --data; repeat or comma-separate', { type: [String] })
    .option('--server <url>', `smtp://, smtp+starttls://, smtps://HOST[:PORT] or HOST:PORT (default $MAILBOX_SERVER or ${DEFAULT_SERVER})`);
  addConnectionOptions(command)
    .option('--no-chunking', 'Use DATA even when the server offers CHUNKING (BDAT)')
    .option('--from <address>', 'Send every message from this sender instead of the recorded one ("<>": the null sender)')
    .option('--to <address>', 'Send every message to these recipients instead of the recorded ones; repeat or comma-separate', { type: [String] })
    .option('--rewrite-domain <map>', 'OLD=NEW: change the domain of recorded senders and recipients; repeat for several', { type: [String] })
    .option('--filter <rule>', 'to=PATTERN, from=PATTERN, id=PATTERN, since=DATE, until=DATE (* and ? match; to= keeps only matching recipients); repeat: same key OR, different keys AND', { type: [String] })
    .option('-c, --concurrency <n>', 'Connections at once (default 1: in order)')
    .option('--rate <n>', 'At most N transactions per second in all (N, N/s, N/m, N/h)')
    .option('--expect <code>', 'Exit 1 unless every reply (RCPT and end of data) has this code: 250, 2xx, 550…')
    .option('--failed-out <file>', 'Write the transactions that did not reach every recipient to FILE (new), a spool file to replay later')
    .option('-v, --verbose', 'One line per transaction with the server\'s final reply')
    .option('--transcript <file>', 'Write the whole SMTP dialogue of every connection to FILE (secrets shown as <redacted>)')
    .option('--json', 'One JSON object per line: each transaction, each damaged input, then the summary')
    .example('mailbox replay ~/.local/share/mailbox/segments/00000001.smtp --server 127.0.0.1:2525')
    .example('mailbox replay --data /var/spool/mailbox --id 0mwyc6evs0034yh8 --server smtp://staging.example.net --to qa@example.net')
    .example('mailbox replay archive.mbox --server 127.0.0.1:2525 -c 10 --expect 250 --failed-out retry.smtp')
    .action(async (paths: string[], flags: Record<string, unknown>): Promise<number> => runReplayCommand(parseReplayFlags(paths, flags, deps.env), deps));
}

/** Plans, connects, replays, reports; returns the exit code. */
export async function runReplayCommand(options: ReplayOptions, deps: ReplayDeps): Promise<number> {
  const plan = planSources(options.paths, options.dataDir, options.ids);
  const io: ConnectionIo = { readFile: deps.readFile, stdin: deps.stdin, stderr: deps.stderr };
  const tlsSettings = await readTlsSettings(options, io);
  const auth = await readClientAuth(options.auth, { tls: options.tls, server: options.server }, io);
  const peer = formatPeer(options.server.host, options.server.port);
  const paint = colorsFor(deps.stdout, deps.env);
  const errPaint = colorsFor(deps.stderr, deps.env);
  const failedOut = options.failedOut === null ? null : FailedSpool.create(options.failedOut, options.ehloName ?? deps.hostname(), deps.newId, deps.now);
  const transcript = options.transcriptFile === null ? null : TranscriptLog.create(options.transcriptFile);

  const totals = emptyTotals();
  const progress = options.json ? null : new ProgressLine(deps.stderr, deps.env, deps.now);
  let doneBytes = 0;
  let startedMs = deps.now();
  const errors = () => totals.partial + totals.temp + totals.perm + totals.problems + totals.mismatched;
  // With --id the count is known; otherwise the share of input bytes read stands for the share done.
  const fraction = () => (options.ids.length > 0 ? (totals.transactions + totals.problems) / options.ids.length : plan.totalBytes > 0 ? doneBytes / plan.totalBytes : 0);
  const draw = (force = false) =>
    progress?.update(() => formatProgressLine(errPaint, { done: totals.transactions, fraction: fraction(), elapsedMs: deps.now() - startedMs, errors: errors() }, 'msg'), force);
  const ticker = progress === null ? null : setInterval(() => draw(true), 250);
  ticker?.unref?.();

  try {
    startedMs = deps.now();
    await runReplay(
      readSources(plan),
      {
        server: options.server,
        ehloName: options.ehloName ?? deps.hostname(),
        timeoutMs: options.timeoutMs,
        tlsSettings,
        auth,
        chunking: options.chunking,
        concurrency: options.concurrency,
        ratePerSecond: options.ratePerSecond,
        expect: options.expect,
        rules: options.rules,
      },
      {
        onResult: (result) => {
          countResult(totals, result);
          doneBytes += result.item.sourceBytes;
          failedOut?.add(result);
          if (options.json) deps.stdout.write(`${formatResultJson(result)}\n`);
          else if (options.verbose || result.verdict !== 'sent' || result.mismatches.length > 0) {
            progress?.clear();
            deps.stdout.write(`${formatResultLine(paint, result)}\n`);
          }
          draw();
        },
        onProblem: (problem) => {
          totals.problems++;
          doneBytes += problem.bytes;
          if (options.json) deps.stdout.write(`${formatProblemJson(problem)}\n`);
          else {
            progress?.clear();
            deps.stderr.write(`${paintError(errPaint, formatProblemLine(problem))}\n`);
          }
        },
        onFiltered: (item) => {
          totals.filtered++;
          doneBytes += item.sourceBytes;
        },
        onConnect: transcript === null ? undefined : (connection) => transcript.note(connection, `connecting to ${peer}`),
        onTranscript: transcript === null ? undefined : (connection, entry) => transcript.entry(connection, entry),
      },
      { now: deps.now, sleep: deps.sleep },
    );
  } finally {
    if (ticker !== null) clearInterval(ticker);
    progress?.clear();
    transcript?.close();
    failedOut?.close();
  }

  const info: SummaryInfo = {
    peer,
    elapsedMs: deps.now() - startedMs,
    totals,
    expect: options.expect?.text ?? null,
    failedOut: failedOut === null ? null : { path: failedOut.path, records: failedOut.records },
  };
  if (options.json) deps.stdout.write(`${formatSummaryJson(info)}\n`);
  else for (const line of formatSummary(paint, info)) deps.stdout.write(`${line}\n`);

  const failed = options.expect !== null ? totals.mismatched : totals.partial + totals.temp + totals.perm;
  if (failed > 0) return EXIT.notAll;
  return totals.problems > 0 ? EXIT.dataErr : EXIT.ok;
}
