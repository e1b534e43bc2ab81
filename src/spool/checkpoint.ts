/**
 * @module The index checkpoint: what start-up would learn by reading and checksumming every
 * record, written down once, so that it reads only the records written since.
 * Rule 1: the checkpoint is an append-only log of chunks. A chunk describes the records of one
 *         segment between two offsets (`from`, `to`); chunks of a segment chain from its header
 *         on, and a chunk that does not continue the chain is ignored with all after it.
 *         Each chunk is "MBCK", its payload length and CRC-32, then the payload; a torn or
 *         damaged chunk ends the log (it is cut there).
 * Rule 2: a segment's chunks are trusted only while the file is the one they describe: same
 *         inode, and at least `to` bytes long. Otherwise start-up scans the whole segment.
 *         Bytes a checkpoint covers are not checksummed again at start-up; compaction still
 *         checks every record it copies.
 * Rule 3: pure encoding and decoding here; the spool decides when to append and to rewrite.
 * Rule 4: after the columns a chunk may hold each id's hash and length, named in its header by
 *         the hash function (`idHash`); a reader that does not know the function, or an older
 *         one, ignores them and reads the ids alone.
 */
import type { Envelope } from '../core/envelope.ts';
import { hashOf, ID_HASH } from './id-table.ts';
import type { StoredRecord } from './index.ts';

const MAGIC = 0x4b43424d; // "MBCK" little-endian
const CHUNK_HEAD = 12;
const COLUMNS = 6;

/** The records of one segment between two offsets, as a chunk stores them. */
export interface ChunkInput {
  readonly seq: number;
  readonly ino: number;
  readonly headerBytes: number;
  readonly from: number;
  readonly to: number;
  /** In offset order, contiguous from `from` to `to`. */
  readonly entries: readonly StoredRecord[];
}

/** Where a chunk's records are: segment `seq` (its inode and header length) from `from` to `to`. */
export interface ChunkSpan {
  readonly seq: number;
  readonly ino: number;
  readonly headerBytes: number;
  readonly from: number;
  readonly to: number;
  readonly count: number;
}

/**
 * One decoded chunk; record i is read from the columns. The columns are the log's own bytes
 * (little-endian, as encodeChunk wrote them, and not aligned): the index copies them whole.
 */
export interface Chunk extends ChunkSpan {
  /** The records' ids, ASCII, one after another with "\n" between. */
  readonly idBytes: Uint8Array;
  /** count float64 times (epoch ms). */
  readonly timeBytes: Uint8Array;
  /** count uint32 each of: offset, bytes, bodyBytes, size, envelope index, flags index. */
  readonly columnBytes: Uint8Array;
  /** count int32 hashOf(id) and count uint8 id lengths (Rule 4), or null when the chunk has none. */
  readonly idHashBytes: Uint8Array | null;
  readonly idLengths: Uint8Array | null;
  readonly envelopes: readonly Envelope[];
  readonly flags: readonly (readonly boolean[])[];
}

/** Serialises one chunk, framed for appending to the log. */
export function encodeChunk(input: ChunkInput): Buffer {
  const n = input.entries.length;
  const envelopeIndex = new Map<Envelope, number>();
  const envelopes: Envelope[] = [];
  const flagIndex = new Map<string, number>();
  const flags: string[] = [];
  const times = new Float64Array(n);
  const columns = new Uint32Array(COLUMNS * n);
  const hashes = new Int32Array(n);
  const lengths = new Uint8Array(n);
  const ids: string[] = [];
  input.entries.forEach((e, i) => {
    let env = envelopeIndex.get(e.envelope);
    if (env === undefined) {
      env = envelopes.length;
      envelopes.push(e.envelope);
      envelopeIndex.set(e.envelope, env);
    }
    const key = e.local.map((l) => (l ? '1' : '0')).join('');
    let flag = flagIndex.get(key);
    if (flag === undefined) {
      flag = flags.length;
      flags.push(key);
      flagIndex.set(key, flag);
    }
    ids.push(e.id);
    hashes[i] = hashOf(e.id);
    lengths[i] = e.id.length;
    times[i] = e.timeMs;
    columns[i] = e.offset;
    columns[n + i] = e.bytes;
    columns[2 * n + i] = e.bodyBytes;
    columns[3 * n + i] = e.size;
    columns[4 * n + i] = env;
    columns[5 * n + i] = flag;
  });
  const idBlob = Buffer.from(ids.join('\n'), 'latin1');
  const json = Buffer.from(
    JSON.stringify({
      seq: input.seq,
      ino: input.ino,
      headerBytes: input.headerBytes,
      from: input.from,
      to: input.to,
      count: n,
      idBytes: idBlob.length,
      idHash: ID_HASH,
      envelopes,
      flags,
    }),
    'utf8',
  );
  const payloadLength = 4 + json.length + idBlob.length + times.byteLength + columns.byteLength + hashes.byteLength + lengths.byteLength;
  const out = Buffer.alloc(CHUNK_HEAD + payloadLength);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(payloadLength, 4);
  let at = CHUNK_HEAD;
  out.writeUInt32LE(json.length, at);
  at += 4;
  out.set(json, at);
  at += json.length;
  out.set(idBlob, at);
  at += idBlob.length;
  out.set(new Uint8Array(times.buffer), at);
  at += times.byteLength;
  out.set(new Uint8Array(columns.buffer), at);
  at += columns.byteLength;
  out.set(new Uint8Array(hashes.buffer), at);
  at += hashes.byteLength;
  out.set(lengths, at);
  out.writeUInt32LE(Bun.hash.crc32(out.subarray(CHUNK_HEAD)) >>> 0, 8);
  return out;
}

