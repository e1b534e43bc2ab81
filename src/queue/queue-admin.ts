/**
 * @module What `mailbox queue` asks of the spool, answered the same way by a running serve (for a
 * request on its control socket) and by the command itself on a stopped serve's spool.
 * Rule 1: requests and answers are JSON values, so both paths give the same output.
 * Rule 2: every change goes through the DeliveryQueue's operator actions (durable journal
 *         records); a bounce's report is built here (delivery/bounce.ts) and committed with it.
 */
import type { ServeConfig } from '../config.ts';
import { relayEnabled } from '../delivery/relay-settings.ts';
import { clientReplies } from '../core/client-replies.ts';
import { createIdGenerator } from '../ids.ts';
import { normalizeDomain } from '../core/address.ts';
import { SmtpError } from '../core/errors.ts';
import { describeReply, type Reply } from '../core/reply.ts';
import { buildDeliveryReport, reportCommit } from '../delivery/bounce.ts';
import { EXIT, InputError } from '../exit-status.ts';
import type { CopyState } from '../spool/copy-state.ts';
import type { DeliveryState } from '../spool/delivery-state.ts';
import type { MailCursor } from '../spool/mail-store.ts';
import type { MessageInfo, OperatorResult, ReportMaker, Spool } from '../spool/spool.ts';
import type { DsnOptions } from '../core/outgoing.ts';
import { commitLocalMessage, isLocalAddress, type Destinations } from '../serve/local-submission.ts';
import type { ControlResponse } from './control-socket.ts';

/** What the sendmail link hands in: JSON-safe, as it travels over the control socket. */
export interface LocalSubmission {
  /** "local@domain", or "" for the null sender. */
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The message, base64. */
  readonly message: string;
  /** The login name of the user who handed it in (the Received line names it). */
  readonly user: string;
  readonly dsn?: DsnOptions;
}

export interface QueueAdminContext extends Destinations {
  readonly spool: Spool;
  /** --bounce-size-limit. */
  readonly bounceSizeLimitBytes: number;
  readonly now: () => number;
  readonly newId: () => string;
}

/** The context of serve's `config` on `spool`. */
export function queueAdminContext(config: ServeConfig, spool: Spool, now: () => number): QueueAdminContext {
  return {
    spool,
    hostname: config.hostname,
    domains: config.domains,
    relays: relayEnabled(config.relay),
    maxMessageBytes: config.limits.maxMessageBytes,
    bounceSizeLimitBytes: config.bounceSizeLimitBytes,
    now,
    newId: createIdGenerator(now),
  };
}

/** One recipient's state as `mailbox queue list` shows it. */
export interface RecipientView {
  readonly address: string;
  /** The transport state of a relayed copy, 'local' for one held locally, 'deleted' once removed. */
  readonly state: DeliveryState['kind'] | 'local' | 'deleted';
  readonly attempts?: number;
  readonly nextAttemptMs?: number;
  /** The last reply (deferred, held) or the final one (delivered, bounced). */
  readonly reply?: string;
  readonly atMs?: number;
}

export interface QueueEntry {
  readonly id: string;
  readonly arrivalMs: number;
  /** "local@domain", "<>" for the null sender. */
  readonly sender: string;
  readonly size: number;
  readonly recipients: readonly RecipientView[];
  /** The earliest next attempt of a deferred recipient; null when none is deferred. */
  readonly nextAttemptMs: number | null;
  /** The newest last reply among its recipients, or null. */
  readonly lastReply: string | null;
}

export interface LocalEntry {
  readonly id: string;
  readonly arrivalMs: number;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly subject: string;
  readonly size: number;
}

export type QueueAction = 'retry' | 'hold' | 'release' | 'delete' | 'bounce';
export const QUEUE_ACTIONS: readonly QueueAction[] = ['retry', 'hold', 'release', 'delete', 'bounce'];

export type QueueRequest =
  | { readonly op: 'list' }
  | { readonly op: 'list-local'; readonly to?: string }
  | { readonly op: 'show'; readonly id: string; readonly raw?: boolean }
  | { readonly op: QueueAction; readonly ids?: readonly string[]; readonly domain?: string; readonly all?: boolean }
  | { readonly op: 'submit'; readonly submission: LocalSubmission };

export interface ActionSummary {
  readonly action: QueueAction;
  readonly results: readonly OperatorResult[];
}

function view(state: CopyState, address: string): RecipientView {
  switch (state.kind) {
    case 'deferred':
      return { address, state: state.kind, attempts: state.attempts, nextAttemptMs: state.nextAttemptMs, reply: describeReply(state.lastReply) };
    case 'held':
      return { address, state: state.kind, attempts: state.attempts, atMs: state.atMs, ...(state.lastReply ? { reply: describeReply(state.lastReply) } : {}) };
    case 'delivered':
      return { address, state: state.kind, atMs: state.atMs, ...(state.reply ? { reply: describeReply(state.reply) } : {}) };
    case 'bounced':
      return { address, state: state.kind, atMs: state.atMs, reply: describeReply(state.reply) };
    case 'removed':
      return { address, state: 'deleted', atMs: state.atMs };
    default:
      return { address, state: state.kind };
  }
}

