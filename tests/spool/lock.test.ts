// The spool's lock file: who holds it, stale locks, and how long serve waits for a command.
import { afterAll, describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, parseLockFile, releaseLock, SpoolLockedError, waitForBriefHolder, type BriefWait, type LockHolder } from '../../src/spool/lock.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function lockIn(): { dir: string; lockPath: string } {
  const dir = fs.mkdtempSync(join(tmpdir(), 'mailbox-lock-'));
  dirs.push(dir);
  return { dir, lockPath: join(dir, 'lock') };
}

/** A clock that only moves when the code under test sleeps. */
function fakeWait(waitMs: number): BriefWait & { slept: number[]; waited: SpoolLockedError[] } {
  let at = 1_000;
  const slept: number[] = [];
  const waited: SpoolLockedError[] = [];
  return {
    waitMs,
    retryMs: 100,
    now: () => at,
    sleep: async (ms) => {
      slept.push(ms);
      at += ms;
    },
    onWait: (error) => waited.push(error),
    slept,
    waited,
  };
}

/** An open that finds the lock held by `holder` for its first `busy` tries. */
function heldFor(busy: number, holder: LockHolder | null): { open: () => Promise<string>; tries: () => number } {
  let tries = 0;
  return {
    open: async () => {
      tries++;
      if (tries <= busy) throw new SpoolLockedError('/data', 4242, '/data/lock', holder);
      return 'opened';
    },
    tries: () => tries,
  };
}

describe('the lock file', () => {
  test('names its holder beside the pid; a live holder is reported by name, a bare pid as a process', () => {
    const { dir, lockPath } = lockIn();
    acquireLock(dir, lockPath, process.pid, 'queue');
    expect(fs.readFileSync(lockPath, 'utf8')).toBe(`${process.pid} queue\n`);
    let caught: unknown;
    try {
      acquireLock(dir, lockPath, process.pid + 1, 'serve');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SpoolLockedError);
    expect((caught as SpoolLockedError).holder).toBe('queue');
    expect((caught as Error).message).toBe(`the spool ${dir} is in use by mailbox queue (process ${process.pid}) (if no server is running, remove ${lockPath})`);
    releaseLock(lockPath, process.pid);
    expect(fs.existsSync(lockPath)).toBe(false);

    expect(parseLockFile('4242\n')).toEqual({ pid: 4242, holder: null });
    expect(parseLockFile('4242 sendmail\n')).toEqual({ pid: 4242, holder: 'sendmail' });
    expect(parseLockFile('4242 nonsense')).toEqual({ pid: 4242, holder: null });
    expect(parseLockFile('x').pid).toBeNaN();
  });
});

describe('serve waiting for a command that holds the lock', () => {
  test('a command that lets go within the wait: opened, and the wait is told once', async () => {
    const wait = fakeWait(5_000);
    const held = heldFor(3, 'sendmail');
    expect(await waitForBriefHolder('/data', '/data/lock', held.open, wait)).toBe('opened');
    expect(held.tries()).toBe(4);
    expect(wait.slept).toEqual([100, 100, 100]);
    expect(wait.waited.map((e) => e.holder)).toEqual(['sendmail']);
  });

  test('a command that keeps it: one error naming the holder and the time waited, after the wait', async () => {
    const wait = fakeWait(5_000);
    const held = heldFor(Infinity, 'queue');
    const error = await waitForBriefHolder('/data', '/data/lock', held.open, wait).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpoolLockedError);
    expect((error as Error).message).toBe('the spool /data is still in use by mailbox queue (process 4242) after 5 s of waiting (if no server is running, remove /data/lock)');
    expect(wait.slept.reduce((a, b) => a + b, 0)).toBe(5_000);
    expect(wait.waited.length).toBe(1);
  });

  test('another serve, or a holder the file does not name: no wait at all', async () => {
    for (const holder of ['serve', null] as const) {
      const wait = fakeWait(5_000);
      const held = heldFor(1, holder);
      const error = await waitForBriefHolder('/data', '/data/lock', held.open, wait).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SpoolLockedError);
      expect(held.tries()).toBe(1);
      expect(wait.slept).toEqual([]);
      expect(wait.waited).toEqual([]);
    }
  });
});
