/**
 * @module MailIndex: serve's on-disk index of local mail, as a service. The readers (HTTP API,
 * web UI, IMAP, POP3) query it; it follows the spool's commits and journals every change.
 *
 * What callers use:
 * - `db`: a read-only IndexDb connection for queries on the main thread (list, search, get,
 *   matchAfter, stats, inboxes). It sees every ingest and change once its promise or event is
 *   out, never half a group commit.
 * - `lastSeq`, `subscribe(listener)`, `waitAfter(seq, signal)`: messages are indexed in the
 *   spool's commit order, each with a seq larger than any before (the cursor of wait, SSE and
 *   the websocket). A 'new' change names the seqs added (read them with db.matchAfter);
 *   'updated' and 'deleted' name ids; 'reset' means every cursor starts over (a rebuild began).
 * - `setRead`, `setTags`, `renameTag`, `deleteTag`, `delete`, `deleteSearch`: each resolves once
 *   the change is in the journal (durable, as mailbox-state records under CATCHER_MAILBOX or as
 *   removals of the local recipients' copies) and then in the index. Changes run one at a time.
 * - `readMessage(id)`: the bytes of an indexed message, from the spool; `session(id)`: the SMTP
 *   session that carried it (client address, HELO name, TLS version, AUTH user, and the record
 *   as a replayable segment).
 * - Retention (--max-messages, --max-age) runs here, not in the spool's compaction, so that it
 *   deletes local copies only and through the journal, like any other deletion.
 *
 * Rule 1: local mail only. A message is indexed while a recipient of it is held in a local
 *         mailbox; deleting removes the local copies, and recipients queued for relay change only
 *         through the queue operations.
 * Rule 2: the index is derived. At open it is rebuilt when the file is new, its schema version
 *         differs, a rebuild or a journalled change did not finish, or its newest message is not
 *         in the spool; else it is caught up from its recorded spool position. Nothing is loaded
 *         per message at open.
 * Rule 3: copies deleted by the other readers (POP3, IMAP: through the spool's MailStore) reach
 *         the index from the spool's onRemoved events, once journalled; a crash between the
 *         two leaves such a copy listed until the next rebuild.
 * Rule 4: the writer runs off the accept path (index-client.ts): commits are sent after their
 *         250s are on their way, and one ingest request at a time: what commits while the writer
 *         works goes in the next request, so a busy writer gets fewer, larger transactions (each
 *         costs SQLite and FTS5 a fixed price) instead of a queue of small ones. While commits
 *         keep coming and somebody reads (Rule 6), requests are at least LIVE_GATHER_MS apart.
 * Rule 5: full-text indexing waits for a quiet spell (index-db.ts Rule 4). A live ingest leaves
 *         its messages' search text in the backlog, which searches scan; once no message has
 *         committed for BACKLOG_QUIET_MS and the writer is free, the backlog goes into FTS5 a
 *         chunk at a time, each chunk in the same one-request-at-a-time slot as the ingests, so
 *         a commit waits for at most one chunk. A burst of mail is thus accepted at nearly the
 *         rate with no index, and its FTS5 work is done after it, in large transactions. While
 *         searches are being made (one in the last SEARCHED_WITHIN_MS), the writer also keeps
 *         the backlog to BACKLOG_MAX rows during the burst, so they scan no more.
 * Rule 6: while nobody reads, a burst is indexed after it. With no watcher (a wait, an SSE
 *         stream, a websocket: `watch()`) and no read in the last READ_WITHIN_MS (`current()`),
 *         a live ingest waits for DEFER_QUIET_MS without a commit, or for DEFER_MAX messages,
 *         instead of LIVE_GATHER_MS: the Worker's CPU is then not taken from the accept path
 *         during the burst (on 2 CPUs, a thread busy beside the accept path slows it even at the
 *         lowest priority). What waited is then sent as a catch-up is, FEED_BATCH at a time, the
 *         garbage of each full request collected by the writer after it; what commits meanwhile
 *         waits for the next pause. `current()` sends what waits at once and resolves once every message
 *         committed before the call has been through the writer, so a reader never sees the
 *         index behind a 250 it was given, deferred or not.
 */
