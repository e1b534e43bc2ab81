/**
 * @module The one writer of the mail index: it owns the write connection to the database and
 * runs the requests the main thread's MailIndex sends it, one at a time, in the order sent. It
 * runs in a Worker (index-worker.ts) in serve, or in the caller's thread (tests, `reindex`).
 * Rule 1: an ingest request (the group commits that gathered while the one before was worked
 *         on) is one transaction; the message bytes are decoded here (postal-mime), never on the
 *         accept path.
 * Rule 2: every change of read state, tags or membership is journalled by the main thread
 *         first. Before the journal write the main thread calls `begin`, which counts the change
 *         as pending in a synced transaction; `apply` takes it off in the same transaction as the
 *         change. An index opened with changes pending may have missed one: it is rebuilt.
 * Rule 3: seq (the wait cursor) grows with commit order: max(last + 1, commit ms × 1024), so a
 *         rebuild of the same spool gives every message the same seq unless more than 1024
 *         messages were committed in one millisecond or the clock went back.
 * Rule 4: a live ingest (a group commit, `live`) leaves the search text in the index's backlog
 *         (index-db.ts Rule 4); `index-backlog` moves it into FTS5 when the main thread sees the
 *         accept path quiet. While searches are being made (`searched`), a live ingest that finds
 *         more than BACKLOG_MAX waiting moves a chunk itself, so that searches soon scan no more
 *         than that many rows with instr(). Without searches, a burst of any length leaves all
 *         its FTS5 work for the quiet spell: moving a chunk costs about 175 µs a message, and at
 *         1k-s10-ka it took a third of the Worker's CPU in a run of 30,000 messages. A rebuild or
 *         catch-up ingests straight into FTS5, in large batches.
 * Rule 5: the index never fsyncs (its writes must not queue before the spool's fdatasync on the
 *         disk): a process crash loses nothing the kernel was given, and a machine crash is
 *         told by the boot id (Linux) recorded at open and cleared at close: an index still open
 *         in another boot is rebuilt. Where there is no boot id it syncs at checkpoints instead.
 * Rule 6: a message comes with its bytes or with where they are in the spool (Spool.locate),
 *         read here so the main thread neither reads nor copies them. When a segment was
 *         compacted away in between, nothing of the request is ingested and the reply names the
 *         messages to send again with their bytes (commit order is kept).
 * Rule 7: an ingest's messages are read into one buffer the writer keeps for the next (up to
 *         SCRATCH_MAX), which is why requests are run one at a time and no byte of one outlives
 *         it: a fresh buffer for each read cost the Worker a page fault and a page cleared for
 *         every 4 KB read (4.5% of its samples in a burst, perf).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { dotUnstuff } from '../core/data.ts';
import { readExactlyInto } from '../spool/journal.ts';
import type { StoredAt } from '../spool/spool.ts';
import { IndexDb, summarizeMessage, type IndexEnvelope, type IngestItem, type MessageState } from './index-db.ts';

/** The most messages the backlog holds, while searches are made, before a live ingest moves some into FTS5 itself (Rule 4). */
export const BACKLOG_MAX = 20_000;
/** Messages moved from the backlog into FTS5 per transaction (about 50 ms of CPU for 1 KB messages). */
export const BACKLOG_CHUNK = 512;

/** Seqs per millisecond of commit time (Rule 3). */
export const SEQ_PER_MS = 1024;

/** One message to add, as the spool holds it. */
export interface RawMessage {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: IndexEnvelope;
  /** The stored message, dot-stuffed, without the final ".\r\n", or where to read it (Rule 6). */
  readonly stuffed?: Uint8Array;
  readonly at?: StoredAt;
  readonly state: MessageState | null;
}

/** Where ingestion has reached in the spool's commit order. */
export interface SpoolPosition {
  readonly timeMs: number;
  readonly id: string;
}

