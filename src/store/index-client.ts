/**
 * @module How the main thread reaches the index writer: in a Worker (serve), or in its own
 * thread (tests, `mailbox reindex`). Both answer requests in the order sent.
 * Rule 1: the Worker is started by a path string (src/worker-path.ts); scripts/build.ts lists
 *         index-worker.ts among the entry points, so a compiled binary holds it.
 * Rule 2: message bytes that go to the Worker go as transferred buffers, not copies (a live
 *         ingest sends where they are instead: index-writer.ts Rule 6). A request without bytes
 *         goes as JSON text: a structured clone of a live ingest's small objects (ids, envelopes,
 *         locations) cost the accept path's thread about twice as much.
 */
import { workerPath } from '../worker-path.ts';
import { IndexWriter, type WriterReply, type WriterRequest } from './index-writer.ts';

export interface WriterClient {
  request(request: WriterRequest, transfer?: readonly ArrayBuffer[]): Promise<WriterReply>;
  /** Requests sent and not answered yet. */
  readonly pending: number;
  close(): Promise<void>;
}

/** The writer in this thread; answers asynchronously, in order, like the Worker. */
export function threadWriter(): WriterClient {
  const writer = new IndexWriter();
  let queue: Promise<unknown> = Promise.resolve();
  let pending = 0;
  return {
    request(request) {
      pending++;
      const done = queue.then(() => writer.handle(request)).finally(() => pending--);
      queue = done.catch(() => undefined);
      return done;
    },
    get pending() {
      return pending;
    },
    async close() {
      await queue;
      await writer.handle({ op: 'close' });
    },
  };
}

/** The writer in a Worker; `onFailure` hears of a Worker that died (every request then fails). */
export function workerWriter(onFailure: (error: Error) => void): WriterClient {
  // smol: JavaScriptCore's small heap, collected sooner. A rebuild decodes a million messages
  // here; with the default heap the garbage of that decoding sits in serve's RSS.
  const worker = new Worker(workerPath('store/index-worker.ts'), { smol: true });
  const waiting = new Map<number, { resolve: (reply: WriterReply) => void; reject: (error: Error) => void }>();
  let next = 0;
  let failed: Error | null = null;
  const fail = (error: Error) => {
    if (failed !== null) return;
    failed = error;
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
    onFailure(error);
  };
  worker.onmessage = (event: MessageEvent<{ n: number; reply?: WriterReply; error?: string }>) => {
    const { n, reply, error } = event.data;
    const w = waiting.get(n);
    if (w === undefined) return;
    waiting.delete(n);
    if (error !== undefined) w.reject(new Error(error));
    else w.resolve(reply ?? null);
  };
  worker.onerror = (event) => fail(new Error(`the index worker failed: ${event.message}`));
  worker.addEventListener('close', () => fail(new Error('the index worker stopped')));
  return {
    request(request, transfer = []) {
      if (failed !== null) return Promise.reject(failed);
      const n = ++next;
      return new Promise<WriterReply>((resolve, reject) => {
        waiting.set(n, { resolve, reject });
        if (transfer.length === 0) worker.postMessage({ n, json: JSON.stringify(request) });
        else worker.postMessage({ n, request }, [...transfer]);
      });
    },
    get pending() {
      return waiting.size;
    },
    async close() {
      if (failed === null) {
        const n = ++next;
        await new Promise<void>((resolve) => {
          waiting.set(n, { resolve: () => resolve(), reject: () => resolve() });
          worker.postMessage({ n, request: { op: 'close' } });
        });
      }
      failed ??= new Error('the index is closed');
      worker.terminate();
    },
  };
}
