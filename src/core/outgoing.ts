/**
 * @module Outgoing preparation: what a transaction needs before its MAIL goes out, checked
 * against what the server offers. SIZE (RFC 1870), 8-bit data (RFC 6152), SMTPUTF8 (RFC 6531)
 * and DSN (RFC 3461), with the MAIL parameters and each recipient's RCPT parameters built here.
 * Rule 1: pure; a transaction that cannot go is a failure carrying a client-catalogue reply.
 * Rule 2: what the server lacks is settled by a policy: `send` refuses (the user asked for it),
 *         `replay` strips (it replays what it can), and the relay strips DSN, owing a "relayed"
 *         DSN (RFC 3464 §2.3.3) where NOTIFY asked for SUCCESS, and converts 8-bit data to
 *         quoted-printable (core/seven-bit.ts), or bounces with the 5.6.3 it gets here when the
 *         message cannot be converted (DKIM-signed, 8-bit structured header fields).
 */
import { needsSmtpUtf8, type Mailbox } from './address.ts';
import { clientReplies } from './client-replies.ts';
import { decodeXtext, encodeXtext, type Parameter } from './command.ts';
import { dotStuff, dotUnstuff } from './data.ts';
import type { Recipient } from './envelope.ts';
import type { ClientStage, FailureKind } from './errors.ts';
import { peerMaxSize, type PeerExtensions } from './extensions.ts';
import type { Reply } from './reply.ts';
import { convertToSevenBit } from './seven-bit.ts';

/** RFC 3461 §4.1: NOTIFY is NEVER alone, or any of SUCCESS, FAILURE, DELAY. */
export type NotifyCondition = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** RFC 3461 delivery status notification requests for the whole transaction. */
export interface DsnOptions {
  /** The NOTIFY of every recipient that does not give its own. */
  readonly notify?: readonly NotifyCondition[];
  readonly ret?: 'FULL' | 'HDRS';
  readonly envid?: string;
}

/** RFC 3461 §4: the RCPT parameters one recipient carries to the next hop. */
export interface RecipientParams {
  readonly notify?: readonly NotifyCondition[];
  /** RFC 3461 §4.2: ORCPT=addr-type;xtext, the address as the original sender gave it. */
  readonly orcpt?: { readonly type: string; readonly address: string };
}

/** A recipient with its own parameters (RFC 3461 §4: NOTIFY and ORCPT travel per recipient). */
export interface OutgoingRecipient {
  readonly mailbox: Mailbox;
  readonly params?: RecipientParams;
}

/** What the client does with a request the server cannot take. */
export type OutgoingPolicy = 'refuse' | 'strip' | 'relay';

export interface OutgoingInput {
  readonly sender: Mailbox | null;
  readonly recipients: readonly (Mailbox | OutgoingRecipient)[];
  readonly dsn?: DsnOptions;
  /** The message came with SMTPUTF8: UTF-8 in its header fields needs SMTPUTF8 again (RFC 6532). */
  readonly smtpUtf8?: boolean;
  /** Either message bytes (CRLF-normalised and dot-stuffed here) or bytes already stuffed. */
  readonly message?: Uint8Array;
  readonly stuffed?: Uint8Array;
}

export interface PreparedTransaction {
  readonly recipients: readonly OutgoingRecipient[];
  readonly stuffed: Uint8Array;
  /** RFC 1870 §3: CRLF lines, before dot-stuffing. */
  readonly size: number;
  /** " SIZE=… BODY=8BITMIME SMTPUTF8 RET=… ENVID=…", or "". */
  readonly mailParams: string;
  /** Per recipient, in order: " NOTIFY=… ORCPT=…", or "". */
  readonly rcptParams: readonly string[];
  /** What the policy dropped because the server does not offer it ("DSN"). */
  readonly stripped: readonly string[];
  /**
   * With the relay policy and DSN stripped: the recipients (indices) whose NOTIFY asked for
   * SUCCESS, to whose sender the relay owes a "relayed" DSN (RFC 3464 §2.3.3).
   */
  readonly relayed: readonly number[];
  /** With the relay policy: the 8-bit message was converted to 7-bit for a server without 8BITMIME. */
  readonly converted: boolean;
}

export type Preparation =
  | { readonly ok: true; readonly prepared: PreparedTransaction }
  | { readonly ok: false; readonly kind: FailureKind; readonly stage: ClientStage; readonly status: Reply };

const CR = 13;
const LF = 10;
const DOT = 46;

/** A bare Mailbox is a recipient without parameters of its own. */
export function outgoingRecipient(r: Mailbox | OutgoingRecipient): OutgoingRecipient {
  return 'mailbox' in r ? r : { mailbox: r };
}

