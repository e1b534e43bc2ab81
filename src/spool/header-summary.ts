/**
 * @module The header summary a listing shows: From, To, Cc, Subject, Date and Message-ID, as
 * written (unfolded, RFC 5322 §2.2.3; encoded words left for the reader to decode).
 * Rule 1: pure; it reads the header section of a stored (dot-stuffed) message, which only
 *         differs from the message in lines that start with "." (none of these fields do).
 * Rule 2: the first field of each name wins (RFC 5322 §3.6 allows one of each); values are
 *         capped so a hostile header cannot bloat an index.
 * Rule 3: it runs at every commit, so it works on bytes: only the six fields' values are
 *         decoded (2.6 µs a message where a TextDecoder per line took 10.8), and the scan stops
 *         once all six are found. It sees the fields parseRawMessage() finds (a line that is
 *         not a field ends the header section); a test holds the two together.
 */

export interface HeaderSummary {
  readonly from: string;
  readonly to: string;
  readonly cc: string;
  readonly subject: string;
  readonly date: string;
  readonly messageId: string;
}

/** The bytes of a message's start that hold its summary fields in all but hostile messages. */
export const SUMMARY_HEAD_BYTES = 64 * 1024;
/** RFC 5322 §2.1.1: a line is at most 998 characters; an unfolded field may be longer. */
const VALUE_CHARS = 998;

type Key = keyof HeaderSummary;
const KEYS: readonly Key[] = ['from', 'to', 'cc', 'subject', 'date', 'messageId'];

const LF = 10;
const CR = 13;
const SP = 32;
const TAB = 9;

/** The field names as lower-case bytes, in KEYS order. */
const NAMES: readonly Uint8Array[] = ['from', 'to', 'cc', 'subject', 'date', 'message-id'].map((n) => new TextEncoder().encode(n));
const DECODER = new TextDecoder('utf-8', { fatal: false });
const COLON = 58;

/** Which of KEYS a field name (bytes start..end) is, or -1. */
function keyOf(bytes: Uint8Array, start: number, end: number): number {
  const length = end - start;
  for (let k = 0; k < NAMES.length; k++) {
    const name = NAMES[k];
    if (name.length !== length) continue;
    let i = 0;
    // ASCII letters lower-cased with | 0x20; '-' (0x2d) is unchanged by it.
    while (i < length && (bytes[start + i] | 0x20) === name[i]) i++;
    if (i === length) return k;
  }
  return -1;
}

/** A field name is printable ASCII without ":" or space (RFC 5322 §2.2). */
function isFieldName(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b < 0x21 || b > 0x7e || b === COLON) return false;
  }
  return true;
}

/** The summary of a message from its first bytes (the header section, or SUMMARY_HEAD_BYTES of it). */
export function headerSummary(head: Uint8Array): HeaderSummary {
  const bytes = head.length > SUMMARY_HEAD_BYTES ? head.subarray(0, SUMMARY_HEAD_BYTES) : head;
  const out: Record<Key, string> = { from: '', to: '', cc: '', subject: '', date: '', messageId: '' };
  let found = 0;
  /** The field being read (a KEYS index), -1 for one not summarised, -2 before any. */
  let current = -2;
  let value = '';
  const finish = () => {
    if (current >= 0) {
      const v = value.trim();
      out[KEYS[current]] = v.length > VALUE_CHARS ? v.slice(0, VALUE_CHARS) : v;
      found |= 1 << current;
    }
  };
  let at = 0;
  while (at < bytes.length) {
    const lf = bytes.indexOf(LF, at);
    const next = lf < 0 ? bytes.length : lf + 1;
    let end = lf < 0 ? bytes.length : lf;
    if (end > at && bytes[end - 1] === CR) end--;
    if (end === at) break;
    const first = bytes[at];
    if ((first === SP || first === TAB) && current !== -2) {
      // Line breaks are ASCII, so a line decodes alone as it would within its field.
      if (current >= 0) value += DECODER.decode(bytes.subarray(at, end));
    } else {
      const colon = bytes.indexOf(COLON, at);
      if (colon <= at || colon >= end || !isFieldName(bytes, at, colon)) break;
      finish();
      if (found === 0b111111) return out;
      const k = keyOf(bytes, at, colon);
      current = k >= 0 && (found & (1 << k)) === 0 ? k : -1;
      value = current >= 0 ? DECODER.decode(bytes.subarray(colon + 1, end)) : '';
    }
    at = next;
  }
  finish();
  return out;
}
