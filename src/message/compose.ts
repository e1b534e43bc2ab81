/**
 * @module Composing a message (RFC 5322): header fields with RFC 2047 encoded words, folded to
 * 78 characters; a text body (7bit, 8bit or quoted-printable), an HTML alternative, inline
 * images (multipart/related, Content-ID) and attachments (multipart/mixed), per RFC 2045-2049.
 * Rule 1: pure. The time and the unique part of the Message-ID are given, never taken.
 * Rule 2: a line break inside a header value is refused, never cleaned up: it is how header
 *         injection works, and whatever the caller meant cannot be guessed.
 */
import { formatMailbox, parseMailbox, type Mailbox } from '../core/address.ts';
import { formatDate } from '../core/envelope.ts';
import {
  chooseAttachmentEncoding,
  chooseTextEncoding,
  encodeBody,
  formatParameter,
  headerWithParameters,
  isContentType,
  multipart,
  partBytes,
  toCrlf,
  type MimePart,
  type TransferEncoding,
} from './mime.ts';
import { ENCODED_WORD_LIMIT, encodeWords, foldHeader } from '../core/mime-encoding.ts';

export type { TransferEncoding } from './mime.ts';

/** A refused input, with the reason in words. */
export class ComposeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComposeError';
  }
}

/** An address as it appears in a header: an optional display name and the mailbox. */
export interface NamedAddress {
  readonly name: string | null;
  readonly mailbox: Mailbox;
}

export interface ComposeInput {
  /** "Name <local@domain>" or "local@domain". */
  readonly from: string;
  readonly to: readonly string[];
  readonly cc?: readonly string[];
  /** Recipients that get the message but appear in no header. */
  readonly bcc?: readonly string[];
  readonly subject?: string;
  readonly replyTo?: readonly string[];
  /** The text part. */
  readonly body: string;
  /** An HTML version of the body: the two go as multipart/alternative (RFC 2046 §5.1.4). */
  readonly html?: string;
  /** Files: inline ones (with a contentId) beside the HTML, the rest as attachments. */
  readonly attachments?: readonly Attachment[];
  /** Extra header fields, "Name: value". Date, Message-ID and Subject here replace the generated ones. */
  readonly headers?: readonly string[];
  /** The Date: header, in epoch milliseconds. */
  readonly timeMs: number;
  /** The left part of the Message-ID; it must be unique (a random or time-based id). */
  readonly uniqueId: string;
  /** The Message-ID domain when the sender's domain cannot be used (non-ASCII, address literal). */
  readonly hostname: string;
  /** The server offers 8BITMIME (RFC 6152), so non-ASCII text may go as 8bit. */
  readonly eightBitMime?: boolean;
}

/** A file to send with the message. */
export interface Attachment {
  /** The name the recipient sees (RFC 2183 filename; RFC 2231 when not ASCII). */
  readonly filename: string;
  /** "type/subtype", without parameters. */
  readonly contentType: string;
  readonly bytes: Uint8Array;
  /** For an inline part: its Content-ID without angle brackets, referred to as "cid:ID" in HTML. */
  readonly contentId?: string;
}

export interface ComposedMessage {
  /** The whole message, CRLF line endings. */
  readonly bytes: Uint8Array;
  /** With its angle brackets: "<id@domain>". */
  readonly messageId: string;
  readonly sender: Mailbox;
  /** To, Cc and Bcc, each address once, in that order. */
  readonly recipients: readonly Mailbox[];
  /** The text part's transfer encoding. */
  readonly transferEncoding: TransferEncoding;
  /** The top-level Content-Type without parameters: text/plain, multipart/mixed… */
  readonly contentType: string;
}

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
const LINE_LIMIT = 78;

const ENCODER = new TextEncoder();
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const FIELD_NAME = /^[!-9;-~]+$/;
const DOT_ATOM_TEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/;
const PRINTABLE = /^[\x20-\x7e\t]*$/;
const LOOKS_ENCODED = /=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=/;

