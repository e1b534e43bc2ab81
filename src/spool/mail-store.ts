/**
 * @module The MailStore port: how the readers (HTTP API, POP3, IMAP) see the mail of the spool.
 * The spool implements it on its in-memory index (spool-mail-store.ts); the readers' on-disk
 * index implements the same interface over the same spool and journal.
 * Rule 1: a mailbox is an envelope recipient address ("local@domain", matched without regard to
 *         case); null means every mailbox (catch-all mode's one view of everything).
 * Rule 2: listing runs in commit order: commit time, then id. A cursor is the position of the
 *         last message a page returned; it survives restarts and compaction, since neither
 *         changes a message's time or id.
 * Rule 3: setFlags and expunge resolve once journalled (durable); read state and tags are kept
 *         per mailbox, so two recipients of one message each have their own.
 * Rule 4: every removal, whoever made it (a reader's expunge, the API, retention), is raised to
 *         the onRemoved listeners once durable, so open IMAP sessions hear of it (RFC 3501 §7.4.1).
 */
import type { HeaderSummary } from './header-summary.ts';
import type { MailboxFlags } from './mailbox-state.ts';

export type { HeaderSummary } from './header-summary.ts';
export type { MailboxFlags } from './mailbox-state.ts';

/** An envelope recipient address, "local@domain"; null for every mailbox. */
export type MailboxName = string | null;

/** A position in commit order: the last message seen. */
export interface MailCursor {
  readonly timeMs: number;
  readonly id: string;
}

export interface MailSummary {
  readonly id: string;
  /** Commit time (epoch ms). */
  readonly timeMs: number;
  /** Where this message sits in commit order; pass it back to list from after it. */
  readonly cursor: MailCursor;
  /** The envelope sender, "<>" for the null reverse-path. */
  readonly sender: string;
  /** The envelope recipients this message is still held for, "local@domain". */
  readonly recipients: readonly string[];
  /** Exact size in bytes (unstuffed, our Received header included). */
  readonly size: number;
  readonly headers: HeaderSummary;
  /** This mailbox's state of the message; with a null mailbox, read only when every mailbox read it. */
  readonly flags: MailboxFlags;
}

export interface MailPage {
  readonly messages: readonly MailSummary[];
  /** Pass as the cursor for the next page; null when this page reached the end. */
  readonly next: MailCursor | null;
}

/** Conditions a message must meet; all given ones must hold. Text matches without regard to case. */
export interface MailQuery {
  /** Any of the summary headers or the envelope addresses contains it. */
  readonly text?: string;
  readonly from?: string;
  readonly to?: string;
  readonly subject?: string;
  readonly read?: boolean;
  readonly tag?: string;
  /** Inclusive lower and exclusive upper bound on the commit time (epoch ms). */
  readonly since?: number;
  readonly until?: number;
}

export interface FlagChange {
  readonly read?: boolean;
  readonly addTags?: readonly string[];
  readonly removeTags?: readonly string[];
}

/** A message that left mailboxes. */
export interface MailRemoval {
  readonly id: string;
  /** The mailboxes (address keys) it left; null when it left every mailbox. */
  readonly mailboxes: readonly string[] | null;
}

export interface MailStore {
  /** Messages after `cursor` (from the start when null), in commit order, at most `limit`. */
  list(mailbox: MailboxName, cursor: MailCursor | null, limit?: number): MailPage;
  /** Like list(), keeping only the messages that meet `query`. */
  search(mailbox: MailboxName, query: MailQuery, cursor: MailCursor | null, limit?: number): MailPage;
  get(mailbox: MailboxName, id: string): MailSummary | undefined;
  /** The message as the client sent it (unstuffed), our Received header first. */
  read(mailbox: MailboxName, id: string): Promise<Uint8Array>;
  /** The header section of read() (through the blank line that ends it), without reading the body. */
  readHeader(mailbox: MailboxName, id: string): Promise<Uint8Array>;
  /** Changes read state and tags of messages in `mailbox` (every mailbox holding them when null). */
  setFlags(mailbox: MailboxName, ids: readonly string[], change: FlagChange): Promise<void>;
  /** Removes messages from `mailbox` (from every mailbox when null); their bytes go at compaction. */
  expunge(mailbox: MailboxName, ids: readonly string[]): Promise<void>;
  /** `listener` hears of every removal once durable, until the returned call. */
  onRemoved(listener: (removals: readonly MailRemoval[]) => void): () => void;
}
