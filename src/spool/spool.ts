/**
 * @module The spool façade: messages (segments) and delivery state (journal) in one directory.
 * Rule 1: commit() resolves only once its batch is fdatasync'ed (a new segment's folder too): a
 *         250 then survives kill -9 and power loss. Index, lists and stats follow what is durable.
 * Rule 2: one Spool per directory (the lock file); only the main thread mutates it.
 * Rule 3: I/O failures become SmtpError: 452 4.3.1 (spoolFull) or 451 4.3.0 (spoolUnavailable),
 *         logged once per kind of failure until a commit succeeds again.
 * Rule 4: a spool whose files were unlinked under it (rm -rf of the data directory) refuses every
 *         commit until restart: appends to an unlinked inode would be acknowledged, then lost.
 */
import * as fs from 'node:fs';
import { mailboxKey, type Mailbox } from '../core/address.ts';
import { dotUnstuff } from '../core/data.ts';
import type { Envelope } from '../core/envelope.ts';
import { SmtpError } from '../core/errors.ts';
import { replies } from '../core/replies.ts';
import type { CommitRequest, CommittedMessage } from './commit.ts';
import { chainChunks, encodeChunk, loadChunk, scanLog, type ChunkHead, type LogRead } from './checkpoint.ts';
import {
  emptyReport,
  packRecords,
  planJournalSnapshot,
  planRetention,
  planSegments,
  writeJournalSnapshotSync,
  writeSegmentCopy,
  type CompactionReport,
} from './compaction.ts';
import type { CopyState } from './copy-state.ts';
import { formatLoginRecord, formatMailboxRecord, formatRemovalRecord, formatStateRecord, formatStateRecords, isQueued, type DeliveryState, type StateRecord } from './delivery-state.ts';
import { RelayQueue, type DeliveryQueue } from './delivery-queue.ts';
import { SpoolIndex, type Entry, type ListQuery, type QueuedKind, type SegmentInfo, type StoredRecord } from './index.ts';
import type { MailStore } from './mail-store.ts';
import { LoginStates, type LoginRecord, type LoginStateStore } from './login-state.ts';
import type { MailboxFlags, MailboxRecord, RemovalRecord } from './mailbox-state.ts';
import { SpoolMailStore } from './spool-mail-store.ts';
import { AppendFile, nodeIo, readExactly, syncDirectory, writeFully, type SpoolIo } from './journal.ts';
import { createLayout, FILE_MODE, type SpoolLayout } from './layout.ts';
import { acquireLock, releaseLock, type LockHolder } from './lock.ts';
import {
  prepareDirectories,
  quarantine,
  recoverJournal,
  recoverSegments,
  removeLeftovers,
  type RecoveryContext,
  type RecoveryReport,
  type ScannedSegment,
  type SpoolLog,
} from './recovery.ts';
import { formatRecord, formatSegmentHeader, parseRecordSession, stuffingDots } from './segment-format.ts';
import { GroupCommit } from './writer.ts';

export type { CompactionReport } from './compaction.ts';
export type { CopyState } from './copy-state.ts';
export type { DeliveryState } from './delivery-state.ts';
export type { DeliveryJob, DeliveryQueue, OperatorResult, Outcome, ReportMaker } from './delivery-queue.ts';
export type { HeaderSummary } from './header-summary.ts';
export type { CommitRequest, CommittedMessage, SessionFacts } from './commit.ts';
export type { MailStore } from './mail-store.ts';
export type { ListQuery, QueuedKind } from './index.ts';
export type { SpoolIo } from './journal.ts';
export type { DamagedRecord, RecoveryReport, SpoolLog } from './recovery.ts';
export { SpoolLockedError, type LockHolder } from './lock.ts';

/** Where a message's stored bytes are: a segment file, their offset in it and their length. */
export interface StoredAt {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
}

export interface SpoolOptions {
  readonly dir: string;
  /** Written in each segment's EHLO line. */
  readonly hostname: string;
  readonly now: () => number;
  readonly log: SpoolLog;
  /** Catcher-mode retention, applied by compact(): keep at most this many messages. */
  readonly maxMessages?: number;
  /** Catcher-mode retention, applied by compact(): delete messages older than this. */
  readonly maxAgeMs?: number;
  /** A segment is closed and a new one started past this size; default 64 MiB. */
  readonly segmentBytes?: number;
  /** The write and fdatasync calls; tests replace them to inject ENOSPC or EIO. */
  readonly io?: SpoolIo;
  /**
   * A collection of the garbage a start-up scan leaves, every few thousand records it parses
   * (recovery.ts, RecoveryContext.collect); default Bun.gc(false), which JSC runs beside the thread.
   */
  readonly collect?: () => void;
  /** The pid written in the lock file; default process.pid. */
  readonly pid?: number;
  /** What this process is, written in the lock file beside the pid; default serve. */
  readonly holder?: LockHolder;
  /**
   * Records made durable (or scanned at start-up) beyond the checkpoint before the next
   * checkpoint chunk is written; default 10,000. Start-up reads at most about this many records.
   */
  readonly checkpointEvery?: number;
  /** Told of each message once it is durable, with what an index stores of it. */
  readonly onCommit?: (message: CommittedMessage) => void;
}

export interface RecipientInfo {
  readonly mailbox: Mailbox;
  /** "local@domain" as given in RCPT. */
  readonly address: string;
  /** Its transport state when relayed, 'local' when held in a local mailbox, or 'removed'. */
  readonly state: CopyState;
}

export interface MessageInfo {
  readonly id: string;
  readonly timeMs: number;
  /** "local@domain", or "<>" for the null reverse-path. */
  readonly sender: string;
  readonly envelope: Envelope;
  readonly recipients: readonly RecipientInfo[];
  /** The message's exact size: unstuffed, as the client sent it plus our Received header. */
  readonly size: number;
  /** Segment file name, and where the record's NOOP line starts in it. */
  readonly segment: string;
  readonly offset: number;
}

/** The SMTP session of a message, as its record holds it (Spool.session()). */
export interface StoredSession {
  readonly id: string;
  readonly timeMs: number;
  /** null for a record written before these fields were. */
  readonly clientAddress: string | null;
  readonly heloName: string | null;
  /** "TLSv1.3" and the like; null for a clear session (or an old record). */
  readonly tls: string | null;
  /** The envelope as stored (its authUser is the AUTH identity). */
  readonly envelope: Envelope;
  readonly size: number;
  /** A segment of this one transaction: "EHLO <helo name>", then the record as stored. */
  readonly replayable: Uint8Array;
}

/** A message held in some local mailbox, as localMessages() lists it. */
export interface LocalMessage {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  /** The recipients ("local@domain") whose copy is held locally and not removed, each once. */
  readonly localRecipients: readonly string[];
  /** The mailbox state journalled under the key asked for, or null when none was. */
  readonly state: MailboxFlags | null;
}

