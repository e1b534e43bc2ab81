/**
 * @module Reclaiming space: retention, removal of finished segments, rewriting of mostly-dead
 * ones, snapshots of the state journal.
 * Rule 1: planning is pure; copying is I/O. Ids and record bytes never change, only locations.
 * Rule 2: publish by tmp + fsync + rename + dir fsync, then unlink the old; a crash between
 *         leaves two copies and the later segment wins. The active segment is never touched.
 */
import * as fs from 'node:fs';
import { transportState, type CopyState } from './copy-state.ts';
import { isQueued, type StateRecord } from './delivery-state.ts';
import type { Entry, SegmentInfo } from './index.ts';
import { readExactly, syncDirectory, syncDirectorySync, writeFully, type SpoolIo } from './journal.ts';
import { FILE_MODE } from './layout.ts';
import type { RemovalRecord } from './mailbox-state.ts';
import type { DamagedRecord } from './recovery.ts';
import { checkRecord } from './segment-format.ts';

export interface CompactionReport {
  /** Messages deleted by maxMessages / maxAgeMs. */
  retentionDeleted: number;
  /** Segments removed because every message in them was finished. */
  readonly removedSegments: string[];
  /** Segments whose live records were copied into `newSegments`, and then removed. */
  readonly rewrittenSegments: string[];
  readonly newSegments: string[];
  /** Records copied by the rewrite (ids unchanged). */
  movedRecords: number;
  reclaimedBytes: number;
  journalRewritten: boolean;
  /** Records whose checksum failed while being copied (set aside, as at recovery). */
  readonly damaged: DamagedRecord[];
}

export function emptyReport(): CompactionReport {
  return {
    retentionDeleted: 0,
    removedSegments: [],
    rewrittenSegments: [],
    newSegments: [],
    movedRecords: 0,
    reclaimedBytes: 0,
    journalRewritten: false,
    damaged: [],
  };
}

export interface RetentionLimits {
  readonly maxMessages?: number;
  readonly maxAgeMs?: number;
}

/** Messages still waiting for relay are the queue's business, not retention's. */
function isHeld(entry: Entry): boolean {
  return entry.visible && !entry.states.some(isQueued);
}

/**
 * Ids to delete so that at most maxMessages are kept and none is older than maxAgeMs (Mailpit's
 * --max and --max-age). Only held messages count as candidates; the oldest go first.
 */
export function planRetention(entries: Iterable<Entry>, visibleCount: number, limits: RetentionLimits, nowMs: number): string[] {
  const { maxMessages, maxAgeMs } = limits;
  if (maxMessages === undefined && maxAgeMs === undefined) return [];
  const held: Entry[] = [];
  for (const e of entries) if (isHeld(e)) held.push(e);
  held.sort((a, b) => a.timeMs - b.timeMs);
  const cutoff = maxAgeMs === undefined ? -Infinity : nowMs - maxAgeMs;
  let excess = maxMessages === undefined ? 0 : visibleCount - maxMessages;
  const out: string[] = [];
  for (const e of held) {
    if (e.timeMs < cutoff || excess > 0) {
      out.push(e.id);
      excess--;
    } else break;
  }
  return out;
}

export interface SegmentPlan {
  readonly remove: SegmentInfo[];
  /** In sequence order; their live records are packed into as few new segments as fit. */
  readonly rewrite: SegmentInfo[];
}

/**
 * Finished segments go. Mostly-dead ones (dead bytes over `deadRatio`) are rewritten, and so are
 * small ones (under a quarter of `segmentBytes`, often the output of earlier rewrites) when
 * there are at least two to merge, so the number of files stays bounded too.
 */
export function planSegments(
  segments: readonly SegmentInfo[],
  canTouch: (seg: SegmentInfo) => boolean,
  segmentBytes: number,
  deadRatio = 0.5,
): SegmentPlan {
  const remove: SegmentInfo[] = [];
  const rewrite: SegmentInfo[] = [];
  const small: SegmentInfo[] = [];
  for (const seg of segments) {
    if (!canTouch(seg)) continue;
    if (seg.liveRecords === 0) remove.push(seg);
    else if (seg.bytes - seg.headerBytes - seg.liveBytes > deadRatio * seg.bytes) rewrite.push(seg);
    else if (seg.bytes < segmentBytes / 4) small.push(seg);
  }
  if (small.length + rewrite.length >= 2) rewrite.push(...small);
  return { remove, rewrite: rewrite.sort((a, b) => a.seq - b.seq) };
}

