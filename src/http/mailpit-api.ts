/**
 * @module Mailpit's API v1, wire-compatible (research/mailpit-api.md §1): the routes under
 * /api/v1/, /view/ and their error bodies, over a MailSource.
 * Rule 1: Mailpit's meaning, quirks included: keys of JSON bodies match without regard to case;
 *         lists are newest first; `limit` is 50 by default, capped at 5,000 and 0 means the cap;
 *         fetching a message (or /view) marks it read; an empty DELETE deletes everything.
 * Rule 2: one deliberate departure: a DELETE whose body is present but not JSON is a 400, where
 *         Mailpit deletes everything.
 * Rule 3: mail content is never served in the app's origin: /view and every part carry a sandbox
 *         CSP and nosniff, and parts other than PNG, JPEG, GIF or WebP are downloads.
 */
import { parseMailpitSearch, type SearchQuery } from '../core/mailpit-search.ts';
import type { IndexedMessage, SearchContext } from '../store/index-db.ts';
import { zoneOffset } from '../store/index-db.ts';
import { HttpError, type HttpContext, type HttpRoute } from './http-server.ts';
import type { MailSource } from './mail-source.ts';
import { randomUUID } from 'node:crypto';
import { ComposeError, composeMessage } from '../message/compose.ts';
import { guessContentType as guessType } from '../message/mime.ts';
import {
  headersJson,
  messageJson,
  messagesSummaryJson,
  parseStoredMessage,
  partBytes,
  partFileName,
  type ParsedMessage,
} from './mailpit-json.ts';
import { field, intParam, readJsonBody, stringList, textError } from './request-body.ts';

/** Mailpit's default page. */
export const DEFAULT_LIMIT = 50;
/** Our cap on `limit`; `limit=0` asks for it (`total` stays exact). */
export const MAX_LIMIT = 5000;
/** Mailpit caps JSON request bodies at 5 MB (research/mailpit-api.md §1.1). */
export const MAX_JSON_BODY_BYTES = 5 * 1024 * 1024;

/** The CSP of every response that carries mail content: no script, no requests but our images. */
export const CONTENT_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";
/**
 * The CSP of /view/{ID}.html?remote=1, the web UI's "load remote images" switch for one message:
 * images (only) may come from anywhere; still no script, no other request.
 */
export const CONTENT_CSP_REMOTE_IMAGES = "sandbox; default-src 'none'; img-src 'self' data: http: https:; style-src 'unsafe-inline'";
export const CONTENT_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy': CONTENT_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
});
/** Parts of these types are shown inline; every other part is a download. */
const INLINE_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** A Mailpit ID: plain alphanumerics (its CORS regexp for /view is [a-zA-Z0-9]+). */
const ID_PATTERN = /^[A-Za-z0-9]{1,64}$/;

/** What /api/v1/send hands over to be stored. */
export interface Submission {
  /** The sender's address ("local@domain"). */
  readonly from: string;
  readonly recipients: readonly string[];
  /** The message, CRLF lines, without our Received header. */
  readonly bytes: Uint8Array;
  /** The user HTTP Basic verified, recorded as the message's auth user. */
  readonly user: string | null;
  readonly client: string;
}

/** The relay, when serve has one: release goes through it. */
export interface RelayPort {
  /** Queues a stored message for the relay to `to`; resolves once queued (durable), rejects with the reason. */
  release(id: string, to: readonly string[], context: HttpContext): Promise<void>;
  /** WebUIConfiguration.MessageRelay.SMTPServer: the smarthost, or "MX". */
  readonly describe: string;
}

export interface MailpitApiDeps {
  readonly mail: MailSource;
  readonly version: string;
  readonly now: () => number;
  /** AppInformation.Database: where the index lives. */
  readonly databasePath: string;
  readonly databaseBytes: () => number;
  /** RuntimeStats counters. */
  readonly runtime: () => { readonly startedMs: number; readonly smtpAccepted: number; readonly smtpAcceptedBytes: number; readonly smtpRejected: number; readonly deleted: number };
  /** Whether the caller may relay by SMTP: a trusted network or an authenticated user. */
  readonly mayRelay: (context: HttpContext) => boolean;
  /** Stores a message built by /api/v1/send through the same path SMTP uses; resolves with its id. */
  readonly submit: (submission: Submission) => Promise<string>;
  readonly relay: RelayPort | null;
  /** The Message-ID domain of messages built by /api/v1/send when the sender's cannot be used. */
  readonly hostname: string;
  /** A label for the web UI (WebUIConfiguration.Label). */
  readonly label?: string;
}

