/**
 * @module Per-recipient delivery state and its records in the state journal.
 * Rule 1: state only changes by appending a record; the last record for a recipient wins, and
 *         a record without a recipient index applies to every recipient of the message.
 * Rule 2: a journal line is "<crc32 hex of the JSON> <JSON>\n"; one that fails its checksum or
 *         does not parse is never applied.
 * Rule 3: these are transport states, for recipients the relay owes a delivery. A recipient held
 *         in a local mailbox has none, and what readers, retention and operators do to copies
 *         (read, tags, removal) is journalled as mailbox-state.ts and login-state.ts records,
 *         framed the same way.
 * Rule 4: journals written before Rule 3 say "deleted" and "local" in delivery records: a
 *         "deleted" line reads as a removal, a "local" one (never written but for a recipient
 *         its record already holds locally) as nothing to apply.
 */
import type { Reply } from '../core/reply.ts';
import { loginRecordJson, parseLoginRecord, type LoginRecord } from './login-state.ts';
import { mailboxRecordJson, parseMailboxRecord, parseRemovalRecord, removalRecordJson, type MailboxRecord, type RemovalRecord } from './mailbox-state.ts';

/** A delivery is one recipient of one message (STYLE convention 2: message ≠ delivery). */
export type DeliveryState =
  | { readonly kind: 'pending' }
  | { readonly kind: 'delivered'; readonly atMs: number; readonly reply?: Reply }
  /** `warned`: the sender has been sent the one "delayed" report for it (--delay-warning). */
  | { readonly kind: 'deferred'; readonly attempts: number; readonly nextAttemptMs: number; readonly lastReply: Reply; readonly warned?: true }
  | { readonly kind: 'bounced'; readonly atMs: number; readonly reply: Reply }
  /**
   * Kept from relaying by an operator (`mailbox queue hold`) until released, with what a
   * release resumes from: the attempts so far and the last reply.
   */
  | { readonly kind: 'held'; readonly atMs: number; readonly attempts: number; readonly lastReply?: Reply; readonly warned?: true };

export type DeliveryStateKind = DeliveryState['kind'];

export const PENDING: DeliveryState = Object.freeze({ kind: 'pending' });

/** Pending, deferred or held: the relay still owes this delivery an attempt. */
export function isQueued(state: { readonly kind: string }): boolean {
  return state.kind === 'pending' || state.kind === 'deferred' || state.kind === 'held';
}

/** One journal record. `rcpt` null means every recipient of the message. */
export interface StateRecord {
  readonly id: string;
  readonly rcpt: number | null;
  readonly state: DeliveryState;
}

/** Serialises one record as a journal line. */
export function formatStateRecord(record: StateRecord): Buffer {
  return frameJournalLine(stateRecordJson(record));
}

/**
 * Serialises records as journal lines, in one buffer: the same bytes as formatStateRecord's
 * joined, with one UTF-8 encoding for all of them instead of a buffer per line.
 */
export function formatStateRecords(records: readonly StateRecord[]): Buffer {
  let text = '';
  for (const record of records) text += journalLineText(stateRecordJson(record));
  return Buffer.from(text, 'utf8');
}

function stateRecordJson(record: StateRecord): string {
  return JSON.stringify({ id: record.id, r: record.rcpt, s: record.state });
}

/** Serialises one mailbox-state record as a journal line. */
export function formatMailboxRecord(record: MailboxRecord): Buffer {
  return frameJournalLine(mailboxRecordJson(record));
}

/** Serialises one removal record as a journal line. */
export function formatRemovalRecord(record: RemovalRecord): Buffer {
  return frameJournalLine(removalRecordJson(record));
}

/** Serialises one login-state record as a journal line. */
export function formatLoginRecord(record: LoginRecord): Buffer {
  return frameJournalLine(loginRecordJson(record));
}

function frameJournalLine(json: string): Buffer {
  return Buffer.from(journalLineText(json), 'utf8');
}