export type WriterRequest =
  /** `background`: the writer's thread yields the CPU to the accept path (serve, not reindex). */
  | { readonly op: 'open'; readonly path: string; readonly background?: boolean }
  /**
   * `live`: one or more group commits, whose search text waits in the backlog (Rule 4).
   * `collect`: a full garbage collection follows (a burst indexed after it: mail-index.ts Rule 6).
   */
  | { readonly op: 'ingest'; readonly messages: readonly RawMessage[]; readonly live?: boolean; readonly searched?: boolean; readonly collect?: boolean }
  /** Moves up to `max` of the backlog into FTS5 (Rule 4). */
  | { readonly op: 'index-backlog'; readonly max: number }
  | { readonly op: 'begin' }
  | { readonly op: 'apply'; readonly states?: readonly MessageState[]; readonly deleted?: readonly string[] }
  /** Copies deleted elsewhere (already journalled): the recipients each message is still held for. */
  | { readonly op: 'held'; readonly messages: readonly { readonly id: string; readonly recipients: readonly string[] }[] }
  | { readonly op: 'reset' }
  | { readonly op: 'rebuilt' }
  /** After a long rebuild or catch-up: SQLite's caches and this thread's garbage go back to the system. */
  | { readonly op: 'trim' }
  | { readonly op: 'close' };

export interface OpenReply {
  /** Why the index must be rebuilt from the spool, or null when it can be caught up. */
  readonly rebuild: string | null;
  readonly position: SpoolPosition | null;
  /** Messages whose search text waits in the backlog (Rule 4). */
  readonly backlog: number;
}

export interface IngestReply {
  /** Messages added (ids already present are skipped), in commit order. */
  readonly added: number;
  readonly lastSeq: number;
  readonly backlog: number;
  /** Messages whose segment could not be read (Rule 6): none of the request was ingested. */
  readonly unreadable?: readonly string[];
}

export interface BacklogReply {
  readonly moved: number;
  readonly backlog: number;
}

export type WriterReply = OpenReply | IngestReply | BacklogReply | { readonly changed: number } | null;

const PENDING = 'pending_changes';
/** The boot the index was opened in and not closed since (Rule 5). */
const OPEN_IN_BOOT = 'open_in_boot';
const REBUILDING = 'rebuilding';
const POSITION = 'spool_position';

export class IndexWriter {
  #index: IndexDb | null = null;
  #lastSeq = 0;
  #backlog = 0;
  /** What #ingest reads message bytes into (Rule 7). */
  readonly #scratch: Scratch = { bytes: new Uint8Array(0) };

  get #db(): IndexDb {
    if (this.#index === null) throw new Error('the index writer is not open');
    return this.#index;
  }