import { mailboxKey } from '../core/address.ts';
import type { Logger } from '../log.ts';
import type { SearchQuery } from '../core/mailpit-search.ts';
import type { CommittedMessage } from '../spool/commit.ts';
import { CATCHER_MAILBOX, mailboxFlags } from '../spool/mailbox-state.ts';
import type { LocalMessage, Spool, StoredSession } from '../spool/spool.ts';
import { IndexDb, type IndexEnvelope, type MessageState, type SearchContext } from './index-db.ts';
import { threadWriter, workerWriter, type WriterClient } from './index-client.ts';
import { BACKLOG_CHUNK, IndexWriter, type BacklogReply, type IngestReply, type OpenReply, type RawMessage, type SpoolPosition } from './index-writer.ts';

export type IndexChange =
  | { readonly kind: 'new'; readonly afterSeq: number; readonly lastSeq: number; readonly count: number }
  | { readonly kind: 'updated'; readonly ids: readonly string[] }
  | { readonly kind: 'deleted'; readonly ids: readonly string[] }
  | { readonly kind: 'reset' };

export interface MailIndexOptions {
  /** The database file (layout.indexPath). */
  readonly path: string;
  readonly spool: Spool;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** 'worker' (serve, reindex); 'thread' runs the writer in this thread (tests). */
  readonly writer: 'worker' | 'thread';
  /** The Worker yields the CPU to the accept path (nice 19): serve's, not reindex's. */
  readonly background?: boolean;
  /** Rebuild even when the index looks current (`mailbox reindex`). */
  readonly rebuild?: boolean;
  /** Told after each batch of a rebuild or catch-up: messages indexed so far. */
  readonly progress?: (done: number) => void;
  /** Retention of local mail (--max-messages, --max-age), applied every minute once ready. */
  readonly retention?: { readonly maxMessages?: number; readonly maxAgeMs?: number };
  readonly now?: () => number;
  /** The most committed messages a live ingest waits with while nobody reads (Rule 6); DEFER_MAX unless set. */
  readonly deferMax?: number;
}

const RETENTION_EVERY_MS = 60_000;
/** Messages read from the spool per request during a rebuild or catch-up. */
const FEED_BATCH = 256;
/** Batches of a rebuild or catch-up between two trims of both threads' memory (4,096 messages); the Worker's is trimmed after each. */
const TRIM_EVERY_BATCHES = 16;
/** A rebuild or catch-up of at least this many messages ends by trimming both threads' memory (a deferred burst: begins with this thread's collection, about 20 ms at a million messages). */
const TRIM_AFTER_MESSAGES = 10_000;
/** A catch-up starts this far before the recorded position, in case commit order and (time, id) order differ. */
const CATCH_UP_SLACK_MS = 2000;
/** The most committed messages one live ingest request carries (their bytes are held until it is answered). */
const LIVE_BATCH_MAX = 1024;
/**
 * While commits keep coming, a live ingest is sent this long after the one before it (unless
 * LIVE_GATHER_ENOUGH have gathered): fewer requests cost the accept path's thread less (10 ms
 * took the index's share of that thread's CPU under smtp-source 1k-s10-ka from 10.4% to 8.5%),
 * and the writer too: each transaction rewrites the last page of every table and index it adds
 * to, and the slower the accept path, the fewer messages share that price (at 1k-s10-ka, 20 ms
 * took the Worker from 64 to 55 µs of CPU per message indexed, medians of 9 runs). While somebody
 * reads (Rule 6), the first commit after a quiet spell is sent at once.
 */
const LIVE_GATHER_MS = 20;
const LIVE_GATHER_ENOUGH = 256;
/** A search this recent makes a live ingest keep the backlog short (Rule 5, index-writer.ts Rule 4). */
const SEARCHED_WITHIN_MS = 10_000;
/** How long no message may have committed before the backlog is moved into FTS5 (Rule 5). */
const BACKLOG_QUIET_MS = 100;
/**
 * How long no message may have committed before a deferred ingest is sent (Rule 6): longer than
 * a group commit's fdatasync takes on a slow disk, which would otherwise look like the burst's end.
 */
