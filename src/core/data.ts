/**
 * @module DATA framing: finding the end of a message, checking its lines, dot-stuffing both ways.
 * Rule 1: only <CRLF>.<CRLF> ends a message; a bare CR or LF never does (RFC 5321 §2.3.8,
 *         the SMTP smuggling class), and a message that contains one is refused whole.
 * Rule 2: the receiver keeps the message as it came on the wire (still dot-stuffed): the spool
 *         stores exactly that, so accepting a message copies no byte twice.
 */

const CR = 13;
const LF = 10;
const DOT = 46;

export type DataViolation = 'bare-line-ending' | 'line-too-long' | 'too-big';

export interface DataResult {
  /** The message as received, dot-stuffed, every line ending in CRLF, without the final ".". */
  readonly stuffed: Uint8Array;
  /** Bytes after dot-unstuffing: what the message will weigh for SIZE. */
  readonly size: number;
  readonly violation: DataViolation | null;
}

/**
 * Consumes the bytes that follow a 354 reply until the terminating line ".".
 * RFC 5321 §4.2.5: an oversized or malformed message is still read to its end before the reply.
 */
export class DataReceiver {
  readonly #maxBytes: number;
  readonly #maxLineBytes: number;
  #chunks: Uint8Array[] = [];
  #kept = 0;
  #seen = 0;
  #dots = 0;
  #lineBytes = 0;
  /** True at the start of the data and after every CRLF: the only places "." can end the message. */
  #atLineStart = true;
  /** The previous chunk ended with CR; the next byte decides whether it was bare. */
  #pendingCr = false;
  /** Progress through a terminator at a line start: 1 after ".", 2 after ".\r". */
  #terminator = 0;
  #violation: DataViolation | null = null;

  constructor(maxBytes: number, maxLineBytes: number) {
    this.#maxBytes = maxBytes;
    this.#maxLineBytes = maxLineBytes;
  }

