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

/** Counts fdatasync calls and how many run at once; each takes at least 2 ms so batches form. */
function countingIo() {
  const counts = { started: 0, completed: 0, running: 0, maxRunning: 0 };
  const io: SpoolIo = {
    write: nodeIo.write,
    datasync: async (fd) => {
      counts.started++;
      counts.running++;
      counts.maxRunning = Math.max(counts.maxRunning, counts.running);
      await Bun.sleep(2);
      await nodeIo.datasync(fd);
      counts.running--;
      counts.completed++;
    },
  };
  return { io, counts };
}

test('200 concurrent commits share a few fdatasync batches; each resolves only after a sync that began after its write', async () => {
  dir = tempDir();
  const { io, counts } = countingIo();
  spool = await openSpool({ dir, hostname: 'mx.test', now: Date.now, log: memoryLog(), io });
  const s = spool;
  const commits: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    // Some arrive while a sync is running: they must wait for the next one, not ride along.
    if (i % 40 === 39) await Bun.sleep(1);
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
  const { io, counts } = countingIo();
  spool = await openSpool({ dir, hostname: 'mx.test', now: Date.now, log: memoryLog(), io });
  const first = spool.commit(request('first'));
  await Bun.sleep(1); // the first sync is now running
  expect(counts.running).toBe(1);
  const during = Array.from({ length: 50 }, (_, i) => spool!.commit(request(`during${i}`)));
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
