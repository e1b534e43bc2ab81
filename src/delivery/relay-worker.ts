/**
 * @module The delivery Worker's entry point (started by path: scripts/build.ts lists it among the
 * entry points, so the compiled binary carries it). It owns its outbound connections; the main
 * thread owns the spool, and sends tasks that name where a message's bytes are.
 */
import { decodeToWorker, encodeMessage, type TaskOutcome, type WorkerToMain } from './relay-protocol.ts';
import { Transferer } from './relay-transfer.ts';

declare const self: Worker;

let transferer: Transferer | null = null;
const post = (message: WorkerToMain) => self.postMessage(encodeMessage(message));

/** Outcomes of this turn, posted together once its I/O is handled (relay-protocol.ts). */
let outcomes: TaskOutcome[] = [];
function report(outcome: TaskOutcome): void {
  if (outcomes.length === 0) {
    setImmediate(() => {
      const batch = outcomes;
      outcomes = [];
      post({ kind: 'outcomes', outcomes: batch });
    });
  }
  outcomes.push(outcome);
}

self.onmessage = (event: MessageEvent<string>) => {
  const message = decodeToWorker(event.data);
  switch (message.kind) {
    case 'settings':
      if (transferer === null) transferer = new Transferer(message.settings);
      else transferer.update(message.settings);
      return;
    case 'tasks':
      for (const task of message.tasks) {
        transferer!.run(task).then(
          (result) => report({ kind: 'result', result }),
          (error: unknown) => report({ kind: 'failed', taskId: task.taskId, error: error instanceof Error ? error.message : String(error) }),
        );
      }
      return;
    case 'close':
      void (transferer?.close() ?? Promise.resolve()).then(() => post({ kind: 'closed' }));
      return;
  }
};
