/**
 * @module Encodings that make 8-bit text fit a 7-bit channel: quoted-printable bodies (RFC 2045
 * §6.7) and RFC 2047 encoded words in header fields, with header folding (RFC 5322 §2.2.3).
 * Rule: pure; every line they produce ends in CRLF and stays within the RFC's line lengths.
 */
import { encodeBase64 } from './base-encoding.ts';

const ENCODER = new TextEncoder();
const HEX = '0123456789ABCDEF';
// RFC 2045 §6.8 and §6.7 rule 5: encoded lines are at most 76 characters.
const ENCODED_LINE = 76;
// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
const LINE_LIMIT = 78;
/** RFC 2047 §2: an encoded word is at most 75 characters. */
export const ENCODED_WORD_LIMIT = 75;

/**
 * RFC 2045 §6.7: quoted-printable. Input lines end in CRLF (hard breaks, kept); encoded lines
 * are at most 76 characters, soft breaks ("=" CRLF) fold longer ones; a space or tab at the end
 * of a line is encoded, so that no transport can strip it.
 */
export function encodeQuotedPrintable(bytes: Uint8Array): string {
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(10, start);
    const hardBreak = end >= 0;
    if (!hardBreak) end = bytes.length;
    const lineEnd = hardBreak && end > start && bytes[end - 1] === 13 ? end - 1 : end;
    const tokens: string[] = [];
    for (let i = start; i < lineEnd; i++) {
      const b = bytes[i];
      const last = i === lineEnd - 1;
      const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
      tokens.push(literal ? String.fromCharCode(b) : `=${HEX[b >> 4]}${HEX[b & 15]}`);
    }
    let line = '';
    tokens.forEach((token, i) => {
      // The last token may use the whole line; any other leaves room for the soft-break "=".
      const limit = i === tokens.length - 1 ? ENCODED_LINE : ENCODED_LINE - 1;
      if (line.length + token.length > limit) {
        out.push(`${line}=\r\n`);
        line = '';
      }
      line += token;
    });
    out.push(hardBreak ? `${line}\r\n` : line);
    start = end + 1;
  }
  return out.join('');
}

// ---- RFC 2047 encoded words ----

/** RFC 2047 §5(3): the characters a "Q" word may carry as they are, in any header context. */
function qSafe(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    byte === 0x21 || byte === 0x2a || byte === 0x2b || byte === 0x2d || byte === 0x2f
  );
}

function qLength(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) n += qSafe(b) || b === 0x20 ? 1 : 3;
  return n;
}

function qEncode(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x20) out += '_';
    else if (qSafe(b)) out += String.fromCharCode(b);
    else out += `=${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}


/**
 * Encodes text as UTF-8 encoded words of at most `firstLimit` characters for the first and 75
 * for the rest. Each word holds whole characters (RFC 2047 §5).
 */
export function encodeWords(text: string, firstLimit: number = ENCODED_WORD_LIMIT): string[] {
  const all = ENCODER.encode(text);
  // "Q" stays readable for mostly-Latin text; it is chosen unless it is much longer than "B".
  const useQ = qLength(all) <= Math.ceil(all.length / 3) * 4 * 1.5;
  const prefix = useQ ? '=?UTF-8?Q?' : '=?UTF-8?B?';
  const overhead = prefix.length + 2;
  const encodedLength = (n: number, q: number) => (useQ ? q : Math.ceil(n / 3) * 4);
  const words: string[] = [];
  let chunk: number[] = [];
  let q = 0;
  const flush = () => {
    const bytes = Uint8Array.from(chunk);
    words.push(`${prefix}${useQ ? qEncode(bytes) : encodeBase64(bytes)}?=`);
    chunk = [];
    q = 0;
  };
  for (const char of text) {
    const bytes = ENCODER.encode(char);
    const limit = (words.length === 0 ? firstLimit : ENCODED_WORD_LIMIT) - overhead;
    const addQ = qLength(bytes);
    if (chunk.length > 0 && encodedLength(chunk.length + bytes.length, q + addQ) > limit) flush();
    chunk.push(...bytes);
    q += addQ;
  }
  if (chunk.length > 0 || words.length === 0) flush();
  return words;
}

/**
 * Joins tokens with spaces into "Name: token token…", folding (CRLF + space, RFC 5322 §2.2.3)
 * before a token that would pass 78 characters. A token longer than a line stays whole.
 */
export function foldHeader(name: string, tokens: readonly string[]): string {
  const lines: string[] = [];
  let line = `${name}:`;
  let hasToken = false;
  for (const token of tokens) {
    if (hasToken && token !== '' && line.length + 1 + token.length > LINE_LIMIT) {
      lines.push(line);
      line = ` ${token}`;
    } else {
      line += ` ${token}`;
    }
    hasToken = true;
  }
  lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}