  /**
   * Feeds bytes starting at `from`. Returns how many were consumed and whether the terminating
   * line was seen; bytes after it belong to the next command.
   */
  push(bytes: Uint8Array, from = 0): { consumed: number; done: boolean } {
    const end = bytes.length;
    let i = from;
    while (i < end) {
      const b = bytes[i];
      if (this.#terminator === 1) {
        this.#terminator = 0;
        if (b === CR) {
          this.#terminator = 2;
          i++;
          continue;
        }
        this.#dots++;
      } else if (this.#terminator === 2) {
        this.#terminator = 0;
        if (b === LF) {
          this.#append(bytes, from, i + 1);
          return { consumed: i + 1 - from, done: true };
        }
        this.#dots++;
        this.#violate('bare-line-ending');
      } else if (this.#atLineStart && b === DOT) {
        this.#atLineStart = false;
        this.#terminator = 1;
        // RFC 5321 §4.5.3.1.6 and §4.5.2: the limit is on the text line, and a leading dot is
        // transparency that the receiver removes, so it is not counted.
        this.#lineBytes = 0;
        i++;
        continue;
      }
      this.#atLineStart = false;
      if (this.#pendingCr) {
        this.#pendingCr = false;
        if (b === LF) {
          this.#endLine(true);
          i++;
          continue;
        }
        this.#violate('bare-line-ending');
      }
      // Native search to the next LF; a CR anywhere but just before it is bare.
      const lf = bytes.indexOf(LF, i);
      const stop = lf < 0 ? end : lf;
      const cr = bytes.indexOf(CR, i);
      if (cr >= 0 && cr < stop - 1) this.#violate('bare-line-ending');
      if (lf < 0) {
        this.#lineBytes += end - i;
        this.#pendingCr = bytes[end - 1] === CR;
        if (this.#pendingCr) this.#lineBytes--;
        i = end;
        break;
      }
      const crlf = lf > i && bytes[lf - 1] === CR;
      this.#lineBytes += lf - i - (crlf ? 1 : 0);
      this.#endLine(crlf);
      i = lf + 1;
    }
    this.#append(bytes, from, end);
    return { consumed: end - from, done: false };
  }

  #endLine(crlf: boolean): void {
    if (!crlf) this.#violate('bare-line-ending');
    if (this.#lineBytes + 2 > this.#maxLineBytes) this.#violate('line-too-long');
    this.#lineBytes = 0;
    this.#atLineStart = crlf;
  }

  #append(bytes: Uint8Array, from: number, to: number): void {
    this.#seen += to - from;
    if (this.#violation === 'too-big' || this.#violation === 'bare-line-ending') return;
    // The 3 bytes of ".\r\n" and the stuffing dots do not count toward SIZE.
    if (this.#seen - this.#dots - 3 > this.#maxBytes) {
      this.#violate('too-big');
      return;
    }
    if (to > from) {
      this.#chunks.push(bytes.slice(from, to));
      this.#kept += to - from;
    }
  }

  #violate(v: DataViolation): void {
    // A bare line ending outranks the others: it is the one that must never be accepted.
    if (this.#violation === null || v === 'bare-line-ending') this.#violation = v;
    if (v !== 'line-too-long') {
      this.#chunks = [];
      this.#kept = 0;
    }
  }

  /** The message, once push() has returned done. */
  result(): DataResult {
    const all = concat(this.#chunks, this.#kept);
    this.#chunks = [];
    const stuffed = all.length >= 3 ? all.subarray(0, all.length - 3) : all;
    return { stuffed, size: Math.max(0, this.#seen - this.#dots - 3), violation: this.#violation };
  }
}

export function concat(chunks: readonly Uint8Array[], total?: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const size = total ?? chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * RFC 5321 §4.5.2: removes the extra leading "." of every line. Input is a stuffed message whose
 * lines end in CRLF (as DataReceiver returns it). A message with no line starting with "." is
 * returned as it is, not copied.
 */
export function dotUnstuff(stuffed: Uint8Array): Uint8Array {
  if (!startsAnyLineWithDot(stuffed)) return stuffed;
  const out = new Uint8Array(stuffed.length);
  let o = 0;
  let i = 0;
  while (i < stuffed.length) {
    if (stuffed[i] === DOT) i++;
    let lf = stuffed.indexOf(LF, i);
    if (lf < 0) lf = stuffed.length - 1;
    out.set(stuffed.subarray(i, lf + 1), o);
    o += lf + 1 - i;
    i = lf + 1;
  }
  return out.subarray(0, o);
}

function startsAnyLineWithDot(bytes: Uint8Array): boolean {
  if (bytes[0] === DOT) return true;
  for (let lf = bytes.indexOf(LF); lf >= 0 && lf + 1 < bytes.length; lf = bytes.indexOf(LF, lf + 1)) {
    if (bytes[lf + 1] === DOT) return true;
  }
  return false;
}

/**
 * Prepares a message for DATA: every line ending becomes CRLF (bare LF from files, stdin or
 * PHP, and bare CR), a leading "." is doubled (RFC 5321 §4.5.2), and the text ends with CRLF.
 * The terminating ".\r\n" is not included.
 */
export function dotStuff(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.length + Math.ceil(message.length / 2) + 4);
  let o = 0;
  let lineStart = true;
  let buf = out;
  const grow = (need: number) => {
    if (o + need <= buf.length) return;
    const bigger = new Uint8Array(Math.max(buf.length * 2, o + need));
    bigger.set(buf.subarray(0, o));
    buf = bigger;
  };
  for (let i = 0; i < message.length; i++) {
    const b = message[i];
    grow(3);
    if (b === CR) {
      buf[o++] = CR;
      buf[o++] = LF;
      if (message[i + 1] === LF) i++;
      lineStart = true;
      continue;
    }
    if (b === LF) {
      buf[o++] = CR;
      buf[o++] = LF;
      lineStart = true;
      continue;
    }
    if (lineStart && b === DOT) buf[o++] = DOT;
    buf[o++] = b;
    lineStart = false;
  }
  if (!lineStart) {
    grow(2);
    buf[o++] = CR;
    buf[o++] = LF;
  }
  return buf.subarray(0, o);
}

/**
 * Checks a message received with BDAT (RFC 3030), which has no dot framing: every line must end
 * in CRLF and fit the text line limit, as for DATA, so that the spool can keep it as DATA.
 */
export function checkText(message: Uint8Array, maxLineBytes: number): DataViolation | null {
  let violation: DataViolation | null = null;
  let start = 0;
  while (start < message.length) {
    const lf = message.indexOf(LF, start);
    const stop = lf < 0 ? message.length : lf;
    const cr = message.indexOf(CR, start);
    if (lf < 0 || lf === start || message[lf - 1] !== CR || (cr >= 0 && cr < stop - 1)) return 'bare-line-ending';
    if (stop + 1 - start > maxLineBytes) violation = 'line-too-long';
    start = lf + 1;
  }
  return violation;
}
