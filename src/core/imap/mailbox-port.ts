/**
 * @module The port through which an IMAP session sees one login's INBOX (RFC 3501 §2.3).
 * Rule 1: the session core never reads a store; it asks with an event and the adapter answers
 *         from an implementation of ImapMailboxPort (the MailStore), then resolves the session.
 * Rule 2: UIDs, UIDVALIDITY and flags are the login's own (issue 13 §2); a change made elsewhere
 *         reaches the session as a MailboxChange through the session's notify(), never by polling.
 */
import type { MimeEntity } from '../mime-structure.ts';
import type { HeaderFields } from './envelope.ts';
import type { ImapStatus } from './responses.ts';
import type { MailboxMessage } from './selected-mailbox.ts';

/** The mailbox as one session opens it (SELECT, EXAMINE or STATUS). */
export interface ImapMailboxSnapshot {
  /** RFC 3501 §2.3.1.1: the same for the login's INBOX as long as its UIDs hold. */
  readonly uidValidity: number;
  /** RFC 3501 §2.3.1.1: above every UID the mailbox has given. */
  readonly uidNext: number;
  /** The messages in UID order, with the login's flags. */
  readonly messages: readonly MailboxMessage[];
  /** RFC 3501 §2.3.2: the UIDs this session is the first to see (\Recent); empty for EXAMINE and STATUS. */
  readonly recentUids: readonly number[];
}

/** One message's data for FETCH and SEARCH; the accessors are lazy and read only when called. */
export interface ImapMessageData {
  readonly uid: number;
  readonly internalDateMs: number;
  /** RFC822.SIZE: the exact size of bytes(). */
  readonly size: number;
  /** The message as stored, dot-unstuffed. */
  bytes(): Uint8Array;
  structure(): MimeEntity;
  /** The top-level header fields, for ENVELOPE. */
  headerFields(): HeaderFields;
  /** Decoded values of every field with this name (lower case), for SEARCH. */
  headerValues(name: string): readonly string[];
  /** Every header field decoded, for SEARCH TEXT. */
  headerText(): string;
  /** The decoded text of the text parts, for SEARCH BODY and TEXT. */
  bodyText(): string;
}

/** The new flags of one message, as a STORE or an implicit \Seen sets them. */
export interface FlagChange {
  readonly uid: number;
  readonly flags: readonly string[];
}

/** What a load reads of each message: nothing beyond the summary, the header section, or all of it. */
export type MessageReads = 'none' | 'header' | 'message';

export type OpenOutcome = { readonly ok: true; readonly mailbox: ImapMailboxSnapshot } | { readonly ok: false; readonly status: ImapStatus };
/** Messages the store no longer has (expunged meanwhile) are left out of `messages`. */
export type LoadOutcome = { readonly ok: true; readonly messages: readonly ImapMessageData[] } | { readonly ok: false; readonly status: ImapStatus };
export type ChangeOutcome = { readonly ok: true } | { readonly ok: false; readonly status: ImapStatus };

/**
 * What the store implements for the IMAP adapter. Each method answers one session event:
 * 'open' → open(), 'load' → load(), 'store-flags' → storeFlags(), 'expunge' → expunge().
 */
export interface ImapMailboxPort {
  /** The login's INBOX; `claimRecent` takes \Recent for this session (SELECT, not EXAMINE). */
  open(user: string, claimRecent: boolean): Promise<OpenOutcome>;
  /** `reads` says what the request needs; accessors beyond it are never called. */
  load(user: string, uids: readonly number[], reads: MessageReads): Promise<LoadOutcome>;
  /** Durable before it answers: an acknowledged flag survives a crash (issue 13 checks). */
  storeFlags(user: string, changes: readonly FlagChange[]): Promise<ChangeOutcome>;
  /** RFC 3501 §6.4.3: removes these messages for this login only. */
  expunge(user: string, uids: readonly number[]): Promise<ChangeOutcome>;
}
