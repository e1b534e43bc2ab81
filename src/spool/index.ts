/**
 * @module Derived lookups (id, recipient, sender, time) and each segment's live and dead bytes.
 * Rule 1: rebuilt from the segments and the journal at open; nothing here is written to disk.
 * Rule 2: a record is tracked until its bytes are gone, so a deletion outlives a journal snapshot.
 * Rule 3: removal is final; a message is listed while the copy of some recipient of it is not removed.
 * Rule 4: addresses match without regard to case (as Mailpit's search does).
 * Rule 5: records are rows of typed-array columns (time, segment, offset, body length, the record
 *         length and the size as 16-bit differences from it, an envelope number, a flags number,
 *         bits; the segment, envelope and flags numbers one byte wide until a number needs two or
 *         four), ids are bytes in one arena, equal envelopes are
 *         one numbered object, and delivery states are kept only for the rows whose states
 *         differ from the initial ones, equal ones shared: about 60 bytes a record, where an
 *         object per record and its fields cost several hundred. An `Entry` is a snapshot of a
 *         row, made when asked for.
 * Rule 6: rows are never reused; once most rows are dropped they are renumbered, in order. An
 *         Entry names its record by id, segment and offset, so it outlives a renumbering.
 */
import type { Envelope } from '../core/envelope.ts';
import { mailboxKey, type Mailbox } from '../core/address.ts';
import type { Chunk } from './checkpoint.ts';
import { isRemoved, isSettled, removedAt, type CopyState } from './copy-state.ts';
import type { DeliveryState } from './delivery-state.ts';
import { hashOf, hashOfBytes, IdTable } from './id-table.ts';
import { Interner } from './interner.ts';
import type { MailboxFlags } from './mailbox-state.ts';

/** What the relay queue reads of a record to know when it is due (delivery-queue.ts dueMs). */
export interface RelayView {
  readonly id: string;
  readonly timeMs: number;
  /** Each recipient's copy, by recipient index, as Entry.states. */
  readonly states: readonly CopyState[];
  /** As Entry.live. */
  readonly live: boolean;
}

/** What the spool knows of a stored record when it adds it. Offsets are absolute within its segment. */
export interface StoredRecord {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  /** Initial copy states come from these flags (local mailbox or relay); kept for journal snapshots. */
  readonly local: readonly boolean[];
  readonly seq: number;
  readonly offset: number;
  readonly bytes: number;
  readonly bodyBytes: number;
  /** The exact message size (unstuffed). */
  readonly size: number;
}

/** One stored message as the index holds it now: a snapshot (Rule 5). */
export interface Entry extends StoredRecord {
  /** Each recipient's copy, by recipient index: its transport state, 'local' or 'removed'. */
  readonly states: readonly CopyState[];
  /** Each recipient's address key (addressKey), by recipient index: shared, made once per distinct envelope. */
  readonly recipientKeys: readonly string[];
  /** The sender's address key. */
  readonly senderKey: string;
  readonly bodyOffset: number;
  /** Mailbox state by mailbox key; null until a reader marks the message (most never are). */
  readonly mailboxes: ReadonlyMap<string, MailboxFlags> | null;
  /** Some copy is not settled (a local one kept, a relayed one queued): the record must be kept. */
  readonly live: boolean;
  /** Listed by get() and list(): on disk and some copy not removed. */
  readonly visible: boolean;
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

/** A query address as typed by a person: angle brackets optional, case ignored. */
export function queryKey(address: string): string {
  const trimmed = address.trim();
  if (trimmed === '<>' || trimmed === '') return '<>';
  return trimmed.replace(/^<(.*)>$/, '$1').toLowerCase();
}

/** What a states array says of its message; computed once per array (they are shared and replaced, not changed). */
export interface StatesShape {
  readonly live: boolean;
  readonly visible: boolean;
  /** Some recipient is pending or deferred: relay work. */
  readonly relay: boolean;
}

const shapes = new WeakMap<readonly CopyState[], StatesShape>();

export function shapeOf(states: readonly CopyState[]): StatesShape {
  let shape = shapes.get(states);
  if (shape === undefined) {
    shape = {
      live: !states.every(isSettled),
      visible: !states.every(isRemoved),
      relay: states.some((s) => s.kind === 'pending' || s.kind === 'deferred'),
    };
    shapes.set(states, shape);
  }
  return shape;
}

/** True when a recipient of `entry` with this address key still holds it. */
export function hasUndeletedRecipient(entry: Entry, key: string): boolean {
  const keys = entry.recipientKeys;
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] === key && !isRemoved(entry.states[i])) return true;
  }
  return false;
}

/** A growable list of row numbers. */
class RowList {
  data: Int32Array;
  length = 0;

  constructor(capacity = 4) {
    this.data = new Int32Array(capacity);
  }

  push(row: number): void {
    if (this.length === this.data.length) this.#grow(this.length + 1);
    this.data[this.length++] = row;
  }

  /** Appends rows from, from + 1, … from + count - 1. */
  pushRange(from: number, count: number): void {
    if (this.length + count > this.data.length) this.#grow(this.length + count);
    for (let i = 0; i < count; i++) this.data[this.length + i] = from + i;
    this.length += count;
  }

  /** Gives back the room past a quarter more than its rows (after a bulk load). */
  trim(): void {
    if (this.data.length > 64 && this.data.length > this.length * 1.25) this.data = this.data.slice(0, Math.max(4, this.length));
  }

  /** Inserts `row` at position `at`, moving the rest up. */
  insert(at: number, row: number): void {
    if (this.length === this.data.length) this.#grow(this.length + 1);
    this.data.copyWithin(at + 1, at, this.length);
    this.data[at] = row;
    this.length++;
  }

