/**
 * @module The delivery Workers (`--workers N`): Bun Worker threads, each running relay-worker.ts.
 * Rule 1: a destination's tasks always go to the same worker (by a hash of its key), so its
 *         sessions are reused and its connection cap is kept in one place.
 * Rule 2: workers are started by a path string, never new URL(…, import.meta.url), which the
 *         --bytecode build breaks (BUN.md, Workers in a --compile binary).
 */
import { workerPath } from '../worker-path.ts';
import type { MainToWorker, TransferResult, TransferTask, WorkerSettings, WorkerToMain } from './relay-protocol.ts';
import type { Transfers } from './relay.ts';


interface Pending {
  readonly resolve: (result: TransferResult) => void;
  readonly reject: (error: Error) => void;
}

export class WorkerPool implements Transfers {
  readonly #workers: Worker[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #closed: Promise<void>[] = [];

  constructor(count: number, settings: WorkerSettings, onCrash: (error: string) => void) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(workerPath('delivery/relay-worker.ts'));
      const closed = Promise.withResolvers<void>();
      this.#closed.push(closed.promise);
      worker.onmessage = (event: MessageEvent<WorkerToMain>) => {
        const message = event.data;
        if (message.kind === 'closed') return closed.resolve();
        const taskId = message.kind === 'result' ? message.result.taskId : message.taskId;
        const pending = this.#pending.get(taskId);
        this.#pending.delete(taskId);
        if (message.kind === 'result') pending?.resolve(message.result);
        else pending?.reject(new Error(message.error));
      };
      worker.onerror = (event) => {
        onCrash(event.message);
        closed.resolve();
      };
      this.#workers.push(worker);
      this.#post(worker, { kind: 'settings', settings });
    }
  }

  run(task: TransferTask): Promise<TransferResult> {
    const worker = this.#workers[Number(BigInt(Bun.hash(task.destination)) % BigInt(this.#workers.length))];
    return new Promise((resolve, reject) => {
      this.#pending.set(task.taskId, { resolve, reject });
      this.#post(worker, { kind: 'task', task });
    });
  }

  update(settings: WorkerSettings): void {
    for (const worker of this.#workers) this.#post(worker, { kind: 'settings', settings });
  }

  async close(): Promise<void> {
    for (const worker of this.#workers) this.#post(worker, { kind: 'close' });
    // A worker that does not say it is done within 5 s is ended anyway.
    await Promise.race([Promise.all(this.#closed), Bun.sleep(5000)]);
    for (const worker of this.#workers) worker.terminate();
    for (const p of this.#pending.values()) p.reject(new Error('the delivery workers stopped'));
    this.#pending.clear();
  }

  #post(worker: Worker, message: MainToWorker): void {
    worker.postMessage(message);
  }
}
