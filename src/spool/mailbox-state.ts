/**
 * @module Mailbox state: what a reader did to a message in one mailbox (read, tags) and the
 * removal of recipients' copies, journalled beside delivery state in records of their own kinds,
 * so any index built from spool plus journal can be rebuilt with them.
 * Rule 1: a mailbox is an envelope recipient, keyed as addressKey() gives it (lower-cased).
 * Rule 2: a flags record carries the whole new state of one (message, mailbox); the last one wins.
 * Rule 3: a removal record removes the copy of one recipient (by its index in the envelope), or
 *         of every recipient: a reader's delete or expunge, retention, an operator's `queue
 *         delete`. It is final (copy-state.ts).
 * Rule 4: a journal line is framed as delivery-state lines are; a flags record's JSON has "m"
 *         where they have "r", a removal's has "rm".
 */

export interface MailboxFlags {
  /** Seen by a reader (IMAP \Seen, the UI's read mark). */
  readonly read: boolean;
  /** Free-form labels (Mailpit's tags), sorted, without duplicates. */
  readonly tags: readonly string[];
}

export interface MailboxRecord {
  readonly id: string;
  /** The mailbox's key: "local@domain" lower-cased. */
  readonly mailbox: string;
  readonly flags: MailboxFlags;
}

/**
 * The mailbox key of the catcher's one global state: Mailpit's Read flag and tags, as the HTTP
 * API and the web UI set them. No address has this form, so it never meets a recipient's own.
 */
export const CATCHER_MAILBOX = '*';

export const UNREAD: MailboxFlags = Object.freeze({ read: false, tags: Object.freeze([]) as readonly string[] });

/** Tags are compared and stored as given, but sorted and deduplicated so equal sets are equal. */
export function mailboxFlags(read: boolean, tags: Iterable<string>): MailboxFlags {
  const sorted = [...new Set(tags)].sort();
  if (!read && sorted.length === 0) return UNREAD;
  return Object.freeze({ read, tags: Object.freeze(sorted) });
}

/** The JSON of one record, as the journal holds it. */
export function mailboxRecordJson(record: MailboxRecord): string {
  return JSON.stringify({ id: record.id, m: record.mailbox, f: { read: record.flags.read, tags: record.flags.tags } });
}

/** Validates a record read from the journal's JSON; null when it is not one. */
export function parseMailboxRecord(o: Record<string, unknown>): MailboxRecord | null {
  const { id, m, f } = o;
  if (typeof id !== 'string' || typeof m !== 'string' || m === '' || typeof f !== 'object' || f === null) return null;
  const { read, tags } = f as Record<string, unknown>;
  if (typeof read !== 'boolean' || !Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) return null;
  return { id, mailbox: m, flags: mailboxFlags(read, tags as string[]) };
}

/** The copies of a message removed: one recipient's (`rcpt`, its envelope index), or every one (null). */
export interface RemovalRecord {
  readonly id: string;
  readonly rcpt: number | null;
  readonly atMs: number;
}

/** The JSON of one removal, as the journal holds it: {"id","rm","at"}. */
export function removalRecordJson(record: RemovalRecord): string {
  return JSON.stringify({ id: record.id, rm: record.rcpt, at: record.atMs });
}

/** Validates a removal read from the journal's JSON; null when it is not one. */
export function parseRemovalRecord(o: Record<string, unknown>): RemovalRecord | null {
  const { id, rm, at } = o;
  if (typeof id !== 'string' || !(rm === null || (Number.isInteger(rm) && (rm as number) >= 0))) return null;
  if (typeof at !== 'number' || !Number.isFinite(at)) return null;
  return { id, rcpt: rm as number | null, atMs: at };
}
