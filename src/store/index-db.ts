/**
 * @module The on-disk index of stored mail (bun:sqlite, WAL): per-message metadata, per-recipient
 * inboxes from the envelope, tags and read state, and FTS5 with the trigram tokenizer for Mailpit's
 * substring search. It is derived from the spool and the journal and can always be rebuilt.
 * Rule 1: the index records the spool position it has seen and its schema version in `meta`; a
 *         mismatch means rebuild (the caller re-ingests), never repair.
 * Rule 2: a search is the parsed Mailpit query turned into SQL with every value bound as a
 *         parameter; no text from a query is ever spliced into SQL.
 * Rule 3: one ingest call is one transaction, so a reader never sees half a group commit.
 * Rule 4: full-text indexing can wait. A live ingest (`deferSearch`) puts a message's search text
 *         in `backlog`, a plain table, instead of fts: tokenising it into trigrams is most of an
 *         ingest's cost. `indexBacklog` moves the oldest rows into fts in one transaction, when
 *         the accept path is quiet or the backlog is too long (mail-index.ts, index-writer.ts).
 *         Every search reads both: a term matches fts by MATCH and the backlog by instr() on the
 *         same lowercased columns, so a message is found the moment it is ingested.
 */
import { Database, type Statement } from 'bun:sqlite';
import { closeSync, openSync } from 'node:fs';
import PostalMime, { type Address } from 'postal-mime';
import { cleanText, searchDateToMs, type SearchFlag, type SearchQuery, type SearchTerm } from '../core/mailpit-search.ts';
import { htmlToText } from '../core/html-text.ts';
import { isWhitespace } from '../core/whitespace.ts';
import { parseSimpleMessage, type MessageParts } from './simple-message.ts';

/** Bump when the schema or what is derived into it changes: an older file is rebuilt. */
export const INDEX_SCHEMA_VERSION = 4;
/** Mailpit's Snippet is at most 250 characters (research/mailpit-api.md §1.3). */
export const SNIPPET_CHARS = 250;

/** Mailpit's Address shape. */
export interface IndexAddress {
  readonly Name: string;
  readonly Address: string;
}

/** The SMTP envelope as the index needs it: addresses as text ("" is the null sender). */
export interface IndexEnvelope {
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly authUser: string | null;
}

/** What the index stores for one message, derived from its bytes and envelope. */
export interface MessageSummary {
  readonly from: IndexAddress | null;
  readonly to: readonly IndexAddress[];
  readonly cc: readonly IndexAddress[];
  /** Header Bcc plus the envelope recipients named in no To, Cc or Bcc (as Mailpit does). */
  readonly bcc: readonly IndexAddress[];
  readonly replyTo: readonly IndexAddress[];
  readonly returnPath: string;
  readonly subject: string;
  /** Without angle brackets. */
  readonly messageId: string;
  /** The Date header as epoch ms, or null when absent or unreadable. */
  readonly dateMs: number | null;
  /** Exact size of the stored message in octets (dot-unstuffed). */
  readonly size: number;
  readonly attachments: number;
  readonly inline: number;
  readonly snippet: string;
  /** Mailpit's search text: address headers, subject, body text, attachment names; cleaned. */
  readonly searchText: string;
}

export interface IngestItem {
  readonly id: string;
  /** The spool's commit order: strictly increasing, the wait cursor. */
  readonly seq: number;
  readonly receivedMs: number;
  readonly envelope: IndexEnvelope;
  readonly summary: MessageSummary;
  readonly tags?: readonly string[];
  readonly read?: boolean;
}

/** A message as the index returns it: its envelope and summary (less the search text), read state and tags. */
export interface IndexedMessage extends IndexEnvelope, Omit<MessageSummary, 'searchText'> {
  readonly id: string;
  readonly seq: number;
  readonly receivedMs: number;
  readonly read: boolean;
  readonly tags: readonly string[];
}

/** The state a reader can change: read or not, and the tags. */
export interface MessageState {
  readonly id: string;
  readonly read: boolean;
  readonly tags: readonly string[];
}

export interface Page {
  readonly messages: readonly IndexedMessage[];
  /** Every match, not just this page (Mailpit's messages_count). */
  readonly matched: number;
  readonly matchedUnread: number;
}

export interface IndexStats {
  readonly total: number;
  readonly unread: number;
  readonly lastSeq: number;
  readonly tags: Readonly<Record<string, number>>;
}

