/**
 * @module RFC 2047 encoded-words in header field values, decoded for search (IMAP SEARCH matches
 * decoded text, RFC 3501 §6.4.4). Pure.
 * Rule 1: "=?charset?B|Q?text?=" becomes the text in that charset; a word that does not decode
 *         (unknown charset, bad base64) stays as written.
 * Rule 2: white space between two adjacent encoded-words is dropped (RFC 2047 §6.2).
 * Rule 3: RFC 2231 language tags ("utf-8*en") are ignored.
 */
import { decodeBase64 } from './base-encoding.ts';

const WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
const BETWEEN_WORDS = /(\?=)[ \t\r\n]+(?==\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)/g;

function charsetDecoder(charset: string): TextDecoder | null {
  try {
    return new TextDecoder(charset.replace(/\*.*$/, '').toLowerCase() as ConstructorParameters<typeof TextDecoder>[0]);
  } catch {
    return null;
  }
}

/** RFC 2047 §4.2: "_" is a space, "=XX" an octet. */
function qBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '_') out.push(0x20);
    else if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(text.charCodeAt(i) & 0xff);
  }
  return new Uint8Array(out);
}

/** The value with its encoded-words decoded. */
export function decodeEncodedWords(value: string): string {
  if (!value.includes('=?')) return value;
  return value.replace(BETWEEN_WORDS, '$1').replace(WORD, (word, charset: string, encoding: string, text: string) => {
    const decoder = charsetDecoder(charset);
    const bytes = encoding === 'B' || encoding === 'b' ? decodeBase64(text) : qBytes(text);
    return decoder && bytes ? decoder.decode(bytes) : word;
  });
}
