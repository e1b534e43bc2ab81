/**
 * @module The mail index's Worker: runs an IndexWriter on the requests of the main thread's
 * MailIndex, one at a time in arrival order, and answers each by its number. Started by path
 * (index-client.ts); scripts/build.ts lists it as an entry point so a compiled binary holds it.
 */
import { IndexWriter, type WriterRequest } from './index-writer.ts';

declare const self: Worker;

const writer = new IndexWriter();
let queue: Promise<void> = Promise.resolve();

self.onmessage = (event: MessageEvent<{ n: number; request: WriterRequest }>) => {
  const { n, request } = event.data;
  queue = queue.then(async () => {
    try {
      self.postMessage({ n, reply: await writer.handle(request) });
    } catch (error) {
      self.postMessage({ n, error: (error as Error).message ?? String(error) });
    }
  });
};