const DEFER_QUIET_MS = 250;
/** A read this recent keeps live ingests prompt (Rule 6). */
const READ_WITHIN_MS = 10_000;
/**
 * The most committed messages a live ingest waits with while nobody reads (Rule 6): about three
 * seconds of the Worker's CPU, which the first reader after a longer burst waits for at most.
 */
const DEFER_MAX = 50_000;

export class MailIndex {
  readonly #spool: Spool;
  readonly #log: MailIndexOptions['log'];
  readonly #writer: WriterClient;
  readonly #path: string;
  #reader: IndexDb | null = null;
  #lastSeq = 0;
  /** The ids of messages committed but not yet sent to the writer (what is sent is read from the spool then). */
  #batch: string[] = [];
  /** Messages committed while live, and how many of them the writer has answered for (Rule 6). */
  #committedCount = 0;
  #sentCount = 0;
  #answeredCount = 0;
  /** Readers waiting in current() for the writer to answer for the messages committed before them. */
  #readers: { readonly upTo: number; readonly resolve: () => void }[] = [];
  /** Watchers attached (Rule 6), and when current() was last called. */
  #watchers = 0;
  #readAtMs = Number.NEGATIVE_INFINITY;
  /** While sentCount is below this, deferred messages are being caught up: the next request goes at once (Rule 6). */
  #catchUpTo = 0;
  #flushScheduled = false;
  /** Messages whose search text waits in the backlog (Rule 5), as the writer last said. */
  #backlog = 0;
  /** When the last search was made (Rule 5: the writer keeps the backlog short meanwhile). */
  #searchedAt = -Infinity;
  #lastCommitMs = 0;
  #backlogTimer: ReturnType<typeof setTimeout> | null = null;
  /** When the last live ingest was sent (performance.now()), and the timer that sends the next. */
  #lastSentMs = Number.NEGATIVE_INFINITY;
  #gatherTimer: ReturnType<typeof setTimeout> | null = null;
  /** The live ingest request the writer has not answered yet, or null (Rule 4). */
  #sending: Promise<void> | null = null;
  /** True once the rebuild or catch-up has reached the end of the spool. */
  #live = false;
  #feeding: Promise<void> = Promise.resolve();
  #changes: Promise<unknown> = Promise.resolve();
  #ingests: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<(change: IndexChange) => void>();
  #closed = false;
  #broken: Error | null = null;
  readonly #retention: MailIndexOptions['retention'];
  readonly #deferMax: number;
  readonly #now: () => number;
  #retentionTimer: ReturnType<typeof setInterval> | null = null;
  /** Ids a change of this index is deleting: their removal events are its own. */
  readonly #deleting = new Set<string>();
  #stopRemovals: () => void = () => undefined;

  private constructor(options: MailIndexOptions, writer: WriterClient) {
    this.#spool = options.spool;
    this.#retention = options.retention;
    this.#deferMax = options.deferMax ?? DEFER_MAX;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
    this.#writer = writer;
    this.#path = options.path;
  }

