/**
 * @module What the web UI asks of the HTTP API: Mailpit's v1 routes for lists, messages, parts
 * and changes, and mailbox's own /api/mailbox/v1 routes for inboxes, the SMTP session, deliveries
 * and the live event stream. Rule: every request goes through `request`, which turns a failure
 * into an ApiError carrying the status and the server's one-line text, never a stack.
 */

export interface Address {
  readonly Name: string;
  readonly Address: string;
}

export interface Summary {
  readonly ID: string;
  readonly MessageID: string;
  readonly Read: boolean;
  readonly From: Address | null;
  readonly To: readonly Address[];
  readonly Cc: readonly Address[] | null;
  readonly Bcc: readonly Address[] | null;
  readonly Subject: string;
  readonly Created: string;
  readonly Size: number;
  readonly Attachments: number;
  readonly Snippet: string;
  readonly Tags: readonly string[] | null;
}

export interface SummaryPage {
  readonly total: number;
  readonly unread: number;
  readonly messages_count: number;
  readonly messages_unread: number;
  readonly start: number;
  readonly messages: readonly Summary[];
}

export interface Part {
  readonly PartID: string;
  readonly FileName: string;
  readonly ContentType: string;
  readonly ContentID: string;
  readonly Size: number;
}

/** The SMTP envelope and session of a message (our API); null where the spool record predates it. */
export interface Envelope {
  readonly MailFrom?: string;
  readonly RcptTo?: readonly string[];
  readonly Helo?: string | null;
  readonly ClientAddress?: string | null;
  /** "TLSv1.3" and the like; null for a clear session. */
  readonly TLS?: string | null;
  readonly AuthUser?: string | null;
  readonly ReceivedAt?: string;
}

export interface Message {
  readonly ID: string;
  readonly MessageID: string;
  readonly From: Address | null;
  readonly To: readonly Address[] | null;
  readonly Cc: readonly Address[] | null;
  readonly Bcc: readonly Address[] | null;
  readonly ReplyTo: readonly Address[] | null;
  readonly Subject: string;
  readonly Date: string;
  readonly Text: string;
  readonly HTML: string;
  readonly Size: number;
  readonly Inline: readonly Part[] | null;
  readonly Attachments: readonly Part[] | null;
  readonly Envelope?: Envelope;
  /** Links and codes found in the text and HTML (our API). */
  readonly Links?: readonly { readonly URL: string; readonly Text?: string }[];
  readonly Codes?: readonly string[];
}

export interface Inbox {
  readonly Address: string;
  readonly Total: number;
  readonly Unread?: number;
}

export interface Delivery {
  readonly Rcpt: string;
  readonly State: string;
  readonly Attempts?: number;
  readonly NextAttempt?: string | null;
  readonly LastReply?: { readonly Code?: number; readonly Enhanced?: string; readonly Text?: string } | string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function request(path: string, init?: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  if (!response.ok) {
    const text = (await response.text().catch(() => '')).trim().split('\n')[0];
    throw new ApiError(response.status, text || `${response.status} ${response.statusText}`);
  }
  return response;
}

async function json<T>(path: string, init?: RequestInit): Promise<T> {
  return (await request(path, init)).json() as Promise<T>;
}

const enc = encodeURIComponent;

export const PAGE_SIZE = 50;

/** Where the list comes from: everything, or one envelope recipient's inbox; `query` narrows it. */
export interface ListSource {
  readonly inbox: string | null;
  readonly query: string;
  readonly start: number;
}

/** One page of summaries, newest first. */
export async function listMessages(source: ListSource): Promise<SummaryPage> {
  const paging = `start=${source.start}&limit=${PAGE_SIZE}`;
  const query = source.query.trim();
  const path = source.inbox
    ? `/api/mailbox/v1/inboxes/${enc(source.inbox)}/messages?${paging}${query ? `&query=${enc(query)}` : ''}`
    : query
      ? `/api/v1/search?query=${enc(query)}&${paging}`
      : `/api/v1/messages?${paging}`;
  return json<SummaryPage>(path);
}

/**
 * The store's commit cursor now (the SSE stream starts after it), or null when the server has no
 * /api/mailbox/v1 routes: the UI then falls back to Mailpit's routes and websocket.
 */
export async function getCursor(): Promise<string | null> {
  try {
    return (await json<{ cursor: string }>('/api/mailbox/v1/cursor')).cursor;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}

export async function listInboxes(): Promise<Inbox[]> {
  const body = await json<Inbox[] | { inboxes?: Inbox[]; Inboxes?: Inbox[] }>('/api/mailbox/v1/inboxes');
  return Array.isArray(body) ? body : (body.inboxes ?? body.Inboxes ?? []);
}

/**
 * The message; with our API (`extended`) also its envelope and extracted links and codes, and
 * reading it does not mark it read; Mailpit's route marks it read.
 */
export function getMessage(id: string, extended: boolean): Promise<Message> {
  return json<Message>(extended ? `/api/mailbox/v1/message/${enc(id)}` : `/api/v1/message/${enc(id)}`);
}

export function getHeaders(id: string): Promise<Record<string, string[]>> {
  return json<Record<string, string[]>>(`/api/v1/message/${enc(id)}/headers`);
}

export async function getText(path: string): Promise<string> {
  return (await request(path)).text();
}

export async function getDeliveries(id: string): Promise<Delivery[] | null> {
  try {
    const body = await json<Delivery[] | { deliveries?: Delivery[]; Deliveries?: Delivery[] }>(`/api/mailbox/v1/message/${enc(id)}/deliveries`);
    return Array.isArray(body) ? body : (body.deliveries ?? body.Deliveries ?? []);
  } catch (error) {
    // No relay configured: the route answers 404 and every copy stayed local.
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

export async function setRead(ids: readonly string[], read: boolean): Promise<void> {
  await request('/api/v1/messages', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ IDs: ids, Read: read }) });
}

export async function deleteMessages(ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await request('/api/v1/messages', { method: 'DELETE', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ IDs: ids }) });
}

/** Deletes every stored message (Mailpit's DELETE with no IDs); the relay queue is not touched. */
export async function deleteAll(inbox: string | null): Promise<void> {
  if (inbox) await request(`/api/mailbox/v1/inboxes/${enc(inbox)}/messages`, { method: 'DELETE' });
  else await request('/api/v1/messages', { method: 'DELETE' });
}

export const urls = {
  view: (id: string, remote: boolean) => `/view/${enc(id)}.html${remote ? '?remote=1' : ''}`,
  text: (id: string) => `/view/${enc(id)}.txt`,
  raw: (id: string) => `/api/v1/message/${enc(id)}/raw`,
  rawDownload: (id: string) => `/api/v1/message/${enc(id)}/raw?dl=1`,
  part: (id: string, part: string) => `/api/v1/message/${enc(id)}/part/${enc(part)}`,
  replay: (id: string) => `/api/mailbox/v1/message/${enc(id)}/session?format=smtp`,
  events: (cursor: string) => `/api/mailbox/v1/events?after=${enc(cursor)}`,
  websocket: () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/events`,
};
