// The HTTP funnel: path cleaning, the Host and Origin checks, Mailpit's 404 body, one log line
// per error answer and never a stack trace, route clashes, HTTP Basic with its credential cache.
import { afterAll, describe, expect, test } from 'bun:test';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { AuthThrottle } from '../../src/auth/throttle.ts';
import { BasicAuth, parseBasic } from '../../src/http/basic-auth.ts';
import { HttpError, HttpServer, cleanUrl, hostOfHeader, isLoopbackName, originAllowed } from '../../src/http/http-server.ts';
import type { Fields, Logger } from '../../src/log.ts';

interface Logged {
  readonly event: string;
  readonly fields: Fields;
}

function recordingLog(lines: Logged[]): Logger {
  const record = (event: string, fields: Fields = {}) => lines.push({ event, fields });
  return { info: record, warn: record, error: record, reopen() {}, close() {} };
}

const servers: HttpServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

function start(options: { auth?: BasicAuth; needsAuth?: boolean; log?: Logged[] } = {}): HttpServer {
  const http = HttpServer.listen({
    addresses: [{ host: '127.0.0.1', port: 0 }],
    log: recordingLog(options.log ?? []),
    tls: null,
    auth: options.auth ?? null,
    needsAuth: () => options.needsAuth ?? false,
    maxBodyBytes: 1024 * 1024,
  });
  servers.push(http);
  http.addRoutes([
    { method: 'GET', path: '/api/v1/thing/:id', handler: ({ params, user }) => Response.json({ id: params.id, user }) },
    { method: 'GET', path: '/api/v1/thing/latest', handler: () => Response.json({ id: 'the latest' }) },
    { method: 'GET', path: '/view/:file', handler: ({ params }) => new Response(params.file) },
    { method: 'GET', path: '/view/:id.txt', handler: ({ params }) => new Response(`text of ${params.id}`) },
    { method: 'GET', path: '/assets/*', handler: ({ params }) => new Response(params['*']) },
    { method: 'GET', path: '/boom', handler: () => { throw new Error('secret detail at /src/x.ts:1'); } },
    { method: 'GET', path: '/api/v1/teapot', handler: () => { throw new HttpError(418, 'short and stout\n'); } },
  ]);
  return http;
}

function base(http: HttpServer): string {
  return `http://${http.addresses[0]}`;
}

describe('routing', () => {
  test('a literal segment wins over a parameter, whatever the order routes were added in', async () => {
    const http = start();
    expect(await (await fetch(`${base(http)}/api/v1/thing/latest`)).json()).toEqual({ id: 'the latest' });
    expect(await (await fetch(`${base(http)}/api/v1/thing/abc`)).json()).toEqual({ id: 'abc', user: null });
  });

  test('duplicate slashes are collapsed (cypress-mailpit asks for //view/ID.html)', async () => {
    const http = start();
    const r = await fetch(`${base(http)}//view//x.html`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('x.html');
    expect(await (await fetch(`${base(http)}/view/abc.txt`)).text()).toBe('text of abc');
    expect(await (await fetch(`${base(http)}/view/.txt`)).text()).toBe('.txt');
    expect(cleanUrl('http://h//a///b?q=//').pathname).toBe('/a/b');
  });

  test('a wildcard takes the rest of the path', async () => {
    const http = start();
    expect(await (await fetch(`${base(http)}/assets/js/app.js`)).text()).toBe('js/app.js');
  });

  test("unknown paths get Mailpit's 404 body, a known path with another method 405, OPTIONS on the API 200", async () => {
    const log: Logged[] = [];
    const http = start({ log });
    const r = await fetch(`${base(http)}/api/v1/nothing`);
    expect(r.status).toBe(404);
    expect(await r.text()).toBe('404 page not found\n');
    expect((await fetch(`${base(http)}/api/v1/thing/x`, { method: 'DELETE' })).status).toBe(405);
    const pre = await fetch(`${base(http)}/api/v1/thing/x`, { method: 'OPTIONS' });
    expect(pre.status).toBe(200);
    expect(await pre.text()).toBe('');
    expect(log.filter((l) => l.event === 'http-error').map((l) => l.fields.status)).toEqual([404, 405]);
  });

  test('a route added twice for one method throws', () => {
    const http = start();
    expect(() => http.addRoutes([{ method: 'GET', path: '/api/v1/thing/:other', handler: () => new Response('') }])).toThrow(/already routed/);
    http.addRoutes([{ method: 'PUT', path: '/api/v1/thing/:other', handler: () => new Response('') }]);
  });

  test('a handler that throws gets a 500 without its stack; the log has it, one line', async () => {
    const log: Logged[] = [];
    const http = start({ log });
    const r = await fetch(`${base(http)}/boom`);
    expect(r.status).toBe(500);
    const body = await r.text();
    expect(body).toBe('internal error\n');
    expect(body).not.toContain('secret');
    expect(log.filter((l) => l.event === 'http-internal-error')).toHaveLength(1);
    expect(String(log.find((l) => l.event === 'http-internal-error')!.fields.error)).toContain('secret detail');
    const teapot = await fetch(`${base(http)}/api/v1/teapot`);
    expect(teapot.status).toBe(418);
    expect(await teapot.text()).toBe('short and stout\n');
    expect(log.filter((l) => l.event === 'http-error').map((l) => [l.fields.status, l.fields.error])).toEqual([
      [500, 'internal error'],
      [418, 'short and stout'],
    ]);
  });
});

describe('Host and Origin (no DNS rebinding, no cross-site requests)', () => {
  test('a foreign Host is refused with 403 before any route runs', async () => {
    const http = start();
    const port = http.addresses[0].split(':')[1];
    const foreign = await rawGet(port, '/api/v1/thing/x', { Host: `attacker.example:${port}` });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toContain('Host');
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `app.localhost:${port}`, '127.9.9.9']) {
      expect((await rawGet(port, '/api/v1/thing/x', { Host: host })).status).toBe(200);
    }
  });

  test('a foreign Origin on /api/ gets Mailpit\'s CORS answer; the same origin passes; /view is not checked', async () => {
    const http = start();
    const r = await fetch(`${base(http)}/api/v1/thing/x`, { headers: { Origin: 'http://evil.example' } });
    expect(r.status).toBe(403);
    expect(await r.text()).toBe('Blocked due to CORS violation\n');
    expect((await fetch(`${base(http)}/api/v1/thing/x`, { headers: { Origin: base(http) } })).status).toBe(200);
    expect((await fetch(`${base(http)}/view/x.html`, { headers: { Origin: 'http://evil.example' } })).status).toBe(200);
  });

  test('header parsing', () => {
    expect(hostOfHeader('LocalHost:8025')).toBe('localhost');
    expect(hostOfHeader('[::1]:8025')).toBe('::1');
    expect(hostOfHeader('a b')).toBeNull();
    expect(isLoopbackName('127.0.0.1')).toBe(true);
    expect(isLoopbackName('localhost.evil.example')).toBe(false);
    expect(isLoopbackName('x.localhost')).toBe(true);
    const req = (origin: string | null, host: string) => new Request('http://x/', { headers: { ...(origin === null ? {} : { Origin: origin }), Host: host } });
    expect(originAllowed(req(null, 'a:1'))).toBe(true);
    expect(originAllowed(req('http://a:1', 'a:1'))).toBe(true);
    expect(originAllowed(req('null', 'a:1'))).toBe(false);
    expect(originAllowed(req('http://a:2', 'a:1'))).toBe(false);
    expect(originAllowed(req('http://a', 'a:80'))).toBe(true);
  });
});

