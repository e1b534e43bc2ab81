/**
 * @module Mailpit's websocket, /api/events (research/mailpit-api.md §1.6): every frame is
 * {"Type", "Data"}; `new` carries a MessageSummary, `update` {ID, Read, Tags}, `delete` {ID},
 * `truncate` null, `stats` {Total, Unread, Version} (debounced 250 ms, and sent on connect).
 * Rule: events are sent after the change is durable and indexed, so a client that reacts to
 *       `new` can always GET the message. The websocket replays nothing; our SSE stream
 *       (/api/mailbox/v1/events) is the resumable one.
 */
import type { ServerWebSocket } from 'bun';
import type { HttpContext, HttpRoute, WebSocketData } from './http-server.ts';
import { HttpError } from './http-server.ts';
import type { MailChange, MailSource } from './mail-source.ts';
import { summaryJson } from './mailpit-json.ts';

const STATS_DEBOUNCE_MS = 250;
const EMPTY_QUERY = Object.freeze({ terms: [], dropped: [] });

export class MailpitEvents {
  readonly #mail: MailSource;
  readonly #version: string;
  readonly #maxClients: number;
  readonly #clients = new Set<ServerWebSocket<WebSocketData>>();
  readonly #stop: () => void;
  /** Detaches the index's watcher, attached while any client is connected. */
  #unwatch: (() => void) | null = null;
  #statsTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(mail: MailSource, version: string, maxClients: number) {
    this.#mail = mail;
    this.#version = version;
    this.#maxClients = maxClients;
    this.#stop = mail.subscribe((change) => this.#changed(change));
  }

  get clients(): number {
    return this.#clients.size;
  }

  routes(): HttpRoute[] {
    return [{ method: 'GET', path: '/api/events', handler: (context) => this.#upgrade(context) }];
  }

  close(): void {
    this.#stop();
    this.#unwatchIndex();
    if (this.#statsTimer !== null) clearTimeout(this.#statsTimer);
    for (const ws of this.#clients) ws.close(1001, 'server shutting down');
    this.#clients.clear();
  }

  #unwatchIndex(): void {
    this.#unwatch?.();
    this.#unwatch = null;
  }

  #upgrade({ request, server }: HttpContext): undefined {
    if (this.#clients.size >= this.#maxClients) throw new HttpError(503, 'too many websocket clients\n');
    const data: WebSocketData = {
      open: (ws) => {
        this.#clients.add(ws);
        this.#unwatch ??= this.#mail.watch();
        ws.send(this.#statsFrame());
      },
      close: (ws) => {
        this.#clients.delete(ws);
        if (this.#clients.size === 0) this.#unwatchIndex();
      },
    };
    if (server.upgrade(request, { data })) return undefined;
    throw new HttpError(400, 'Bad Request: a websocket upgrade is expected\n');
  }

  #broadcast(frame: string): void {
    for (const ws of this.#clients) ws.send(frame);
  }

  #statsFrame(): string {
    const stats = this.#mail.db.stats();
    return JSON.stringify({ Type: 'stats', Data: { Total: stats.total, Unread: stats.unread, Version: this.#version } });
  }

  #changed(change: MailChange): void {
    if (this.#clients.size === 0) return;
    switch (change.kind) {
      case 'new':
        for (const m of this.#mail.db.matchAfter(EMPTY_QUERY, change.afterSeq, change.count)) this.#broadcast(JSON.stringify({ Type: 'new', Data: summaryJson(m) }));
        break;
      case 'updated':
        for (const id of change.ids) {
          const m = this.#mail.db.get(id);
          if (m !== null) this.#broadcast(JSON.stringify({ Type: 'update', Data: { ID: m.id, Read: m.read, Tags: m.tags } }));
        }
        break;
      case 'deleted':
        if (this.#mail.db.stats().total === 0) this.#broadcast(JSON.stringify({ Type: 'truncate', Data: null }));
        else for (const id of change.ids) this.#broadcast(JSON.stringify({ Type: 'delete', Data: { ID: id } }));
        break;
      case 'reset':
        this.#broadcast(JSON.stringify({ Type: 'truncate', Data: null }));
        break;
      default: {
        const never: never = change;
        return never;
      }
    }
    this.#scheduleStats();
  }

  #scheduleStats(): void {
    if (this.#statsTimer !== null) return;
    this.#statsTimer = setTimeout(() => {
      this.#statsTimer = null;
      if (this.#clients.size > 0) this.#broadcast(this.#statsFrame());
    }, STATS_DEBOUNCE_MS);
  }
}
