/**
 * @module The port through which a POP3 session sees one login's maildrop (RFC 1939 §8).
 * Rule 1: the session core never reads a store; it asks with an event and the adapter answers
 *         from an implementation of Pop3MaildropPort (the MailStore), then resolves the session.
 * Rule 2: the message list is a snapshot taken under the lock: numbers, sizes and unique ids do
 *         not change for the rest of the session, whatever arrives meanwhile.
 */
import type { Pop3Response } from './pop3-replies.ts';

/** One message of the maildrop as POP3 shows it. */
export interface Pop3MessageInfo {
  /**
   * RFC 1939 §7 (UIDL): 1 to 70 characters in 0x21..0x7E, the same for this message in every
   * session of this login, and never given to another message of the maildrop.
   */
  readonly uid: string;
  /** The exact size in octets of the message as RETR sends it before dot-stuffing (RFC 1939 §5). */
  readonly size: number;
}

/** The maildrop as locked: message n of the session is messages[n - 1]. */
export interface Pop3Maildrop {
  readonly messages: readonly Pop3MessageInfo[];
}

export type LockOutcome = { readonly ok: true; readonly maildrop: Pop3Maildrop } | { readonly ok: false; readonly response: Pop3Response };
export type ReadOutcome = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly response: Pop3Response };
export type UpdateOutcome = { readonly ok: true } | { readonly ok: false; readonly response: Pop3Response };

/**
 * What the store implements for the POP3 adapter. Each method answers one session event:
 * 'lock' → lock(), 'read' → read(), 'update' → update(), 'release' → release().
 */
export interface Pop3MaildropPort {
  /**
   * RFC 1939 §4: an exclusive lock on the login's maildrop. A second lock while one is held
   * answers -ERR [IN-USE] (pop3Replies.maildropInUse, RFC 2449 §8.1.1).
   */
  lock(user: string): Promise<LockOutcome>;
  /** The message bytes, unstuffed, exactly as stored (RFC 5321 §4.5.2 undone). */
  read(user: string, uid: string): Promise<ReadOutcome>;
  /** RFC 1939 §6: the UPDATE state removes the messages marked deleted; for this login only. */
  update(user: string, deletedUids: readonly string[]): Promise<UpdateOutcome>;
  /** Gives the lock back; the session ended, with or without UPDATE. */
  release(user: string): void;
}

const UNIQUE_ID = /^[\x21-\x7e]{1,70}$/;

/** RFC 1939 §7: whether `uid` may be sent as a unique-id. */
export function isPop3UniqueId(uid: string): boolean {
  return UNIQUE_ID.test(uid);
}
