/**
 * @module Delivery status notifications (RFC 3464, RFC 6522; RFC 6533 for SMTPUTF8 mail): the
 * report a relay sends to a message's envelope sender when recipients fail, are delayed, or, where
 * NOTIFY=SUCCESS asked for it, are delivered here or relayed to a next hop without DSN.
 * Rule 1: pure. Envelope, outcomes and the original bytes in; report bytes out. No clock: times
 *         are given.
 * Rule 2: a report goes from the null sender (RFC 5321 §4.5.5) to the envelope sender; a message
 *         with the null sender never gets one (a bounce is never bounced), and NOTIFY decides per
 *         recipient (RFC 3461 §4.1).
 * Rule 3: RET=FULL returns the whole message up to a size limit and its header above it; anything
 *         else returns the header (RFC 3461 §4.3).
 */
import { formatMailbox, needsSmtpUtf8, type Mailbox } from '../core/address.ts';
import { dotStuff } from '../core/data.ts';
import { formatDate, type Envelope, type Recipient } from '../core/envelope.ts';
import { hasEightBit, recordedDsn, recordedRecipient, type NotifyCondition } from '../core/outgoing.ts';
import type { Reply } from '../core/reply.ts';
import { multipart, partBytes, type MimePart } from '../message/mime.ts';
import type { CommitRequest } from '../spool/commit.ts';

/** RFC 3464 §2.3.3: what happened to one recipient. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

/** One recipient of the original message, as its report states it. */
export interface ReportedRecipient {
  /** Its position in the original envelope: its NOTIFY and ORCPT are read from there. */
  readonly rcptIndex: number;
  readonly action: DsnAction;
  /**
   * The reply the outcome rests on: the remote server's, or the relay's own (DNS failure,
   * expiry…). Status is its enhanced code, or the class of its code ("5.0.0") without one.
   */
  readonly reply: Reply;
  /** RFC 3464 §2.3.5: the host that gave `reply`; without it the reply is the relay's own. */
  readonly remoteMta?: string;
  /** RFC 3464 §2.3.7: when it was last tried. */
  readonly lastAttemptMs?: number;
  /** RFC 3464 §2.3.8: for "delayed", when the relay gives up. */
  readonly willRetryUntilMs?: number;
}

export interface DeliveryReportInput {
  /** The original message's spool id (an X-Mailbox-Queue-ID field of the report). */
  readonly id: string;
  readonly envelope: Envelope;
  /** RFC 3464 §2.2.5: when the relay accepted the original. */
  readonly arrivalMs: number;
  /** The report's Date. */
  readonly nowMs: number;
  /** RFC 3464 §2.2.2: the relay's host name (serve's --hostname). */
  readonly reportingMta: string;
  readonly recipients: readonly ReportedRecipient[];
  /** The original message as stored, dot-unstuffed, CRLF lines (the trace header included). */
  readonly message: Uint8Array;
  /** --bounce-size-limit: RET=FULL returns a message up to this size, and its header above it. */
  readonly returnLimitBytes: number;
}

/** A report ready to be queued: from the null sender to `to`. */
export interface DeliveryReport {
  readonly to: Mailbox;
  /** RFC 6533: the original was SMTPUTF8, so is the report (message/global-delivery-status). */
  readonly utf8: boolean;
  /** Whether the report holds 8-bit octets (it then goes with BODY=8BITMIME). */
  readonly eightBit: boolean;
  /** The report, CRLF lines, not dot-stuffed. */
  readonly message: Uint8Array;
  /** The recipients (rcptIndex) the report speaks of, after NOTIFY was applied. */
  readonly reported: readonly number[];
}

/** 1M: the default of --bounce-size-limit. */
export const DEFAULT_RETURN_LIMIT_BYTES = 1024 * 1024;

const ENCODER = new TextEncoder();
const UTF8 = new TextDecoder('utf-8');
const HEADER_LINE = 78;

/**
 * RFC 3461 §4.1: whether this recipient's sender asked for a report of `action`. Never for the
 * null sender. Without NOTIFY, failures are reported, and delays (which only happen when
 * --delay-warning is set), as §4.1 allows; "delivered" and "relayed" only with SUCCESS.
 */
