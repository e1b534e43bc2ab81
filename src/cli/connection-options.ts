/**
 * @module Connection options shared by the commands that talk to one SMTP server (`send`,
 * `replay`): --server, --tls, --insecure, --tls-ca, --ehlo, --timeout and the AUTH flags.
 * Rule 1: parse* functions are pure; every mistake is a UsageError that names the flag.
 * Rule 2: read* functions do the I/O the options ask for (a CA file, a secret file, a password
 *         asked on the terminal) through what they are given, and fail with one-line InputErrors.
 */
import type { Command } from 'cac';
import { SASL_MECHANISMS, type ClientAuth, type SaslMechanism } from '../core/client-session.ts';
import { ClientFailure } from '../core/errors.ts';
import { parseHostPort } from '../transport/host-port.ts';
import type { ServerAddress, TlsMode, TlsSettings } from '../transport/tcp-client.ts';
import { EXIT, InputError, UsageError } from './exit-codes.ts';
import { createPrompter, type PromptInput } from './prompt.ts';
import { oneOf, single } from '../flag-values.ts';

export type TlsChoice = 'auto' | 'starttls' | 'implicit' | 'off';
export const TLS_CHOICES: readonly TlsChoice[] = ['auto', 'starttls', 'implicit', 'off'];

export type { ServerAddress } from '../transport/tcp-client.ts';

export interface AuthOptions {
  readonly user: string;
  readonly password: string | null;
  readonly passwordFile: string | null;
  readonly token: string | null;
  readonly tokenFile: string | null;
  readonly mechanism: SaslMechanism | null;
}

export const DEFAULT_SERVER = '127.0.0.1:1025';
export const DEFAULT_TIMEOUT_SECONDS = 30;

// DESIGN.md: smtp:// tries STARTTLS, smtp+starttls:// requires it, smtps:// is implicit TLS.
const SCHEMES: Record<string, { tls: TlsMode; port: number }> = {
  smtp: { tls: 'opportunistic', port: 25 },
  'smtp+starttls': { tls: 'starttls', port: 587 },
  smtps: { tls: 'implicit', port: 465 },
};
// RFC 8314 §3.3: port 465 is submission over implicit TLS.
const IMPLICIT_TLS_PORT = 465;

/**
 * "HOST:PORT", "[v6]:PORT", "HOST" (port 25) or an smtp://, smtp+starttls://, smtps:// URL.
 * `--tls auto` follows the scheme, else the port (465: implicit TLS), else STARTTLS when the
 * server offers it; the other choices override.
 */
export function parseServer(text: string, choice: TlsChoice = 'auto'): ServerAddress {
  const scheme = /^([a-z+]+):\/\/(.*?)\/?$/i.exec(text);
  const rest = scheme ? scheme[2] : text;
  const kind = scheme ? SCHEMES[scheme[1].toLowerCase()] : { tls: 'opportunistic' as const, port: 25 };
  if (!kind) throw new UsageError(`--server ${text}: the scheme must be smtp://, smtp+starttls:// or smtps://`);
  const parsed = parseHostPort(rest, { defaultPort: kind.port });
  if ('error' in parsed) {
    throw new UsageError(/port must/.test(parsed.error) ? `--server ${text}: the port must be 1-65535` : `--server ${text}: expected HOST:PORT or an smtp:// URL`);
  }
  const { host, port } = parsed;
  const auto: TlsMode = !scheme && port === IMPLICIT_TLS_PORT ? 'implicit' : kind.tls;
  return { host, port, tls: tlsMode(choice, auto) };
}

export function tlsMode(choice: TlsChoice, auto: TlsMode): TlsMode {
  switch (choice) {
    case 'auto':
      return auto;
    case 'starttls':
      return 'starttls';
    case 'implicit':
      return 'implicit';
    case 'off':
      return 'none';
    default:
      choice satisfies never;
      return auto;
  }
}

/**
 * The server a command talks to: --server, else $MAILBOX_SERVER, else the local `mailbox serve`,
 * which listens in clear on loopback (TLS there only when --tls asks for it).
 */
export function parseServerFlag(serverText: string | null, tls: TlsChoice, env: Record<string, string | undefined>): ServerAddress {
  if (serverText !== null) return parseServer(serverText, tls);
  if (env.MAILBOX_SERVER) return parseServer(env.MAILBOX_SERVER, tls);
  return parseServer(DEFAULT_SERVER, tls === 'auto' ? 'off' : tls);
}



