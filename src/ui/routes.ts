/**
 * @module The web UI's routes on the HTTP server: GET / and /view/{ID} (the page) and GET /ui/*
 * (its script and stylesheet), gzip-compressed once and served from memory.
 * Rule: the page runs under a CSP that allows only its own script and style, fetches from its own
 * origin, and frames only its own origin (the sandboxed /view of a message); nothing comes from
 * elsewhere, and no other site may frame the UI.
 */
import type { HttpRoute } from '../http/http-server.ts';
import type { UiBundle } from './bundle.ts';

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; " +
  "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Prepared {
  readonly type: string;
  readonly plain: Uint8Array;
  readonly gzip: Uint8Array;
  readonly etag: string;
}

function prepare(bundle: UiBundle): Map<string, Prepared> {
  const files = new Map<string, Prepared>();
  for (const [path, file] of Object.entries(bundle.files)) {
    const plain = new TextEncoder().encode(file.body);
    files.set(path, { type: file.type, plain, gzip: Bun.gzipSync(plain, { level: 9 }), etag: `"${Bun.hash(plain).toString(36)}"` });
  }
  return files;
}

function acceptsGzip(request: Request): boolean {
  return /\bgzip\b/.test(request.headers.get('accept-encoding') ?? '');
}

/** The routes serving `load()`'s bundle; it is loaded on the first request and kept. */
export function uiRoutes(load: () => Promise<UiBundle>): HttpRoute[] {
  let prepared: Promise<Map<string, Prepared>> | null = null;
  const files = () => {
    prepared ??= load().then(prepare);
    prepared.catch(() => (prepared = null));
    return prepared;
  };

  async function serve(request: Request, path: string): Promise<Response> {
    const file = (await files()).get(path);
    if (!file) return new Response('404 page not found\n', { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
    const page = path === '/';
    const headers: Record<string, string> = {
      'Content-Type': file.type,
      ETag: file.etag,
      Vary: 'Accept-Encoding',
      // The page names its files by content hash: they never change, the page is revalidated.
      'Cache-Control': page ? 'no-cache' : 'public, max-age=31536000, immutable',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    };
    if (page) headers['Content-Security-Policy'] = UI_CSP;
    if (request.headers.get('if-none-match') === file.etag) return new Response(null, { status: 304, headers });
    if (acceptsGzip(request)) {
      headers['Content-Encoding'] = 'gzip';
      return new Response(file.gzip, { headers });
    }
    return new Response(file.plain, { headers });
  }

  return [
    { method: 'GET', path: '/', handler: ({ request }) => serve(request, '/') },
    // Mailpit's address of a message in its UI: the page, which opens that message.
    { method: 'GET', path: '/view/:id', handler: ({ request }) => serve(request, '/') },
    { method: 'GET', path: '/ui/*', handler: ({ request, url }) => serve(request, url.pathname) },
  ];
}