/** Header fields built from the other inputs: they cannot also come from `headers`. */
const BUILT: Record<string, string> = {
  from: 'the sender',
  to: 'the To addresses',
  cc: 'the Cc addresses',
  bcc: 'the Bcc addresses (which never appear in the message)',
  'mime-version': 'the body',
  'content-type': 'the body',
  'content-transfer-encoding': 'the body',
};
const REPLACEABLE = new Set(['date', 'message-id', 'subject']);

function refuseBreaks(what: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new ComposeError(`${what} contains a line break (CR or LF); refused, as it could inject header fields`);
  if (value.includes('\0')) throw new ComposeError(`${what} contains a NUL character`);
}

// ---- addresses ----

/** Parses "Name <local@domain>", "\"Doe, J.\" <j@x>" or "local@domain". */
export function parseAddress(text: string): NamedAddress {
  refuseBreaks(`the address ${JSON.stringify(text)}`, text);
  const trimmed = text.trim();
  let name: string | null = null;
  let address = trimmed;
  if (trimmed.endsWith('>')) {
    const open = trimmed.lastIndexOf('<');
    if (open < 0) throw new ComposeError(`"${text}" has ">" without "<"`);
    address = trimmed.slice(open + 1, -1).trim();
    const phrase = trimmed.slice(0, open).trim();
    if (phrase.startsWith('"') && phrase.endsWith('"') && phrase.length >= 2) name = phrase.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (phrase !== '') name = phrase;
  }
  const parsed = parseMailbox(address, true);
  if (!parsed.ok) throw new ComposeError(`"${text}" is not a valid address: ${parsed.why}`);
  return { name, mailbox: parsed.mailbox };
}

