/**
 * @module Start-up scan: makes whole what a crash or a bad disk left, before anything is appended.
 * Rule 1: a torn tail (a last record cut short: it never got its 250) is cut off.
 * Rule 2: damage is never silently dropped: its bytes and a reason go to quarantine/ (as Haraka
 *         keeps error.* files), and the scan resynchronises on the next NOOP marker.
 * Rule 3: blocking I/O: it runs once, before the listener opens. A segment is read a window at a
 *         time (a record longer than the window whole), so start-up memory does not grow with
 *         segment size; damage is resolved on the bytes from it to the end of its file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseStateLine, type StateRecord } from './delivery-state.ts';
import type { LoginRecord } from './login-state.ts';
import type { MailboxRecord, RemovalRecord } from './mailbox-state.ts';
import { DIR_MODE, FILE_MODE, isTmpName, parseSegmentName, type SpoolLayout } from './layout.ts';
import { findNextRecord, parseRecordAt, parseSegmentHeader, type EnvelopeCache, type ParsedRecord } from './segment-format.ts';
import type { CoveredSegment } from './checkpoint.ts';
import { syncDirectorySync, type SpoolIo } from './journal.ts';

export interface SpoolLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface DamagedRecord {
  /** The spool file the bytes came from. */
  readonly file: string;
  readonly offset: number;
  readonly bytes: number;
  readonly reason: string;
  /** Where the bytes were set aside (a reason file sits beside it), or null if that failed. */
  readonly quarantined: string | null;
}

export interface RecoveryReport {
  /** Messages found intact. */
  records: number;
  /** Bytes cut off the ends of files: writes that never got their 250. */
  tornBytes: number;
  readonly damaged: DamagedRecord[];
}

export interface ScannedSegment {
  readonly seq: number;
  readonly name: string;
  /** File size after any torn tail was cut. */
  readonly bytes: number;
  /** 0 when the header was damaged (the segment is then rewritten). */
  readonly headerBytes: number;
  readonly records: readonly ParsedRecord[];
  /** Damage was set aside: the segment is rewritten without it. */
  readonly damaged: boolean;
  /** The checkpoint's records of this segment (up to its `covered`); `records` came after. */
  readonly checkpoint: CoveredSegment | null;
}

export interface RecoveryContext {
  readonly layout: SpoolLayout;
  readonly log: SpoolLog;
  readonly now: () => number;
  /** The read call of start-up's scan (tests count what it reads). */
  readonly io?: SpoolIo;
  /**
   * Called every SCAN_COLLECT_EVERY records a scan parses: a collection of the garbage their
   * parsing left (serve: one that JSC runs beside the thread), which otherwise grows with the
   * segment until the spool collects after it.
   */
  readonly collect?: () => void;
}

/**
 * Creates the spool folders (owner-only) and the folders above them; a folder just created is
 * made durable in its parent.
 */
export function prepareDirectories(layout: SpoolLayout): void {
  const above = fs.mkdirSync(path.dirname(layout.dir), { recursive: true });
  if (above !== undefined) {
    for (let p = path.dirname(layout.dir); ; p = path.dirname(p)) {
      syncDirectorySync(path.dirname(p));
      if (p === above || p === path.dirname(p)) break;
    }
  }
  for (const dir of [layout.dir, layout.segmentsDir, layout.journalDir, layout.quarantineDir]) {
    if (fs.existsSync(dir)) continue;
    fs.mkdirSync(dir, { mode: DIR_MODE });
    syncDirectorySync(path.dirname(dir));
  }
}

/** Removes what a compaction or journal snapshot left before its rename: never acknowledged data. */
export function removeLeftovers(ctx: RecoveryContext): void {
  for (const dir of [ctx.layout.segmentsDir, ctx.layout.journalDir]) {
    for (const name of fs.readdirSync(dir)) {
      if (!isTmpName(name)) continue;
      fs.rmSync(path.join(dir, name), { force: true });
      ctx.log.info('spool: removed an unfinished compaction file', { file: path.join(dir, name) });
    }
  }
}