/** Splits records, in order, into groups that each fill at most one segment (and at least one record). */
export function packRecords<T extends { readonly bytes: number }>(records: readonly T[], segmentBytes: number): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const r of records) {
    if (current.length > 0 && size + r.bytes > segmentBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(r);
    size += r.bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** The journal records that reproduce the current copy states of every tracked record. */
export function planJournalSnapshot(entries: Iterable<Entry>): { states: StateRecord[]; removals: RemovalRecord[] } {
  const states: StateRecord[] = [];
  const removals: RemovalRecord[] = [];
  for (const e of entries) {
    if (!e.visible) {
      // Removed for every recipient: one record says so.
      removals.push({ id: e.id, rcpt: null, atMs: removedAt(e.states[0]) });
      continue;
    }
    for (let i = 0; i < e.states.length; i++) {
      const s = e.states[i];
      const initial = e.local[i] ? 'local' : 'pending';
      if (s.kind === initial) continue;
      const state = transportState(s);
      if (state !== null) states.push({ id: e.id, rcpt: i, state });
      else if (s.kind === 'removed') removals.push({ id: e.id, rcpt: i, atMs: s.atMs });
    }
  }
  return { states, removals };
}

const removedAt = (s: CopyState | undefined): number => (s?.kind === 'removed' ? s.atMs : 0);

/** Yield to the event loop this often while copying, so sessions keep being served. */
const COPY_SLICE_BYTES = 4 << 20;

export interface CopyResult {
  /** New offset per entry, or -1 when its checksum failed and it was set aside instead. */
  readonly offsets: number[];
  readonly bytes: number;
}

/**
 * Copies records into a new segment and publishes it under `finalPath` (tmp + fsync + rename +
 * directory fsync). Each record's checksum is checked on the way; a failing one goes to `setAside`.
 */
export async function writeSegmentCopy(opts: {
  readonly io: SpoolIo;
  /** The read fd of the segment an entry is in now. */
  readonly sourceFd: (entry: Entry) => number;
  readonly entries: readonly Entry[];
  readonly header: Uint8Array;
  readonly tmpPath: string;
  readonly finalPath: string;
  readonly dir: string;
  readonly setAside: (entry: Entry, bytes: Buffer, reason: string) => void;
}): Promise<CopyResult> {
  const fd = fs.openSync(opts.tmpPath, 'wx', FILE_MODE);
  let open = true;
  try {
    let at = 0;
    writeFully(opts.io, fd, opts.header, at);
    at += opts.header.length;
    const offsets: number[] = [];
    let slice = 0;
    for (const e of opts.entries) {
      const bytes = readExactly(opts.sourceFd(e), e.offset, e.bytes);
      const why = checkRecord(bytes);
      if (why !== null) {
        opts.setAside(e, bytes, why);
        offsets.push(-1);
        continue;
      }
      writeFully(opts.io, fd, bytes, at);
      offsets.push(at);
      at += bytes.length;
      slice += bytes.length;
      if (slice >= COPY_SLICE_BYTES) {
        slice = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    await opts.io.datasync(fd);
    open = false;
    fs.closeSync(fd);
    fs.renameSync(opts.tmpPath, opts.finalPath);
    await syncDirectory(opts.dir);
    return { offsets, bytes: at };
  } catch (err) {
    if (open) fs.closeSync(fd);
    fs.rmSync(opts.tmpPath, { force: true });
    throw err;
  }
}

/** Publishes a journal snapshot with blocking calls: no append may run between its steps. */
export function writeJournalSnapshotSync(tmpPath: string, finalPath: string, dir: string, bytes: Uint8Array): void {
  const fd = fs.openSync(tmpPath, 'w', FILE_MODE);
  try {
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done, done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmpPath, finalPath);
  syncDirectorySync(dir);
}
