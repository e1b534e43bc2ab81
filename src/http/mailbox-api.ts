/**
 * @module Our own API under /api/mailbox/v1/ (research/mailpit-api.md §4.4, §6): a wait on the
 * spool's commit order, its resumable SSE stream, per-recipient inboxes, a message read without
 * marking it read (with its envelope, links and codes), the SMTP session behind a message, the
 * scripted fault rules, and the OpenAPI document of it all.
 * Rule 1: it never gives Mailpit's parameters a new meaning; its own query keywords (rcpt:,
 *         mailfrom:, inbox:) exist only here.
 * Rule 2: every error is JSON {"error": …} with its status; a wait that times out is 404
 *         {"error":"timeout","cursor":…}, not 408, which HTTP clients retry silently.
 * Rule 3: nothing here marks mail read.
 */
import { extractCodes, extractLinks } from '../core/links-and-codes.ts';
import { parseMailpitSearch, type SearchQuery } from '../core/mailpit-search.ts';
import type { IndexedMessage } from '../store/index-db.ts';
import { inboxKey } from '../store/index-db.ts';
import { HttpError, type HttpContext, type HttpRoute } from './http-server.ts';
import type { MailSource } from './mail-source.ts';
import { matchesAfter, WaitRegistry, type WaitFilter } from './mail-wait.ts';
import { DEFAULT_LIMIT, jsonResponse, MAX_JSON_BODY_BYTES, MAX_LIMIT } from './mailpit-api.ts';
import { formatTime, messageJson, messagesSummaryJson, parseStoredMessage, summaryJson } from './mailpit-json.ts';
import { openApiDocument } from './openapi.ts';
import { intParam, readJsonBody, type BodyError } from './request-body.ts';

export const PREFIX = '/api/mailbox/v1';
/** Default and longest wait, in seconds. */
export const DEFAULT_WAIT_S = 30;
export const MAX_WAIT_S = 300;
/** Messages a stream replays per look at the index. */
const STREAM_BATCH = 200;
/** Ids a stream's `deleted` event names at most (a larger deletion is told in several). */
const STREAM_DELETED_IDS = 1000;
/** A comment line keeps an idle stream (and proxies before it) open. */
const STREAM_PING_MS = 15_000;
const ID_PATTERN = /^[A-Za-z0-9]{1,64}$/;

const jsonError: BodyError = (status, message) => HttpError.json(status, { error: message });

/** The SMTP session that carried a message, as the spool recorded it. */
export interface SessionRecord {
  readonly id: string;
  readonly receivedMs: number;
  /** The client's address; null when the spool record predates these fields. */
  readonly clientAddress: string | null;
  readonly helo: string | null;
  /** "TLSv1.3" and the like; null for a clear session or an old record. */
  readonly tls: string | null;
  readonly authUser: string | null;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly size: number;
  /** The session as a segment `mailbox replay` sends again: EHLO, MAIL, RCPT…, DATA, the message. */
  readonly replayable: Uint8Array;
}

/** The scripted fault rules (--faults) the API may replace. */
export interface FaultControl {
  readonly source: unknown;
  /** The reason when `json` is not a faults document; null when it is in force. */
  replace(json: unknown, by: string): string | null;
}

/** One relayed copy of a message: its recipient's state in the relay queue. */
export interface DeliveryRecord {
  readonly address: string;
  /** pending, deferred, held, delivered or bounced (deleted when an operator removed it). */
  readonly state: string;
  readonly attempts?: number;
  readonly nextAttemptMs?: number;
  /** The last reply (deferred, held) or the final one (delivered, bounced). */
  readonly reply?: string;
  /** When the state was reached, for a final state. */
  readonly atMs?: number;
}

export interface MailboxApiDeps {
  readonly mail: MailSource;
  readonly now: () => number;
  readonly waits: WaitRegistry;
  readonly session: (id: string) => Promise<SessionRecord | null>;
  /** The relayed copies of a message (undefined: no such message); null when serve does not relay. */
  readonly deliveries?: ((id: string) => readonly DeliveryRecord[] | undefined) | null;
  readonly faults: FaultControl;
  readonly version: string;
}

