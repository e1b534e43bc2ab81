/**
 * @module Where a Worker file is started from, in a compiled binary and from source.
 * Rule: a Worker is started by a path string, never new URL(…, import.meta.url), which a
 * --bytecode binary bakes to the build machine's path (BUN.md, Workers in a --compile binary).
 * Compiled, a relative path resolves in the bundle's root, the common folder of every file
 * compiled in; scripts/build.ts defines MAILBOX_SRC as src/ seen from there ("./src").
 */
import { join } from 'node:path';

declare const MAILBOX_SRC: string | undefined;

/** The path to start the Worker at `fromSrc` (e.g. "store/index-worker.ts", which scripts/build.ts lists). */
export function workerPath(fromSrc: string): string {
  return typeof MAILBOX_SRC === 'string' ? `${MAILBOX_SRC}/${fromSrc}` : join(import.meta.dir, fromSrc);
}
