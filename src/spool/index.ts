/**
 * @module Derived lookups (id, recipient, sender, time) and each segment's live and dead bytes.
 * Rule 1: rebuilt from the segments and the journal at open; nothing here is written to disk.
 * Rule 2: a record is tracked until its bytes are gone, so a deletion outlives a journal snapshot.
 * Rule 3: deletion is final; a message is listed while some recipient of it is not deleted.
 * Rule 4: addresses match without regard to case (as Mailpit's search does).
 */
import type { Envelope } from '../core/envelope.ts';
import { mailboxKey, type Mailbox } from '../core/address.ts';
import { isFinished, type DeliveryState } from './delivery-state.ts';
import { IdTable } from './id-table.ts';
import type { MailboxFlags } from './mailbox-state.ts';

/** One stored message as the spool tracks it. Offsets are absolute within its segment. */
export interface Entry {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  /** Initial states came from these flags (local mailbox or relay); kept for journal snapshots. */
  readonly local: readonly boolean[];
  /** Replaced, never changed in place: equal initial states are one shared frozen array. */
  states: readonly DeliveryState[];
  seq: number;
  offset: number;
  readonly bytes: number;
  bodyOffset: number;
  readonly bodyBytes: number;
  /** The exact message size (unstuffed). */
  readonly size: number;
  /** Mailbox state by mailbox key; null until a reader marks the message (most never are). */
  mailboxes: ReadonlyMap<string, MailboxFlags> | null;
  /** Some delivery is not finished: the record must be kept. */
  live: boolean;
  /** Listed by get() and list(): on disk and not deleted. */
  visible: boolean;
}

export interface SegmentInfo {
  readonly seq: number;
  readonly name: string;
  /** File size as written. */
  bytes: number;
  headerBytes: number;
  /** Bytes of live records; the rest (finished records, damage, duplicates) is reclaimable. */
  liveBytes: number;
  liveRecords: number;
  /** Records tracked in this segment, live or not. */
  records: number;
}

export interface ListQuery {
  readonly recipient?: string;
  readonly sender?: string;
  /** Inclusive lower bound on the message time (epoch ms). */
  readonly since?: number;
  /** Exclusive upper bound on the message time (epoch ms). */
  readonly until?: number;
  readonly limit?: number;
}

/** The key an address is indexed under: "local@domain" lower-cased, "<>" for the null sender. */
export function addressKey(mailbox: Mailbox | null): string {
  return mailboxKey(mailbox).toLowerCase();
}

interface EnvelopeKeys {
  readonly sender: string;
  /** Each recipient's key once, in envelope order. */
  readonly recipients: readonly string[];
}

/** Keys per envelope object: the spool shares equal envelopes, so most are computed once. */
const envelopeKeys = new WeakMap<Envelope, EnvelopeKeys>();

function keysOf(envelope: Envelope): EnvelopeKeys {
  let keys = envelopeKeys.get(envelope);
  if (keys === undefined) {
    keys = { sender: addressKey(envelope.sender), recipients: [...new Set(envelope.recipients.map((r) => addressKey(r.mailbox)))] };
    envelopeKeys.set(envelope, keys);
  }
  return keys;
}

/** A query address as typed by a person: angle brackets optional, case ignored. */
export function queryKey(address: string): string {
  const trimmed = address.trim();
  if (trimmed === '<>' || trimmed === '') return '<>';
  return trimmed.replace(/^<(.*)>$/, '$1').toLowerCase();
}

export class SpoolIndex {
  readonly #records = new IdTable<Entry>();
  readonly #segments = new Map<number, SegmentInfo>();
  /**
   * Lookup lists, appended to and cleaned lazily: an entry that moved, was dropped or hidden
   * stays until a sweep, and readers skip it (an array push costs a fraction of a Set add,
   * which counts at a million records).
   */
  readonly #bySegment = new Map<number, Entry[]>();
  #byRecipient = new Map<string, Entry[]>();
  #bySender = new Map<string, Entry[]>();
  /** Visible entries by time, ascending; entries that stop being visible are skipped, then swept. */
  #byTime: Entry[] = [];
  #stale = 0;
  #visible = 0;

  // ---- segments

  /** Tracks a segment that holds no records yet (they are counted as addRecord() adds them). */
  addSegment(file: Pick<SegmentInfo, 'seq' | 'name' | 'bytes' | 'headerBytes'>): SegmentInfo {
    const info: SegmentInfo = { ...file, liveBytes: 0, liveRecords: 0, records: 0 };
    this.#segments.set(info.seq, info);
    return info;
  }

