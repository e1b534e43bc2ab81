/**
 * @module The HTTP listener of `mailbox serve` (--http): one Bun.serve per address, one route
 * table shared by all of them, and the checks every request passes before its handler runs.
 * Rule 1: every request goes through one funnel: path cleaning (`//` collapsed), the Host check
 *         (no DNS rebinding), HTTP Basic where the listener needs auth, the Origin check on routes
 *         that ask for it, then the handler. A handler answers by returning a Response or throwing
 *         HttpError; anything else thrown is a 500 with a fixed body, logged, never a stack trace.
 * Rule 2: one log line per error answer (4xx/5xx), never one per success.
 * Rule 3: routes are added with addRoutes() by whoever serves something (the Mailpit API, our API,
 *         the web UI, /metrics); a path given twice for one method is a bug, thrown at once.
 */
import { isIP } from 'node:net';
import type { Server, ServerWebSocket } from 'bun';
import { isLoopbackHost } from '../auth/networks.ts';
import { printable, type Logger } from '../log.ts';
import { formatHostPort, type HostPort } from '../transport/host-port.ts';
import type { BasicAuth } from './basic-auth.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';

/** What a handler gets: the request, its cleaned URL, the path parameters and who asks. */
export interface HttpContext {
  readonly request: Request;
  /** The URL with duplicate slashes collapsed. */
  readonly url: URL;
  /** `:name` segments of the route, decoded; `*` is the rest of the path. */
  readonly params: Readonly<Record<string, string>>;
  /** The client's IP address. */
  readonly client: string;
  /** The user HTTP Basic verified, or null when the listener asks for none. */
  readonly user: string | null;
  readonly server: Server<WebSocketData>;
}

/** A handler's answer; undefined only after server.upgrade() took the request for a websocket. */
export type HttpHandler = (context: HttpContext) => Response | undefined | Promise<Response | undefined>;

export interface HttpRoute {
  readonly method: HttpMethod;
  /**
   * "/api/v1/message/:id/part/:part"; a segment ":id.html" takes a name ending in ".html" (the
   * parameter is the name without it); a last segment "*" takes the rest of the path.
   */
  readonly path: string;
  readonly handler: HttpHandler;
  /**
   * Refuse a cross-origin browser request (a foreign Origin header) with 403. Every route under
   * /api/ is checked whatever this says; the web UI's pages and /view are not.
   */
  readonly checkOrigin?: boolean;
  /**
   * Also answer an image request from a sandboxed frame (Origin "null", Sec-Fetch-Mode no-cors):
   * the web UI shows mail HTML in a frame with no origin of its own, and its inline images come
   * from here. A no-cors response is opaque to the page that asked, so nothing is read across origins.
   */
  readonly allowSandboxedImages?: boolean;
}

/** What a websocket upgraded by a route carries: its own handlers. */
export interface WebSocketData {
  readonly open?: (ws: ServerWebSocket<WebSocketData>) => void;
  readonly message?: (ws: ServerWebSocket<WebSocketData>, message: string | Buffer) => void;
  readonly close?: (ws: ServerWebSocket<WebSocketData>) => void;
}

/** An answer other than 200: status, body and its type. Mailpit's routes answer text/plain. */
export class HttpError extends Error {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, body: string, options: { contentType?: string; headers?: Record<string, string> } = {}) {
    super(body);
    this.name = 'HttpError';
    this.status = status;
    this.body = body;
    this.contentType = options.contentType ?? 'text/plain; charset=utf-8';
    this.headers = options.headers ?? {};
  }

  /** A JSON error body ({"error": …} on our API, {"Error": …} on Mailpit's send). */
  static json(status: number, body: unknown, headers: Record<string, string> = {}): HttpError {
    return new HttpError(status, `${JSON.stringify(body)}\n`, { contentType: 'application/json', headers });
  }

  toResponse(): Response {
    return new Response(this.body, { status: this.status, headers: { 'Content-Type': this.contentType, ...this.headers } });
  }
}

