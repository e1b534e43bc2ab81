/**
 * @module What the index reads of a simple message (one text/plain part, no transfer encoding)
 * without running the whole MIME parser: the same fields postal-mime gives, from the same
 * header values, through postal-mime's own address and encoded-word decoders.
 * Rule 1: the result equals postal-mime's for every message it accepts (a test holds the two
 *         together); anything else (multipart, base64 or quoted-printable, format=flowed,
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
/** Transfer encodings postal-mime passes through unchanged. */
const IDENTITY = /^(?:7bit|8bit|binary)$/i;

/** The parts postal-mime would give for `bytes`, or null when the message is not simple (Rule 1). */
export function parseSimpleMessage(bytes: Uint8Array): MessageParts | null {
  const headers: { key: string; value: string }[] = [];
  let folded: string[] | null = null;
  const finish = () => {
    if (folded === null) return;
    const line = folded.join('');
    const sep = line.indexOf(':');
    headers.push({ key: trimWsp(sep < 0 ? line : line.slice(0, sep)).toLowerCase(), value: sep < 0 ? '' : trimWsp(line.slice(sep + 1).replace(/[\r\n]+/g, ' ')) });
    folded = null;
  };
  let pos = 0;
  let bodyStart = -1;
  while (pos < bytes.length) {
    let lf = bytes.indexOf(LF, pos);
    const next = lf < 0 ? bytes.length : lf + 1;
    if (lf < 0) lf = bytes.length;
    let end = lf;
    while (end > pos && bytes[end - 1] === CR) end--;
    if (end === pos) {
      // The empty line ends the header section; a message that ends with it has an empty body.
      bodyStart = next;
      break;
    }
    const text = HEADER_DECODER.decode(bytes.subarray(pos, end));
    if (folded !== null && (bytes[pos] === 32 || bytes[pos] === 9)) folded.push(text);
    else {
      finish();
      folded = [text];
    }
    pos = next;
  }
  // postal-mime refuses a header section over 2 MB (and the index then keeps an empty summary).
  if (bodyStart < 0 || bodyStart > HEADERS_MAX) return null;
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
  let text = '';
  if (body.length > 0) {
    // Every line, the last included, ends in "\n" without the CRs before it (Rule 2).
    text = BODY_DECODER.decode(body).replace(/\r*\n/g, '\n').replace(/\r+$/, '');
    if (!text.endsWith('\n')) text += '\n';
  }

  const parts: MessageParts = { attachments: [] };
  const from = first('from');
  if (from !== undefined && from.value !== '') {
    const list = addressParser(from.value);
    if (list.length > 0) parts.from = list[0];
  }
  const returnPath = first('return-path');
  if (returnPath !== undefined && returnPath.value !== '') {
    const list = addressParser(returnPath.value);
    if (list.length > 0 && list[0].address) parts.returnPath = list[0].address;
  }
  for (const [key, field] of [['to', 'to'], ['cc', 'cc'], ['bcc', 'bcc'], ['reply-to', 'replyTo']] as const) {
    const list = [];
    for (const h of headers) if (h.key === key && h.value !== '') list.push(...addressParser(h.value));
    if (list.length > 0) parts[field] = list;
  }
  const subject = first('subject');
  if (subject !== undefined && subject.value !== '') parts.subject = decodeWords(subject.value);
  const messageId = first('message-id');
  if (messageId !== undefined && messageId.value !== '') parts.messageId = decodeWords(messageId.value);
  const date = first('date');
  if (date !== undefined) {
    const d = new Date(date.value);
    parts.date = Number.isNaN(d.getTime()) ? date.value : d.toISOString();
  }
  if (text !== '') parts.text = text;
  return parts;
}

/** Trims only SP and HTAB, as postal-mime trims field names and values. */
function trimWsp(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--;
  return s.slice(start, end);
}
