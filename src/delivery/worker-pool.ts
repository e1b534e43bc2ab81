/**
 * @module The delivery Workers (`--workers N`): Bun Worker threads, each running relay-worker.ts.
 * Rule 1: a destination's tasks go to the workers in turn, and each worker keeps its share of
 *         the destination's connection cap (10 over 4 workers: 3, 3, 2, 2), so one busy
 *         destination uses every core while the cap still holds in all.
 * Rule 2: workers are started by a path string, never new URL(…, import.meta.url), which the
 *         --bytecode build breaks (BUN.md, Workers in a --compile binary).
 * Rule 3: the tasks given in one turn go to each worker in one message (relay-protocol.ts).
 */
import { workerPath } from '../worker-path.ts';
import { decodeToMain, encodeMessage, type MainToWorker, type TransferResult, type TransferTask, type WorkerSettings } from './relay-protocol.ts';
import type { Transfers } from './relay.ts';


interface Pending {
  readonly resolve: (result: TransferResult) => void;
  readonly reject: (error: Error) => void;
}

export class WorkerPool implements Transfers {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #closed: Promise<void>[] = [];
  /** The next worker in turn, per destination. */
  readonly #turns = new Map<string, number>();
  /** Per worker, the tasks of this turn not yet posted (Rule 3). */
  readonly #outgoing = new Map<Worker, TransferTask[]>();
  #settings: WorkerSettings;

  constructor(count: number, settings: WorkerSettings, onCrash: (error: string) => void) {
    // A worker with no share of the cap would never get a connection: no more workers than the cap.
    count = Math.max(1, Math.min(count, settings.concurrency));
    this.#settings = settings;
    for (let i = 0; i < count; i++) {
      const worker = new Worker(workerPath('delivery/relay-worker.ts'));
      const closed = Promise.withResolvers<void>();
      this.#closed.push(closed.promise);
      worker.onmessage = (event: MessageEvent<string>) => {
        const message = decodeToMain(event.data);
        if (message.kind === 'closed') return closed.resolve();
        for (const outcome of message.outcomes) {
          const taskId = outcome.kind === 'result' ? outcome.result.taskId : outcome.taskId;
          const pending = this.#pending.get(taskId);
          this.#pending.delete(taskId);
          if (outcome.kind === 'result') pending?.resolve(outcome.result);
          else pending?.reject(new Error(outcome.error));
        }
      };
      worker.onerror = (event) => {
        onCrash(event.message);
        closed.resolve();
      };
      this.#workers.push(worker);
    }
    this.update(settings);
  }

  run(task: TransferTask): Promise<TransferResult> {
    const turn = this.#turns.get(task.destination) ?? 0;
    const worker = this.#workers[turn % this.#shares()];
    this.#turns.set(task.destination, turn + 1);
    if (this.#turns.size > 10_000) this.#turns.clear();
    return new Promise((resolve, reject) => {
      this.#pending.set(task.taskId, { resolve, reject });
      this.#send(worker, task);
    });
  }

  update(settings: WorkerSettings): void {
    this.#settings = settings;
    const n = this.#shares();
    this.#workers.forEach((worker, i) => {
      const share = i < n ? Math.floor(settings.concurrency / n) + (i < settings.concurrency % n ? 1 : 0) : 1;
      this.#post(worker, { kind: 'settings', settings: { ...settings, concurrency: share } });
    });
  }

  /** The workers that get tasks: as many as the cap can give a connection each. */
  #shares(): number {
    return Math.max(1, Math.min(this.#workers.length, this.#settings.concurrency));
  }

  async close(): Promise<void> {
    for (const worker of this.#workers) this.#post(worker, { kind: 'close' });
    // A worker that does not say it is done within 5 s is ended anyway.
    await Promise.race([Promise.all(this.#closed), Bun.sleep(5000)]);
    for (const worker of this.#workers) worker.terminate();
    for (const p of this.#pending.values()) p.reject(new Error('the delivery workers stopped'));
    this.#pending.clear();
  }

  #send(worker: Worker, task: TransferTask): void {
    const batch = this.#outgoing.get(worker);
    if (batch !== undefined) return void batch.push(task);
    this.#outgoing.set(worker, [task]);
    queueMicrotask(() => {
      const tasks = this.#outgoing.get(worker)!;
      this.#outgoing.delete(worker);
      this.#post(worker, { kind: 'tasks', tasks });
    });
  }

  #post(worker: Worker, message: MainToWorker): void {
    worker.postMessage(encodeMessage(message));
  }
}
