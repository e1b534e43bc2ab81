/**
 * @module `mailbox replay` from options to exit code: plan the sources, settle TLS and AUTH, run
 * the concurrent client sessions (runner.ts), print a line per transaction and the summary.
 * Rule: the world (files, standard input, streams, the clock) comes in through ReplayDeps.
 */
import { ClientFailure } from '../../core/errors.ts';
import { explainFailure, readClientAuth, readTlsSettings, tlsSettingsFor, type ConnectionIo } from '../../cli/connection-options.ts';
import { EXIT } from '../../exit-status.ts';
import { formatProgressLine, ProgressLine } from '../../cli/progress.ts';
import { colorsFor, paintError } from '../../cli/render.ts';
import {
  formatProblemJson,
  formatProblemLine,
  formatResultJson,
  formatResultLine,
  formatSummary,
  formatSummaryJson,
  type SummaryInfo,
} from '../../cli/replay-render.ts';
import { formatPeer } from '../../transport/tcp-client.ts';
import { FailedSpool } from '../../replay/failed-spool.ts';
import type { ReplayOptions } from './options.ts';
import { countResult, emptyTotals } from '../../replay/outcome.ts';
import { runReplay } from '../../replay/runner.ts';
import { planSources, readSources } from '../../replay/sources.ts';
import { TranscriptLog } from '../../replay/transcript-log.ts';

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
        tlsSettings: tlsSettingsFor(options.server, tlsSettings),
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
    ).catch((error: unknown) => {
      // Only the first connection's failure comes back here: worded with the flags to change.
      throw error instanceof ClientFailure ? explainFailure(error, options.server.port, options.server.tls) : error;
    });
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