export function parseTlsChoice(flags: Record<string, unknown>): TlsChoice {
  return oneOf(single(flags.tls, '--tls'), TLS_CHOICES, '--tls') ?? 'auto';
}

/** --timeout in seconds (default 30) → milliseconds. */
export function parseTimeout(flags: Record<string, unknown>): number {
  const text = single(flags.timeout, '--timeout');
  const seconds = text === null ? DEFAULT_TIMEOUT_SECONDS : Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout ${text}: expected a number of seconds`);
  return seconds * 1000;
}

/** --user with one of --password, --password-file, --token, --token-file, and --auth; null without --user. */
export function parseAuth(flags: Record<string, unknown>): AuthOptions | null {
  const user = single(flags.user, '--user');
  const password = single(flags.password, '--password');
  const passwordFile = single(flags.passwordFile, '--password-file');
  const token = single(flags.token, '--token');
  const tokenFile = single(flags.tokenFile, '--token-file');
  const mechanism = oneOf(single(flags.auth, '--auth'), SASL_MECHANISMS, '--auth');
  const secrets = [password, passwordFile, token, tokenFile].filter((s) => s !== null).length;
  if (user === null) {
    if (secrets > 0 || mechanism !== null) throw new UsageError('--password, --token and --auth need --user');
    return null;
  }
  if (secrets > 1) throw new UsageError('give one of --password, --password-file, --token, --token-file');
  return { user, password, passwordFile, token, tokenFile, mechanism };
}

/** The flags addConnectionOptions registers, as a command reads them. */
export interface ConnectionFlags {
  readonly tls: TlsChoice;
  readonly insecure: boolean;
  readonly tlsCa: string | null;
  readonly ehloName: string | null;
  readonly timeoutMs: number;
  readonly auth: AuthOptions | null;
}

export function parseConnectionFlags(flags: Record<string, unknown>): ConnectionFlags {
  return {
    timeoutMs: parseTimeout(flags),
    tls: parseTlsChoice(flags),
    insecure: flags.insecure === true,
    tlsCa: single(flags.tlsCa, '--tls-ca'),
    ehloName: single(flags.ehlo, '--ehlo'),
    auth: parseAuth(flags),
  };
}

/** Registers the TLS, EHLO, timeout and AUTH flags on a command (--server is the command's own). */
export function addConnectionOptions(command: Command): Command {
  return command
    .option('--tls <mode>', 'auto (by scheme and port; STARTTLS when offered), starttls, implicit or off')
    .option('--insecure', 'Do not verify the server certificate')
    .option('--tls-ca <file>', 'Trust the CA certificates (PEM) in FILE')
    .option('--ehlo <name>', 'Name to give in EHLO (default: this host name)')
    .option('--timeout <seconds>', `Connect timeout and longest wait for each reply (default ${DEFAULT_TIMEOUT_SECONDS})`)
    .option('--user <name>', 'AUTH as this user')
    .option('--password <secret>', 'AUTH password (visible to other users in ps: prefer --password-file or the prompt)')
    .option('--password-file <file>', 'Read the AUTH password from the first line of FILE')
    .option('--token <token>', 'OAuth 2.0 bearer token for XOAUTH2/OAUTHBEARER')
    .option('--token-file <file>', 'Read the bearer token from the first line of FILE')
    .option('--auth <mechanism>', 'PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER (default: the best offered)');
}

/** What the read* functions may touch. */
export interface ConnectionIo {
  readonly readFile: (path: string) => Promise<Uint8Array>;
  /** Asked for a password when no flag gives one, if it is a terminal. */
  readonly stdin: { readonly isTTY?: boolean } & Partial<PromptInput>;
  readonly stderr: { write(text: string): unknown };
}

async function readInputFile(io: ConnectionIo, path: string, flag: string): Promise<Uint8Array> {
  try {
    return await io.readFile(path);
  } catch (error) {
    const why = (error as { code?: string }).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new InputError(`${flag} ${path}: ${why}`, EXIT.noInput);
  }
}

function firstLine(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).split(/\r?\n/)[0];
}

/** Certificate checks: on unless --insecure, with the CAs of --tls-ca added. */
export async function readTlsSettings(options: { readonly insecure: boolean; readonly tlsCa: string | null }, io: ConnectionIo): Promise<TlsSettings> {
  const ca = options.tlsCa === null ? undefined : new TextDecoder().decode(await readInputFile(io, options.tlsCa, '--tls-ca'));
  return { rejectUnauthorized: !options.insecure, ca };
}

/** The credentials for AUTH: a flag, a file, or a question on the terminal. */
export async function readClientAuth(
  auth: AuthOptions | null,
  context: { readonly tls: TlsChoice; readonly server: ServerAddress | null },
  io: ConnectionIo,
): Promise<ClientAuth | undefined> {
  if (auth === null) return undefined;
  let secret: string | null = auth.password ?? auth.token;
  let secretKind: 'password' | 'token' = auth.token !== null || auth.tokenFile !== null ? 'token' : 'password';
  if (auth.passwordFile !== null) secret = firstLine(await readInputFile(io, auth.passwordFile, '--password-file'));
  if (auth.tokenFile !== null) secret = firstLine(await readInputFile(io, auth.tokenFile, '--token-file'));
  if (secret === null) {
    const stdin = io.stdin;
    if (!stdin.isTTY || stdin.on === undefined || stdin.off === undefined || stdin.resume === undefined || stdin.pause === undefined) {
      throw new UsageError(`no password for --user ${auth.user}: give --password-file FILE (or --password), or run on a terminal to be asked`);
    }
    const prompter = createPrompter(stdin as PromptInput, io.stderr);
    try {
      secret = await prompter.askSecret(`Password for ${auth.user}: `);
    } finally {
      prompter.close();
    }
    if (secret === null) throw new UsageError('no password given');
    secretKind = 'password';
  }
  return {
    username: auth.user,
    secret,
    secretKind,
    mechanism: auth.mechanism ?? undefined,
    // With --tls off the user chose a connection without TLS, credentials included.
    allowCleartext: context.tls === 'off',
    host: context.server?.host,
    port: context.server?.port,
  };
}

const LOOPBACK = /^(?:127\.\d+\.\d+\.\d+|::1|localhost)$/i;

/**
 * Certificates are verified, with one exception: STARTTLS taken opportunistically (`--tls auto`
 * on a plain smtp:// or HOST:PORT) from a server on this machine, such as a local `mailbox
 * serve` with its self-signed certificate: no traffic leaves the host, and plain SMTP would
 * have been accepted anyway. `--tls-ca` or an explicit TLS mode restores verification. A hint
 * for a server the user names only: mail hosts follow the MX policy (delivery/mx-policy.ts).
 */
export function tlsSettingsFor(server: ServerAddress, settings: TlsSettings): TlsSettings {
  if (server.tls === 'opportunistic' && LOOPBACK.test(server.host) && settings.ca === undefined) return { ...settings, rejectUnauthorized: false };
  return settings;
}

const CERTIFICATE = /certificate|self[- ]signed|issuer|CERT_|altname|hostname\/IP/i;
const NOT_TLS = /wrong version|packet length|unknown protocol|record layer|EPROTO|ECONNRESET|socket hang up|closed|handshake/i;

/**
 * Adds what to do to failures whose cause users most often get wrong: a TLS mode that does not
 * fit the port, and certificates that cannot be verified.
 */
export function explainFailure(failure: ClientFailure, port: number, tls: TlsMode): ClientFailure {
  let hint = '';
  if (failure.kind === 'tls' && CERTIFICATE.test(failure.message)) {
    hint = 'to trust this certificate give --tls-ca FILE, or skip the check with --insecure';
  } else if (failure.kind === 'tls' && failure.stage === 'connect' && NOT_TLS.test(failure.message)) {
    hint = `the server on port ${port} does not seem to speak TLS from the first byte: try --tls starttls, or --tls off`;
  } else if (failure.kind === 'tls' && failure.stage === 'starttls' && failure.reply === undefined && /does not offer STARTTLS/.test(failure.message)) {
    hint = 'use --tls implicit if this port expects TLS from the first byte (usually 465), or --tls off to send in clear';
  } else if (failure.kind === 'connect' && failure.stage === 'greeting' && failure.reply === undefined && tls !== 'implicit') {
    hint = `if port ${port} expects TLS from the first byte (usually 465), use --tls implicit`;
  } else if (failure.kind === 'connect' && failure.stage === 'connect' && tls === 'implicit' && /no answer within/.test(failure.message)) {
    hint = `if port ${port} speaks plain SMTP, use --tls starttls or --tls off`;
  }
  if (hint === '') return failure;
  return failure.withMessage(`${failure.message}; ${hint}`);
}