export interface SearchContext {
  /** Offset in minutes east of UTC for a wall-clock time, for dates typed without a zone. */
  readonly offsetAt?: (wallClockMs: number) => number;
}

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE messages (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  received_ms INTEGER NOT NULL,
  mail_from TEXT NOT NULL,
  rcpts TEXT NOT NULL,
  auth_user TEXT,
  addresses TEXT NOT NULL,
  return_path TEXT NOT NULL,
  subject TEXT NOT NULL,
  message_id TEXT NOT NULL,
  date_ms INTEGER,
  size INTEGER NOT NULL,
  attachments INTEGER NOT NULL,
  inline INTEGER NOT NULL,
  snippet TEXT NOT NULL,
  read INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_unread ON messages(seq) WHERE read = 0;
-- A search's hits are counted (and their unread) from this, not from the wide rows (#page).
CREATE INDEX messages_seq_read ON messages(seq, read);
CREATE TABLE recipients (rcpt TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (rcpt, seq)) WITHOUT ROWID;
CREATE INDEX recipients_seq ON recipients(seq);
CREATE TABLE tags (seq INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (seq, tag)) WITHOUT ROWID;
CREATE INDEX tags_tag ON tags(tag COLLATE NOCASE, seq);
CREATE TABLE totals (one INTEGER PRIMARY KEY CHECK (one = 1), total INTEGER NOT NULL, unread INTEGER NOT NULL);
INSERT INTO totals VALUES (1, 0, 0);
-- columnsize=0: no per-row token counts, which only ranking (bm25) reads.
CREATE VIRTUAL TABLE fts USING fts5(text, subject, from_a, to_a, cc_a, bcc_a, reply_to_a, tokenize = 'trigram', columnsize = 0);
-- Search text not in fts yet (Rule 4), in fts's columns; scanned by searches until moved.
CREATE TABLE backlog (
  seq INTEGER PRIMARY KEY, text TEXT NOT NULL, subject TEXT NOT NULL, from_a TEXT NOT NULL, to_a TEXT NOT NULL,
  cc_a TEXT NOT NULL, bcc_a TEXT NOT NULL, reply_to_a TEXT NOT NULL
);
-- An ingest adds to totals once per transaction (IndexDb.ingest), not a row at a time.
CREATE TRIGGER messages_del AFTER DELETE ON messages BEGIN
  UPDATE totals SET total = total - 1, unread = unread - (OLD.read = 0);
  DELETE FROM recipients WHERE seq = OLD.seq;
  DELETE FROM tags WHERE seq = OLD.seq;
  DELETE FROM fts WHERE rowid = OLD.seq;
  DELETE FROM backlog WHERE seq = OLD.seq;
END;
CREATE TRIGGER messages_read AFTER UPDATE OF read ON messages WHEN OLD.read != NEW.read BEGIN
  UPDATE totals SET unread = unread + (NEW.read = 0) - (OLD.read = 0);
END;
`;

/** Columns of the fts table a term can search, by Mailpit keyword. */
const ADDRESS_COLUMNS = { from: 'from_a', to: 'to_a', cc: 'cc_a', bcc: 'bcc_a', 'reply-to': 'reply_to_a' } as const;
type FtsColumn = 'text' | 'subject' | (typeof ADDRESS_COLUMNS)[keyof typeof ADDRESS_COLUMNS];

/** The index over one database file. */
export class IndexDb {
  readonly #db: Database;
  readonly #insertMessage: Statement;
  readonly #insertRecipient: Statement;
  readonly #insertTag: Statement;
  readonly #insertFts: Statement;
  readonly #insertBacklog: Statement;
  readonly #setMeta: Statement;
  readonly #addTotals: Statement;

  readonly #sync: string;
  /** Told of each search, which scans the backlog (Rule 4): the mail index moves it sooner then. */
  onSearch: (() => void) | null = null;

  private constructor(db: Database, sync = 'NORMAL') {
    this.#db = db;
    this.#sync = sync;
    this.#insertMessage = db.prepare(
      `INSERT INTO messages (seq, id, received_ms, mail_from, rcpts, auth_user, addresses, return_path, subject, message_id, date_ms, size, attachments, inline, snippet, read)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT (id) DO NOTHING`,
    );
    this.#insertRecipient = db.prepare('INSERT OR IGNORE INTO recipients (rcpt, seq) VALUES (?1, ?2)');
    this.#insertTag = db.prepare('INSERT OR IGNORE INTO tags (seq, tag) VALUES (?1, ?2)');
    this.#insertFts = db.prepare('INSERT INTO fts (rowid, text, subject, from_a, to_a, cc_a, bcc_a, reply_to_a) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)');
    this.#insertBacklog = db.prepare('INSERT INTO backlog (seq, text, subject, from_a, to_a, cc_a, bcc_a, reply_to_a) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)');
    this.#setMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value');
    this.#addTotals = db.prepare('UPDATE totals SET total = total + ?1, unread = unread + ?2');
  }

  /**
   * Opens (or creates) the index at `path`. A file from another schema version is emptied and
   * `rebuilt` is true: the caller must then ingest the whole spool again.
   */
  static open(path: string, options: { sync?: 'normal' | 'off' } = {}): { index: IndexDb; rebuilt: boolean } {
    // It holds people's mail, as the spool does: only the owner may read it (SQLite gives the
    // -wal and -shm files the mode of the database file).
    closeSync(openSync(path, 'a', 0o600));
    const db = new Database(path, { create: true, strict: true });
    db.exec('PRAGMA journal_mode = WAL');
    // The index is derived, so it need not fsync on every commit (NORMAL: only at checkpoints).
    // 'off' never does: for a caller that rebuilds the file after a machine crash (index-writer.ts).
    const sync = options.sync === 'off' ? 'OFF' : 'NORMAL';
    db.exec(`PRAGMA synchronous = ${sync}`);
    db.exec('PRAGMA foreign_keys = OFF');
    // The writer's page cache: 8 MB holds the b-tree pages an ingest touches (with 2 MB, ingest on
    // top of 100,000 messages took about a tenth more CPU); the readers' is smaller (openReader).
    db.exec('PRAGMA cache_size = -8192');
    const hasMeta = db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== null;
    const version = hasMeta ? (db.query("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | null)?.value : undefined;
    let rebuilt = false;
    if (version !== String(INDEX_SCHEMA_VERSION)) {
      rebuilt = true;
      dropEverything(db);
      db.transaction(() => {
        db.exec(SCHEMA);
        db.query('INSERT INTO meta (key, value) VALUES (?1, ?2)').run('schema_version', String(INDEX_SCHEMA_VERSION));
      })();
    }
    return { index: new IndexDb(db, sync), rebuilt };
  }

  /**
   * A second connection to an index another connection writes (WAL: readers never block the
   * writer), for queries only. The file must exist with the current schema.
   */
  static openReader(path: string): IndexDb {
    const db = new Database(path, { readonly: true, strict: true });
    // 2 MB of page cache (SQLite's default). A search reads its FTS doclists once, in order, so
    // pages that miss come from the kernel's page cache at little cost: at 100,000 messages a
    // search takes 1.5-3 ms more CPU than with 32 MB (which holds them all) and the same as with
    // 4 or 8 MB, and at 1,000,000 a 32 MB cache, once searches filled it, held 36 MB of serve's RSS.
    db.exec('PRAGMA cache_size = -2048');
    return new IndexDb(db);
  }

  close(): void {
    this.#db.close();
  }

  /** A value kept in `meta`, or null. */
  meta(key: string): string | null {
    const row = this.#db.query('SELECT value FROM meta WHERE key = ?1').get(key) as { value: string } | null;
    return row === null ? null : row.value;
  }

  /** Sets (or with null removes) a value in `meta`. */
  setMeta(key: string, value: string | null): void {
    if (value === null) this.#db.query('DELETE FROM meta WHERE key = ?1').run(key);
    else this.#setMeta.run(key, value);
  }

  /** Runs `fn` as one transaction; with `durable`, its commit is synced to disk before it returns. */
  transaction<T>(fn: () => T, durable = false): T {
    if (durable) this.#db.exec('PRAGMA synchronous = FULL');
    try {
      return this.#db.transaction(fn)();
    } finally {
      if (durable) this.#db.exec(`PRAGMA synchronous = ${this.#sync}`);
    }
  }

  has(id: string): boolean {
    return this.#db.query('SELECT 1 FROM messages WHERE id = ?1').get(id) !== null;
  }

  /** The highest seq in the index (0 when empty). */
  lastSeq(): number {
    return (this.#db.query('SELECT max(seq) AS s FROM messages').get() as { s: number | null }).s ?? 0;
  }

  /** Ids of messages: every one, only unread ones, or those carrying `tag`; oldest first. */
  ids(which: { unread?: boolean; tag?: string } = {}): string[] {
    if (which.tag !== undefined) {
      return (this.#db.query('SELECT m.id FROM messages m JOIN tags t ON t.seq = m.seq WHERE t.tag = ?1 COLLATE NOCASE ORDER BY m.seq').all(which.tag) as { id: string }[]).map((r) => r.id);
    }
    const sql = which.unread === true ? 'SELECT id FROM messages WHERE read = 0 ORDER BY seq' : 'SELECT id FROM messages ORDER BY seq';
    return (this.#db.query(sql).all() as { id: string }[]).map((r) => r.id);
  }

  /** Ids of every message a parsed Mailpit query matches, oldest first. */
  searchIds(query: SearchQuery, context: SearchContext = {}): string[] {
    this.onSearch?.();
    const built = withMatch(buildWhere(query.terms, context));
    const where = built.conditions.length === 0 ? '' : `WHERE ${built.conditions.join(' AND ')}`;
    return (this.#db.query(`SELECT m.id FROM messages m ${where} ORDER BY m.seq`).all(...built.params) as { id: string }[]).map((r) => r.id);
  }

  /** Read state and tags of the given messages (unknown ids are left out). */
  states(ids: readonly string[]): MessageState[] {
    const out: MessageState[] = [];
    const one = this.#db.query('SELECT seq, read FROM messages WHERE id = ?1');
    const tagsOf = this.#db.query('SELECT tag FROM tags WHERE seq = ?1 ORDER BY tag');
    for (const id of ids) {
      const row = one.get(id) as { seq: number; read: number } | null;
      if (row === null) continue;
      out.push({ id, read: row.read === 1, tags: (tagsOf.all(row.seq) as { tag: string }[]).map((t) => t.tag) });
    }
    return out;
  }

  /**
   * Sets the envelope recipients (the inboxes) a message is held for, after some of its copies
   * were deleted elsewhere (a POP3 or IMAP expunge); an empty list deletes the message.
   */
  setRecipients(id: string, recipients: readonly string[]): void {
    if (recipients.length === 0) {
      this.delete([id]);
      return;
    }
    const row = this.#db.query('SELECT seq FROM messages WHERE id = ?1').get(id) as { seq: number } | null;
    if (row === null) return;
    this.#db.transaction(() => {
      this.#db.query('UPDATE messages SET rcpts = ?1 WHERE seq = ?2').run(JSON.stringify(recipients), row.seq);
      this.#db.query('DELETE FROM recipients WHERE seq = ?1').run(row.seq);
      for (const rcpt of recipients) this.#insertRecipient.run(inboxKey(rcpt), row.seq);
    })();
  }

  /** Sets read state and tags (replacing them) of messages, in one transaction; returns how many exist. */
  setStates(states: readonly MessageState[]): number {
    const seqOf = this.#db.query('SELECT seq FROM messages WHERE id = ?1');
    const setRead = this.#db.query('UPDATE messages SET read = ?1 WHERE seq = ?2 AND read != ?1');
    const clear = this.#db.query('DELETE FROM tags WHERE seq = ?1');
    let found = 0;
    this.#db.transaction(() => {
      for (const s of states) {
        const row = seqOf.get(s.id) as { seq: number } | null;
        if (row === null) continue;
        found++;
        setRead.run(s.read ? 1 : 0, row.seq);
        clear.run(row.seq);
        for (const tag of s.tags) this.#insertTag.run(row.seq, tag);
      }
    })();
    return found;
  }

  /** The spool position recorded with the last ingest, or null for an empty index. */
  spoolPosition(): string | null {
    const row = this.#db.query("SELECT value FROM meta WHERE key = 'spool_position'").get() as { value: string } | null;
    return row === null ? null : row.value;
  }

  /** Empties the index (keeping the schema), for a rebuild from the spool. */
  reset(): void {
    this.#db.transaction(() => {
      this.#db.exec('DELETE FROM messages; DELETE FROM recipients; DELETE FROM tags; DELETE FROM fts; DELETE FROM backlog; UPDATE totals SET total = 0, unread = 0;');
      this.#db.query("DELETE FROM meta WHERE key = 'spool_position'").run();
    })();
  }

  /**
   * Adds one group commit's messages and records the spool position, in one transaction. With
   * `deferSearch` their search text goes to the backlog (Rule 4); returns how many were added.
   */
  ingest(items: readonly IngestItem[], spoolPosition: string, options: { deferSearch?: boolean } = {}): number {
    const search = options.deferSearch === true ? this.#insertBacklog : this.#insertFts;
    let added = 0;
    let unread = 0;
    this.#db.transaction(() => {
      for (const item of items) {
        const s = item.summary;
        const seq = item.seq;
        const inserted = this.#insertMessage.run(
          seq, item.id, item.receivedMs, item.envelope.mailFrom, JSON.stringify(item.envelope.recipients), item.envelope.authUser,
          JSON.stringify([s.from, s.to, s.cc, s.bcc, s.replyTo]), s.returnPath, s.subject, s.messageId, s.dateMs, s.size,
          s.attachments, s.inline, s.snippet, item.read === true ? 1 : 0,
        );
        // An id already indexed is skipped.
        if (inserted.changes === 0) continue;
        if (item.read !== true) unread++;
        for (const rcpt of item.envelope.recipients) this.#insertRecipient.run(inboxKey(rcpt), seq);
        for (const tag of item.tags ?? []) this.#insertTag.run(seq, tag);
        search.run(seq, s.searchText, s.subject.toLowerCase(), addressText(s.from === null ? [] : [s.from]), addressText(s.to), addressText(s.cc), addressText(s.bcc), addressText(s.replyTo));
        added++;
      }
      if (added > 0) this.#addTotals.run(added, unread);
      this.#setMeta.run('spool_position', spoolPosition);
    })();
    return added;
  }

  /** Messages whose search text waits in the backlog (Rule 4). */
  backlogSize(): number {
    return (this.#db.query('SELECT count(*) AS n FROM backlog').get() as { n: number }).n;
  }

  /** Moves the oldest `max` rows of the backlog into fts, in one transaction; returns how many moved. */
  indexBacklog(max: number): number {
    return this.#db.transaction(() => {
      const last = this.#db.query('SELECT seq FROM backlog ORDER BY seq LIMIT 1 OFFSET ?1').get(max - 1) as { seq: number } | null;
      const upTo = last?.seq ?? Number.MAX_SAFE_INTEGER;
      this.#db.query('INSERT INTO fts (rowid, text, subject, from_a, to_a, cc_a, bcc_a, reply_to_a) SELECT seq, text, subject, from_a, to_a, cc_a, bcc_a, reply_to_a FROM backlog WHERE seq <= ?1 ORDER BY seq').run(upTo);
      return this.#db.query('DELETE FROM backlog WHERE seq <= ?1').run(upTo).changes;
    })();
  }

  /** Newest first by commit order; `inbox` limits to one envelope recipient. */
  list(options: { inbox?: string; limit: number; start: number }): Page {
    if (options.inbox !== undefined) {
      // An inbox's messages are its entries in recipients, in seq order: counted and paged there
      // (the page by walking them backwards), their unread as a search's are (#page).
      const found = this.#db.query(
        `SELECT n, ${unreadAmong('SELECT count(*) FROM recipients r CROSS JOIN messages u INDEXED BY messages_unread ON u.seq = r.seq AND u.read = 0 WHERE r.rcpt = ?1')} AS u,
          (SELECT json_group_array(seq) FROM (SELECT seq FROM recipients WHERE rcpt = ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3)) AS page
        FROM (SELECT count(*) AS n FROM recipients WHERE rcpt = ?1)`,
      ).get(inboxKey(options.inbox), options.limit, options.start) as Found;
      return this.#pageOf(found);
    }
    const totals = this.#totals();
    const rows = this.#db.query(`SELECT ${COLUMNS} FROM messages ORDER BY seq DESC LIMIT ?1 OFFSET ?2`).all(options.limit, options.start) as Row[];
    return { messages: this.#withTags(rows), matched: totals.total, matchedUnread: totals.unread };
  }

  /** The messages a parsed Mailpit query matches, newest first, and the exact number of matches. */
  search(query: SearchQuery, options: { limit: number; start: number; inbox?: string; afterSeq?: number }, context: SearchContext = {}): Page {
    this.onSearch?.();
    const built = buildWhere(query.terms, context);
    if (options.inbox !== undefined) {
      built.conditions.push('m.seq IN (SELECT seq FROM recipients WHERE rcpt = ?)');
      built.params.push(inboxKey(options.inbox));
    }
    if (options.afterSeq !== undefined) {
      built.conditions.push('m.seq > ?');
      built.params.push(options.afterSeq);
    }
    if (built.match === null && built.conditions.length === 0) return this.list({ limit: options.limit, start: options.start });
    return this.#page(built, options.limit, options.start);
  }

  /** Seqs matching a query with seq > afterSeq, oldest first (for a wait). */
  matchAfter(query: SearchQuery, afterSeq: number, limit: number, context: SearchContext = {}): IndexedMessage[] {
    const built = withMatch(buildWhere(query.terms, context));
    built.conditions.push('m.seq > ?');
    built.params.push(afterSeq);
    const sql = `SELECT ${COLUMNS} FROM messages m WHERE ${built.conditions.join(' AND ')} ORDER BY m.seq ASC LIMIT ?`;
    return this.#withTags(this.#db.query(sql).all(...built.params, limit) as Row[]);
  }

  get(id: string): IndexedMessage | null {
    const row = this.#db.query(`SELECT ${COLUMNS} FROM messages WHERE id = ?1`).get(id) as Row | null;
    return row === null ? null : this.#withTags([row])[0];
  }

  /** Marks messages read or unread; no ids means every message (Mailpit's PUT without IDs). */
  setRead(ids: readonly string[] | null, read: boolean): number {
    const flag = read ? 1 : 0;
    if (ids === null) return this.#db.query('UPDATE messages SET read = ?1 WHERE read != ?1').run(flag).changes;
    let changed = 0;
    const stmt = this.#db.query('UPDATE messages SET read = ?1 WHERE id = ?2 AND read != ?1');
    this.#db.transaction(() => {
      for (const id of ids) changed += stmt.run(flag, id).changes;
    })();
    return changed;
  }

  /** Replaces the tags of the given messages (Mailpit's PUT /api/v1/tags). */
  setTags(ids: readonly string[], tags: readonly string[]): void {
    const seqOf = this.#db.query('SELECT seq FROM messages WHERE id = ?1');
    const clear = this.#db.query('DELETE FROM tags WHERE seq = ?1');
    this.#db.transaction(() => {
      for (const id of ids) {
        const row = seqOf.get(id) as { seq: number } | null;
        if (row === null) continue;
        clear.run(row.seq);
        for (const tag of new Set(tags.map((t) => t.trim()).filter((t) => t !== ''))) this.#insertTag.run(row.seq, tag);
      }
    })();
  }

  /** Renames a tag on every message (Mailpit's PUT /api/v1/tags/{tag}); merging into an existing tag. */
  renameTag(from: string, to: string): number {
    const name = to.trim();
    if (name === '') return 0;
    let changed = 0;
    this.#db.transaction(() => {
      const seqs = this.#db.query('SELECT seq FROM tags WHERE tag = ?1 COLLATE NOCASE').all(from) as { seq: number }[];
      this.#db.query('DELETE FROM tags WHERE tag = ?1 COLLATE NOCASE').run(from);
      for (const { seq } of seqs) changed += this.#insertTag.run(seq, name).changes;
    })();
    return changed;
  }

  /** Removes a tag from every message (Mailpit's DELETE /api/v1/tags/{tag}). */
  deleteTag(tag: string): number {
    return this.#db.query('DELETE FROM tags WHERE tag = ?1 COLLATE NOCASE').run(tag).changes;
  }

  /**
   * Ids retention would remove, oldest first: those beyond the newest `maxMessages`, and those
   * received before `beforeMs`. The caller journals the deletions, then calls delete().
   */
  expired(options: { maxMessages?: number; beforeMs?: number }): string[] {
    const ids = new Set<string>();
    if (options.maxMessages !== undefined) {
      const rows = this.#db.query('SELECT id FROM messages ORDER BY seq DESC LIMIT -1 OFFSET ?1').all(options.maxMessages) as { id: string }[];
      for (let i = rows.length - 1; i >= 0; i--) ids.add(rows[i].id);
    }
    if (options.beforeMs !== undefined) {
      for (const row of this.#db.query('SELECT id FROM messages WHERE received_ms < ?1 ORDER BY seq').all(options.beforeMs) as { id: string }[]) ids.add(row.id);
    }
    return [...ids];
  }

  /** Deletes messages by id; null deletes every message. Returns how many were deleted. */
  delete(ids: readonly string[] | null): number {
    if (ids === null) {
      const total = this.#totals().total;
      this.#db.transaction(() => {
        this.#db.exec('DELETE FROM recipients; DELETE FROM tags; DELETE FROM fts; DELETE FROM backlog; DELETE FROM messages; UPDATE totals SET total = 0, unread = 0;');
      })();
      return total;
    }
    let deleted = 0;
    const stmt = this.#db.query('DELETE FROM messages WHERE id = ?1');
    this.#db.transaction(() => {
      for (const id of ids) deleted += stmt.run(id).changes;
    })();
    return deleted;
  }

  /** Gives back what SQLite holds in memory beyond what it needs (page cache, scratch): after a rebuild. */
  releaseMemory(): void {
    this.#db.exec('PRAGMA shrink_memory');
  }

  /**
   * Merges the full-text index into one b-tree (FTS5 'optimize'). Worth it after a rebuild or a
   * large ingest: searches then read one segment instead of many.
   */
  optimize(): void {
    this.#db.query("INSERT INTO fts (fts) VALUES ('optimize')").run();
    // The merge rewrote the whole FTS index through the WAL: fold it back and cut the file.
    this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }

  stats(): IndexStats {
    const totals = this.#totals();
    const last = this.#db.query('SELECT max(seq) AS s FROM messages').get() as { s: number | null };
    const tags: Record<string, number> = {};
    for (const row of this.#db.query('SELECT tag, count(*) AS n FROM tags GROUP BY tag ORDER BY tag COLLATE NOCASE').all() as { tag: string; n: number }[]) tags[row.tag] = row.n;
    return { total: totals.total, unread: totals.unread, lastSeq: last.s ?? 0, tags };
  }

  /** The envelope recipients (inboxes) and how many messages each holds. */
  inboxes(): { address: string; total: number; lastSeq: number }[] {
    return (this.#db.query('SELECT rcpt AS address, count(*) AS total, max(seq) AS lastSeq FROM recipients GROUP BY rcpt ORDER BY rcpt').all() as { address: string; total: number; lastSeq: number }[]);
  }

  #totals(): { total: number; unread: number } {
    return this.#db.query('SELECT total, unread FROM totals').get() as { total: number; unread: number };
  }

  #page(built: Where, limit: number, start: number): Page {
    // One statement evaluates the conditions (and so the FTS lookup) once for the count, the unread
    // count and the page of seqs; the page's rows are then read by primary key.
    // - With an FTS match and no condition reading more than seq, the hits are the FTS rowids
    //   themselves, and the backlog's seqs the same terms find there (Rule 4): no messages entry
    //   is read per hit. Their unread count follows from the totals
    //   when every stored message is unread or every one is read; otherwise each hit is looked up
    //   in the unread index, in seq order.
    // - Otherwise the FTS rowids (when there is a match) are joined to messages by seq, and
    //   conditions that read no column but seq and read are met from the narrow (seq, read)
    //   index, not from a table page per hit.
    // - The page is the hits sorted newest first; when they are exactly the FTS rowids (nothing
    //   waits in the backlog) and the page lies in the newest eighth, FTS5 walks its rowids
    //   backwards instead and stops there.
    const columns = new Set(built.conditions.flatMap((c) => [...c.matchAll(/\bm\.(\w+)/g)].map((m) => m[1])));
    const narrow = [...columns].every((c) => c === 'seq' || c === 'read') ? ' INDEXED BY messages_seq_read' : '';
    const rest = built.conditions.length === 0 ? '' : `WHERE ${built.conditions.join(' AND ')}`;
    const params: (string | number)[] = built.match === null ? [...built.params] : [built.match, ...built.matchInBacklog.params, ...built.params];
    // Numbered after the plain parameters of `hits`, which come first in the statement.
    const [limitAt, startAt] = [`?${params.length + 1}`, `?${params.length + 2}`];
    const sorted = `(SELECT json_group_array(seq) FROM (SELECT seq FROM hits ORDER BY seq DESC LIMIT ${limitAt} OFFSET ${startAt}))`;
    let hits: string;
    let unread = '(SELECT coalesce(sum(read = 0), 0) FROM hits)';
    let page = sorted;
    if (built.match === null) {
      hits = `SELECT m.seq, m.read FROM messages m${narrow} ${rest}`;
    } else if (columns.size === 0 || (columns.size === 1 && columns.has('seq'))) {
      // +rowid: the other conditions filter the FTS rowids; they are not offered to FTS5 as rowid
      // lookups (an IN list there would run the whole match once per listed seq).
      hits = `SELECT m.seq FROM (${matchedRows(built, '+rowid')}) m ${rest}`;
      unread = unreadAmong('SELECT count(*) FROM hits h CROSS JOIN messages u INDEXED BY messages_unread ON u.seq = h.seq AND u.read = 0');
      if (rest === '') {
        page = `CASE WHEN ${limitAt} + ${startAt} <= n / 8 AND NOT EXISTS (SELECT 1 FROM backlog)
          THEN (SELECT json_group_array(seq) FROM (SELECT rowid AS seq FROM fts WHERE fts MATCH ?1 ORDER BY rowid DESC LIMIT ${limitAt} OFFSET ${startAt}))
          ELSE ${sorted} END`;
      }
    } else {
      hits = `SELECT m.seq, m.read FROM (${matchedRows(built, '+rowid')}) f CROSS JOIN messages m${narrow} ON m.seq = f.seq ${rest}`;
    }
    const sql = `WITH hits AS MATERIALIZED (${hits}) SELECT n, ${unread} AS u, ${page} AS page FROM (SELECT count(*) AS n FROM hits)`;
    return this.#pageOf(this.#db.query(sql).get(...params, limit, start) as Found);
  }

  /** The page's rows, read by primary key, with the counts. */
  #pageOf(found: Found): Page {
    const byPk = this.#db.query(`SELECT ${COLUMNS} FROM messages WHERE seq = ?1`);
    const rows = (JSON.parse(found.page) as number[]).map((seq) => byPk.get(seq) as Row);
    return { messages: this.#withTags(rows), matched: found.n, matchedUnread: found.u };
  }

  #withTags(rows: readonly Row[]): IndexedMessage[] {
    const tags = new Map<number, string[]>();
    if (rows.length > 0) {
      const found = this.#db.query('SELECT seq, tag FROM tags WHERE seq IN (SELECT value FROM json_each(?1)) ORDER BY tag COLLATE NOCASE').all(JSON.stringify(rows.map((r) => r.seq))) as { seq: number; tag: string }[];
      for (const t of found) {
        const list = tags.get(t.seq);
        if (list === undefined) tags.set(t.seq, [t.tag]);
        else list.push(t.tag);
      }
    }
    return rows.map((row) => {
      const [from, to, cc, bcc, replyTo] = JSON.parse(row.addresses) as [IndexAddress | null, IndexAddress[], IndexAddress[], IndexAddress[], IndexAddress[]];
      return {
        id: row.id, seq: row.seq, receivedMs: row.received_ms, mailFrom: row.mail_from, recipients: JSON.parse(row.rcpts) as string[],
        authUser: row.auth_user, from, to, cc, bcc, replyTo, returnPath: row.return_path, subject: row.subject, messageId: row.message_id,
        dateMs: row.date_ms, size: row.size, attachments: row.attachments, inline: row.inline, snippet: row.snippet, read: row.read === 1,
        tags: tags.get(row.seq) ?? [],
      };
    });
  }
}

