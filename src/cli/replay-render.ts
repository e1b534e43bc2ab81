/**
 * @module How `mailbox replay` shows its results: one line per transaction (every one with -v,
 * else those that did not fully succeed or differ from --expect), one line per damaged stretch
 * of input, a summary; or one JSON object per line for --json.
 * Rule: colours come from render.ts, the one file that picks styles.
 */
import { formatMailbox, formatPath } from '../core/address.ts';
import { describeReply, type Reply } from '../core/reply.ts';
import type { ReplayResult, ReplayTotals } from '../replay/outcome.ts';
import { formatOrigin, type ReplayProblem } from '../replay/sources.ts';
import { paintKey, paintReplayVerdict, type Paint } from './render.ts';

const VERDICT_WORDS = { sent: 'sent', partial: 'partial', temp: 'temp-fail', perm: 'perm-fail' } as const;
const VERDICT_WIDTH = 'perm-fail'.length;

function recipientsText(result: ReplayResult): string {
  const all = result.recipients.map((r) => formatPath(r.recipient.mailbox));
  return all.length <= 3 ? all.join(',') : `${all.slice(0, 2).join(',')},… (${all.length})`;
}

/**
 * `sent      spool/00000001.smtp@29 id=0mwy… <a@x> → <b@y>: 250 2.0.0 OK queued as 1f`
 * A partly refused transaction names each refused recipient and its reply; a difference from
 * --expect is quoted at the end.
 */
export function formatResultLine(paint: Paint, result: ReplayResult): string {
  const verdict = paintReplayVerdict(paint, result.verdict, VERDICT_WORDS[result.verdict].padEnd(VERDICT_WIDTH));
  const id = result.item.id ?? result.item.messageId;
  const where = `${formatOrigin(result.item)}${id === null ? '' : ` id=${id}`}`;
  let what: string;
  if (result.failure !== null) {
    const f = result.failure;
    what = f.reply !== undefined ? `${describeReply(f.reply)} (${f.message} at ${f.stage})` : `${f.message} (at ${f.stage})`;
  } else {
    what = describeReply(result.reply as Reply);
    const refused = result.recipients.filter((r) => !r.accepted);
    for (const r of refused) what += `; refused ${formatPath(r.recipient.mailbox)}: ${r.reply === null ? 'no reply' : describeReply(r.reply)}`;
  }
  const line = `${verdict} ${paintKey(paint, where)} ${formatPath(result.sender)} → ${recipientsText(result)}: ${what}`;
  return result.mismatches.length === 0 ? line : `${line}\n${result.mismatches.map((m) => `  ${paint.red('differs from --expect:')} ${m}`).join('\n')}`;
}

/** `mailbox replay: spool/00000002.smtp at byte 1234 (2,048 bytes): checksum mismatch (…); skipped` */
export function formatProblemLine(problem: ReplayProblem): string {
  const where = problem.offset === null ? problem.file : `${problem.file} at byte ${problem.offset}`;
  const size = problem.bytes > 0 ? ` (${problem.bytes} bytes)` : '';
  return `${where}${size}: ${problem.reason}; skipped`;
}

export interface SummaryInfo {
  readonly peer: string;
  readonly elapsedMs: number;
  readonly totals: ReplayTotals;
  readonly expect: string | null;
  readonly failedOut: { readonly path: string; readonly records: number } | null;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** The closing lines: counts, rate, and what else the user must know. */
export function formatSummary(paint: Paint, info: SummaryInfo): string[] {
  const t = info.totals;
  const seconds = info.elapsedMs / 1000;
  const rate = seconds > 0 ? t.transactions / seconds : 0;
  const counts = [
    paintReplayVerdict(paint, 'sent', `${t.sent.toLocaleString('en-US')} sent`),
    ...(t.partial > 0 ? [paintReplayVerdict(paint, 'partial', `${t.partial.toLocaleString('en-US')} partly refused`)] : []),
    paintReplayVerdict(paint, t.temp > 0 ? 'temp' : 'sent', `${t.temp.toLocaleString('en-US')} temporarily failed`),
    paintReplayVerdict(paint, t.perm > 0 ? 'perm' : 'sent', `${t.perm.toLocaleString('en-US')} permanently failed`),
  ];
  const lines = [
    `replayed ${plural(t.transactions, 'transaction')} to ${info.peer} in ${seconds.toFixed(2)} s (${rate.toFixed(1)} msg/s): ${counts.join(', ')}`,
  ];
  const notes: string[] = [];
  if (t.filtered > 0) notes.push(`${plural(t.filtered, 'transaction')} left out by --filter`);
  if (t.problems > 0) notes.push(paint.yellow(`${plural(t.problems, 'damaged or unusable input', 'damaged or unusable inputs')} skipped`));
  if (info.expect !== null) {
    notes.push(t.mismatched === 0 ? `every reply matched --expect ${info.expect}` : paint.red(`${plural(t.mismatched, 'transaction')} differed from --expect ${info.expect}`));
  }
  if (info.failedOut !== null) notes.push(`${plural(info.failedOut.records, 'failed transaction')} written to ${info.failedOut.path}`);
  if (notes.length > 0) lines.push(notes.join('; '));
  return lines;
}

function replyJson(reply: Reply | null): { code: number; enhanced: string | null; text: string } | null {
  return reply === null ? null : { code: reply.code, enhanced: reply.enhanced ?? null, text: reply.lines.join('\n') };
}

/** One NDJSON line per transaction. */
export function formatResultJson(result: ReplayResult): string {
  const { item } = result;
  return JSON.stringify({
    type: 'transaction',
    file: item.file,
    offset: item.offset,
    id: item.id,
    messageId: item.messageId,
    verdict: result.verdict,
    connection: result.connection,
    sender: result.sender === null ? '' : formatMailbox(result.sender),
    recipients: result.recipients.map((r) => ({ address: formatMailbox(r.recipient.mailbox), accepted: r.accepted, reply: replyJson(r.reply) })),
    reply: replyJson(result.reply),
    failure: result.failure === null ? null : { kind: result.failure.kind, stage: result.failure.stage, message: result.failure.message },
    mismatches: result.mismatches,
  });
}

export function formatProblemJson(problem: ReplayProblem): string {
  return JSON.stringify({ type: 'damaged', ...problem });
}

export function formatSummaryJson(info: SummaryInfo): string {
  const t = info.totals;
  const seconds = info.elapsedMs / 1000;
  return JSON.stringify({
    type: 'summary',
    server: info.peer,
    transactions: t.transactions,
    sent: t.sent,
    partial: t.partial,
    tempFailed: t.temp,
    permFailed: t.perm,
    filtered: t.filtered,
    damaged: t.problems,
    expect: info.expect,
    mismatched: t.mismatched,
    seconds: Math.round(seconds * 1000) / 1000,
    messagesPerSecond: seconds > 0 ? Math.round((t.transactions / seconds) * 10) / 10 : 0,
    failedOut: info.failedOut,
  });
}
