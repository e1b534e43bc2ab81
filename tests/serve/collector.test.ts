// When serve collects its garbage itself (src/serve/collector.ts): every `every` units of work,
// a full collection after a quiet spell, each time in a turn of its own, and never after close().
import { describe, expect, test } from 'bun:test';
import { Collector } from '../../src/serve/collector.ts';

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('Collector', () => {
  test('every `every` units one collection, in a later turn; several due in one turn make one (Rules 1, 3)', async () => {
    let collected = 0;
    const c = new Collector({ every: 3, quietMs: 60_000, collect: () => collected++, collectWhenQuiet: () => expect.unreachable() });
    c.worked();
    c.worked();
    await turn();
    expect(collected).toBe(0);
    c.worked();
    // Due, but not in the turn that did the work.
    expect(collected).toBe(0);
    await turn();
    expect(collected).toBe(1);
    c.worked(7);
    c.worked(3);
    await turn();
    expect(collected).toBe(2);
    c.close();
  });

  test('one more once work has stopped for quietMs, and none while it keeps coming (Rule 2)', async () => {
    let collected = 0;
    const c = new Collector({ every: 1_000_000, quietMs: 500, collect: () => expect.unreachable(), collectWhenQuiet: () => collected++ });
    const started = performance.now();
    // Work every 10 ms for 300 ms: never quiet for 500 ms.
    while (performance.now() - started < 300) {
      c.worked();
      await Bun.sleep(10);
    }
    expect(collected).toBe(0);
    await Bun.sleep(900);
    expect(collected).toBe(1);
    // Quiet with nothing done since: no more.
    await Bun.sleep(600);
    expect(collected).toBe(1);
    c.close();
  });

  test('work that reached `every` just before the quiet spell still ends with the full collection', async () => {
    const calls: string[] = [];
    const c = new Collector({ every: 2, quietMs: 100, collect: () => calls.push('during'), collectWhenQuiet: () => calls.push('quiet') });
    c.worked(2);
    await Bun.sleep(400);
    expect(calls).toEqual(['during', 'quiet']);
    c.close();
  });

  test('after close() nothing runs, not even what was due', async () => {
    let collected = 0;
    const c = new Collector({ every: 1, quietMs: 20, collect: () => collected++, collectWhenQuiet: () => collected++ });
    c.worked();
    c.close();
    await Bun.sleep(60);
    expect(collected).toBe(0);
    c.worked();
    await Bun.sleep(60);
    expect(collected).toBe(0);
  });
});