/** A page as #page's statement finds it: the count, the unread count and the page's seqs as JSON. */
interface Found {
  n: number;
  u: number;
  page: string;
}

/**
 * The unread among `n` hits: from the totals when every stored message is unread (all n) or every
 * one read (none), else `counted` (a SELECT of one number), which looks each hit up.
 */
function unreadAmong(counted: string): string {
  return `CASE (SELECT unread FROM totals) WHEN 0 THEN 0 WHEN (SELECT total FROM totals) THEN n ELSE (${counted}) END`;
}

const COLUMNS = 'seq, id, received_ms, mail_from, rcpts, auth_user, addresses, return_path, subject, message_id, date_ms, size, attachments, inline, snippet, read';

interface Row {
  seq: number;
  id: string;
  received_ms: number;
  mail_from: string;
  rcpts: string;
  auth_user: string | null;
  addresses: string;
  return_path: string;
  subject: string;
  message_id: string;
  date_ms: number | null;
  size: number;
  attachments: number;
  inline: number;
  snippet: string;
  read: number;
}

function dropEverything(db: Database): void {
  const objects = db.query("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'fts_%'").all() as { type: string; name: string }[];
  for (const o of objects) db.exec(`DROP ${o.type === 'view' ? 'VIEW' : 'TABLE'} IF EXISTS "${o.name.replace(/"/g, '""')}"`);
}

