/**
 * @module The index's table of records by message id: an open-addressing hash table (slots and
 * their hashes in two Int32Arrays) over an array of the records, in place of a Map of a million
 * string keys, which cost about a second of a checkpointed start of 1,000,000 records.
 * Rule 1: a record is found by its own `id`; the table holds no copy of the key.
 * Rule 2: iteration is in insertion order, and a record deleted while an iteration runs is not
 *         visited; records added meanwhile may or may not be.
 * Rule 3: at most three slots in four are in use (records and the marks deletions leave), and
 *         the array holds at most about as many holes as records; past either the table is
 *         rebuilt to at least twice its records' slots, dropping the marks and the holes.
 */

const EMPTY = -1;
/** A slot whose record was deleted: a probe goes on past it. */
const GONE = -2;
const MIN_SLOTS = 1024;

/** FNV-1a over the UTF-16 code units: ids are short ASCII. */
function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h | 0;
}

export class IdTable<V extends { readonly id: string }> {
  #slots = new Int32Array(MIN_SLOTS).fill(EMPTY);
  /** Each slot's id hash, compared before the record is looked at (which costs a cache miss). */
  #hashes = new Int32Array(MIN_SLOTS);
  /** Records by insertion; a deleted one leaves a hole until the next rebuild. */
  #values: (V | undefined)[] = [];
  #size = 0;
  /** Slots not EMPTY: records and GONE marks. */
  #used = 0;
  /** The last id hashed and its hash: a record is mostly looked up, then added. */
  #lastId = '';
  #lastHash = hashOf('');

  get size(): number {
    return this.#size;
  }

  get(id: string): V | undefined {
    const slot = this.#find(id, this.#hash(id));
    return slot < 0 ? undefined : this.#values[this.#slots[slot]];
  }

  /** Adds `value` under its id, or replaces the record that has that id (in its place). */
  set(value: V): void {
    const h = this.#hash(value.id);
    const slot = this.#find(value.id, h);
    if (slot >= 0) {
      this.#values[this.#slots[slot]] = value;
      return;
    }
    if ((this.#used + 1) * 4 > this.#slots.length * 3 || this.#values.length >= 2 * this.#size + MIN_SLOTS) this.#rebuild();
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at >= 0) continue;
      if (at === EMPTY) this.#used++;
      slots[i] = this.#values.length;
      this.#hashes[i] = h;
      this.#values.push(value);
      this.#size++;
      return;
    }
  }

  delete(id: string): boolean {
    const slot = this.#find(id, this.#hash(id));
    if (slot < 0) return false;
    this.#values[this.#slots[slot]] = undefined;
    this.#slots[slot] = GONE;
    this.#size--;
    return true;
  }

  *values(): IterableIterator<V> {
    const values = this.#values;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === undefined) continue;
      // After a rebuild this array no longer sees deletions: ask the table.
      if (values !== this.#values && this.get(v.id) !== v) continue;
      yield v;
    }
  }

  #hash(id: string): number {
    if (id !== this.#lastId) {
      this.#lastId = id;
      this.#lastHash = hashOf(id);
    }
    return this.#lastHash;
  }

  /** The slot holding the record with this id, or -1. */
  #find(id: string, h: number): number {
    const slots = this.#slots;
    const hashes = this.#hashes;
    const values = this.#values;
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const at = slots[i];
      if (at === EMPTY) return -1;
      if (at >= 0 && hashes[i] === h && values[at]!.id === id) return i;
    }
  }

  #rebuild(): void {
    const old = this.#values;
    // Old array position to new one: the holes are dropped, the order kept.
    const moved = new Int32Array(old.length);
    const values: V[] = [];
    for (let j = 0; j < old.length; j++) {
      const v = old[j];
      if (v === undefined) continue;
      moved[j] = values.length;
      values.push(v);
    }
    let capacity = MIN_SLOTS;
    while (capacity < 2 * (values.length + 1)) capacity *= 2;
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
      slots[i] = moved[at];
      hashes[i] = h;
    }
    this.#slots = slots;
    this.#hashes = hashes;
    this.#values = values;
    this.#used = values.length;
  }
}
