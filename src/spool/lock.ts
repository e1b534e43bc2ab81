/**
 * @module The lock that keeps two servers from opening one spool.
 * Rule 1: the lock file holds the owner's pid and what it is ("4242 serve"); a lock whose owner
 *         is gone (kill -9, power cut) is stale and taken over, so a crash never needs a person
 *         to clean up.
 * Rule 2: serve holds the lock for as long as it runs; `mailbox queue`, the sendmail link's drop
 *         and `mailbox reindex` hold it for one command. A serve that starts meanwhile waits a
 *         few seconds for such a holder (waitForBriefHolder), never for another serve.
 */
import * as fs from 'node:fs';

/** What holds a spool's lock: serve, or one of the commands that open the spool while it is stopped. */
export type LockHolder = 'serve' | 'queue' | 'sendmail' | 'reindex';

const HOLDERS: Readonly<Record<LockHolder, string>> = Object.freeze({
  serve: 'mailbox serve',
  queue: 'mailbox queue',
  sendmail: 'the sendmail link',
  reindex: 'mailbox reindex',
});

/** Another live process has the spool open. */
export class SpoolLockedError extends Error {
  readonly pid: number;
  /** null for a lock file that does not say (one written before holders were named). */
  readonly holder: LockHolder | null;
  constructor(dir: string, pid: number, lockPath: string, holder: LockHolder | null = null, waitedMs = 0) {
    const owner = Number.isInteger(pid) ? `process ${pid}` : 'another process';
    const who = holder === null ? owner : `${HOLDERS[holder]} (${owner})`;
    const state = waitedMs > 0 ? `still in use by ${who} after ${Math.round(waitedMs / 1000)} s of waiting` : `in use by ${who}`;
    super(`the spool ${dir} is ${state} (if no server is running, remove ${lockPath})`);
    this.name = 'SpoolLockedError';
    this.pid = pid;
    this.holder = holder;
  }
}

/** True for a holder that lets go within moments: a command, not a server. */
export function isBriefHolder(holder: LockHolder | null): boolean {
  return holder !== null && holder !== 'serve';
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** "4242 serve" → pid and holder; a bare "4242" (an older lock file) has no holder. */
export function parseLockFile(text: string): { pid: number; holder: LockHolder | null } {
  const [pidText = '', holderText = ''] = text.trim().split(/\s+/, 2);
  const pid = /^\d+$/.test(pidText) ? Number(pidText) : Number.NaN;
  return { pid, holder: Object.hasOwn(HOLDERS, holderText) ? (holderText as LockHolder) : null };
}

/** Takes the lock for `pid`, or throws SpoolLockedError. */
export function acquireLock(dir: string, lockPath: string, pid: number, holder: LockHolder = 'serve'): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      try {
        fs.writeSync(fd, `${pid} ${holder}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: { pid: number; holder: LockHolder | null };
    try {
      owner = parseLockFile(fs.readFileSync(lockPath, 'utf8'));
    } catch {
      continue; // removed meanwhile: try again
    }
    if (owner.pid > 0 && isAlive(owner.pid)) throw new SpoolLockedError(dir, owner.pid, lockPath, owner.holder);
    fs.rmSync(lockPath, { force: true });
  }
  throw new SpoolLockedError(dir, Number.NaN, lockPath);
}

/** Gives the lock up, if it is still ours. */
export function releaseLock(lockPath: string, pid: number): void {
  try {
    if (parseLockFile(fs.readFileSync(lockPath, 'utf8')).pid === pid) fs.rmSync(lockPath, { force: true });
  } catch {
    // Already gone.
  }
}

export interface BriefWait {
  /** How long to wait for a brief holder in all. */
  readonly waitMs: number;
  /** Between two tries. */
  readonly retryMs: number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** Told once, when the first try finds a brief holder. */
  readonly onWait: (error: SpoolLockedError) => void;
}

/**
 * Runs `open` until it gets past the lock. While a brief holder (a command) has it, tries again
 * for up to `waitMs`, then throws a SpoolLockedError that says how long it waited; any other
 * holder (another serve, an unknown one) fails the first try at once.
 */
export async function waitForBriefHolder<T>(dir: string, lockPath: string, open: () => Promise<T>, wait: BriefWait): Promise<T> {
  const started = wait.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (error) {
      if (!(error instanceof SpoolLockedError) || !isBriefHolder(error.holder)) throw error;
      const waited = wait.now() - started;
      if (waited >= wait.waitMs) throw new SpoolLockedError(dir, error.pid, lockPath, error.holder, waited);
      if (attempt === 0) wait.onWait(error);
      await wait.sleep(Math.min(wait.retryMs, wait.waitMs - waited));
    }
  }
}