/** A journal line: the CRC-32 of the JSON's UTF-8 bytes in hex, a space, the JSON, a line feed (Bun.hash.crc32 of a string hashes its UTF-8 bytes). */
function journalLineText(json: string): string {
  return `${(Bun.hash.crc32(json) >>> 0).toString(16).padStart(8, '0')} ${json}\n`;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parseReply(v: unknown): Reply | null {
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  if (!isNum(r.code) || !Array.isArray(r.lines) || !r.lines.every((l) => typeof l === 'string')) return null;
  if (r.enhanced !== undefined && typeof r.enhanced !== 'string') return null;
  return Object.freeze({ code: r.code, enhanced: r.enhanced as string | undefined, lines: Object.freeze([...r.lines]) });
}

/** Validates a state read from the journal; null when it is not one. */
export function parseDeliveryState(v: unknown): DeliveryState | null {
  if (typeof v !== 'object' || v === null) return null;
  const s = v as Record<string, unknown>;
  switch (s.kind) {
    case 'pending':
      return PENDING;
    case 'delivered': {
      if (!isNum(s.atMs)) return null;
      const reply = s.reply === undefined ? undefined : parseReply(s.reply);
      if (reply === null) return null;
      return reply ? { kind: 'delivered', atMs: s.atMs, reply } : { kind: 'delivered', atMs: s.atMs };
    }
    case 'deferred': {
      const lastReply = parseReply(s.lastReply);
      if (!isNum(s.attempts) || !isNum(s.nextAttemptMs) || !lastReply || (s.warned !== undefined && s.warned !== true)) return null;
      const deferred = { kind: 'deferred', attempts: s.attempts, nextAttemptMs: s.nextAttemptMs, lastReply } as const;
      return s.warned ? { ...deferred, warned: true } : deferred;
    }
    case 'bounced': {
      const reply = parseReply(s.reply);
      return isNum(s.atMs) && reply ? { kind: 'bounced', atMs: s.atMs, reply } : null;
    }
    case 'held': {
      const lastReply = s.lastReply === undefined ? undefined : parseReply(s.lastReply);
      if (!isNum(s.atMs) || !isNum(s.attempts) || lastReply === null || (s.warned !== undefined && s.warned !== true)) return null;
      const held = lastReply ? { kind: 'held', atMs: s.atMs, attempts: s.attempts, lastReply } as const : { kind: 'held', atMs: s.atMs, attempts: s.attempts } as const;
      return s.warned ? { ...held, warned: true } : held;
    }
    default:
      return null;
  }
}

export type JournalLine =
  | { readonly kind: 'record'; readonly record: StateRecord }
  | { readonly kind: 'mailbox'; readonly record: MailboxRecord }
  | { readonly kind: 'removal'; readonly record: RemovalRecord }
  | { readonly kind: 'login'; readonly record: LoginRecord }
  /** An old "local" line (Rule 4): read, and nothing to apply. */
  | { readonly kind: 'local' }
  | { readonly kind: 'bad'; readonly reason: string };

/** Parses one journal line (without its "\n"). */
export function parseStateLine(line: Buffer): JournalLine {
  if (line.length < 10 || line[8] !== 0x20) return { kind: 'bad', reason: 'the journal line has no checksum' };
  const stored = line.toString('latin1', 0, 8);
  const body = line.subarray(9);
  const computed = (Bun.hash.crc32(body) >>> 0).toString(16).padStart(8, '0');
  if (stored !== computed) return { kind: 'bad', reason: `checksum mismatch (stored ${stored}, computed ${computed})` };
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return { kind: 'bad', reason: 'the journal line is not JSON' };
  }
  const o = value as Record<string, unknown>;
  if (typeof o === 'object' && o !== null && 'm' in o) {
    const record = parseMailboxRecord(o);
    return record ? { kind: 'mailbox', record } : { kind: 'bad', reason: 'the journal line is not a mailbox record' };
  }
  if (typeof o === 'object' && o !== null && 'rm' in o) {
    const record = parseRemovalRecord(o);
    return record ? { kind: 'removal', record } : { kind: 'bad', reason: 'the journal line is not a removal record' };
  }
  if (typeof o === 'object' && o !== null && 'l' in o) {
    const record = parseLoginRecord(o);
    return record ? { kind: 'login', record } : { kind: 'bad', reason: 'the journal line is not a login record' };
  }
  const id = o?.id;
  const rcpt = o?.r;
  if (typeof id !== 'string' || !(rcpt === null || (Number.isInteger(rcpt) && (rcpt as number) >= 0))) {
    return { kind: 'bad', reason: 'the journal line is not a state record' };
  }
  const old = oldStateLine(id, rcpt as number | null, o.s);
  if (old !== null) return old;
  const state = parseDeliveryState(o.s);
  if (!state) return { kind: 'bad', reason: 'the journal line is not a state record' };
  return { kind: 'record', record: { id, rcpt: rcpt as number | null, state } };
}

/** Rule 4: a delivery record of a journal written before removals had records of their own. */
function oldStateLine(id: string, rcpt: number | null, s: unknown): JournalLine | null {
  if (typeof s !== 'object' || s === null) return null;
  const { kind, atMs } = s as Record<string, unknown>;
  if (kind === 'local') return { kind: 'local' };
  if (kind === 'deleted' && isNum(atMs)) return { kind: 'removal', record: { id, rcpt, atMs } };
  return null;
}