/**
 * RFC 1870 §3: SIZE counts the message with CRLF line endings, before dot-stuffing. -1 when the
 * bytes are not a stuffed message: not ending in CRLF, or holding a line of a single ".".
 */
export function unstuffedSize(stuffed: Uint8Array): number {
  const n = stuffed.length;
  if (n === 0) return 0;
  if (n < 2 || stuffed[n - 1] !== LF || stuffed[n - 2] !== CR) return -1;
  let dots = 0;
  for (let at = 0; at < n; at = stuffed.indexOf(LF, at) + 1) {
    if (stuffed[at] !== DOT) continue;
    if (stuffed[at + 1] === CR) return -1;
    dots++;
  }
  return n - dots;
}

/** Any byte ≥ 0x80; four bytes at a time where the bytes are aligned for it. */
export function hasEightBit(bytes: Uint8Array): boolean {
  const n = bytes.length;
  let i = 0;
  const head = Math.min(n, (4 - (bytes.byteOffset & 3)) & 3);
  for (; i < head; i++) if (bytes[i] >= 0x80) return true;
  const words = (n - i) >>> 2;
  if (words > 0) {
    const view = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    let any = 0;
    for (let w = 0; w < words; w++) any |= view[w];
    if ((any & 0x80808080) !== 0) return true;
    i += words * 4;
  }
  for (; i < n; i++) if (bytes[i] >= 0x80) return true;
  return false;
}

/** RFC 3461 §4.1: NEVER stands alone; the others may be combined. Null when valid. */
function notifyProblem(notify: readonly NotifyCondition[] | undefined): string | null {
  if (notify === undefined || notify.length === 0) return null;
  if (notify.includes('NEVER') && notify.length > 1) return 'NOTIFY=NEVER cannot be combined with other conditions (RFC 3461 §4.1)';
  return null;
}

function formatRcptParams(params: RecipientParams | undefined, dsn: DsnOptions): string {
  const notify = params?.notify ?? dsn.notify;
  let out = notify !== undefined && notify.length > 0 ? ` NOTIFY=${notify.join(',')}` : '';
  if (params?.orcpt !== undefined) out += ` ORCPT=${params.orcpt.type};${encodeXtext(params.orcpt.address)}`;
  return out;
}

const param = (params: readonly Parameter[], name: string) => params.find((p) => p.name.toUpperCase() === name)?.value ?? null;

/** Whether the header block (up to the first empty line) holds an octet above 127. */
function headerHasEightBit(bytes: Uint8Array): boolean {
  let lineStart = true;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b >= 0x80) return true;
    if (lineStart && (b === 13 || b === 10)) return false;
    lineStart = b === 10;
  }
  return false;
}

/** RFC 3461 §4.3-4.4 as recorded in MAIL: RET and ENVID (ENVID xtext-decoded). */
export function recordedDsn(mailParams: readonly Parameter[]): DsnOptions | undefined {
  const ret = param(mailParams, 'RET')?.toUpperCase();
  const envid = param(mailParams, 'ENVID');
  const dsn: { ret?: 'FULL' | 'HDRS'; envid?: string } = {};
  if (ret === 'FULL' || ret === 'HDRS') dsn.ret = ret;
  const decoded = envid === null ? null : decodeXtext(envid);
  if (decoded !== null) dsn.envid = decoded;
  return Object.keys(dsn).length > 0 ? dsn : undefined;
}

/** RFC 3461 §4.1-4.2 as recorded in one RCPT: NOTIFY and ORCPT (xtext-decoded) travel with their recipient. */
export function recordedRecipient(recipient: Recipient): OutgoingRecipient {
  const notify = param(recipient.params, 'NOTIFY')?.toUpperCase();
  const orcpt = param(recipient.params, 'ORCPT');
  const params: { notify?: NotifyCondition[]; orcpt?: { type: string; address: string } } = {};
  if (notify) params.notify = notify.split(',') as NotifyCondition[];
  const semi = orcpt?.indexOf(';') ?? -1;
  const address = orcpt && semi > 0 ? decodeXtext(orcpt.slice(semi + 1)) : null;
  if (orcpt && address !== null) params.orcpt = { type: orcpt.slice(0, semi), address };
  return Object.keys(params).length > 0 ? { mailbox: recipient.mailbox, params } : { mailbox: recipient.mailbox };
}

