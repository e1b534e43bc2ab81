/**
 * @module How `mailbox queue` prints: a mailq-like listing (one block per message: id, age, size,
 * sender, next attempt; one line per recipient with its state and last reply), the local mail,
 * one message, and what an action did. --json prints the answers as they are.
 */
import type { ActionSummary, LocalEntry, QueueEntry, RecipientView } from '../queue/queue-admin.ts';
import type { Paint } from './render.ts';

/** "45s", "12m", "3h", "2d": the coarsest unit that is at least 1. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

function paintState(paint: Paint, state: RecipientView['state']): string {
  if (state === 'delivered') return paint.green(state);
  if (state === 'bounced') return paint.red(state);
  if (state === 'deferred' || state === 'held') return paint.yellow(state);
  return state;
}

function recipientLine(paint: Paint, r: RecipientView, nowMs: number): string {
  let line = `  ${r.address}  ${paintState(paint, r.state)}`;
  if (r.attempts !== undefined) line += ` (${r.attempts} attempt${r.attempts === 1 ? '' : 's'})`;
  if (r.state === 'deferred' && r.nextAttemptMs !== undefined) {
    line += r.nextAttemptMs <= nowMs ? ', due now' : `, next in ${formatAge(r.nextAttemptMs - nowMs)}`;
  }
  if (r.reply !== undefined) line += `\n    ${paint.dim(r.reply)}`;
  return line;
}

/** `mailbox queue list`: one block per message, then a total. */
export function formatQueueList(paint: Paint, entries: readonly QueueEntry[], nowMs: number): string {
  if (entries.length === 0) return 'The queue is empty.\n';
  const blocks = entries.map((e) => {
    const next = e.nextAttemptMs === null ? '' : e.nextAttemptMs <= nowMs ? '  next: now' : `  next: ${iso(e.nextAttemptMs)} (in ${formatAge(e.nextAttemptMs - nowMs)})`;
    const head = `${paint.bold(e.id)}  ${formatAge(nowMs - e.arrivalMs)} old  ${e.size} bytes  from <${e.sender === '<>' ? '' : e.sender}>${next}`;
    return [head, ...e.recipients.filter((r) => r.state !== 'local').map((r) => recipientLine(paint, r, nowMs))].join('\n');
  });
  const recipients = entries.reduce((n, e) => n + e.recipients.filter((r) => r.state === 'pending' || r.state === 'deferred' || r.state === 'held').length, 0);
  return `${blocks.join('\n\n')}\n\n${entries.length} message${entries.length === 1 ? '' : 's'}, ${recipients} recipient${recipients === 1 ? '' : 's'} queued\n`;
}

/** `mailbox queue list --local`: one line per message. */
export function formatLocalList(paint: Paint, entries: readonly LocalEntry[], nowMs: number): string {
  if (entries.length === 0) return 'No mail is kept locally.\n';
  const lines = entries.map((e) => `${paint.bold(e.id)}  ${formatAge(nowMs - e.arrivalMs)} old  from <${e.sender === '<>' ? '' : e.sender}>  to ${e.recipients.join(', ')}  ${e.subject === '' ? paint.dim('(no subject)') : e.subject}`);
  return `${lines.join('\n')}\n`;
}

/** `mailbox queue show ID`: the message's block, then its header. */
export function formatShow(paint: Paint, entry: QueueEntry, message: Uint8Array, nowMs: number): string {
  const end = Buffer.from(message).indexOf('\r\n\r\n');
  const header = Buffer.from(message.subarray(0, end < 0 ? message.length : end + 2)).toString('utf8');
  const lines = [
    `${paint.bold(entry.id)}  arrived ${iso(entry.arrivalMs)} (${formatAge(nowMs - entry.arrivalMs)} ago)  ${entry.size} bytes`,
    `from <${entry.sender === '<>' ? '' : entry.sender}>`,
    ...entry.recipients.map((r) => recipientLine(paint, r, nowMs)),
    '',
    header.trimEnd(),
  ];
  return `${lines.join('\n')}\n`;
}

const PAST: Record<ActionSummary['action'], string> = {
  retry: 'due now',
  hold: 'held',
  release: 'released',
  delete: 'deleted',
  bounce: 'bounced',
};

/** What an action did: one line per message, and a line for ids that were not found. */
export function formatActionSummary(summary: ActionSummary): { stdout: string; missing: readonly string[] } {
  const lines: string[] = [];
  for (const r of summary.results) {
    if (r.outcome === 'done') lines.push(`${r.id}: ${r.recipients} recipient${r.recipients === 1 ? '' : 's'} ${PAST[summary.action]}`);
    else if (r.outcome === 'unchanged') lines.push(`${r.id}: nothing to do (no recipient is ${summary.action === 'release' ? 'held' : summary.action === 'retry' ? 'waiting for a retry' : 'queued'})`);
  }
  const done = summary.results.filter((r) => r.outcome === 'done').length;
  if (summary.results.length === 0) lines.push('no message matched');
  else lines.push(`${done} message${done === 1 ? '' : 's'} ${PAST[summary.action]}`);
  return { stdout: `${lines.join('\n')}\n`, missing: summary.results.filter((r) => r.outcome === 'not-found').map((r) => r.id) };
}