export function wantsReport(envelope: Envelope, recipient: Recipient, action: DsnAction): boolean {
  if (envelope.sender === null) return false;
  const notify: readonly NotifyCondition[] | undefined = recordedRecipient(recipient).params?.notify;
  if (notify?.includes('NEVER')) return false;
  switch (action) {
    case 'failed':
      return notify === undefined || notify.includes('FAILURE');
    case 'delayed':
      return notify === undefined || notify.includes('DELAY');
    case 'delivered':
    case 'relayed':
      return notify?.includes('SUCCESS') ?? false;
  }
}

const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** RFC 3464 §2.3.4: the status of a reply: its enhanced code, or its class alone. */
export function statusOf(reply: Reply): string {
  if (reply.enhanced !== undefined && STATUS.test(reply.enhanced)) return reply.enhanced;
  return `${Math.floor(reply.code / 100)}.0.0`;
}

/**
 * Builds the report for the recipients whose NOTIFY asks for it; null when there are none (or
 * the original had the null sender).
 */
export function buildDeliveryReport(input: DeliveryReportInput): DeliveryReport | null {
  const { envelope } = input;
  if (envelope.sender === null) return null;
  const reported = input.recipients.filter((r) => {
    const recipient = envelope.recipients[r.rcptIndex];
    return recipient !== undefined && wantsReport(envelope, recipient, r.action);
  });
  if (reported.length === 0) return null;
  const utf8 = envelope.utf8 || needsSmtpUtf8(envelope.sender);
  const dsn = recordedDsn(envelope.mailParams);
  const failed = reported.some((r) => r.action === 'failed');

  // RFC 3461 §4.3: RET=FULL asks for the whole message in a failure report; the header otherwise.
  const full = failed && dsn?.ret === 'FULL' && input.message.length <= input.returnLimitBytes;
  const returned = full ? input.message : headerOf(input.message);
  const human = humanPart(input, reported, full, utf8);
  const status = statusPart(input, reported, utf8, dsn?.envid);
  const original = originalPart(returned, full, utf8);
  const seed = `${input.id}.report`;
  const body = multipart('report', [human, status, original], seed, [`report-type=${utf8 ? 'global-delivery-status' : 'delivery-status'}`]);
  const sender = envelope.sender;
  const head = [
    'From: Mail Delivery System <MAILER-DAEMON@' + input.reportingMta + '>',
    `To: <${formatMailbox(sender)}>`,
    `Subject: ${subjectOf(reported)}`,
    `Date: ${formatDate(input.nowMs)}`,
    `Message-ID: <${input.id}.${input.nowMs.toString(36)}.report@${input.reportingMta}>`,
    // RFC 3834 §5: an automatic response; it must not set off further automatic responses.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    ...body.headers,
  ];
  const message = partBytes({ headers: head, body: body.body });
  return {
    to: sender,
    utf8,
    eightBit: hasEightBit(message),
    message,
    reported: reported.map((r) => r.rcptIndex),
  };
}

/**
 * The envelope a report travels in: the null sender, and the original's sender as its one
 * recipient, local or to be relayed as the caller found it.
 */
export function reportEnvelope(report: DeliveryReport, local: boolean): Envelope {
  return {
    sender: null,
    mailParams: report.eightBit ? [{ name: 'BODY', value: '8BITMIME' }] : [],
    recipients: [{ mailbox: report.to, local, params: [] }],
    utf8: report.utf8,
    body: report.eightBit ? '8BITMIME' : '7BIT',
    declaredSize: null,
    authUser: null,
  };
}

/** The spool commit of a report: what DeliveryQueue.complete() takes as a bounce. */
export function reportCommit(report: DeliveryReport, opts: { readonly id: string; readonly timeMs: number; readonly local: boolean }): CommitRequest {
  return {
    id: opts.id,
    timeMs: opts.timeMs,
    envelope: reportEnvelope(report, opts.local),
    stuffed: dotStuff(report.message),
    size: report.message.length,
  };
}