/** Mailpit's answer to a cross-origin request it does not allow (server/cors.go). */
export const CORS_VIOLATION = 'Blocked due to CORS violation';

export interface HttpServerOptions {
  readonly addresses: readonly HostPort[];
  readonly log: Logger;
  /** Key and certificate for HTTPS; null serves clear HTTP. */
  readonly tls: (() => { key: string; cert: string }) | null;
  /** Verifies HTTP Basic credentials; null when no listener needs auth. */
  readonly auth: BasicAuth | null;
  /** Whether a listener on `address` demands credentials. */
  readonly needsAuth: (address: HostPort) => boolean;
  /** Largest request body in bytes (Bun refuses a larger one with 413). */
  readonly maxBodyBytes: number;
}

interface CompiledRoute {
  readonly route: HttpRoute;
  readonly segments: readonly string[];
}

/** Bun closes an HTTP connection idle this long (seconds); long polls extend it per request. */
export const IDLE_TIMEOUT_S = 10;

/** The running HTTP listeners and their routes. */
export class HttpServer {
  readonly #options: HttpServerOptions;
  readonly #routes: CompiledRoute[] = [];
  readonly #servers: { server: Server<WebSocketData>; target: HostPort }[] = [];
  /** Host names a Host header may carry besides loopback ones: the --http hosts. */
  readonly #allowedHosts: ReadonlySet<string>;
  #draining = false;
  readonly #atStop: (() => void)[] = [];

  private constructor(options: HttpServerOptions) {
    this.#options = options;
    this.#allowedHosts = new Set(options.addresses.map((a) => a.host.toLowerCase()));
  }

