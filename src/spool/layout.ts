/**
 * @module Spool directory layout and message ids.
 * Rule 1: this is the only file that builds spool paths; every other module asks it.
 * Rule 2: segment names are zero-padded sequence numbers, so `ls` lists them in write order.
 * Rule 3: an id never encodes mutable state (STYLE convention 8); it is safe in a NOOP line.
 */
import * as path from 'node:path';

/** Ids travel inside the NOOP line and in file names: a conservative, shell-safe alphabet. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

const SEGMENT_NAME = /^(\d{8,})\.smtp$/;
const SEGMENT_DIGITS = 8;

export interface SpoolLayout {
  readonly dir: string;
  readonly segmentsDir: string;
  readonly journalDir: string;
  readonly quarantineDir: string;
  readonly lockPath: string;
  readonly journalPath: string;
  /** The temporary name a journal snapshot is written under before its rename. */
  readonly journalTmpPath: string;
  segmentName(seq: number): string;
  segmentPath(seq: number): string;
  /** The temporary name a compacted segment is written under before its rename. */
  segmentTmpPath(seq: number): string;
  /** Where the bytes of a damaged record go, named by their source file and offset. */
  quarantinePath(sourceName: string, offset: number): string;
  /** The reason file written beside quarantined bytes. */
  quarantineReasonPath(sourceName: string, offset: number): string;
}

/** Builds the paths of a spool rooted at `dir`. */
export function createLayout(dir: string): SpoolLayout {
  const root = path.resolve(dir);
  const segmentsDir = path.join(root, 'segments');
  const journalDir = path.join(root, 'journal');
  const quarantineDir = path.join(root, 'quarantine');
  const segmentName = (seq: number) => `${String(seq).padStart(SEGMENT_DIGITS, '0')}.smtp`;
  return Object.freeze({
    dir: root,
    segmentsDir,
    journalDir,
    quarantineDir,
    lockPath: path.join(root, 'lock'),
    journalPath: path.join(journalDir, 'state.log'),
    journalTmpPath: path.join(journalDir, 'state.log.tmp'),
    segmentName,
    segmentPath: (seq: number) => path.join(segmentsDir, segmentName(seq)),
    segmentTmpPath: (seq: number) => path.join(segmentsDir, `${segmentName(seq)}.tmp`),
    quarantinePath: (sourceName: string, offset: number) => path.join(quarantineDir, `${sourceName}@${offset}`),
    quarantineReasonPath: (sourceName: string, offset: number) =>
      path.join(quarantineDir, `${sourceName}@${offset}.reason`),
  });
}

/** The sequence number of a segment file name, or null when the name is not a segment's. */
export function parseSegmentName(name: string): number | null {
  const m = SEGMENT_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/** True for the leftovers of a compaction or journal snapshot that never reached its rename. */
export function isTmpName(name: string): boolean {
  return name.endsWith('.tmp');
}

/** `$XDG_DATA_HOME/mailbox`, else `~/.local/share/mailbox` (XDG Base Directory Specification). */
export function defaultDataDir(env: Readonly<Record<string, string | undefined>>, homeDir: string): string {
  const xdg = env.XDG_DATA_HOME;
  // The specification says a relative XDG_DATA_HOME is invalid and must be ignored.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'mailbox');
  return path.join(env.HOME || homeDir, '.local', 'share', 'mailbox');
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * Returns a generator of message ids that sort by time: 10 Crockford base32 characters of epoch
 * milliseconds, then 10 random ones (ULID-like, 20 characters). Within one millisecond a counter
 * replaces the random tail's low part so ids from one generator stay strictly increasing.
 */
export function createIdGenerator(now: () => number, random: (bytes: Uint8Array) => void): () => string {
  let lastMs = -1;
  let tail = new Uint8Array(10);
  return () => {
    const ms = Math.max(now(), lastMs);
    if (ms === lastMs) {
      for (let i = tail.length - 1; i >= 0; i--) {
        tail[i] = (tail[i] + 1) & 31;
        if (tail[i] !== 0) break;
      }
    } else {
      lastMs = ms;
      tail = new Uint8Array(10);
      random(tail);
      for (let i = 0; i < tail.length; i++) tail[i] &= 31;
      tail[0] &= 15; // leaves room for the counter to grow without wrapping
    }
    let time = '';
    let t = ms;
    for (let i = 0; i < 10; i++) {
      time = CROCKFORD[t % 32] + time;
      t = Math.floor(t / 32);
    }
    let rest = '';
    for (const v of tail) rest += CROCKFORD[v];
    return time + rest;
  };
}