  /** Keeps the rows `keep` accepts, renamed by it (a negative result drops the row). */
  rewrite(keep: (row: number) => number): void {
    const d = this.data;
    let j = 0;
    for (let i = 0; i < this.length; i++) {
      const to = keep(d[i]);
      if (to >= 0) d[j++] = to;
    }
    this.length = j;
    if (this.data.length > 64 && j * 4 < this.data.length) this.data = this.data.slice(0, Math.max(4, j * 2));
  }

  /** Room for `rows` rows in all. */
  reserve(rows: number): void {
    if (rows > this.data.length) this.#grow(rows);
  }

  #grow(min: number): void {
    this.data = resized(this.data, Math.max(min, this.data.length < LARGE_ROWS ? this.data.length * 2 : grown(this.data.length)));
  }
}

/** hashOf()'s constants (FNV-1a). */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** #head and #stuffing of a row whose lengths are in #wide. */
const WIDE = 0xffff;

const TRACKED = 1;
const LIVE = 2;
const VISIBLE = 4;

/**
 * How much a column, a row list or the id arena grows when full: by half, and past LARGE_ROWS
 * rows (or bytes) by an eighth. At a million records growing by half reserved 15 MB more of
 * columns (60,000 messages into a million-message spool left RSS at 152.8 MiB; 148.1 by an
 * eighth), and copying 30 MB once per 125,000 messages costs 240 bytes a message.
 */
function grown(size: number): number {
  return Math.ceil(size * (size < LARGE_ROWS ? 1.5 : 1.125));
}
const LARGE_ROWS = 1 << 18;
/** Rows at first, and the fewest dropped rows that make a renumbering worth it. */
const MIN_ROWS = 1024;
const MIN_DEAD_TO_RENUMBER = 65_536;
/** Hidden entries the lookup lists may hold before they are swept (Rule 3 makes hiding final). */
const MIN_STALE_TO_SWEEP = 1024;

/** One distinct envelope, shared by the rows that carry it, with its address keys. */
interface SharedEnvelope {
  readonly envelope: Envelope;
  /** JSON of the envelope: its key in the table. */
  readonly key: string;
  readonly sender: string;
  /** Each recipient's key, by recipient index. */
  readonly recipients: readonly string[];
  /** Each recipient's key once, in envelope order. */
  readonly distinct: readonly string[];
  /** Tracked rows that carry it, and lookups under way that hold it. */
  references: number;
  /** The visible rows that carry it (and, until a sweep, some that are no longer). */
  readonly visible: RowList;
}

/** One distinct set of initial flags, with the states it gives. */
interface SharedFlags {
  readonly local: readonly boolean[];
  readonly states: readonly CopyState[];
  readonly relay: boolean;
  /** Some copy starts in a local mailbox: only such a record ever has a 'local' copy (copy-state.ts Rule 1). */
  readonly someLocal: boolean;
  /** Copies to relay among the initial states (each one pending). */
  readonly pending: number;
}

/** The transport states of a copy the relay still owes an attempt, counted by the index. */
export type QueuedKind = 'pending' | 'deferred' | 'held';

export class SpoolIndex {
  readonly #segments = new Map<number, SegmentInfo>();
  /** Equal envelopes are copied and frozen once; their strings are shared. */
  readonly #interner = new Interner();
  readonly #envelopes: (SharedEnvelope | undefined)[] = [];
  readonly #envelopeNumbers = new Map<string, number>();
  readonly #freeEnvelopes: number[] = [];
  readonly #flags: SharedFlags[] = [];
  readonly #flagNumbers = new Map<string, number>();

  // ---- the columns (Rule 5), rows 0..#rows-1
  #capacity = 0;
  #rows = 0;
  #tracked = 0;
  #time = new Float64Array(0);
  /** Segment, envelope and flags numbers: narrow columns (Rule 5). */
  #seq: NarrowColumn = new Uint8Array(0);
  #offset = new Uint32Array(0);
  #bodyBytes = new Uint32Array(0);
  /** The record's bytes less its body's (its framing), and the body's less the message's size (stuffing dots); WIDE for a row in #wide. */
  #head = new Uint16Array(0);
  #stuffing = new Uint16Array(0);
  /** The bytes and size of the rare rows whose framing or stuffing does not fit 16 bits. */
  #wide = new Map<number, readonly [bytes: number, size: number]>();
  #envelope: NarrowColumn = new Uint8Array(0);
  #flag: NarrowColumn = new Uint8Array(0);
  #bits = new Uint8Array(0);
  /** Where each row's id starts in the arena, and its length (ids are 1-64 ASCII characters). */
  #idStart = new Uint32Array(0);
  #idLength = new Uint8Array(0);
  #arena = Buffer.alloc(0);
  #arenaUsed = 0;
  /** States of the rows whose states differ from their flags' initial ones. */
  #states = new Map<number, readonly CopyState[]>();
  #mailboxes = new Map<number, ReadonlyMap<string, MailboxFlags>>();
  /** Bumped by each renumbering: an iteration over rows stops being valid. */
  #generation = 0;

  /** What the id table's probes compare a row's id with: a string, or bytes of a chunk. */
  #probeId: string | null = null;
  #probeBytes: Uint8Array = new Uint8Array(0);
  #probeStart = 0;
  #probeEnd = 0;
  readonly #ids = new IdTable(
    (row) => this.#holdsProbe(row),
    (row) => hashOfBytes(this.#arena, this.#idStart[row], this.#idStart[row] + this.#idLength[row]),
  );