  async handle(request: WriterRequest): Promise<WriterReply> {
    switch (request.op) {
      case 'open':
        return this.#open(request.path);
      case 'ingest': {
        const reply = await this.#ingest(request.messages, request.live === true, request.searched === true);
        if (request.collect === true) Bun.gc(true);
        return reply;
      }
      case 'index-backlog':
        return this.#indexBacklog(request.max);
      case 'begin':
        this.#db.transaction(() => this.#db.setMeta(PENDING, String(this.#pending() + 1)), true);
        return null;
      case 'apply':
        return { changed: this.#apply(request.states ?? [], request.deleted ?? []) };
      case 'held':
        this.#db.transaction(() => {
          for (const m of request.messages) this.#db.setRecipients(m.id, m.recipients);
        });
        return null;
      case 'reset':
        this.#db.transaction(() => {
          this.#db.reset();
          this.#db.setMeta(PENDING, null);
          this.#db.setMeta(REBUILDING, '1');
        }, true);
        this.#lastSeq = 0;
        this.#backlog = 0;
        return null;
      case 'rebuilt':
        this.#db.setMeta(REBUILDING, null);
        this.#db.optimize();
        return null;
      case 'trim':
        this.#db.releaseMemory();
        Bun.gc(true);
        return null;
      case 'close':
        if (this.#index !== null) this.#index.transaction(() => this.#index?.setMeta(OPEN_IN_BOOT, null), true);
        this.#index?.close();
        this.#index = null;
        return null;
    }
  }

  /**
   * Opens (creating or migrating) the index and says whether it must be rebuilt. MailIndex runs
   * this in its own thread first, so the file and its schema exist before its reader opens, with
   * nothing to wait for; the writer's own open then finds them as they are.
   */
  static inspect(path: string): OpenReply {
    const writer = new IndexWriter();
    try {
      return writer.#open(path);
    } finally {
      writer.#index?.close();
    }
  }

  #open(path: string): OpenReply {
    this.#index?.close();
    const boot = bootId();
    const { index, rebuilt } = IndexDb.open(path, { sync: boot === null ? 'normal' : 'off' });
    this.#index = index;
    this.#lastSeq = index.lastSeq();
    this.#backlog = index.backlogSize();
    const raw = index.meta(POSITION);
    const position = raw === null ? null : parsePosition(raw);
    const openIn = index.meta(OPEN_IN_BOOT);
    index.transaction(() => index.setMeta(OPEN_IN_BOOT, boot), true);
    let rebuild: string | null = null;
    if (rebuilt) rebuild = 'new index file or schema version';
    else if (openIn !== null && openIn !== boot) rebuild = 'the machine stopped while the index was open';
    else if (index.meta(REBUILDING) !== null) rebuild = 'a rebuild was interrupted';
    else if (this.#pending() > 0) rebuild = 'a change was journalled but not indexed';
    else if (raw !== null && position === null) rebuild = 'unreadable spool position';
    return { rebuild, position, backlog: this.#backlog };
  }

  #pending(): number {
    return Number(this.#db.meta(PENDING) ?? '0') || 0;
  }

  async #ingest(messages: readonly RawMessage[], live: boolean, searched: boolean): Promise<IngestReply> {
    const bytes = readStored(messages, this.#scratch);
    if (!Array.isArray(bytes)) return { added: 0, lastSeq: this.#lastSeq, backlog: this.#backlog, unreadable: bytes.unreadable };
    const items: IngestItem[] = [];
    for (const [i, m] of messages.entries()) {
      // A live ingest's messages committed after the index's listing ended: none is indexed yet.
      // A rebuild or catch-up may send some again (its slack): those are not decoded twice.
      if (!live && this.#db.has(m.id)) continue;
      const summary = await summarizeMessage(dotUnstuff(bytes[i]), m.envelope);
      this.#lastSeq = Math.max(this.#lastSeq + 1, m.timeMs * SEQ_PER_MS);
      items.push({ id: m.id, seq: this.#lastSeq, receivedMs: m.timeMs, envelope: m.envelope, summary, read: m.state?.read, tags: m.state?.tags });
    }
    const last = messages.at(-1);
    const added = last === undefined ? 0 : this.#db.ingest(items, JSON.stringify({ timeMs: last.timeMs, id: last.id }), { deferSearch: live });
    if (live) this.#backlog += added;
    if (searched && this.#backlog > BACKLOG_MAX) this.#indexBacklog(BACKLOG_CHUNK);
    return { added: items.length, lastSeq: this.#lastSeq, backlog: this.#backlog };
  }

  #indexBacklog(max: number): BacklogReply {
    const moved = this.#backlog === 0 ? 0 : this.#db.indexBacklog(max);
    this.#backlog = moved < max ? 0 : Math.max(0, this.#backlog - moved);
    // The backlog is moved once mail has stopped: what the burst left here goes back now.
    if (moved > 0 && this.#backlog === 0) {
      this.#db.releaseMemory();
      Bun.gc(true);
    }
    return { moved, backlog: this.#backlog };
  }

  #apply(states: readonly MessageState[], deleted: readonly string[]): number {
    return this.#db.transaction(() => {
      let changed = this.#db.setStates(states);
      if (deleted.length > 0) changed += this.#db.delete(deleted);
      this.#db.setMeta(PENDING, String(Math.max(0, this.#pending() - 1)));
      return changed;
    });
  }
}

/** The most bytes between two messages of a segment that one read of both takes with it (Rule 6). */
const READ_GAP_MAX = 16 * 1024;

/** The buffer an ingest reads message bytes into, kept by its writer (Rule 7). */
interface Scratch {
  bytes: Uint8Array;
}

/** The largest read buffer a writer keeps (a rebuild's batch of 256 1 KB messages takes a third of it); a larger ingest reads into its own. */
const SCRATCH_MAX = 1024 * 1024;

/** A run of messages read with one read: messages[first..last], bytes [start, end) of the segment at path. */
interface Run {
  readonly first: number;
  readonly last: number;
  readonly path: string;
  readonly start: number;
  readonly end: number;
}

/**
 * Each message's stored bytes, or the ids of those whose segment is gone (Rule 6). Messages that
 * follow each other in a segment (a group commit's, with their envelopes between them) are read
 * with one read, each a view of it; the reads go into `scratch` (Rule 7), so the views are good
 * until the next call.
 */
function readStored(messages: readonly RawMessage[], scratch: Scratch): Uint8Array[] | { unreadable: string[] } {
  const runs: Run[] = [];
  let total = 0;
  let i = 0;
  while (i < messages.length) {
    const at = messages[i].at;
    if (messages[i].stuffed !== undefined) {
      i++;
      continue;
    }
    if (at === undefined) throw new Error(`message ${messages[i].id} comes with neither its bytes nor where they are`);
    // The run of messages after this one, in the same segment, each close after the one before.
    let last = i;
    let end = at.offset + at.length;
    while (last + 1 < messages.length) {
      const next = messages[last + 1].at;
      if (messages[last + 1].stuffed !== undefined || next === undefined || next.path !== at.path || next.offset < end || next.offset - end > READ_GAP_MAX) break;
      end = next.offset + next.length;
      last++;
    }
    runs.push({ first: i, last, path: at.path, start: at.offset, end });
    total += end - at.offset;
    i = last + 1;
  }
  let buffer = scratch.bytes;
  if (total > buffer.length) {
    buffer = new Uint8Array(total <= SCRATCH_MAX ? Math.min(SCRATCH_MAX, Math.max(total, buffer.length * 2, 64 * 1024)) : total);
    if (buffer.length <= SCRATCH_MAX) scratch.bytes = buffer;
  }
  const fds = new Map<string, number>();
  const unreadable: string[] = [];
  const out: Uint8Array[] = new Array(messages.length);
  try {
    let used = 0;
    for (const run of runs) {
      try {
        let fd = fds.get(run.path);
        if (fd === undefined) {
          fd = openSync(run.path, 'r');
          fds.set(run.path, fd);
        }
        readExactlyInto(fd, buffer, used, run.start, run.end - run.start);
        for (let k = run.first; k <= run.last; k++) {
          const { offset, length } = messages[k].at as StoredAt;
          out[k] = buffer.subarray(used + offset - run.start, used + offset - run.start + length);
        }
      } catch {
        for (let k = run.first; k <= run.last; k++) unreadable.push(messages[k].id);
      }
      used += run.end - run.start;
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  if (unreadable.length > 0) return { unreadable };
  for (let k = 0; k < messages.length; k++) if (messages[k].stuffed !== undefined) out[k] = messages[k].stuffed as Uint8Array;
  return out;
}

function parsePosition(raw: string): SpoolPosition | null {
  try {
    const o = JSON.parse(raw) as { timeMs?: unknown; id?: unknown };
    return typeof o.timeMs === 'number' && typeof o.id === 'string' ? { timeMs: o.timeMs, id: o.id } : null;
  } catch {
    return null;
  }
}

/** This boot's id (Linux), or null where there is none. */
function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}
