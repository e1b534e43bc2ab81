/**
 * @module The POP3 maildrop port (core/pop3-maildrop.ts) over the login mailboxes
 * (login-mailboxes.ts): a login's maildrop is its INBOX, and this module holds the one lock per
 * maildrop.
 * Rule 1: the maildrop is the login's INBOX as IMAP shows it: every message its addresses hold
 *         that it did not expunge. The lock table is keyed by login (loginKey), so "Bob@x" and
 *         "bob@x" share a lock.
 * Rule 2: a message's unique-id (RFC 1939 §7 UIDL) is its spool id, which never changes and is
 *         never reused; its size is the store's exact unstuffed size, what RETR sends.
 * Rule 3: UPDATE is an expunge of the login's state, as IMAP's EXPUNGE is: a message to two
 *         logins stays with the other, and the login's IMAP sessions hear of it. A lock is given
 *         back only after the update its session asked for has finished, so the next session
 *         sees the result.
 */
import { isPop3UniqueId, type LockOutcome, type Pop3MaildropPort, type Pop3MessageInfo, type ReadOutcome, type UpdateOutcome } from '../core/pop3-maildrop.ts';
import { pop3Replies } from '../core/pop3-replies.ts';
import { loginKey } from '../auth/users.ts';
import type { MailStore } from '../spool/mail-store.ts';
import type { LoginMailboxes } from './login-mailboxes.ts';

export class StoreMaildrops implements Pop3MaildropPort {
  readonly #store: () => MailStore;
  readonly #mailboxes: LoginMailboxes;
  /** Locked maildrops: whether their session's update is under way, and whether it let go. */
  readonly #locks = new Map<string, { updating: boolean; released: boolean }>();

  constructor(store: () => MailStore, mailboxes: LoginMailboxes) {
    this.#store = store;
    this.#mailboxes = mailboxes;
  }

  /** Maildrops locked now. */
  get locked(): number {
    return this.#locks.size;
  }

  async lock(user: string): Promise<LockOutcome> {
    const key = loginKey(user);
    // RFC 1939 §4 and RFC 2449 §8.1.1: one session per maildrop.
    if (this.#locks.has(key)) return { ok: false, response: pop3Replies.maildropInUse() };
    this.#locks.set(key, { updating: false, released: false });
    try {
      const messages: Pop3MessageInfo[] = [];
      for (const m of (await this.#mailboxes.view(user)).messages) {
        if (!isPop3UniqueId(m.id)) throw new Error(`message id ${JSON.stringify(m.id)} cannot be a POP3 unique-id`);
        messages.push(Object.freeze({ uid: m.id, size: m.summary.size }));
      }
      return { ok: true, maildrop: Object.freeze({ messages: Object.freeze(messages) }) };
    } catch (error) {
      this.#locks.delete(key);
      return { ok: false, response: pop3Replies.maildropUnavailable((error as Error).message) };
    }
  }

  async read(user: string, uid: string): Promise<ReadOutcome> {
    try {
      return { ok: true, bytes: await this.#store().read(this.#mailboxes.addressHolding(user, uid), uid) };
    } catch (error) {
      return { ok: false, response: pop3Replies.readFailed((error as Error).message) };
    }
  }

  async update(user: string, deletedUids: readonly string[]): Promise<UpdateOutcome> {
    const key = loginKey(user);
    const lock = this.#locks.get(key);
    if (lock) lock.updating = true;
    try {
      if (deletedUids.length > 0) await this.#mailboxes.expungeIds(user, deletedUids);
      return { ok: true };
    } catch {
      return { ok: false, response: pop3Replies.updateFailed() };
    } finally {
      if (lock) {
        lock.updating = false;
        // Released while the update ran: it goes now, before the session hears the outcome.
        if (lock.released && this.#locks.get(key) === lock) this.#locks.delete(key);
      }
    }
  }

  release(user: string): void {
    const key = loginKey(user);
    const lock = this.#locks.get(key);
    if (!lock) return;
    lock.released = true;
    if (!lock.updating) this.#locks.delete(key);
  }
}