/** Checks a transaction against the server's extensions and builds its parameters. */
export function prepareOutgoing(tx: OutgoingInput, ext: PeerExtensions, policy: OutgoingPolicy): Preparation {
  const refuse = (kind: FailureKind, stage: ClientStage, status: Reply): Preparation => ({ ok: false, kind, stage, status });
  if (tx.recipients.length === 0) return refuse('internal', 'rcpt', clientReplies.notSendable('a transaction needs at least one recipient'));
  const recipients = tx.recipients.map(outgoingRecipient);
  const utf8Addresses = needsSmtpUtf8(tx.sender) || recipients.some((r) => needsSmtpUtf8(r.mailbox));
  // RFC 6531 §3.2: a non-ASCII address may only go to a server that offers SMTPUTF8.
  if (utf8Addresses && !ext.has('SMTPUTF8')) return refuse('rejected', 'mail', clientReplies.smtpUtf8Needed());
  let stuffed = tx.stuffed ?? dotStuff(tx.message ?? new Uint8Array(0));
  // RFC 6532 §3 and RFC 6531 §3.2: UTF-8 header fields of an SMTPUTF8 message need SMTPUTF8 again
  // (and it is asked for only then); without it the message is refused with RFC 6533's X.6.9.
  const utf8Header = tx.smtpUtf8 === true && headerHasEightBit(stuffed);
  if (utf8Header && !ext.has('SMTPUTF8')) return refuse('rejected', 'mail', clientReplies.utf8HeaderNeedsSmtpUtf8());
  const utf8 = utf8Addresses || utf8Header;
  let size = unstuffedSize(stuffed);
  // Only a caller's bug gets here: the spool checks every record before it is replayed.
  if (size < 0) {
    return refuse('internal', 'message', clientReplies.notSendable('the message is not dot-stuffed CRLF text (it holds a line of a single "." or does not end with CRLF)'));
  }
  let eightBit = hasEightBit(stuffed);
  let converted = false;
  // RFC 6152 §3: 8-bit data goes only to a server that offers 8BITMIME (SMTPUTF8 implies it).
  // The relay converts it to 7-bit where it can (core/seven-bit.ts), and bounces it where not.
  if (eightBit && !ext.has('8BITMIME') && !utf8) {
    if (policy !== 'relay') return refuse('rejected', 'mail', clientReplies.eightBitNotAllowed());
    const conversion = convertToSevenBit(dotUnstuff(stuffed));
    if (!conversion.ok) return refuse('rejected', 'mail', clientReplies.eightBitNotConvertible(conversion.why));
    stuffed = dotStuff(conversion.message);
    size = conversion.message.length;
    eightBit = false;
    converted = true;
  }
  const max = peerMaxSize(ext);
  // RFC 1870 §6.1: a message larger than the server's SIZE is not sent at all.
  if (max !== null && size > max) return refuse('rejected', 'mail', clientReplies.tooBig(size, max));

  const dsn = tx.dsn ?? {};
  for (const notify of [dsn.notify, ...recipients.map((r) => r.params?.notify)]) {
    const problem = notifyProblem(notify);
    if (problem !== null) return refuse('internal', 'rcpt', clientReplies.notSendable(problem));
  }
  const wantsDsn = (dsn.notify?.length ?? 0) > 0 || dsn.ret !== undefined || dsn.envid !== undefined
    || recipients.some((r) => (r.params?.notify?.length ?? 0) > 0 || r.params?.orcpt !== undefined);
  const stripDsn = wantsDsn && !ext.has('DSN');
  // RFC 3461 §4: the parameters exist only where the server offers DSN. `send` refuses rather
  // than lose what the user asked for; replay and the relay send without them.
  if (stripDsn && policy === 'refuse') return refuse('rejected', 'mail', clientReplies.dsnNotOffered());

  let mailParams = '';
  if (ext.has('SIZE')) mailParams += ` SIZE=${size}`;
  if (eightBit && ext.has('8BITMIME')) mailParams += ' BODY=8BITMIME';
  if (utf8) mailParams += ' SMTPUTF8';
  if (!stripDsn && dsn.ret !== undefined) mailParams += ` RET=${dsn.ret}`;
  if (!stripDsn && dsn.envid !== undefined) mailParams += ` ENVID=${encodeXtext(dsn.envid)}`;
  const rcptParams = recipients.map((r) => (stripDsn ? '' : formatRcptParams(r.params, dsn)));
  const relayed = stripDsn && policy === 'relay'
    ? recipients.flatMap((r, i) => ((r.params?.notify ?? dsn.notify ?? []).includes('SUCCESS') ? [i] : []))
    : [];
  return { ok: true, prepared: { recipients, stuffed, size, mailParams, rcptParams, stripped: stripDsn ? ['DSN'] : [], relayed, converted } };
}