/** A message of the queue as `list` and `show` give it. */
export function queueEntry(m: MessageInfo): QueueEntry {
  let next: number | null = null;
  let last: { atMs: number; reply: Reply } | null = null;
  for (const r of m.recipients) {
    const s = r.state;
    if (s.kind === 'deferred') {
      if (next === null || s.nextAttemptMs < next) next = s.nextAttemptMs;
      // A deferred state has no time of its own; its next attempt orders the newest.
      if (last === null || s.nextAttemptMs > last.atMs) last = { atMs: s.nextAttemptMs, reply: s.lastReply };
    } else if (s.kind === 'held' && s.lastReply && (last === null || s.atMs > last.atMs)) {
      last = { atMs: s.atMs, reply: s.lastReply };
    }
  }
  return {
    id: m.id,
    arrivalMs: m.timeMs,
    sender: m.sender,
    size: m.size,
    recipients: m.recipients.map((r) => view(r.state, r.address)),
    nextAttemptMs: next,
    lastReply: last === null ? null : describeReply(last.reply),
  };
}

const fail = (error: string, exit: number): ControlResponse => ({ ok: false, error, exit });

/** The ids an action applies to: the ids given, the queued messages of --domain, or --all. */
function select(ctx: QueueAdminContext, req: { ids?: readonly string[]; domain?: string; all?: boolean }): string[] | string {
  const given = [req.ids !== undefined && req.ids.length > 0, req.domain !== undefined, req.all === true].filter(Boolean).length;
  if (given !== 1) return 'name the messages: IDs, --domain DOMAIN or --all (one of them)';
  if (req.ids && req.ids.length > 0) return [...req.ids];
  if (req.all) return ctx.spool.queuedIds();
  const queued = ctx.spool.queued();
  const domain = normalizeDomain(req.domain!);
  return queued.filter((m) => m.recipients.some((r) => r.state.kind !== 'local' && normalizeDomain(r.mailbox.domain) === domain)).map((m) => m.id);
}

/** The reports of an operator's bounce: to each sender, kept locally or queued as its address says. */
function reportMaker(ctx: QueueAdminContext): ReportMaker {
  return (message, bounced, bytes) => {
    const report = buildDeliveryReport({
      id: message.id,
      envelope: message.envelope,
      arrivalMs: message.timeMs,
      nowMs: ctx.now(),
      reportingMta: ctx.hostname,
      recipients: bounced.map((b) => ({ rcptIndex: b.rcptIndex, action: 'failed', reply: b.lastReply ? clientReplies.operatorBounced(describeReply(b.lastReply)) : b.reply })),
      message: bytes,
      returnLimitBytes: ctx.bounceSizeLimitBytes,
    });
    if (report === null) return null;
    return reportCommit(report, { id: ctx.newId(), timeMs: ctx.now(), local: isLocalAddress(ctx, report.to) });
  };
}

async function act(ctx: QueueAdminContext, action: QueueAction, ids: readonly string[]): Promise<OperatorResult[]> {
  const q = ctx.spool.deliveryQueue;
  const now = ctx.now();
  switch (action) {
    case 'retry':
      return q.retryNow(ids, now);
    case 'hold':
      return q.hold(ids, now);
    case 'release':
      return q.releaseHeld(ids, now);
    case 'delete':
      return q.deleteQueued(ids, now);
    case 'bounce':
      return q.bounceQueued(ids, now, clientReplies.operatorBounced(null), reportMaker(ctx));
  }
}

/** Answers one request; never throws for a request a user could get wrong. */
export async function handleQueueRequest(ctx: QueueAdminContext, request: Record<string, unknown>): Promise<ControlResponse> {
  const req = request as QueueRequest;
  switch (req.op) {
    case 'list':
      return { ok: true, result: ctx.spool.queued().map(queueEntry) };
    case 'list-local': {
      const out: LocalEntry[] = [];
      const mailbox = typeof req.to === 'string' ? req.to : null;
      for (let cursor: MailCursor | null = null, first = true; first || cursor !== null; first = false) {
        const page = ctx.spool.mailStore.list(mailbox, cursor, 500);
        for (const m of page.messages) out.push({ id: m.id, arrivalMs: m.timeMs, sender: m.sender, recipients: m.recipients, subject: m.headers.subject, size: m.size });
        cursor = page.next;
      }
      return { ok: true, result: out };
    }
    case 'show': {
      const info = typeof req.id === 'string' ? ctx.spool.get(req.id) : undefined;
      if (info === undefined) return fail(`no message ${String(req.id)} in the spool`, EXIT.noInput);
      const bytes = await ctx.spool.readMessage(info.id);
      return { ok: true, result: { entry: queueEntry(info), message: Buffer.from(bytes).toString('base64') } };
    }
    case 'retry':
    case 'hold':
    case 'release':
    case 'delete':
    case 'bounce': {
      const ids = select(ctx, req);
      if (typeof ids === 'string') return fail(ids, EXIT.usage);
      const summary: ActionSummary = { action: req.op, results: await act(ctx, req.op, ids) };
      return { ok: true, result: summary };
    }
    case 'submit': {
      try {
        const sub = req.submission;
        const message = { sender: sub.sender === '' ? null : sub.sender, recipients: sub.recipients, bytes: Buffer.from(sub.message, 'base64'), origin: { kind: 'login' as const, user: sub.user }, dsn: sub.dsn };
        return { ok: true, result: { id: (await commitLocalMessage(ctx.spool, ctx, message, ctx)).id } };
      } catch (error) {
        if (error instanceof InputError) return fail(error.message, error.code);
        // The spool's own refusals (disk full: 452 4.3.1) are temporary.
        if (error instanceof SmtpError) return fail(describeReply(error.reply), EXIT.tempFail);
        throw error;
      }
    }
    default:
      return fail(`unknown request ${JSON.stringify((request as { op?: unknown }).op)}`, EXIT.usage);
  }
}
