/**
 * @module `mailbox reindex`: builds the mail index (DATA_DIR/index.db) again from the spool and
 * the journal, as serve does by itself when the file is missing or stale. It takes the spool's
 * lock, so it refuses to run beside a serve on the same data directory.
 * Rule: the rebuild runs in the index's Worker while this thread reads the spool; a terminal
 *       sees a progress line, anything else one summary line at the end.
 */
import type { CAC } from 'cac';
import { EXIT, SetupError } from '../cli/exit-codes.ts';
import { ProgressLine, formatProgressLine } from '../cli/progress.ts';
import { colorsFor, paintSuccess } from '../cli/render.ts';
import { defaultDataDir } from '../config.ts';
import { createLayout } from '../spool/layout.ts';
import { SpoolLockedError } from '../spool/lock.ts';
import { openSpool } from '../spool/spool.ts';
import { MailIndex } from '../store/mail-index.ts';

export interface ReindexDeps {
  readonly env: Record<string, string | undefined>;
  readonly now: () => number;
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean };
  readonly stderr: { write(text: string): unknown; readonly isTTY?: boolean };
}

export function register(cli: CAC, deps: ReindexDeps): void {
  cli
    .command('reindex', 'Rebuild the mail index (DATA_DIR/index.db) from the spool and the journal; stop serve first')
    .option('--data <dir>', 'Data directory whose index to rebuild (default as for serve)')
    .example('mailbox reindex --data /var/lib/mailbox')
    .action(async (options: { data?: string }) => {
      await runReindex(options.data ?? defaultDataDir(deps.env), deps);
    });
}

export async function runReindex(dataDir: string, deps: ReindexDeps): Promise<void> {
  const warnings: string[] = [];
  const log = { info() {}, warn: (msg: string) => void warnings.push(msg), error: (msg: string) => void warnings.push(msg) };
  const spool = await openSpool({ dir: dataDir, hostname: 'reindex', now: deps.now, log, holder: 'reindex' }).catch((error: unknown) => {
    if (error instanceof SpoolLockedError) throw new SetupError(`${error.message}; stop serve, then run reindex again`, EXIT.tempFail);
    throw error;
  });
  const progress = new ProgressLine(deps.stderr, deps.env, deps.now);
  const paint = colorsFor(deps.stderr, deps.env);
  const total = Math.max(1, spool.stats().messages);
  const started = deps.now();
  let indexed = 0;
  try {
    const index = await MailIndex.open({
      path: createLayout(dataDir).indexPath,
      spool,
      log,
      writer: 'worker',
      rebuild: true,
      progress: (done) => {
        indexed = done;
        progress.update(() => formatProgressLine(paint, { done, fraction: done / total, elapsedMs: deps.now() - started, errors: 0 }, 'msg'));
      },
    });
    await index.ready;
    const stats = index.db.stats();
    await index.close();
    progress.clear();
    const seconds = ((deps.now() - started) / 1000).toFixed(1);
    deps.stdout.write(`${paintSuccess(colorsFor(deps.stdout, deps.env), 'reindexed')} ${stats.total.toLocaleString('en-US')} messages (${stats.unread.toLocaleString('en-US')} unread) in ${seconds} s: ${createLayout(dataDir).indexPath}\n`);
    if (indexed !== stats.total) warnings.push(`indexed ${indexed} messages but the index holds ${stats.total}`);
  } finally {
    progress.clear();
    await spool.close();
  }
  for (const w of warnings) deps.stderr.write(`reindex: ${w}\n`);
}
