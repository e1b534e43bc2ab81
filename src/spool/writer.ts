/**
 * @module Group commit: many sessions' records, one fdatasync, then every 250 of the batch.
 * Rule 1: callers write records at once (page cache); one batch syncs at a time, and records
 *         written meanwhile join the next batch, which one sync then covers whole.
 * Rule 2: a batch resolves only after every file it touched is synced and passed the spool's
 *         check; a failed sync or check rejects it and the batch queued behind it, after cutting
 *         the files back.
 */
import type { AppendFile } from './journal.ts';

interface Batch<T> {
  readonly items: T[];
  readonly files: Set<AppendFile>;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export interface GroupCommitHooks<T> {
  /** Called with a batch's items once they are durable, before its promise resolves. */
  onDurable(items: readonly T[]): void;
  /**
   * Runs once per batch after its syncs, before anyone is answered; a throw fails the batch as a
   * failed sync would (the spool checks here that its files are still linked).
   */
  check(files: ReadonlySet<AppendFile>): void;
  /** Maps a failed sync (or check) to the error every waiter of the failed batches gets. */
  onFailure(err: unknown, files: readonly AppendFile[]): unknown;
  /** A bookkeeping bug in onDurable: the bytes are durable, so the batch still resolves. */
  onBug(err: unknown): void;
}

export class GroupCommit<T> {
  readonly #hooks: GroupCommitHooks<T>;
  #queued: Batch<T> | null = null;
  #inFlight: Batch<T> | null = null;
  #batches = 0;
  #items = 0;

  constructor(hooks: GroupCommitHooks<T>) {
    this.#hooks = hooks;
  }

  /** Batches whose sync completed: far fewer than items under concurrency. */
  get batches(): number {
    return this.#batches;
  }

  /** Items made durable. */
  get items(): number {
    return this.#items;
  }

  /** True while `file` has bytes waiting in a batch (queued or syncing). */
  involves(file: AppendFile): boolean {
    return (this.#queued?.files.has(file) ?? false) || (this.#inFlight?.files.has(file) ?? false);
  }

  /**
   * Registers an item whose bytes the caller has just written to `file`; resolves once durable.
   * Every item of one batch gets the same promise.
   */
  enqueue(file: AppendFile, item: T): Promise<void> {
    let batch = this.#queued;
    if (batch === null) {
      batch = newBatch<T>();
      this.#queued = batch;
      // A microtask lets the records written in this turn of the event loop join the batch.
      if (this.#inFlight === null) queueMicrotask(() => this.#run());
    }
    batch.items.push(item);
    batch.files.add(file);
    return batch.promise;
  }

  /**
   * Resolves when nothing enqueued before the call is waiting any more (failures included).
   * Batches complete in order, so the newest one standing for the call is enough; later
   * traffic does not hold it up.
   */
  async flush(): Promise<void> {
    await (this.#queued ?? this.#inFlight)?.promise.catch(() => undefined);
  }

  async #run(): Promise<void> {
    if (this.#inFlight !== null) return;
    while (this.#queued !== null) {
      const batch = this.#queued;
      this.#queued = null;
      this.#inFlight = batch;
      try {
        const syncs: Promise<void>[] = [];
        for (const file of batch.files) syncs.push(file.sync());
        await Promise.all(syncs);
        this.#hooks.check(batch.files);
      } catch (err) {
        this.#fail(batch, err);
        continue;
      } finally {
        this.#inFlight = null;
      }
      this.#batches++;
      this.#items += batch.items.length;
      try {
        this.#hooks.onDurable(batch.items);
      } catch (err) {
        // The bytes are durable; a bug in bookkeeping must not turn a 250 into a 4xx.
        this.#hooks.onBug(err);
      }
      batch.resolve();
    }
  }

  #fail(batch: Batch<T>, err: unknown): void {
    const failed = [batch];
    if (this.#queued !== null) {
      failed.push(this.#queued);
      this.#queued = null;
    }
    const files = new Set<AppendFile>();
    for (const b of failed) for (const f of b.files) files.add(f);
    for (const f of files) f.rollBack();
    const reason = this.#hooks.onFailure(err, [...files]);
    for (const b of failed) b.reject(reason);
  }
}

function newBatch<T>(): Batch<T> {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Each waiter handles the rejection; this keeps an unawaited batch from being reported twice.
  promise.catch(() => undefined);
  return { items: [], files: new Set(), promise, resolve, reject };
}
