/**
 * @module The mail index's Worker: runs an IndexWriter on the requests of the main thread's
 * MailIndex, one at a time in arrival order, and answers each by its number. Started by path
 * (index-client.ts); scripts/build.ts lists it as an entry point so a compiled binary holds it.
 */
import { setPriority } from 'node:os';
import { IndexWriter, type WriterRequest } from './index-writer.ts';

declare const self: Worker;

/**
 * nice 19: about 1.5% of the CPU a nice-0 thread gets when both want it, so under a burst that
 * fills the CPUs the index lags and catches up after. smtp-source 1k-s50 on 2 cores took 28–30%
 * off the accept rate at nice 10 and 17–24% at nice 19 (index off: 2,249–2,267 msg/s).
 */
const INDEX_WORKER_NICE = 19;

const writer = new IndexWriter();
let queue: Promise<void> = Promise.resolve();

self.onmessage = (event: MessageEvent<{ n: number; request?: WriterRequest; json?: string }>) => {
  const { n } = event.data;
  // Requests without bytes come as JSON text (index-client.ts Rule 2).
  const request = event.data.request ?? (JSON.parse(event.data.json ?? 'null') as WriterRequest);
  if (request.op === 'open' && request.background === true) runInBackground();
  queue = queue.then(async () => {
    try {
      self.postMessage({ n, reply: await writer.handle(request) });
    } catch (error) {
      self.postMessage({ n, error: (error as Error).message ?? String(error) });
    }
  });
};

/**
 * Below the accept path: on Linux a thread has its own nice value, so when the CPUs are busy the
 * listeners' thread runs first and the index catches up once the burst is over.
 */
function runInBackground(): void {
  try {
    setPriority(INDEX_WORKER_NICE);
  } catch {
    // not allowed here (a container without the right): the worker keeps the process's priority
  }
}
