/**
 * @module What the HTTP API needs of the mail store: the index to query, the changes to follow,
 * the journalled mutations and the message bytes. serve's MailIndex (src/store/mail-index.ts) is
 * one; the tests fill an IndexDb of their own.
 * Rule: every mutation resolves once it is durable (journal first, then the index), so a client
 *       that got its 200 sees the change on its next request, and after a restart.
 */
import type { SearchQuery } from '../core/mailpit-search.ts';
import type { IndexDb, SearchContext } from '../store/index-db.ts';

/** A change to the indexed mail; 'new' names the seqs after `afterSeq` up to `lastSeq`. */
export type MailChange =
  | { readonly kind: 'new'; readonly afterSeq: number; readonly lastSeq: number; readonly count: number }
  | { readonly kind: 'updated'; readonly ids: readonly string[] }
  | { readonly kind: 'deleted'; readonly ids: readonly string[] }
  | { readonly kind: 'reset' };

export interface MailSource {
  /** The read connection for queries. */
  readonly db: IndexDb;
  /** The seq of the newest indexed message: the wait cursor (0 when none). */
  readonly lastSeq: number;
  /** Hears of every change; returns the function that stops it. */
  subscribe(listener: (change: MailChange) => void): () => void;
  /**
   * Before a read: resolves once every message committed before the call is in the index (serve
   * may index a burst after it while nobody reads: src/store/mail-index.ts Rule 6).
   */
  current(): Promise<void>;
  /** A reader that follows new mail (a wait, a stream, a websocket) is attached until the returned function is called. */
  watch(): () => void;
  /** null means every message. Resolves with how many changed. */
  setRead(ids: readonly string[] | null, read: boolean): Promise<number>;
  setTags(ids: readonly string[], tags: readonly string[]): Promise<number>;
  renameTag(from: string, to: string): Promise<number>;
  deleteTag(tag: string): Promise<number>;
  /** null means every message. */
  delete(ids: readonly string[] | null): Promise<number>;
  deleteSearch(query: SearchQuery, context?: SearchContext): Promise<number>;
  /** The message as the client sent it (unstuffed), our Received header first; undefined when not indexed. */
  readMessage(id: string): Promise<Uint8Array | undefined>;
}
