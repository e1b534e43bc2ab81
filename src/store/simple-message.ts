/**
 * @module What the index reads of a simple message (one text/plain part, no transfer encoding)
 * without running the whole MIME parser: the same fields postal-mime gives, from the same
 * header values, through postal-mime's own address and encoded-word decoders.
 * Rule 1: the result equals postal-mime's for every message it accepts (a test holds the two
 *         together), but for the text's line ends when the caller asks for them as stored;
 *         anything else (multipart, base64 or quoted-printable, format=flowed,
 *         another charset, a Content-Disposition, no end of the header section) is null and
 *         goes to postal-mime.
 * Rule 2: lines are read as postal-mime reads them: a line ends at LF, and the CRs before it
 *         are dropped; a header line starting with SP or HTAB continues the one before; the
 *         header section ends at the first empty line.
 */
import { addressParser, decodeWords, type Email } from 'postal-mime';

/** The fields of a parsed message the index derives its summary from. */
export type MessageParts = Pick<Email, 'from' | 'to' | 'cc' | 'bcc' | 'replyTo' | 'returnPath' | 'subject' | 'messageId' | 'date' | 'text' | 'html' | 'attachments'>;

const LF = 10;
const CR = 13;
// As postal-mime decodes header lines (a U+FEFF at a line's start is kept) and a utf-8 body.
const HEADER_DECODER = new TextDecoder('utf-8', { ignoreBOM: true });
const BODY_DECODER = new TextDecoder('utf-8');
/** Content-Type values read here: text/plain, with at most a utf-8 or us-ascii charset. */
const PLAIN = /^text\/plain[ \t]*(?:;[ \t]*charset[ \t]*=[ \t]*(?:"(utf-8|us-ascii)"|(utf-8|us-ascii))[ \t]*)?;?$/i;
/** Below postal-mime's maxHeadersSize (2 MB of header lines). */
const HEADERS_MAX = 1024 * 1024;
/** The header fields read below; the others are skipped. */
const READ_FIELDS = new Set(['from', 'return-path', 'to', 'cc', 'bcc', 'reply-to', 'subject', 'message-id', 'date', 'content-type', 'content-transfer-encoding', 'content-disposition']);
/** Transfer encodings postal-mime passes through unchanged. */
const IDENTITY = /^(?:7bit|8bit|binary)$/i;

/**
 * The parts postal-mime would give for `bytes`, or null when the message is not simple (Rule 1).
 * With `textAsStored` the text keeps the body's line ends (CRLF, bare CR) instead of postal-mime's
 * LF: for a reader that treats every CR and LF as whitespace and collapses whitespace runs (the
 * index's search text and snippet), which then skips rewriting them.
 */
