/**
 * @module `mailbox users add|remove|list`: edits the users file that `mailbox serve` checks AUTH
 * against (format in src/auth/users.ts). Passwords are hashed with Bun.password (argon2id).
 * Rule: the file is --users FILE, else <data>/users, the file serve reads by default.
 */
import type { CAC } from 'cac';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SetupError, UsageError } from '../cli/exit-codes.ts';
import { isInteractive, readSecret, type PromptIo } from '../cli/prompt.ts';
import { colorsFor, paintSuccess } from '../cli/render.ts';
import { defaultDataDir } from '../config.ts';
import { checkUserName, readUsers, writeUsers } from '../auth/users.ts';

export interface UsersDeps extends PromptIo {
  readonly env: Record<string, string | undefined>;
  readonly stdout: { write(text: string): unknown; readonly isTTY?: boolean };
  readonly hash?: (password: string) => Promise<string>;
}

export function register(cli: CAC, deps: UsersDeps): void {
  cli
    .command('users <action> [name]', 'Manage the users allowed to AUTH to serve: add NAME, remove NAME, list')
    .option('--users <file>', 'The users file (default <data>/users)')
    .option('--data <dir>', 'Data directory whose users file to edit (default as for serve)')
    .example('mailbox users add alice            # asks for the password twice, without echo')
    .example('echo "$PASSWORD" | mailbox users add alice --users /etc/mailbox/users')
    .example('mailbox users list')
    .action(async (action: string, name: string | undefined, options: { users?: string; data?: string }) => {
      const file = options.users ?? join(options.data ?? defaultDataDir(deps.env), 'users');
      await runUsers(action, name, file, deps);
    });
}

export async function runUsers(action: string, name: string | undefined, file: string, deps: UsersDeps): Promise<void> {
  const paint = colorsFor(deps.stdout, deps.env);
  if (action === 'list') {
    for (const user of readUsers(file, true).keys()) deps.stdout.write(`${user}\n`);
    return;
  }
  if (action !== 'add' && action !== 'remove') throw new UsageError(`users: unknown action "${action}" (add, remove or list)`);
  if (name === undefined) throw new UsageError(`users ${action}: give the user name`);
  const why = checkUserName(name);
  if (why) throw new UsageError(`users ${action}: ${why}`);
  const users = readUsers(file, true);
  if (action === 'remove') {
    if (!users.delete(name)) throw new SetupError(`${name} is not in ${file}`);
    writeUsers(file, users);
    deps.stdout.write(`${paintSuccess(paint, `removed ${name}`)} from ${file}\n`);
    return;
  }
  const password = await readSecret(deps, `Password for ${name}: `);
  if (isInteractive(deps) && (await readSecret(deps, 'Again: ')) !== password) throw new UsageError('the two passwords differ; nothing changed');
  if (password === '') throw new UsageError('the password is empty; nothing changed');
  const existed = users.has(name);
  users.set(name, { hash: await (deps.hash ?? ((p: string) => Bun.password.hash(p)))(password), addresses: users.get(name)?.addresses ?? [] });
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new SetupError(`cannot create ${dirname(file)}: ${(error as Error).message}`);
  }
  writeUsers(file, users);
  deps.stdout.write(`${paintSuccess(paint, existed ? `updated the password of ${name}` : `added ${name}`)} in ${file}\n`);
}
