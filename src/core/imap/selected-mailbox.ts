/**
 * @module One session's view of its selected mailbox: message sequence numbers as the client
 * knows them, and the changes made elsewhere that it has not been told yet (RFC 3501 §7.3.1,
 * §7.4.1, and RFC 2180 §4 for messages expunged by another session).
 * Rule 1: numbers only change when the client is told: an expunge made elsewhere keeps its
 *         message as a "ghost" at its number until an EXPUNGE response may be sent, and EXISTS
 *         never goes down (RFC 3501 §7.3.1).
 * Rule 2: the session says when EXPUNGE may be sent: never while a FETCH, STORE or SEARCH is
 *         answered, nor when no command is in progress (RFC 3501 §7.4.1); the UID forms of those
 *         commands may see them (RFC 3501 §6.4.8 names messages by UID).
 */
import { sequenceSetHas, type SequenceSet } from './parser.ts';

/** One message as the store lists it. */
export interface MailboxMessage {
  readonly uid: number;
  readonly flags: readonly string[];
}

/** A change to the mailbox made by this or another session, the API, or retention. */
export type MailboxChange =
  /** A new message; its UID is above every UID the mailbox has had (RFC 3501 §2.3.1.1). */
  | { readonly kind: 'appended'; readonly uid: number; readonly flags: readonly string[] }
  | { readonly kind: 'expunged'; readonly uid: number }
  | { readonly kind: 'flags'; readonly uid: number; readonly flags: readonly string[] };

interface Entry {
  readonly uid: number;
  flags: readonly string[];
  /** Expunged elsewhere, not yet announced: the number stays taken (RFC 2180 §4.1). */
  ghost: boolean;
  /** Its flags changed and the client has not been told. */
  flagsChanged: boolean;
}

export type SequenceResolution = { readonly ok: true; readonly seqs: readonly number[] } | { readonly ok: false; readonly why: string };

function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const lower = new Set(a.map((f) => f.toLowerCase()));
  return b.every((f) => lower.has(f.toLowerCase()));
}

export class SelectedMailbox {
  /** The messages in sequence order as the client knows them; entry i is number i + 1. */
  readonly #view: Entry[];
  /** Appended messages the client has not been told about by EXISTS. */
  readonly #pending: Entry[] = [];
  readonly #byUid = new Map<number, Entry>();
  /** Entries whose flagsChanged is set, so updates() need not scan a large mailbox for none. */
  readonly #changed = new Set<Entry>();

