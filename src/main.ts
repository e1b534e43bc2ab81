/**
 * @module The mailbox command line: builds the cac CLI, registers every command, and is the one
 * place that exits. Errors become one line and a sysexits code (cli/exit-codes.ts).
 */
import { cac } from 'cac';
import packageJson from '../package.json' with { type: 'json' };
import { EXIT, UsageError, describeError, exitCodeFor } from './cli/exit-codes.ts';
import { colorsFor, paintError } from './cli/render.ts';
import { versionLine } from './cli/version.ts';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import * as queue from './commands/queue.ts';
import * as reindex from './commands/reindex.ts';
import * as replay from './commands/replay.ts';
import * as send from './commands/send.ts';
import * as serve from './commands/serve.ts';
import * as verify from './commands/verify.ts';
import * as users from './commands/users.ts';
import { createIdGenerator } from './ids.ts';
import { normalizeSendmailArgs } from './commands/send/options.ts';

/**
 * The first SIGTERM or SIGINT asks for a graceful stop; a second one asks to stop now. Both
 * handlers stay installed, so a repeated signal never kills the process mid-write.
 */
function stopSignals(): { stop: Promise<string>; urgent: Promise<string>; onHangup(handler: () => void): void } {
  let count = 0;
  let resolveStop!: (signal: string) => void;
  let resolveUrgent!: (signal: string) => void;
  const stop = new Promise<string>((resolve) => (resolveStop = resolve));
  const urgent = new Promise<string>((resolve) => (resolveUrgent = resolve));
  const onSignal = (signal: string) => () => {
    count++;
    if (count === 1) resolveStop(signal);
    else resolveUrgent(signal);
  };
  process.on('SIGTERM', onSignal('SIGTERM'));
  process.on('SIGINT', onSignal('SIGINT'));
  return {
    stop,
    urgent,
    onHangup(handler) {
      process.on('SIGHUP', handler);
    },
  };
}

/**
 * Invoked through a link named `sendmail` (as cron, PHP's mail() and git send-email call it), the
 * binary is `mailbox send --sendmail`, with sendmail's spellings of its options (Mailpit does the
 * same with argv[0]); `mailbox send` accepts those spellings too.
 */
function commandLine(argv: readonly string[], invokedAs: string): string[] {
  const [runtime, script, ...rest] = argv;
  if (basename(invokedAs) === 'sendmail') return [runtime, script, 'send', '--sendmail', ...normalizeSendmailArgs(rest)];
  if (rest[0] === 'send') return [runtime, script, 'send', ...normalizeSendmailArgs(rest.slice(1))];
  return [...argv];
}

async function main(argv: string[]): Promise<number> {
  const env = process.env;
  const now = () => Date.now();
  const cli = cac('mailbox');
  serve.register(cli, { env, now, signals: stopSignals });
  send.register(cli, { now, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, hostname, newId: createIdGenerator(now), env });
  users.register(cli, { env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
  verify.register(cli, verify.systemDeps(env, now));
  replay.register(cli, replay.systemDeps(env, now));
  reindex.register(cli, { env, now, stdout: process.stdout, stderr: process.stderr });
  queue.register(cli, { env, now, stdout: process.stdout, stderr: process.stderr });
  cli.help();
  // cac would print `mailbox/0.1.0 linux-x64 bun-v26.3.0` (a Node version), which cannot tell a
  // baseline or musl build from the default one: keep its -v/--version flag and help header, and
  // print versionLine() instead.
  cli.version(packageJson.version);
  cli.showVersionOnExit = false;

  cli.parse(argv, { run: false });
  const parsed = cli.matchedCommand;
  if (!parsed) {
    if (cli.options.help) return EXIT.ok;
    if (cli.options.version) {
      process.stdout.write(`${versionLine()}\n`);
      return EXIT.ok;
    }
    const word = cli.args[0];
    if (word === undefined) {
      cli.outputHelp();
      return EXIT.usage;
    }
    throw new UsageError(`unknown command "${word}"`);
  }
  if (cli.options.help) return EXIT.ok;
  // A command may return its exit code (verify: 1 when not every address passed, as grep).
  const code: unknown = await cli.runMatchedCommand();
  return typeof code === 'number' ? code : EXIT.ok;
}

// No top-level await: scripts/build.ts compiles with --bytecode, which needs a module without it
// (measured: `send --dry-run` starts in 17 ms with bytecode, 38 ms without).
main(commandLine(process.argv, process.argv0)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const usage = error instanceof Error && error.name === 'CACError' ? new UsageError(error.message) : error;
    process.stderr.write(`${paintError(colorsFor(process.stderr, process.env), describeError(usage))}\n`);
    process.exit(exitCodeFor(usage));
  },
);