export function parseSimpleMessage(bytes: Uint8Array, textAsStored = false): MessageParts | null {
  // The header section ends at the first line that holds nothing but CRs.
  let pos = 0;
  let headerEnd = -1;
  let bodyStart = -1;
  while (pos < bytes.length) {
    let lf = bytes.indexOf(LF, pos);
    const next = lf < 0 ? bytes.length : lf + 1;
    if (lf < 0) lf = bytes.length;
    let end = lf;
    while (end > pos && bytes[end - 1] === CR) end--;
    if (end === pos) {
      // A message that ends with the empty line has an empty body.
      headerEnd = pos;
      bodyStart = next;
      break;
    }
    pos = next;
  }
  // postal-mime refuses a header section over 2 MB (and the index then keeps an empty summary).
  if (bodyStart < 0 || bodyStart > HEADERS_MAX) return null;

  // Decoded at once: an LF byte is never part of a UTF-8 sequence, so each line decodes as it
  // would alone (an unfinished sequence before it is one U+FFFD either way).
  const lines = HEADER_DECODER.decode(bytes.subarray(0, headerEnd)).split('\n');
  const headers: { key: string; value: string }[] = [];
  let folded: string[] | null = null;
  const finish = () => {
    if (folded === null) return;
    // The name ends at the first colon, on the first line unless that has none: a field not
    // read here is passed over without joining or trimming its value.
    let line = folded[0];
    let sep = line.indexOf(':');
    let joined = folded.length === 1;
    if (sep < 0 && !joined) {
      line = folded.join('');
      sep = line.indexOf(':');
      joined = true;
    }
    const key = trimWsp(sep < 0 ? line : line.slice(0, sep)).toLowerCase();
    if (READ_FIELDS.has(key)) {
      if (!joined) line = folded.join('');
      const value = sep < 0 ? '' : line.slice(sep + 1);
      // A lone CR inside a line is a space to postal-mime (the line has no LF: split above).
      headers.push({ key, value: trimWsp(value.includes('\r') ? value.replace(/\r+/g, ' ') : value) });
    }
    folded = null;
  };
  // The split leaves an empty string after the section's last LF.
  for (let i = 0; i < lines.length - 1; i++) {
    let text = lines[i];
    let end = text.length;
    while (end > 0 && text.charCodeAt(end - 1) === CR) end--;
    if (end < text.length) text = text.slice(0, end);
    const first = text.charCodeAt(0);
    if (folded !== null && (first === 32 || first === 9)) folded.push(text);
    else {
      finish();
      folded = [text];
    }
  }
  finish();

  const first = (key: string) => headers.find((h) => h.key === key);
  const contentType = first('content-type');
  let asciiOnly = false;
  if (contentType !== undefined) {
    const m = PLAIN.exec(contentType.value);
    if (m === null) return null;
    asciiOnly = (m[1] ?? m[2] ?? '').toLowerCase() === 'us-ascii';
  }
  const encoding = first('content-transfer-encoding');
  if (encoding !== undefined && !IDENTITY.test(encoding.value)) return null;
  if (first('content-disposition') !== undefined) return null;

  const body = bytes.subarray(bodyStart);
  // us-ascii is windows-1252 to a TextDecoder: the same as utf-8 only for 7-bit bytes.
  if (asciiOnly && body.some((b) => b > 0x7f)) return null;
  const decoded = body.length > 0 ? BODY_DECODER.decode(body) : '';
  const text = textAsStored || body.length === 0 ? decoded : lineFeeds(decoded);

  const parts: MessageParts = { attachments: [] };
  const from = first('from');
  if (from !== undefined && from.value !== '') {
    const list = addresses(from.value);
    if (list.length > 0) parts.from = list[0];
  }
  const returnPath = first('return-path');
  if (returnPath !== undefined && returnPath.value !== '') {
    const list = addresses(returnPath.value);
    if (list.length > 0 && list[0].address) parts.returnPath = list[0].address;
  }
  for (const [key, field] of [['to', 'to'], ['cc', 'cc'], ['bcc', 'bcc'], ['reply-to', 'replyTo']] as const) {
    const list = [];
    for (const h of headers) if (h.key === key && h.value !== '') list.push(...addresses(h.value));
    if (list.length > 0) parts[field] = list;
  }
  const subject = first('subject');
  if (subject !== undefined && subject.value !== '') parts.subject = words(subject.value);
  const messageId = first('message-id');
  if (messageId !== undefined && messageId.value !== '') parts.messageId = words(messageId.value);
  const date = first('date');
  if (date !== undefined) {
    const d = new Date(date.value);
    parts.date = Number.isNaN(d.getTime()) ? date.value : d.toISOString();
  }
  if (text !== '') parts.text = text;
  return parts;
}

/**
 * `text` with every line, the last included, ending in "\n" without the CRs before it (Rule 2):
 * each pass of replaceAll takes one CR off every run before an LF. A run of CRs after the last
 * LF is a line of its own, as postal-mime reads it.
 */
function lineFeeds(text: string): string {
  let out = text;
  while (out.includes('\r\n')) out = out.replaceAll('\r\n', '\n');
  let end = out.length;
  while (end > 0 && out.charCodeAt(end - 1) === CR) end--;
  if (end < out.length) return `${out.slice(0, end)}\n`;
  return out.endsWith('\n') ? out : `${out}\n`;
}

/** A lone address, bare or in angle brackets, of characters no address parser treats specially. */
const PLAIN_ADDRESS = /^<?([A-Za-z0-9._+-]+@[A-Za-z0-9.-]+)>?$/;

/**
 * postal-mime's addressParser(value): what it gives a lone plain address (that address with no
 * name) is given without its tokenizer, the rest goes to it.
 */
function addresses(value: string): ReturnType<typeof addressParser> {
  const m = PLAIN_ADDRESS.exec(value);
  if (m !== null && (value.charCodeAt(0) === 60) === (value.charCodeAt(value.length - 1) === 62)) return [{ name: '', address: m[1] }];
  return addressParser(value);
}

/** postal-mime's decodeWords(value), which leaves a value without "=?" (no encoded word) as it is. */
function words(value: string): string {
  return value.includes('=?') ? decodeWords(value) : value;
}

/** Trims only SP and HTAB, as postal-mime trims field names and values. */
function trimWsp(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--;
  return s.slice(start, end);
}
