/**
 * @module The delivery Worker's entry point (started by path: scripts/build.ts lists it among the
 * entry points, so the compiled binary carries it). It owns its outbound connections; the main
 * thread owns the spool, and sends tasks that name where a message's bytes are.
 */
import type { MainToWorker, WorkerToMain } from './relay-protocol.ts';
import { Transferer } from './relay-transfer.ts';

declare const self: Worker;

let transferer: Transferer | null = null;
const post = (message: WorkerToMain) => self.postMessage(message);

self.onmessage = (event: MessageEvent<MainToWorker>) => {
  const message = event.data;
  switch (message.kind) {
    case 'settings':
      if (transferer === null) transferer = new Transferer(message.settings);
      else transferer.update(message.settings);
      return;
    case 'task':
      transferer!.run(message.task).then(
        (result) => post({ kind: 'result', result }),
        (error: unknown) => post({ kind: 'failed', taskId: message.task.taskId, error: error instanceof Error ? error.message : String(error) }),
      );
      return;
    case 'close':
      void (transferer?.close() ?? Promise.resolve()).then(() => post({ kind: 'closed' }));
      return;
  }
};
