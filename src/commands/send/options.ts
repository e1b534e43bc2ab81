/**
 * @module `mailbox send` options: cac's parsed flags → a typed SendOptions, and sendmail-style
 * argument spellings (-oi, -fADDR, -FNAME) → the flags cac knows.
 * Rule: pure. Every mistake is a UsageError that names the flag; nothing is read or opened here.
 */
import { parseConnectionFlags, parseServerFlag, type ConnectionFlags, type ServerAddress } from '../../cli/connection-options.ts';
import type { FileSpec, MessageOptions } from '../../send/submission.ts';
import { UsageError } from '../../exit-status.ts';
import { QUIT_AFTER, type DsnOptions, type QuitAfter } from '../../core/client-session.ts';
import { parseDnsServer } from '../../dns/resolv-conf.ts';
import type { DnsServer } from '../../dns/resolver.ts';
import { list, oneOf, single } from '../../flag-values.ts';

// The connection options are shared with `mailbox replay`.
export {
  DEFAULT_SERVER,
  DEFAULT_TIMEOUT_SECONDS,
  parseServer,
  tlsMode,
  type AuthOptions,
  type ServerAddress,
  type TlsChoice,
} from '../../cli/connection-options.ts';

export type { FileSpec } from '../../send/submission.ts';

export interface SendOptions extends ConnectionFlags, MessageOptions {
  readonly dryRun: boolean;
  /** null with --mx. */
  readonly server: ServerAddress | null;
  readonly mx: boolean;
  /** The DNS server for --mx; null: the first nameserver of /etc/resolv.conf. */
  readonly dns: DnsServer | null;
  /** The SMTP port for --mx (25; tests use others). */
  readonly mxPort: number;
  readonly dsn: DsnOptions | undefined;
  readonly quitAfter: QuitAfter | null;
  readonly chunking: boolean;
  readonly verbose: boolean;
  readonly transcriptFile: string | null;
  readonly json: boolean;
  readonly interactive: boolean;
}

/** "FILE;type=...;name=...;cid=..." (parameters in any order, each at most once). */
export function parseFileSpec(text: string, flag: string): FileSpec {
  const [path, ...params] = text.split(';');
  if (path.trim() === '') throw new UsageError(`${flag} ${text}: a file name is needed`);
  const values = new Map<string, string>();
  for (const p of params) {
    const eq = p.indexOf('=');
    const key = eq < 0 ? p.trim() : p.slice(0, eq).trim().toLowerCase();
    if (!['type', 'name', 'cid'].includes(key) || eq < 0) throw new UsageError(`${flag} ${text}: expected FILE;type=TYPE;name=NAME;cid=ID, not "${p}"`);
    values.set(key, p.slice(eq + 1).trim());
  }
  return { path, type: values.get('type') ?? null, name: values.get('name') ?? null, cid: values.get('cid') ?? null };
}


/** Addresses from repeated flags, each of which may be a comma list (split later, quote-aware). */
function addressList(value: unknown): string[] {
  return list(value).filter((v) => v.trim() !== '');
}



const NOTIFY = ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'] as const;

function parseDsn(flags: Record<string, unknown>): DsnOptions | undefined {
  const notifyText = single(flags.notify, '--notify');
  const notify = notifyText === null ? undefined : notifyText.split(',').map((n) => oneOf(n.trim(), NOTIFY, '--notify')!);
  // RFC 3461 §4.1: NEVER stands alone.
  if (notify && notify.includes('NEVER') && notify.length > 1) throw new UsageError('--notify NEVER cannot be combined with other values');
  const ret = oneOf(single(flags.ret, '--ret'), ['FULL', 'HDRS'] as const, '--ret') ?? undefined;
  const envid = single(flags.envid, '--envid') ?? undefined;
  // RFC 3461 §4.4: ENVID is printable ASCII, at most 100 characters.
  if (envid !== undefined && !/^[\x21-\x7e]{1,100}$/.test(envid)) throw new UsageError('--envid must be 1-100 printable ASCII characters');
  return notify || ret || envid ? { notify, ret, envid } : undefined;
}

function parseDns(text: string | null): DnsServer | null {
  if (text === null) return null;
  const parsed = parseDnsServer(text);
  if ('error' in parsed) throw new UsageError(`--dns ${text}: ${parsed.error}`);
  return parsed;
}

