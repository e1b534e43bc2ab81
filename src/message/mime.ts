/**
 * @module MIME building blocks (RFC 2045-2049, RFC 2231): transfer encodings chosen by content,
 * base64 in 76-character lines, parameters with RFC 2231 encoding for non-ASCII values, content
 * types guessed from file names, and multipart bodies with boundaries that cannot occur inside.
 * Rule: pure. Bytes in, bytes out; every line ends in CRLF and stays under 998 octets.
 */

import { encodeQuotedPrintable } from '../core/mime-encoding.ts';

/** RFC 2045 §6: how a part's bytes are written. */
export type TransferEncoding = '7bit' | '8bit' | 'quoted-printable' | 'base64';

/** One part of a message body: its header fields (without the final blank line) and its body. */
export interface MimePart {
  readonly headers: readonly string[];
  /** Already transfer-encoded, CRLF line endings. */
  readonly body: Uint8Array;
}

const ENCODER = new TextEncoder();
const HEX = '0123456789ABCDEF';
// RFC 2045 §6.8 and §6.7 rule 5: encoded lines are at most 76 characters.
const ENCODED_LINE = 76;
// RFC 2045 §2.7-2.8: 7bit and 8bit lines are at most 998 octets before the CRLF.
const MAX_LINE = 998;
// RFC 2231 §3: parameter sections keep each header line comfortably under 78 characters.
const PARAM_SECTION = 60;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Common types by extension; anything unknown is application/octet-stream (RFC 2046 §4.5.1). */
const TYPES: Readonly<Record<string, string>> = Object.freeze({
  txt: 'text/plain', text: 'text/plain', log: 'text/plain', md: 'text/markdown', csv: 'text/csv',
  tsv: 'text/tab-separated-values', html: 'text/html', htm: 'text/html', css: 'text/css',
  ics: 'text/calendar', vcf: 'text/vcard', xml: 'application/xml', json: 'application/json',
  js: 'text/javascript', eml: 'message/rfc822', pdf: 'application/pdf', zip: 'application/zip',
  gz: 'application/gzip', tgz: 'application/gzip', tar: 'application/x-tar', bz2: 'application/x-bzip2',
  xz: 'application/x-xz', '7z': 'application/x-7z-compressed', rtf: 'application/rtf',
  doc: 'application/msword', xls: 'application/vnd.ms-excel', ppt: 'application/vnd.ms-powerpoint',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text', ods: 'application/vnd.oasis.opendocument.spreadsheet',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  svg: 'image/svg+xml', ico: 'image/vnd.microsoft.icon', bmp: 'image/bmp', tif: 'image/tiff', tiff: 'image/tiff',
  avif: 'image/avif', heic: 'image/heic', mp3: 'audio/mpeg', wav: 'audio/wav', ogg: 'audio/ogg',
  flac: 'audio/flac', mp4: 'video/mp4', webm: 'video/webm', mov: 'video/quicktime',
  pem: 'application/x-pem-file', asc: 'application/pgp-signature', sig: 'application/pgp-signature',
  wasm: 'application/wasm', bin: 'application/octet-stream',
});

/** The content type a file name suggests. */
export function guessContentType(filename: string): string {
  const dot = filename.lastIndexOf('.');
  const ext = dot < 0 ? '' : filename.slice(dot + 1).toLowerCase();
  return TYPES[ext] ?? 'application/octet-stream';
}

/** RFC 2045 §5.1: type "/" subtype, both tokens; parameters are not allowed here. */
export function isContentType(text: string): boolean {
  const slash = text.indexOf('/');
  return slash > 0 && TOKEN.test(text.slice(0, slash)) && TOKEN.test(text.slice(slash + 1));
}

// ---- transfer encodings ----

/** RFC 2045 §6.8: base64 in lines of 76 characters, each ending in CRLF. */
export function encodeBase64Lines(bytes: Uint8Array): Uint8Array {
  const text = (bytes as Uint8Array & { toBase64(): string }).toBase64();
  const lines = Math.ceil(text.length / ENCODED_LINE);
  const out = new Uint8Array(text.length + lines * 2);
  let o = 0;
  for (let i = 0; i < text.length; i += ENCODED_LINE) {
    const end = Math.min(text.length, i + ENCODED_LINE);
    for (let j = i; j < end; j++) out[o++] = text.charCodeAt(j);
    out[o++] = 13;
    out[o++] = 10;
  }
  return out;
}

/** Every line ending becomes CRLF, and the text ends with one (RFC 5322 §2.3). */
export function toCrlf(text: string): string {
  if (text === '') return '';
  const crlf = text.replace(/\r\n|\r|\n/g, '\r\n');
  return crlf.endsWith('\r\n') ? crlf : `${crlf}\r\n`;
}

function longestLine(bytes: Uint8Array): number {
  let longest = 0;
  let start = 0;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) {
    longest = Math.max(longest, i + 1 - start);
    start = i + 1;
  }
  return Math.max(longest, bytes.length - start);
}

/** Text with CRLF lines: 7bit when it can, 8bit when allowed, quoted-printable otherwise. */
export function chooseTextEncoding(bytes: Uint8Array, eightBitMime: boolean): TransferEncoding {
  const lineOk = longestLine(bytes) <= MAX_LINE + 2 && !bytes.includes(0);
  if (!lineOk) return 'quoted-printable';
  if (bytes.every((b) => b < 0x80)) return '7bit';
  return eightBitMime ? '8bit' : 'quoted-printable';
}

