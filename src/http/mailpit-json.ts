/**
 * @module Mailpit's JSON shapes (research/mailpit-api.md §1.3), built from the index and the
 * stored bytes: MessageSummary, MessagesSummary, Message with its Attachment lists, and headers.
 * Rule 1: field names and order are Mailpit's; arrays are never null; `Attachments` is a count in
 *         a summary and an array in a Message; times are UTC with three fraction digits.
 * Rule 2: part IDs are the MIME paths of core/mime-structure.ts ("1.2"), the ones the part route
 *         takes; text and HTML bodies are decoded by postal-mime (charsets included).
 */
import { createHash } from 'node:crypto';
import PostalMime, { type Email } from 'postal-mime';
import { findMimePart, listMimeEntities, parseHeaderFields, parseMimeStructure, type MimeEntity } from '../core/mime-structure.ts';
import { decodeTransferEncoding } from '../core/transfer-decoding.ts';
import type { IndexAddress, IndexedMessage, IndexStats, Page } from '../store/index-db.ts';

/** Mailpit's Go time.Time from UnixMilli, as the Docker image prints it: "2026-12-02T02:11:30.359Z". */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString();
}

const NO_ADDRESS: IndexAddress = Object.freeze({ Name: '', Address: '' });

/** The fields MessageSummary and Message share, in Mailpit's order: who, to whom, which. */
function addressedJson(m: IndexedMessage): Record<string, unknown> {
  return {
    ID: m.id,
    MessageID: m.messageId,
    Read: m.read,
    From: m.from ?? NO_ADDRESS,
    To: m.to,
    Cc: m.cc,
    Bcc: m.bcc,
    ReplyTo: m.replyTo,
  };
}

export function summaryJson(m: IndexedMessage): Record<string, unknown> {
  return {
    ...addressedJson(m),
    Subject: m.subject,
    Created: formatTime(m.receivedMs),
    Username: m.authUser ?? '',
    Tags: m.tags,
    Size: m.size,
    Attachments: m.attachments,
    Snippet: m.snippet,
  };
}

/** MessagesSummary: `total`/`unread` count the whole store, `messages_count` the query. */
export function messagesSummaryJson(page: Page, stats: IndexStats, start: number): Record<string, unknown> {
  return {
    total: stats.total,
    unread: stats.unread,
    count: page.messages.length,
    messages_count: page.matched,
    messages_unread: page.matchedUnread,
    start,
    tags: Object.keys(stats.tags),
    messages: page.messages.map(summaryJson),
  };
}

export interface AttachmentJson {
  readonly PartID: string;
  readonly FileName: string;
  readonly ContentType: string;
  readonly ContentID: string;
  readonly Size: number;
  readonly Checksums: { readonly MD5: string; readonly SHA1: string; readonly SHA256: string };
}

/** A stored message taken apart once: its MIME tree and its decoded text and HTML. */
export interface ParsedMessage {
  readonly bytes: Uint8Array;
  readonly root: MimeEntity;
  readonly email: Email;
}

export async function parseStoredMessage(bytes: Uint8Array): Promise<ParsedMessage> {
  let email: Email;
  try {
    email = await PostalMime.parse(bytes, { attachmentEncoding: 'arraybuffer' });
  } catch {
    email = { headers: [], headerLines: [], attachments: [] };
  }
  return { bytes, root: parseMimeStructure(bytes), email };
}

/** The decoded bytes of the part at `path` ("1.2"), with the entity; null when there is none. */
export function partBytes(parsed: ParsedMessage, path: string): { entity: MimeEntity; bytes: Uint8Array } | null {
  if (path === '') return null;
  const entity = findMimePart(parsed.root, path);
  if (entity === null || entity.type === 'multipart') return null;
  const body = parsed.bytes.subarray(entity.bodyStart, entity.bodyEnd);
  return { entity, bytes: decodeTransferEncoding(body, entity.transferEncoding) };
}

/** The part's file name: disposition filename, else Content-Type name; "" when neither. */
export function partFileName(entity: MimeEntity): string {
  return entity.disposition?.params.filename ?? entity.params.name ?? '';
}

function bareContentId(entity: MimeEntity): string {
  return (entity.contentId ?? '').trim().replace(/^<(.*)>$/, '$1');
}

/**
 * Splits the leaves of the tree as Mailpit does: the first text/plain and text/html that are not
 * attachments are the bodies; parts marked inline or carrying a Content-ID are Inline; the rest
 * are Attachments. Inline parts without a file name or Content-ID are not listed.
 */