function subjectOf(reported: readonly ReportedRecipient[]): string {
  if (reported.some((r) => r.action === 'failed')) return 'Undelivered Mail Returned to Sender';
  if (reported.some((r) => r.action === 'delayed')) return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

/** The header block of a message, through the blank line's first CRLF (all of it if it has no body). */
function headerOf(message: Uint8Array): Uint8Array {
  for (let i = message.indexOf(10); i >= 0; i = message.indexOf(10, i + 1)) {
    if (message[i + 1] === 10) return message.subarray(0, i + 1);
    if (message[i + 1] === 13 && message[i + 2] === 10) return message.subarray(0, i + 1);
  }
  return message;
}

/** Reply text made safe for a header field: no controls; no 8-bit unless the report is UTF-8. */
function fieldText(text: string, utf8: boolean): string {
  const clean = text.replace(/[\x00-\x1f\x7f]+/g, ' ');
  return utf8 ? clean : clean.replace(/[^\x20-\x7e]/g, '?');
}

function replyText(reply: Reply): string {
  const lead = reply.enhanced !== undefined ? `${reply.code} ${reply.enhanced}` : String(reply.code);
  return `${lead} ${reply.lines.join(' ')}`.trimEnd();
}

/** "Name: value", folded at spaces to keep lines near 78 characters (RFC 5322 §2.2.3). */
function field(name: string, value: string): string {
  const words = value.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of words) {
    if (line.length + 1 + word.length > HEADER_LINE && line.trim().length > name.length + 1) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line += ` ${word}`;
    }
  }
  lines.push(line);
  return lines.join('\r\n');
}

/**
 * RFC 3464 §2.1.2 address-type "rfc822", or RFC 6533 §3's "utf-8" for an address that needs it.
 * In an ASCII report a UTF-8 address is written as utf-8-addr-xtext (\x{HEX} escapes).
 */
function addressField(name: string, address: string, utf8: boolean): string {
  if (!/[^\x00-\x7f]/.test(address)) return field(name, `rfc822; ${address}`);
  if (utf8) return field(name, `utf-8; ${address}`);
  const escaped = [...address].map((c) => (c.charCodeAt(0) < 0x80 ? c : `\\x{${c.codePointAt(0)!.toString(16).toUpperCase()}}`)).join('');
  return field(name, `utf-8; ${escaped}`);
}

/** ORCPT as given (RFC 3461 §4.2): xtext-decoded octets, read as UTF-8 where they are. */
function originalRecipientField(recipient: Recipient, utf8: boolean): string | null {
  const orcpt = recordedRecipient(recipient).params?.orcpt;
  if (orcpt === undefined) return null;
  const octets = Uint8Array.from(orcpt.address, (c) => c.charCodeAt(0) & 0xff);
  const address = fieldText(UTF8.decode(octets), true);
  const type = orcpt.type.toLowerCase();
  if (type === 'rfc822' || type === 'utf-8') return addressField('Original-Recipient', address, utf8);
  return field('Original-Recipient', `${fieldText(orcpt.type, false)}; ${fieldText(address, utf8)}`);
}