/** The addresses ("local@domain") of the recipients whose copy is 'local', each once, in envelope order. */
export function localAddresses(envelope: Envelope, states: readonly CopyState[]): string[] {
  const out: string[] = [];
  envelope.recipients.forEach((r, i) => {
    if (states[i]?.kind !== 'local') return;
    const address = mailboxKey(r.mailbox);
    if (!out.includes(address)) out.push(address);
  });
  return out;
}

/** One recipient that still needs a relay attempt. */
export interface DeliveryInfo {
  readonly id: string;
  readonly rcptIndex: number;
  readonly recipient: Mailbox;
  readonly state: DeliveryState;
}

export interface SpoolStats {
  /** Messages listed (not deleted). */
  readonly messages: number;
  readonly segments: number;
  /** Bytes in segments and the journal. */
  readonly bytes: number;
  /** Messages made durable since open. */
  readonly commits: number;
  /** Group-commit batches since open: one fdatasync round each. */
  readonly syncBatches: number;
  /** The time of the oldest listed message (epoch ms), or null when none is listed. */
  readonly oldestMs: number | null;
}

/** get/readMessage/setState name a message the spool does not hold (or no longer lists). */
export class MessageNotFoundError extends Error {
  readonly id: string;
  constructor(id: string) {
    super(`no message ${id} in the spool`);
    this.name = 'MessageNotFoundError';
    this.id = id;
  }
}

type Durable =
  | { readonly kind: 'message'; readonly record: StoredRecord }
  | { readonly kind: 'state'; readonly record: StateRecord }
  | { readonly kind: 'mailbox'; readonly record: MailboxRecord }
  | { readonly kind: 'removal'; readonly record: RemovalRecord }
  /** Login records were applied when written; the batch only waits for them to be durable. */
  | { readonly kind: 'logins' };

interface ActiveSegment {
  readonly file: AppendFile;
  readonly info: SegmentInfo;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Read fds kept open across reads (least recently used closed first). */
const READ_FDS_KEPT = 32;
/** A journal is rewritten once it is this big and mostly obsolete. */
const JOURNAL_SNAPSHOT_MIN_BYTES = 256 * 1024;
const DEFAULT_CHECKPOINT_EVERY = 10_000;
/** Records loaded from the checkpoint past which open() ends with a full garbage collection. */
const LARGE_START_RECORDS = 100_000;
/** Records scanned in one segment (not read from the checkpoint) after which start-up collects its garbage. */
const SCAN_COLLECT_RECORDS = 20_000;
/** The checkpoint log is rewritten once it is this big and mostly about segments that are gone. */
const CHECKPOINT_REWRITE_MIN_BYTES = 4 * 1024 * 1024;
/** Bytes a checkpoint holds per record, about (columns, id, framing): to judge when to rewrite. */
const CHECKPOINT_BYTES_PER_RECORD = 56;

const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const UNAVAILABLE_REASONS: Readonly<Record<string, string>> = Object.freeze({
  EACCES: 'the spool is not writable',
  EPERM: 'the spool is not writable',
  EROFS: 'the spool is on a read-only file system',
  EIO: 'an I/O error on the spool disk',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  ENOENT: 'the spool directory is missing',
});

/**
 * Opens (creating if needed) the spool in opts.dir: takes the lock, recovers what a crash left,
 * rebuilds the index. Throws SpoolLockedError when another live process has it open.
 */
export function openSpool(opts: SpoolOptions): Promise<Spool> {
  return Spool.open(opts);
}

export class Spool {
  readonly #opts: SpoolOptions;
  readonly #layout: SpoolLayout;
  readonly #pid: number;
  readonly #io: SpoolIo;
  readonly #ctx: RecoveryContext;
  readonly #segmentBytes: number;
  readonly #index = new SpoolIndex();
  readonly #writer: GroupCommit<Durable>;
  readonly #queue: RelayQueue;
  readonly #store: SpoolMailStore;
  readonly #logins = new LoginStates();
  readonly #readFds = new Map<number, number>();
  readonly #retired: ActiveSegment[] = [];
  #active: ActiveSegment | null = null;
  #journal: AppendFile | null = null;
  #journalLines = 0;
  #lastSeq = 0;
  #commits = 0;
  #compacting: Promise<CompactionReport> | null = null;
  #closed = false;
  /** Set once a file of the spool was found unlinked (Rule 4). */
  #vanished: SmtpError | null = null;
  /** The failure last logged ("op code"), so a run of equal failures is one log line. */
  #failing: string | null = null;
  #recovery: RecoveryReport = { records: 0, tornBytes: 0, damaged: [] };
  /** Durable records no checkpoint chunk covers yet (moved ones again under their new segment). */
  /**
   * Their ids: a chunk is made from the index's rows when it is written, with the index's shared
   * envelopes. Records kept here held each message's own envelope until then (ten thousand of
   * them), and a chunk listed an envelope per message received over SMTP: 135 bytes a record in
   * the checkpoint instead of 49, and a million such envelopes decoded at start-up.
   */
  #uncovered: string[] = [];
  /** Per segment: the inode and the offset its checkpoint chunks cover up to. */
  readonly #coverage = new Map<number, { ino: number; covered: number }>();
  #checkpointFd: number | null = null;
  /** The background fdatasync of the last chunks written; an fd is closed only after it. */
  #checkpointSync: Promise<void> = Promise.resolve();
  #checkpointBytes = 0;
  #checkpointScheduled = false;
  /** Records loaded from the checkpoint at open, instead of being read and checksummed. */
  #checkpointed = 0;

