/**
 * @module The HTTP service of `mailbox serve` (--http): the listeners with serve's policy, and the
 * routes every mailbox serves (the probes, the Mailpit API, our API). The web UI and /metrics add
 * theirs to the same server (Server.http.addRoutes).
 * Rule 1: on loopback, clear HTTP and no credentials (a catcher for development); off loopback,
 *         HTTPS with serve's certificate and HTTP Basic against --users, clear HTTP only with
 *         --http-insecure. Without a users file a non-loopback --http does not start (exit 78).
 * Rule 2: a bind failure is one line naming --http, exit 71, as for the other listeners.
 */
import { statSync } from 'node:fs';
import packageJson from '../../package.json' with { type: 'json' };
import { isLoopbackHost } from '../auth/networks.ts';
import type { ServeConfig } from '../config.ts';
import { parseReceived, type ReceivedTrace } from '../core/envelope.ts';
import { mailboxKey } from '../core/address.ts';
import { EXIT, SetupError } from '../exit-status.ts';
import type { BasicAuth } from '../http/basic-auth.ts';
import { HttpServer, type HttpContext, type HttpRoute } from '../http/http-server.ts';
import { installMailApi, type MailApi } from '../http/mail-api.ts';
import type { DeliveryRecord, SessionRecord } from '../http/mailbox-api.ts';
import { MAX_JSON_BODY_BYTES } from '../http/mailpit-api.ts';
import { createIdGenerator } from '../ids.ts';
import type { Logger } from '../log.ts';
import { queueEntry } from '../queue/queue-admin.ts';
import { createLayout } from '../spool/layout.ts';
import { MessageNotFoundError, type Spool } from '../spool/spool.ts';
import type { MailIndex } from '../store/mail-index.ts';
import type { TlsMaterial } from '../tls/certificates.ts';
import { BindError } from '../transport/tcp-server.ts';
import type { FaultRules } from './fault-rules.ts';
import { localSubmitter } from './local-submission.ts';
import type { RelayService } from './relay-service.ts';

export interface HttpHostDeps {
  readonly log: Logger;
  readonly now: () => number;
  readonly certificate: { current(): TlsMaterial } | null;
  readonly auth: BasicAuth | null;
  /** Whether a client address is on a trusted network (may relay without credentials). */
  readonly trusted: (address: string) => boolean;
  readonly spool: Spool;
  /** The index the mail APIs read; null leaves them out (a benchmark of the accept path). */
  readonly mailIndex: MailIndex | null;
  readonly faults: FaultRules;
  /** The relay; null when serve relays nothing (then send is local only and release refused). */
  readonly relay: RelayService | null;
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
  if (deps.mailIndex !== null) {
    const api = mailApi(http, deps.mailIndex, config, deps);
    // Waits end, streams and websockets close and the index subscription goes when serve stops.
    http.atStop(() => api.close());
  }
  return http;
}