function statusPart(input: DeliveryReportInput, reported: readonly ReportedRecipient[], utf8: boolean, envid: string | undefined): MimePart {
  const blocks: string[] = [];
  const message = [field('Reporting-MTA', `dns; ${input.reportingMta}`), field('X-Mailbox-Queue-ID', input.id)];
  // RFC 3464 §2.2.1: the ENVID the sender gave, as it gave it.
  if (envid !== undefined) message.unshift(field('Original-Envelope-Id', fieldText(envid, false)));
  message.push(field('Arrival-Date', formatDate(input.arrivalMs)));
  blocks.push(message.join('\r\n'));
  for (const r of reported) {
    const recipient = input.envelope.recipients[r.rcptIndex];
    const lines: string[] = [];
    const original = originalRecipientField(recipient, utf8);
    if (original !== null) lines.push(original);
    lines.push(addressField('Final-Recipient', formatMailbox(recipient.mailbox), utf8));
    lines.push(field('Action', r.action));
    lines.push(field('Status', statusOf(r.reply)));
    if (r.remoteMta !== undefined) lines.push(field('Remote-MTA', `dns; ${fieldText(r.remoteMta, utf8)}`));
    // RFC 3464 §2.3.6: "smtp" for a remote server's reply; the relay's own reasons are its own type.
    const type = r.remoteMta !== undefined ? 'smtp' : 'X-mailbox';
    lines.push(field('Diagnostic-Code', `${type}; ${fieldText(replyText(r.reply), utf8)}`));
    if (r.lastAttemptMs !== undefined) lines.push(field('Last-Attempt-Date', formatDate(r.lastAttemptMs)));
    if (r.action === 'delayed' && r.willRetryUntilMs !== undefined) lines.push(field('Will-Retry-Until', formatDate(r.willRetryUntilMs)));
    blocks.push(lines.join('\r\n'));
  }
  const text = `${blocks.join('\r\n\r\n')}\r\n`;
  const bytes = ENCODER.encode(text);
  const headers = [`Content-Type: message/${utf8 ? 'global-delivery-status' : 'delivery-status'}`];
  if (hasEightBit(bytes)) headers.push('Content-Transfer-Encoding: 8bit');
  return { headers, body: bytes };
}

const ACTION_WORDS: Record<DsnAction, string> = {
  failed: 'could not be delivered',
  delayed: 'has not been delivered yet',
  delivered: 'was delivered',
  relayed: 'was passed on to a server that sends no delivery reports',
};

function humanPart(input: DeliveryReportInput, reported: readonly ReportedRecipient[], full: boolean, utf8: boolean): MimePart {
  const failed = reported.some((r) => r.action === 'failed');
  const lines = [`This is the mail system at host ${input.reportingMta}.`, ''];
  if (failed) {
    lines.push('Your message could not be delivered to one or more recipients. This is a permanent error;');
    lines.push('the mail system will not try again.');
  } else if (reported.some((r) => r.action === 'delayed')) {
    lines.push('Your message has not been delivered yet to one or more recipients. This is only a warning;');
    lines.push('you do not need to send the message again. The mail system keeps trying.');
  } else {
    lines.push('Your message was delivered or passed on, as you asked to be told.');
  }
  lines.push('');
  for (const r of reported) {
    const who = `<${formatMailbox(input.envelope.recipients[r.rcptIndex].mailbox)}>`;
    const where = r.remoteMta !== undefined ? ` (${r.remoteMta} said: ${replyText(r.reply)})` : ` (${replyText(r.reply)})`;
    lines.push(fieldText(`${who} ${ACTION_WORDS[r.action]}${where}`, utf8));
    if (r.action === 'delayed' && r.willRetryUntilMs !== undefined) lines.push(`  The mail system gives up at ${formatDate(r.willRetryUntilMs)}.`);
  }
  lines.push('');
  lines.push(full ? 'The message is attached.' : 'The header of the message is attached.');
  const bytes = ENCODER.encode(`${lines.join('\r\n')}\r\n`);
  const eightBit = hasEightBit(bytes);
  const headers = [
    'Content-Description: Notification',
    `Content-Type: text/plain; charset=${eightBit ? 'utf-8' : 'us-ascii'}`,
  ];
  if (eightBit) headers.push('Content-Transfer-Encoding: 8bit');
  return { headers, body: bytes };
}

/**
 * RFC 3464 §2 and RFC 6522: the third part is message/rfc822 (the whole message) or
 * text/rfc822-headers; RFC 6533 §6.3-6.4 makes them message/global and message/global-headers.
 */
function originalPart(returned: Uint8Array, full: boolean, utf8: boolean): MimePart {
  const type = full ? (utf8 ? 'message/global' : 'message/rfc822') : utf8 ? 'message/global-headers' : 'text/rfc822-headers';
  const headers = [`Content-Description: ${full ? 'Undelivered Message' : 'Message Headers'}`, `Content-Type: ${type}`];
  // RFC 2046 §5.2.1: message/rfc822 may only be 7bit, 8bit or binary; the octets go as they are.
  if (hasEightBit(returned)) headers.push('Content-Transfer-Encoding: 8bit');
  return { headers, body: returned };
}
