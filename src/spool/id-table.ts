/**
 * @module The index's table of rows by message id: an open-addressing hash table whose slots
 * (row numbers) and their id hashes are two Int32Arrays, in place of a Map of a million string
 * keys. The ids themselves stay with their owner: it hashes them (hashOf, hashOfBytes) and says
 * whether a row holds the id looked for (`same`).
 * Rule 1: one row per id; the owner looks an id up before it adds it.
 * Rule 2: at most three slots in four are in use (rows and the marks deletions leave); past that
 *         the table is rebuilt to at least twice its rows' slots, dropping the marks.
 * Rule 3: the owner that renumbers its rows calls renumber() with the old-to-new map.
 */

const EMPTY = -1;
/** A slot whose row was deleted: a probe goes on past it. */
const GONE = -2;
const MIN_SLOTS = 1024;

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
  /** Each slot's id hash, compared before the row is (which costs a cache miss). */
  #hashes = new Int32Array(MIN_SLOTS);
  #size = 0;
  /** Slots not EMPTY: rows and GONE marks. */
  #used = 0;
  /** Whether `row` holds the id being looked up (the owner knows which). */
  readonly #same: (row: number) => boolean;

  constructor(same: (row: number) => boolean) {
    this.#same = same;
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
    return slot < 0 ? -1 : this.#slots[slot];
  }

  /** Adds a row for an id that is not in the table (Rule 1). */
  add(h: number, row: number): void {
    if ((this.#used + 1) * 4 > this.#slots.length * 3) this.#rebuild(0);
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at >= 0) continue;
      if (at === EMPTY) this.#used++;
      slots[i] = row;
      this.#hashes[i] = h;
      this.#size++;
      return;
    }
  }

  /**
   * Adds a row for the id whose hash is `h`, or points the id at it when the table has it (as
   * `same` says); returns the row it had, or -1. One probe where find() then add() take two.
   */
  set(h: number, row: number): number {
    if ((this.#used + 1) * 4 > this.#slots.length * 3) this.#rebuild(0);
    const slots = this.#slots;
    const hashes = this.#hashes;
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
      if (hashes[i] === h && this.#same(at)) {
        slots[i] = row;
        return at;
      }
    }
    slots[free] = row;
    hashes[free] = h;
    this.#size++;
    return -1;
  }

  /** Points the id (found as `same` says) at another row; false when it is not in the table. */
  replace(h: number, row: number): boolean {
    const slot = this.#slot(h);
    if (slot < 0) return false;
    this.#slots[slot] = row;
    return true;
  }

  /** Removes the id (found as `same` says); returns its row, or -1. */
  delete(h: number): number {
    const slot = this.#slot(h);
    if (slot < 0) return -1;
    const row = this.#slots[slot];
    this.#slots[slot] = GONE;
    this.#size--;
    return row;
  }

  /** Rows renumbered by their owner: `moved[old]` is the new row, or -1 for a row it dropped. */
  renumber(moved: Int32Array): void {
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i++) {
      const at = slots[i];
      if (at < 0) continue;
      const to = moved[at];
      if (to >= 0) slots[i] = to;
      else {
        slots[i] = GONE;
        this.#size--;
      }
    }
    this.#rebuild(0);
  }

  #slot(h: number): number {
    const slots = this.#slots;
    const hashes = this.#hashes;
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at === EMPTY) return -1;
      if (at >= 0 && hashes[i] === h && this.#same(at)) return i;
    }
  }

  #rebuild(extra: number): void {
    let capacity = MIN_SLOTS;
    while (capacity < 2 * (this.#size + extra + 1)) capacity *= 2;
    const slots = new Int32Array(capacity).fill(EMPTY);
    const hashes = new Int32Array(capacity);
    const mask = capacity - 1;
    const oldSlots = this.#slots;
    const oldHashes = this.#hashes;
    for (let k = 0; k < oldSlots.length; k++) {
      const at = oldSlots[k];
      if (at < 0) continue;
      const h = oldHashes[k];
      let i = h & mask;
      while (slots[i] !== EMPTY) i = (i + 1) & mask;
      slots[i] = at;
      hashes[i] = h;
    }
    this.#slots = slots;
    this.#hashes = hashes;
    this.#used = this.#size;
  }
}
