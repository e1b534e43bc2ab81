/**
 * @module `mailbox replay`: flags → ReplayOptions (src/replay/options.ts) → src/replay/run.ts.
 * Spool segments, message files, mbox files and Maildirs → concurrent client sessions → a line
 * per transaction, a summary, an exit code.
 * Rule: no protocol logic here; main.ts turns a thrown error into one line and a sysexits code.
 */
import type { CAC } from 'cac';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { addConnectionOptions, DEFAULT_SERVER } from '../cli/connection-options.ts';
import { createIdGenerator } from '../ids.ts';
import { parseReplayFlags } from './replay/options.ts';
import { runReplayCommand, type ReplayDeps } from './replay/run.ts';

export type { ReplayDeps } from './replay/run.ts';
export type { ReplayOptions } from './replay/options.ts';
export { parseRate, parseReplayFlags } from './replay/options.ts';
export { runReplayCommand } from './replay/run.ts';

/** The real world: process streams, the clock, the host name, files. */
export function systemDeps(env: Record<string, string | undefined>, now: () => number): ReplayDeps {
  return {
    env,
    now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    hostname,
    newId: createIdGenerator(now),
    readFile: async (path) => new Uint8Array(await readFile(path)),
  };
}

export function register(cli: CAC, deps: ReplayDeps): void {
  const command = cli
    .command('replay [...paths]', 'Send recorded mail again: spool segments, .eml files, mbox files or Maildirs, to any server')
    .option('--data <dir>', 'Replay from this spool (data directory); with --id only those messages')
    .option('--id <id>', 'A message id in the spool of --data; repeat or comma-separate', { type: [String] })
    .option('--server <url>', `smtp://, smtp+starttls://, smtps://HOST[:PORT] or HOST:PORT (default $MAILBOX_SERVER or ${DEFAULT_SERVER})`);
  addConnectionOptions(command)
    .option('--no-chunking', 'Use DATA even when the server offers CHUNKING (BDAT)')
    .option('--from <address>', 'Send every message from this sender instead of the recorded one ("<>": the null sender)')
    .option('--to <address>', 'Send every message to these recipients instead of the recorded ones; repeat or comma-separate', { type: [String] })
    .option('--rewrite-domain <map>', 'OLD=NEW: change the domain of recorded senders and recipients; repeat for several', { type: [String] })
    .option('--filter <rule>', 'to=PATTERN, from=PATTERN, id=PATTERN, since=DATE, until=DATE (* and ? match; to= keeps only matching recipients); repeat: same key OR, different keys AND', { type: [String] })
    .option('-c, --concurrency <n>', 'Connections at once (default 1: in order)')
    .option('--rate <n>', 'At most N transactions per second in all (N, N/s, N/m, N/h)')
    .option('--expect <code>', 'Exit 1 unless every reply (RCPT and end of data) has this code: 250, 2xx, 550…')
    .option('--failed-out <file>', 'Write the transactions that did not reach every recipient to FILE (new), a spool file to replay later')
    .option('-v, --verbose', 'One line per transaction with the server\'s final reply')
    .option('--transcript <file>', 'Write the whole SMTP dialogue of every connection to FILE (secrets shown as <redacted>)')
    .option('--json', 'One JSON object per line: each transaction, each damaged input, then the summary')
    .example('mailbox replay ~/.local/share/mailbox/segments/00000001.smtp --server 127.0.0.1:2525')
    .example('mailbox replay --data /var/spool/mailbox --id 0mwyc6evs0034yh8 --server smtp://staging.example.net --to qa@example.net')
    .example('mailbox replay archive.mbox --server 127.0.0.1:2525 -c 10 --expect 250 --failed-out retry.smtp')
    .action(async (paths: string[], flags: Record<string, unknown>): Promise<number> => runReplayCommand(parseReplayFlags(paths, flags, deps.env), deps));
}
