/**
 * @module Envelope: one mail transaction (RFC 5321 §3.3), from MAIL to the end of DATA, and the
 * Received: trace header stamped on the message it carries (RFC 5321 §4.4).
 */
import { formatMailbox, type Mailbox } from './address.ts';
import type { Parameter } from './command.ts';
import { civilFromDays } from './calendar.ts';

export interface Recipient {
  readonly mailbox: Mailbox;
  /** Delivered into a local mailbox here (true) or relayed onward (false). */
  readonly local: boolean;
  /** RCPT parameters as given (NOTIFY, ORCPT…), kept for relaying and DSN. */
  readonly params: readonly Parameter[];
}

/** One transaction. Recipients grow as RCPT commands are accepted; everything else is fixed by MAIL. */
export interface Envelope {
  readonly sender: Mailbox | null;
  readonly mailParams: readonly Parameter[];
  readonly recipients: readonly Recipient[];
  /** SMTPUTF8 was requested in MAIL (RFC 6531 §3.4). */
  readonly utf8: boolean;
  /** BODY=8BITMIME or BINARYMIME (RFC 6152), else 7BIT. */
  readonly body: '7BIT' | '8BITMIME' | 'BINARYMIME';
  /** SIZE declared in MAIL (RFC 1870), when given. */
  readonly declaredSize: number | null;
  /** The user the session authenticated as (RFC 4954), recorded with the message. */
  readonly authUser: string | null;
}

export function withRecipient(tx: Envelope, recipient: Recipient): Envelope {
  return { ...tx, recipients: [...tx.recipients, recipient] };
}

/** What the trace header says about the session that carried the message. */
export interface TraceInfo {
  readonly heloName: string;
  readonly clientAddress: string;
  readonly serverName: string;
  /** RFC 3848 / RFC 6531 §3.7.3: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP… */
  readonly protocol: string;
  readonly id: string;
  readonly timeMs: number;
  /** "TLSv1.3 TLS_AES_256_GCM_SHA384" when the session was encrypted. */
  readonly tls?: string;
}

/**
 * RFC 5321 §4.4: "Received: from <helo> (<address>) by <host> with <protocol> id <id> for <rcpt>; <date>".
 * The "for" clause names a recipient only when there is exactly one, so a Bcc stays private.
 */
export function formatReceived(trace: TraceInfo, tx: Envelope): string {
  const address = trace.clientAddress.includes(':') ? `IPv6:${trace.clientAddress}` : trace.clientAddress;
  const helo = trace.heloName.replace(/[^\x21-\x7e]/g, '?');
  const tls = trace.tls ? `\r\n\t(${trace.tls})` : '';
  const only = tx.recipients.length === 1 ? `\r\n\tfor <${formatMailbox(tx.recipients[0].mailbox)}>` : '';
  return (
    `Received: from ${helo} ([${address}])\r\n` +
    `\tby ${trace.serverName} (mailbox) with ${trace.protocol} id ${trace.id}${tls}${only};\r\n` +
    `\t${formatDate(trace.timeMs)}\r\n`
  );
}

/** What our own Received header tells of the session that carried a message. */
export interface ReceivedTrace {
  readonly heloName: string;
  readonly clientAddress: string;
  readonly protocol: string;
  /** "TLSv1.3 TLS_AES_256_GCM_SHA384", or null for a clear session. */
  readonly tls: string | null;
}

/**
 * Reads back the trace that formatReceived() wrote at the top of a stored message, or null when
 * the message does not start with one of ours (unfolded per RFC 5322 §2.2.3 first).
 */
export function parseReceived(header: string): ReceivedTrace | null {
  const unfolded = header.replace(/\r?\n[ \t]/g, ' ');
  const m = /^Received: from (\S+) \(\[(?:IPv6:)?([^\]]+)\]\) by \S+ \(mailbox\) with (\S+) id \S+(?: \(([^)]*)\))?/.exec(unfolded);
  if (m === null) return null;
  return { heloName: m[1], clientAddress: m[2], protocol: m[3], tls: m[4] ?? null };
}

const DAYS = ['Thu', 'Fri', 'Sat', 'Sun', 'Mon', 'Tue', 'Wed'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
const pad = (n: number) => String(n).padStart(2, '0');

/**
 * RFC 5322 §3.3 date-time in UTC ("Fri, 27 Nov 2026 01:28:21 +0000"), computed from epoch
 * milliseconds without a clock (core/calendar.ts).
 */
export function formatDate(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const days = Math.floor(seconds / 86400);
  const secOfDay = seconds - days * 86400;
  const { year, month, day } = civilFromDays(days);
  const weekday = DAYS[((days % 7) + 7) % 7];
  const hh = Math.floor(secOfDay / 3600);
  const mm = Math.floor((secOfDay % 3600) / 60);
  const ss = secOfDay % 60;
  return `${weekday}, ${day} ${MONTHS[month - 1]} ${year} ${pad(hh)}:${pad(mm)}:${pad(ss)} +0000`;
}