  /** Binds every address; throws (with `.code` EADDRINUSE and the like) when one cannot be bound. */
  static listen(options: HttpServerOptions): HttpServer {
    const http = new HttpServer(options);
    try {
      for (const target of options.addresses) http.#bind(target);
    } catch (error) {
      for (const { server } of http.#servers) server.stop(true);
      throw error;
    }
    return http;
  }

  /** "host:port" of each listener, the port as bound (port 0 resolved). */
  get addresses(): string[] {
    return this.#servers.map(({ server, target }) => formatHostPort(target.host, server.port ?? target.port));
  }

  /** Whether the listeners speak HTTPS. */
  get secure(): boolean {
    return this.#options.tls !== null;
  }

  /** Adds routes to every listener; a method and path already taken throws. */
  addRoutes(routes: readonly HttpRoute[]): void {
    for (const route of routes) {
      const segments = splitPath(route.path);
      const clash = this.#routes.find((r) => r.route.method === route.method && routeShape(r.segments) === routeShape(segments));
      if (clash) throw new Error(`http: ${route.method} ${route.path} is already routed`);
      this.#routes.push({ route, segments });
    }
    // Literal segments before parameters, so "/api/v1/message/latest" style routes can coexist.
    this.#routes.sort((a, b) => specificity(b.segments) - specificity(a.segments));
  }

  /** Stops taking new connections; open requests finish. */
  async drain(): Promise<void> {
    this.#stopping();
    await Promise.all(this.#servers.map(({ server }) => server.stop(false)));
  }

  /**
   * Runs `fn` once when the server starts to stop (drain or close): for what routes hold open,
   * such as long polls, streams and websockets, which would otherwise keep a drain waiting.
   */
  atStop(fn: () => void): void {
    this.#atStop.push(fn);
  }

  #stopping(): void {
    this.#draining = true;
    for (const fn of this.#atStop.splice(0)) fn();
  }

  async close(): Promise<void> {
    this.#stopping();
    await Promise.all(this.#servers.splice(0).map(({ server }) => server.stop(true)));
  }

  #bind(target: HostPort): void {
    const tls = this.#options.tls?.();
    const needsAuth = this.#options.needsAuth(target);
    const server: Server<WebSocketData> = Bun.serve<WebSocketData>({
      hostname: target.host,
      port: target.port,
      reusePort: false,
      idleTimeout: IDLE_TIMEOUT_S,
      maxRequestBodySize: this.#options.maxBodyBytes,
      development: false,
      ...(tls ? { tls: { key: tls.key, cert: tls.cert } } : {}),
      fetch: (request, srv) => this.#handle(request, srv, needsAuth),
      error: (error) => {
        this.#options.log.error('http-internal-error', { error: error.message });
        return new Response('internal error\n', { status: 500, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
      },
      websocket: {
        // Mailpit's keepalive is a ping every 54 s; Bun's default idle timeout is 120 s.
        idleTimeout: 120,
        sendPings: true,
        open: (ws) => ws.data.open?.(ws),
        message: (ws, message) => ws.data.message?.(ws, message),
        close: (ws) => ws.data.close?.(ws),
      },
    });
    this.#servers.push({ server, target });
  }

  async #handle(request: Request, server: Server<WebSocketData>, needsAuth: boolean): Promise<Response | undefined> {
    const started = performance.now();
    const url = cleanUrl(request.url);
    const client = server.requestIP(request)?.address ?? 'unknown';
    let status = 500;
    let why = '';
    try {
      const response = await this.#route(request, url, client, server, needsAuth);
      // undefined: the request was upgraded to a websocket.
      if (response === undefined) return undefined;
      status = response.status;
      if (status >= 400) why = await response.clone().text().catch(() => '');
      return response;
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        why = error.body;
        return error.toResponse();
      }
      status = 500;
      why = 'internal error';
      this.#options.log.error('http-internal-error', {
        method: request.method,
        path: printable(url.pathname),
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
      return new Response('internal error\n', { status: 500, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
    } finally {
      if (status >= 400) {
        const fields = {
          method: request.method,
          path: printable(url.pathname + url.search),
          status,
          error: printable(why.trim()),
          client,
          ms: Math.round((performance.now() - started) * 10) / 10,
        };
        if (status >= 500) this.#options.log.error('http-error', fields);
        else this.#options.log.warn('http-error', fields);
      }
    }
  }

  async #route(request: Request, url: URL, client: string, server: Server<WebSocketData>, needsAuth: boolean): Promise<Response | undefined> {
    if (this.#draining) throw new HttpError(503, 'shutting down\n', { headers: { Connection: 'close' } });
    if (!this.#hostAllowed(request.headers.get('host'))) throw new HttpError(403, 'Forbidden: the Host header names neither a loopback name nor the --http host\n');
    let user: string | null = null;
    if (needsAuth) {
      user = this.#options.auth === null ? null : await this.#options.auth.check(request.headers.get('authorization'), client);
      if (user === null) throw new HttpError(401, 'Unauthorised.\n', { headers: { 'WWW-Authenticate': 'Basic realm="mailbox"' } });
    }
    const segments = splitPath(url.pathname);
    const method = request.method as HttpMethod;
    let pathMatched = false;
    for (const { route, segments: pattern } of this.#routes) {
      const params = matchPath(pattern, segments);
      if (params === null) continue;
      pathMatched = true;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
      if ((route.checkOrigin || url.pathname.startsWith('/api/')) && !originAllowed(request) && !(route.allowSandboxedImages && sandboxedImageRequest(request))) {
        throw new HttpError(403, `${CORS_VIOLATION}\n`);
      }
      const response = await route.handler({ request, url, params, client, user, server });
      return response;
    }
    // Browser preflight: Mailpit answers OPTIONS on its API with 200 and no body.
    if (method === 'OPTIONS' && url.pathname.startsWith('/api/')) {
      if (!originAllowed(request)) throw new HttpError(403, `${CORS_VIOLATION}\n`);
      return new Response(null, { status: 200 });
    }
    if (pathMatched) throw new HttpError(405, 'Method Not Allowed\n');
    throw new HttpError(404, '404 page not found\n');
  }

  /** No DNS rebinding: the Host must be a loopback name or address, or a --http host. */
  #hostAllowed(header: string | null): boolean {
    if (header === null) return false;
    const host = hostOfHeader(header);
    if (host === null) return false;
    return isLoopbackName(host) || this.#allowedHosts.has(host);
  }
}

/** The host part of a Host header, lower-cased, without brackets or port; null when malformed. */
export function hostOfHeader(header: string): string | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::\d{1,5})?$/.exec(header.trim());
  if (m === null) return null;
  return (m[1] ?? m[2]).toLowerCase();
}

/** localhost, names under .localhost (RFC 6761 §6.3), 127/8 and ::1. */
export function isLoopbackName(host: string): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  return isIP(host) !== 0 && isLoopbackHost(host);
}

/** An <img> in a sandboxed frame without allow-same-origin: Origin "null", a no-cors image fetch. */
export function sandboxedImageRequest(request: Request): boolean {
  const h = request.headers;
  return h.get('origin') === 'null' && h.get('sec-fetch-mode') === 'no-cors' && h.get('sec-fetch-dest') === 'image';
}

/**
 * Mailpit's rule (server/cors.go): no Origin is allowed (not a browser, or same-origin GET);
 * otherwise the Origin's host and port must be the Host the request was sent to.
 */
export function originAllowed(request: Request): boolean {
  const origin = request.headers.get('origin');
  if (origin === null) return true;
  const host = request.headers.get('host');
  if (host === null) return false;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
  return parsed.host.toLowerCase() === host.trim().toLowerCase() || sameHostDefaultPort(parsed, host);
}

function sameHostDefaultPort(origin: URL, host: string): boolean {
  // "Host: example:80" against "Origin: http://example" (the URL drops a default port).
  const defaultPort = origin.protocol === 'https:' ? '443' : '80';
  return origin.port === '' && host.trim().toLowerCase() === `${origin.hostname.toLowerCase()}:${defaultPort}`;
}

/** The URL with runs of slashes collapsed, so "//view/x.html" is "/view/x.html" (Mailpit cleans paths). */
export function cleanUrl(raw: string): URL {
  const url = new URL(raw);
  if (url.pathname.includes('//')) url.pathname = url.pathname.replace(/\/{2,}/g, '/');
  return url;
}

function splitPath(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

/** "/a/:x/b" and "/a/:y/b" are one route. */
function routeShape(segments: readonly string[]): string {
  return segments.map((s) => (s.startsWith(':') ? `:${paramSuffix(s)}` : s)).join('/');
}

/** ".html" of ":id.html"; "" for a plain parameter. */
function paramSuffix(segment: string): string {
  const dot = segment.indexOf('.');
  return dot < 0 ? '' : segment.slice(dot);
}

function specificity(segments: readonly string[]): number {
  let score = 0;
  for (const s of segments) score = score * 4 + (s === '*' ? 0 : !s.startsWith(':') ? 3 : paramSuffix(s) !== '' ? 2 : 1);
  return score * 64 + segments.length;
}

function matchPath(pattern: readonly string[], segments: readonly string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '*') {
      params['*'] = segments.slice(i).map(decodeSegment).join('/');
      return params;
    }
    if (i >= segments.length) return null;
    const decoded = decodeSegment(segments[i]);
    if (p.startsWith(':')) {
      const suffix = paramSuffix(p);
      if (suffix === '') params[p.slice(1)] = decoded;
      else if (decoded.length > suffix.length && decoded.endsWith(suffix)) params[p.slice(1, p.length - suffix.length)] = decoded.slice(0, -suffix.length);
      else return null;
    } else if (p !== segments[i]) return null;
  }
  return pattern.length === segments.length ? params : null;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