/** An inbox is an envelope address, matched without regard to case (as the spool index does). */
export function inboxKey(address: string): string {
  return address.trim().replace(/^<(.*)>$/, '$1').toLowerCase();
}

function addressText(list: readonly IndexAddress[]): string {
  return list.map((a) => (a.Name === '' ? a.Address : `${a.Name} <${a.Address}>`)).join(', ').toLowerCase();
}

/** Trigram FTS can only look up strings of three characters or more; shorter ones scan. */
const TRIGRAM = 3;

/**
 * ANDed search terms as SQL: `match`, the one FTS5 MATCH expression (bound as a parameter) the
 * positive substring terms of three or more characters share, or null; and conditions over
 * `messages m` with their parameters, in order.
 */
export interface Where {
  readonly match: string | null;
  /** The same terms as instr() conditions over the backlog (Rule 4), with their parameters. */
  readonly matchInBacklog: { readonly sql: string; readonly params: readonly string[] };
  readonly conditions: string[];
  readonly params: (string | number)[];
}

/**
 * The seqs the match finds, in fts and in the backlog (Rule 4); its parameters are the match and
 * then matchInBacklog's. `rowid` is how fts's rowid is selected ('+rowid' keeps it from being
 * offered to FTS5 as a lookup).
 */
function matchedRows(built: Where, rowid: 'rowid' | '+rowid'): string {
  return `SELECT ${rowid} AS seq FROM fts WHERE fts MATCH ? UNION ALL SELECT seq FROM backlog WHERE ${built.matchInBacklog.sql}`;
}

