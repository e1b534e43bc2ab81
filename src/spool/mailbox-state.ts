/**
 * @module Mailbox state: what a reader did to a message in one mailbox (read, tags), journalled
 * beside delivery state in records of its own kind, so any index built from spool plus journal
 * can be rebuilt with it.
 * Rule 1: a mailbox is an envelope recipient, keyed as addressKey() gives it (lower-cased).
 * Rule 2: a record carries the whole new state of one (message, mailbox); the last one wins.
 * Rule 3: a journal line is framed as delivery-state lines are; its JSON has "m" where they have "r".
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
