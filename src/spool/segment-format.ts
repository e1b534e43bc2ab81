/**
 * @module Segment format: a segment file is a valid SMTP session, for `less` and `mailbox replay`.
 * Rule 1: a segment is "EHLO <host>" then records. A record is one NOOP line, then MAIL, RCPT…,
 *         DATA, the message exactly as received (dot-stuffed, CRLF lines) and ".":
 *           NOOP "mailbox id=<id> t=<epoch ms> len=<n>[ local=<*|hex mask>][ auth=<user>]
 *                 [ client=<address>][ helo=<name>][ tls=<version>] crc=<8 hex>"\r\n
 *         len counts the bytes after the NOOP line through the final ".\r\n"; local marks the
 *         recipients held in local mailboxes; auth is the SMTP AUTH identity; client, helo and tls
 *         tell of the session (records written before them have none). Values are percent-encoded.
 * Rule 2: the CRC-32 covers the NOOP line up to " crc=" and the len bytes, so a bit flipped
 *         anywhere in a record, the local flags included, is caught.
 * Rule 3: pure: bytes in, values out; no file I/O here.
 */
import { formatPath, parsePath, type Mailbox } from '../core/address.ts';
import { formatParameters, parseParameters, parsePathArgument } from '../core/command.ts';
import type { Envelope, Recipient } from '../core/envelope.ts';
import type { SessionFacts } from './commit.ts';
import { MESSAGE_ID_PATTERN } from './layout.ts';

const CR = 13;
const LF = 10;

/** RFC 5321 §4.1.1.9: NOOP [SP String]; a String may be a Quoted-string (§4.1.2), so the fields
 * go in one quoted string, which any server reads and ignores. */
const NOOP_PREFIX = 'NOOP "mailbox id=';
/** What resynchronisation searches for. The CRLF before it is not required: damage may have hit it. */
export const RECORD_MARKER = Buffer.from(NOOP_PREFIX, 'latin1');
/**
 * The longest NOOP or EHLO line read back. A NOOP line stays under RFC 5321's 512 octets
 * (§4.5.3.1.4) unless a message has hundreds of recipients split between local and relay, or a
 * very long AUTH identity; this cap only bounds the search for its end.
 */
export const MAX_RECORD_LINE_BYTES = 2048;

const TERMINATOR = Buffer.from('\r\n.\r\n', 'latin1');
const DATA_LINE = 'DATA\r\n';
const HEADER_LINE =
  /^NOOP "mailbox id=([A-Za-z0-9._-]{1,64}) t=(\d{1,15}) len=(\d{1,15})(?: local=(\*|[0-9a-f]{1,250}))?(?: auth=([A-Za-z0-9%._~!*'()-]{1,1024}))?(?: client=([A-Za-z0-9%._~!*'()-]{1,200}))?(?: helo=([A-Za-z0-9%._~!*'()-]{1,600}))?(?: tls=([A-Za-z0-9%._~!*'()-]{1,60}))? crc=([0-9a-f]{8})"\r\n$/;
const CRC_FIELD = ' crc=';

export interface RecordInput {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  /** Dot-stuffed message, CRLF lines, without the final ".\r\n". */
  readonly stuffed: Uint8Array;
  /** Per recipient: held in a local mailbox (true) or to be relayed (false). */
  readonly local: readonly boolean[];
  readonly session?: SessionFacts;
}

/** A record read back from a segment. Offsets are absolute within the segment file. */
export interface ParsedRecord {
  readonly id: string;
  readonly timeMs: number;
  readonly envelope: Envelope;
  readonly local: readonly boolean[];
  /** Where the NOOP line starts. */
  readonly offset: number;
  /** The whole record: NOOP line through ".\r\n". */
  readonly bytes: number;
  /** Where the stored (dot-stuffed) message starts, and its length without the final ".\r\n". */
  readonly bodyOffset: number;
  readonly bodyBytes: number;
  /** The message's exact size once unstuffed: what a reader shows and SIZE counts. */
  readonly size: number;
}

/**
 * Envelopes already parsed, by their stored text (MAIL, RCPT… lines with the local and auth
 * fields): a reader of many records, such as replay, passes one so that a sender and recipients
 * seen before are not parsed again. Envelopes are values and may be shared.
 */
export type EnvelopeCache = Map<string, Envelope | string>;
/** Past this many distinct envelopes the cache starts over: it must not grow with the spool. */
const ENVELOPE_CACHE_ENTRIES = 1024;

export type RecordScan =
  | { readonly kind: 'record'; readonly record: ParsedRecord }
  /**
   * The record runs past the end of the bytes: a torn tail, or a damaged length. `needs` is
   * the whole record's length when its record line says it.
   */
  | { readonly kind: 'short'; readonly needs?: number }
  | { readonly kind: 'bad'; readonly reason: string; readonly end: number | null };