/** A cursor as clients hold it: the decimal seq ("0" is the beginning). */
function parseCursor(text: string | null): number {
  if (text === null || text === '') return 0;
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) throw jsonError(400, `bad cursor ${JSON.stringify(text)}: a cursor is what a wait, a stream or GET ${PREFIX}/cursor returned`);
  return Number(text);
}

/** `query`, `rcpt` (repeatable) and `inbox` of a wait or stream. */
function filterOf(url: URL): WaitFilter {
  const text = url.searchParams.get('query') ?? '';
  const query: SearchQuery = text.trim() === '' ? { terms: [], dropped: [] } : parseMailpitSearch(text, { extensions: true });
  const recipients = [...url.searchParams.getAll('rcpt'), ...url.searchParams.getAll('inbox')].map((r) => r.trim()).filter((r) => r !== '');
  for (const r of recipients) if (!/^[^\s@<>]+@[^\s@<>]+$/.test(r)) throw jsonError(400, `rcpt ${JSON.stringify(r)} is not an address (local@domain)`);
  return { query, recipients };
}

export function mailboxRoutes(deps: MailboxApiDeps): HttpRoute[] {
  const { mail, waits } = deps;

  const cursor = () => jsonResponse({ cursor: String(mail.lastSeq), time: formatTime(deps.now()) });

  const wait = async ({ request, url, server }: HttpContext) => {
    const after = parseCursor(url.searchParams.get('after'));
    const filter = filterOf(url);
    const timeoutS = Math.min(intParam(url, 'timeout', DEFAULT_WAIT_S), MAX_WAIT_S);
    const count = Math.max(1, Math.min(intParam(url, 'count', 1), 100));
    if (!waits.acquire()) throw jsonError(503, 'too many waits and streams are open; try again');
    // Bun closes a connection idle for 10 s: this one may rightly be quiet for the whole wait.
    server.timeout(request, timeoutS + 5);
    try {
      const outcome = await waits.wait(filter, after, count, timeoutS * 1000, request.signal);
      switch (outcome.kind) {
        case 'found':
          return jsonResponse({ messages: outcome.messages.map(waitJson), cursor: String(outcome.cursor), messages_count: outcome.messages.length });
        case 'timeout':
          return jsonResponse({ error: 'timeout', cursor: String(outcome.cursor), waited_ms: timeoutS * 1000 }, {}, 404);
        case 'aborted':
          return new Response(null, { status: 499 });
      }
    } finally {
      waits.release();
    }
  };

  const events = ({ request, url, server }: HttpContext) => {
    const after = parseCursor(url.searchParams.get('after') ?? request.headers.get('last-event-id'));
    const filter = filterOf(url);
    if (!waits.acquire()) throw jsonError(503, 'too many waits and streams are open; try again');
    server.timeout(request, 0);
    const encoder = new TextEncoder();
    let stop = () => {};
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let sent = after;
        let closed = false;
        const send = (text: string) => {
          if (!closed) controller.enqueue(encoder.encode(text));
        };
        const pump = () => {
          for (;;) {
            const batch = matchesAfter(mail, filter, sent, STREAM_BATCH);
            for (const m of batch) send(`id: ${m.seq}\nevent: new\ndata: ${JSON.stringify({ Type: 'new', Data: waitJson(m) })}\n\n`);
            if (batch.length > 0) sent = batch[batch.length - 1].seq;
            if (batch.length < STREAM_BATCH) break;
          }
        };
        // A read mark or tags changed on messages the stream has reported (or that came before its
        // cursor) and that pass its filter; those past it are pump()'s, as they are now. No id line: a resume
        // replays new messages only, so the cursor stays the last new one's.
        const updated = (ids: readonly string[]) => {
          let later = false;
          for (const id of ids) {
            const m = mail.db.get(id);
            if (m === null) continue;
            if (m.seq > sent) later = true;
            else if (matches(mail, filter, m)) send(`event: updated\ndata: ${JSON.stringify({ Type: 'updated', Data: waitJson(m) })}\n\n`);
          }
          // One past the cursor may match the filter now (a tag it asks for was set): it is new here.
          if (later) pump();
        };
        // A deleted message can no longer be matched against the filter: every deletion is told.
        const deleted = (ids: readonly string[]) => {
          for (let i = 0; i < ids.length; i += STREAM_DELETED_IDS) {
            send(`event: deleted\ndata: ${JSON.stringify({ Type: 'deleted', Data: { IDs: ids.slice(i, i + STREAM_DELETED_IDS) } })}\n\n`);
          }
        };
        // Subscribed before the replay, so nothing indexed meanwhile is missed.
        const unsubscribe = mail.subscribe((change) => {
          if (change.kind === 'new') pump();
          else if (change.kind === 'updated') updated(change.ids);
          else if (change.kind === 'deleted') deleted(change.ids);
        });
        const unwatch = mail.watch();
        const ping = setInterval(() => send(': ping\n\n'), STREAM_PING_MS);
        stop = () => {
          if (closed) return;
          closed = true;
          unsubscribe();
          unwatch();
          clearInterval(ping);
          waits.release();
          try {
            controller.close();
          } catch {
            // Already closed by the client.
          }
        };
        request.signal.addEventListener('abort', () => stop(), { once: true });
        waits.stopping.addEventListener('abort', () => stop(), { once: true });
        send(`retry: 1000\n: cursor ${sent}\n\n`);
        pump();
      },
      cancel() {
        stop();
      },
    });
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' } });
  };

  const inboxes = () =>
    jsonResponse(mail.db.inboxes().map((i) => ({ Address: i.address, Total: i.total, Cursor: String(i.lastSeq) })));

  const inboxMessages = ({ url, params }: HttpContext) => {
    const inbox = inboxKey(params.address);
    const start = intParam(url, 'start', 0);
    const asked = intParam(url, 'limit', DEFAULT_LIMIT);
    const limit = asked === 0 || asked > MAX_LIMIT ? MAX_LIMIT : asked;
    const text = url.searchParams.get('query') ?? '';
    const page =
      text.trim() === ''
        ? mail.db.list({ inbox, limit, start })
        : mail.db.search(parseMailpitSearch(text, { extensions: true }), { inbox, limit, start });
    return jsonResponse(messagesSummaryJson(page, mail.db.stats(), start), { 'X-Mailbox-Cursor': String(mail.lastSeq) });
  };

  const deleteInbox = async ({ params }: HttpContext) => {
    const ids = mail.db.matchAfter({ terms: [{ kind: 'envelope', field: 'rcpt', value: params.address, negated: false }], dropped: [] }, 0, Number.MAX_SAFE_INTEGER).map((m) => m.id);
    const deleted = ids.length === 0 ? 0 : await mail.delete(ids);
    return jsonResponse({ deleted });
  };

  const found = (id: string): IndexedMessage => {
    if (!ID_PATTERN.test(id)) throw jsonError(400, `bad message id ${JSON.stringify(id)}`);
    const m = mail.db.get(id);
    if (m === null) throw jsonError(404, `no message ${id}`);
    return m;
  };

  const message = async ({ params }: HttpContext) => {
    const m = found(params.id);
    const bytes = await mail.readMessage(m.id);
    if (bytes === undefined) throw jsonError(404, `no message ${m.id}`);
    const parsed = await parseStoredMessage(bytes);
    const bodies = { text: parsed.email.text, html: parsed.email.html };
    const session = await deps.session(m.id);
    return jsonResponse({
      ...messageJson(m, parsed),
      Envelope: envelopeJson(m, session),
      Links: extractLinks(bodies).map((l) => ({ URL: l.url, Text: l.text })),
      Codes: extractCodes(bodies),
    });
  };

  const session = async ({ url, params }: HttpContext) => {
    const m = found(params.id);
    const record = await deps.session(m.id);
    if (record === null) throw jsonError(404, `no message ${m.id}`);
    if (url.searchParams.get('format') === 'smtp') {
      return new Response(record.replayable, {
        status: 200,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Disposition': `attachment; filename="${m.id}.smtp"`, 'X-Content-Type-Options': 'nosniff' },
      });
    }
    return jsonResponse({
      ID: m.id,
      ReceivedAt: formatTime(record.receivedMs),
      ClientAddress: record.clientAddress,
      Helo: record.helo,
      TLS: record.tls,
      AuthUser: record.authUser,
      MailFrom: record.mailFrom,
      RcptTo: record.recipients,
      Size: record.size,
      Replay: `${PREFIX}/message/${m.id}/session?format=smtp`,
    });
  };

  // The spool, not the index, answers: a message whose every copy was relayed is not indexed.
  const deliveries = ({ params }: HttpContext) => {
    if (!ID_PATTERN.test(params.id)) throw jsonError(400, `bad message id ${JSON.stringify(params.id)}`);
    if (!deps.deliveries) throw jsonError(404, 'serve does not relay (no --relay): every copy of a message stays local');
    const records = deps.deliveries(params.id);
    if (records === undefined) throw jsonError(404, `no message ${params.id}`);
    return jsonResponse(
      records.map((d) => ({
        Rcpt: d.address,
        State: d.state,
        Attempts: d.attempts ?? null,
        NextAttempt: d.nextAttemptMs === undefined ? null : formatTime(d.nextAttemptMs),
        LastReply: d.reply ?? null,
        At: d.atMs === undefined ? null : formatTime(d.atMs),
      })),
    );
  };

  const getFaults = () => jsonResponse(deps.faults.source);

  const putFaults = async ({ request, client, user }: HttpContext) => {
    const body = await readJsonBody(request, MAX_JSON_BODY_BYTES, jsonError);
    if (body === null) throw jsonError(400, 'the body must be the faults document: {"rules": [...]}');
    const why = deps.faults.replace(body, user ?? client);
    if (why !== null) throw jsonError(400, why);
    return jsonResponse(deps.faults.source);
  };

  const deleteFaults = ({ client, user }: HttpContext) => {
    deps.faults.replace({ rules: [] }, user ?? client);
    return jsonResponse(deps.faults.source);
  };

  const openapi = () => jsonResponse(openApiDocument(deps.version));

  const notFound = () => {
    throw jsonError(404, `no such route under ${PREFIX}; see ${PREFIX}/openapi.json`);
  };

  return [
    { method: 'GET', path: `${PREFIX}/cursor`, handler: cursor },
    { method: 'GET', path: `${PREFIX}/wait`, handler: wait },
    { method: 'GET', path: `${PREFIX}/events`, handler: events },
    { method: 'GET', path: `${PREFIX}/inboxes`, handler: inboxes },
    { method: 'GET', path: `${PREFIX}/inboxes/:address/messages`, handler: inboxMessages },
    { method: 'DELETE', path: `${PREFIX}/inboxes/:address/messages`, handler: deleteInbox },
    { method: 'GET', path: `${PREFIX}/message/:id`, handler: message },
    { method: 'GET', path: `${PREFIX}/message/:id/session`, handler: session },
    { method: 'GET', path: `${PREFIX}/message/:id/deliveries`, handler: deliveries },
    { method: 'GET', path: `${PREFIX}/faults`, handler: getFaults },
    { method: 'PUT', path: `${PREFIX}/faults`, handler: putFaults },
    { method: 'DELETE', path: `${PREFIX}/faults`, handler: deleteFaults },
    { method: 'GET', path: `${PREFIX}/openapi.json`, handler: openapi },
    { method: 'GET', path: `${PREFIX}/*`, handler: notFound },
  ];
}

/** Whether a message the index holds passes a stream's filter (its query and recipients). */
function matches(mail: MailSource, filter: WaitFilter, m: IndexedMessage): boolean {
  if (filter.query.terms.length === 0 && filter.recipients.length === 0) return true;
  return matchesAfter(mail, filter, m.seq - 1, 1)[0]?.seq === m.seq;
}

/** A wait or stream result: the Mailpit summary with its cursor and envelope recipients. */
function waitJson(m: IndexedMessage): Record<string, unknown> {
  return { ...summaryJson(m), Cursor: String(m.seq), MailFrom: m.mailFrom, RcptTo: m.recipients };
}

function envelopeJson(m: IndexedMessage, session: SessionRecord | null): Record<string, unknown> {
  return {
    MailFrom: m.mailFrom,
    RcptTo: m.recipients,
    AuthUser: m.authUser,
    ReceivedAt: formatTime(m.receivedMs),
    Cursor: String(m.seq),
    ClientAddress: session?.clientAddress ?? null,
    Helo: session?.helo ?? null,
    TLS: session?.tls ?? null,
  };
}
