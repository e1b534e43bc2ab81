/**
 * @module Waiting for mail on a cursor (research/mailpit-api.md §4.4): the first message after a
 * position in the spool's commit order that matches a filter, with no polling, no page windows
 * and no race between a client's look and a commit.
 * Rule 1: subscribe before looking. A waiter registers for changes, then queries the index, so a
 *         message indexed between the two steps is seen by one or the other, never by neither.
 * Rule 2: a cursor is a seq: everything at or below it has been looked at. Each look starts where
 *         the last one ended, so a wait costs one query per batch of new mail.
 * Rule 3: the number of open waits and streams is capped; beyond it the answer is 503 at once.
 */
import type { SearchQuery, SearchTerm } from '../core/mailpit-search.ts';
import type { IndexedMessage, SearchContext } from '../store/index-db.ts';
import type { MailSource } from './mail-source.ts';

/** What a waiter looks for: a Mailpit query and, if given, any of these exact envelope recipients. */
export interface WaitFilter {
  readonly query: SearchQuery;
  /** Exact envelope recipients; a message to any of them matches. Empty: no recipient condition. */
  readonly recipients: readonly string[];
  readonly context?: SearchContext;
}

export type WaitOutcome =
  | { readonly kind: 'found'; readonly messages: readonly IndexedMessage[]; readonly cursor: number }
  | { readonly kind: 'timeout'; readonly cursor: number }
  | { readonly kind: 'aborted' };

/** The messages after `after` that match `filter`, oldest first, at most `limit`. */
export function matchesAfter(mail: MailSource, filter: WaitFilter, after: number, limit: number): IndexedMessage[] {
  if (filter.recipients.length === 0) return mail.db.matchAfter(filter.query, after, limit, filter.context);
  // One index-backed look per recipient, merged in commit order (recipients OR, the query AND).
  const bySeq = new Map<number, IndexedMessage>();
  for (const rcpt of filter.recipients) {
    const term: SearchTerm = { kind: 'envelope', field: 'rcpt', value: rcpt, negated: false };
    for (const m of mail.db.matchAfter({ terms: [...filter.query.terms, term], dropped: [] }, after, limit, filter.context)) bySeq.set(m.seq, m);
  }
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq).slice(0, limit);
}

/** Open waits and streams, capped. */
export class WaitRegistry {
  readonly #mail: MailSource;
  readonly #max: number;
  #open = 0;
  /** Aborted when the server stops: every wait ends with its cursor, every stream closes. */
  readonly #stopping = new AbortController();

  constructor(mail: MailSource, max: number) {
    this.#mail = mail;
    this.#max = max;
  }

  get open(): number {
    return this.#open;
  }

  /** Takes a slot for a wait or a stream; false when every slot is taken. Give it back with release(). */
  acquire(): boolean {
    if (this.#open >= this.#max) return false;
    this.#open++;
    return true;
  }

  release(): void {
    this.#open--;
  }

  /** Fires when the server stops. */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  /** Ends every wait (as a timeout, with its cursor) and stream. */
  stop(): void {
    this.#stopping.abort();
  }

  /**
   * Resolves with the first `count` matches after `after` as soon as there are any (at once when
   * they exist), or with a timeout carrying the cursor to resume from. The caller holds a slot.
   */
  wait(filter: WaitFilter, after: number, count: number, timeoutMs: number, signal: AbortSignal): Promise<WaitOutcome> {
    const mail = this.#mail;
    return new Promise<WaitOutcome>((resolve) => {
      let checked = after;
      let done = false;
      const unwatch = mail.watch();
      const finish = (outcome: WaitOutcome) => {
        if (done) return;
        done = true;
        unwatch();
        stop();
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#stopping.signal.removeEventListener('abort', onStop);
        resolve(outcome);
      };
      const look = () => {
        // Everything up to this seq is indexed and visible now; the look below covers it.
        const upTo = mail.lastSeq;
        const found = matchesAfter(mail, filter, checked, count);
        if (found.length > 0) finish({ kind: 'found', messages: found, cursor: found[found.length - 1].seq });
        else checked = Math.max(checked, upTo);
      };
      const onAbort = () => finish({ kind: 'aborted' });
      const onStop = () => finish({ kind: 'timeout', cursor: checked });
      // Rule 1: subscribed first, then the first look.
      const stop = mail.subscribe((change) => {
        if (change.kind === 'new' && change.lastSeq > checked) look();
        else if (change.kind === 'reset') checked = 0;
      });
      const timer = setTimeout(() => finish({ kind: 'timeout', cursor: checked }), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#stopping.signal.addEventListener('abort', onStop, { once: true });
      if (signal.aborted) onAbort();
      else if (this.#stopping.signal.aborted) onStop();
      else look();
    });
  }
}
