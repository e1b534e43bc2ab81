import { afterAll, expect, test } from 'bun:test';
import * as path from 'node:path';
import { openSpool } from '../../src/spool/spool.ts';
import { chooser, seededRandom, seedFromEnv } from '../helpers/seeded-random.ts';
import { crashMessageFor, memoryLog, removeDir, tempDir } from './fixtures/messages.ts';

const CHILD = path.join(import.meta.dir, 'fixtures', 'commit-loop.ts');
const dir = tempDir('mailbox-crash-');
afterAll(() => removeDir(dir));

/** Runs the child until `killAfterMs` after it is ready, SIGKILLs it, and returns what it printed. */
async function runAndKill(prefix: string, killAfterMs: number): Promise<string[]> {
  const child = Bun.spawn([process.execPath, CHILD, dir, prefix], { stdout: 'pipe', stderr: 'inherit' });
  const decoder = new TextDecoder();
  let text = '';
  let killTimer: ReturnType<typeof setTimeout> | null = null;
  for await (const chunk of child.stdout) {
    text += decoder.decode(chunk, { stream: true });
    if (killTimer === null && text.includes('ready\n')) killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  }
  await child.exited;
  expect(child.signalCode).toBe('SIGKILL');
  // Only whole lines count: a line cut by the kill was never fully printed.
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean);
}

test('kill -9 at random moments loses no acknowledged message and leaves nothing partial', async () => {
  // The kill delays come from this seed (printed; CRASH_SEED replays them).
  const r = chooser(seededRandom(seedFromEnv('CRASH_SEED', 'spool crash test')));
  const acked = new Set<string>();
  const deleted = new Set<string>();
  const crashRound = async (round: number, delay: number) => {
    const lines = await runAndKill(`r${round}`, delay);
    for (const line of lines) {
      if (line.startsWith('A ')) acked.add(line.slice(2));
      if (line.startsWith('D ')) deleted.add(line.slice(2));
    }

    const spool = await openSpool({ dir, hostname: 'crash.test', now: Date.now, log: memoryLog() });
    expect(spool.recovery.damaged).toEqual([]);
    const listed = spool.list();
    const ids = listed.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(spool.stats().messages).toBe(ids.length);
    for (const id of acked) {
      if (deleted.has(id)) expect(spool.get(id)).toBeUndefined();
      // Three in four are deleted after their "A" line: killed before the "D" line, they may be gone.
      else if (Number(id.split('-')[1]) % 4 === 0) expect(spool.get(id)?.id).toBe(id);
    }
    // Every message present, acknowledged or not, is whole.
    for (const id of ids) expect(Buffer.from(await spool.readMessage(id)).equals(Buffer.from(crashMessageFor(id)))).toBe(true);
    await spool.close();
  };
  const delays = [3, 60, 150, 250, 400].map((d) => d + r.int(0, 39));
  for (let i = delays.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [delays[i], delays[j]] = [delays[j], delays[i]];
  }
  for (const [round, delay] of delays.entries()) await crashRound(round, delay);
  // How many messages those rounds kept depends on the machine (a slow disk or a loaded CPU commits
  // fewer): more rounds, each killed at a random moment too, until enough were kept to count.
  for (let round = delays.length; acked.size - deleted.size <= 100 && round < delays.length + 30; round++) {
    await crashRound(round, r.int(400, 599));
  }
  expect(acked.size - deleted.size).toBeGreaterThan(100);
}, 120_000);