/**
 * Copies damaged bytes and a reason file into the quarantine folder, both fsynced. Evidence is
 * never overwritten: the same bytes found again reuse their file, other bytes get a new name.
 */
export function quarantine(
  ctx: RecoveryContext,
  source: { file: string; offset: number; bytes: Uint8Array; reason: string },
): string | null {
  const name = path.basename(source.file);
  let target = ctx.layout.quarantinePath(name, source.offset);
  for (let n = 1; fs.existsSync(target); n++) {
    if (fs.readFileSync(target).equals(source.bytes)) return target;
    target = ctx.layout.quarantinePath(name, source.offset, n);
  }
  const reasonText =
    `file: ${source.file}\noffset: ${source.offset}\nbytes: ${source.bytes.length}\n` +
    `found: ${new Date(ctx.now()).toISOString()}\nreason: ${source.reason}\n`;
  try {
    writeDurably(target, source.bytes);
    writeDurably(`${target}.reason`, Buffer.from(reasonText, 'utf8'));
    syncDirectorySync(ctx.layout.quarantineDir);
    return target;
  } catch (err) {
    ctx.log.error('spool: could not quarantine damaged bytes', { file: source.file, offset: source.offset, err: String(err) });
    return null;
  }
}

function writeDurably(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w', FILE_MODE);
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function cutFile(file: string, size: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.ftruncateSync(fd, size);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Segment files in sequence order. */
export function listSegments(layout: SpoolLayout): { seq: number; name: string }[] {
  const out: { seq: number; name: string }[] = [];
  for (const name of fs.readdirSync(layout.segmentsDir)) {
    const seq = parseSegmentName(name);
    if (seq !== null) out.push({ seq, name });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/**
 * Scans every segment: keeps intact records, cuts torn tails, quarantines damage. A segment the
 * checkpoint covers is scanned only past what it covers, while it is the same file, as long.
 * Segments come one at a time, in order, so that a caller that takes each one's records before
 * asking for the next never holds more than one segment's (a spool scanned whole, a million
 * records, held them all as objects at once: 925 MiB).
 */
export function* recoverSegments(
  ctx: RecoveryContext,
  report: RecoveryReport,
  covered: ReadonlyMap<number, CoveredSegment> = new Map(),
): Generator<ScannedSegment> {
  // Records whose stored envelopes are equal (a load test's) are parsed once and share the result.
  const envelopes: EnvelopeCache = new Map();
  const view = new SegmentWindow(ctx);
  for (const { seq, name } of listSegments(ctx.layout)) {
    const known = covered.get(seq);
    let trusted: CoveredSegment | null = null;
    if (known) {
      const st = fs.statSync(ctx.layout.segmentPath(seq));
      if (st.ino === known.ino && st.size >= known.covered) trusted = known;
      else ctx.log.warn('spool: a segment changed since the checkpoint; scanning it whole', { file: ctx.layout.segmentPath(seq) });
    }
    const scanned = recoverSegment(ctx, report, seq, name, envelopes, trusted, view);
    if (scanned) yield scanned;
  }
}

/** Bytes start-up reads of a segment at a time; a record longer than this is read whole. */
const SCAN_WINDOW_BYTES = 1 << 20;
/**
 * Records parsed between two of the context's collections. A million records scanned (a copied
 * spool) peaked at 279 MiB of RSS with a collection after each segment only; 218 with one every
 * 4,096 records (223 every 8,192, 213 every 2,048), its time within this machine's noise.
 */
const SCAN_COLLECT_EVERY = 4096;

/**
 * A view of one segment file from `base` on, read through the context's read call: whole
 * records are parsed from it, so what start-up holds is about a window or one record, never
 * a whole segment. `atEnd` says the view reaches the end of the file.
 */
class SegmentWindow {
  bytes: Buffer = Buffer.alloc(0);
  base = 0;
  #buffer: Buffer = Buffer.alloc(0);
  #fd = -1;
  #size = 0;
  readonly #read: (fd: number, b: Uint8Array, p: number) => number;

  constructor(ctx: RecoveryContext) {
    this.#read = ctx.io?.read ?? ((f: number, b: Uint8Array, p: number) => fs.readSync(f, b, 0, b.length, p));
  }

  /** Views another file (its buffer is reused). */
  open(fd: number): void {
    this.#fd = fd;
    this.#size = fs.fstatSync(fd).size;
    this.bytes = this.#buffer.subarray(0, 0);
    this.base = 0;
  }

  get atEnd(): boolean {
    return this.base + this.bytes.length >= this.#size;
  }

  /** Views at least `want` bytes from file offset `from` (fewer at the end of the file). */
  load(from: number, want = SCAN_WINDOW_BYTES): void {
    const length = Math.max(0, Math.min(Math.max(want, SCAN_WINDOW_BYTES), this.#size - from));
    if (this.#buffer.length < length) this.#buffer = Buffer.allocUnsafe(length);
    const out = this.#buffer.subarray(0, length);
    let done = 0;
    while (done < length) {
      const n = this.#read(this.#fd, out.subarray(done), from + done);
      if (n <= 0) break;
      done += n;
    }
    // A file shorter than it was at open ends where reading ended.
    if (done < length) this.#size = from + done;
    this.base = from;
    this.bytes = out.subarray(0, done);
  }

  /** Views everything from `from` to the end of the file: damage is handled on whole bytes. */
  loadRest(from: number): void {
    this.load(from, this.#size - from);
  }
}

function recoverSegment(
  ctx: RecoveryContext,
  report: RecoveryReport,
  seq: number,
  name: string,
  envelopes: EnvelopeCache,
  checkpoint: CoveredSegment | null,
  view: SegmentWindow,
): ScannedSegment | null {
  const file = ctx.layout.segmentPath(seq);
  const fd = fs.openSync(file, 'r');
  try {
    view.open(fd);
    return scanSegment(ctx, report, seq, name, envelopes, checkpoint, file, view);
  } finally {
    fs.closeSync(fd);
  }
}

function scanSegment(
  ctx: RecoveryContext,
  report: RecoveryReport,
  seq: number,
  name: string,
  envelopes: EnvelopeCache,
  checkpoint: CoveredSegment | null,
  file: string,
  view: SegmentWindow,
): ScannedSegment | null {
  // Offsets below are within `view.bytes`; `view.base` turns them into offsets in the file.
  view.load(checkpoint?.covered ?? 0);
  const setAside = (offset: number, end: number, reason: string) => {
    const at = view.base + offset;
    const quarantined = quarantine(ctx, { file, offset: at, bytes: view.bytes.subarray(offset, end), reason });
    report.damaged.push({ file, offset: at, bytes: end - offset, reason, quarantined });
    ctx.log.error('spool: damaged record set aside', { file, offset: at, bytes: end - offset, reason, quarantined });
  };

  let headerBytes = checkpoint ? checkpoint.headerBytes : (parseSegmentHeader(view.bytes) ?? 0);
  let damaged = false;
  let pos = checkpoint ? 0 : headerBytes;
  if (headerBytes === 0) {
    view.loadRest(0);
    const bytes = view.bytes;
    const first = findNextRecord(bytes, 0);
    if (first < 0 && bytes.indexOf(0x0a) < 0 && bytes.length < 512) {
      // Created, then the process died before its header was complete: it never held a record.
      fs.rmSync(file, { force: true });
      syncDirectorySync(ctx.layout.segmentsDir);
      report.tornBytes += bytes.length;
      ctx.log.warn('spool: removed a segment that never got its first record', { file });
      return null;
    }
    const end = first < 0 ? bytes.length : first;
    setAside(0, end, 'the segment does not start with an EHLO line');
    damaged = true;
    pos = end;
    headerBytes = 0;
  }

  const records: ParsedRecord[] = [];
  for (;;) {
    if (pos >= view.bytes.length) {
      if (view.atEnd) break;
      view.load(view.base + pos);
      pos = 0;
    }
    const bytes = view.bytes;
    const scan = parseRecordAt(bytes, pos, envelopes);
    if (scan.kind === 'record') {
      const r = scan.record;
      records.push(view.base === 0 ? r : { ...r, offset: view.base + r.offset, bodyOffset: view.base + r.bodyOffset });
      if (records.length % SCAN_COLLECT_EVERY === 0) ctx.collect?.();
      pos += r.bytes;
      continue;
    }
    if (!view.atEnd) {
      // A record longer than what is in view: view it whole (by its length, or twice the bytes
      // until it fits). Anything else is damage, resolved on the bytes to the end of the file.
      if (scan.kind === 'short') view.load(view.base + pos, scan.needs ?? 2 * (bytes.length - pos));
      else view.loadRest(view.base + pos);
      pos = 0;
      continue;
    }
    const size = bytes.length;
    let next: number;
    if (scan.kind === 'bad' && scan.end !== null) next = scan.end === size ? -1 : scan.end;
    else next = findNextRecord(bytes, pos + 1);
    if (next < 0) {
      if (scan.kind === 'short') {
        report.tornBytes += size - pos;
        ctx.log.warn('spool: cut a torn record at the end of a segment (it was never acknowledged)', {
          file,
          offset: view.base + pos,
          bytes: size - pos,
        });
      } else {
        // Nothing valid follows, so this may be a torn write too; its bytes are kept anyway.
        setAside(pos, size, `${scan.reason} (last record in the file)`);
      }
      cutFile(file, view.base + pos);
      view.bytes = bytes.subarray(0, pos);
      break;
    }
    setAside(pos, next, scan.kind === 'short' ? 'the record length runs past the next record' : scan.reason);
    damaged = true;
    pos = next;
  }
  report.records += records.length;
  return { seq, name, bytes: view.base + view.bytes.length, headerBytes, records, damaged, checkpoint };
}

export interface RecoveredJournal {
  readonly records: readonly StateRecord[];
  /** Mailbox-state records, in journal order (independent of the delivery states). */
  readonly mailbox: readonly MailboxRecord[];
  /** Removals, in journal order (final, so independent of the delivery states too). */
  readonly removals: readonly RemovalRecord[];
  /** Login-state records, in journal order. */
  readonly logins: readonly LoginRecord[];
  /** Valid bytes (the file is cut to this length). */
  readonly bytes: number;
  /** Bad lines were set aside: the journal should be rewritten without them. */
  readonly damaged: boolean;
}

/** Reads the state journal: applies good lines in order, cuts a torn last line, quarantines bad ones. */
export function recoverJournal(ctx: RecoveryContext, report: RecoveryReport): RecoveredJournal {
  const file = ctx.layout.journalPath;
  if (!fs.existsSync(file)) return { records: [], mailbox: [], removals: [], logins: [], bytes: 0, damaged: false };
  const bytes = fs.readFileSync(file);
  const records: StateRecord[] = [];
  const mailbox: MailboxRecord[] = [];
  const removals: RemovalRecord[] = [];
  const logins: LoginRecord[] = [];
  let damaged = false;
  let pos = 0;
  while (pos < bytes.length) {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) {
      report.tornBytes += bytes.length - pos;
      ctx.log.warn('spool: cut a torn line at the end of the state journal', { file, offset: pos, bytes: bytes.length - pos });
      cutFile(file, pos);
      return { records, mailbox, removals, logins, bytes: pos, damaged };
    }
    const line = parseStateLine(bytes.subarray(pos, nl));
    if (line.kind === 'record') {
      records.push(line.record);
    } else if (line.kind === 'mailbox') {
      mailbox.push(line.record);
    } else if (line.kind === 'removal') {
      removals.push(line.record);
    } else if (line.kind === 'login') {
      logins.push(line.record);
    } else if (line.kind === 'bad') {
      const quarantined = quarantine(ctx, { file, offset: pos, bytes: bytes.subarray(pos, nl + 1), reason: line.reason });
      report.damaged.push({ file, offset: pos, bytes: nl + 1 - pos, reason: line.reason, quarantined });
      ctx.log.error('spool: damaged journal line set aside', { file, offset: pos, reason: line.reason, quarantined });
      damaged = true;
    }
    pos = nl + 1;
  }
  return { records, mailbox, removals, logins, bytes: bytes.length, damaged };
}
