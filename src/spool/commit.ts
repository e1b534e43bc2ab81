/**
 * @module What a commit to the spool is: the request a session (or a bounce) hands in, and what an
 * index learns of the message once it is on disk. Kept apart from spool.ts so the delivery queue
 * can speak of commits without importing the spool that owns it.
 */
import type { Envelope } from '../core/envelope.ts';

/** What is known of a message when it is committed: an index keeps these. */
export interface CommittedMessage {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  /** Exact size (unstuffed). */
  readonly size: number;
}

export interface CommitRequest {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  /** The full message (Received header included), dot-stuffed, CRLF lines, without the final ".\r\n". */
  readonly stuffed: Uint8Array;
  /**
   * Per envelope recipient: true = a local mailbox (state 'local'), false = to relay ('pending').
   * Defaults to each recipient's `local` flag.
   */
  readonly localRecipients?: readonly boolean[];
  /** The exact (unstuffed) size, when the caller counted it while receiving; else counted here. */
  readonly size?: number;
  /** What the SMTP session told of itself, kept in the record for the session's replay. */
  readonly session?: SessionFacts;
}

/** The SMTP session that carried a message, beside its envelope (which has the AUTH identity). */
export interface SessionFacts {
  /** The client's IP address. */
  readonly clientAddress: string;
  readonly heloName: string;
  /** The TLS version ("TLSv1.3"), or null for a clear session. */
  readonly tls: string | null;
}
