// The index's id table against a Map doing the same operations: random adds, replacements,
// deletions and renumberings across many rebuilds.
import { describe, expect, test } from 'bun:test';
import { hashOf, hashOfBytes, IdTable } from '../../src/spool/id-table.ts';

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x7fffffff;
  };
}

/** A table over rows of ids held in an array, as the index holds them in its arena. */
function table() {
  const ids: string[] = [];
  let probe = '';
  const t = new IdTable(
    (row) => ids[row] === probe,
    (row) => hashOf(ids[row]),
  );
  return {
    ids,
    t,
    find(id: string): number {
      probe = id;
      return t.find(hashOf(id));
    },
    add(id: string): number {
      ids.push(id);
      t.add(hashOf(id), ids.length - 1);
      return ids.length - 1;
    },
    replace(id: string): number {
      ids.push(id);
      probe = id;
      expect(t.replace(hashOf(id), ids.length - 1)).toBe(true);
      return ids.length - 1;
    },
    delete(id: string): number {
      probe = id;
      return t.delete(hashOf(id));
    },
  };
}

describe('IdTable', () => {
  test('agrees with a Map on find and size through 100,000 random operations and renumberings', () => {
    const random = rng(11);
    const tab = table();
    let model = new Map<string, number>();
    for (let step = 0; step < 100_000; step++) {
      const id = `m${Math.floor(random() * 20_000)}`;
      const r = random();
      if (r < 0.6) {
        if (model.has(id)) model.set(id, tab.replace(id));
        else model.set(id, tab.add(id));
      } else if (r < 0.9) {
        expect(tab.delete(id)).toBe(model.get(id) ?? -1);
        model.delete(id);
      } else if (r < 0.9995) {
        expect(tab.find(id)).toBe(model.get(id) ?? -1);
      } else {
        // Renumber: keep the rows the model holds, in order, as the index does.
        const rows = [...model.values()].sort((a, b) => a - b);
        const moved = new Int32Array(tab.ids.length).fill(-1);
        const kept: string[] = [];
        for (const row of rows) {
          moved[row] = kept.length;
          kept.push(tab.ids[row]);
        }
        tab.ids.splice(0, tab.ids.length, ...kept);
        tab.t.renumber(moved);
        model = new Map([...model].map(([k, row]) => [k, moved[row]]));
      }
      if (step % 64 === 0) expect(tab.t.size).toBe(model.size);
    }
    for (const [id, row] of model) expect(tab.find(id)).toBe(row);
    expect(tab.find('absent')).toBe(-1);
  }, 30_000);

  test('a million ids are all found, and none that was not added', () => {
    const tab = table();
    tab.t.reserve(1_000_000);
    for (let n = 0; n < 1_000_000; n++) tab.add(`fill-${n}`);
    expect(tab.t.size).toBe(1_000_000);
    for (let n = 0; n < 1_000_000; n += 997) expect(tab.find(`fill-${n}`)).toBe(n);
    expect(tab.find('fill-1000000')).toBe(-1);
  });

  test('rows past 2^26 take bits from the tag (Rule 4), and every id is still found', () => {
    const rows = new Map<number, string>();
    let probe = '';
    const t = new IdTable(
      (row) => rows.get(row) === probe,
      (row) => hashOf(rows.get(row)!),
    );
    const find = (id: string) => {
      probe = id;
      return t.find(hashOf(id));
    };
    // Rows as a renumbering-free index would reach them: below, at and past each width.
    const wanted = [0, 1, 2 ** 26 - 1, 2 ** 26, 2 ** 27 + 5, 2 ** 29 + 7, 2 ** 30 - 1];
    for (let n = 1; n < 5000; n++) wanted.push(n * 12_289);
    for (const row of wanted) {
      const id = `row-${row}`;
      rows.set(row, id);
      probe = id;
      expect(t.set(hashOf(id), row)).toBe(-1);
    }
    for (const row of wanted) expect(find(`row-${row}`)).toBe(row);
    expect(find('row-absent')).toBe(-1);
    probe = '';
    expect(() => t.add(hashOf('too-far'), 2 ** 30)).toThrow(RangeError);
  });

  test('hashOfBytes hashes ASCII bytes as hashOf hashes the string', () => {
    const bytes = new TextEncoder().encode('x01KBC3W5ZP8Y4Z.a-b_c\n');
    expect(hashOfBytes(bytes, 1, bytes.length - 1)).toBe(hashOf('01KBC3W5ZP8Y4Z.a-b_c'));
  });
});