describe('HTTP Basic against the users file', () => {
  test('verified credentials are cached (one argon2 check for many requests); a bad password is 401', async () => {
    const hash = await Bun.password.hash('s3cret');
    let verifications = 0;
    const authenticator = new Authenticator({
      users: () => new Map([['alice', { hash, addresses: [] }]]),
      throttle: new AuthThrottle(),
      now: Date.now,
      verify: (password, h) => {
        verifications++;
        return Bun.password.verify(password, h);
      },
    });
    const log: Logged[] = [];
    const auth = new BasicAuth(authenticator, Date.now, recordingLog(log));
    const http = start({ auth, needsAuth: true, log });
    const good = { Authorization: `Basic ${btoa('alice:s3cret')}` };
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${base(http)}/api/v1/thing/x`, { headers: good });
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ id: 'x', user: 'alice' });
    }
    expect(verifications).toBe(1);
    const bad = await fetch(`${base(http)}/api/v1/thing/x`, { headers: { Authorization: `Basic ${btoa('alice:wrong')}` } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toBe('Basic realm="mailbox"');
    expect((await fetch(`${base(http)}/api/v1/thing/x`)).status).toBe(401);
    expect(log.some((l) => l.event === 'http-auth-failed' && l.fields.user === 'alice')).toBe(true);
    auth.forget();
    expect(auth.cached).toBe(0);
  }, 30_000);

  test('parseBasic (RFC 7617 §2)', () => {
    expect(parseBasic(`Basic ${btoa('a:b:c')}`)).toEqual({ user: 'a', password: 'b:c' });
    expect(parseBasic(`basic ${btoa('a:')}`)).toEqual({ user: 'a', password: '' });
    expect(parseBasic(`Basic ${btoa(':x')}`)).toBeNull();
    expect(parseBasic('Bearer x')).toBeNull();
    expect(parseBasic(null)).toBeNull();
  });
});

/** A GET with headers fetch() will not let us set (Host), over a plain socket. */
async function rawGet(port: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  let text = '';
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port: Number(port),
    socket: {
      data: (_s, chunk) => {
        text += chunk.toString();
      },
      close: () => resolve(text),
      error: (_s, e) => reject(e),
    },
  });
  socket.write(`GET ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`);
  const response = await promise;
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
  return { status, body: response.slice(response.indexOf('\r\n\r\n') + 4) };
}