export interface DecodedLog {
  readonly chunks: readonly Chunk[];
  /** Bytes of whole, valid chunks; anything after is torn or damaged. */
  readonly validBytes: number;
  /** Why the log ended early, or null. */
  readonly problem: string | null;
}

/** What a chunk's header says, and where its payload is in the log: enough to chain it, then load it. */
export interface ChunkHead extends ChunkSpan {
  /** Bytes of its ids (with the "\n" between them). */
  readonly idBytes: number;
  /** Its payload: offset in the log and length. */
  readonly at: number;
  readonly length: number;
}

/** Reads `length` bytes of the log at `at`; what it returns may be overwritten by its next call. */
export type LogRead = (at: number, length: number) => Buffer;

export interface ScannedLog {
  readonly heads: readonly ChunkHead[];
  readonly validBytes: number;
  readonly problem: string | null;
}

/**
 * Checks a log of `size` bytes chunk by chunk through `read` (one chunk's bytes at a time, so a
 * caller can read into one buffer it reuses), keeping each whole chunk's head. loadChunk() then
 * reads the chunks it wants again.
 */
export function scanLog(size: number, read: LogRead): ScannedLog {
  const heads: ChunkHead[] = [];
  let at = 0;
  while (at < size) {
    if (size - at < CHUNK_HEAD) return { heads, validBytes: at, problem: 'a torn chunk header' };
    const head = read(at, CHUNK_HEAD);
    const magic = head.readUInt32LE(0);
    const length = head.readUInt32LE(4);
    const crc = head.readUInt32LE(8);
    if (magic !== MAGIC) return { heads, validBytes: at, problem: 'no chunk marker' };
    if (size - at - CHUNK_HEAD < length) return { heads, validBytes: at, problem: 'a torn chunk' };
    const payload = read(at + CHUNK_HEAD, length);
    if (Bun.hash.crc32(payload) >>> 0 !== crc) return { heads, validBytes: at, problem: 'a chunk checksum mismatch' };
    const chunk = decodePayload(payload);
    if (typeof chunk === 'string') return { heads, validBytes: at, problem: chunk };
    const { seq, ino, headerBytes, from, to, count } = chunk;
    heads.push({ seq, ino, headerBytes, from, to, count, idBytes: chunk.idBytes.length, at: at + CHUNK_HEAD, length });
    at += CHUNK_HEAD + length;
  }
  return { heads, validBytes: at, problem: null };
}

/** The chunk scanLog() found at `head`, read again; its columns are views of what `read` returned. */
export function loadChunk(head: ChunkHead, read: LogRead): Chunk {
  const chunk = decodePayload(read(head.at, head.length));
  if (typeof chunk === 'string') throw new Error(`spool: the checkpoint changed while it was read (${chunk})`);
  return chunk;
}

/** Reads the chunks of a checkpoint log. */
export function decodeLog(bytes: Buffer): DecodedLog {
  const chunks: Chunk[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < CHUNK_HEAD) return { chunks, validBytes: at, problem: 'a torn chunk header' };
    const length = bytes.readUInt32LE(at + 4);
    if (bytes.readUInt32LE(at) !== MAGIC) return { chunks, validBytes: at, problem: 'no chunk marker' };
    if (bytes.length - at - CHUNK_HEAD < length) return { chunks, validBytes: at, problem: 'a torn chunk' };
    const payload = bytes.subarray(at + CHUNK_HEAD, at + CHUNK_HEAD + length);
    if (Bun.hash.crc32(payload) >>> 0 !== bytes.readUInt32LE(at + 8)) return { chunks, validBytes: at, problem: 'a chunk checksum mismatch' };
    const chunk = decodePayload(payload);
    if (typeof chunk === 'string') return { chunks, validBytes: at, problem: chunk };
    chunks.push(chunk);
    at += CHUNK_HEAD + length;
  }
  return { chunks, validBytes: at, problem: null };
}

