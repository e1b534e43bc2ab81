/**
 * @module Login state: what one reader login (IMAP, POP3) did to the messages of its INBOX —
 * the UID it gave each message, its flags and keywords, and its expunges — journalled beside
 * delivery state in records of its own kind, so an index rebuilt from spool plus journal keeps it.
 * Rule 1: a login is keyed as auth/users.ts loginKey() gives it; two logins never share state, so \Seen set by
 *         one is not \Seen for the other, nor Mailpit's read mark (mailbox-state.ts).
 * Rule 2: a mailbox record ({"l","v","n"}) gives the login's UIDVALIDITY and a floor for its next
 *         UID; a message record ({"l","id","u","f","x"}) carries the whole state of one (login,
 *         message) and the last one wins. UIDs only grow (RFC 3501 §2.3.1.1): the next UID is
 *         above every UID a record gave and at least the mailbox record's floor.
 * Rule 3: a journal line is framed as delivery-state lines are; its JSON has "l" where they
 *         have "r". A snapshot keeps the records of messages still in the spool and each
 *         login's mailbox record with its current next UID, so no UID is ever given twice.
 */

/** One login's state of one message. */
export interface LoginMessage {
  readonly uid: number;
  /** IMAP flags and keywords (\Seen, \Flagged, \Deleted, $Label…), \Recent never among them. */
  readonly flags: readonly string[];
  /** Expunged by this login: gone from its INBOX for good. */
  readonly expunged: boolean;
}

export type LoginRecord =
  | { readonly kind: 'mailbox'; readonly login: string; readonly uidValidity: number; readonly uidNext: number }
  | ({ readonly kind: 'message'; readonly login: string; readonly id: string } & LoginMessage);

/** One login's INBOX state, as the journal has built it. */
export interface LoginMailboxState {
  readonly uidValidity: number;
  /** Above every UID given. */
  readonly uidNext: number;
  message(id: string): LoginMessage | undefined;
  idOf(uid: number): string | undefined;
}

/** The JSON of one record, as the journal holds it. */
export function loginRecordJson(r: LoginRecord): string {
  if (r.kind === 'mailbox') return JSON.stringify({ l: r.login, v: r.uidValidity, n: r.uidNext });
  return JSON.stringify(r.expunged ? { l: r.login, id: r.id, u: r.uid, f: r.flags, x: 1 } : { l: r.login, id: r.id, u: r.uid, f: r.flags });
}

const isUid = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 2 ** 32;

/** Validates a record read from the journal's JSON; null when it is not one. */
export function parseLoginRecord(o: Record<string, unknown>): LoginRecord | null {
  const { l, id, u, f, x, v, n } = o;
  if (typeof l !== 'string' || l === '') return null;
  if (id === undefined) return isUid(v) && isUid(n) ? { kind: 'mailbox', login: l, uidValidity: v, uidNext: n } : null;
  if (typeof id !== 'string' || !isUid(u) || !Array.isArray(f) || !f.every((t) => typeof t === 'string')) return null;
  return { kind: 'message', login: l, id, uid: u, flags: Object.freeze([...(f as string[])]), expunged: x === 1 };
}

class Mailbox implements LoginMailboxState {
  readonly byId = new Map<string, LoginMessage>();
  readonly byUid = new Map<number, string>();
  uidValidity: number;
  uidNext: number;

  constructor(uidValidity: number, uidNext: number) {
    this.uidValidity = uidValidity;
    this.uidNext = uidNext;
  }

  message(id: string): LoginMessage | undefined {
    return this.byId.get(id);
  }

  idOf(uid: number): string | undefined {
    return this.byUid.get(uid);
  }
}

/** Every login's state, built by applying records in journal order. */
export class LoginStates {
  readonly #logins = new Map<string, Mailbox>();
  #records = 0;

  /** Records the table holds (what a snapshot would write, about). */
  get size(): number {
    return this.#records;
  }

  mailbox(login: string): LoginMailboxState | undefined {
    return this.#logins.get(login);
  }

  /** Logins that have a state of message `id`. */
  loginsHolding(id: string): string[] {
    const out: string[] = [];
    for (const [login, box] of this.#logins) if (box.byId.has(id)) out.push(login);
    return out;
  }

  apply(r: LoginRecord): void {
    let box = this.#logins.get(r.login);
    if (r.kind === 'mailbox') {
      if (!box) {
        this.#logins.set(r.login, new Mailbox(r.uidValidity, r.uidNext));
        this.#records++;
      } else {
        box.uidValidity = r.uidValidity;
        box.uidNext = Math.max(box.uidNext, r.uidNext);
      }
      return;
    }
    // A message record before any mailbox record (a damaged line set aside): UIDVALIDITY 1.
    if (!box) {
      this.#logins.set(r.login, (box = new Mailbox(1, 1)));
      this.#records++;
    }
    const old = box.byId.get(r.id);
    if (old && old.uid !== r.uid) box.byUid.delete(old.uid);
    if (!old) this.#records++;
    box.byId.set(r.id, Object.freeze({ uid: r.uid, flags: r.flags, expunged: r.expunged }));
    box.byUid.set(r.uid, r.id);
    box.uidNext = Math.max(box.uidNext, r.uid + 1);
  }

  /** The records that rebuild this state, less the messages `kept` rejects (gone from the spool). */
  snapshot(kept: (id: string) => boolean): LoginRecord[] {
    const out: LoginRecord[] = [];
    for (const [login, box] of this.#logins) {
      out.push({ kind: 'mailbox', login, uidValidity: box.uidValidity, uidNext: box.uidNext });
      for (const [id, m] of box.byId) if (kept(id)) out.push({ kind: 'message', login, id, ...m });
    }
    return out;
  }

  /** Forgets the messages `kept` rejects, as a snapshot would leave them out. */
  prune(kept: (id: string) => boolean): void {
    for (const box of this.#logins.values()) {
      for (const [id, m] of box.byId) {
        if (kept(id)) continue;
        box.byId.delete(id);
        box.byUid.delete(m.uid);
        this.#records--;
      }
    }
  }
}

/** The login state as the readers reach it (the spool implements it over its journal). */
export interface LoginStateStore {
  mailbox(login: string): LoginMailboxState | undefined;
  loginsHolding(id: string): string[];
  /** Journals the records: they show at once and the promise resolves once they are durable. */
  write(records: readonly LoginRecord[]): Promise<void>;
}