/** Splits "a@x, Name <b@y>, \"Doe, J.\" <c@z>" at the commas that separate addresses. */
export function parseAddressList(text: string): NamedAddress[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '\\') {
      current += c + (text[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '<') angle = true;
    else if (!quoted && c === '>') angle = false;
    else if (!quoted && !angle && c === ',') {
      parts.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  parts.push(current);
  return parts.filter((p) => p.trim() !== '').map(parseAddress);
}

/**
 * The display name as header tokens: atoms as they are, other ASCII as one quoted-string,
 * anything else as RFC 2047 encoded words (§5(3): the restricted set for a phrase).
 */
function phraseTokens(name: string): string[] {
  const words = name.trim().split(/\s+/);
  if (words.every((w) => ATOM.test(w))) return words;
  if (PRINTABLE.test(name)) return [`"${name.replace(/["\\]/g, '\\$&')}"`];
  return encodeWords(name, ENCODED_WORD_LIMIT);
}

function addressTokens(address: NamedAddress): string[] {
  const angle = `<${formatMailbox(address.mailbox)}>`;
  if (address.name === null || address.name.trim() === '') return [formatMailbox(address.mailbox)];
  return [...phraseTokens(address.name), angle];
}

/** One address as it would appear in a header (unfolded). */
export function formatAddress(address: NamedAddress): string {
  return addressTokens(address).join(' ');
}

/** An unstructured value (Subject, most custom fields): as it is when plain ASCII, else encoded words. */
function unstructuredHeader(name: string, value: string): string {
  refuseBreaks(`the ${name} header`, value);
  if (PRINTABLE.test(value) && !LOOKS_ENCODED.test(value)) return foldHeader(name, value.split(' '));
  const room = LINE_LIMIT - name.length - 2;
  return foldHeader(name, encodeWords(value, room >= 20 ? Math.min(room, ENCODED_WORD_LIMIT) : ENCODED_WORD_LIMIT));
}

/** Folds between addresses; inside one only when it cannot fit on a line by itself. */
function addressHeader(name: string, addresses: readonly NamedAddress[]): string {
  const tokens: string[] = [];
  addresses.forEach((a, i) => {
    const t = addressTokens(a);
    if (i < addresses.length - 1) t[t.length - 1] += ',';
    const whole = t.join(' ');
    if (whole.length < LINE_LIMIT) tokens.push(whole);
    else tokens.push(...t);
  });
  return foldHeader(name, tokens);
}

interface CustomHeader {
  readonly name: string;
  readonly value: string;
}

function parseCustomHeader(text: string): CustomHeader {
  refuseBreaks(`the header ${JSON.stringify(text.slice(0, 40))}`, text);
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ComposeError(`the header "${text}" is not "Name: value"`);
  const name = text.slice(0, colon).trim();
  if (!FIELD_NAME.test(name)) throw new ComposeError(`"${name}" is not a valid header field name (RFC 5322 §2.2)`);
  const builtFrom = BUILT[name.toLowerCase()];
  if (builtFrom) throw new ComposeError(`the ${name} header is built from ${builtFrom}; it cannot be given as an extra header`);
  return { name, value: text.slice(colon + 1).trim() };
}

// ---- the message ----

function messageIdDomain(sender: Mailbox, hostname: string): string {
  const domain = sender.domain;
  if (/^[A-Za-z0-9.-]+$/.test(domain) && domain.includes('.')) return domain;
  // RFC 5322 §3.6.4: id-right is a dot-atom; a host name that is not one gives way to a placeholder.
  return /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$/.test(hostname) ? hostname : 'mailbox.invalid';
}

/** Builds the message; throws ComposeError on an input that cannot make a valid one. */
export function composeMessage(input: ComposeInput): ComposedMessage {
  const from = parseAddress(input.from);
  const to = input.to.flatMap(parseAddressList);
  const cc = (input.cc ?? []).flatMap(parseAddressList);
  const bcc = (input.bcc ?? []).flatMap(parseAddressList);
  if (to.length + cc.length + bcc.length === 0) throw new ComposeError('the message has no recipient');
  const custom = (input.headers ?? []).map(parseCustomHeader);
  const replaced = new Map(custom.filter((h) => REPLACEABLE.has(h.name.toLowerCase())).map((h) => [h.name.toLowerCase(), h]));
  const extra = custom.filter((h) => !REPLACEABLE.has(h.name.toLowerCase()));

  if (!DOT_ATOM_TEXT.test(input.uniqueId)) throw new ComposeError(`"${input.uniqueId}" cannot be the left part of a Message-ID`);
  let messageId = `<${input.uniqueId}@${messageIdDomain(from.mailbox, input.hostname)}>`;
  const givenId = replaced.get('message-id');
  if (givenId) {
    // RFC 5322 §3.6.4: msg-id is "<" id-left "@" id-right ">".
    if (!/^<[^<>@\s]+@[^<>@\s]+>$/.test(givenId.value)) throw new ComposeError(`"${givenId.value}" is not a Message-ID like <id@domain>`);
    messageId = givenId.value;
  }
  const subject = replaced.get('subject')?.value ?? input.subject ?? '';
  const date = replaced.get('date')?.value ?? formatDate(input.timeMs);

  const { part, textEncoding } = buildBody(input);
  const replyTo = (input.replyTo ?? []).flatMap(parseAddressList);
  if (replyTo.length > 0 && extra.some((h) => h.name.toLowerCase() === 'reply-to')) {
    throw new ComposeError('Reply-To is given both as an address and as an extra header; give it once');
  }

  let head = unstructuredHeader('Date', date);
  head += addressHeader('From', [from]);
  if (replyTo.length > 0) head += addressHeader('Reply-To', replyTo);
  if (to.length > 0) head += addressHeader('To', to);
  if (cc.length > 0) head += addressHeader('Cc', cc);
  // RFC 5322 §3.6.3 allows no destination field; the usual empty group says the list is private.
  if (to.length + cc.length === 0) head += 'To: undisclosed-recipients:;\r\n';
  if (subject !== '') head += unstructuredHeader('Subject', subject);
  head += `Message-ID: ${messageId}\r\n`;
  for (const h of extra) head += unstructuredHeader(h.name, h.value);
  head += 'MIME-Version: 1.0\r\n';
  const body = partBytes(part);
  const headBytes = ENCODER.encode(head);
  const bytes = new Uint8Array(headBytes.length + body.length);
  bytes.set(headBytes, 0);
  bytes.set(body, headBytes.length);

  const seen = new Set<string>();
  const recipients: Mailbox[] = [];
  for (const a of [...to, ...cc, ...bcc]) {
    const key = `${a.mailbox.local}@${a.mailbox.domain.toLowerCase()}`;
    if (seen.has(key)) continue;
    seen.add(key);
    recipients.push(a.mailbox);
  }
  const contentType = part.headers[0].slice('Content-Type: '.length).split(';')[0];
  return { bytes, messageId, sender: from.mailbox, recipients, transferEncoding: textEncoding, contentType };
}

// ---- the body ----

function textPart(text: string, subtype: 'plain' | 'html', eightBitMime: boolean): { part: MimePart; encoding: TransferEncoding } {
  const bytes = ENCODER.encode(toCrlf(text));
  const encoding = chooseTextEncoding(bytes, eightBitMime);
  const headers = [`Content-Type: text/${subtype}; charset=utf-8`, `Content-Transfer-Encoding: ${encoding}`];
  return { part: { headers, body: encodeBody(bytes, encoding) }, encoding };
}

function filePart(file: Attachment): MimePart {
  if (!isContentType(file.contentType)) throw new ComposeError(`"${file.contentType}" is not a content type like image/png`);
  refuseBreaks(`the file name ${JSON.stringify(file.filename)}`, file.filename);
  const encoding = chooseAttachmentEncoding(file.bytes, file.contentType);
  const inline = file.contentId !== undefined;
  const headers = [
    headerWithParameters('Content-Type', file.contentType, formatParameter('name', file.filename)),
    `Content-Transfer-Encoding: ${encoding}`,
    // RFC 2183 §2: inline or attachment, with the file name (RFC 2231 when it is not ASCII).
    headerWithParameters('Content-Disposition', inline ? 'inline' : 'attachment', formatParameter('filename', file.filename)),
  ];
  if (inline) {
    // RFC 2392 §2: the HTML names the part as cid:ID. Mail clients match the id as a string, so a
    // bare file name works as well as RFC 5322's id@domain form.
    if (!/^[!-;=?-~]+$/.test(file.contentId!)) throw new ComposeError(`"${file.contentId}" cannot be a Content-ID (no spaces, "<" or ">")`);
    headers.push(`Content-ID: <${file.contentId}>`);
  }
  return { headers, body: encodeBody(file.bytes, encoding) };
}

/**
 * The MIME tree (RFC 2046 §5.1): text, or text and HTML as multipart/alternative; inline files
 * with the HTML in multipart/related (RFC 2387); attachments around it all in multipart/mixed.
 */
function buildBody(input: ComposeInput): { part: MimePart; textEncoding: TransferEncoding } {
  const eightBit = input.eightBitMime === true;
  const text = textPart(input.body, 'plain', eightBit);
  const files = input.attachments ?? [];
  const inline = files.filter((f) => f.contentId !== undefined);
  const attached = files.filter((f) => f.contentId === undefined);
  if (inline.length > 0 && input.html === undefined) throw new ComposeError('inline files are for an HTML body: give --html too, or use --attach');
  let seed = 0;
  const boundary = () => `${input.uniqueId}.${seed++}`;
  let part = text.part;
  if (input.html !== undefined) {
    let html = textPart(input.html, 'html', eightBit).part;
    if (inline.length > 0) html = multipart('related', [html, ...inline.map(filePart)], boundary(), ['type="text/html"']);
    part = multipart('alternative', [text.part, html], boundary());
  }
  if (attached.length > 0) part = multipart('mixed', [part, ...attached.map(filePart)], boundary());
  return { part, textEncoding: text.encoding };
}