/** The Mailpit routes over `deps`. */
export function mailpitRoutes(deps: MailpitApiDeps): HttpRoute[] {
  const { mail } = deps;
  const db = () => mail.db;

  const page = (url: URL, defaultLimit = DEFAULT_LIMIT) => {
    const start = intParam(url, 'start', 0);
    const asked = intParam(url, 'limit', defaultLimit);
    return { start, limit: asked === 0 || asked > MAX_LIMIT ? MAX_LIMIT : asked };
  };
  const cursorHeaders = () => ({ 'X-Mailbox-Cursor': String(mail.lastSeq) });

  /** `before=<date>`: Mailpit's keyset paging on Created < before, as a search term. */
  const beforeTerm = (url: URL): SearchQuery['terms'] => {
    const text = url.searchParams.get('before');
    if (text === null || text === '') return [];
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) throw textError(400, `invalid before date: ${text}`);
    return [{ kind: 'date', op: 'before', date: { kind: 'epoch', ms: ms - 1 }, negated: false }];
  };

  const list = ({ url }: HttpContext) => {
    const { start, limit } = page(url);
    const before = beforeTerm(url);
    const result = before.length > 0 ? db().search({ terms: before, dropped: [] }, { limit, start }) : db().list({ limit, start });
    return jsonResponse(messagesSummaryJson(result, db().stats(), start), cursorHeaders());
  };

  const search = ({ url }: HttpContext) => {
    const { query, context } = searchOf(url);
    const { start, limit } = page(url);
    const result = db().search({ terms: [...query.terms, ...beforeTerm(url)], dropped: query.dropped }, { limit, start }, context);
    return jsonResponse(messagesSummaryJson(result, db().stats(), start), cursorHeaders());
  };

  /** The message an {ID} names: an ID, or `latest` (the newest, or the newest match of `query`). */
  const resolve = (url: URL, id: string, allowLatest = true): IndexedMessage => {
    if (id === 'latest' && allowLatest) {
      const text = url.searchParams.get('query');
      const newest =
        text !== null && text.trim() !== ''
          ? db().search(parseMailpitSearch(text), { limit: 1, start: 0 }, contextOf(url)).messages[0]
          : db().list({ limit: 1, start: 0 }).messages[0];
      if (newest === undefined) throw textError(404, 'Message not found');
      return newest;
    }
    if (!ID_PATTERN.test(id)) throw textError(404, '404 page not found');
    const found = db().get(id);
    if (found === null) throw textError(404, '404 page not found');
    return found;
  };

  const load = async (m: IndexedMessage): Promise<ParsedMessage> => {
    const bytes = await mail.readMessage(m.id);
    if (bytes === undefined) throw textError(404, '404 page not found');
    return parseStoredMessage(bytes);
  };

  /** Mailpit marks a message read when it is fetched or viewed. */
  const markRead = async (m: IndexedMessage): Promise<IndexedMessage> => {
    if (m.read) return m;
    await mail.setRead([m.id], true);
    return { ...m, read: true };
  };

  const message = async ({ url, params }: HttpContext) => {
    const m = resolve(url, params.id);
    const parsed = await load(m);
    return jsonResponse(messageJson(await markRead(m), parsed));
  };

  const headers = async ({ url, params }: HttpContext) => {
    const m = resolve(url, params.id);
    return jsonResponse(headersJson(await load(m)));
  };

  const raw = async ({ url, params }: HttpContext) => {
    const m = resolve(url, params.id);
    const bytes = await mail.readMessage(m.id);
    if (bytes === undefined) throw textError(404, '404 page not found');
    const extra: Record<string, string> = url.searchParams.get('dl') === '1' ? { 'Content-Disposition': `attachment; filename="${m.id}.eml"` } : {};
    return new Response(bytes, { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...CONTENT_HEADERS, ...extra } });
  };

  const part = async ({ url, params }: HttpContext) => {
    const m = resolve(url, params.id);
    const found = partBytes(await load(m), params.part);
    if (found === null) throw textError(404, '404 page not found');
    const type = `${found.entity.type}/${found.entity.subtype}`;
    const charset = found.entity.type === 'text' && found.entity.params.charset ? `; charset=${found.entity.params.charset}` : '';
    const name = partFileName(found.entity) || (found.entity.contentId ?? '').replace(/^<(.*)>$/, '$1') || `part-${params.part}`;
    const disposition = INLINE_IMAGE_TYPES.has(type) ? 'inline' : 'attachment';
    return new Response(found.bytes, {
      status: 200,
      headers: { 'Content-Type': `${type}${charset}`, 'Content-Disposition': contentDisposition(disposition, name), ...CONTENT_HEADERS },
    });
  };

  const viewHtml = async ({ url, params }: HttpContext) => {
    const m = resolve(url, params.id);
    const parsed = await load(m);
    const html = parsed.email.html;
    if (html === undefined || html === '') throw textError(404, 'This message does not contain a HTML part');
    await markRead(m);
    let body = rewriteCidLinks(html, parsed, m.id);
    // embed=1: links open outside the frame (Mailpit adds target="_blank"); no script is ever added.
    if (url.searchParams.get('embed') === '1') body = `<base target="_blank">${body}`;
    const csp = url.searchParams.get('remote') === '1' ? { 'Content-Security-Policy': CONTENT_CSP_REMOTE_IMAGES } : {};
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/html; charset=utf-8', ...CONTENT_HEADERS, ...csp } });
  };

  const viewText = async ({ url, params }: HttpContext) => {
    const m = resolve(url, params.id);
    const parsed = await load(m);
    await markRead(m);
    return new Response(parsed.email.text ?? '', { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...CONTENT_HEADERS } });
  };

  const viewLatest = ({ url }: HttpContext) => {
    const m = resolve(url, 'latest');
    return new Response(null, { status: 302, headers: { Location: `/view/${m.id}` } });
  };

  const setRead = async ({ request, url }: HttpContext) => {
    const body = await readJsonBody(request, MAX_JSON_BODY_BYTES);
    if (body === null) throw textError(400, 'no request body');
    if (typeof body !== 'object' || Array.isArray(body)) throw textError(400, 'the request body must be a JSON object');
    const read = field(body, 'Read');
    if (read !== undefined && typeof read !== 'boolean') throw textError(400, 'Read must be true or false');
    const ids = stringList(body, 'IDs');
    const searchText = field(body, 'Search');
    if (searchText !== undefined && searchText !== null && typeof searchText !== 'string') throw textError(400, 'Search must be a string');
    const hasIds = ids !== undefined && ids.length > 0;
    const hasSearch = typeof searchText === 'string' && searchText.trim() !== '';
    if (hasIds && hasSearch) throw textError(400, 'You cannot use both IDs and Search');
    let target: string[] | null = null;
    if (hasIds) target = ids!;
    else if (hasSearch) target = db().matchAfter(parseMailpitSearch(searchText as string), 0, Number.MAX_SAFE_INTEGER, contextOf(url)).map((m) => m.id);
    await mail.setRead(target, read === true);
    return okResponse();
  };

  const deleteMessages = async ({ request }: HttpContext) => {
    const body = await readJsonBody(request, MAX_JSON_BODY_BYTES);
    if (body !== null && (typeof body !== 'object' || Array.isArray(body))) throw textError(400, 'the request body must be a JSON object');
    const ids = body === null ? undefined : stringList(body, 'IDs');
    await mail.delete(ids === undefined || ids.length === 0 ? null : ids);
    return okResponse();
  };

  const deleteSearch = async ({ url }: HttpContext) => {
    const { query, context } = searchOf(url);
    await mail.deleteSearch(query, context);
    return okResponse();
  };

  const tags = () => jsonResponse(Object.keys(db().stats().tags));

  const setTags = async ({ request }: HttpContext) => {
    const body = await readJsonBody(request, MAX_JSON_BODY_BYTES);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw textError(400, 'the request body must be a JSON object with Tags and IDs');
    const ids = stringList(body, 'IDs') ?? [];
    const names = stringList(body, 'Tags') ?? [];
    if (ids.length === 0) throw textError(400, 'no IDs given');
    await mail.setTags(ids, names);
    return okResponse();
  };

  const renameTag = async ({ request, params }: HttpContext) => {
    const body = await readJsonBody(request, MAX_JSON_BODY_BYTES);
    const name = field(body, 'Name');
    if (typeof name !== 'string' || name.trim() === '') throw textError(400, 'Name is required');
    await mail.renameTag(params.tag, name);
    return okResponse();
  };

  const deleteTag = async ({ params }: HttpContext) => {
    await mail.deleteTag(params.tag);
    return okResponse();
  };

  const info = () => {
    const stats = db().stats();
    const runtime = deps.runtime();
    return jsonResponse({
      Version: deps.version,
      // No call home: the latest version is the one running.
      LatestVersion: deps.version,
      Database: deps.databasePath,
      DatabaseSize: deps.databaseBytes(),
      Messages: stats.total,
      Unread: stats.unread,
      Tags: stats.tags,
      RuntimeStats: {
        Uptime: Math.floor((deps.now() - runtime.startedMs) / 1000),
        Memory: process.memoryUsage().rss,
        MessagesDeleted: runtime.deleted,
        SMTPAccepted: runtime.smtpAccepted,
        SMTPAcceptedSize: runtime.smtpAcceptedBytes,
        SMTPRejected: runtime.smtpRejected,
        SMTPIgnored: 0,
      },
    });
  };

  const webui = () =>
    jsonResponse({
      Label: deps.label ?? '',
      MessageRelay: {
        Enabled: deps.relay !== null,
        SMTPServer: deps.relay?.describe ?? '',
        ReturnPath: '',
        AllowedRecipients: '',
        BlockedRecipients: '',
        OverrideFrom: '',
        PreserveMessageIDs: false,
        RecipientAllowlist: '',
      },
      SpamAssassin: false,
      ChaosEnabled: false,
      DuplicatesIgnored: false,
      HideDeleteAllButton: false,
    });

  // Mailpit's chaos triggers are random; ours are the deterministic --faults rules, under our API.
  const chaos = () => {
    throw textError(400, 'Chaos is not enabled');
  };

  const send = async (context: HttpContext) => {
    const sendError = (status: number, message: string) => HttpError.json(status, { Error: message });
    if (!deps.mayRelay(context)) throw sendError(403, 'sending needs a trusted network or credentials (HTTP Basic against --users)');
    const body = await readJsonBody(context.request, Number.MAX_SAFE_INTEGER, sendError);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw sendError(400, 'the request body must be a JSON object');
    const built = buildSendRequest(body, sendError);
    let bytes: Uint8Array;
    try {
      bytes = composeMessage({
        ...built.compose,
        html: built.compose.html === '' ? undefined : built.compose.html,
        attachments: built.compose.attachments.map((a) => ({ ...a, contentType: a.contentType || guessType(a.filename) })),
        timeMs: deps.now(),
        uniqueId: randomUUID().replaceAll('-', ''),
        hostname: deps.hostname,
        eightBitMime: true,
      }).bytes;
    } catch (error) {
      if (error instanceof ComposeError) throw sendError(400, error.message);
      throw error;
    }
    const id = await deps.submit({ from: built.from, recipients: built.recipients, bytes, user: context.user, client: context.client }).catch((error: unknown) => {
      throw error instanceof HttpError ? error : sendError(400, (error as Error).message);
    });
    // Mailpit answers once the message can be read: a GET right after must find it.
    await untilIndexed(mail, id);
    if (built.tags.length > 0) await mail.setTags([id], built.tags);
    return jsonResponse({ ID: id });
  };

  const release = async (context: HttpContext) => {
    if (!deps.mayRelay(context)) throw textError(403, 'releasing needs a trusted network or credentials (HTTP Basic against --users)');
    const m = resolve(context.url, context.params.id, false);
    const body = await readJsonBody(context.request, MAX_JSON_BODY_BYTES);
    const to = stringList(body, 'To') ?? [];
    if (to.length === 0) throw textError(400, 'No valid addresses found');
    if (deps.relay === null) throw textError(400, 'Relay is not enabled: start serve with a relay');
    await deps.relay.release(m.id, to, context).catch((error: unknown) => {
      throw textError(400, `SMTP error: ${(error as Error).message}`);
    });
    return okResponse();
  };

  return [
    { method: 'GET', path: '/api/v1/messages', handler: list },
    { method: 'PUT', path: '/api/v1/messages', handler: setRead },
    { method: 'DELETE', path: '/api/v1/messages', handler: deleteMessages },
    { method: 'GET', path: '/api/v1/search', handler: search },
    { method: 'DELETE', path: '/api/v1/search', handler: deleteSearch },
    { method: 'POST', path: '/api/v1/send', handler: send },
    { method: 'GET', path: '/api/v1/tags', handler: tags },
    { method: 'PUT', path: '/api/v1/tags', handler: setTags },
    { method: 'PUT', path: '/api/v1/tags/:tag', handler: renameTag },
    { method: 'DELETE', path: '/api/v1/tags/:tag', handler: deleteTag },
    { method: 'GET', path: '/api/v1/message/:id', handler: message },
    { method: 'GET', path: '/api/v1/message/:id/headers', handler: headers },
    { method: 'GET', path: '/api/v1/message/:id/raw', handler: raw },
    // The cid: images of /view/{ID}.html, which the web UI frames without an origin.
    { method: 'GET', path: '/api/v1/message/:id/part/:part', handler: part, allowSandboxedImages: true },
    { method: 'POST', path: '/api/v1/message/:id/release', handler: release },
    { method: 'GET', path: '/api/v1/info', handler: info },
    { method: 'GET', path: '/api/v1/webui', handler: webui },
    { method: 'GET', path: '/api/v1/chaos', handler: chaos },
    { method: 'PUT', path: '/api/v1/chaos', handler: chaos },
    { method: 'GET', path: '/view/:id.html', handler: viewHtml },
    { method: 'GET', path: '/view/:id.txt', handler: viewText },
    { method: 'GET', path: '/view/latest', handler: viewLatest },
  ];
}

