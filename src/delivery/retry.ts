/**
 * @module What an attempt makes of a recipient: delivered, deferred until when, or bounced; and
 * the retry schedule (--retry-after doubling to --retry-max, until --queue-lifetime).
 * Rule: pure; the time is given.
 */
import { clientReplies } from '../core/client-replies.ts';
import type { Reply } from '../core/reply.ts';
import type { DeliveryState } from '../spool/delivery-state.ts';

export interface RetrySchedule {
  readonly retryAfterMs: number;
  readonly retryMaxMs: number;
  readonly lifetimeMs: number;
}

/**
 * The wait before attempt `attempts + 1`: retryAfter, doubled per attempt since, at most retryMax.
 * RFC 5321 §4.5.4.1 suggests 30 minutes; a first retry after 5 minutes gets past greylisting
 * (which typically asks for 1-5 minutes) without waiting half an hour.
 */
export function retryDelayMs(schedule: RetrySchedule, attempts: number): number {
  const doublings = Math.max(0, Math.min(attempts - 1, 30));
  return Math.min(schedule.retryMaxMs, schedule.retryAfterMs * 2 ** doublings);
}

/** A deferral keeps the mark of a delay warning already sent, so a sender hears of it once. */
function deferred(before: DeliveryState, next: Extract<DeliveryState, { kind: 'deferred' }>): DeliveryState {
  return before.kind === 'deferred' && before.warned ? { ...next, warned: true } : next;
}

/** Whether a state is one an attempt acts on (the queue hands out pending and deferred ones). */
function attemptsOf(state: DeliveryState): number {
  return state.kind === 'deferred' ? state.attempts : 0;
}

/**
 * A recipient's new state after a server's verdict: 2xx delivered, 5xx bounced, anything else
 * deferred, or bounced with 4.4.7 once the message is older than the queue lifetime.
 */
export function afterAttempt(state: DeliveryState, verdict: { readonly reply: Reply; readonly accepted: boolean }, arrivedMs: number, nowMs: number, schedule: RetrySchedule): DeliveryState {
  if (verdict.accepted) return { kind: 'delivered', atMs: nowMs, reply: verdict.reply };
  if (verdict.reply.code >= 500) return { kind: 'bounced', atMs: nowMs, reply: verdict.reply };
  const attempts = attemptsOf(state) + 1;
  const next = nowMs + retryDelayMs(schedule, attempts);
  if (next - arrivedMs > schedule.lifetimeMs) return { kind: 'bounced', atMs: nowMs, reply: clientReplies.expired(verdict.reply) };
  return deferred(state, { kind: 'deferred', attempts, nextAttemptMs: next, lastReply: verdict.reply });
}

/**
 * A recipient whose destination is cooling off: deferred to the end of the cool-off without a
 * connection, its count of attempts unchanged (none was made), or expired.
 */
export function afterCoolOff(state: DeliveryState, lastReply: Reply, untilMs: number, arrivedMs: number, nowMs: number, schedule: RetrySchedule): DeliveryState {
  if (untilMs - arrivedMs > schedule.lifetimeMs) return { kind: 'bounced', atMs: nowMs, reply: clientReplies.expired(lastReply) };
  return deferred(state, { kind: 'deferred', attempts: attemptsOf(state), nextAttemptMs: untilMs, lastReply });
}
