/**
 * @module Reading spool segments for replay: records as they come, damage with its position and
 * reason, through the spool's own parser (spool/segment-format.ts).
 * Rule 1: read-only. A segment is opened 'r' and never locked, cut or rewritten: replay runs
 *         beside a live `serve`, and recovery (which does cut torn tails) is not ours to run.
 * Rule 2: streaming. The file is read in windows; a record's body is a view of the window it was
 *         read in (no copy), and a window is never written again once records point into it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import {
  MAX_RECORD_LINE_BYTES,
  parseRecordAt,
  parseSegmentHeader,
  RECORD_MARKER,
  type EnvelopeCache,
  type ParsedRecord,
} from '../spool/segment-format.ts';

/** One read of a segment file; a record longer than this grows the window. */
export const WINDOW_BYTES = 1 << 20;

export type SegmentEvent =
  | {
      readonly kind: 'record';
      readonly record: ParsedRecord;
      /** The dot-stuffed message, without the final ".\r\n": a view of the window. */
      readonly stuffed: Uint8Array;
      /** Where the record starts in the file. */
      readonly offset: number;
    }
  | { readonly kind: 'damaged'; readonly offset: number; readonly bytes: number; readonly reason: string };

/**
 * A window over the file: `bytes` holds the file from `base` on. fill(keepFrom) drops what lies
 * before `keepFrom` (so relative positions shift down by it) and reads more into a fresh buffer,
 * at least doubling what is kept; the old buffer is left as it was.
 */
class Window {
  readonly #fd: number;
  readonly #chunkBytes: number;
  bytes: Buffer = Buffer.alloc(0);
  base = 0;
  eof = false;

  constructor(fd: number, chunkBytes: number) {
    this.#fd = fd;
    this.#chunkBytes = chunkBytes;
  }

  /** Returns false when nothing more could be read (end of file). */
  fill(keepFrom: number): boolean {
    if (this.eof) {
      this.bytes = this.bytes.subarray(keepFrom);
      this.base += keepFrom;
      return false;
    }
    const keep = this.bytes.length - keepFrom;
    const want = Math.max(this.#chunkBytes, keep);
    const next = Buffer.allocUnsafe(keep + want);
    this.bytes.copy(next, 0, keepFrom);
    let got = 0;
    while (got < want) {
      const n = readSync(this.#fd, next, keep + got, want - got, this.base + this.bytes.length + got);
      if (n === 0) {
        this.eof = true;
        break;
      }
      got += n;
    }
    this.base += keepFrom;
    this.bytes = next.subarray(0, keep + got);
    return got > 0;
  }
}

/**
 * Scans one segment file. Intact records are yielded in file order; a damaged stretch is yielded
 * once with where it starts, how long it is and why, and the scan resynchronises on the next
 * record that parses and passes its checksum (as spool recovery does, without cutting anything).
 */
export function* scanSegmentFile(file: string, chunkBytes: number = WINDOW_BYTES): Generator<SegmentEvent> {
  const fd = openSync(file, 'r');
  try {
    yield* scanWindows(new Window(fd, chunkBytes));
  } finally {
    closeSync(fd);
  }
}

function* scanWindows(w: Window): Generator<SegmentEvent> {
  let pos = 0;
  // A spool repeats its senders and recipients: each envelope text is parsed once per file.
  const envelopes: EnvelopeCache = new Map();
  // The header: "EHLO host" on the first line.
  while (!w.eof && w.bytes.indexOf(10) < 0 && w.bytes.length < MAX_RECORD_LINE_BYTES) w.fill(0);
  if (w.bytes.length === 0) return;
  const header = parseSegmentHeader(w.bytes);
  if (header !== null) pos = header;
  else {
    const found = yield* resync(w, 0, 0, 'the segment does not start with an EHLO line');
    if (found === null) return;
    pos = found;
  }

  for (;;) {
    if (pos >= w.bytes.length) {
      const more = w.fill(pos);
      pos = 0;
      if (!more) return;
      continue;
    }
    const scan = parseRecordAt(w.bytes, pos, envelopes);
    if (scan.kind === 'record') {
      const { record } = scan;
      yield {
        kind: 'record',
        record,
        stuffed: w.bytes.subarray(record.bodyOffset, record.bodyOffset + record.bodyBytes),
        offset: w.base + record.offset,
      };
      pos += record.bytes;
      continue;
    }
    if (scan.kind === 'short') {
      const more = w.fill(pos);
      pos = 0;
      if (more) continue;
      // At the end of the file: a torn tail, or a length that runs past the records after it.
      const found = yield* resync(w, pos, pos + 1, 'the record length runs past the next record', 'truncated: the file ends inside this record');
      if (found === null) return;
      pos = found;
      continue;
    }
    if (scan.end !== null) {
      yield { kind: 'damaged', offset: w.base + pos, bytes: scan.end - pos, reason: scan.reason };
      pos = scan.end;
      continue;
    }
    const found = yield* resync(w, pos, pos + 1, scan.reason);
    if (found === null) return;
    pos = found;
  }
}

/**
 * Finds the next intact record at or after `from` (relative), reading on as needed, and yields
 * the damage from `start` to it. Returns its relative position, or null when the file ends first
 * (then the damage runs to the end of the file and `atEnd` explains it, if given).
 */
function* resync(w: Window, start: number, from: number, reason: string, atEnd: string = reason): Generator<SegmentEvent, number | null> {
  const damageStart = w.base + start;
  let at = from;
  for (;;) {
    const marker = w.bytes.indexOf(RECORD_MARKER, at);
    if (marker >= 0) {
      const scan = parseRecordAt(w.bytes, marker);
      if (scan.kind === 'record') {
        yield { kind: 'damaged', offset: damageStart, bytes: w.base + marker - damageStart, reason };
        return marker;
      }
      if (scan.kind === 'bad' || w.eof) {
        at = marker + 1;
        continue;
      }
      // The candidate runs past the window: read on, keeping it.
      w.fill(marker);
      at = 0;
      continue;
    }
    // No marker in the window: keep only a tail where one could begin, and read on.
    const keepFrom = Math.min(w.bytes.length, Math.max(at, w.bytes.length - RECORD_MARKER.length + 1, 0));
    const end = w.base + w.bytes.length;
    if (!w.fill(keepFrom)) {
      yield { kind: 'damaged', offset: damageStart, bytes: end - damageStart, reason: atEnd };
      return null;
    }
    at = Math.max(0, at - keepFrom);
  }
}