/** `query` (required) and `tz` of a search route. */
function searchOf(url: URL): { query: SearchQuery; context: SearchContext } {
  const text = url.searchParams.get('query');
  if (text === null || text.trim() === '') throw textError(400, 'Error: no search query');
  return { query: parseMailpitSearch(text), context: contextOf(url) };
}

/** Mailpit's `tz`: an IANA zone for dates typed without one; an unknown zone is ignored. */
function contextOf(url: URL): SearchContext {
  const tz = url.searchParams.get('tz');
  const offsetAt = tz ? zoneOffset(tz) : null;
  return offsetAt === null ? {} : { offsetAt };
}

/** A JSON answer as Go's json.Encoder writes it: one trailing newline. */
export function jsonResponse(body: unknown, headers: Record<string, string> = {}, status = 200): Response {
  return new Response(`${JSON.stringify(body)}\n`, { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

function okResponse(): Response {
  return new Response('ok', { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}

/** RFC 6266: a quoted ASCII fallback and the UTF-8 name in filename* (RFC 8187). */
function contentDisposition(type: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === name ? `${type}; filename="${ascii}"` : `${type}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** `cid:` references in HTML point at the part URLs (as Mailpit rewrites them). */
function rewriteCidLinks(html: string, parsed: ParsedMessage, id: string): string {
  const byCid = new Map<string, string>();
  const walk = (e: ParsedMessage['root']) => {
    if (e.contentId) byCid.set(e.contentId.trim().replace(/^<(.*)>$/, '$1').toLowerCase(), e.path);
    for (const c of e.children) walk(c);
  };
  walk(parsed.root);
  if (byCid.size === 0) return html;
  return html.replace(/(["'(=]\s*)cid:([^"')\s>]+)/gi, (whole, lead: string, cid: string) => {
    const path = byCid.get(decodeURIComponentSafe(cid).toLowerCase());
    return path === undefined ? whole : `${lead}/api/v1/message/${id}/part/${path}`;
  });
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export interface SendRequest {
  readonly from: string;
  readonly recipients: readonly string[];
  readonly tags: readonly string[];
}

/** The fields of Mailpit's SendRequest (swaggerParams.go), keys matched without regard to case. */
function buildSendRequest(body: unknown, error: (status: number, message: string) => HttpError): SendRequest & { readonly compose: SendCompose } {
  const person = (value: unknown, what: string): { email: string; name: string } => {
    const email = field(value, 'Email');
    const name = field(value, 'Name');
    if (typeof email !== 'string' || email.trim() === '') throw error(400, `${what}: Email is required`);
    if (name !== undefined && name !== null && typeof name !== 'string') throw error(400, `${what}: Name must be a string`);
    return { email: email.trim(), name: typeof name === 'string' ? name : '' };
  };
  const people = (key: string): { email: string; name: string }[] => {
    const value = field(body, key);
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw error(400, `${key} must be a list`);
    return value.map((v, i) => person(v, `${key}[${i}]`));
  };
  const text = (key: string): string => {
    const value = field(body, key);
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') throw error(400, `${key} must be a string`);
    return value;
  };
  const from = person(field(body, 'From'), 'From');
  const to = people('To');
  const cc = people('Cc');
  const replyTo = people('ReplyTo');
  const bcc = stringList(body, 'Bcc', error) ?? [];
  if (to.length + cc.length + bcc.length === 0) throw error(400, 'no recipients: give To, Cc or Bcc');
  const headersValue = field(body, 'Headers');
  const headers: string[] = [];
  if (headersValue !== undefined && headersValue !== null) {
    if (typeof headersValue !== 'object' || Array.isArray(headersValue)) throw error(400, 'Headers must be an object of names and values');
    for (const [name, value] of Object.entries(headersValue as Record<string, unknown>)) {
      if (typeof value !== 'string') throw error(400, `Headers.${name} must be a string`);
      headers.push(`${name}: ${value}`);
    }
  }
  const attachmentsValue = field(body, 'Attachments');
  const attachments: SendCompose['attachments'][number][] = [];
  if (attachmentsValue !== undefined && attachmentsValue !== null) {
    if (!Array.isArray(attachmentsValue)) throw error(400, 'Attachments must be a list');
    attachmentsValue.forEach((a, i) => {
      const content = field(a, 'Content');
      const filename = field(a, 'Filename');
      const contentType = field(a, 'ContentType');
      const contentId = field(a, 'ContentID');
      if (typeof content !== 'string') throw error(400, `Attachments[${i}].Content must be base64 text`);
      if (typeof filename !== 'string' || filename === '') throw error(400, `Attachments[${i}].Filename is required`);
      const bytes = Buffer.from(content, 'base64');
      if (bytes.length === 0 && content.trim() !== '') throw error(400, `Attachments[${i}].Content is not base64`);
      attachments.push({
        filename,
        contentType: typeof contentType === 'string' && contentType !== '' ? contentType : '',
        bytes: new Uint8Array(bytes),
        ...(typeof contentId === 'string' && contentId !== '' ? { contentId } : {}),
      });
    });
  }
  const tags = stringList(body, 'Tags', error) ?? [];
  const compose: SendCompose = {
    from: formatPerson(from),
    to: to.map(formatPerson),
    cc: cc.map(formatPerson),
    bcc,
    replyTo: replyTo.map(formatPerson),
    subject: text('Subject'),
    body: text('Text'),
    html: text('HTML'),
    headers,
    attachments,
  };
  return { from: from.email, recipients: [...to.map((p) => p.email), ...cc.map((p) => p.email), ...bcc], tags, compose };
}

/** What the send route asks the composer for (message/compose.ts ComposeInput, less time and ids). */
export interface SendCompose {
  readonly from: string;
  readonly to: readonly string[];
  readonly cc: readonly string[];
  readonly bcc: readonly string[];
  readonly replyTo: readonly string[];
  readonly subject: string;
  readonly body: string;
  readonly html: string;
  readonly headers: readonly string[];
  readonly attachments: readonly { readonly filename: string; readonly contentType: string; readonly bytes: Uint8Array; readonly contentId?: string }[];
}

function formatPerson(p: { email: string; name: string }): string {
  if (p.name === '') return p.email;
  return `"${p.name.replace(/["\\]/g, '\\$&')}" <${p.email}>`;
}

/** How long the send API waits for its message to be indexed (indexing follows the commit). */
const INDEX_WAIT_MS = 10_000;

/** Resolves once `id` is indexed, or after INDEX_WAIT_MS. */
async function untilIndexed(mail: MailSource, id: string): Promise<void> {
  await mail.current();
  if (mail.db.get(id) === null) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, INDEX_WAIT_MS);
      const stop = mail.subscribe(() => {
        if (mail.db.get(id) !== null) done();
      });
      function done() {
        clearTimeout(timer);
        stop();
        resolve();
      }
    });
  }
}

