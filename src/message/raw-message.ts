/**
 * @module Messages given whole (`--eml FILE`, `-t`, the `sendmail` name): find the header
 * fields, take the envelope from them, drop Bcc, and add the fields a submission needs when
 * they are missing (Date, Message-ID, From; RFC 6409 §8). The body is never touched.
 * Rule: pure. Line endings may be LF or CRLF; the session turns them into CRLF on the wire.
 */
import type { Mailbox } from '../core/address.ts';
import { ComposeError, formatAddress, parseAddressList, type NamedAddress } from './compose.ts';

export interface HeaderField {
  /** As written, e.g. "Content-Type". */
  readonly name: string;
  /** Unfolded (RFC 5322 §2.2.3), trimmed. */
  readonly value: string;
  /** Byte offsets of the whole field, folded lines and line break included. */
  readonly start: number;
  readonly end: number;
}

export interface RawMessage {
  readonly fields: readonly HeaderField[];
  /** Offset of the first body byte (after the blank line), or the length when there is none. */
  readonly bodyStart: number;
  readonly bytes: Uint8Array;
}

const DECODER = new TextDecoder('utf-8', { fatal: false });
const ENCODER = new TextEncoder();
const LF = 10;
const CR = 13;

/** Splits the header block into fields; a line that is not a field ends it (as a body). */
export function parseRawMessage(bytes: Uint8Array): RawMessage {
  const fields: { name: string; value: string; start: number; end: number }[] = [];
  const done = (bodyStart: number): RawMessage => ({ fields: fields.map((f) => ({ ...f, value: f.value.trim() })), bodyStart, bytes });
  let at = 0;
  while (at < bytes.length) {
    const lf = bytes.indexOf(LF, at);
    const next = lf < 0 ? bytes.length : lf + 1;
    let lineEnd = lf < 0 ? bytes.length : lf;
    if (lineEnd > at && bytes[lineEnd - 1] === CR) lineEnd--;
    const line = DECODER.decode(bytes.subarray(at, lineEnd));
    if (line === '') return done(next);
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      last.value += line;
      last.end = next;
    } else {
      const colon = line.indexOf(':');
      // RFC 5322 §2.2: a field name is printable ASCII without ":" or space; anything else is body.
      if (colon <= 0 || !/^[!-9;-~]+$/.test(line.slice(0, colon))) return done(at);
      fields.push({ name: line.slice(0, colon), value: line.slice(colon + 1), start: at, end: next });
    }
    at = next;
  }
  return done(bytes.length);
}

function values(message: RawMessage, name: string): string[] {
  const lower = name.toLowerCase();
  return message.fields.filter((f) => f.name.toLowerCase() === lower).map((f) => f.value.trim());
}

/** RFC 5322 §3.4: address lists may hold groups ("Team: a@x, b@y;") and comments; keep the mailboxes. */
function addresses(text: string): NamedAddress[] {
  const noComments = text.replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  const flat = noComments.replace(/(^|,)\s*[^,:"<>@]*:\s*/g, '$1').replace(/;/g, ',');
  return parseAddressList(flat);
}

/** The From address (the first one), or null when the message has none. */
export function headerSender(message: RawMessage): NamedAddress | null {
  const from = values(message, 'From')[0] ?? values(message, 'Sender')[0];
  if (from === undefined) return null;
  const list = addresses(from);
  if (list.length === 0) throw new ComposeError(`the From header "${from}" has no address`);
  return list[0];
}

/** To, Cc and Bcc mailboxes, as `sendmail -t` takes them (RFC 5322 §3.6.3). */
export function headerRecipients(message: RawMessage): Mailbox[] {
  return ['To', 'Cc', 'Bcc'].flatMap((name) => values(message, name).flatMap((v) => addresses(v).map((a) => a.mailbox)));
}

export interface Completion {
  /** For a missing From: the sender and an optional full name (`-F`). */
  readonly sender: Mailbox;
  readonly fullName: string | null;
  readonly date: string;
  readonly messageId: string;
}

/**
 * The message without its Bcc fields (they would tell every recipient who else got it), with
 * From, Date and Message-ID added in front when missing. Nothing else changes.
 */
export function prepareRawMessage(message: RawMessage, completion: Completion): Uint8Array {
  const drop = message.fields.filter((f) => f.name.toLowerCase() === 'bcc');
  let added = '';
  if (values(message, 'From').length === 0) {
    added += `From: ${formatAddress({ name: completion.fullName, mailbox: completion.sender })}\r\n`;
  }
  if (values(message, 'Date').length === 0) added += `Date: ${completion.date}\r\n`;
  if (values(message, 'Message-ID').length === 0) added += `Message-ID: ${completion.messageId}\r\n`;
  // A message with no header at all still needs the blank line that ends the (added) header.
  if (message.fields.length === 0 && added !== '' && message.bodyStart === 0) added += '\r\n';
  const head = ENCODER.encode(added);
  const kept: Uint8Array[] = [head];
  let at = 0;
  for (const f of drop) {
    kept.push(message.bytes.subarray(at, f.start));
    at = f.end;
  }
  kept.push(message.bytes.subarray(at));
  const total = kept.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of kept) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** The Message-ID field of the message, if any. */
export function headerMessageId(message: RawMessage): string | null {
  return values(message, 'Message-ID')[0] ?? null;
}

/** sendmail without -i: a line of a single "." ends the input (sendmail(8), "-i"). */
export function cutAtDotLine(bytes: Uint8Array): Uint8Array {
  let lineStart = 0;
  while (lineStart < bytes.length) {
    let lf = bytes.indexOf(LF, lineStart);
    if (lf < 0) lf = bytes.length;
    const end = lf > lineStart && bytes[lf - 1] === CR ? lf - 1 : lf;
    if (end - lineStart === 1 && bytes[lineStart] === 46) return bytes.subarray(0, lineStart);
    lineStart = lf + 1;
  }
  return bytes;
}
