/**
 * @module The index's table of rows by message id: an open-addressing hash table of row numbers in
 * one Int32Array, in place of a Map of a million string keys. The ids themselves stay with their
 * owner: it hashes them (hashOf, hashOfBytes), says whether a row holds the id looked for
 * (`same`), and gives a row's hash again when the table is rebuilt (`hashOfRow`).
 * Rule 1: one row per id; the owner looks an id up before it adds it.
 * Rule 2: at most three slots in four are in use (rows and the marks deletions leave); past that
 *         the table is rebuilt to at least twice its rows' slots, dropping the marks.
 * Rule 3: the owner that renumbers its rows calls renumber() with the old-to-new map, once its
 *         ids are at their new rows.
 * Rule 4: a slot holds its row in the low `rowBits` bits and the top bits of the id's hash above
 *         them (a tag): a probe compares the tag before it asks the owner, who reads the id (a
 *         cache miss), so 31 probes in 32 that pass another id stop at the tag. Rows take 26 bits
 *         (67 million rows) and one more for each doubling past that, the tag one fewer. A table
 *         of hashes beside the slots did the same for 4 bytes a slot: 8 MB at a million ids.
 */

const EMPTY = -1;
/** A slot whose row was deleted: a probe goes on past it. */
const GONE = -2;
const MIN_SLOTS = 1024;
/** Rule 4: the fewest bits of a slot that hold its row, and the most (leaving one bit of tag). */
const MIN_ROW_BITS = 26;
const MAX_ROW_BITS = 30;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The name of hashOf()'s function, written beside hashes that are stored (checkpoint.ts). */
export const ID_HASH = 'fnv1a32';

/** FNV-1a over the UTF-16 code units: ids are short ASCII. */
export function hashOf(id: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), FNV_PRIME);
  return h | 0;
}

/** hashOf() of the ASCII id in bytes[start..end). */
export function hashOfBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return h | 0;
}

export class IdTable {
  #slots = new Int32Array(MIN_SLOTS).fill(EMPTY);
  /** Rule 4: a slot's row is `slot & #rowMask`; its tag is the rest. */
  #rowBits = MIN_ROW_BITS;
  #rowMask = (1 << MIN_ROW_BITS) - 1;
  #size = 0;
  /** Slots not EMPTY: rows and GONE marks. */
  #used = 0;
  /** Whether `row` holds the id being looked up (the owner knows which). */
  readonly #same: (row: number) => boolean;
  /** The hash of the id that `row` holds, as hashOf() gives it. */
  readonly #hashOfRow: (row: number) => number;

  constructor(same: (row: number) => boolean, hashOfRow: (row: number) => number) {
    this.#same = same;
    this.#hashOfRow = hashOfRow;
  }

  get size(): number {
    return this.#size;
  }

  /** Room for `rows` rows without a rebuild. */
  reserve(rows: number): void {
    if ((this.#used + rows) * 4 > this.#slots.length * 3) this.#rebuild(rows);
  }

  /** The row holding the id whose hash is `h` (as `same` says), or -1. */
  find(h: number): number {
    const slot = this.#slot(h);
    return slot < 0 ? -1 : this.#slots[slot] & this.#rowMask;
  }

  /** Adds a row for an id that is not in the table (Rule 1). */
  add(h: number, row: number): void {
    if (row > this.#rowMask) this.#widen(row);
    if ((this.#used + 1) * 4 > this.#slots.length * 3) this.#rebuild(0);
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at >= 0) continue;
      if (at === EMPTY) this.#used++;
      slots[i] = this.#tag(h) | row;
      this.#size++;
      return;
    }
  }

  /**
   * Adds a row for the id whose hash is `h`, or points the id at it when the table has it (as
   * `same` says); returns the row it had, or -1. One probe where find() then add() take two.
   */
  set(h: number, row: number): number {
    if (row > this.#rowMask) this.#widen(row);
    if ((this.#used + 1) * 4 > this.#slots.length * 3) this.#rebuild(0);
    const slots = this.#slots;
    const rowMask = this.#rowMask;
    const tag = this.#tag(h);
    const mask = slots.length - 1;
    let free = -1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at === EMPTY) {
        if (free < 0) {
          free = i;
          this.#used++;
        }
        break;
      }
      if (at === GONE) {
        if (free < 0) free = i;
        continue;
      }
      if ((at & ~rowMask) === tag && this.#same(at & rowMask)) {
        slots[i] = tag | row;
        return at & rowMask;
      }
    }
    slots[free] = tag | row;
    this.#size++;
    return -1;
  }

  /** Points the id (found as `same` says) at another row; false when it is not in the table. */
  replace(h: number, row: number): boolean {
    if (row > this.#rowMask) this.#widen(row);
    const slot = this.#slot(h);
    if (slot < 0) return false;
    this.#slots[slot] = this.#tag(h) | row;
    return true;
  }

  /** Removes the id (found as `same` says); returns its row, or -1. */
  delete(h: number): number {
    const slot = this.#slot(h);
    if (slot < 0) return -1;
    const row = this.#slots[slot] & this.#rowMask;
    this.#slots[slot] = GONE;
    this.#size--;
    return row;
  }

  /** Rows renumbered by their owner: `moved[old]` is the new row, or -1 for a row it dropped (Rule 3). */
  renumber(moved: Int32Array): void {
    const slots = this.#slots;
    const rowMask = this.#rowMask;
    for (let i = 0; i < slots.length; i++) {
      const at = slots[i];
      if (at < 0) continue;
      const to = moved[at & rowMask];
      // The slot keeps its place until the rebuild below, which hashes the new row's id.
      if (to >= 0) slots[i] = (at & ~rowMask) | to;
      else {
        slots[i] = GONE;
        this.#size--;
      }
    }
    this.#rebuild(0);
  }

  /** Rule 4: the top bits of `h`, above the row's bits. */
  #tag(h: number): number {
    return (h >>> (this.#rowBits + 1)) << this.#rowBits;
  }

  #slot(h: number): number {
    const slots = this.#slots;
    const rowMask = this.#rowMask;
    const tag = this.#tag(h);
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at === EMPTY) return -1;
      if (at >= 0 && (at & ~rowMask) === tag && this.#same(at & rowMask)) return i;
    }
  }

  /** Rule 4: room in a slot for `row`, one bit of the tag at a time. */
  #widen(row: number): void {
    let bits = this.#rowBits;
    while (row >= 2 ** bits) {
      if (bits === MAX_ROW_BITS) throw new RangeError(`the id table holds rows below 2^${MAX_ROW_BITS}, not row ${row}`);
      bits++;
    }
    this.#rebuild(0, bits);
  }

  #rebuild(extra: number, rowBits = this.#rowBits): void {
    let capacity = MIN_SLOTS;
    while (capacity < 2 * (this.#size + extra + 1)) capacity *= 2;
    const slots = new Int32Array(capacity).fill(EMPTY);
    const mask = capacity - 1;
    const oldSlots = this.#slots;
    const oldRowMask = this.#rowMask;
    this.#rowBits = rowBits;
    this.#rowMask = 2 ** rowBits - 1;
    for (let k = 0; k < oldSlots.length; k++) {
      const at = oldSlots[k];
      if (at < 0) continue;
      const row = at & oldRowMask;
      const h = this.#hashOfRow(row);
      let i = h & mask;
      while (slots[i] !== EMPTY) i = (i + 1) & mask;
      slots[i] = this.#tag(h) | row;
    }
    this.#slots = slots;
    this.#used = this.#size;
  }
}
