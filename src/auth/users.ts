/**
 * @module The users file (--users FILE): who may AUTH, with a password hash per user.
 * Rule 1: one user per line, "name:hash", where hash is what Bun.password.hash writes (argon2id
 *         in PHC format, "$argon2id$v=19$m=65536,t=2,p=1$salt$hash"; bcrypt "$2b$…" is read too).
 *         Blank lines and lines starting with "#" are ignored. Passwords are never stored.
 * Rule 2: the file is replaced atomically (temporary file, fsync, rename) and kept mode 0600.
 * Rule 3: a name stands for the addresses whose mail it reads (IMAP, POP3, HTTP): a name that is
 *         an address reads that address; a bare name reads name@each local domain (--domain), or
 *         the bare name as a recipient in catch-all mode; and a line may list more addresses
 *         after the hash, separated by spaces. Addresses match without regard to case.
 *
 *     # /etc/mailbox/users
 *     alice:$argon2id$v=19$m=65536,t=2,p=1$...$...
 *     team:$argon2id$v=19$m=65536,t=2,p=1$...$... sales@example.com support@example.com
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, chmodSync } from 'node:fs';
import { SetupError } from '../exit-status.ts';

/** One line of the users file. */
export interface UserEntry {
  readonly hash: string;
  /** The addresses the line lists after the hash (Rule 3), as written. */
  readonly addresses: readonly string[];
}

/** name → entry, in file order. */
export type UserTable = ReadonlyMap<string, UserEntry>;

const HASH = /^\$(argon2id|argon2i|argon2d|2[aby])\$[A-Za-z0-9$.,=/+-]+$/;

// Octets, not characters: the spool keeps the name percent-encoded in a record's NOOP line, whose
// auth field holds 1024 characters, three per octet at worst (segment-format.ts).
const MAX_USER_NAME_OCTETS = 255;
const ADDRESS = /^[^\s@<>]+@[^\s@<>]+$/;
const ENCODER = new TextEncoder();

/** Why `name` cannot be a user name, or null. Names are what clients send as the AUTH identity. */
export function checkUserName(name: string): string | null {
  if (name.length === 0) return 'a user name cannot be empty';
  if (ENCODER.encode(name).length > MAX_USER_NAME_OCTETS) return `a user name is at most ${MAX_USER_NAME_OCTETS} octets of UTF-8`;
  if (name.includes(':')) return 'a user name cannot contain ":"';
  if (/[\s\x00-\x1f\x7f]/.test(name)) return 'a user name cannot contain spaces or control characters';
  return null;
}

/** Parses the users file; a bad line is a SetupError naming the line. */
export function parseUsers(text: string, path: string): Map<string, UserEntry> {
  const users = new Map<string, UserEntry>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${path}:${index + 1}`;
    const colon = line.indexOf(':');
    if (colon < 0) throw new SetupError(`${where}: expected "name:hash"`);
    const name = line.slice(0, colon);
    const [hash = '', ...addresses] = line.slice(colon + 1).split(/[ \t]+/);
    const why = checkUserName(name);
    if (why) throw new SetupError(`${where}: ${why}`);
    const bad = addresses.find((a) => !ADDRESS.test(a));
    if (bad !== undefined) throw new SetupError(`${where}: "${bad}" is not an address (local@domain)`);
    if (!HASH.test(hash)) throw new SetupError(`${where}: the hash of ${name} is not an argon2 or bcrypt hash (write it with "mailbox users add")`);
    if (users.has(name)) throw new SetupError(`${where}: ${name} is listed twice`);
    users.set(name, Object.freeze({ hash, addresses: Object.freeze(addresses) }));
  });
  return users;
}

/** Reads and parses the users file; `missingOk` turns a missing file into an empty table. */
export function readUsers(path: string, missingOk = false): Map<string, UserEntry> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT' && missingOk) return new Map();
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new SetupError(`--users: cannot read ${path}: ${why}`);
  }
  return parseUsers(text, path);
}

export function formatUsers(users: UserTable): string {
  let out = '# mailbox users: name:hash (Bun.password, argon2id); edit with "mailbox users add|remove"\n';
  for (const [name, { hash, addresses }] of users) out += `${[`${name}:${hash}`, ...addresses].join(' ')}\n`;
  return out;
}

/** Replaces the users file atomically, mode 0600. */
export function writeUsers(path: string, users: UserTable): void {
  const tmp = `${path}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, formatUsers(users));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (error) {
    throw new SetupError(`cannot write ${path}: ${(error as Error).message}`);
  }
}

/** An address or a login as the readers key it: an address lower-cased, without <>; a bare name as given. */
export function loginKey(name: string): string {
  const bare = name.trim().replace(/^<(.*)>$/, '$1');
  return bare.includes('@') ? bare.toLowerCase() : bare;
}

/**
 * Rule 3: the addresses (keyed by loginKey) whose mail `name` reads. `domains` are the local
 * domains (--domain), null in catch-all mode; `entry` is the name's line, when it has one.
 */
export function addressesOf(name: string, entry: UserEntry | undefined, domains: readonly string[] | null): string[] {
  const key = loginKey(name);
  const own = key.includes('@') || domains === null || domains.length === 0 ? [key] : domains.map((d) => `${key}@${d}`.toLowerCase());
  return [...new Set([...own, ...(entry?.addresses ?? []).map(loginKey)])];
}

/** Who reads what: the logins' addresses and, the other way, the logins that read an address. */
export class LoginDirectory {
  readonly #users: UserTable | null;
  readonly #domains: readonly string[] | null;
  /** Catch-all logins: any address logs in as itself, so it reads its own mail. */
  readonly #anyAddress: boolean;
  readonly #readers = new Map<string, string[]>();

  constructor(users: UserTable | null, domains: readonly string[] | null, anyAddress: boolean) {
    this.#users = users;
    this.#domains = domains;
    this.#anyAddress = anyAddress;
    for (const [name, entry] of users ?? []) {
      for (const address of addressesOf(name, entry, domains)) {
        const list = this.#readers.get(address) ?? [];
        list.push(loginKey(name));
        this.#readers.set(address, list);
      }
    }
  }

  /** The addresses the login `name` reads. */
  addressesOf(name: string): string[] {
    return addressesOf(name, this.#users?.get(name) ?? this.#users?.get(loginKey(name)), this.#domains);
  }

  /** The logins (keyed by loginKey) that read `address`. */
  readersOf(address: string): string[] {
    const key = loginKey(address);
    const named = this.#readers.get(key) ?? [];
    return this.#anyAddress && !named.includes(key) ? [key, ...named] : named;
  }
}
