/**
 * @module Spool directory layout, and what a message id may contain.
 * Rule 1: this is the only file that builds spool paths; every other module asks it.
 * Rule 2: segment names are zero-padded sequence numbers, so `ls` lists them in write order.
 * Rule 3: ids come from src/ids.ts; the spool only checks that one is safe in a NOOP line and
 *         in a file name.
 */
import * as path from 'node:path';

/** Ids travel inside the NOOP line and in file names: a conservative, shell-safe alphabet. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** The spool holds people's mail: only its owner may read it (as Postfix keeps its queue). */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

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
  /** The index checkpoint log (checkpoint.ts), and the name a rewrite of it is made under. */
  readonly checkpointPath: string;
  readonly checkpointTmpPath: string;
  /** The mail index (src/store), derived from the spool and the journal and rebuilt from them. */
  readonly indexPath: string;
  segmentName(seq: number): string;
  segmentPath(seq: number): string;
  /** The temporary name a compacted segment is written under before its rename. */
  segmentTmpPath(seq: number): string;
  /**
   * Where the bytes of a damaged record go, named by their source file and offset; `n` > 0
   * tells apart different bytes found at the same place (the journal's offsets restart after
   * each snapshot). The reason file is this path plus ".reason".
   */
  quarantinePath(sourceName: string, offset: number, n?: number): string;
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
    checkpointPath: path.join(journalDir, 'index.ckpt'),
    checkpointTmpPath: path.join(journalDir, 'index.ckpt.tmp'),
    indexPath: path.join(root, 'index.db'),
    segmentName,
    segmentPath: (seq: number) => path.join(segmentsDir, segmentName(seq)),
    segmentTmpPath: (seq: number) => path.join(segmentsDir, `${segmentName(seq)}.tmp`),
    quarantinePath: (sourceName: string, offset: number, n = 0) =>
      path.join(quarantineDir, `${sourceName}@${offset}${n > 0 ? `.${n}` : ''}`),
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
