// A MailSource for the HTTP tests: an IndexDb of its own in a temporary file, filled by add(),
// with the change events serve's MailIndex sends. Mutations go straight to the index (serve
// journals them first; that path is tested in tests/store and end to end).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SearchQuery } from '../../src/core/mailpit-search.ts';
import type { MailChange, MailSource } from '../../src/http/mail-source.ts';
import { IndexDb, summarizeMessage, type SearchContext } from '../../src/store/index-db.ts';

export interface AddOptions {
  readonly from?: string;
  readonly to?: readonly string[];
  readonly authUser?: string | null;
  readonly receivedMs?: number;
  readonly tags?: readonly string[];
}

export class TestMail implements MailSource {
  readonly db: IndexDb;
  readonly #dir: string;
  readonly #bytes = new Map<string, Uint8Array>();
  readonly #listeners = new Set<(change: MailChange) => void>();
  #seq = 0;
  #idCounter = 0;

  constructor() {
    this.#dir = mkdtempSync(join(tmpdir(), 'mailbox-http-'));
    this.db = IndexDb.open(join(this.#dir, 'index.sqlite')).index;
  }

  get lastSeq(): number {
    return this.#seq;
  }

  /** Stores a message (CRLF is made of LF) and indexes it; resolves with its id. */
  async add(raw: string, options: AddOptions = {}): Promise<string> {
    const bytes = new TextEncoder().encode(raw.replace(/\r?\n/g, '\r\n'));
    const id = `m${String(++this.#idCounter).padStart(6, '0')}x`;
    const envelope = { mailFrom: options.from ?? 'sender@x.test', recipients: options.to ?? ['user@x.test'], authUser: options.authUser ?? null };
    const summary = await summarizeMessage(bytes, envelope);
    const afterSeq = this.#seq;
    const seq = ++this.#seq;
    this.#bytes.set(id, bytes);
    this.db.ingest([{ id, seq, receivedMs: options.receivedMs ?? Date.now(), envelope, summary, tags: options.tags }], `test:${seq}`);
    this.#emit({ kind: 'new', afterSeq, lastSeq: seq, count: 1 });
    return id;
  }

  subscribe(listener: (change: MailChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  /** add() indexes at once: nothing is ever waiting. Counted in `reads`. */
  async current(): Promise<void> {
    this.reads++;
  }

  /** Calls of current() so far. */
  reads = 0;

  watch(): () => void {
    this.watchers++;
    let attached = true;
    return () => {
      if (attached) this.watchers--;
      attached = false;
    };
  }

  /** Readers attached by watch() now. */
  watchers = 0;

  async setRead(ids: readonly string[] | null, read: boolean): Promise<number> {
    const n = this.db.setRead(ids, read);
    this.#emit({ kind: 'updated', ids: ids ?? [] });
    return n;
  }

  async setTags(ids: readonly string[], tags: readonly string[]): Promise<number> {
    this.db.setTags(ids, tags);
    this.#emit({ kind: 'updated', ids });
    return ids.length;
  }

  async renameTag(from: string, to: string): Promise<number> {
    return this.db.renameTag(from, to);
  }

  async deleteTag(tag: string): Promise<number> {
    return this.db.deleteTag(tag);
  }

  async delete(ids: readonly string[] | null): Promise<number> {
    const gone = ids ?? this.db.matchAfter({ terms: [], dropped: [] }, 0, Number.MAX_SAFE_INTEGER).map((m) => m.id);
    const n = this.db.delete(ids);
    for (const id of gone) this.#bytes.delete(id);
    this.#emit({ kind: 'deleted', ids: gone });
    return n;
  }

  async deleteSearch(query: SearchQuery, context: SearchContext = {}): Promise<number> {
    return this.delete(this.db.matchAfter(query, 0, Number.MAX_SAFE_INTEGER, context).map((m) => m.id));
  }

  async readMessage(id: string): Promise<Uint8Array | undefined> {
    return this.#bytes.get(id);
  }

  close(): void {
    this.db.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #emit(change: MailChange): void {
    for (const l of [...this.#listeners]) l(change);
  }
}