/** The FTS match as the first condition: for a statement that reads `messages m` alone. */
function withMatch(built: Where): Where {
  if (built.match === null) return built;
  return {
    match: null,
    matchInBacklog: { sql: '', params: [] },
    conditions: [`m.seq IN (${matchedRows(built, 'rowid')})`, ...built.conditions],
    params: [built.match, ...built.matchInBacklog.params, ...built.params],
  };
}

/**
 * Turns ANDed terms into SQL (Where). Short substring terms are instr() scans of the stored FTS
 * columns; negated ones are NOT IN subqueries. Every substring term also scans the backlog with
 * instr() (Rule 4). Mailpit's comparison for each negated date and size is kept
 * (research/mailpit-api.md §1.5).
 */
export function buildWhere(terms: readonly SearchTerm[], context: SearchContext): Where {
  const conditions: string[] = [];
  const params: (string | number)[] = [];
  const matches: { column: FtsColumn; needle: string }[] = [];
  const offsetAt = context.offsetAt ?? localOffset;
  /** `needle` in any of `columns`, as SQL over either table that holds them (fts, backlog). */
  const scan = (columns: readonly FtsColumn[], needle: string) => {
    for (let i = 0; i < columns.length; i++) params.push(needle);
    return columns.map((c) => `instr(${c}, ?) > 0`).join(' OR ');
  };
  const substring = (columns: readonly FtsColumn[], value: string, negated: boolean) => {
    const needle = value.toLowerCase();
    if (!negated && columns.length === 1 && [...needle].length >= TRIGRAM) {
      matches.push({ column: columns[0], needle });
      return;
    }
    let inFts: string;
    if ([...needle].length >= TRIGRAM) {
      inFts = 'SELECT rowid FROM fts WHERE fts MATCH ?';
      params.push(columns.length === 1 ? `${columns[0]} : ${ftsPhrase(needle)}` : `{${columns.join(' ')}} : ${ftsPhrase(needle)}`);
    } else {
      inFts = `SELECT rowid FROM fts WHERE ${scan(columns, needle)}`;
    }
    conditions.push(`m.seq ${negated ? 'NOT IN' : 'IN'} (${inFts} UNION ALL SELECT seq FROM backlog WHERE ${scan(columns, needle)})`);
  };
  for (const term of terms) {
    switch (term.kind) {
      case 'text':
        substring(['text'], term.value, term.negated);
        break;
      case 'subject':
        substring(['subject'], term.value, term.negated);
        break;
      case 'address':
        if (term.field === 'addressed') substring(['from_a', 'to_a', 'cc_a', 'bcc_a', 'reply_to_a'], term.value, term.negated);
        else substring([ADDRESS_COLUMNS[term.field]], term.value, term.negated);
        break;
      case 'message-id':
        conditions.push(`instr(lower(m.message_id), ?) ${term.negated ? '=' : '>'} 0`);
        params.push(term.value.toLowerCase());
        break;
      case 'tag':
        conditions.push(`m.seq ${term.negated ? 'NOT IN' : 'IN'} (SELECT seq FROM tags WHERE tag = ? COLLATE NOCASE)`);
        params.push(term.value);
        break;
      case 'flag':
        conditions.push(flagCondition(term.flag, term.negated));
        break;
      case 'date': {
        const ms = searchDateToMs(term.date, offsetAt);
        const op = (term.op === 'after') !== term.negated ? '>=' : '<=';
        conditions.push(`m.received_ms ${op} ?`);
        params.push(ms);
        break;
      }
      case 'size': {
        const op = (term.op === 'larger') !== term.negated ? '>' : '<';
        conditions.push(`m.size ${op} ?`);
        params.push(term.bytes);
        break;
      }
      case 'envelope':
        if (term.field === 'rcpt') {
          conditions.push(`m.seq ${term.negated ? 'NOT IN' : 'IN'} (SELECT seq FROM recipients WHERE rcpt = ?)`);
          params.push(inboxKey(term.value));
        } else {
          conditions.push(`lower(m.mail_from) ${term.negated ? '!=' : '='} ?`);
          params.push(inboxKey(term.value));
        }
        break;
      default: {
        const never: never = term;
        throw new Error(`unknown search term ${JSON.stringify(never)}`);
      }
    }
  }
  return {
    match: matches.length === 0 ? null : matches.map((m) => `${m.column} : ${ftsPhrase(m.needle)}`).join(' AND '),
    matchInBacklog: { sql: matches.map((m) => `instr(${m.column}, ?) > 0`).join(' AND '), params: matches.map((m) => m.needle) },
    conditions,
    params,
  };
}