/** Mailpit's API and ours over the mail index, with serve's policy for sending and sessions. */
function mailApi(http: HttpServer, index: MailIndex, config: ServeConfig, deps: HttpHostDeps): MailApi {
  const { spool, log, now } = deps;
  const startedMs = now();
  let deleted = 0;
  index.subscribe((change) => {
    if (change.kind === 'deleted') deleted += change.ids.length;
  });
  const relayRoutes = deps.relay !== null && (config.relay.route !== null || config.relay.routes.size > 0);
  const dest = { hostname: config.hostname, domains: config.domains, relays: relayRoutes, maxMessageBytes: config.limits.maxMessageBytes };
  const submit = localSubmitter({ dest, spool, log, now, newId: createIdGenerator(now), relay: relayRoutes ? deps.relay : null });
  const indexPath = createLayout(config.dataDir).indexPath;
  return installMailApi(http, index, {
    version: packageJson.version,
    now,
    hostname: config.hostname,
    databasePath: indexPath,
    databaseBytes: () => fileBytes(indexPath) + fileBytes(`${indexPath}-wal`),
    runtime: () => {
      const stats = spool.stats();
      return { startedMs, smtpAccepted: stats.commits, smtpAcceptedBytes: 0, smtpRejected: 0, deleted };
    },
    // The same rule as SMTP: trusted networks relay, and so do authenticated users.
    mayRelay: (context: HttpContext) => context.user !== null || deps.trusted(context.client),
    submit: (s) => submit({ sender: s.from, recipients: s.recipients, bytes: s.bytes, origin: { kind: 'client', client: s.client, protocol: 'HTTP', user: s.user } }),
    relay: relayRoutes
      ? {
          describe: config.relay.route === null ? 'routes' : config.relay.route.kind === 'mx' ? 'MX' : config.relay.route.hosts.map((h) => h.label).join(', '),
          // Queued for the relay as a new message to `to`; its delivery state is the queue's.
          release: async (id, to, context) => {
            const bytes = await index.readMessage(id);
            const m = index.db.get(id);
            if (bytes === undefined || m === null) throw new Error(`no message ${id}`);
            await submit({ sender: m.mailFrom, recipients: to, bytes, origin: { kind: 'client', client: context.client, protocol: 'HTTP', user: context.user }, relayAll: true });
          },
        }
      : null,
    session: (id) => sessionOf(spool, id),
    deliveries: deps.relay === null ? null : (id) => relayedCopies(spool, id),
    faults: deps.faults,
  });
}

/** The relay queue's view of a message's recipients that are not local; undefined when the spool has no such message. */
function relayedCopies(spool: Spool, id: string): DeliveryRecord[] | undefined {
  const info = spool.get(id);
  if (info === undefined) return undefined;
  return queueEntry(info).recipients.filter((r) => r.state !== 'local');
}

/**
 * The SMTP session that carried a message, from its spool record (Spool.session()): client
 * address, HELO name and TLS version from the record's NOOP fields, the AUTH user from its
 * envelope, and the record as a replayable segment. A record written before those fields has
 * none; for it, what our Received header (the message's first field) says stands in.
 */
export async function sessionOf(spool: Spool, id: string): Promise<SessionRecord | null> {
  const stored = await spool.session(id);
  if (stored === undefined) return null;
  let { clientAddress, heloName, tls } = stored;
  if (clientAddress === null && heloName === null) {
    const trace = await receivedTrace(spool, id);
    // The header names the cipher suite after the version ("TLSv1.3 TLS_AES_256_GCM_SHA384").
    if (trace !== null) ({ clientAddress, heloName, tls } = { ...trace, tls: trace.tls?.split(' ')[0] ?? null });
  }
  const envelope = stored.envelope;
  return {
    id,
    receivedMs: stored.timeMs,
    clientAddress,
    helo: heloName,
    tls,
    authUser: envelope.authUser,
    mailFrom: envelope.sender === null ? '' : mailboxKey(envelope.sender),
    recipients: envelope.recipients.map((r) => mailboxKey(r.mailbox)),
    size: stored.size,
    replayable: stored.replayable,
  };
}

/** Our Received header at the top of a stored message, read back; null when there is none (or the message went). */
async function receivedTrace(spool: Spool, id: string): Promise<ReceivedTrace | null> {
  let stuffed: Uint8Array;
  try {
    stuffed = await spool.readRaw(id);
  } catch (error) {
    if (error instanceof MessageNotFoundError) return null;
    throw error;
  }
  const head = new TextDecoder().decode(stuffed.subarray(0, Math.min(stuffed.length, 2048)));
  return parseReceived(head.slice(0, head.search(/\r\n(?![ \t])/) + 2 || head.length));
}

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Mailpit's probes; pytest-mailpit reads the server's time from the Date header of /livez. */
function probeRoutes(): HttpRoute[] {
  const ok = () => new Response(null, { status: 200 });
  return [
    { method: 'GET', path: '/livez', handler: ok },
    { method: 'GET', path: '/readyz', handler: ok },
  ];
}
