/**
 * @module `mailbox send`: flags and stdin → an RFC 5322 message → one client session over
 * tcp-client; `-v` prints the SMTP dialogue to standard error as it happens.
 * Rule: no protocol logic here. Failures are thrown (UsageError, InputError, ClientFailure)
 * and main.ts turns them into one line and an exit code.
 */
import type { CAC } from 'cac';
import { InputError, UsageError } from '../cli/exit-codes.ts';
import { formatMailbox } from '../core/address.ts';
import type { RecipientOutcome } from '../core/client-session.ts';
import { ClientFailure } from '../core/errors.ts';
import { describeReply, type Reply } from '../core/reply.ts';
import { renderTranscript, type TranscriptEntry } from '../core/transcript.ts';
import { ComposeError, composeMessage, type ComposeInput } from '../message/compose.ts';
import { formatPeer, openSmtpClient, type TlsMode } from '../transport/tcp-client.ts';

export interface SendDeps {
  readonly now: () => number;
  /** Read for the body when --body is not given and it is not a terminal. */
  readonly stdin: { readonly isTTY?: boolean } & AsyncIterable<Uint8Array | string>;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** This machine's name: the default EHLO name and the fallback Message-ID domain. */
  readonly hostname: () => string;
  /** A fresh unique id (the left part of the Message-ID). */
  readonly newId: () => string;
}

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
}

export interface SendOptions {
  readonly from: string;
  readonly to: readonly string[];
  readonly cc: readonly string[];
  readonly bcc: readonly string[];
  readonly subject: string;
  /** null: read the body from stdin. */
  readonly body: string | null;
  readonly headers: readonly string[];
  readonly server: ServerAddress;
  readonly ehloName: string | null;
  readonly timeoutMs: number;
  readonly verbose: boolean;
}

export interface SendSummary {
  readonly messageId: string;
  readonly peer: string;
  /** The server's reply to the end of data. */
  readonly reply: Reply;
  readonly recipients: readonly RecipientOutcome[];
}

export const DEFAULT_SERVER = '127.0.0.1:1025';
const DEFAULT_TIMEOUT_SECONDS = 30;

// DESIGN.md: smtp:// tries STARTTLS, smtp+starttls:// requires it, smtps:// is implicit TLS.
const SCHEMES: Record<string, { tls: TlsMode; port: number }> = {
  smtp: { tls: 'opportunistic', port: 25 },
  'smtp+starttls': { tls: 'starttls', port: 587 },
  smtps: { tls: 'implicit', port: 465 },
};

/** "HOST:PORT", "[v6]:PORT", "HOST" (port 25) or an smtp://, smtp+starttls://, smtps:// URL. */
export function parseServer(text: string): ServerAddress {
  const scheme = /^([a-z+]+):\/\/(.*?)\/?$/i.exec(text);
  const rest = scheme ? scheme[2] : text;
  const kind = scheme ? SCHEMES[scheme[1].toLowerCase()] : { tls: 'none' as const, port: 25 };
  if (!kind) throw new UsageError(`--server ${text}: the scheme must be smtp://, smtp+starttls:// or smtps://`);
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s/[\]]+))(?::(\d{1,5}))?$/.exec(rest);
  if (!m) throw new UsageError(`--server ${text}: expected HOST:PORT or an smtp:// URL`);
  const port = m[3] === undefined ? kind.port : Number(m[3]);
  if (!(port >= 1 && port <= 65535)) throw new UsageError(`--server ${text}: the port must be 1-65535`);
  return { host: m[1] ?? m[2], port, tls: kind.tls };
}

/** cac gives a repeated flag as an array, a single one as a string, an absent one as undefined. */
function list(value: unknown): string[] {
  if (value === undefined || value === null || value === false) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

function single(value: unknown, flag: string): string | null {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value)) throw new UsageError(`${flag} may be given once`);
  if (value === true) throw new UsageError(`${flag} needs a value`);
  return String(value);
}

