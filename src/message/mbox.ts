/**
 * @module mbox files (RFC 4155): messages one after another, each opened by a "From " line.
 * Rule 1: pure; bytes in, views of the same bytes out (a copy only where a line is unescaped).
 * Rule 2: read as Python's mailbox module and mutt do: every line that starts with "From " opens
 *         a message, the empty line before it belongs to no message, and ">From " lines lose one
 *         ">" (mboxrd; for mboxo files this restores what the writer escaped).
 */

const LF = 10;
const FROM_ = Buffer.from('From ', 'latin1');

export interface MboxMessage {
  /** Where the "From " line starts in the file. */
  readonly offset: number;
  /** The "From " line without "From " and without its line break: "sender date". */
  readonly fromLine: string;
  /** The message (header and body), line endings as in the file. */
  readonly bytes: Uint8Array;
}

/** True when the bytes look like an mbox file: they start with a "From " line. */
export function isMbox(head: Uint8Array): boolean {
  return head.length >= FROM_.length && Buffer.from(head.buffer, head.byteOffset, FROM_.length).equals(FROM_);
}

function startsWithFrom(bytes: Buffer, at: number): boolean {
  return at + FROM_.length <= bytes.length && bytes.compare(FROM_, 0, FROM_.length, at, at + FROM_.length) === 0;
}

/** The messages of an mbox file, in order. */
export function* splitMbox(data: Uint8Array): Generator<MboxMessage> {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.length);
  let start = -1;
  let fromLine = '';
  let bodyStart = 0;
  let at = 0;
  while (at < bytes.length) {
    const lf = bytes.indexOf(LF, at);
    const next = lf < 0 ? bytes.length : lf + 1;
    if (startsWithFrom(bytes, at)) {
      if (start >= 0) yield message(bytes, start, fromLine, bodyStart, at);
      start = at;
      const end = lf < 0 ? bytes.length : lf > at && bytes[lf - 1] === 13 ? lf - 1 : lf;
      fromLine = bytes.toString('latin1', at + FROM_.length, end);
      bodyStart = next;
    }
    at = next;
  }
  if (start >= 0) yield message(bytes, start, fromLine, bodyStart, bytes.length);
}

function message(bytes: Buffer, offset: number, fromLine: string, from: number, to: number): MboxMessage {
  let end = to;
  // The empty line that separates messages (RFC 4155 §2) is not part of the one before it.
  if (end - from >= 2 && bytes[end - 1] === LF && bytes[end - 2] === LF) end -= 1;
  else if (end - from >= 4 && bytes[end - 1] === LF && bytes[end - 2] === 13 && bytes[end - 3] === LF) end -= 2;
  return { offset, fromLine, bytes: unescapeFromLines(bytes.subarray(from, end)) };
}

const ESCAPED = /^>+From /;

/** ">From " → "From ", ">>From " → ">From " at line starts; the same bytes when there is none. */
export function unescapeFromLines(bytes: Buffer): Uint8Array {
  if (bytes.indexOf('From ', 0, 'latin1') < 0) return bytes;
  const parts: Uint8Array[] = [];
  let copied = 0;
  let found = false;
  for (let at = 0; at < bytes.length; ) {
    const lf = bytes.indexOf(LF, at);
    const next = lf < 0 ? bytes.length : lf + 1;
    if (bytes[at] === 62 && ESCAPED.test(bytes.toString('latin1', at, Math.min(next, at + 64)))) {
      parts.push(bytes.subarray(copied, at));
      copied = at + 1;
      found = true;
    }
    at = next;
  }
  if (!found) return bytes;
  parts.push(bytes.subarray(copied));
  return Buffer.concat(parts);
}

/** The sender of a "From " line ("alice@example.org Thu Nov 27 …"), or null ("MAILER-DAEMON", "-"). */
export function fromLineSender(fromLine: string): string | null {
  const first = fromLine.trim().split(/\s+/)[0] ?? '';
  return first.includes('@') ? first.replace(/^<|>$/g, '') : null;
}
