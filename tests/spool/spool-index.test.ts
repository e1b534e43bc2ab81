// The columnar index alone: records added one by one and from checkpoint chunks (with stored id
// hashes and without), a later copy of an id replacing the earlier, and the renumbering of rows
// once most are dropped, checked against a plain model of what must be tracked.
import { describe, expect, test } from 'bun:test';
import { decodeLog, encodeChunk } from '../../src/spool/checkpoint.ts';
import { SpoolIndex, type StoredRecord } from '../../src/spool/index.ts';
import { mailboxFlags } from '../../src/spool/mailbox-state.ts';
import { envelope } from './fixtures/messages.ts';

const T0 = 1_700_000_000_000;
const envelopes = [envelope('a@one.example', ['x@two.example']), envelope(null, ['y@two.example', 'x@two.example'])];

/**
 * Most records' framing (bytes less bodyBytes) and stuffing (bodyBytes less size) fit the index's
 * 16-bit columns; one in 194 has both too large for them (a record with 1,000 recipients, a body
 * of many lines starting with "."), which the index keeps aside (Rule 5).
 */
function record(id: string, n: number, seq: number, offset: number): StoredRecord {
  const env = envelopes[n % 2];
  const wide = Number(id.split('-')[1]) % 194 === 0;
  const lengths = wide ? { bytes: 150_000, bodyBytes: 80_000, size: 5_000 } : { bytes: 100, bodyBytes: 50, size: 48 };
  return { id, timeMs: T0 + n, envelope: env, local: env.recipients.map(() => true), seq, offset, ...lengths };
}

/** One chunk of `records` (all of segment `seq`), decoded as start-up decodes it. */
function chunkOf(seq: number, records: readonly StoredRecord[], hashes: boolean) {
  let bytes = encodeChunk({ seq, ino: 1, headerBytes: 10, from: records[0].offset, to: records.at(-1)!.offset + 100, entries: records });
  if (!hashes) {
    // An older writer's chunk: an id hash the reader does not know, so it reads the ids alone.
    const text = bytes.toString('latin1').replace('"idHash":"fnv1a32"', '"idHash":"unknown"');
    bytes = Buffer.from(text, 'latin1');
    bytes.writeUInt32LE(Bun.hash.crc32(bytes.subarray(12)) >>> 0, 8);
  }
  const log = decodeLog(bytes);
  expect(log.problem).toBeNull();
  expect(log.chunks[0].idHashBytes === null).toBe(!hashes);
  return log.chunks[0];
}

/** The index's row for `r.id` holds what `r` says: time, place, lengths and sender. */
function expectRow(index: SpoolIndex, r: StoredRecord): void {
  const e = index.record(r.id)!;
  expect({ id: e.id, timeMs: e.timeMs, seq: e.seq, offset: e.offset, bodyOffset: e.bodyOffset, size: e.size, sender: e.envelope.sender }).toEqual({
    id: r.id,
    timeMs: r.timeMs,
    seq: r.seq,
    offset: r.offset,
    bodyOffset: r.offset + r.bytes - 3 - r.bodyBytes,
    size: r.size,
    sender: r.envelope.sender,
  });
}

