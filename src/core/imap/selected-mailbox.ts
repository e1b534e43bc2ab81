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
 * Rule 3: a session may idle for hours holding its view, so the view is two parallel arrays
 *         (UIDs, and the flag arrays the store shares) in sequence order, searched by UID with a
 *         binary search while the UIDs ascend (as the store lists them; appends only add higher
 *         ones), and sets of the few UIDs that are ghosts or have flags to announce.
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

/** An appended message the client has not been told about by EXISTS. */
interface Pending {
  readonly uid: number;
  flags: readonly string[];
}

export type SequenceResolution = { readonly ok: true; readonly seqs: readonly number[] } | { readonly ok: false; readonly why: string };

function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const lower = new Set(a.map((f) => f.toLowerCase()));
  return b.every((f) => lower.has(f.toLowerCase()));
}

export class SelectedMailbox {
  /** The UIDs in sequence order as the client knows them; index i is number i + 1. */
  readonly #uids: number[];
  /** The flags of each message, by the same index. */
  readonly #flags: (readonly string[])[];
  /** Whether #uids ascends, so a UID is found by binary search. */
  #ascending = true;
  /** Expunged elsewhere, not yet announced: the number stays taken (RFC 2180 §4.1). */
  readonly #ghosts = new Set<number>();
  /** Messages whose flags changed and the client has not been told. */
  readonly #changed = new Set<number>();
  /** Appended messages the client has not been told about by EXISTS. */
  readonly #pending: Pending[] = [];

  constructor(messages: readonly MailboxMessage[]) {
    this.#uids = new Array<number>(messages.length);
    this.#flags = new Array<readonly string[]>(messages.length);
    for (let i = 0; i < messages.length; i++) {
      this.#uids[i] = messages[i].uid;
      this.#flags[i] = messages[i].flags;
      if (i > 0 && messages[i].uid <= messages[i - 1].uid) this.#ascending = false;
    }
  }

  /** The EXISTS count the client knows. */
  get exists(): number {
    return this.#uids.length;
  }

  /** The UID of message `seq`, or null outside 1..exists. */
  uidAt(seq: number): number | null {
    return this.#uids[seq - 1] ?? null;
  }

  /** The flags of message `seq` as last stored, or null outside 1..exists. */
  flagsAt(seq: number): readonly string[] | null {
    return this.#flags[seq - 1] ?? null;
  }

  /** The number of the message with this UID, or null when the client does not know it. */
  seqOf(uid: number): number | null {
    const i = this.#indexOf(uid);
    return i < 0 ? null : i + 1;
  }

  /** Whether message `seq` was expunged elsewhere and is kept only until that can be said. */
  isExpunged(seq: number): boolean {
    const uid = this.#uids[seq - 1];
    return uid !== undefined && this.#ghosts.has(uid);
  }

  /** Records a change the store reports; the client hears of it at the next updates(). */
  apply(change: MailboxChange): void {
    switch (change.kind) {
      case 'appended': {
        if (this.#liveIndex(change.uid) >= 0 || this.#pendingIndex(change.uid) >= 0) return;
        this.#pending.push({ uid: change.uid, flags: change.flags });
        return;
      }
      case 'expunged': {
        const p = this.#pendingIndex(change.uid);
        // A message never announced can go without a word.
        if (p >= 0) this.#pending.splice(p, 1);
        else if (this.#liveIndex(change.uid) >= 0) this.#ghosts.add(change.uid);
        this.#changed.delete(change.uid);
        return;
      }
      case 'flags': {
        const p = this.#pendingIndex(change.uid);
        if (p >= 0) {
          if (!sameFlags(this.#pending[p].flags, change.flags)) this.#pending[p].flags = change.flags;
          return;
        }
        const i = this.#liveIndex(change.uid);
        if (i < 0 || sameFlags(this.#flags[i], change.flags)) return;
        this.#flags[i] = change.flags;
        this.#changed.add(change.uid);
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
    const p = this.#pendingIndex(uid);
    if (p >= 0) this.#pending[p].flags = flags;
    else {
      const i = this.#liveIndex(uid);
      if (i < 0) return;
      this.#flags[i] = flags;
    }
    this.#changed.delete(uid);
  }

  /**
   * The untagged responses the client may be sent now, in order: EXPUNGE (when allowed, from
   * the highest number down so each number is right when sent), EXISTS for new messages, and
   * FETCH FLAGS (with UID) for flags changed elsewhere.
   */
  updates(allowExpunge: boolean): string[] {
    const out: string[] = [];
    if (allowExpunge && this.#ghosts.size > 0) {
      for (let i = this.#uids.length - 1; i >= 0; i--) {
        if (!this.#ghosts.has(this.#uids[i])) continue;
        out.push(`* ${i + 1} EXPUNGE\r\n`);
        this.#ghosts.delete(this.#uids[i]);
        this.#uids.splice(i, 1);
        this.#flags.splice(i, 1);
      }
    }
    if (this.#pending.length > 0) {
      for (const p of this.#pending) {
        const last = this.#uids.length === 0 ? 0 : this.#uids[this.#uids.length - 1];
        if (p.uid <= last) this.#ascending = false;
        this.#uids.push(p.uid);
        this.#flags.push(p.flags);
      }
      this.#pending.length = 0;
      out.push(`* ${this.#uids.length} EXISTS\r\n`);
    }
    if (this.#changed.size > 0) {
      for (let i = 0; i < this.#uids.length; i++) {
        const uid = this.#uids[i];
        if (this.#changed.has(uid)) out.push(`* ${i + 1} FETCH (UID ${uid} FLAGS (${this.#flags[i].join(' ')}))\r\n`);
      }
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
      this.#uids.forEach((uid, i) => {
        if (savedUids?.has(uid)) seqs.push(i + 1);
      });
      return { ok: true, seqs };
    }
    if (byUid) {
      const largest = this.#uids.length === 0 ? 0 : this.#uids[this.#uids.length - 1];
      this.#uids.forEach((uid, i) => {
        if (sequenceSetHas(set, uid, largest)) seqs.push(i + 1);
      });
      return { ok: true, seqs };
    }
    const exists = this.#uids.length;
    for (const r of set.ranges) {
      for (const bound of [r.from, r.to]) {
        if (bound === '*' ? exists === 0 : bound > exists) return { ok: false, why: exists === 0 ? 'the mailbox is empty' : `message numbers go up to ${exists}` };
      }
    }
    for (let n = 1; n <= exists; n++) if (sequenceSetHas(set, n, exists)) seqs.push(n);
    return { ok: true, seqs };
  }

  /** The index of `uid` in the view, ghost or not, or -1. */
  #indexOf(uid: number): number {
    const uids = this.#uids;
    if (!this.#ascending) return uids.indexOf(uid);
    let lo = 0;
    let hi = uids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (uids[mid] < uid) lo = mid + 1;
      else if (uids[mid] > uid) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  /** The index of `uid` in the view when it is not a ghost, or -1. */
  #liveIndex(uid: number): number {
    const i = this.#indexOf(uid);
    return i >= 0 && !this.#ghosts.has(uid) ? i : -1;
  }

  #pendingIndex(uid: number): number {
    return this.#pending.findIndex((p) => p.uid === uid);
  }
}