  segment(seq: number): SegmentInfo | undefined {
    return this.#segments.get(seq);
  }

  /** Segments in sequence order. */
  segments(): SegmentInfo[] {
    return [...this.#segments.values()].sort((a, b) => a.seq - b.seq);
  }

  removeSegment(seq: number): void {
    this.#segments.delete(seq);
    this.#bySegment.delete(seq);
  }

  /** Entries stored in one segment, in file order. */
  entriesIn(seq: number): Entry[] {
    const list = (this.#bySegment.get(seq) ?? []).filter((e) => e.seq === seq && this.#records.get(e.id) === e);
    this.#bySegment.set(seq, list);
    return [...list].sort((a, b) => a.offset - b.offset);
  }

  // ---- records

  /** Every tracked record, visible or not. */
  records(): IterableIterator<Entry> {
    return this.#records.values();
  }

  record(id: string): Entry | undefined {
    return this.#records.get(id);
  }

  /**
   * Tracks a record. When the id is already tracked (a compaction that stopped between its
   * rename and its unlink leaves two copies), the later copy wins and the earlier becomes dead.
   */
  addRecord(entry: Entry): void {
    const previous = this.#records.get(entry.id);
    if (previous) this.dropRecord(previous);
    const shape = shapeOf(entry.states);
    entry.live = shape.live;
    entry.visible = shape.visible;
    this.#records.set(entry);
    push(this.#bySegment, entry.seq, entry);
    const seg = this.#segments.get(entry.seq);
    if (seg) {
      seg.records++;
      if (entry.live) {
        seg.liveRecords++;
        seg.liveBytes += entry.bytes;
      }
    }
    if (entry.visible) this.#show(entry);
  }

  /** Applies one journal record; returns false when the message is not tracked. */
  applyState(id: string, rcpt: number | null, state: DeliveryState): boolean {
    const entry = this.#records.get(id);
    if (!entry) return false;
    if (rcpt !== null && rcpt >= entry.states.length) return false;
    entry.states = entry.states.map((s, i) => ((rcpt === null || rcpt === i) && !isDeleted(s) ? state : s));
    const live = !entry.states.every(isFinished);
    if (live !== entry.live) {
      const seg = this.#segments.get(entry.seq);
      if (seg) {
        seg.liveRecords += live ? 1 : -1;
        seg.liveBytes += live ? entry.bytes : -entry.bytes;
      }
      entry.live = live;
    }
    if (entry.visible && entry.states.every(isDeleted)) this.#hide(entry);
    return true;
  }

  /** Applies one mailbox-state record; returns false when the message is not tracked. */
  applyMailbox(id: string, mailbox: string, flags: MailboxFlags): boolean {
    const entry = this.#records.get(id);
    if (!entry) return false;
    const next = new Map(entry.mailboxes ?? []);
    next.set(mailbox, flags);
    entry.mailboxes = next;
    return true;
  }

  /** Forgets a record whose bytes are gone (or are about to be). */
  dropRecord(entry: Entry): void {
    if (this.#records.get(entry.id) !== entry) return;
    this.#records.delete(entry.id);
    const seg = this.#segments.get(entry.seq);
    if (seg) {
      seg.records--;
      if (entry.live) {
        seg.liveRecords--;
        seg.liveBytes -= entry.bytes;
      }
    }
    if (entry.visible) this.#hide(entry);
  }

  /** Points a record at its copy in another segment (compaction); the id is unchanged. */
  moveRecord(entry: Entry, seq: number, offset: number): void {
    const from = this.#segments.get(entry.seq);
    const to = this.#segments.get(seq);
    if (from) {
      from.records--;
      if (entry.live) {
        from.liveRecords--;
        from.liveBytes -= entry.bytes;
      }
    }
    if (to) {
      to.records++;
      if (entry.live) {
        to.liveRecords++;
        to.liveBytes += entry.bytes;
      }
    }
    push(this.#bySegment, seq, entry);
    entry.bodyOffset += offset - entry.offset;
    entry.offset = offset;
    entry.seq = seq;
  }

  // ---- visible messages

  get visibleCount(): number {
    return this.#visible;
  }

  get(id: string): Entry | undefined {
    const e = this.#records.get(id);
    return e?.visible ? e : undefined;
  }

  /** Visible messages, newest first. */
  query(q: ListQuery = {}): Entry[] {
    const since = q.since ?? -Infinity;
    const until = q.until ?? Infinity;
    const limit = q.limit ?? Infinity;
    const out: Entry[] = [];
    if (limit <= 0) return out;
    const lists: Entry[][] = [];
    const rcptKey = q.recipient === undefined ? null : queryKey(q.recipient);
    const senderKey = q.sender === undefined ? null : queryKey(q.sender);
    if (rcptKey !== null) lists.push(this.#byRecipient.get(rcptKey) ?? []);
    if (senderKey !== null) lists.push(this.#bySender.get(senderKey) ?? []);
    if (lists.length > 0) {
      const smallest = lists.reduce((a, b) => (b.length < a.length ? b : a));
      const candidates = smallest.filter(
        (e) =>
          e.visible &&
          e.timeMs >= since &&
          e.timeMs < until &&
          (senderKey === null || keysOf(e.envelope).sender === senderKey) &&
          (rcptKey === null || hasUndeletedRecipient(e, rcptKey)),
      );
      // Insertion order breaks ties, newest first; Array.prototype.sort is stable.
      candidates.reverse().sort((a, b) => b.timeMs - a.timeMs);
      return candidates.length > limit ? candidates.slice(0, limit) : candidates;
    }
    for (let i = upperBound(this.#byTime, until - 1) - 1; i >= 0 && out.length < limit; i--) {
      const e = this.#byTime[i];
      if (e.timeMs < since) break;
      if (e.visible) out.push(e);
    }
    return out;
  }

  /**
   * Visible messages in commit order (time, then id) from the first at or after `timeMs`, while
   * `take` returns true. Equal times are ordered by id here, whatever order they arrived in.
   */
  forEachInCommitOrder(timeMs: number, take: (e: Entry) => boolean): void {
    const list = this.#byTime;
    let i = upperBound(list, timeMs - 1);
    while (i < list.length) {
      let j = i + 1;
      while (j < list.length && list[j].timeMs === list[i].timeMs) j++;
      const run = j - i === 1 ? [list[i]] : list.slice(i, j).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const e of run) if (e.visible && !take(e)) return;
      i = j;
    }
  }

  #show(entry: Entry): void {
    entry.visible = true;
    this.#visible++;
    const list = this.#byTime;
    // Messages mostly come in time order: then the place is the end, with no search.
    const at = list.length === 0 || list[list.length - 1].timeMs <= entry.timeMs ? list.length : upperBound(list, entry.timeMs);
    if (at === list.length) list.push(entry);
    else list.splice(at, 0, entry);
    const keys = keysOf(entry.envelope);
    push(this.#bySender, keys.sender, entry);
    for (const k of keys.recipients) push(this.#byRecipient, k, entry);
  }

  #hide(entry: Entry): void {
    entry.visible = false;
    this.#visible--;
    this.#stale++;
    if (this.#stale > 1024 && this.#stale * 2 > this.#byTime.length) {
      // Hidden is final (Rule 3): sweep every list of what was hidden.
      this.#byTime = this.#byTime.filter((e) => e.visible);
      this.#bySender = sweep(this.#bySender);
      this.#byRecipient = sweep(this.#byRecipient);
      this.#stale = 0;
    }
  }
}

const isDeleted = (s: DeliveryState) => s.kind === 'deleted';

/** What a states array says of its message; computed once per array (they are shared and replaced, not changed). */
export interface StatesShape {
  readonly live: boolean;
  readonly visible: boolean;
  /** Some recipient is pending or deferred: relay work. */
  readonly relay: boolean;
}

const shapes = new WeakMap<readonly DeliveryState[], StatesShape>();

export function shapeOf(states: readonly DeliveryState[]): StatesShape {
  let shape = shapes.get(states);
  if (shape === undefined) {
    shape = {
      live: !states.every(isFinished),
      visible: !states.every(isDeleted),
      relay: states.some((s) => s.kind === 'pending' || s.kind === 'deferred'),
    };
    shapes.set(states, shape);
  }
  return shape;
}

/** True when a recipient of `entry` with this address key still holds it. */
export function hasUndeletedRecipient(entry: Entry, key: string): boolean {
  const rcpts = entry.envelope.recipients;
  for (let i = 0; i < rcpts.length; i++) {
    if (!isDeleted(entry.states[i]) && addressKey(rcpts[i].mailbox) === key) return true;
  }
  return false;
}

/** First position whose time is greater than `timeMs`. */
function upperBound(list: readonly Entry[], timeMs: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid].timeMs <= timeMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function push<K>(map: Map<K, Entry[]>, key: K, entry: Entry): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}

function sweep(map: Map<string, Entry[]>): Map<string, Entry[]> {
  const out = new Map<string, Entry[]>();
  for (const [key, list] of map) {
    const visible = list.filter((e) => e.visible);
    if (visible.length > 0) out.set(key, visible);
  }
  return out;
}