describe('SpoolIndex', () => {
  test('chunks with and without stored hashes, single records, duplicates, renumbering', () => {
    const index = new SpoolIndex();
    for (let seq = 1; seq <= 4; seq++) index.addSegment({ seq, name: `s${seq}`, bytes: 0, headerBytes: 10 });
    const model = new Map<string, StoredRecord>();
    const add = (r: StoredRecord) => {
      index.addRecord(r);
      model.set(r.id, r);
    };
    // Segment 1 from a hashed chunk, segment 2 from an older one, segment 3 one by one.
    for (const [seq, hashed] of [
      [1, true],
      [2, false],
    ] as const) {
      const records = Array.from({ length: 60_000 }, (_, i) => record(`s${seq}-${i}`, seq * 100_000 + i, seq, 10 + 100 * i));
      index.addChunk(seq, chunkOf(seq, records, hashed));
      for (const r of records) model.set(r.id, r);
    }
    for (let i = 0; i < 60_000; i++) add(record(`s3-${i}`, 300_000 + i, 3, 10 + 100 * i));
    // A later copy of some ids (compaction stopped between rename and unlink): it wins.
    const copies = Array.from({ length: 1_000 }, (_, i) => record(`s1-${i}`, 100_000 + i, 4, 10 + 100 * i));
    index.addChunk(4, chunkOf(4, copies, true));
    for (const r of copies) model.set(r.id, r);
    index.finishLoad();
    index.applyRemoval('s2-7', 0, T0);
    index.applyMailbox('s3-9', 'x@two.example', mailboxFlags(true, ['t']));

    const check = () => {
      expect(index.size).toBe(model.size);
      for (const [id, r] of model) {
        if (Number(id.split('-')[1]) % 97 !== 0 && id !== 's2-7' && id !== 's3-9') continue;
        expectRow(index, r);
      }
      expect(index.record('s2-7')?.states.map((s) => s.kind)).toEqual(['removed', 'local']);
      expect(index.record('s3-9')?.mailboxes?.get('x@two.example')?.tags).toEqual(['t']);
      const newest = index.query({ limit: 3 }).map((e) => e.id);
      const expected = [...model.values()].sort((a, b) => b.timeMs - a.timeMs).slice(0, 3).map((r) => r.id);
      expect(newest).toEqual(expected);
      const bySender = index.query({ sender: 'a@one.example' });
      expect(bySender.length).toBe([...model.values()].filter((r) => r.envelope.sender !== null).length);
      expect(index.query({ recipient: 'Y@two.example', limit: 1 })[0].envelope.sender).toBeNull();
      for (let seq = 1; seq <= 4; seq++) {
        const ids = index.entriesIn(seq).map((e) => e.id);
        expect(ids).toEqual([...model.values()].filter((r) => r.seq === seq).sort((a, b) => a.offset - b.offset).map((r) => r.id));
        expect(index.segment(seq)!.records).toBe(ids.length);
        expect(index.segment(seq)!.liveBytes).toBe([...model.values()].filter((r) => r.seq === seq).reduce((n, r) => n + r.bytes, 0));
      }
    };
    check();
    expect(index.segment(1)!.records).toBe(59_000);

    // Drop most of segments 2 and 3: past 65,536 dropped rows, and more dropped than kept, the rows are renumbered.
    for (const seq of [2, 3]) {
      for (const e of index.entriesIn(seq)) {
        const n = Number(e.id.split('-')[1]);
        if (n % 5 === 0 || e.id === 's2-7' || e.id === 's3-9') continue;
        index.dropRecord(e);
        model.delete(e.id);
      }
    }
    const kept = index.record('s3-10')!;
    check();
    // A snapshot taken before another drop still names its record.
    expect(index.isCurrent(kept)).toBe(true);
    index.moveRecord(kept, 4, 999_999);
    expect(index.isCurrent(kept)).toBe(false);
    expect(index.record('s3-10')?.seq).toBe(4);
  }, 60_000);

  test('a chunk read at any byte offset loads the same rows, whether its columns are copied or viewed', () => {
    // A chunk's columns are aligned or not as its header's length falls; the index views aligned
    // ones and copies the others into one buffer it reuses, chunk after chunk of other sizes.
    const sizes = [5_000, 3_000, 7_000, 1];
    for (const shift of [0, 1, 2, 3]) {
      for (const hashed of [true, false]) {
        const index = new SpoolIndex();
        const model: StoredRecord[] = [];
        sizes.forEach((n, k) => {
          const seq = k + 1;
          index.addSegment({ seq, name: `s${seq}`, bytes: 0, headerBytes: 10 });
          const records = Array.from({ length: n }, (_, i) => record(`c${seq}-${i}`, seq * 10_000 + i, seq, 10 + 100 * i));
          const chunk = chunkOf(seq, records, hashed);
          const payload = chunk.columnBytes;
          // The same chunk at `shift` bytes past an aligned start.
          const moved = new Uint8Array(payload.buffer.byteLength + 4);
          moved.set(new Uint8Array(payload.buffer), shift);
          const at = (view: Uint8Array | null) => (view === null ? null : moved.subarray(view.byteOffset + shift, view.byteOffset + shift + view.length));
          const shifted = { ...chunk, idBytes: at(chunk.idBytes)!, timeBytes: at(chunk.timeBytes)!, columnBytes: at(chunk.columnBytes)!, idHashBytes: at(chunk.idHashBytes), idLengths: at(chunk.idLengths) };
          expect(shifted.columnBytes.byteOffset % 4).toBe((payload.byteOffset + shift) % 4);
          index.addChunk(seq, shifted);
          model.push(...records);
        });
        index.finishLoad();
        expect(index.size).toBe(model.length);
        for (const r of model) expectRow(index, r);
      }
    }
  }, 60_000);

  test('segment, envelope and flags numbers past one byte and past two widen their columns, rows kept (Rule 5)', () => {
    const index = new SpoolIndex();
    for (const seq of [1, 300, 70_000]) index.addSegment({ seq, name: `s${seq}`, bytes: 0, headerBytes: 10 });
    const model = new Map<string, StoredRecord>();
    const add = (r: StoredRecord) => {
      index.addRecord(r);
      model.set(r.id, r);
    };
    // One envelope of its own per record: envelope numbers reach 70,000.
    const own = (i: number) => envelope(`s${i}@one.example`, [`r${i}@two.example`]);
    for (let i = 0; i < 70_000; i++) {
      const seq = i < 200 ? 1 : i < 60_000 ? 300 : 70_000;
      add({ ...record(`own-${i}`, i, seq, 10 + 100 * i), envelope: own(i) });
    }
    // Flags of many shapes: a record with 9 recipients and each pattern of local ones (512 sets).
    const nine = envelope('nine@one.example', Array.from({ length: 9 }, (_, k) => `n${k}@two.example`));
    for (let pattern = 0; pattern < 512; pattern++) {
      const local = Array.from({ length: 9 }, (_, k) => (pattern & (1 << k)) !== 0);
      add({ ...record(`nine-${pattern}`, 100_000 + pattern, 70_000, 10 + 100 * pattern), envelope: nine, local });
    }
    // And a chunk loaded after the columns widened.
    const later = Array.from({ length: 500 }, (_, i) => record(`late-${i}`, 200_000 + i, 70_000, 8_000_000 + 100 * i));
    index.addChunk(70_000, chunkOf(70_000, later, true));
    for (const r of later) model.set(r.id, r);
    index.finishLoad();
    for (const [id, r] of model) {
      const e = index.record(id)!;
      expect(e.seq).toBe(r.seq);
      expect(e.envelope).toEqual(r.envelope);
      expect(e.local).toEqual(r.local);
    }
    expect(index.query({ recipient: 'r69999@two.example' }).map((e) => e.id)).toEqual(['own-69999']);
    expect(index.query({ sender: 's123@one.example' }).map((e) => e.id)).toEqual(['own-123']);
    expect(index.entriesIn(300).length).toBe(59_800);
    // Half the nine recipients' copies across the 512 patterns are to relay.
    expect(index.queuedCounts().pending).toBe((512 * 9) / 2);
  }, 60_000);

  test('the queued counts: a later copy of an id replaces the earlier one, a dropped row takes its copies along', () => {
    const index = new SpoolIndex();
    for (let seq = 1; seq <= 2; seq++) index.addSegment({ seq, name: `s${seq}`, bytes: 0, headerBytes: 10 });
    const relayed = (id: string, seq: number, offset: number): StoredRecord => ({ ...record(id, 1, seq, offset), local: [false, true] });
    index.addChunk(1, chunkOf(1, [relayed('a', 1, 10), relayed('b', 1, 110)], true));
    index.addRecord(relayed('c', 1, 210));
    index.finishLoad();
    expect(index.queuedCounts()).toEqual({ pending: 3, deferred: 0, held: 0 });
    index.applyState('a', 0, { kind: 'held', atMs: T0, attempts: 0 });
    // A later copy of a and b, as a compaction that stopped before its unlink leaves them.
    index.addChunk(2, chunkOf(2, [relayed('a', 2, 10)], true));
    index.addRecord(relayed('b', 2, 110));
    expect(index.queuedCounts()).toEqual({ pending: 3, deferred: 0, held: 0 });
    index.applyState('a', 0, { kind: 'held', atMs: T0, attempts: 0 });
    index.dropRecord(index.record('c')!);
    expect(index.queuedCounts()).toEqual({ pending: 1, deferred: 0, held: 1 });
  });

  test('the relay view and the local-only walk: no snapshot of a record that never had a local copy', () => {
    const index = new SpoolIndex();
    index.addSegment({ seq: 1, name: 's1', bytes: 0, headerBytes: 10 });
    const stored = (id: string, n: number, local: boolean[]): StoredRecord => ({ ...record(id, n, 1, 100 * n), envelope: envelopes[1], local });
    index.addRecord(stored('relayed', 1, [false, false]));
    index.addRecord(stored('mixed', 1, [false, true]));
    index.addRecord(stored('local', 2, [true, true]));
    index.finishLoad();
    const walk = (localOnly: boolean) => {
      const ids: string[] = [];
      index.forEachInCommitOrder(-Infinity, (e) => ids.push(e.id) > 0, localOnly);
      return ids;
    };
    expect(walk(false)).toEqual(['mixed', 'relayed', 'local']);
    expect(walk(true)).toEqual(['mixed', 'local']);
    const deferred = { kind: 'deferred', attempts: 1, nextAttemptMs: T0 + 5, lastReply: { code: 421, lines: ['down'] } } as const;
    index.applyState('relayed', 1, deferred);
    expect(index.relayView('relayed')).toEqual({ id: 'relayed', timeMs: T0 + 1, states: [{ kind: 'pending' }, deferred], live: true });
    expect(index.relayViews().map((v) => v.id)).toEqual(['relayed', 'mixed']);
    expect(index.states('mixed')?.map((s) => s.kind)).toEqual(['pending', 'local']);
    expect(index.relayView('nothing')).toBeUndefined();
    expect(index.states('nothing')).toBeUndefined();
  });
});
