// The index's id table against a Map doing the same operations: random adds, replacements and
// deletions across many rebuilds, with iterations that delete as they go.
import { describe, expect, test } from 'bun:test';
import { IdTable } from '../../src/spool/id-table.ts';

interface Rec {
  readonly id: string;
  readonly n: number;
}

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x7fffffff;
  };
}

describe('IdTable', () => {
  test('agrees with a Map on get, size and insertion order through 200,000 random operations', () => {
    const random = rng(11);
    const table = new IdTable<Rec>();
    const model = new Map<string, Rec>();
    for (let step = 0; step < 200_000; step++) {
      const id = `m${Math.floor(random() * 20_000)}`;
      const r = random();
      if (r < 0.6) {
        const rec = { id, n: step };
        table.set(rec);
        model.set(id, rec);
      } else if (r < 0.9) {
        expect(table.delete(id)).toBe(model.delete(id));
      } else {
        expect(table.get(id)).toBe(model.get(id));
      }
      expect(table.size).toBe(model.size);
    }
    expect([...table.values()]).toEqual([...model.values()]);
    for (const [id, rec] of model) expect(table.get(id)).toBe(rec);
    expect(table.get('absent')).toBeUndefined();
  });

  test('a million ids are all found, and none that was not added', () => {
    const table = new IdTable<Rec>();
    for (let n = 0; n < 1_000_000; n++) table.set({ id: `fill-${n}`, n });
    expect(table.size).toBe(1_000_000);
    for (let n = 0; n < 1_000_000; n += 997) expect(table.get(`fill-${n}`)?.n).toBe(n);
    expect(table.get('fill-1000000')).toBeUndefined();
  });

  test('records deleted during an iteration are not visited, even across a rebuild', () => {
    const table = new IdTable<Rec>();
    for (let n = 0; n < 5_000; n++) table.set({ id: `a${n}`, n });
    const seen: number[] = [];
    for (const rec of table.values()) {
      seen.push(rec.n);
      // Delete the next record, and add enough new ones to force rebuilds along the way.
      table.delete(`a${rec.n + 1}`);
      if (rec.n % 100 === 0) for (let k = 0; k < 2_000; k++) table.set({ id: `b${rec.n}-${k}`, n: -1 });
    }
    const visitedOriginals = seen.filter((n) => n >= 0);
    expect(visitedOriginals).toEqual(Array.from({ length: 2_500 }, (_, i) => 2 * i));
    expect(table.get('a1')).toBeUndefined();
    expect(table.get('a2')?.n).toBe(2);
  });
});