/**
 * An attachment's encoding. Bytes are kept exactly, so only content that is already CRLF text
 * may go as 7bit or quoted-printable; everything else (binary, bare LF, NUL) is base64.
 */
export function chooseAttachmentEncoding(bytes: Uint8Array, contentType: string): TransferEncoding {
  if (!contentType.toLowerCase().startsWith('text/')) return 'base64';
  let printable = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0) return 'base64';
    // A CR or LF that is not part of a CRLF pair would be changed on the wire.
    if (b === 13 && bytes[i + 1] !== 10) return 'base64';
    if (b === 10 && bytes[i - 1] !== 13) return 'base64';
    if ((b >= 32 && b < 127) || b === 9 || b === 10 || b === 13) printable++;
  }
  if (bytes.length > 0 && bytes[bytes.length - 1] !== 10) return 'base64';
  if (printable === bytes.length && longestLine(bytes) <= MAX_LINE + 2) return '7bit';
  // "Mostly text" (RFC 2045 §6.7's purpose): quoted-printable stays readable at a small cost.
  return printable >= bytes.length * 0.9 ? 'quoted-printable' : 'base64';
}

/** Applies a transfer encoding chosen by one of the functions above. */
export function encodeBody(bytes: Uint8Array, encoding: TransferEncoding): Uint8Array {
  switch (encoding) {
    case '7bit':
    case '8bit':
      return bytes;
    case 'quoted-printable':
      return ENCODER.encode(encodeQuotedPrintable(bytes));
    case 'base64':
      return encodeBase64Lines(bytes);
    default:
      encoding satisfies never;
      return bytes;
  }
}

// ---- parameters (RFC 2045 §5.1, RFC 2231) ----

function percentEncode(value: string): string {
  let out = '';
  for (const b of ENCODER.encode(value)) {
    // RFC 2231 §7: attribute-char is a token character other than "*", "'" and "%".
    const c = String.fromCharCode(b);
    out += b < 0x80 && TOKEN.test(c) && c !== '*' && c !== "'" && c !== '%' ? c : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

/**
 * `; name=value` items for a header: a token as it is, other ASCII as a quoted-string, and
 * non-ASCII or long values with RFC 2231 (charset, percent-encoding, numbered continuations).
 */
export function formatParameter(name: string, value: string): string[] {
  if (/[\r\n\0]/.test(value)) throw new Error(`the ${name} parameter contains a line break or NUL`);
  const ascii = /^[\x20-\x7e]*$/.test(value);
  if (ascii && TOKEN.test(value) && value.length <= PARAM_SECTION) return [`${name}=${value}`];
  if (ascii && value.length <= PARAM_SECTION) return [`${name}="${value.replace(/["\\]/g, '\\$&')}"`];
  const encoded = `utf-8''${percentEncode(value)}`;
  if (encoded.length <= PARAM_SECTION) return [`${name}*=${encoded}`];
  // RFC 2231 §4.1: split into name*0*, name*1*…; never inside a %XX triple.
  const sections: string[] = [];
  let rest = encoded;
  while (rest.length > 0) {
    let cut = Math.min(PARAM_SECTION, rest.length);
    const pct = rest.lastIndexOf('%', cut - 1);
    if (pct >= 0 && pct > cut - 3 && cut < rest.length) cut = pct;
    sections.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  return sections.map((s, i) => `${name}*${i}*=${s}`);
}

/** "Name: value; p1=…;" folded one parameter per line when they do not fit on one. */
export function headerWithParameters(name: string, value: string, params: readonly string[]): string {
  const oneLine = [`${name}: ${value}`, ...params].join('; ');
  if (oneLine.length <= 78) return oneLine;
  return [`${name}: ${value}`, ...params].join(';\r\n ');
}

// ---- multipart (RFC 2046 §5.1) ----

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  for (let i = haystack.indexOf(needle[0]); i >= 0 && i + needle.length <= haystack.length; i = haystack.indexOf(needle[0], i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}

/** The bytes of a part: header lines, a blank line, the body. */
export function partBytes(part: MimePart): Uint8Array {
  const head = ENCODER.encode(`${part.headers.join('\r\n')}\r\n\r\n`);
  const out = new Uint8Array(head.length + part.body.length);
  out.set(head, 0);
  out.set(part.body, head.length);
  return out;
}

/**
 * Joins parts into a multipart body. The boundary is `seed` made longer until no part contains
 * it: base64 and quoted-printable bodies never hold "=_", and the check covers 7bit/8bit text.
 */
export function multipart(subtype: 'mixed' | 'alternative' | 'related' | 'report', parts: readonly MimePart[], seed: string, params: readonly string[] = []): MimePart {
  const bodies = parts.map(partBytes);
  let boundary = `=_${seed}`;
  for (let n = 1; bodies.some((b) => contains(b, ENCODER.encode(`--${boundary}`))); n++) boundary = `=_${seed}.${n}`;
  const chunks: Uint8Array[] = [];
  for (const body of bodies) {
    // RFC 2046 §5.1.1: the CRLF before "--boundary" belongs to the delimiter, not to the part,
    // so a part that ends in a line break keeps it only with one more CRLF.
    chunks.push(ENCODER.encode(`--${boundary}\r\n`), body, ENCODER.encode('\r\n'));
  }
  chunks.push(ENCODER.encode(`--${boundary}--\r\n`));
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const body = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return { headers: [headerWithParameters('Content-Type', `multipart/${subtype}`, [`boundary="${boundary}"`, ...params])], body };
}
