/**
 * @module The POP3 maildrop port (core/pop3-maildrop.ts) over the MailStore: a login's maildrop
 * is the mailbox of its address, and this module holds the one lock per maildrop.
 * Rule 1: the login name is an email address; its maildrop holds every message with that
 *         address among its envelope recipients, matched without regard to case (the store's
 *         mailbox key). The lock table uses the same key, so "Bob@x" and "bob@x" share a lock.
 * Rule 2: a message's unique-id (RFC 1939 §7 UIDL) is its spool id, which never changes and is
 *         never reused; its size is the store's exact unstuffed size, what RETR sends.
 * Rule 3: UPDATE expunges from this login's mailbox only (MailStore.expunge with the address):
 *         a message to two addresses stays with the other. A lock is given back only after the
 *         update its session asked for has finished, so the next session sees the result.
 */
import { isPop3UniqueId, type LockOutcome, type Pop3MaildropPort, type Pop3MessageInfo, type ReadOutcome, type UpdateOutcome } from '../core/pop3-maildrop.ts';
import { pop3Replies } from '../core/pop3-replies.ts';
import type { MailStore } from '../spool/mail-store.ts';

const PAGE = 1000;

/** The mailbox key the store matches recipients with: the address, lower-cased, without <>. */
export function maildropKey(user: string): string {
  return user.trim().replace(/^<(.*)>$/, '$1').toLowerCase();
}

export class StoreMaildrops implements Pop3MaildropPort {
  readonly #store: () => MailStore;
  /** Locked maildrops: whether their session's update is under way, and whether it let go. */
  readonly #locks = new Map<string, { updating: boolean; released: boolean }>();

  readonly #expunged: (user: string, ids: readonly string[]) => void;

  /** `expunged` hears of each UPDATE's expunge once it is durable (IMAP sessions of the login see it). */
  constructor(store: () => MailStore, expunged: (user: string, ids: readonly string[]) => void = () => {}) {
    this.#store = store;
    this.#expunged = expunged;
  }

  /** Maildrops locked now. */
  get locked(): number {
    return this.#locks.size;
  }

  async lock(user: string): Promise<LockOutcome> {
    const key = maildropKey(user);
    // RFC 1939 §4 and RFC 2449 §8.1.1: one session per maildrop.
    if (this.#locks.has(key)) return { ok: false, response: pop3Replies.maildropInUse() };
    this.#locks.set(key, { updating: false, released: false });
    try {
      const messages: Pop3MessageInfo[] = [];
      const store = this.#store();
      let cursor = null;
      do {
        const page = store.list(key, cursor, PAGE);
        for (const m of page.messages) {
          if (!isPop3UniqueId(m.id)) throw new Error(`message id ${JSON.stringify(m.id)} cannot be a POP3 unique-id`);
          messages.push(Object.freeze({ uid: m.id, size: m.size }));
        }
        cursor = page.next;
      } while (cursor !== null);
      return { ok: true, maildrop: Object.freeze({ messages: Object.freeze(messages) }) };
    } catch (error) {
      this.#locks.delete(key);
      return { ok: false, response: pop3Replies.maildropUnavailable((error as Error).message) };
    }
  }

  async read(user: string, uid: string): Promise<ReadOutcome> {
    try {
      return { ok: true, bytes: await this.#store().read(maildropKey(user), uid) };
    } catch (error) {
      return { ok: false, response: pop3Replies.readFailed((error as Error).message) };
    }
  }

  async update(user: string, deletedUids: readonly string[]): Promise<UpdateOutcome> {
    const key = maildropKey(user);
    const lock = this.#locks.get(key);
    if (lock) lock.updating = true;
    try {
      if (deletedUids.length > 0) {
        await this.#store().expunge(key, deletedUids);
        this.#expunged(key, deletedUids);
      }
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
    const key = maildropKey(user);
    const lock = this.#locks.get(key);
    if (!lock) return;
    lock.released = true;
    if (!lock.updating) this.#locks.delete(key);
  }
}
