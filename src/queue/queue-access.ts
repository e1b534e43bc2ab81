/**
 * @module How `mailbox queue` and the sendmail link reach the spool: through a running serve's
 * control socket, or, when no serve answers there, on the spool itself under its lock.
 * Rule: never both at once. The lock decides: while serve runs it holds the lock and answers on
 *       its socket; while this process holds the lock, a serve that starts waits for it to let go
 *       (src/spool/lock.ts), so the lock is held only for the one request.
 */
import type { ServeConfig } from '../config.ts';
import { EXIT, SetupError } from '../exit-status.ts';
import { SpoolLockedError } from '../spool/lock.ts';
import { openSpool, type LockHolder } from '../spool/spool.ts';
import { controlSocketPath, requestControl, type ControlResponse } from './control-socket.ts';
import { handleQueueRequest, queueAdminContext } from './queue-admin.ts';

export interface QueueAccessDeps {
  /** Which command asks: the spool's lock file names it, for a serve that starts meanwhile. */
  readonly holder: Extract<LockHolder, 'queue' | 'sendmail'>;
  readonly env: Record<string, string | undefined>;
  readonly now: () => number;
  /**
   * How long to keep trying while the spool is locked and no serve answers yet (a serve that is
   * starting, or another sendmail): 0 fails at once.
   */
  readonly waitMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const RETRY_MS = 200;

/** Sends `request` to the running serve, or answers it on the spool; says which in `via`. */
export async function queueRequest(config: ServeConfig, request: Record<string, unknown>, deps: QueueAccessDeps): Promise<{ response: ControlResponse; via: 'serve' | 'spool' }> {
  const socket = controlSocketPath(config.dataDir, deps.env);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = deps.now() + (deps.waitMs ?? 0);
  for (;;) {
    const answered = await requestControl(socket, request);
    if (answered !== null) return { response: answered, via: 'serve' };
    try {
      return { response: await onSpool(config, request, deps), via: 'spool' };
    } catch (error) {
      if (!(error instanceof SpoolLockedError)) throw error;
      if (deps.now() >= deadline) {
        throw new SetupError(`${error.message}, and no serve answers on ${socket}; try again once it has started or stopped`, EXIT.tempFail);
      }
    }
    await sleep(RETRY_MS);
  }
}

async function onSpool(config: ServeConfig, request: Record<string, unknown>, deps: QueueAccessDeps): Promise<ControlResponse> {
  const warnings: string[] = [];
  const log = { info() {}, warn: (msg: string) => void warnings.push(msg), error: (msg: string) => void warnings.push(msg) };
  const spool = await openSpool({ dir: config.dataDir, hostname: config.hostname, now: deps.now, log, holder: deps.holder });
  try {
    return await handleQueueRequest(queueAdminContext(config, spool, deps.now), request);
  } finally {
    await spool.close();
  }
}
