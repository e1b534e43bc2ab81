/**
 * @module `mailbox queue`: look at and act on serve's relay queue: list, show, retry, hold,
 * release, delete, bounce. It reads serve's --config and --data, asks the running serve over its
 * control socket, and works on the spool itself (under its lock) when serve is stopped.
 */
import type { CAC } from 'cac';
import { EXIT, InputError, UsageError, type ExitCode } from '../cli/exit-codes.ts';
import { formatActionSummary, formatLocalList, formatQueueList, formatShow } from '../cli/queue-render.ts';
import { colorsFor } from '../cli/render.ts';
import { buildServeConfig } from '../config.ts';
import { QUEUE_ACTIONS, type ActionSummary, type LocalEntry, type QueueAction, type QueueEntry } from '../queue/queue-admin.ts';
import { queueRequest } from '../queue/queue-access.ts';

export interface QueueDeps {
  readonly env: Record<string, string | undefined>;
  readonly now: () => number;
  readonly stdout: { write(text: string | Uint8Array): unknown; readonly isTTY?: boolean };
  readonly stderr: { write(text: string): unknown; readonly isTTY?: boolean };
}

interface QueueFlags {
  data?: string;
  config?: string;
  json?: boolean;
  local?: boolean;
  to?: string;
  raw?: boolean;
  domain?: string;
  all?: boolean;
}

const COMMANDS = ['list', 'show', ...QUEUE_ACTIONS] as const;

export function register(cli: CAC, deps: QueueDeps): void {
  cli
    .command('queue <command> [...ids]', `Look at and act on serve's relay queue: ${COMMANDS.join(', ')} (running or stopped serve)`)
    .option('--data <dir>', 'The data directory of the serve whose queue this is (default as for serve, or the config file\'s)')
    .option('--config <file>', "serve's config file: its data directory, host name, local domains and bounce settings")
    .option('--json', 'list, show and the actions: print the answer as JSON')
    .option('--local', 'list: the mail kept in local mailboxes (bounces to local senders, postmaster, cron mail) instead of the relay queue')
    .option('--to <address>', 'list --local: only the mail of this mailbox')
    .option('--raw', 'show: print the stored message itself (as it would be relayed)')
    .option('--domain <domain>', 'retry, hold, release: every queued message with a recipient in this domain')
    .option('--all', 'retry, hold, release, delete, bounce: every queued message')
    .example('mailbox queue list --config /etc/mailbox.conf')
    .example('mailbox queue list --local --to postmaster@mx.example.org')
    .example('mailbox queue show mhx3k2a9c00q4f7z')
    .example('mailbox queue retry --all')
    .example('mailbox queue hold --domain example.net')
    .example('mailbox queue bounce mhx3k2a9c00q4f7z')
    .action(async (command: string, ids: string[], flags: QueueFlags): Promise<number> => runQueue(command, ids, flags, deps));
}

function requestFor(command: string, ids: readonly string[], flags: QueueFlags): Record<string, unknown> {
  const onlyFor = (flag: keyof QueueFlags, name: string, allowed: readonly string[]) => {
    if (flags[flag] !== undefined && flags[flag] !== false && !allowed.includes(command)) throw new UsageError(`--${name} is for ${allowed.join(', ')}, not ${command}`);
  };
  onlyFor('local', 'local', ['list']);
  onlyFor('to', 'to', ['list']);
  onlyFor('raw', 'raw', ['show']);
  onlyFor('domain', 'domain', ['retry', 'hold', 'release']);
  onlyFor('all', 'all', QUEUE_ACTIONS);
  if (flags.to !== undefined && !flags.local) throw new UsageError('--to is for list --local');
  switch (command) {
    case 'list':
      if (ids.length > 0) throw new UsageError('list takes no ids (show ID shows one message)');
      return flags.local ? { op: 'list-local', ...(flags.to !== undefined ? { to: String(flags.to) } : {}) } : { op: 'list' };
    case 'show':
      if (ids.length !== 1) throw new UsageError('show takes one message id');
      return { op: 'show', id: String(ids[0]) };
    default: {
      if (!(QUEUE_ACTIONS as readonly string[]).includes(command)) throw new UsageError(`unknown queue command "${command}" (${COMMANDS.join(', ')})`);
      const given = [ids.length > 0, flags.domain !== undefined, flags.all === true].filter(Boolean).length;
      if (given !== 1) throw new UsageError(`${command} needs message ids, --domain DOMAIN or --all (one of them)`);
      return { op: command as QueueAction, ...(ids.length > 0 ? { ids: ids.map(String) } : {}), ...(flags.domain !== undefined ? { domain: String(flags.domain) } : {}), ...(flags.all ? { all: true } : {}) };
    }
  }
}

export async function runQueue(command: string, ids: readonly string[], flags: QueueFlags, deps: QueueDeps): Promise<number> {
  const request = requestFor(command, ids, flags);
  const config = buildServeConfig({ config: flags.config, data: flags.data, starttls: true }, deps.env);
  const { response } = await queueRequest(config, request, { holder: 'queue', env: deps.env, now: deps.now });
  if (!response.ok) throw new InputError(response.error, response.exit as ExitCode);
  const paint = colorsFor(deps.stdout, deps.env);
  const now = deps.now();
  if (request.op === 'show') {
    const shown = response.result as { entry: QueueEntry; message: string };
    const bytes = Buffer.from(shown.message, 'base64');
    if (flags.raw) deps.stdout.write(bytes);
    else if (flags.json) deps.stdout.write(`${JSON.stringify(shown.entry, null, 2)}\n`);
    else deps.stdout.write(formatShow(paint, shown.entry, bytes, now));
    return EXIT.ok;
  }
  if (flags.json) {
    deps.stdout.write(`${JSON.stringify(response.result, null, 2)}\n`);
  } else if (request.op === 'list') {
    deps.stdout.write(formatQueueList(paint, response.result as QueueEntry[], now));
  } else if (request.op === 'list-local') {
    deps.stdout.write(formatLocalList(paint, response.result as LocalEntry[], now));
  }
  if (request.op === 'list' || request.op === 'list-local') return EXIT.ok;
  const summary = response.result as ActionSummary;
  const { stdout, missing } = formatActionSummary(summary);
  if (!flags.json) deps.stdout.write(stdout);
  for (const id of missing) deps.stderr.write(`mailbox queue: no message ${id} in the queue\n`);
  // As grep and verify: 1 when some named message was not there.
  return missing.length > 0 ? EXIT.notAll : EXIT.ok;
}