/** The first line of every segment: the session's EHLO (RFC 5321 §4.1.1.1). */
export function formatSegmentHeader(hostname: string): Uint8Array {
  const safe = hostname.replace(/[^\x21-\x7e]/g, '') || 'localhost';
  return Buffer.from(`EHLO ${safe}\r\n`, 'latin1');
}

/** Length of a valid segment header at the start of `bytes`, or null. */
export function parseSegmentHeader(bytes: Uint8Array): number | null {
  const end = bytes.indexOf(LF);
  if (end < 6 || end >= MAX_RECORD_LINE_BYTES || bytes[end - 1] !== CR) return null;
  const line = Buffer.from(bytes.buffer, bytes.byteOffset, end + 1).toString('latin1');
  return /^EHLO [\x21-\x7e]+\r\n$/.test(line) ? end + 1 : null;
}

function formatLocalMask(local: readonly boolean[]): string {
  let any = false;
  let all = true;
  for (const l of local) {
    if (l) any = true;
    else all = false;
  }
  if (!any) return '';
  if (all) return ' local=*';
  let mask = '';
  for (let i = 0; i < local.length; i += 4) {
    const nibble = (local[i] ? 1 : 0) | (local[i + 1] ? 2 : 0) | (local[i + 2] ? 4 : 0) | (local[i + 3] ? 8 : 0);
    mask += nibble.toString(16);
  }
  return ` local=${mask}`;
}