  /**
   * Lookup lists, appended to and cleaned lazily: a row that was dropped or hidden stays until a
   * sweep, and readers skip it. A segment's rows are found by a scan of the seq column
   * (compaction asks, seldom): a list per segment would cost 4 bytes a record.
   *
   * Envelope numbers by address key: a row is found by sender or recipient through its envelope's list. */
  readonly #byRecipient = new Map<string, Set<number>>();
  readonly #bySender = new Map<string, Set<number>>();
  /** Visible rows by time, ascending (ties in the order they were added). */
  #byTime = new RowList(MIN_ROWS);
  /** What #aligned() copies unaligned chunk columns into, during a bulk load. */
  #loadScratch = new Uint32Array(0);
  /** #byTime is out of order after a bulk load, until finishLoad(). */
  #timeUnsorted = false;
  #stale = 0;
  #visible = 0;
  /** Tracked copies per queued state, kept as rows come, change and go: nothing walks the rows to count them. */
  readonly #queued: Record<QueuedKind, number> = { pending: 0, deferred: 0, held: 0 };

  // ---- segments

  /** Tracks a segment that holds no records yet (they are counted as records are added). */
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
  }

  /** Entries stored in one segment, in file order. */
  entriesIn(seq: number): Entry[] {
    const rows: number[] = [];
    const column = this.#seq;
    const bits = this.#bits;
    for (let row = 0; row < this.#rows; row++) if (column[row] === seq && (bits[row] & TRACKED) !== 0) rows.push(row);
    // Rows of a segment are in file order unless some were moved into it out of order.
    rows.sort((a, b) => this.#offset[a] - this.#offset[b]);
    return rows.map((row) => this.#entry(row));
  }

  // ---- records

  /** How many records are tracked, visible or not. */
  get size(): number {
    return this.#tracked;
  }

  /** Every tracked record, visible or not. The index must not change while this runs. */
  *records(): IterableIterator<Entry> {
    const generation = this.#generation;
    for (let row = 0; row < this.#rows; row++) {
      if (generation !== this.#generation) throw new Error('spool: the index was renumbered during an iteration');
      if ((this.#bits[row] & TRACKED) !== 0) yield this.#entry(row);
    }
  }

  /** The tracked records with relay work (a pending or deferred recipient), as the relay queue reads them. */
  relayViews(): RelayView[] {
    const out: RelayView[] = [];
    for (let row = 0; row < this.#rows; row++) {
      if ((this.#bits[row] & (TRACKED | LIVE)) === (TRACKED | LIVE) && this.#hasRelayWork(row)) out.push(this.#relayView(row, this.#idOf(row)));
    }
    return out;
  }

  /**
   * The relay queue's view of a tracked record, made of `id` (the caller's string) and three of
   * its columns: a state change costs no snapshot (an Entry has seventeen fields and its own id).
   */
  relayView(id: string): RelayView | undefined {
    const row = this.#rowOf(id);
    return row < 0 ? undefined : this.#relayView(row, id);
  }

  /** A tracked record's copy states, by recipient index; undefined when it is not tracked. */
  states(id: string): readonly CopyState[] | undefined {
    const row = this.#rowOf(id);
    return row < 0 ? undefined : this.#statesOf(row);
  }

  /** Whether a record with this id is tracked (no snapshot made). */
  has(id: string): boolean {
    return this.#rowOf(id) >= 0;
  }

  record(id: string): Entry | undefined {
    const row = this.#rowOf(id);
    return row < 0 ? undefined : this.#entry(row);
  }

  /** True while `entry` is the tracked copy of its record, where it was (not dropped or moved since). */
  isCurrent(entry: StoredRecord): boolean {
    return this.#currentRow(entry) >= 0;
  }

  /** Room for `records` more records, with `idBytes` bytes of ids, without growing the columns or the arena. */
  reserve(records: number, idBytes = 0): void {
    // Exact, with a little room for what is committed next: a million rows are not rounded up to
    // a power of two (that could cost half again).
    const rows = this.#rows + records;
    if (rows > this.#capacity) this.#resize(Math.max(MIN_ROWS, rows + (records >> 5)));
    this.#ensureArena(idBytes + (idBytes >> 5));
    this.#ids.reserve(records);
    this.#byTime.reserve(this.#byTime.length + records);
  }

  /**
   * Tracks a record; returns true when it has relay work. When the id is already tracked (a
   * compaction that stopped between its rename and its unlink leaves two copies), the later copy
   * wins and the earlier becomes dead.
   */
  addRecord(record: StoredRecord): boolean {
    const h = hashOf(record.id);
    this.#probeId = record.id;
    const previous = this.#ids.find(h);
    if (previous >= 0) this.#drop(previous);
    this.#ensure(this.#rows + 1);
    const row = this.#rows++;
    this.#storeId(row, record.id);
    this.#probeId = record.id;
    this.#ids.add(h, row);
    const flag = this.#flagNumber(record.local);
    const env = this.#envelopeNumber(record.envelope);
    this.#fill(row, record.timeMs, record.seq, record.offset, record.bytes, record.bodyBytes, record.size, env, flag);
    this.#releaseEnvelope(env);
    this.#queued.pending += this.#flags[flag].pending;
    return this.#flags[flag].relay;
  }

  /**
   * Tracks the records of one checkpoint chunk of segment `seq` in bulk: ids go to the arena as
   * they are stored and the columns are copied whole; nothing per record is parsed or allocated.
   * finishLoad() ends a run of these.
   */
  addChunk(seq: number, chunk: Chunk): void {
    const n = chunk.count;
    if (n === 0) return;
    // Each lookup holds a reference until the rows have theirs (a dropped duplicate may have been the last).
    const envelopes = chunk.envelopes.map((e) => this.#envelopeNumber(e));
    const flags = chunk.flags.map((f) => this.#flagNumber(f));
    this.#ensure(this.#rows + n);
    this.#ids.reserve(n);
    const ids = chunk.idBytes;
    this.#ensureArena(ids.length);
    const base = this.#arenaUsed;
    const arena = this.#arena;
    arena.set(ids, base);
    this.#arenaUsed += ids.length + 1;
    const first = this.#rows;
    const idStart = this.#idStart;
    const idLength = this.#idLength;
    const table = this.#ids;
    this.#probeBytes = arena;
    this.#probeId = null;
    if (chunk.idHashBytes !== null && chunk.idLengths !== null) {
      // Hashes and lengths stored with the chunk: the ids' bytes are not read at all.
      const hashed = this.#aligned(chunk.idHashBytes, 0);
      const hashes = new Int32Array(hashed.buffer, hashed.byteOffset, n);
      idLength.set(chunk.idLengths, first);
      let start = base;
      for (let i = 0; i < n; i++) {
        const row = first + i;
        const end = start + idLength[row];
        idStart[row] = start;
        this.#probeStart = start;
        this.#probeEnd = end;
        const previous = table.set(hashes[i], row);
        if (previous >= 0) this.#drop(previous, false);
        this.#probeId = null;
        start = end + 1;
      }
    } else {
      const length = ids.length;
      let start = 0;
      for (let i = 0; i < n; i++) {
        // hashOfBytes() inlined: the id's end is found on the way.
        let h = FNV_OFFSET;
        let end = start;
        for (; end < length; end++) {
          const b = ids[end];
          if (b === 0x0a) break;
          h = Math.imul(h ^ b, FNV_PRIME);
        }
        this.#probeStart = base + start;
        this.#probeEnd = base + end;
        idStart[first + i] = base + start;
        idLength[first + i] = end - start;
        const previous = table.set(h | 0, first + i);
        if (previous >= 0) this.#drop(previous, false);
        this.#probeId = null;
        start = end + 1;
      }
    }
    // The chunk's columns are copied as bytes into the index's own (little-endian both).
    const columns = chunk.columnBytes;
    const into = (column: Float64Array | Uint32Array, bytes: Uint8Array) =>
      new Uint8Array(column.buffer, column.byteOffset + first * column.BYTES_PER_ELEMENT, bytes.length).set(bytes);
    into(this.#time, chunk.timeBytes);
    const column = (c: number) => columns.subarray(4 * c * n, 4 * (c + 1) * n);
    into(this.#offset, column(0));
    const bytes = this.#aligned(column(1), 0);
    const bodyBytes = this.#aligned(column(2), 1);
    const sizes = this.#aligned(column(3), 2);
    for (let i = 0; i < n; i++) this.#setLengths(first + i, bytes[i], bodyBytes[i], sizes[i]);
    this.#seq = fitting(this.#seq, seq);
    this.#seq.fill(seq, first, first + n);
    // Initial states (local or pending) are never settled nor removed.
    this.#bits.fill(TRACKED | LIVE | VISIBLE, first, first + n);
    // The chunk numbers its envelopes and flags from 0; the index's numbers replace them.
    const envelope = (this.#envelope = fitting(this.#envelope, Math.max(...envelopes)));
    const flag = (this.#flag = fitting(this.#flag, Math.max(...flags)));
    const chunkEnvelopes = this.#aligned(column(4), 0);
    const chunkFlags = this.#aligned(column(5), 1);
    let pending = 0;
    for (let i = 0; i < n; i++) {
      const row = first + i;
      envelope[row] = envelopes[chunkEnvelopes[i]];
      flag[row] = flags[chunkFlags[i]];
      pending += this.#flags[flag[row]].pending;
    }
    this.#queued.pending += pending;
    this.#rows += n;
    this.#tracked += n;
    this.#visible += n;
    this.#byTime.pushRange(first, n);
    this.#timeUnsorted = true;
    if (envelopes.length === 1) {
      const shared = this.#envelopes[envelopes[0]]!;
      shared.references += n;
      shared.visible.pushRange(first, n);
    } else {
      for (let row = first; row < first + n; row++) {
        const shared = this.#envelopes[envelope[row]]!;
        shared.references++;
        shared.visible.push(row);
      }
    }
    const seg = this.#segments.get(seq);
    if (seg) {
      let bytes = 0;
      for (let row = first; row < first + n; row++) bytes += this.#bytesOf(row);
      seg.records += n;
      seg.liveRecords += n;
      seg.liveBytes += bytes;
    }
    for (const env of envelopes) this.#releaseEnvelope(env);
  }

  /**
   * Little-endian uint32s `bytes` as an array: a view when they are aligned, else a copy into
   * slot `slot` (0-2) of one buffer that a bulk load reuses. A new copy per column per chunk was
   * garbage the collector left until the load ended: at a million records, start-up's most RSS
   * was 152-166 MiB with them and is 135-145 without.
   */
  #aligned(bytes: Uint8Array, slot: number): Uint32Array {
    const n = bytes.length >> 2;
    if (bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, n);
    if (this.#loadScratch.length < 3 * n) this.#loadScratch = new Uint32Array(3 * n);
    const into = new Uint32Array(this.#loadScratch.buffer, slot * n * 4, n);
    new Uint8Array(into.buffer, into.byteOffset, bytes.length).set(bytes);
    return into;
  }

  /** Ends a bulk load: puts the time list in order (ties in the order rows were added). */
  finishLoad(): void {
    this.#loadScratch = new Uint32Array(0);
    for (const shared of this.#envelopes) shared?.visible.trim();
    if (!this.#timeUnsorted) return;
    this.#timeUnsorted = false;
    const list = this.#byTime;
    const time = this.#time;
    const rows = list.data.subarray(0, list.length);
    for (let i = 1; i < rows.length; i++) {
      if (time[rows[i - 1]] > time[rows[i]] || (time[rows[i - 1]] === time[rows[i]] && rows[i - 1] > rows[i])) {
        rows.sort((a, b) => time[a] - time[b] || a - b);
        return;
      }
    }
  }

  /**
   * Applies one delivery record to the relayed copies it names (a local or removed copy has no
   * transport state to change); returns false when the message is not tracked.
   */
  applyState(id: string, rcpt: number | null, state: DeliveryState): boolean {
    return this.#change(id, rcpt, (s) => (s.kind === 'local' || s.kind === 'removed' ? s : state));
  }

  /** Applies one removal record (final, Rule 3); returns false when the message is not tracked. */
  applyRemoval(id: string, rcpt: number | null, atMs: number): boolean {
    const removed = removedAt(atMs);
    return this.#change(id, rcpt, (s) => (s.kind === 'removed' ? s : removed));
  }

  #change(id: string, rcpt: number | null, change: (s: CopyState) => CopyState): boolean {
    const row = this.#rowOf(id);
    if (row < 0) return false;
    const states = this.#statesOf(row);
    if (rcpt !== null && rcpt >= states.length) return false;
    // Equal states are one array (and one shape): a queue deferred at once holds one, not one per message.
    const next = this.#interner.states(states.map((s, i) => (rcpt === null || rcpt === i ? change(s) : s)));
    this.#countQueued(states, -1);
    this.#countQueued(next, 1);
    this.#states.set(row, next);
    const shape = shapeOf(next);
    const bits = this.#bits[row];
    if (shape.live !== ((bits & LIVE) !== 0)) {
      const seg = this.#segments.get(this.#seq[row]);
      if (seg) {
        seg.liveRecords += shape.live ? 1 : -1;
        seg.liveBytes += shape.live ? this.#bytesOf(row) : -this.#bytesOf(row);
      }
      this.#bits[row] = shape.live ? bits | LIVE : bits & ~LIVE;
    }
    if ((bits & VISIBLE) !== 0 && !shape.visible) this.#hide(row);
    return true;
  }

  /** Applies one mailbox-state record; returns false when the message is not tracked. */
  applyMailbox(id: string, mailbox: string, flags: MailboxFlags): boolean {
    const row = this.#rowOf(id);
    if (row < 0) return false;
    const next = new Map(this.#mailboxes.get(row) ?? []);
    next.set(mailbox, flags);
    this.#mailboxes.set(row, next);
    return true;
  }

  /** Forgets a record whose bytes are gone (or are about to be); nothing when it is not current. */
  dropRecord(entry: StoredRecord): void {
    const row = this.#currentRow(entry);
    if (row < 0) return;
    this.#drop(row);
    const dead = this.#rows - this.#tracked;
    if (dead >= MIN_DEAD_TO_RENUMBER && dead > this.#tracked) this.#renumber();
  }

  /** Points a record at its copy in another segment (compaction); the id is unchanged. */
  moveRecord(entry: StoredRecord, seq: number, offset: number): void {
    const row = this.#currentRow(entry);
    if (row < 0) return;
    const live = (this.#bits[row] & LIVE) !== 0;
    const bytes = this.#bytesOf(row);
    const from = this.#segments.get(this.#seq[row]);
    const to = this.#segments.get(seq);
    if (from) {
      from.records--;
      if (live) {
        from.liveRecords--;
        from.liveBytes -= bytes;
      }
    }
    if (to) {
      to.records++;
      if (live) {
        to.liveRecords++;
        to.liveBytes += bytes;
      }
    }
    this.#seq = fitting(this.#seq, seq);
    this.#seq[row] = seq;
    this.#offset[row] = offset;
  }

  // ---- visible messages

  /** Copies the relay still owes an attempt, by state (all deferred ones, due or not). */
  queuedCounts(): Readonly<Record<QueuedKind, number>> {
    return { ...this.#queued };
  }

  get visibleCount(): number {
    return this.#visible;
  }

  get(id: string): Entry | undefined {
    const row = this.#rowOf(id);
    return row >= 0 && (this.#bits[row] & VISIBLE) !== 0 ? this.#entry(row) : undefined;
  }

  /** Where a visible record's message is (segment, offset and length of the stored bytes), with no snapshot. */
  bodyOf(id: string): { readonly seq: number; readonly offset: number; readonly length: number } | undefined {
    const row = this.#rowOf(id);
    if (row < 0 || (this.#bits[row] & VISIBLE) === 0) return undefined;
    const bodyBytes = this.#bodyBytes[row];
    return { seq: this.#seq[row], offset: bodyOffsetOf(this.#offset[row], this.#bytesOf(row), bodyBytes), length: bodyBytes };
  }

  /** Visible messages, newest first. */
  query(q: ListQuery = {}): Entry[] {
    const since = q.since ?? -Infinity;
    const until = q.until ?? Infinity;
    const limit = q.limit ?? Infinity;
    if (limit <= 0) return [];
    const time = this.#time;
    const rcptKey = q.recipient === undefined ? null : queryKey(q.recipient);
    const senderKey = q.sender === undefined ? null : queryKey(q.sender);
    if (rcptKey !== null || senderKey !== null) {
      const bySender = senderKey === null ? null : (this.#bySender.get(senderKey) ?? new Set<number>());
      const byRecipient = rcptKey === null ? null : (this.#byRecipient.get(rcptKey) ?? new Set<number>());
      const envelopes = bySender === null ? byRecipient! : byRecipient === null ? bySender : bySender.intersection(byRecipient);
      const candidates: number[] = [];
      for (const n of envelopes) {
        const shared = this.#envelopes[n]!;
        const list = shared.visible;
        for (let i = 0; i < list.length; i++) {
          const row = list.data[i];
          if ((this.#bits[row] & VISIBLE) === 0 || this.#envelope[row] !== n || time[row] < since || time[row] >= until) continue;
          if (rcptKey !== null && !this.#holdsRecipient(row, shared, rcptKey)) continue;
          candidates.push(row);
        }
      }
      // Newest first; equal times, the one added last first.
      candidates.sort((a, b) => time[b] - time[a] || b - a);
      return candidates.slice(0, Math.min(limit, candidates.length)).map((row) => this.#entry(row));
    }
    const out: Entry[] = [];
    const list = this.#byTime;
    for (let i = this.#upperBound(until - 1) - 1; i >= 0 && out.length < limit; i--) {
      const row = list.data[i];
      if (time[row] < since) break;
      if ((this.#bits[row] & VISIBLE) !== 0) out.push(this.#entry(row));
    }
    return out;
  }

  /** The time of the oldest visible record, or null: found without making entries (a scrape asks). */
  oldestVisibleMs(): number | null {
    const list = this.#byTime;
    for (let i = 0; i < list.length; i++) {
      const row = list.data[i];
      if ((this.#bits[row] & VISIBLE) !== 0) return this.#time[row];
    }
    return null;
  }

  /**
   * Visible messages in commit order (time, then id) from the first at or after `timeMs`, while
   * `take` returns true. Equal times are ordered by id here, whatever order they arrived in.
   * `localOnly` passes over, without a snapshot, the records that never had a local copy (a
   * spool of mail to relay has nothing for the local mailboxes).
   */
  forEachInCommitOrder(timeMs: number, take: (e: Entry) => boolean, localOnly = false): void {
    const list = this.#byTime;
    let i = this.#upperBound(timeMs - 1);
    while (i < list.length) {
      // The column is read afresh after each take(): a growth moves it (resized()).
      const time = this.#time;
      let j = i + 1;
      const t = time[list.data[i]];
      while (j < list.length && time[list.data[j]] === t) j++;
      const run: Entry[] = [];
      for (let k = i; k < j; k++) {
        const row = list.data[k];
        if ((this.#bits[row] & VISIBLE) !== 0 && (!localOnly || this.#flags[this.#flag[row]].someLocal)) run.push(this.#entry(row));
      }
      if (run.length > 1) run.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const e of run) if (!take(e)) return;
      i = j;
    }
  }

  // ---- rows

  #entry(row: number): Entry {
    const flags = this.#flags[this.#flag[row]];
    const offset = this.#offset[row];
    const bytes = this.#bytesOf(row);
    const bodyBytes = this.#bodyBytes[row];
    const bits = this.#bits[row];
    const shared = this.#envelopes[this.#envelope[row]]!;
    return {
      id: this.#idOf(row),
      timeMs: this.#time[row],
      envelope: shared.envelope,
      recipientKeys: shared.recipients,
      senderKey: shared.sender,
      local: flags.local,
      states: this.#states.get(row) ?? flags.states,
      seq: this.#seq[row],
      offset,
      bytes,
      bodyOffset: bodyOffsetOf(offset, bytes, bodyBytes),
      bodyBytes,
      size: this.#sizeOf(row),
      mailboxes: this.#mailboxes.get(row) ?? null,
      live: (bits & LIVE) !== 0,
      visible: (bits & VISIBLE) !== 0,
    };
  }

  #relayView(row: number, id: string): RelayView {
    return { id, timeMs: this.#time[row], states: this.#statesOf(row), live: (this.#bits[row] & LIVE) !== 0 };
  }

  #statesOf(row: number): readonly CopyState[] {
    return this.#states.get(row) ?? this.#flags[this.#flag[row]].states;
  }

  #hasRelayWork(row: number): boolean {
    const states = this.#states.get(row);
    return states === undefined ? this.#flags[this.#flag[row]].relay : shapeOf(states).relay;
  }

  #holdsRecipient(row: number, env: SharedEnvelope, key: string): boolean {
    const states = this.#statesOf(row);
    for (let i = 0; i < env.recipients.length; i++) {
      if (env.recipients[i] === key && !isRemoved(states[i])) return true;
    }
    return false;
  }

  #idOf(row: number): string {
    const start = this.#idStart[row];
    return this.#arena.toString('latin1', start, start + this.#idLength[row]);
  }

  #rowOf(id: string): number {
    this.#probeId = id;
    return this.#ids.find(hashOf(id));
  }

  #currentRow(entry: StoredRecord): number {
    const row = this.#rowOf(entry.id);
    return row >= 0 && this.#seq[row] === entry.seq && this.#offset[row] === entry.offset ? row : -1;
  }

  /** Whether `row`'s id is the probe's (the id table's comparison). */
  #holdsProbe(row: number): boolean {
    const arena = this.#arena;
    const start = this.#idStart[row];
    const length = this.#idLength[row];
    const id = this.#probeId;
    if (id !== null) {
      if (id.length !== length) return false;
      for (let i = 0; i < length; i++) if (arena[start + i] !== id.charCodeAt(i)) return false;
      return true;
    }
    const bytes = this.#probeBytes;
    const from = this.#probeStart;
    if (this.#probeEnd - from !== length) return false;
    for (let i = 0; i < length; i++) if (arena[start + i] !== bytes[from + i]) return false;
    return true;
  }

  #bytesOf(row: number): number {
    const head = this.#head[row];
    return head === WIDE ? this.#wide.get(row)![0] : this.#bodyBytes[row] + head;
  }

  #sizeOf(row: number): number {
    const stuffing = this.#stuffing[row];
    return stuffing === WIDE ? this.#wide.get(row)![1] : this.#bodyBytes[row] - stuffing;
  }

  /** Sets a new row's bodyBytes, and its bytes and size as what they differ from it by (Rule 5). */
  #setLengths(row: number, bytes: number, bodyBytes: number, size: number): void {
    this.#bodyBytes[row] = bodyBytes;
    const head = bytes - bodyBytes;
    const stuffing = bodyBytes - size;
    if (head >= 0 && head < WIDE && stuffing >= 0 && stuffing < WIDE) {
      this.#head[row] = head;
      this.#stuffing[row] = stuffing;
    } else {
      this.#head[row] = WIDE;
      this.#stuffing[row] = WIDE;
      this.#wide.set(row, [bytes, size]);
    }
  }

  #storeId(row: number, id: string): void {
    this.#ensureArena(id.length);
    const at = this.#arenaUsed;
    this.#arena.write(id, at, 'latin1');
    this.#idStart[row] = at;
    this.#idLength[row] = id.length;
    this.#arenaUsed += id.length;
  }

  #fill(row: number, timeMs: number, seq: number, offset: number, bytes: number, bodyBytes: number, size: number, env: number, flag: number): void {
    this.#time[row] = timeMs;
    this.#seq = fitting(this.#seq, seq);
    this.#seq[row] = seq;
    this.#offset[row] = offset;
    this.#setLengths(row, bytes, bodyBytes, size);
    this.#envelope = fitting(this.#envelope, env);
    this.#envelope[row] = env;
    this.#flag = fitting(this.#flag, flag);
    this.#flag[row] = flag;
    // Initial states (local or pending) are never settled nor removed.
    this.#bits[row] = TRACKED | LIVE;
    this.#tracked++;
    this.#envelopes[env]!.references++;
    const seg = this.#segments.get(seq);
    if (seg) {
      seg.records++;
      seg.liveRecords++;
      seg.liveBytes += bytes;
    }
    this.#show(row);
  }

  /** Untracks a row; `inTable` false when the id table already points its id at another row. */
  #drop(row: number, inTable = true): void {
    const bits = this.#bits[row];
    if (inTable) {
      this.#probeId = this.#idOf(row);
      this.#ids.delete(hashOf(this.#probeId));
    }
    const seg = this.#segments.get(this.#seq[row]);
    if (seg) {
      seg.records--;
      if ((bits & LIVE) !== 0) {
        seg.liveRecords--;
        seg.liveBytes -= this.#bytesOf(row);
      }
    }
    if ((bits & VISIBLE) !== 0) this.#hide(row);
    if ((bits & TRACKED) !== 0) this.#countQueued(this.#statesOf(row), -1);
    this.#bits[row] = 0;
    this.#tracked--;
    this.#states.delete(row);
    this.#mailboxes.delete(row);
    this.#releaseEnvelope(this.#envelope[row]);
  }

  #countQueued(states: readonly CopyState[], by: 1 | -1): void {
    for (const state of states) {
      if (state.kind === 'pending' || state.kind === 'deferred' || state.kind === 'held') this.#queued[state.kind] += by;
    }
  }

  #releaseEnvelope(n: number): void {
    const shared = this.#envelopes[n]!;
    if (--shared.references > 0) return;
    this.#envelopeNumbers.delete(shared.key);
    forget(this.#bySender, shared.sender, n);
    for (const k of shared.distinct) forget(this.#byRecipient, k, n);
    this.#envelopes[n] = undefined;
    this.#freeEnvelopes.push(n);
  }

  #show(row: number): void {
    this.#bits[row] |= VISIBLE;
    this.#visible++;
    const list = this.#byTime;
    const t = this.#time[row];
    // Messages mostly come in time order: then the place is the end, with no search.
    if (this.#timeUnsorted || list.length === 0 || this.#time[list.data[list.length - 1]] <= t) list.push(row);
    else list.insert(this.#upperBound(t), row);
    this.#envelopes[this.#envelope[row]]!.visible.push(row);
  }

  #hide(row: number): void {
    this.#bits[row] &= ~VISIBLE;
    this.#visible--;
    this.#stale++;
    if (this.#stale > MIN_STALE_TO_SWEEP && this.#stale * 2 > this.#byTime.length) {
      // Hidden is final (Rule 3): sweep every list of what was hidden.
      const visible = (r: number) => ((this.#bits[r] & VISIBLE) !== 0 ? r : -1);
      this.#byTime.rewrite(visible);
      for (const shared of this.#envelopes) shared?.visible.rewrite(visible);
      this.#stale = 0;
    }
  }

  /** First position in #byTime whose time is greater than `timeMs`. */
  #upperBound(timeMs: number): number {
    const list = this.#byTime.data;
    const time = this.#time;
    let lo = 0;
    let hi = this.#byTime.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (time[list[mid]] <= timeMs) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The number of an envelope equal to `envelope`, holding a reference for the caller. */
  #envelopeNumber(envelope: Envelope): number {
    // Every field is a string, boolean, integer or null, so equal JSON means equal envelopes.
    const key = JSON.stringify(envelope);
    let n = this.#envelopeNumbers.get(key);
    if (n === undefined) {
      const shared = this.#interner.envelope(envelope);
      const recipients = shared.recipients.map((r) => addressKey(r.mailbox));
      const sender = addressKey(shared.sender);
      const distinct = [...new Set(recipients)];
      n = this.#freeEnvelopes.pop() ?? this.#envelopes.length;
      this.#envelopes[n] = { envelope: shared, key, sender, recipients, distinct, references: 0, visible: new RowList() };
      this.#envelopeNumbers.set(key, n);
      remember(this.#bySender, sender, n);
      for (const k of distinct) remember(this.#byRecipient, k, n);
    }
    this.#envelopes[n]!.references++;
    return n;
  }

  #flagNumber(local: readonly boolean[]): number {
    let key = '';
    for (const l of local) key += l ? '1' : '0';
    let n = this.#flagNumbers.get(key);
    if (n === undefined) {
      const { local: shared, states } = this.#interner.flags(local);
      n = this.#flags.length;
      this.#flags.push({ local: shared, states, relay: shapeOf(states).relay, someLocal: local.includes(true), pending: states.filter((st) => st.kind === 'pending').length });
      this.#flagNumbers.set(key, n);
    }
    return n;
  }

  #ensure(rows: number): void {
    if (rows <= this.#capacity) return;
    this.#resize(Math.max(MIN_ROWS, rows, grown(this.#capacity)));
  }

  #resize(capacity: number): void {
    this.#time = resized(this.#time, capacity);
    this.#seq = resized(this.#seq, capacity);
    this.#offset = resized(this.#offset, capacity);
    this.#bodyBytes = resized(this.#bodyBytes, capacity);
    this.#head = resized(this.#head, capacity);
    this.#stuffing = resized(this.#stuffing, capacity);
    this.#envelope = resized(this.#envelope, capacity);
    this.#flag = resized(this.#flag, capacity);
    this.#bits = resized(this.#bits, capacity);
    this.#idStart = resized(this.#idStart, capacity);
    this.#idLength = resized(this.#idLength, capacity);
    this.#capacity = capacity;
  }

  #ensureArena(more: number): void {
    const need = this.#arenaUsed + more + 1;
    if (need <= this.#arena.length) return;
    const size = Math.max(64 * 1024, need, grown(this.#arena.length));
    const old = this.#arena;
    if (ownsBuffer(old)) {
      // Moved, as the columns are (resized()).
      this.#arena = Buffer.from((old.buffer as ArrayBuffer).transfer(size));
    } else {
      const next = Buffer.allocUnsafeSlow(size);
      old.copy(next, 0, 0, this.#arenaUsed);
      this.#arena = next;
    }
  }

  /** Drops the rows no longer tracked, keeping the order of the rest (Rule 6). */
  #renumber(): void {
    const n = this.#rows;
    const moved = new Int32Array(n).fill(-1);
    const bits = this.#bits;
    const arena = this.#arena;
    let j = 0;
    let used = 0;
    for (let i = 0; i < n; i++) {
      if ((bits[i] & TRACKED) === 0) continue;
      moved[i] = j;
      const start = this.#idStart[i];
      const length = this.#idLength[i];
      arena.copy(arena, used, start, start + length);
      this.#idStart[j] = used;
      this.#idLength[j] = length;
      used += length;
      this.#time[j] = this.#time[i];
      this.#seq[j] = this.#seq[i];
      this.#offset[j] = this.#offset[i];
      this.#bodyBytes[j] = this.#bodyBytes[i];
      this.#head[j] = this.#head[i];
      this.#stuffing[j] = this.#stuffing[i];
      this.#envelope[j] = this.#envelope[i];
      this.#flag[j] = this.#flag[i];
      bits[j] = bits[i];
      j++;
    }
    bits.fill(0, j, n);
    this.#rows = j;
    this.#arenaUsed = used;
    this.#generation++;
    this.#ids.renumber(moved);
    const remap = (r: number) => moved[r];
    this.#byTime.rewrite(remap);
    for (const shared of this.#envelopes) shared?.visible.rewrite(remap);
    this.#states = new Map([...this.#states].map(([row, states]) => [moved[row], states]));
    this.#mailboxes = new Map([...this.#mailboxes].map(([row, flags]) => [moved[row], flags]));
    this.#wide = new Map([...this.#wide].filter(([row]) => moved[row] >= 0).map(([row, lengths]) => [moved[row], lengths]));
    let capacity = MIN_ROWS;
    while (capacity < 2 * j) capacity *= 2;
    if (capacity < this.#capacity) this.#resize(capacity);
  }
}

function remember(map: Map<string, Set<number>>, key: string, n: number): void {
  const set = map.get(key);
  if (set) set.add(n);
  else map.set(key, new Set([n]));
}

function forget(map: Map<string, Set<number>>, key: string, n: number): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(n);
  if (set.size === 0) map.delete(key);
}

/** A column of small numbers (Rule 5): one byte a row until a number needs two, then four. */
type NarrowColumn = Uint8Array | Uint16Array | Uint32Array;

/** Whether `array` views the whole of an ArrayBuffer of its own, which can then be transferred. */
function ownsBuffer(array: ArrayBufferView): boolean {
  return array.byteOffset === 0 && array.byteLength === array.buffer.byteLength && array.buffer instanceof ArrayBuffer;
}

/**
 * `array` with room for `length` elements and its contents: its buffer is moved into a larger
 * one (ArrayBuffer transfer), so the old memory goes at once, where a copy left it to the
 * collector (at a million rows the columns are 30 MB, held twice until a full collection).
 * An array that does not own its whole buffer is copied.
 */
function resized<T extends Float64Array | Uint32Array | Uint16Array | Uint8Array | Int32Array>(array: T, length: number): T {
  const make = array.constructor as new (from: ArrayBuffer | number) => T;
  if (ownsBuffer(array)) return new make((array.buffer as ArrayBuffer).transfer(length * array.BYTES_PER_ELEMENT));
  const next = new make(length);
  next.set(array.subarray(0, Math.min(length, array.length)) as never);
  return next;
}

/** `column`, or a wider copy of it when `value` does not fit its width. */
function fitting(column: NarrowColumn, value: number): NarrowColumn {
  if (value < 2 ** (8 * column.BYTES_PER_ELEMENT)) return column;
  const wider = value <= 0xffff ? new Uint16Array(column.length) : new Uint32Array(column.length);
  wider.set(column);
  return wider;
}

/** A record's message starts bodyBytes before its end, which is the final ".\r\n" (3 bytes). */
function bodyOffsetOf(offset: number, bytes: number, bodyBytes: number): number {
  return offset + bytes - 3 - bodyBytes;
}