function flagCondition(flag: SearchFlag, negated: boolean): string {
  switch (flag) {
    case 'read':
      return negated ? 'm.read = 0' : 'm.read = 1';
    case 'unread':
      return negated ? 'm.read = 1' : 'm.read = 0';
    case 'tagged':
      return `m.seq ${negated ? 'NOT IN' : 'IN'} (SELECT seq FROM tags)`;
    case 'attachment':
      return negated ? 'm.attachments = 0' : 'm.attachments > 0';
    case 'inline':
      return negated ? 'm.inline = 0' : 'm.inline > 0';
  }
}

/** An FTS5 string literal: inside double quotes every character is literal, `"` doubled. */
function ftsPhrase(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

/** The server's own zone, as Mailpit reads dates without `tz`. */
function localOffset(wallClockMs: number): number {
  return -new Date(wallClockMs).getTimezoneOffset();
}

/**
 * The offset function for an IANA zone name (Mailpit's `tz` parameter), or null when the zone is
 * unknown (Mailpit then ignores it and uses its own zone).
 */
export function zoneOffset(timeZone: string): ((wallClockMs: number) => number) | null {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
  } catch {
    return null;
  }
  const offsetOf = (utcMs: number) => {
    const parts = Object.fromEntries(format.formatToParts(new Date(utcMs)).map((p) => [p.type, p.value]));
    const asUtc = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
    return Math.round((asUtc - Math.floor(utcMs / 1000) * 1000) / 60_000);
  };
  // A wall-clock time maps to UTC by its own offset; one correction step settles it except inside
  // a DST gap or overlap, where either neighbouring offset is an acceptable reading.
  return (wall) => offsetOf(wall - offsetOf(wall) * 60_000);
}