/** Turns cac's parsed flags (and positional recipients) into SendOptions. */
export function parseSendFlags(flags: Record<string, unknown>, positional: readonly string[] = [], env: Record<string, string | undefined> = {}): SendOptions {
  const sendmail = flags.sendmail === true;
  const interactive = flags.interactive === true;
  const eml = single(flags.eml, '--eml');
  const readRecipients = flags.t === true;
  const raw = eml !== null || readRecipients || sendmail;
  const from = single(flags.from, '--from') ?? single(flags.f, '-f');
  const to = [...addressList(flags.to), ...positional];
  const cc = addressList(flags.cc);
  const bcc = addressList(flags.bcc);
  if (!interactive && !raw) {
    if (from === null || from.trim() === '') throw new UsageError('--from is required (the sender address)');
    if (to.length + cc.length + bcc.length === 0) throw new UsageError('give at least one recipient with --to, --cc or --bcc');
  }
  if (sendmail && !readRecipients && to.length === 0) throw new UsageError('no recipients: give them as arguments, or -t to read them from the message');

  const composing = ['subject', 'body', 'bodyFile', 'html', 'attach', 'inline', 'replyTo', 'header'].filter((k) => flags[k] !== undefined);
  if (raw && composing.length > 0) {
    const what = eml !== null ? '--eml' : '-t';
    throw new UsageError(`${what} sends a message as it is; --${composing[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} cannot change it`);
  }
  const body = single(flags.body, '--body');
  const bodyFile = single(flags.bodyFile, '--body-file');
  if (body !== null && bodyFile !== null) throw new UsageError('give --body or --body-file, not both');

  const connection = parseConnectionFlags(flags);
  const { tls } = connection;
  const mx = flags.mx === true;
  const serverText = single(flags.server, '--server');
  if (mx && serverText !== null) throw new UsageError('give --server or --mx, not both');
  // The local `mailbox serve` listens in clear on loopback; TLS there only when asked for.
  const server = mx ? null : parseServerFlag(serverText, tls, env);
  const portText = single(flags.port, '--port');
  const mxPort = portText === null ? 25 : Number(portText);
  if (!(Number.isInteger(mxPort) && mxPort >= 1 && mxPort <= 65535)) throw new UsageError(`--port ${portText}: the port must be 1-65535`);
  if (portText !== null && !mx) throw new UsageError('--port is for --mx; with --server give HOST:PORT');

  const quitAfter = oneOf(single(flags.quitAfter, '--quit-after'), QUIT_AFTER, '--quit-after');
  return {
    from,
    fullName: single(flags.F, '-F'),
    to,
    cc,
    bcc,
    replyTo: addressList(flags.replyTo),
    subject: single(flags.subject, '--subject'),
    body,
    bodyFile,
    html: single(flags.html, '--html'),
    attach: list(flags.attach).map((s) => parseFileSpec(s, '--attach')),
    inline: list(flags.inline).map((s) => parseFileSpec(s, '--inline')),
    headers: list(flags.header),
    eml,
    readRecipients,
    ignoreDots: flags.i === true,
    sendmail,
    dryRun: flags.dryRun === true,
    server,
    mx,
    dns: parseDns(single(flags.dns, '--dns')),
    mxPort,
    ...connection,
    dsn: parseDsn(flags),
    quitAfter,
    chunking: flags.chunking !== false,
    verbose: flags.verbose === true,
    transcriptFile: single(flags.transcript, '--transcript'),
    json: flags.json === true,
    interactive,
  };
}

const DSN_FLAGS: Record<string, string> = { N: '--notify', R: '--ret', V: '--envid' };

/** sendmail(8) options that take no part here: accepted and ignored, as Postfix's sendmail does. */
const IGNORED_SENDMAIL = /^-(?:o[A-Za-z].*|b[mp]?|od[a-z]|U|n|m|e[mpqw]|B\w+|L\w+|q\w*)$/;

/**
 * Rewrites sendmail spellings into flags cac parses: "-oi" → "-i", "-fADDR" → "-f ADDR",
 * "-FNAME" → "-F NAME", "-r ADDR" → "-f ADDR", DSN's -N/-R/-V → --notify/--ret/--envid; other sendmail options (-odi, -oem, -bm…) are
 * dropped. Arguments after "--" are left alone.
 */
export function normalizeSendmailArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (a === '-oi' || a === '-i') out.push('-i');
    else if (a === '-t') out.push('-t');
    else if (a === '-r') out.push('-f');
    else if (/^-[fr]./.test(a)) out.push('-f', a.slice(2));
    else if (/^-F./.test(a)) out.push('-F', a.slice(2));
    else if (/^-[NRV]$/.test(a) && i + 1 < args.length) out.push(DSN_FLAGS[a[1]], args[++i]);
    else if (/^-[NRV]./.test(a)) out.push(DSN_FLAGS[a[1]], a.slice(2));
    else if (a === '-f' || a === '-F') out.push(a);
    else if (IGNORED_SENDMAIL.test(a) && !a.startsWith('--')) continue;
    else out.push(a);
  }
  return out;
}
