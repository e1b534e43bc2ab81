/**
 * @module Building IMAP response data (RFC 3501 §4, §9): strings, nstrings, flag lists, dates.
 * Rule 1: a string goes out quoted when RFC 3501 §4.3 allows it (short 7-bit text without CR, LF
 *         or NUL) and as a literal otherwise, so any octets can be carried; the choice is made
 *         here only.
 * Rule 2: a response is built as chunks (text, and message bytes kept as they are), never as one
 *         big string, so a FETCH of BODY[] copies the message once at most.
 */
import { civilFromDays } from '../calendar.ts';

const ENCODER = new TextEncoder();
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
// Longer quoted strings are legal, but a literal is cheaper to read past for the client.
const MAX_QUOTED_OCTETS = 1024;
/** ASCII without NUL, CR and LF: quotable as it stands (one octet per character). */
const QUOTABLE_TEXT = /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/;
/** Text parts joined into one chunk at a time, so a response of many messages is not one huge join. */
const TEXT_PARTS_PER_CHUNK = 512;

/** RFC 3501 §4.3: whether `bytes` may be sent as a quoted string (7-bit, no CR, LF or NUL). */
function quotable(bytes: Uint8Array): boolean {
  if (bytes.length > MAX_QUOTED_OCTETS) return false;
  for (const b of bytes) if (b === 0 || b === 10 || b === 13 || b > 127) return false;
  return true;
}

/** RFC 3501 §9: ATOM-CHAR, for astrings that may go out bare. */
function isAtomText(text: string): boolean {
  return /^[\x21-\x7e]+$/.test(text) && !/[(){ %*"\\\]]/.test(text);
}

/** Collects the chunks of one response: text as strings, octets as they are. */
export class ResponseBuilder {
  readonly #chunks: (string | Uint8Array)[] = [];
  /** Text since the last chunk, joined once when flushed: thousands of += on one string cost far more. */
  readonly #text: string[] = [];

  /** Protocol text as is (atoms, numbers, parentheses, spaces). */
  raw(text: string): this {
    this.#text.push(text);
    if (this.#text.length >= TEXT_PARTS_PER_CHUNK) this.#flushText();
    return this;
  }

  /** RFC 3501 §4.3: a string, quoted if it can be, else a literal "{n}" CRLF octets. */
  string(value: string | Uint8Array): this {
    if (typeof value === 'string' && value.length <= MAX_QUOTED_OCTETS && QUOTABLE_TEXT.test(value)) return this.raw(`"${value.replace(/["\\]/g, '\\$&')}"`);
    const bytes = typeof value === 'string' ? ENCODER.encode(value) : value;
    if (quotable(bytes)) {
      let quoted = '"';
      for (const b of bytes) quoted += b === 34 || b === 92 ? `\\${String.fromCharCode(b)}` : String.fromCharCode(b);
      this.#text.push(`${quoted}"`);
      return this;
    }
    return this.literal(bytes);
  }

  /** RFC 3501 §4.3: always a literal (BODY[] data, whatever its bytes). */
  literal(bytes: Uint8Array): this {
    this.#text.push(`{${bytes.length}}\r\n`);
    this.#flushText();
    if (bytes.length > 0) this.#chunks.push(bytes);
    return this;
  }

  /** RFC 3501 §4.5: NIL for an absent value, else a string. */
  nstring(value: string | Uint8Array | null): this {
    return value === null ? this.raw('NIL') : this.string(value);
  }

  /** RFC 3501 §9 astring: an atom when the text is one (and is not NIL), else a string. */
  astring(value: string): this {
    return isAtomText(value) && value.toUpperCase() !== 'NIL' ? this.raw(value) : this.string(value);
  }

  /** RFC 3501 §9 flag-list: "(" [flag *(SP flag)] ")". */
  flagList(flags: Iterable<string>): this {
    return this.raw(`(${[...flags].join(' ')})`);
  }

  /** The chunks to write, in order. */
  build(): (string | Uint8Array)[] {
    this.#flushText();
    return this.#chunks;
  }

  #flushText(): void {
    if (this.#text.length === 0) return;
    this.#chunks.push(this.#text.join(''));
    this.#text.length = 0;
  }
}

/** RFC 3501 §2.3.2: a flag or keyword as a client may set it; system flags are the five of §2.3.2. */
export function isValidFlag(flag: string): boolean {
  if (flag.startsWith('\\')) return /^\\(Seen|Answered|Flagged|Deleted|Draft)$/i.test(flag);
  return isAtomText(flag);
}

/** The month number (1-12) of an English three-letter month name, any case; null otherwise. */
export function monthNumber(name: string): number | null {
  const i = MONTHS.findIndex((m) => m.toLowerCase() === name.toLowerCase());
  return i < 0 ? null : i + 1;
}

const two = (n: number) => String(n).padStart(2, '0');

/**
 * RFC 3501 §9 date-time: DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
 * DQUOTE, e.g. " 1-Dec-2026 23:41:20 +0000", for epoch milliseconds shown at `offsetMinutes`.
 */
export function formatInternalDate(epochMs: number, offsetMinutes = 0): string {
  const local = Math.floor(epochMs / 1000) + offsetMinutes * 60;
  const days = Math.floor(local / 86400);
  const secs = local - days * 86400;
  const { year, month, day } = civilFromDays(days);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const off = Math.abs(offsetMinutes);
  const dayText = String(day).padStart(2, ' ');
  return `"${dayText}-${MONTHS[month - 1]}-${year} ${two(Math.floor(secs / 3600))}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)} ${sign}${two(Math.floor(off / 60))}${two(off % 60)}"`;
}