/**
 * Decodes a message into what the index stores: a simple one by parseSimpleMessage, any other
 * with postal-mime. `bytes` is the message as stored, dot-unstuffed; malformed mail still yields
 * a summary.
 */
export async function summarizeMessage(bytes: Uint8Array, envelope: IndexEnvelope): Promise<MessageSummary> {
  // The text reaches only cleanText and snippetOf, where a CR is whitespace as the LF after it is.
  let email = parseSimpleMessage(bytes, true);
  if (email === null) {
    try {
      email = await PostalMime.parse(bytes, { attachmentEncoding: 'arraybuffer' });
    } catch {
      email = { attachments: [] };
    }
  }
  return summaryOf(email, bytes.length, envelope);
}

/** The summary of a parsed message (postal-mime's or parseSimpleMessage's) of `size` octets. */
export function summaryOf(email: MessageParts, size: number, envelope: IndexEnvelope): MessageSummary {
  const from = flatten(email.from === undefined ? [] : [email.from])[0] ?? null;
  const to = flatten(email.to ?? []);
  const cc = flatten(email.cc ?? []);
  const headerBcc = flatten(email.bcc ?? []);
  const named = new Set([...to, ...cc, ...headerBcc].map((a) => a.Address.toLowerCase()));
  const bcc = [...headerBcc];
  for (const rcpt of envelope.recipients) {
    if (!named.has(rcpt.toLowerCase())) {
      named.add(rcpt.toLowerCase());
      bcc.push({ Name: '', Address: rcpt });
    }
  }
  const replyTo = flatten(email.replyTo ?? []);
  const subject = (email.subject ?? '').trim();
  const text = email.text ?? '';
  const htmlText = email.html === undefined ? '' : htmlToText(email.html);
  let attachments = 0;
  let inline = 0;
  const names: string[] = [];
  for (const a of email.attachments) {
    if (a.disposition === 'inline' || (a.related === true && a.disposition !== 'attachment')) inline++;
    else attachments++;
    if (a.filename) names.push(a.filename);
  }
  const dateMs = email.date === undefined ? null : Date.parse(email.date);
  const headerText = (list: readonly IndexAddress[]) => list.map((a) => (a.Name === '' ? a.Address : `${a.Name} <${a.Address}>`)).join(', ');
  const returnPath = (email.returnPath ?? '').replace(/^<(.*)>$/, '$1');
  const searchText = cleanText(
    [headerText(from === null ? [] : [from]), subject, headerText(to), headerText(cc), headerText(bcc), headerText(replyTo), returnPath, htmlText !== '' ? htmlText : text, ...names].join(' '),
  );
  return {
    from, to, cc, bcc, replyTo, returnPath, subject,
    messageId: (email.messageId ?? '').trim().replace(/^<(.*)>$/, '$1'),
    dateMs: dateMs === null || Number.isNaN(dateMs) ? null : dateMs,
    size,
    attachments,
    inline,
    snippet: snippetOf(text !== '' ? text : htmlText),
    searchText,
  };
}