export function attachmentLists(parsed: ParsedMessage): { inline: AttachmentJson[]; attachments: AttachmentJson[] } {
  const inline: AttachmentJson[] = [];
  const attachments: AttachmentJson[] = [];
  let textTaken = false;
  let htmlTaken = false;
  for (const entity of leaves(parsed.root)) {
    const name = partFileName(entity);
    const disposition = entity.disposition?.type ?? '';
    const isText = entity.type === 'text' && (entity.subtype === 'plain' || entity.subtype === 'html');
    if (isText && disposition !== 'attachment' && name === '') {
      if (entity.subtype === 'plain' && !textTaken) {
        textTaken = true;
        continue;
      }
      if (entity.subtype === 'html' && !htmlTaken) {
        htmlTaken = true;
        continue;
      }
    }
    const contentId = bareContentId(entity);
    const isInline = disposition === 'inline' || (disposition === '' && contentId !== '');
    if (isInline && name === '' && contentId === '') continue;
    const json = attachmentJson(parsed, entity, name, contentId);
    if (isInline) inline.push(json);
    else attachments.push(json);
  }
  return { inline, attachments };
}

function attachmentJson(parsed: ParsedMessage, entity: MimeEntity, name: string, contentId: string): AttachmentJson {
  const bytes = decodeTransferEncoding(parsed.bytes.subarray(entity.bodyStart, entity.bodyEnd), entity.transferEncoding);
  const hex = (algorithm: string) => createHash(algorithm).update(bytes).digest('hex');
  return {
    PartID: entity.path === '' ? '1' : entity.path,
    FileName: name !== '' ? name : contentId,
    ContentType: `${entity.type}/${entity.subtype}`,
    ContentID: contentId,
    Size: bytes.length,
    Checksums: { MD5: hex('md5'), SHA1: hex('sha1'), SHA256: hex('sha256') },
  };
}

/** Leaf entities in order; a message/rfc822 part is a leaf (an attachment), not descended into. */
function leaves(root: MimeEntity): MimeEntity[] {
  const out: MimeEntity[] = [];
  const walk = (e: MimeEntity) => {
    if (e.type === 'multipart' && e.children.length > 0) for (const c of e.children) walk(c);
    else out.push(e);
  };
  walk(root);
  return out;
}

/** Go's textproto.CanonicalMIMEHeaderKey: "message-id" → "Message-Id"; names with odd characters as written. */
export function canonicalHeaderKey(name: string): string {
  if (!/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(name)) return name;
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}

/** The top-level header as Go's net/mail.Header marshals it: canonical keys, sorted, values in order. */
export function headersJson(parsed: ParsedMessage): Record<string, string[]> {
  const map = new Map<string, string[]>();
  for (const f of parseHeaderFields(parsed.bytes, parsed.root.headerStart, parsed.root.headerEnd)) {
    const key = canonicalHeaderKey(f.name);
    const list = map.get(key);
    if (list === undefined) map.set(key, [f.value]);
    else list.push(f.value);
  }
  const out: Record<string, string[]> = {};
  for (const key of [...map.keys()].sort()) out[key] = map.get(key)!;
  return out;
}

/** List-Unsubscribe (RFC 2369, RFC 8058) as Mailpit reports it: at most one mailto and one http link. */
function listUnsubscribe(headers: Record<string, string[]>): Record<string, unknown> {
  const header = headers['List-Unsubscribe']?.[0] ?? '';
  const links: string[] = [];
  const errors: string[] = [];
  let mailto = false;
  let web = false;
  for (const m of header.matchAll(/<([^>]*)>/g)) {
    const link = m[1].trim();
    if (/^mailto:/i.test(link) && !mailto) {
      mailto = true;
      links.push(link);
    } else if (/^https?:\/\//i.test(link) && !web) {
      web = true;
      links.push(link);
    } else {
      errors.push(`unexpected link ${link}`);
    }
  }
  if (header !== '' && links.length === 0 && errors.length === 0) errors.push('no <link> found');
  return { Header: header, Links: links, Errors: errors.join('; '), HeaderPost: headers['List-Unsubscribe-Post']?.[0] ?? '' };
}

/** Mailpit's Message; `Read` is added (old clients expect it). */
export function messageJson(m: IndexedMessage, parsed: ParsedMessage): Record<string, unknown> {
  const headers = headersJson(parsed);
  const { inline, attachments } = attachmentLists(parsed);
  return {
    ...addressedJson(m),
    ReturnPath: m.returnPath !== '' ? m.returnPath : m.mailFrom !== '' ? m.mailFrom : (m.from?.Address ?? ''),
    Subject: m.subject,
    ListUnsubscribe: listUnsubscribe(headers),
    Date: formatTime(m.dateMs ?? m.receivedMs),
    Tags: m.tags,
    Username: m.authUser ?? '',
    Text: parsed.email.text ?? '',
    HTML: parsed.email.html ?? '',
    Size: m.size,
    Inline: inline,
    Attachments: attachments,
  };
}