function decodePayload(payload: Buffer): Chunk | string {
  const jsonLength = payload.readUInt32LE(0);
  let head: Record<string, unknown>;
  try {
    head = JSON.parse(payload.toString('utf8', 4, 4 + jsonLength)) as Record<string, unknown>;
  } catch {
    return 'a chunk header that is not JSON';
  }
  const { seq, ino, headerBytes, from, to, count, idBytes, idHash, envelopes, flags } = head;
  const ints = [seq, ino, headerBytes, from, to, count, idBytes];
  if (!ints.every((v) => Number.isSafeInteger(v) && (v as number) >= 0) || !Array.isArray(envelopes) || !Array.isArray(flags)) {
    return 'a chunk header without its fields';
  }
  const n = count as number;
  let at = 4 + jsonLength;
  const ids = payload.subarray(at, at + (idBytes as number));
  at += idBytes as number;
  if (at + 32 * n > payload.length) return 'a chunk shorter than its columns';
  const timeBytes = payload.subarray(at, at + 8 * n);
  const columnBytes = payload.subarray(at + 8 * n, at + 8 * n + 4 * COLUMNS * n);
  at += 32 * n;
  const hashed = idHash === ID_HASH && at + 5 * n <= payload.length;
  const idHashBytes = hashed ? payload.subarray(at, at + 4 * n) : null;
  const idLengths = hashed ? payload.subarray(at + 4 * n, at + 5 * n) : null;
  // n ids of 1 to 64 bytes (segment-format.ts's id pattern), "\n" between them.
  if (idLengths !== null) {
    let total = Math.max(0, n - 1);
    for (let i = 0; i < n; i++) {
      const length = idLengths[i];
      if (length < 1 || length > 64) return 'a chunk whose ids are not ids';
      total += length;
    }
    if (total !== ids.length) return 'a chunk whose ids do not match its count';
  } else {
    let separators = 0;
    let last = -1;
    for (let i = 0; i <= ids.length && n > 0; i++) {
      if (i < ids.length && ids[i] !== 0x0a) continue;
      if (i - last < 2 || i - last > 65) return 'a chunk whose ids are not ids';
      if (i < ids.length) separators++;
      last = i;
    }
    if (n === 0 ? ids.length !== 0 : separators !== n - 1) return 'a chunk whose ids do not match its count';
  }
  return {
    seq: seq as number,
    ino: ino as number,
    headerBytes: headerBytes as number,
    from: from as number,
    to: to as number,
    count: n,
    idBytes: ids,
    timeBytes,
    columnBytes,
    idHashBytes,
    idLengths,
    envelopes: envelopes as Envelope[],
    flags: (flags as string[]).map((f) => [...f].map((c) => c === '1')),
  };
}

/** What chainChunks() needs of a chunk. */
type Chainable = Pick<Chunk, 'seq' | 'ino' | 'headerBytes' | 'from' | 'to'>;

/** The chunks of each segment that chain from its header on, and where the chain ends. */
export interface CoveredSegment<C extends Chainable = ChunkHead> {
  readonly seq: number;
  readonly ino: number;
  readonly headerBytes: number;
  readonly covered: number;
  readonly chunks: readonly C[];
}

/**
 * Groups chunks (or their heads) by segment, keeping each segment's unbroken chain from its
 * header. A chunk that starts at its segment's header starts the chain again: the segment was
 * scanned whole since the chunks before it were written (a copied or restored file has a new
 * inode), and what the log says later is what holds now.
 */
export function chainChunks<C extends Chainable>(chunks: readonly C[]): Map<number, CoveredSegment<C>> {
  const out = new Map<number, { seq: number; ino: number; headerBytes: number; covered: number; chunks: C[]; broken: boolean }>();
  for (const c of chunks) {
    const seg = out.get(c.seq);
    if (!seg || c.from === c.headerBytes) {
      if (c.from === c.headerBytes) out.set(c.seq, { seq: c.seq, ino: c.ino, headerBytes: c.headerBytes, covered: c.to, chunks: [c], broken: false });
      continue;
    }
    if (seg.broken || c.ino !== seg.ino || c.from !== seg.covered) {
      seg.broken = true;
      continue;
    }
    seg.chunks.push(c);
    seg.covered = c.to;
  }
  return new Map([...out].map(([seq, s]) => [seq, { seq, ino: s.ino, headerBytes: s.headerBytes, covered: s.covered, chunks: s.chunks }]));
}