  /**
   * Opens the index next to the spool: the writer opens (or creates) the file, then the index is
   * rebuilt or caught up in the background (`ready` resolves when it has reached the spool's end).
   */
  static async open(options: MailIndexOptions): Promise<MailIndex> {
    let index: MailIndex | null = null;
    const writer =
      options.writer === 'worker'
        ? workerWriter((error) => {
            if (index !== null) index.#fail(error);
          })
        : threadWriter();
    index = new MailIndex(options, writer);
    // Nothing here waits for the Worker (serve's start-up runs on without a turn of the event
    // loop): the file is checked in this thread, and the writer's open goes first in its queue.
    let opened: OpenReply;
    try {
      opened = IndexWriter.inspect(options.path);
      index.#reader = IndexDb.openReader(options.path);
      index.#reader.onSearch = () => (index.#searchedAt = performance.now());
    } catch (error) {
      await writer.close().catch(() => undefined);
      throw error;
    }
    writer.request({ op: 'open', path: options.path, background: options.background === true }).catch((error: unknown) => index.#fail(error as Error));
    index.#lastSeq = index.#reader.lastSeq();
    index.#backlog = opened.backlog;
    const reason = options.rebuild === true ? 'asked for' : (opened.rebuild ?? index.#mismatch());
    const opening = index;
    index.#stopRemovals = options.spool.mailStore.onRemoved((removals) => opening.#removedElsewhere(removals.map((r) => r.id)));
    index.#feeding = index.#feed(reason, opened.position, options.progress ?? (() => undefined));
    const retention = options.retention;
    if (retention !== undefined && (retention.maxMessages !== undefined || retention.maxAgeMs !== undefined)) {
      void index.#feeding.then(() => {
        if (index.#closed) return;
        const apply = () => void index.applyRetention().catch((error: unknown) => index.#log.error('retention-failed', { error: (error as Error).message }));
        apply();
        index.#retentionTimer = setInterval(apply, RETENTION_EVERY_MS);
      });
    }
    return index;
  }

  /** Resolves once the index has caught up with the spool (after a rebuild, once it is done). */
  get ready(): Promise<void> {
    return this.#feeding;
  }

  /** The read connection for queries. */
  get db(): IndexDb {
    if (this.#reader === null) throw new Error('the mail index is closed');
    return this.#reader;
  }

  /** The seq of the newest indexed message (0 when none). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Hears of every change; returns the function that stops it. */
  subscribe(listener: (change: IndexChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves with the new lastSeq once a message with a seq above `seq` is indexed (at once when
   * one is); rejects with the signal's reason when it aborts first.
   */
  waitAfter(seq: number, signal?: AbortSignal): Promise<number> {
    if (this.#lastSeq > seq) return Promise.resolve(this.#lastSeq);
    return new Promise<number>((resolve, reject) => {
      const onAbort = () => {
        stop();
        reject(signal?.reason);
      };
      const stop = this.subscribe((change) => {
        if (change.kind === 'new' && change.lastSeq > seq) {
          stop();
          signal?.removeEventListener('abort', onAbort);
          resolve(change.lastSeq);
        }
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A read is about to be made: resolves once every message committed before this call is
   * indexed (or has failed to be), at once when none waits; live ingests stay prompt for
   * READ_WITHIN_MS (Rule 6).
   */
  current(): Promise<void> {
    this.#readAtMs = performance.now();
    if (this.#answeredCount === this.#committedCount || this.#closed || this.#broken !== null) return Promise.resolve();
    const upTo = this.#committedCount;
    const waited = new Promise<void>((resolve) => this.#readers.push({ upTo, resolve }));
    this.#flush(true);
    return waited;
  }

  /**
   * A reader that follows new mail as it comes (a wait, a stream, a websocket) is attached:
   * live ingests stay prompt until the returned function detaches it (Rule 6).
   */
  watch(): () => void {
    this.#watchers++;
    this.#flush(true);
    let attached = true;
    return () => {
      if (attached) this.#watchers--;
      attached = false;
    };
  }

  /** The spool's hook: a message is durable. Batched per group commit, sent after its 250s. */
  committed(message: CommittedMessage): void {
    if (this.#closed || !this.#live) return;
    this.#lastCommitMs = performance.now();
    this.#batch.push(message.id);
    this.#committedCount++;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /** Marks messages read or unread; null means every indexed message. Returns how many changed. */
  setRead(ids: readonly string[] | null, read: boolean): Promise<number> {
    return this.#change(() => {
      const db = this.db;
      const states = db.states(ids ?? db.ids({ unread: read }));
      return { states: states.filter((s) => s.read !== read).map((s) => ({ ...s, read })) };
    });
  }

  /** Replaces the tags of messages (Mailpit's PUT /api/v1/tags). */
  setTags(ids: readonly string[], tags: readonly string[]): Promise<number> {
    const clean = [...new Set(tags.map((t) => t.trim()).filter((t) => t !== ''))].sort();
    return this.#change(() => ({ states: this.db.states(ids).filter((s) => s.tags.join('\n') !== clean.join('\n')).map((s) => ({ ...s, tags: clean })) }));
  }

  /** Renames a tag on every message carrying it (case-insensitively), merging into an existing one. */
  renameTag(from: string, to: string): Promise<number> {
    const name = to.trim();
    if (name === '') return Promise.resolve(0);
    const lower = from.toLowerCase();
    return this.#change(() => ({
      states: this.db.states(this.db.ids({ tag: from })).map((s) => ({ ...s, tags: [...new Set([...s.tags.filter((t) => t.toLowerCase() !== lower), name])].sort() })),
    }));
  }

  /** Removes a tag from every message (case-insensitively). */
  deleteTag(tag: string): Promise<number> {
    const lower = tag.toLowerCase();
    return this.#change(() => ({
      states: this.db.states(this.db.ids({ tag })).map((s) => ({ ...s, tags: s.tags.filter((t) => t.toLowerCase() !== lower) })),
    }));
  }

  /** Deletes the local copies of messages; null means every indexed message. Returns how many went. */
  delete(ids: readonly string[] | null): Promise<number> {
    return this.#change(() => ({ deleted: ids === null ? this.db.ids() : ids.filter((id) => this.db.has(id)) }));
  }

  /** Deletes every message a parsed Mailpit query matches (Mailpit's DELETE /api/v1/search). */
  deleteSearch(query: SearchQuery, context: SearchContext = {}): Promise<number> {
    return this.#change(() => ({ deleted: this.db.searchIds(query, context) }));
  }

  /**
   * Deletes the local copies retention no longer keeps: beyond the newest maxMessages, or
   * received longer than maxAgeMs ago (oldest first). Returns how many went.
   */
  async applyRetention(): Promise<number> {
    const limits = this.#retention;
    if (limits === undefined) return 0;
    const deleted = await this.#change(() => ({
      deleted: this.db.expired({ maxMessages: limits.maxMessages, beforeMs: limits.maxAgeMs === undefined ? undefined : this.#now() - limits.maxAgeMs }),
    }));
    if (deleted > 0) this.#log.info('retention-deleted', { messages: deleted, max_messages: limits.maxMessages, max_age_ms: limits.maxAgeMs });
    return deleted;
  }

  /** The SMTP session of an indexed message (Spool.session()); undefined when not indexed. */
  async session(id: string): Promise<StoredSession | undefined> {
    if (!this.db.has(id)) return undefined;
    return this.#spool.session(id);
  }

  /** The message as the client sent it (unstuffed), our Received header first; undefined when not indexed. */
  async readMessage(id: string): Promise<Uint8Array | undefined> {
    if (!this.db.has(id)) return undefined;
    return this.#spool.readMessage(id);
  }

  /** Sends what is batched and waits for the writer to finish it. */
  async drain(): Promise<void> {
    if (this.#retentionTimer !== null) clearInterval(this.#retentionTimer);
    this.#retentionTimer = null;
    while (this.#sending !== null || (this.#batch.length > 0 && !this.#closed)) {
      this.#flush(true);
      await this.#sending;
    }
    await this.#ingests.catch(() => undefined);
    await this.#changes.catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.drain();
    this.#closed = true;
    this.#answered(this.#committedCount);
    if (this.#backlogTimer !== null) clearTimeout(this.#backlogTimer);
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer);
    this.#stopRemovals();
    await this.#feeding.catch(() => undefined);
    await this.#writer.close();
    this.#reader?.close();
    this.#reader = null;
    this.#listeners.clear();
  }

  // ---- feeding the writer

  /** Why the index cannot be caught up although the writer found it current, or null. */
  #mismatch(): string | null {
    const newest = this.db.list({ limit: 1, start: 0 }).messages[0];
    if (newest !== undefined && this.#spool.get(newest.id) === undefined) return 'its newest message is not in the spool';
    return null;
  }

  async #feed(rebuild: string | null, position: SpoolPosition | null, progress: (done: number) => void): Promise<void> {
    const started = performance.now();
    if (rebuild !== null) {
      this.#log.info('index-rebuild', { reason: rebuild, path: this.#path });
      await this.#writer.request({ op: 'reset' });
      this.#lastSeq = 0;
      this.#emit({ kind: 'reset' });
    }
    let cursor: SpoolPosition | null = rebuild === null && position !== null ? { timeMs: position.timeMs - CATCH_UP_SLACK_MS, id: '' } : null;
    let done = 0;
    let batches = 0;
    // Two batches in flight: the writer decodes one while this thread reads the next.
    const inFlight: Promise<IngestReply>[] = [];
    try {
      for (;;) {
        if (!this.#live && !this.#closed) {
          const batch = this.#spool.localMessages(cursor, FEED_BATCH, CATCHER_MAILBOX);
          // Listed in this turn: a commit after it is sent by committed().
          if (batch.length < FEED_BATCH) this.#live = true;
          if (batch.length > 0) {
            cursor = batch[batch.length - 1];
            const raw = await Promise.all(batch.map((m) => this.#raw(m)));
            inFlight.push(this.#ingest(raw.filter((m) => m !== null)));
          }
        }
        const ending = this.#live || this.#closed;
        if (inFlight.length >= 2 || (ending && inFlight.length > 0)) {
          done += (await inFlight.shift()!).added;
          progress(done);
          // The batches' garbage (listings, envelopes, the clone of each request, the decoding in
          // the Worker) would otherwise pile up on a heap that holds the spool index: at 1,000,000
          // messages a rebuild grew serve's RSS by 90 MB in its first two minutes. Most of it is
          // the Worker's decoding, which is given back after every batch (at 100,000 messages a
          // rebuild peaked 34 MB above where it ended with a trim every 16 batches, 19 MB with the
          // Worker's every batch, for the same CPU); this thread's, costlier to collect, less often.
          if (++batches % TRIM_EVERY_BATCHES === 0) await this.#trim();
          else await this.#writer.request({ op: 'trim' });
        } else if (ending) break;
      }
      if (this.#closed) return;
      if (rebuild !== null) await this.#writer.request({ op: 'rebuilt' });
      // What decoding and reading that many messages left behind would otherwise stay in serve's RSS.
      if (done >= TRIM_AFTER_MESSAGES) await this.#trim();
      this.#log.info(rebuild !== null ? 'index-rebuilt' : 'index-ready', { indexed: done, messages: this.db.stats().total, ms: Math.round(performance.now() - started) });
      this.#scheduleBacklog();
    } catch (error) {
      if (!this.#closed) this.#fail(error as Error);
    }
  }

  /** SQLite's caches and the Worker's garbage, then this thread's, go back to the system. */
  async #trim(): Promise<void> {
    await this.#writer.request({ op: 'trim' });
    Bun.gc(true);
  }

  /** The message as the writer takes it, with its bytes (a rebuild or catch-up). */
  async #raw(m: LocalMessage): Promise<RawMessage | null> {
    try {
      return { ...rawMessage(m), stuffed: await this.#spool.readRaw(m.id) };
    } catch {
      // Deleted and compacted away between the listing and the read.
      return null;
    }
  }

  /**
   * The message as the writer takes it, with where its bytes are, read by the writer itself
   * (a live ingest: one request at a time, so one sent again keeps its place in commit order).
   */
  #located(m: LocalMessage): RawMessage | null {
    const at = this.#spool.locate(m.id);
    // Deleted and compacted away since the listing.
    return at === null ? null : { ...rawMessage(m), at };
  }

  /** `messages` again, with the bytes of the unreadable ones read here; those gone are left out. */
  async #withBytes(messages: readonly RawMessage[], unreadable: readonly string[]): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (const m of messages) {
      if (!unreadable.includes(m.id)) {
        out.push(m);
        continue;
      }
      try {
        out.push({ id: m.id, timeMs: m.timeMs, envelope: m.envelope, stuffed: await this.#spool.readRaw(m.id), state: m.state });
      } catch {
        // Deleted since.
      }
    }
    return out;
  }

  /** Sends what has gathered to the writer; `now` skips the gathering wait (drain). */
  #flush(now = false): void {
    this.#flushScheduled = false;
    // One request at a time (Rule 4): the answer to this one sends what gathered meanwhile.
    if (this.#sending !== null || this.#batch.length === 0 || this.#closed) return;
    const at = performance.now();
    const watched = this.#watchers > 0 || at - this.#readAtMs < READ_WITHIN_MS;
    if (!now && this.#readers.length === 0) {
      // Watched: gathered for LIVE_GATHER_MS (Rule 4); else until the burst is over (Rule 6), and
      // a catch-up once begun goes on to what waited when it began.
      const wait = watched
        ? this.#batch.length < LIVE_GATHER_ENOUGH ? this.#lastSentMs + LIVE_GATHER_MS - at : 0
        : this.#batch.length < this.#deferMax && this.#sentCount >= this.#catchUpTo ? this.#lastCommitMs + DEFER_QUIET_MS - at : 0;
      if (wait >= 1) {
        this.#gatherTimer ??= setTimeout(() => {
          this.#gatherTimer = null;
          this.#flush();
        }, wait);
        return;
      }
    }
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer);
    this.#gatherTimer = null;
    this.#lastSentMs = at;
    // A burst indexed after it (Rule 6) goes as a catch-up does: smaller transactions hold less
    // of the Worker's garbage at once.
    if (!watched && this.#sentCount >= this.#catchUpTo) {
      this.#catchUpTo = this.#sentCount + this.#batch.length;
      // The burst's garbage goes before the writer's is added to it.
      if (this.#batch.length >= TRIM_AFTER_MESSAGES) Bun.gc(true);
    }
    const batch = this.#batch.splice(0, watched ? LIVE_BATCH_MAX : FEED_BATCH);
    const upTo = (this.#sentCount += batch.length);
    const local = this.#spool.localMessagesById(batch, CATCHER_MAILBOX);
    if (local.length === 0) {
      this.#answered(upTo);
      this.#flush();
      return;
    }
    // The writer answers in order, so replies (and 'new' events) keep commit order.
    // A lone message after a pause is not worth a collection.
    const collect = !watched && batch.length === FEED_BATCH;
    const sent = this.#ingest(local.map((m) => this.#located(m)).filter((m) => m !== null), true, collect)
      .then(
        () => undefined,
        (error: unknown) => this.#fail(error as Error),
      )
      .finally(() => {
        this.#sending = null;
        this.#answered(upTo);
        this.#flush();
        this.#scheduleBacklog();
      });
    this.#sending = sent;
    this.#ingests = Promise.all([this.#ingests, sent]);
  }

  /** The writer has answered for the first `upTo` messages committed: the readers waiting for them read on. */
  #answered(upTo: number): void {
    this.#answeredCount = Math.max(this.#answeredCount, upTo);
    if (this.#readers.length === 0) return;
    const waiting = this.#readers;
    this.#readers = waiting.filter((r) => r.upTo > upTo);
    for (const r of waiting) if (r.upTo <= upTo) r.resolve();
  }

  /** Moves the backlog into FTS5 a chunk at a time once the accept path is quiet (Rule 5). */
  #scheduleBacklog(delayMs = BACKLOG_QUIET_MS): void {
    if (this.#backlog === 0 || this.#closed || !this.#live || this.#backlogTimer !== null) return;
    this.#backlogTimer = setTimeout(() => {
      this.#backlogTimer = null;
      const quietFor = performance.now() - this.#lastCommitMs;
      // An ingest in flight or waiting re-arms this when it is answered.
      if (this.#sending !== null || this.#batch.length > 0 || this.#closed) return;
      if (quietFor < BACKLOG_QUIET_MS) {
        this.#scheduleBacklog(BACKLOG_QUIET_MS - quietFor);
        return;
      }
      this.#sending = (this.#writer.request({ op: 'index-backlog', max: BACKLOG_CHUNK }) as Promise<BacklogReply>)
        .then(
          (reply) => {
            this.#backlog = reply.backlog;
          },
          (error: unknown) => this.#fail(error as Error),
        )
        .finally(() => {
          this.#sending = null;
          this.#flush();
          this.#scheduleBacklog(0);
        });
    }, delayMs);
  }

  async #ingest(messages: readonly RawMessage[], live = false, collect = false): Promise<IngestReply> {
    if (messages.length === 0) return { added: 0, lastSeq: this.#lastSeq, backlog: this.#backlog };
    const transfer = messages.flatMap((m) => (m.stuffed === undefined ? [] : [m.stuffed.buffer as ArrayBuffer]));
    const searched = live && performance.now() - this.#searchedAt < SEARCHED_WITHIN_MS;
    let reply = (await this.#writer.request({ op: 'ingest', messages, live, searched, collect }, transfer)) as IngestReply;
    if (reply.unreadable !== undefined) {
      // Compacted away after being located: sent again with their bytes, read here as they are now.
      const again = await this.#withBytes(messages, reply.unreadable);
      const transfer = again.flatMap((m) => (m.stuffed === undefined ? [] : [m.stuffed.buffer as ArrayBuffer]));
      reply = (await this.#writer.request({ op: 'ingest', messages: again, live, searched, collect }, transfer)) as IngestReply;
      if (reply.unreadable !== undefined) throw new Error(`the index writer could not read ${reply.unreadable.join(', ')}`);
    }
    this.#backlog = reply.backlog;
    if (reply.added > 0) {
      const afterSeq = this.#lastSeq;
      this.#lastSeq = reply.lastSeq;
      this.#emit({ kind: 'new', afterSeq, lastSeq: reply.lastSeq, count: reply.added });
    }
    return reply;
  }

  // ---- changes

  #change(compute: () => { states?: MessageState[]; deleted?: readonly string[] }): Promise<number> {
    const run = async (): Promise<number> => {
      if (this.#broken) throw this.#broken;
      const { states = [], deleted = [] } = compute();
      if (states.length === 0 && deleted.length === 0) return 0;
      await this.#writer.request({ op: 'begin' });
      // A failure from here on leaves the change counted as pending: the index is rebuilt at the
      // next start, whatever part of the journal write reached the disk.
      if (states.length > 0) await this.#spool.setMailboxState(states.map((s) => ({ id: s.id, mailbox: CATCHER_MAILBOX, flags: mailboxFlags(s.read, s.tags) })));
      let reply: { changed: number };
      for (const id of deleted) this.#deleting.add(id);
      try {
        if (deleted.length > 0) await this.#spool.deleteLocal(deleted);
        reply = (await this.#writer.request({ op: 'apply', states, deleted })) as { changed: number };
      } finally {
        for (const id of deleted) this.#deleting.delete(id);
      }
      if (states.length > 0) this.#emit({ kind: 'updated', ids: states.map((s) => s.id) });
      if (deleted.length > 0) this.#emit({ kind: 'deleted', ids: deleted });
      return reply.changed;
    };
    const result = this.#changes.then(run, run);
    this.#changes = result.catch(() => undefined);
    return result;
  }

  /**
   * Copies deleted by another reader (a POP3 DELE, an IMAP expunge), already durable in the
   * journal: the index keeps each message for the local recipients left, or drops it.
   */
  #removedElsewhere(ids: readonly string[]): void {
    if (this.#closed || this.#broken !== null) return;
    const mine = ids.filter((id) => !this.#deleting.has(id) && this.db.has(id));
    if (mine.length === 0) return;
    const held = new Map(this.#spool.localMessagesById(mine, CATCHER_MAILBOX).map((m) => [m.id, m.localRecipients]));
    const messages = [...new Set(mine)].map((id) => ({ id, recipients: held.get(id) ?? [] }));
    const gone = messages.filter((m) => m.recipients.length === 0).map((m) => m.id);
    const sent = this.#writer
      .request({ op: 'held', messages })
      .then(() => {
        const kept = messages.filter((m) => m.recipients.length > 0).map((m) => m.id);
        if (kept.length > 0) this.#emit({ kind: 'updated', ids: kept });
        if (gone.length > 0) this.#emit({ kind: 'deleted', ids: gone });
      })
      .catch((error: unknown) => this.#fail(error as Error));
    this.#changes = Promise.all([this.#changes, sent]);
  }

  #emit(change: IndexChange): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (error) {
        this.#log.error('index-listener-failed', { error: (error as Error).message });
      }
    }
  }

  #fail(error: Error): void {
    if (this.#broken !== null) return;
    this.#broken = error;
    this.#log.error('index-failed', { error: error.message, note: 'the index stops following the spool until restart' });
    // Readers read what there is.
    this.#answered(this.#committedCount);
  }
}

/** What the writer needs of a local message besides its bytes. */
function rawMessage(m: LocalMessage): Omit<RawMessage, 'stuffed' | 'at'> {
  const envelope: IndexEnvelope = { mailFrom: m.envelope.sender === null ? '' : mailboxKey(m.envelope.sender), recipients: m.localRecipients, authUser: m.envelope.authUser };
  return { id: m.id, timeMs: m.timeMs, envelope, state: m.state === null ? null : { id: m.id, read: m.state.read, tags: m.state.tags } };
}