  private constructor(opts: SpoolOptions, layout: SpoolLayout, pid: number) {
    this.#opts = opts;
    this.#layout = layout;
    this.#pid = pid;
    this.#io = opts.io ?? nodeIo;
    this.#ctx = { layout, log: opts.log, now: opts.now, io: opts.io, collect: opts.collect ?? (() => Bun.gc(false)) };
    this.#segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.#writer = new GroupCommit<Durable>({
      onDurable: (items) => this.#onDurable(items),
      check: (files) => this.#checkLinked(files),
      onFailure: (err, files) => this.#onSyncFailure(err, files),
      onBug: (err) => opts.log.error('spool: bookkeeping failed after a durable batch', { err: String(err) }),
    });
    this.#queue = new RelayQueue({
      entry: (id) => this.#index.record(id),
      relayView: (id) => this.#index.relayView(id),
      segmentPath: (seq) => this.#layout.segmentPath(seq),
      commitBatch: (states, bounces, removals) => this.#commitBatch(states, bounces, removals),
      readMessage: (id) => this.readMessage(id),
    });
    this.#store = new SpoolMailStore({
      index: this.#index,
      readHead: (entry, bytes) => readExactly(this.#readFd(entry.seq), entry.bodyOffset, Math.min(bytes, entry.bodyBytes)),
      readMessage: (id) => this.readMessage(id),
      appendRemovals: (records) => this.#appendRemovals(records),
      appendMailbox: (records) => this.#appendMailbox(records),
      now: opts.now,
    });
  }

  /** The relay's view: due recipients, leased as jobs. */
  get deliveryQueue(): DeliveryQueue {
    return this.#queue;
  }

  /** The readers' view: mailboxes, flags, expunge. */
  get mailStore(): MailStore {
    return this.#store;
  }

  /** The readers' per-login state: UIDs, flags and expunges of each IMAP/POP3 login (login-state.ts). */
  get loginStates(): LoginStateStore {
    return {
      mailbox: (login) => this.#logins.mailbox(login),
      loginsHolding: (id) => this.#logins.loginsHolding(id),
      write: (records) => this.#appendLogins(records),
    };
  }

  /** What the start-up scan found: intact records, bytes cut from torn tails, damage set aside. */
  get recovery(): RecoveryReport {
    return this.#recovery;
  }

  /** See openSpool(). */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const layout = createLayout(opts.dir);
    const pid = opts.pid ?? process.pid;
    prepareDirectories(layout);
    acquireLock(layout.dir, layout.lockPath, pid, opts.holder);
    try {
      const spool = new Spool(opts, layout, pid);
      await spool.#recover();
      // A large start leaves garbage (the chunks' decoded headers, the id table's earlier sizes,
      // and after a scan every record's parse): collected now (tens of ms at a million records),
      // it does not sit in the RSS until later (a copied spool of a million, scanned whole, left
      // 678 MiB); after a turn of the event loop, so that no stale pointer on the stack (which
      // the collector scans conservatively) keeps any of it.
      if (spool.#recovery.records >= LARGE_START_RECORDS) {
        await new Promise((resolve) => setImmediate(resolve));
        Bun.gc(true);
      }
      return spool;
    } catch (err) {
      releaseLock(layout.lockPath, pid);
      throw err;
    }
  }

  async #recover(): Promise<void> {
    const ctx = this.#ctx;
    removeLeftovers(ctx);
    const report = this.#recovery;
    const checkpoint = this.#readCheckpoint();
    const chunks = checkpoint.heads;
    const scanned: ScannedSegment[] = [];
    let journal: ReturnType<typeof recoverJournal>;
    try {
      const chains = chainChunks(chunks);
      // Room for the records the chains describe, at once: a segment scanned whole instead (a
      // copy, with new inodes) holds about as many. Not for every chunk in the log: it may also
      // describe segments as they were before such a scan.
      let records = 0;
      let idBytes = 0;
      for (const chain of chains.values()) {
        for (const c of chain.chunks) {
          records += c.count;
          idBytes += c.idBytes + 1;
        }
      }
      this.#index.reserve(records, idBytes);
      for (const seg of recoverSegments(ctx, report, chains)) {
        // What the index may still need room for: the records scanned past (or without) a chain.
        let ids = 0;
        for (const r of seg.records) ids += r.id.length + 1;
        this.#index.reserve(seg.records.length, ids);
        this.#track(seg, checkpoint.read);
        // Tracked: its records are let go before the next segment is scanned, the checkpoint
        // covers them now (written for a million at the end, its chunks' records peaked at
        // 780 MiB), and a large scan's garbage is collected before it piles up.
        scanned.push({ ...seg, records: [] });
        if (this.#uncovered.length >= this.#checkpointEvery) this.#writeCheckpoint();
        if (seg.records.length >= SCAN_COLLECT_RECORDS) Bun.gc(true);
      }
      journal = recoverJournal(ctx, report);
    } finally {
      checkpoint.close();
    }
    this.#index.finishLoad();
    report.records += this.#checkpointed;
    for (const r of journal.records) this.#index.applyState(r.id, r.rcpt, r.state);
    for (const r of journal.removals) this.#index.applyRemoval(r.id, r.rcpt, r.atMs);
    for (const r of journal.mailbox) this.#index.applyMailbox(r.id, r.mailbox, r.flags);
    for (const r of journal.logins) this.#logins.apply(r);
    this.#journalLines = journal.records.length + journal.removals.length + journal.mailbox.length + journal.logins.length;
    for (const e of this.#index.relayViews()) this.#queue.note(e);
    // A segment a checkpoint names may be gone; its number is still never given out again.
    this.#lastSeq = Math.max(0, ...scanned.map((s) => s.seq), ...chunks.map((c) => c.seq));

    this.#journal = fs.existsSync(this.#layout.journalPath)
      ? AppendFile.openExisting(this.#layout.journalPath, journal.bytes, this.#io)
      : AppendFile.create(this.#layout.journalPath, new Uint8Array(0), this.#io);

    // Damaged bytes are in quarantine now; rewrite their segments so the spool holds none.
    const damaged = new Set(scanned.filter((s) => s.damaged).map((s) => s.seq));
    const toRewrite = [...damaged].map((seq) => this.#index.segment(seq)).filter((s) => s !== undefined);
    if (toRewrite.length > 0) {
      await this.#rewriteSegments(toRewrite, emptyReport()).catch((err) => this.#logIo('rewrite after recovery', err));
    }
    if (journal.damaged && !this.#snapshotJournal()) {
      this.#opts.log.warn('spool: the state journal keeps its damaged lines until the next compaction');
    }

    const last = scanned.at(-1);
    const info = last && !damaged.has(last.seq) ? this.#index.segment(last.seq) : undefined;
    if (last && info && last.headerBytes > 0 && last.bytes < this.#segmentBytes) {
      this.#active = { file: AppendFile.openExisting(this.#layout.segmentPath(last.seq), last.bytes, this.#io), info };
    }
    if (this.#uncovered.length >= this.#checkpointEvery) this.#writeCheckpoint();
  }

  get #checkpointEvery(): number {
    return this.#opts.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
  }

  /**
   * The heads of the checkpoint's whole chunks, and how to read them again; a torn or damaged
   * end is cut off (it only costs a scan). The log is read a chunk at a time into one buffer, so
   * what a start holds beside the index is one chunk, not the whole file (a map of it, or a copy,
   * would stay in the RSS until the collector frees it).
   */
  #readCheckpoint(): { heads: readonly ChunkHead[]; read: LogRead; close(): void } {
    const none = { heads: [], read: () => Buffer.alloc(0), close() {} };
    const file = this.#layout.checkpointPath;
    if (!fs.existsSync(file)) return none;
    const fd = fs.openSync(file, 'r');
    let buffer = Buffer.alloc(0);
    const read: LogRead = (at, length) => {
      if (buffer.length < length) buffer = Buffer.allocUnsafeSlow(Math.max(length, 2 * buffer.length));
      const got = fs.readSync(fd, buffer, 0, length, at);
      return buffer.subarray(0, got);
    };
    const log = scanLog(fs.fstatSync(fd).size, read);
    if (log.problem !== null) {
      this.#opts.log.warn('spool: the checkpoint ends early; what it does not cover is scanned', { file, offset: log.validBytes, problem: log.problem });
      fs.truncateSync(file, log.validBytes);
    }
    this.#checkpointBytes = log.validBytes;
    return { heads: log.heads, read, close: () => fs.closeSync(fd) };
  }

  /** Adds a segment's records from its checkpoint chunks, read again: no checksum, no parse of a record. */
  #trackCheckpointed(seq: number, heads: readonly ChunkHead[], read: LogRead): void {
    for (const head of heads) {
      this.#index.addChunk(seq, loadChunk(head, read));
      this.#checkpointed += head.count;
    }
  }

  /**
   * Covers in the checkpoint the records no chunk covers yet, however few (serve asks once mail
   * stops): their ids are held until then, and kept from a burst, scattered among its garbage,
   * they held heap blocks with them.
   */
  checkpointPending(): void {
    if (!this.#closed && this.#uncovered.length > 0) this.#writeCheckpoint();
  }

  #scheduleCheckpoint(): void {
    if (this.#checkpointScheduled || this.#uncovered.length < this.#checkpointEvery) return;
    this.#checkpointScheduled = true;
    setImmediate(() => {
      this.#checkpointScheduled = false;
      if (!this.#closed) this.#writeCheckpoint();
    });
  }

  /**
   * Appends a chunk per segment for the durable records no chunk covers yet. It is written at
   * once and synced in the background: a chunk lost to a crash only means a longer scan.
   */
  #writeCheckpoint(): void {
    // Each record where it is now: a record moved since it was listed is covered in its new
    // segment (and listed again there), one dropped since is not covered at all.
    const bySeq = new Map<number, StoredRecord[]>();
    for (const id of new Set(this.#uncovered)) {
      const e = this.#index.record(id);
      if (e === undefined) continue;
      let list = bySeq.get(e.seq);
      if (!list) bySeq.set(e.seq, (list = []));
      list.push(e);
    }
    this.#uncovered = [];
    const out: Buffer[] = [];
    const covered: [number, { ino: number; covered: number }][] = [];
    for (const [seq, list] of bySeq) {
      const seg = this.#index.segment(seq);
      if (!seg || seg.headerBytes === 0) continue;
      let ino: number;
      try {
        ino = this.#coverage.get(seq)?.ino ?? fs.statSync(this.#layout.segmentPath(seq)).ino;
      } catch {
        continue;
      }
      const from = this.#coverage.get(seq)?.covered ?? seg.headerBytes;
      const entries = list.sort((a, b) => a.offset - b.offset);
      const run: StoredRecord[] = [];
      let to = from;
      for (const e of entries) {
        if (e.offset < to) continue;
        if (e.offset !== to) break;
        run.push(e);
        to = e.offset + e.bytes;
      }
      if (run.length === 0) continue;
      out.push(encodeChunk({ seq, ino, headerBytes: seg.headerBytes, from, to, entries: run }));
      covered.push([seq, { ino, covered: to }]);
    }
    if (out.length === 0) return;
    const bytes = Buffer.concat(out);
    try {
      if (this.#checkpointFd === null) this.#checkpointFd = fs.openSync(this.#layout.checkpointPath, 'a', FILE_MODE);
      writeFully(this.#io, this.#checkpointFd, bytes, this.#checkpointBytes);
    } catch (err) {
      this.#logIo('checkpoint write', err);
      return;
    }
    this.#checkpointBytes += bytes.length;
    for (const [seq, c] of covered) this.#coverage.set(seq, c);
    const fd = this.#checkpointFd;
    this.#checkpointSync = this.#checkpointSync.then(() => this.#io.datasync(fd)).catch((err) => this.#logIo('checkpoint sync', err));
  }

  /** Closes the checkpoint's fd once its pending sync is done. */
  #closeCheckpointFd(): Promise<void> {
    const fd = this.#checkpointFd;
    this.#checkpointFd = null;
    if (fd === null) return this.#checkpointSync;
    this.#checkpointSync = this.#checkpointSync.finally(() => fs.closeSync(fd));
    return this.#checkpointSync;
  }

  /**
   * Replaces the checkpoint log with one chunk per segment from the index, once most of it is
   * about segments compaction removed. Blocking, like the journal snapshot.
   */
  #rewriteCheckpoint(): void {
    if (this.#checkpointBytes < CHECKPOINT_REWRITE_MIN_BYTES) return;
    let live = 0;
    for (const c of this.#coverage.keys()) live += this.#index.segment(c)?.records ?? 0;
    if (live * CHECKPOINT_BYTES_PER_RECORD * 2 > this.#checkpointBytes) return;
    const out: Buffer[] = [];
    const coverage = new Map<number, { ino: number; covered: number }>();
    for (const [seq, c] of this.#coverage) {
      const seg = this.#index.segment(seq);
      if (!seg) continue;
      const run: StoredRecord[] = [];
      let to = seg.headerBytes;
      for (const e of this.#index.entriesIn(seq)) {
        if (e.offset !== to || to >= c.covered) break;
        run.push(e);
        to = e.offset + e.bytes;
      }
      if (run.length === 0) continue;
      out.push(encodeChunk({ seq, ino: c.ino, headerBytes: seg.headerBytes, from: seg.headerBytes, to, entries: run }));
      coverage.set(seq, { ino: c.ino, covered: to });
    }
    const bytes = Buffer.concat(out);
    try {
      writeJournalSnapshotSync(this.#layout.checkpointTmpPath, this.#layout.checkpointPath, this.#layout.journalDir, bytes);
    } catch (err) {
      this.#logIo('checkpoint rewrite', err);
      fs.rmSync(this.#layout.checkpointTmpPath, { force: true });
      return;
    }
    void this.#closeCheckpointFd();
    this.#checkpointBytes = bytes.length;
    this.#coverage.clear();
    for (const [seq, c] of coverage) this.#coverage.set(seq, c);
  }

  #track(seg: ScannedSegment, read: LogRead): void {
    this.#index.addSegment({
      seq: seg.seq,
      name: seg.name,
      bytes: seg.bytes,
      headerBytes: seg.headerBytes,
    });
    if (seg.checkpoint) {
      this.#trackCheckpointed(seg.seq, seg.checkpoint.chunks, read);
      this.#coverage.set(seg.seq, { ino: seg.checkpoint.ino, covered: seg.checkpoint.covered });
    }
    for (const r of seg.records) {
      const record: StoredRecord = {
        id: r.id,
        timeMs: r.timeMs,
        envelope: r.envelope,
        local: r.local,
        seq: seg.seq,
        offset: r.offset,
        bytes: r.bytes,
        bodyBytes: r.bodyBytes,
        size: r.size,
      };
      this.#index.addRecord(record);
      this.#uncovered.push(record.id);
    }
  }

  // ---- writing

  /**
   * Appends one message and resolves once it is durable (group commit: one fdatasync covers
   * every commit of its batch). Rejects with SmtpError 452 4.3.1 (disk full) or 451 4.3.0.
   */
  commit(req: CommitRequest): Promise<void> {
    if (this.#closed) return Promise.reject(new SmtpError(replies.spoolUnavailable('the server is shutting down')));
    if (this.#vanished) return Promise.reject(this.#vanished);
    if (this.#index.has(req.id)) return Promise.reject(new Error(`spool: duplicate message id ${req.id}`));
    const local = req.localRecipients ?? req.envelope.recipients.map((r) => r.local);
    let record: Buffer;
    try {
      record = formatRecord({ id: req.id, timeMs: req.timeMs, envelope: req.envelope, stuffed: req.stuffed, local, session: req.session });
    } catch (err) {
      return Promise.reject(err);
    }
    let active: ActiveSegment;
    let offset: number;
    try {
      active = this.#activeFor(record.length);
      offset = active.file.append(record);
    } catch (err) {
      return Promise.reject(this.#ioError('write', err));
    }
    active.info.bytes = active.file.bytes;
    const stored: StoredRecord = {
      id: req.id,
      timeMs: req.timeMs,
      envelope: req.envelope,
      local,
      seq: active.info.seq,
      offset,
      bytes: record.length,
      bodyBytes: req.stuffed.length,
      size: req.size ?? req.stuffed.length - stuffingDots(req.stuffed, 0, req.stuffed.length),
    };
    return this.#writer.enqueue(active.file, { kind: 'message', record: stored });
  }

  #activeFor(recordBytes: number): ActiveSegment {
    const current = this.#active;
    if (current && !(current.file.bytes > current.info.headerBytes && current.file.bytes + recordBytes > this.#segmentBytes)) {
      return current;
    }
    if (current) this.#retire(current);
    const seq = this.#lastSeq + 1;
    const header = formatSegmentHeader(this.#opts.hostname);
    const file = AppendFile.create(this.#layout.segmentPath(seq), header, this.#io);
    this.#lastSeq = seq;
    const info = this.#index.addSegment({
      seq,
      name: this.#layout.segmentName(seq),
      bytes: header.length,
      headerBytes: header.length,
    });
    this.#active = { file, info };
    return this.#active;
  }

  /** The active segment stops taking records; its fd closes once its last batch is durable. */
  #retire(active: ActiveSegment): void {
    if (this.#active === active) this.#active = null;
    this.#retired.push(active);
    this.#closeRetired();
  }

  #closeRetired(): void {
    for (let i = this.#retired.length - 1; i >= 0; i--) {
      const { file } = this.#retired[i];
      // Not in a batch any more: its last bytes are durable, or were cut back after a failed sync.
      if (this.#writer.involves(file)) continue;
      file.close();
      this.#retired.splice(i, 1);
    }
  }

  /** Journals a new delivery state for one relayed recipient; resolves once durable. */
  setState(id: string, rcptIndex: number, state: DeliveryState): Promise<void> {
    const entry = this.#index.record(id);
    if (!entry) return Promise.reject(new MessageNotFoundError(id));
    if (!Number.isInteger(rcptIndex) || rcptIndex < 0 || rcptIndex >= entry.states.length) {
      return Promise.reject(new Error(`spool: message ${id} has no recipient ${rcptIndex}`));
    }
    if (entry.local[rcptIndex]) return Promise.reject(new Error(`spool: recipient ${rcptIndex} of message ${id} is held locally, not relayed`));
    return this.#appendStates([{ id, rcpt: rcptIndex, state }]);
  }

  /**
   * Journals the removal of the local copies of messages: every recipient held in a local
   * mailbox. Recipients queued for relay keep their state (only the queue operations change
   * them). Unknown ids are ignored; resolves once durable.
   */
  deleteLocal(ids: readonly string[]): Promise<void> {
    const atMs = this.#opts.now();
    const records: RemovalRecord[] = [];
    for (const id of ids) {
      const e = this.#index.get(id);
      if (!e) continue;
      e.states.forEach((state, i) => {
        if (state.kind === 'local') records.push({ id, rcpt: i, atMs });
      });
    }
    return records.length === 0 ? Promise.resolve() : this.#appendRemovals(records);
  }

  /** Journals mailbox state (read, tags) for messages the spool lists; resolves once durable. */
  setMailboxState(records: readonly MailboxRecord[]): Promise<void> {
    const known = records.filter((r) => this.#index.get(r.id) !== undefined);
    return known.length === 0 ? Promise.resolve() : this.#appendMailbox(known);
  }

  /**
   * Local mail in commit order (time, then id) after `cursor` (from the start when null), at
   * most `limit`: messages with a recipient still held in a local mailbox, with the mailbox
   * state journalled under `stateKey`. What an index of local mail is built from.
   */
  localMessages(cursor: { readonly timeMs: number; readonly id: string } | null, limit: number, stateKey: string): LocalMessage[] {
    const out: LocalMessage[] = [];
    this.#index.forEachInCommitOrder(cursor?.timeMs ?? -Infinity, (e) => {
      if (cursor && (e.timeMs < cursor.timeMs || (e.timeMs === cursor.timeMs && e.id <= cursor.id))) return true;
      const local = localAddresses(e.envelope, e.states);
      if (local.length === 0) return true;
      out.push({ id: e.id, timeMs: e.timeMs, envelope: e.envelope, localRecipients: local, state: e.mailboxes?.get(stateKey) ?? null });
      return out.length < limit;
    }, true);
    return out;
  }

  /** Like localMessages(), for the given ids (in that order); ids not held locally are left out. */
  localMessagesById(ids: readonly string[], stateKey: string): LocalMessage[] {
    const out: LocalMessage[] = [];
    for (const id of ids) {
      const e = this.#index.get(id);
      if (!e) continue;
      const local = localAddresses(e.envelope, e.states);
      if (local.length > 0) out.push({ id: e.id, timeMs: e.timeMs, envelope: e.envelope, localRecipients: local, state: e.mailboxes?.get(stateKey) ?? null });
    }
    return out;
  }

  /** Journals the removal of whole messages (unknown ids are ignored); resolves once durable. */
  delete(ids: readonly string[]): Promise<void> {
    const atMs = this.#opts.now();
    const records: RemovalRecord[] = [];
    for (const id of ids) {
      if (this.#index.has(id)) records.push({ id, rcpt: null, atMs });
    }
    return records.length === 0 ? Promise.resolve() : this.#appendRemovals(records);
  }

  #appendStates(records: readonly StateRecord[]): Promise<void> {
    return this.#appendJournal(
      [formatStateRecords(records)],
      records.map((record) => ({ kind: 'state', record })),
      undefined,
      records.length,
    );
  }

  #appendRemovals(records: readonly RemovalRecord[]): Promise<void> {
    return this.#appendJournal(
      records.map(formatRemovalRecord),
      records.map((record) => ({ kind: 'removal', record })),
    );
  }

  #appendMailbox(records: readonly MailboxRecord[]): Promise<void> {
    return this.#appendJournal(
      records.map(formatMailboxRecord),
      records.map((record) => ({ kind: 'mailbox', record })),
    );
  }

  /** Applied at once, so concurrent sessions of a login never give out one UID twice; durable when it resolves. */
  #appendLogins(records: readonly LoginRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.#appendJournal(records.map(formatLoginRecord), [{ kind: 'logins' }], () => {
      for (const r of records) this.#logins.apply(r);
    });
  }

  /** `written` runs once the lines are in the file (not yet durable); `lineCount` when a buffer holds more than one. */
  #appendJournal(lines: readonly Buffer[], items: readonly Durable[], written?: () => void, lineCount = lines.length): Promise<void> {
    if (this.#closed || this.#journal === null) {
      return Promise.reject(new SmtpError(replies.spoolUnavailable('the server is shutting down')));
    }
    if (this.#vanished) return Promise.reject(this.#vanished);
    const journal = this.#journal;
    try {
      journal.append(lines.length === 1 ? lines[0] : Buffer.concat(lines));
    } catch (err) {
      return Promise.reject(this.#ioError('journal write', err));
    }
    this.#journalLines += lineCount;
    written?.();
    let done: Promise<void> = Promise.resolve();
    for (const item of items) done = this.#writer.enqueue(journal, item);
    return done;
  }

  /** The bounces, states and removals of one finished delivery attempt or operator action, in one group-commit batch. */
  #commitBatch(states: readonly StateRecord[], bounces: readonly CommitRequest[], removals: readonly RemovalRecord[] = []): Promise<void> {
    for (const records of [states, removals]) {
      for (const r of records) {
        const copies = this.#index.states(r.id);
        if (!copies) return Promise.reject(new MessageNotFoundError(r.id));
        if (r.rcpt !== null && r.rcpt >= copies.length) return Promise.reject(new Error(`spool: message ${r.id} has no recipient ${r.rcpt}`));
      }
    }
    // Every write happens in this turn of the event loop, so they all join one batch.
    const done = bounces.map((b) => this.commit(b));
    if (states.length > 0) done.push(this.#appendStates(states));
    if (removals.length > 0) done.push(this.#appendRemovals(removals));
    return Promise.all(done).then(() => undefined);
  }

  #onDurable(items: readonly Durable[]): void {
    const removed: RemovalRecord[] = [];
    for (const item of items) {
      if (item.kind === 'message') {
        const r = item.record;
        if (this.#index.addRecord(r)) this.#queue.note(this.#index.relayView(r.id)!);
        this.#uncovered.push(r.id);
        this.#commits++;
        this.#opts.onCommit?.({ id: r.id, timeMs: r.timeMs, envelope: r.envelope, size: r.size });
      } else if (item.kind === 'state') {
        if (this.#index.applyState(item.record.id, item.record.rcpt, item.record.state)) {
          this.#queue.note(this.#index.relayView(item.record.id)!);
        }
      } else if (item.kind === 'removal') {
        this.#index.applyRemoval(item.record.id, item.record.rcpt, item.record.atMs);
        removed.push(item.record);
      } else if (item.kind === 'mailbox') {
        this.#index.applyMailbox(item.record.id, item.record.mailbox, item.record.flags);
      }
    }
    this.#store.removed(removed);
    if (this.#retired.length > 0) this.#closeRetired();
    this.#scheduleCheckpoint();
    if (this.#failing !== null) {
      this.#failing = null;
      this.#opts.log.info('spool: storing again after a failure');
    }
  }

  /**
   * One fstat per file of a batch: a segment or journal with no link left was removed with its
   * directory, and what was just synced into it is gone at the next restart.
   */
  #checkLinked(files: ReadonlySet<AppendFile>): void {
    for (const file of files) {
      if (fs.fstatSync(file.fd).nlink === 0) {
        throw Object.assign(new Error(`spool: ${file.path} was removed while open`), { code: 'ENOENT', path: file.path, vanished: true });
      }
    }
  }

  #onSyncFailure(err: unknown, files: readonly AppendFile[]): SmtpError {
    // After a failed fdatasync the kernel may have dropped the dirty pages: nothing more goes
    // into that segment (fsyncgate); the next commit starts a new one.
    for (const seg of this.#retired) if (files.includes(seg.file)) seg.info.bytes = seg.file.bytes;
    if (this.#active && files.includes(this.#active.file)) {
      this.#active.info.bytes = this.#active.file.bytes;
      this.#retire(this.#active);
    }
    if ((err as { vanished?: boolean })?.vanished === true) {
      const e = err as NodeJS.ErrnoException;
      this.#opts.log.error('spool: the data directory was removed; every message is refused until restart', { path: e.path });
      this.#vanished = new SmtpError(replies.spoolUnavailable('the spool directory was removed'), { cause: err });
      return this.#vanished;
    }
    return this.#ioError('fdatasync', err);
  }

  #ioError(op: string, err: unknown, why?: string): SmtpError {
    const code = (err as NodeJS.ErrnoException)?.code ?? '';
    const key = `${op} ${code}`;
    if (this.#failing !== key) {
      this.#failing = key;
      this.#logIo(op, err);
    }
    if (FULL_CODES.has(code)) return new SmtpError(replies.spoolFull(), { cause: err });
    return new SmtpError(replies.spoolUnavailable(why ?? UNAVAILABLE_REASONS[code] ?? 'the spool cannot be written'), { cause: err });
  }

  #logIo(op: string, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    this.#opts.log.error(`spool: ${op} failed`, { code: e?.code, path: e?.path, err: String(err) });
  }

  // ---- reading

  get(id: string): MessageInfo | undefined {
    const e = this.#index.get(id);
    return e ? this.#info(e) : undefined;
  }

  /** Listed messages, newest first; `since` is inclusive, `until` exclusive (epoch ms). */
  list(query?: ListQuery): MessageInfo[] {
    return this.#index.query(query).map((e) => this.#info(e));
  }

  /** The ids of queued() alone, without building each message's view (`queue retry --all`). */
  queuedIds(): string[] {
    const out: string[] = [];
    this.#index.forEachInCommitOrder(-Infinity, (e) => {
      if (e.live && e.states.some(isQueued)) out.push(e.id);
      return true;
    });
    return out;
  }

  /** Messages with a recipient the relay still owes an attempt (pending, deferred or held), oldest first. */
  queued(): MessageInfo[] {
    const out: MessageInfo[] = [];
    this.#index.forEachInCommitOrder(-Infinity, (e) => {
      if (e.live && e.states.some(isQueued)) out.push(this.#info(e));
      return true;
    });
    return out;
  }

  /** Recipients the relay still owes an attempt, by state; kept by the index, so this walks nothing. */
  queueCounts(): Readonly<Record<QueuedKind, number>> {
    return this.#index.queuedCounts();
  }

  /** Recipients still to relay: pending ones, and deferred ones due by `dueBy` (default: all). */
  deliveries(opts: { dueBy?: number } = {}): DeliveryInfo[] {
    const dueBy = opts.dueBy ?? Infinity;
    const out: DeliveryInfo[] = [];
    for (const e of this.#index.records()) {
      if (!e.live) continue;
      e.states.forEach((state, i) => {
        if (state.kind === 'pending' || (state.kind === 'deferred' && state.nextAttemptMs <= dueBy)) {
          out.push({ id: e.id, rcptIndex: i, recipient: e.envelope.recipients[i].mailbox, state });
        }
      });
    }
    return out;
  }

  #info(e: Entry): MessageInfo {
    return {
      id: e.id,
      timeMs: e.timeMs,
      sender: mailboxKey(e.envelope.sender),
      envelope: e.envelope,
      recipients: e.envelope.recipients.map((r, i) => ({ mailbox: r.mailbox, address: mailboxKey(r.mailbox), state: e.states[i] })),
      size: e.size,
      segment: this.#layout.segmentName(e.seq),
      offset: e.offset,
    };
  }

  /**
   * The SMTP session that carried a listed message, read from its record: what the record line
   * tells (fields a record written before them lacks are null) and the record itself, as a
   * segment `mailbox replay` sends again (an EHLO line, then the record as stored).
   */
  async session(id: string): Promise<StoredSession | undefined> {
    const e = this.#index.get(id);
    if (!e) return undefined;
    const record = readExactly(this.#readFd(e.seq), e.offset, e.bytes);
    const lineEnd = record.indexOf(0x0a);
    const facts = parseRecordSession(Buffer.from(record.buffer, record.byteOffset, lineEnd + 1).toString('latin1'));
    if (facts === null || facts.id !== id) throw new Error(`spool: the record of ${id} does not parse`);
    const header = formatSegmentHeader(facts.heloName ?? this.#opts.hostname);
    const replayable = new Uint8Array(header.length + record.length);
    replayable.set(header, 0);
    replayable.set(record, header.length);
    return { id, timeMs: e.timeMs, clientAddress: facts.clientAddress, heloName: facts.heloName, tls: facts.tls, envelope: e.envelope, size: e.size, replayable };
  }

  /** The message as the client sent it (dot-unstuffed), our Received header first. */
  async readMessage(id: string): Promise<Uint8Array> {
    return dotUnstuff(await this.readRaw(id));
  }

  /**
   * Where readRaw(id) reads, for a reader in another thread (the mail index's Worker), or null
   * for an unknown id. Compaction never rewrites a segment in place (a moved record goes to a new
   * segment) but may remove this one once the call returns: such a reader gets exactly these
   * bytes, or fails to open the file and must ask again.
   */
  locate(id: string): StoredAt | null {
    const body = this.#index.bodyOf(id);
    return body ? { path: this.#layout.segmentPath(body.seq), offset: body.offset, length: body.length } : null;
  }

  /** The stored bytes: dot-stuffed, as on the wire, without the final ".\r\n". */
  async readRaw(id: string): Promise<Uint8Array> {
    const body = this.#index.bodyOf(id);
    if (!body) throw new MessageNotFoundError(id);
    // Blocking pread: no compaction can unlink or move the record between lookup and read.
    return readExactly(this.#readFd(body.seq), body.offset, body.length);
  }

  /**
   * A read fd per segment, the most recently used kept open. Every read is one blocking pread,
   * so closing the least recently used fd can never pull it from under a reader.
   */
  #readFd(seq: number): number {
    let fd = this.#readFds.get(seq);
    if (fd !== undefined) {
      this.#readFds.delete(seq);
    } else {
      fd = fs.openSync(this.#layout.segmentPath(seq), 'r');
      if (this.#readFds.size >= READ_FDS_KEPT) {
        const [oldest, oldestFd] = this.#readFds.entries().next().value as [number, number];
        fs.closeSync(oldestFd);
        this.#readFds.delete(oldest);
      }
    }
    this.#readFds.set(seq, fd);
    return fd;
  }

  #forgetSegment(seq: number): void {
    const fd = this.#readFds.get(seq);
    if (fd !== undefined) fs.closeSync(fd);
    this.#readFds.delete(seq);
    this.#index.removeSegment(seq);
  }

  stats(): SpoolStats {
    let bytes = this.#journal?.bytes ?? 0;
    const segments = this.#index.segments();
    for (const s of segments) bytes += s.bytes;
    const oldestMs = this.#index.oldestVisibleMs();
    return {
      messages: this.#index.visibleCount,
      segments: segments.length,
      bytes,
      commits: this.#commits,
      syncBatches: this.#writer.batches,
      oldestMs,
    };
  }

  // ---- reclaiming space

  /** Applies retention, removes finished segments, rewrites mostly-dead ones, snapshots the journal. */
  compact(): Promise<CompactionReport> {
    if (this.#closed) return Promise.resolve(emptyReport());
    if (this.#compacting === null) {
      this.#compacting = this.#compactOnce().finally(() => {
        this.#compacting = null;
      });
    }
    return this.#compacting;
  }

  async #compactOnce(): Promise<CompactionReport> {
    const report = emptyReport();
    const doomed = planRetention(this.#index.records(), this.#index.visibleCount, this.#opts, this.#opts.now());
    if (doomed.length > 0 && !this.#closed) {
      await this.delete(doomed);
      report.retentionDeleted = doomed.length;
      this.#opts.log.info('spool: retention deleted messages', { count: doomed.length });
    }
    // States decide which bytes may go: every state written so far must be durable first.
    await this.#writer.flush();

    const plan = planSegments(this.#index.segments(), (seg) => this.#canTouch(seg), this.#segmentBytes);
    for (const seg of plan.remove) {
      for (const e of this.#index.entriesIn(seg.seq)) this.#index.dropRecord(e);
      this.#forgetSegment(seg.seq);
      fs.rmSync(this.#layout.segmentPath(seg.seq), { force: true });
      report.removedSegments.push(seg.name);
      report.reclaimedBytes += seg.bytes;
    }
    if (plan.remove.length > 0) await syncDirectory(this.#layout.segmentsDir);
    if (plan.rewrite.length > 0) await this.#rewriteSegments(plan.rewrite, report);
    if (!this.#closed && this.#journalWorthSnapshot()) report.journalRewritten = this.#snapshotJournal();
    if (!this.#closed) {
      this.#scheduleCheckpoint();
      this.#rewriteCheckpoint();
    }
    if (report.removedSegments.length + report.rewrittenSegments.length > 0 || report.journalRewritten) {
      this.#opts.log.info('spool: compacted', {
        removed: report.removedSegments.length,
        rewritten: report.rewrittenSegments.length,
        written: report.newSegments.length,
        reclaimedBytes: report.reclaimedBytes,
        journalRewritten: report.journalRewritten,
      });
    }
    return report;
  }

  #canTouch(seg: SegmentInfo): boolean {
    if (this.#active?.info === seg || this.#queue.pinned(seg.seq)) return false;
    return !this.#retired.some((r) => r.info === seg);
  }

  /**
   * Copies the live records of `sources` into as few new segments as fit, then unlinks the
   * sources. Ids are unchanged; only segment and offset move.
   */
  async #rewriteSegments(sources: readonly SegmentInfo[], report: CompactionReport): Promise<void> {
    const live = sources.flatMap((seg) => this.#index.entriesIn(seg.seq).filter((e) => e.live));
    const header = formatSegmentHeader(this.#opts.hostname);
    for (const group of packRecords(live, this.#segmentBytes - header.length)) {
      if (this.#closed) return;
      const seq = ++this.#lastSeq;
      const copy = await writeSegmentCopy({
        io: this.#io,
        sourceFd: (e) => this.#readFd(e.seq),
        entries: group,
        header,
        tmpPath: this.#layout.segmentTmpPath(seq),
        finalPath: this.#layout.segmentPath(seq),
        dir: this.#layout.segmentsDir,
        setAside: (entry, bytes, reason) => {
          const file = this.#layout.segmentPath(entry.seq);
          const quarantined = quarantine(this.#ctx, { file, offset: entry.offset, bytes, reason });
          report.damaged.push({ file, offset: entry.offset, bytes: bytes.length, reason, quarantined });
          this.#opts.log.error('spool: damaged record set aside during compaction', { file, offset: entry.offset, reason });
        },
      });
      const info = this.#index.addSegment({
        seq,
        name: this.#layout.segmentName(seq),
        bytes: copy.bytes,
        headerBytes: header.length,
      });
      group.forEach((e, i) => {
        if (!this.#index.isCurrent(e)) return;
        if (copy.offsets[i] >= 0) {
          this.#index.moveRecord(e, seq, copy.offsets[i]);
          this.#uncovered.push(e.id);
          report.movedRecords++;
        } else this.#index.dropRecord(e);
      });
      report.newSegments.push(info.name);
      report.reclaimedBytes -= copy.bytes;
    }
    let removed = false;
    for (const seg of sources) {
      const left = this.#index.entriesIn(seg.seq);
      // A record that came back to life during the copy keeps its old segment for now, and a
      // segment a delivery job began reading from during the copy stays until a later pass.
      if (left.some((e) => e.live) || this.#queue.pinned(seg.seq)) continue;
      for (const e of left) this.#index.dropRecord(e);
      this.#forgetSegment(seg.seq);
      fs.rmSync(this.#layout.segmentPath(seg.seq), { force: true });
      report.rewrittenSegments.push(seg.name);
      report.reclaimedBytes += seg.bytes;
      removed = true;
    }
    if (removed) await syncDirectory(this.#layout.segmentsDir);
  }

  #journalWorthSnapshot(): boolean {
    const journal = this.#journal;
    if (!journal || journal.bytes < JOURNAL_SNAPSHOT_MIN_BYTES) return false;
    const { states, removals } = planJournalSnapshot(this.#index.records());
    return (states.length + removals.length + this.#logins.size) * 2 < this.#journalLines;
  }

  /**
   * Replaces the journal with the lines that reproduce the current state. It runs with blocking
   * calls and only when no journal bytes wait for a sync, so no append can fall between the
   * snapshot and the rename. Returns false when it had to wait for another time.
   */
  #snapshotJournal(): boolean {
    const journal = this.#journal;
    if (!journal || journal.dirty || this.#writer.involves(journal)) return false;
    const { states, removals } = planJournalSnapshot(this.#index.records());
    const mailbox: MailboxRecord[] = [];
    for (const e of this.#index.records()) {
      if (e.visible && e.mailboxes) for (const [box, flags] of e.mailboxes) mailbox.push({ id: e.id, mailbox: box, flags });
    }
    // A login's state of a message goes with the message; its mailbox record (next UID) stays.
    const kept = (id: string) => this.#index.record(id)?.visible === true;
    const logins = this.#logins.snapshot(kept);
    const bytes = Buffer.concat([
      ...states.map(formatStateRecord),
      ...removals.map(formatRemovalRecord),
      ...mailbox.map(formatMailboxRecord),
      ...logins.map(formatLoginRecord),
    ]);
    try {
      writeJournalSnapshotSync(this.#layout.journalTmpPath, this.#layout.journalPath, this.#layout.journalDir, bytes);
    } catch (err) {
      this.#logIo('journal snapshot', err);
      fs.rmSync(this.#layout.journalTmpPath, { force: true });
      return false;
    }
    journal.close();
    this.#journal = AppendFile.openExisting(this.#layout.journalPath, bytes.length, this.#io);
    this.#journalLines = states.length + removals.length + mailbox.length + logins.length;
    this.#logins.prune(kept);
    return true;
  }

  // ---- closing

  /** Waits for everything written to be durable, then closes files and releases the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#compacting?.catch(() => undefined);
    await this.#writer.flush();
    if (this.#uncovered.length >= this.#checkpointEvery) this.#writeCheckpoint();
    await this.#closeCheckpointFd();
    this.#active?.file.close();
    this.#active = null;
    for (const seg of this.#retired) seg.file.close();
    this.#retired.length = 0;
    this.#journal?.close();
    this.#journal = null;
    for (const fd of this.#readFds.values()) fs.closeSync(fd);
    this.#readFds.clear();
    releaseLock(this.#layout.lockPath, this.#pid);
  }
}
