import { afterEach, expect, test } from 'bun:test';
import { nodeIo, type SpoolIo } from '../../src/spool/journal.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { memoryLog, removeDir, request, tempDir } from './fixtures/messages.ts';

let dir = '';
let spool: Spool | null = null;
afterEach(async () => {
  await spool?.close();
  spool = null;
  removeDir(dir);
});

/**
 * Counts fdatasync calls and how many run at once. syncStarted(n) resolves once more than n syncs
 * have begun; while hold() is in force a sync waits (after it began) until release(). The test
 * orders its steps by these signals, never by sleeping.
 */
function countingIo() {
  const counts = { started: 0, completed: 0, running: 0, maxRunning: 0 };
  const waiting: { after: number; resolve: () => void }[] = [];
  let gate: PromiseWithResolvers<void> | null = null;
  const io: SpoolIo = {
    write: nodeIo.write,
    datasync: async (fd) => {
      counts.started++;
      counts.running++;
      counts.maxRunning = Math.max(counts.maxRunning, counts.running);
      for (const w of waiting.splice(0)) {
        if (counts.started > w.after) w.resolve();
        else waiting.push(w);
      }
      if (gate !== null) await gate.promise;
      await nodeIo.datasync(fd);
      counts.running--;
      counts.completed++;
    },
  };
  const syncStarted = (after: number): Promise<void> => {
    if (counts.started > after) return Promise.resolve();
    const w = Promise.withResolvers<void>();
    waiting.push({ after, resolve: w.resolve });
    return w.promise;
  };
  const hold = () => {
    gate = Promise.withResolvers<void>();
  };
  const release = () => {
    gate?.resolve();
    gate = null;
  };
  return { io, counts, syncStarted, hold, release };
}

test('200 concurrent commits share a few fdatasync batches; each resolves only after a sync that began after its write', async () => {
  dir = tempDir();
  const { io, counts, syncStarted } = countingIo();
  spool = await openSpool({ dir, hostname: 'mx.test', now: Date.now, log: memoryLog(), io });
  const s = spool;
  const commits: Promise<void>[] = [];
  let startedAtPause = counts.started;
  for (let i = 0; i < 200; i++) {
    // Every 40 commits, wait until a sync covering the ones just written has begun: the next
    // ones arrive while it runs, and must wait for a later sync, not ride along.
    if (i % 40 === 39) {
      await syncStarted(startedAtPause);
      startedAtPause = counts.started;
    }
    const startedBefore = counts.started;
    commits.push(
      s.commit(request(`m${i}`)).then(() => {
        // Syncs run one at a time, so sync number startedBefore+1 began after this write.
        expect(counts.completed).toBeGreaterThanOrEqual(startedBefore + 1);
        expect(s.get(`m${i}`)).toBeDefined();
      }),
    );
    expect(s.get(`m${i}`)).toBeUndefined(); // not listed before it is durable
  }
  await Promise.all(commits);
  const stats = s.stats();
  expect(stats.commits).toBe(200);
  expect(stats.syncBatches).toBeLessThanOrEqual(20);
  expect(counts.started).toBe(stats.syncBatches);
  expect(counts.maxRunning).toBe(1);
});

test('commits that arrive during a sync are written at once and covered by the next single sync', async () => {
  dir = tempDir();
  const { io, counts, syncStarted, hold, release } = countingIo();
  spool = await openSpool({ dir, hostname: 'mx.test', now: Date.now, log: memoryLog(), io });
  hold();
  const first = spool.commit(request('first'));
  await syncStarted(0); // the first sync is now running, held until release()
  expect(counts.running).toBe(1);
  const during = Array.from({ length: 50 }, (_, i) => spool!.commit(request(`during${i}`)));
  release();
  await Promise.all([first, ...during]);
  expect(counts.started).toBe(2);
  expect(spool.stats().syncBatches).toBe(2);
});

test('fdatasync runs off the main thread: the event loop keeps turning while a batch syncs', async () => {
  dir = tempDir();
  spool = await openSpool({ dir, hostname: 'mx.test', now: Date.now, log: memoryLog() });
  const line = `${'x'.repeat(78)}\r\n`;
  const big = Buffer.from(line.repeat((16 << 20) / line.length)); // 16 MiB: its sync takes a while
  let ticks = 0;
  let done = false;
  const tick = () => {
    ticks++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  await spool.commit(request('big', { stuffed: big }));
  done = true;
  expect(ticks).toBeGreaterThan(3);
});
