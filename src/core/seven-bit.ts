/**
 * @module 8-bit to 7-bit conversion of a message for a server without 8BITMIME (RFC 6152 §3,
 * as RFC 1652 §4 describes it): every leaf part whose body holds 8-bit octets is re-encoded as
 * quoted-printable (RFC 2045 §6.7), and the multiparts and messages around it say 7bit.
 * Rule 1: pure; bytes in, bytes out. What is not 8-bit is copied byte for byte.
 * Rule 2: what cannot be converted without changing what a reader sees is refused with a reason:
 *         a DKIM-signed message (the body hash would break, RFC 6376 §5.3), 8-bit octets in a
 *         structured header field, in a preamble or epilogue, or in a part already encoded.
 *         Unstructured fields (Subject, Comments, Content-Description) become RFC 2047 words.
 */
import { concat } from './data.ts';
import { encodeQuotedPrintable, encodeWords, foldHeader } from './mime-encoding.ts';
import { parseHeaderFields, parseMimeStructure, type MimeEntity } from './mime-structure.ts';

export type SevenBitConversion =
  | { readonly ok: true; readonly message: Uint8Array }
  | { readonly ok: false; readonly why: string };

const ENCODER = new TextEncoder();
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const LF = 10;
const SP = 32;
const TAB = 9;
const COLON = 58;
/** RFC 5322 §3.6.5 and RFC 2045 §8: fields whose whole value is text, so encoded words may stand in for it. */
const UNSTRUCTURED = new Set(['subject', 'comments', 'content-description']);

class Unconvertible extends Error {}

function eightBitIn(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] >= 0x80) return true;
  return false;
}

/**
 * Converts `message` (CRLF lines, not dot-stuffed) to 7-bit. A message with no 8-bit octet is
 * returned as it is.
 */
export function convertToSevenBit(message: Uint8Array): SevenBitConversion {
  if (!eightBitIn(message, 0, message.length)) return { ok: true, message };
  const root = parseMimeStructure(message);
  if (parseHeaderFields(message, root.headerStart, root.headerEnd).some((f) => f.name.toLowerCase() === 'dkim-signature')) {
    return { ok: false, why: 'the message is DKIM-signed, and converting its 8-bit parts would break the signature (RFC 6376)' };
  }
  const out: Uint8Array[] = [];
  try {
    convertEntity(message, root, true, out);
  } catch (err) {
    if (err instanceof Unconvertible) return { ok: false, why: err.message };
    throw err;
  }
  return { ok: true, message: concat(out) };
}

function convertEntity(bytes: Uint8Array, e: MimeEntity, top: boolean, out: Uint8Array[]): void {
  if (!eightBitIn(bytes, e.headerStart, e.bodyEnd)) {
    out.push(bytes.subarray(e.headerStart, e.bodyEnd));
    return;
  }
  const bodyEightBit = eightBitIn(bytes, e.bodyStart, e.bodyEnd);
  const container = e.children.length > 0 || e.message !== null;
  let cte: string | null = null;
  if (bodyEightBit) {
    if (container) {
      // RFC 2045 §6.4: a multipart or message/rfc822 says 7bit once nothing inside is 8-bit.
      if (e.transferEncoding === '8bit' || e.transferEncoding === 'binary') cte = '7bit';
    } else if (e.type === 'multipart' || e.type === 'message') {
      throw new Unconvertible(`a ${e.type}/${e.subtype} part holds 8-bit octets that are not inside a part that could be encoded`);
    } else if (e.transferEncoding === '7bit' || e.transferEncoding === '8bit' || e.transferEncoding === 'binary') {
      cte = 'quoted-printable';
    } else {
      throw new Unconvertible(`a part encoded as ${e.transferEncoding} holds 8-bit octets`);
    }
  }
  writeHeader(bytes, e, cte, top, out);
  out.push(bytes.subarray(e.headerEnd, e.bodyStart));
  if (!bodyEightBit) {
    out.push(bytes.subarray(e.bodyStart, e.bodyEnd));
  } else if (e.message !== null) {
    convertEntity(bytes, e.message, false, out);
  } else if (e.children.length > 0) {
    let at = e.bodyStart;
    for (const child of e.children) {
      copyDelimiters(bytes, at, child.headerStart, out);
      convertEntity(bytes, child, false, out);
      at = child.bodyEnd;
    }
    copyDelimiters(bytes, at, e.bodyEnd, out);
  } else {
    out.push(ENCODER.encode(encodeQuotedPrintable(bytes.subarray(e.bodyStart, e.bodyEnd))));
  }
}

/** The preamble, delimiters and epilogue of a multipart are copied; they cannot be encoded. */
function copyDelimiters(bytes: Uint8Array, start: number, end: number, out: Uint8Array[]): void {
  if (eightBitIn(bytes, start, end)) throw new Unconvertible('a multipart preamble or epilogue holds 8-bit octets');
  out.push(bytes.subarray(start, end));
}

/**
 * Copies the header fields of `e`, replacing Content-Transfer-Encoding with `cte` when given
 * (adding it, and MIME-Version at the top, when absent) and encoding 8-bit unstructured fields.
 */
function writeHeader(bytes: Uint8Array, e: MimeEntity, cte: string | null, top: boolean, out: Uint8Array[]): void {
  let replaced = false;
  let mimeVersion = false;
  let at = e.headerStart;
  while (at < e.headerEnd) {
    const end = fieldEnd(bytes, at, e.headerEnd);
    const colon = bytes.indexOf(COLON, at);
    const name = colon > at && colon < end ? String.fromCharCode(...bytes.subarray(at, colon)).trim() : '';
    const key = name.toLowerCase();
    if (key === 'mime-version') mimeVersion = true;
    if (key === 'content-transfer-encoding' && cte !== null) {
      out.push(ENCODER.encode(`Content-Transfer-Encoding: ${cte}\r\n`));
      replaced = true;
    } else if (!eightBitIn(bytes, at, end)) {
      out.push(bytes.subarray(at, end));
    } else if (UNSTRUCTURED.has(key)) {
      out.push(ENCODER.encode(encodedField(name, bytes.subarray(colon + 1, end))));
    } else {
      throw new Unconvertible(`the ${name || 'header'} field holds 8-bit octets, and only unstructured fields can be encoded (RFC 2047 §5)`);
    }
    at = end;
  }
  if (cte !== null && !replaced) {
    if (top && !mimeVersion) out.push(ENCODER.encode('MIME-Version: 1.0\r\n'));
    out.push(ENCODER.encode(`Content-Transfer-Encoding: ${cte}\r\n`));
  }
}

/** Where the field starting at `start` ends: after its last continuation line's line ending. */
function fieldEnd(bytes: Uint8Array, start: number, end: number): number {
  let at = start;
  for (;;) {
    const lf = bytes.indexOf(LF, at);
    if (lf < 0 || lf + 1 >= end) return end;
    at = lf + 1;
    if (bytes[at] !== SP && bytes[at] !== TAB) return at;
  }
}

/** RFC 2047 §5(1): the value as UTF-8 encoded words, unfolded first (RFC 5322 §2.2.3). */
function encodedField(name: string, raw: Uint8Array): string {
  let text: string;
  try {
    text = STRICT_UTF8.decode(raw);
  } catch {
    throw new Unconvertible(`the ${name} field holds 8-bit octets that are not UTF-8`);
  }
  const value = text.replace(/\r?\n(?=[ \t])/g, '').replace(/[\r\n]+$/, '').trim();
  return foldHeader(name, encodeWords(value));
}