  constructor(messages: readonly MailboxMessage[]) {
    this.#view = messages.map((m) => ({ uid: m.uid, flags: m.flags, ghost: false, flagsChanged: false }));
    for (const e of this.#view) this.#byUid.set(e.uid, e);
  }

  /** The EXISTS count the client knows. */
  get exists(): number {
    return this.#view.length;
  }

  /** The UID of message `seq`, or null outside 1..exists. */
  uidAt(seq: number): number | null {
    return this.#view[seq - 1]?.uid ?? null;
  }

  /** The flags of message `seq` as last stored, or null outside 1..exists. */
  flagsAt(seq: number): readonly string[] | null {
    return this.#view[seq - 1]?.flags ?? null;
  }

  /** The number of the message with this UID, or null when the client does not know it. */
  seqOf(uid: number): number | null {
    const i = this.#view.findIndex((e) => e.uid === uid);
    return i < 0 ? null : i + 1;
  }

  /** Whether message `seq` was expunged elsewhere and is kept only until that can be said. */
  isExpunged(seq: number): boolean {
    return this.#view[seq - 1]?.ghost ?? false;
  }

  /** Records a change the store reports; the client hears of it at the next updates(). */
  apply(change: MailboxChange): void {
    switch (change.kind) {
      case 'appended': {
        if (this.#byUid.has(change.uid)) return;
        const entry: Entry = { uid: change.uid, flags: change.flags, ghost: false, flagsChanged: false };
        this.#pending.push(entry);
        this.#byUid.set(change.uid, entry);
        return;
      }
      case 'expunged': {
        const entry = this.#byUid.get(change.uid);
        if (!entry) return;
        this.#byUid.delete(change.uid);
        const p = this.#pending.indexOf(entry);
        // A message never announced can go without a word.
        if (p >= 0) this.#pending.splice(p, 1);
        else entry.ghost = true;
        entry.flagsChanged = false;
        this.#changed.delete(entry);
        return;
      }
      case 'flags': {
        const entry = this.#byUid.get(change.uid);
        if (!entry || entry.ghost || sameFlags(entry.flags, change.flags)) return;
        entry.flags = change.flags;
        if (!this.#pending.includes(entry)) {
          entry.flagsChanged = true;
          this.#changed.add(entry);
        }
        return;
      }
      default: {
        const never: never = change;
        return never;
      }
    }
  }

  /**
   * Flags this session itself stored and answers for (or was told to keep silent about, RFC
   * 3501 §6.4.6 .SILENT): recorded without a later untagged FETCH.
   */
  storedHere(uid: number, flags: readonly string[]): void {
    const entry = this.#byUid.get(uid);
    if (!entry) return;
    entry.flags = flags;
    entry.flagsChanged = false;
    this.#changed.delete(entry);
  }

  /**
   * The untagged responses the client may be sent now, in order: EXPUNGE (when allowed, from
   * the highest number down so each number is right when sent), EXISTS for new messages, and
   * FETCH FLAGS (with UID) for flags changed elsewhere.
   */
  updates(allowExpunge: boolean): string[] {
    const out: string[] = [];
    if (allowExpunge) {
      for (let i = this.#view.length - 1; i >= 0; i--) {
        if (!this.#view[i].ghost) continue;
        out.push(`* ${i + 1} EXPUNGE\r\n`);
        this.#view.splice(i, 1);
      }
    }
    if (this.#pending.length > 0) {
      this.#view.push(...this.#pending);
      this.#pending.length = 0;
      out.push(`* ${this.#view.length} EXISTS\r\n`);
    }
    if (this.#changed.size > 0) {
      this.#view.forEach((e, i) => {
        if (!e.flagsChanged) return;
        e.flagsChanged = false;
        out.push(`* ${i + 1} FETCH (UID ${e.uid} FLAGS (${e.flags.join(' ')}))\r\n`);
      });
      this.#changed.clear();
    }
    return out;
  }

  /**
   * The message numbers a command's sequence set names, ascending. RFC 3501 §6.4.8: by UID, "*"
   * is the highest UID and UIDs that do not exist are ignored; by number, "*" is the highest
   * number and a number beyond it is an error. "$" (RFC 5182) is the saved UIDs either way.
   */
  resolve(set: SequenceSet, byUid: boolean, savedUids: ReadonlySet<number> | null): SequenceResolution {
    const seqs: number[] = [];
    if (set.kind === 'saved') {
      this.#view.forEach((e, i) => {
        if (savedUids?.has(e.uid)) seqs.push(i + 1);
      });
      return { ok: true, seqs };
    }
    if (byUid) {
      const largest = this.#view.length === 0 ? 0 : this.#view[this.#view.length - 1].uid;
      this.#view.forEach((e, i) => {
        if (sequenceSetHas(set, e.uid, largest)) seqs.push(i + 1);
      });
      return { ok: true, seqs };
    }
    const exists = this.#view.length;
    for (const r of set.ranges) {
      for (const bound of [r.from, r.to]) {
        if (bound === '*' ? exists === 0 : bound > exists) return { ok: false, why: exists === 0 ? 'the mailbox is empty' : `message numbers go up to ${exists}` };
      }
    }
    for (let n = 1; n <= exists; n++) if (sequenceSetHas(set, n, exists)) seqs.push(n);
    return { ok: true, seqs };
  }
}
