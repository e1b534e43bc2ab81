/**
 * @module The HTTP service of `mailbox serve` (--http): the listeners with serve's policy, and the
 * routes every mailbox serves (the probes, the Mailpit API, our API). The web UI and /metrics add
 * theirs to the same server (Server.http.addRoutes).
 * Rule 1: on loopback, clear HTTP and no credentials (a catcher for development); off loopback,
 *         HTTPS with serve's certificate and HTTP Basic against --users, clear HTTP only with
 *         --http-insecure. Without a users file a non-loopback --http does not start (exit 78).
 * Rule 2: a bind failure is one line naming --http, exit 71, as for the other listeners.
 */
import { isLoopbackHost } from '../auth/networks.ts';
import type { ServeConfig } from '../config.ts';
import { EXIT, SetupError } from '../exit-status.ts';
import type { BasicAuth } from '../http/basic-auth.ts';
import { HttpServer, type HttpRoute } from '../http/http-server.ts';
import { MAX_JSON_BODY_BYTES } from '../http/mailpit-api.ts';
import type { Logger } from '../log.ts';
import type { Spool } from '../spool/spool.ts';
import type { TlsMaterial } from '../tls/certificates.ts';
import { BindError } from '../transport/tcp-server.ts';

export interface HttpHostDeps {
  readonly log: Logger;
  readonly now: () => number;
  readonly certificate: { current(): TlsMaterial } | null;
  readonly auth: BasicAuth | null;
  /** Whether a client address is on a trusted network (may relay without credentials). */
  readonly trusted: (address: string) => boolean;
  readonly spool: Spool;
}

/** Whether --http needs the certificate: some address is off loopback and --http-insecure is not set. */
export function httpServesTls(config: ServeConfig): boolean {
  return !config.httpInsecure && config.http.some((a) => !isLoopbackHost(a.host));
}

/** Starts the HTTP listeners of `config.http` with the probes; throws SetupError (one line). */
export function startHttp(config: ServeConfig, deps: HttpHostDeps): HttpServer {
  const offLoopback = config.http.filter((a) => !isLoopbackHost(a.host));
  if (offLoopback.length > 0 && deps.auth === null) {
    throw new SetupError(
      `--http ${offLoopback[0].host}:${offLoopback[0].port} is not on loopback, so it needs credentials: give --users FILE (mailbox users add), or keep --http on 127.0.0.1`,
      EXIT.config,
    );
  }
  const tls = httpServesTls(config) && deps.certificate !== null ? deps.certificate : null;
  let http: HttpServer;
  try {
    http = HttpServer.listen({
      addresses: config.http,
      log: deps.log,
      tls: tls === null ? null : () => ({ key: tls.current().key, cert: tls.current().cert }),
      auth: deps.auth,
      needsAuth: (address) => !isLoopbackHost(address.host),
      // Mailpit's send API takes a message up to the SMTP size limit, base64 inside JSON.
      maxBodyBytes: Math.max(MAX_JSON_BODY_BYTES, Math.ceil(config.limits.maxMessageBytes * 1.4) + 64 * 1024),
    });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const where = config.http.map((a) => `${a.host}:${a.port}`).join(', ');
    const failure = new BindError(where, code ?? (/in use/i.test(String((error as Error).message)) ? 'EADDRINUSE' : undefined), { cause: error });
    throw new SetupError(`${failure.message}; change --http`, EXIT.osErr);
  }
  http.addRoutes(probeRoutes());
  return http;
}

/** Mailpit's probes; pytest-mailpit reads the server's time from the Date header of /livez. */
function probeRoutes(): HttpRoute[] {
  const ok = () => new Response(null, { status: 200 });
  return [
    { method: 'GET', path: '/livez', handler: ok },
    { method: 'GET', path: '/readyz', handler: ok },
  ];
}