function flatten(list: readonly Address[]): IndexAddress[] {
  const out: IndexAddress[] = [];
  for (const a of list) {
    if (a.group !== undefined) for (const m of a.group) out.push({ Name: m.name ?? '', Address: m.address ?? '' });
    else out.push({ Name: a.name ?? '', Address: a.address ?? '' });
  }
  return out;
}

/**
 * Whitespace collapsed, at most SNIPPET_CHARS characters, "..." when cut (as Mailpit shows):
 * `[...text.replace(/\s+/g, ' ').trim()]`, cut at SNIPPET_CHARS and trimmed again, built a word
 * at a time from the start of the text only: a 1 KB body costs about half of what a regex
 * replace over its first kilobyte did (2.3–3.0 µs against 4.5–6.6).
 */
export function snippetOf(text: string): string {
  let out = '';
  let points = 0;
  let i = 0;
  while (i < text.length && isWhitespace(text.charCodeAt(i))) i++;
  while (i < text.length) {
    const start = i;
    while (i < text.length && !isWhitespace(text.charCodeAt(i))) {
      // More text than fits: what is in, without the space before the cut.
      if (points === SNIPPET_CHARS) return `${`${out}${text.slice(start, i)}`.trimEnd()}...`;
      const c = text.charCodeAt(i);
      const d = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      i += c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff ? 2 : 1;
      points++;
    }
    const word = text.slice(start, i);
    while (i < text.length && isWhitespace(text.charCodeAt(i))) i++;
    if (i === text.length) return out + word;
    // Another word follows: the space between counts.
    if (points === SNIPPET_CHARS) return `${out}${word}...`;
    out += `${word} `;
    points++;
  }
  // Nothing but whitespace.
  return '';
}
