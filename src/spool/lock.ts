/**
 * @module The lock that keeps two servers from opening one spool.
 * Rule: the lock file holds the owner's pid; a lock whose owner is gone (kill -9, power cut) is
 * stale and taken over, so a crash never needs a person to clean up.
 */
import * as fs from 'node:fs';

/** Another live process has the spool open. */
export class SpoolLockedError extends Error {
  readonly pid: number;
  constructor(dir: string, pid: number, lockPath: string) {
    const who = Number.isInteger(pid) ? `process ${pid}` : 'another process';
    super(`the spool ${dir} is in use by ${who} (if no server is running, remove ${lockPath})`);
    this.name = 'SpoolLockedError';
    this.pid = pid;
  }
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

/** Takes the lock for `pid`, or throws SpoolLockedError. */
export function acquireLock(dir: string, lockPath: string, pid: number): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      try {
        fs.writeSync(fd, `${pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number.parseInt(fs.readFileSync(lockPath, 'utf8').trim(), 10);
    } catch {
      continue; // removed meanwhile: try again
    }
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) throw new SpoolLockedError(dir, owner, lockPath);
    fs.rmSync(lockPath, { force: true });
  }
  throw new SpoolLockedError(dir, Number.NaN, lockPath);
}

/** Gives the lock up, if it is still ours. */
export function releaseLock(lockPath: string, pid: number): void {
  try {
    if (Number.parseInt(fs.readFileSync(lockPath, 'utf8').trim(), 10) === pid) fs.rmSync(lockPath, { force: true });
  } catch {
    // Already gone.
  }
}