function parseLocalMask(mask: string | undefined, count: number): boolean[] {
  if (mask === undefined) return new Array<boolean>(count).fill(false);
  if (mask === '*') return new Array<boolean>(count).fill(true);
  const out: boolean[] = [];
  for (let i = 0; i < count; i++) {
    const nibble = parseInt(mask.charAt(i >> 2) || '0', 16);
    out.push(((nibble >> (i & 3)) & 1) === 1);
  }
  return out;
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/**
 * Serialises one record into a single buffer. A caller bug (an unsafe id, a message that is not
 * CRLF-terminated or that contains its own end-of-data line) throws a plain Error.
 */
export function formatRecord(input: RecordInput): Buffer {
  const { id, envelope, stuffed } = input;
  if (!MESSAGE_ID_PATTERN.test(id)) throw new Error(`spool: unsafe message id ${JSON.stringify(id)}`);
  if (!Number.isSafeInteger(input.timeMs) || input.timeMs < 0) throw new Error('spool: bad message time');
  if (input.local.length !== envelope.recipients.length) throw new Error('spool: localRecipients does not match recipients');
  const n = stuffed.length;
  if (n > 0 && (stuffed[n - 1] !== LF || stuffed[n - 2] !== CR)) throw new Error('spool: message does not end with CRLF');

  let env = `MAIL FROM:${formatPath(envelope.sender)}${formatParameters(envelope.mailParams)}\r\n`;
  for (const r of envelope.recipients) env += `RCPT TO:${formatPath(r.mailbox)}${formatParameters(r.params)}\r\n`;
  env += DATA_LINE;
  const envBytes = Buffer.byteLength(env, 'utf8');
  const len = envBytes + n + 3;
  const auth = envelope.authUser === null ? '' : ` auth=${encodeURIComponent(envelope.authUser)}`;
  const prefix = `${NOOP_PREFIX}${id} t=${input.timeMs} len=${len}${formatLocalMask(input.local)}${auth}${formatSession(input.session)}`;
  const lineBytes = prefix.length + CRC_FIELD.length + 8 + 3; // " crc=", 8 hex digits, '"', CRLF
  const buf = Buffer.allocUnsafe(lineBytes + len);
  buf.write(prefix, 0, 'latin1');
  const bodyStart = lineBytes;
  buf.write(env, bodyStart, 'utf8');
  buf.set(stuffed, bodyStart + envBytes);
  const end = lineBytes + len;
  buf[end - 3] = 46;
  buf[end - 2] = CR;
  buf[end - 1] = LF;
  // The only end-of-data line must be ours: search from the CRLF that ends "DATA".
  const term = buf.indexOf(TERMINATOR, bodyStart + envBytes - 2);
  if (term !== end - 5) throw new Error('spool: message contains an end-of-data line (not dot-stuffed)');
  const crc = Bun.hash.crc32(buf.subarray(bodyStart, end), Bun.hash.crc32(buf.subarray(0, prefix.length)));
  buf.write(`${CRC_FIELD}${hex8(crc)}"\r\n`, prefix.length, 'latin1');
  return buf;
}

/** The session fields of a record line; none when the caller knows nothing of the session. */
function formatSession(session: SessionFacts | undefined): string {
  if (session === undefined) return '';
  const field = (name: string, value: string, max: number) => {
    const encoded = encodeURIComponent(value);
    // A value too long for its field is left out rather than cut: the record stays readable.
    return encoded === '' || encoded.length > max ? '' : ` ${name}=${encoded}`;
  };
  return `${field('client', session.clientAddress, 200)}${field('helo', session.heloName, 600)}${session.tls === null ? '' : field('tls', session.tls, 60)}`;
}

/** What the record line at the start of `line` tells of the session, or null when it does not parse. */
export function parseRecordSession(line: string): { readonly id: string; readonly clientAddress: string | null; readonly heloName: string | null; readonly tls: string | null } | null {
  const m = HEADER_LINE.exec(line);
  if (m === null) return null;
  const decode = (v: string | undefined) => {
    if (v === undefined) return null;
    try {
      return decodeURIComponent(v);
    } catch {
      return null;
    }
  };
  return { id: m[1], clientAddress: decode(m[6]), heloName: decode(m[7]), tls: decode(m[8]) };
}

/** Builds an Envelope from stored MAIL and RCPT lines and the NOOP fields (the inverse of formatRecord). */
function parseEnvelope(text: string, mask: string | undefined, authField: string | undefined): Envelope | string {
  const lines = text.split('\r\n');
  const mail = lines[0] ?? '';
  if (!mail.startsWith('MAIL ')) return 'the record has no MAIL line';
  const from = parsePathArgument(mail.slice(5), 'FROM');
  if (!from.ok) return 'the MAIL line does not parse';
  const sender = parsePath(from.path, { allowNull: true, utf8: true });
  if (!sender.ok) return `the MAIL path does not parse: ${sender.why}`;
  const mailParams = parseParameters(sender.rest);
  if (!mailParams.ok) return 'the MAIL parameters do not parse';
  const recipients: Recipient[] = [];
  if (lines.length < 3 || lines[lines.length - 2] !== 'DATA' || lines[lines.length - 1] !== '') {
    return 'the envelope does not end with DATA';
  }
  for (let i = 1; i < lines.length - 2; i++) {
    const line = lines[i];
    if (!line.startsWith('RCPT ')) return 'a line between MAIL and DATA is not RCPT';
    const to = parsePathArgument(line.slice(5), 'TO');
    if (!to.ok) return 'a RCPT line does not parse';
    const path = parsePath(to.path, { allowNull: false, utf8: true });
    if (!path.ok || path.mailbox === null) return 'a RCPT path does not parse';
    const params = parseParameters(path.rest);
    if (!params.ok) return 'RCPT parameters do not parse';
    recipients.push({ mailbox: path.mailbox as Mailbox, params: params.params, local: false });
  }
  if (recipients.length === 0) return 'the record has no RCPT line';
  const local = parseLocalMask(mask, recipients.length);
  let authUser: string | null = null;
  try {
    if (authField !== undefined) authUser = decodeURIComponent(authField);
  } catch {
    return 'the auth field does not decode';
  }
  const params = mailParams.params;
  const body = params.find((p) => p.name === 'BODY')?.value?.toUpperCase();
  const size = params.find((p) => p.name === 'SIZE')?.value;
  return {
    sender: sender.mailbox,
    mailParams: params,
    recipients: recipients.map((r, i) => ({ ...r, local: local[i] })),
    utf8: params.some((p) => p.name === 'SMTPUTF8'),
    body: body === '8BITMIME' || body === 'BINARYMIME' ? body : '7BIT',
    declaredSize: size !== undefined && size !== null && /^\d+$/.test(size) ? Number(size) : null,
    authUser,
  };
}

function cachedEnvelope(text: string, mask: string | undefined, authField: string | undefined, cache: EnvelopeCache | undefined): Envelope | string {
  if (cache === undefined) return parseEnvelope(text, mask, authField);
  const key = `${mask ?? ''} ${authField ?? ''} ${text}`;
  const known = cache.get(key);
  if (known !== undefined) return known;
  const parsed = parseEnvelope(text, mask, authField);
  if (cache.size >= ENVELOPE_CACHE_ENTRIES) cache.clear();
  cache.set(key, parsed);
  return parsed;
}

/**
 * Reads the record that starts at `offset` in `bytes` (a whole segment, or its tail).
 * `end` of a bad record is where it would end by its own length field when that looks
 * trustworthy (the next record, or the end of the bytes, starts there), else null.
 */
export function parseRecordAt(bytes: Buffer, offset: number, envelopes?: EnvelopeCache): RecordScan {
  const lf = bytes.indexOf(LF, offset);
  if (lf < 0 || lf - offset >= MAX_RECORD_LINE_BYTES) {
    if (lf < 0 && bytes.length - offset < MAX_RECORD_LINE_BYTES) return { kind: 'short' };
    return { kind: 'bad', reason: 'no record line (NOOP "mailbox …") at this offset', end: null };
  }
  const line = bytes.toString('latin1', offset, lf + 1);
  const m = HEADER_LINE.exec(line);
  if (!m) return { kind: 'bad', reason: 'the record line (NOOP "mailbox …") does not parse', end: null };
  const lineBytes = lf + 1 - offset;
  const len = Number(m[3]);
  const end = lf + 1 + len;
  if (end > bytes.length) return { kind: 'short', needs: end - offset };
  const trusted = () => (end === bytes.length || isRecordStart(bytes, end) ? end : null);
  const crcAt = line.lastIndexOf(CRC_FIELD);
  const stored = m[9];
  const computed = hex8(Bun.hash.crc32(bytes.subarray(lf + 1, end), Bun.hash.crc32(bytes.subarray(offset, offset + crcAt))));
  if (computed !== stored) {
    return { kind: 'bad', reason: `checksum mismatch (stored ${stored}, computed ${computed})`, end: trusted() };
  }
  // Both checks below guard against a writer bug; the checksum already vouches for the bytes.
  const dataAt = bytes.indexOf(`\r\n${DATA_LINE}`, lf + 1, 'latin1');
  if (dataAt < 0 || dataAt + 8 > end - 3) return { kind: 'bad', reason: 'the record has no DATA line', end: trusted() };
  if (bytes.indexOf(TERMINATOR, dataAt + 6) !== end - 5) {
    return { kind: 'bad', reason: 'the message does not end at the record length', end: trusted() };
  }
  const envelope = cachedEnvelope(bytes.toString('utf8', lf + 1, dataAt + 8), m[4], m[5], envelopes);
  if (typeof envelope === 'string') return { kind: 'bad', reason: envelope, end: trusted() };
  const idAt = offset + NOOP_PREFIX.length;
  return {
    kind: 'record',
    record: {
      // Read from the bytes, not taken from the match: a match is a slice of `line` and would
      // keep the whole line alive for as long as the index holds the id.
      id: bytes.toString('latin1', idAt, idAt + m[1].length),
      timeMs: Number(m[2]),
      envelope,
      local: envelope.recipients.map((r) => r.local),
      offset,
      bytes: lineBytes + len,
      bodyOffset: dataAt + 8,
      bodyBytes: end - 3 - (dataAt + 8),
      size: end - 3 - (dataAt + 8) - stuffingDots(bytes, dataAt + 8, end - 3),
    },
  };
}

const LINE_START_DOT = Buffer.from('\n.', 'latin1');

/**
 * The dots dot-stuffing added to the message in bytes[start, end): one per line that starts
 * with "." (RFC 5321 §4.5.2), so the unstuffed size is the stored size minus this.
 */
export function stuffingDots(bytes: Uint8Array, start: number, end: number): number {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let dots = start < end && buf[start] === 0x2e ? 1 : 0;
  for (let at = buf.indexOf(LINE_START_DOT, start); at >= 0 && at + 1 < end; at = buf.indexOf(LINE_START_DOT, at + 2)) dots++;
  return dots;
}

/** True when a record marker begins at `offset`. */
export function isRecordStart(bytes: Buffer, offset: number): boolean {
  if (offset + RECORD_MARKER.length > bytes.length) return false;
  return bytes.compare(RECORD_MARKER, 0, RECORD_MARKER.length, offset, offset + RECORD_MARKER.length) === 0;
}

/** Verifies the checksum of one record held alone in `bytes` (used when copying it). */
export function checkRecord(bytes: Buffer): string | null {
  const scan = parseRecordAt(bytes, 0);
  if (scan.kind === 'record') return scan.record.bytes === bytes.length ? null : 'the record length does not match';
  return scan.kind === 'short' ? 'the record is cut short' : scan.reason;
}

/**
 * The offset of the next record after `from` that parses and passes its checksum, or -1.
 * This is how a scan resynchronises after damage: by the NOOP marker, vouched for by its checksum.
 */
export function findNextRecord(bytes: Buffer, from: number): number {
  for (let at = bytes.indexOf(RECORD_MARKER, from); at >= 0; at = bytes.indexOf(RECORD_MARKER, at + 1)) {
    if (parseRecordAt(bytes, at).kind === 'record') return at;
  }
  return -1;
}