/** Turns cac's parsed flags into SendOptions; every mistake is a UsageError. */
export function parseSendFlags(flags: Record<string, unknown>): SendOptions {
  const from = single(flags.from, '--from');
  if (from === null || from.trim() === '') throw new UsageError('--from is required (the sender address)');
  const to = list(flags.to);
  const cc = list(flags.cc);
  const bcc = list(flags.bcc);
  if (to.length + cc.length + bcc.length === 0) throw new UsageError('give at least one recipient with --to, --cc or --bcc');
  const timeoutText = single(flags.timeout, '--timeout');
  const seconds = timeoutText === null ? DEFAULT_TIMEOUT_SECONDS : Number(timeoutText);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout ${timeoutText}: expected a number of seconds`);
  return {
    from,
    to,
    cc,
    bcc,
    subject: single(flags.subject, '--subject') ?? '',
    body: single(flags.body, '--body'),
    headers: list(flags.header),
    server: parseServer(single(flags.server, '--server') ?? DEFAULT_SERVER),
    ehloName: single(flags.ehlo, '--ehlo'),
    timeoutMs: seconds * 1000,
    verbose: flags.verbose === true,
  };
}

export function register(cli: CAC, deps: SendDeps): void {
  cli
    .command('send', 'Send one message over SMTP (by default to the local `mailbox serve`)')
    .option('--from <address>', 'Sender, "Name <addr>" or addr (required)')
    .option('--to <address>', 'Recipient; repeat or comma-separate', { type: [String] })
    .option('--cc <address>', 'Copy recipient; repeat or comma-separate', { type: [String] })
    .option('--bcc <address>', 'Hidden recipient: in the envelope, in no header', { type: [String] })
    .option('--subject <text>', 'Subject; non-ASCII is encoded (RFC 2047)')
    .option('--body <text>', 'Message text (default: read from standard input when it is not a terminal)')
    .option('--header <field>', 'Extra header "Name: value"; repeat for several', { type: [String] })
    .option('--server <address>', `HOST:PORT, or smtp://, smtp+starttls://, smtps://HOST[:PORT] (default ${DEFAULT_SERVER})`)
    .option('--ehlo <name>', 'Name to give in EHLO (default: this host name)')
    .option('--timeout <seconds>', `Connect timeout and longest wait for each reply (default ${DEFAULT_TIMEOUT_SECONDS})`)
    .option('-v, --verbose', 'Print the SMTP dialogue (C:/S: lines) to standard error')
    .example('mailbox send --from me@example.org --to you@example.net --subject Hi --body "Hello"')
    .example('echo Hello | mailbox send --from me@example.org --to you@example.net --server smtp.example.net:587 -v')
    .action(async (flags: Record<string, unknown>) => {
      await runSend(parseSendFlags(flags), deps);
    });
}

async function readAll(stdin: SendDeps['stdin']): Promise<string> {
  const chunks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

/** Names the server in a failure the core reported without knowing which server it was. */
function atPeer(failure: ClientFailure, peer: string): ClientFailure {
  if (failure.stage === 'connect') return failure;
  return new ClientFailure(failure.kind, failure.stage, `send via ${peer} failed: ${failure.message}`, failure.reply, { cause: failure });
}

/** Composes, connects, sends, quits; prints one line on success. Throws on any failure. */
export async function runSend(options: SendOptions, deps: SendDeps): Promise<SendSummary> {
  const body = options.body ?? (deps.stdin.isTTY ? null : await readAll(deps.stdin));
  if (body === null) throw new UsageError('no message text: give --body, or pipe the text on standard input');
  const input: ComposeInput = {
    from: options.from,
    to: options.to,
    cc: options.cc,
    bcc: options.bcc,
    subject: options.subject,
    body,
    headers: options.headers,
    timeMs: deps.now(),
    uniqueId: deps.newId(),
    hostname: deps.hostname(),
  };
  const compose = (eightBitMime: boolean) => {
    try {
      return composeMessage({ ...input, eightBitMime });
    } catch (error) {
      if (error instanceof ComposeError) throw new InputError(error.message);
      throw error;
    }
  };
  // Composed once before connecting, so that a bad header costs no connection.
  compose(false);

  const peer = formatPeer(options.server.host, options.server.port);
  const onTranscript = options.verbose
    ? (entry: TranscriptEntry) => deps.stderr.write(`${renderTranscript([entry]).join('\n')}\n`)
    : undefined;
  if (options.verbose) deps.stderr.write(`# connecting to ${peer}\n`);
  const client = await openSmtpClient({
    host: options.server.host,
    port: options.server.port,
    ehloName: options.ehloName ?? deps.hostname(),
    timeoutMs: options.timeoutMs,
    tls: options.server.tls,
    onTranscript,
  }).catch((error: unknown) => {
    throw error instanceof ClientFailure ? atPeer(error, peer) : error;
  });

  // RFC 6152: with 8BITMIME the text may go as it is; otherwise it is quoted-printable.
  const message = compose(client.extensions.has('8BITMIME'));
  const outcome = await client.send({ sender: message.sender, recipients: message.recipients, message: message.bytes });
  await client.quit();
  if (!outcome.ok) throw atPeer(outcome.failure, peer);

  const accepted = outcome.recipients.filter((r) => r.accepted).length;
  for (const r of outcome.recipients) {
    if (!r.accepted) deps.stderr.write(`mailbox: recipient <${formatMailbox(r.mailbox)}> rejected: ${describeReply(r.reply)}\n`);
  }
  const total = outcome.recipients.length;
  const count = accepted === total ? `${total} recipient${total === 1 ? '' : 's'}` : `${accepted} of ${total} recipients`;
  deps.stdout.write(`sent ${message.messageId} to ${count} via ${peer}: ${describeReply(outcome.reply)}\n`);
  return { messageId: message.messageId, peer, reply: outcome.reply, recipients: outcome.recipients };
}
