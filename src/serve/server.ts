/**
 * @module The server `mailbox serve` runs, as services: the spool (and the relay), the listeners
 * (SMTP, POP3, IMAP), the mail index, then HTTP. startServer() starts them in order and hands them back.
 * Rule 1: a service finishes its work in drain() and lets go of everything in close(). Stopping
 *         drains every service at once, then closes them in the reverse order of their start,
 *         so the spool, started first, is closed last, after the last session that could commit.
 * Rule 2: a start that fails closes what had started, and says in one line what to change.
 * Rule 3: reload() (SIGHUP) re-reads the certificate, the users file and the faults file; a bad
 *         new file is logged and the old one stays in force. Open sessions are never dropped.
 */
import { Authenticator } from '../auth/authenticator.ts';
import { formatCidr } from '../auth/networks.ts';
import { AuthThrottle } from '../auth/throttle.ts';
import { LoginDirectory, readUsers, type UserTable } from '../auth/users.ts';
import type { ServeConfig } from '../config.ts';
import { EXIT, SetupError } from '../exit-status.ts';
import type { Logger } from '../log.ts';
import { addressKey } from '../spool/index.ts';
import { SpoolLockedError, waitForBriefHolder } from '../spool/lock.ts';
import { createLayout } from '../spool/layout.ts';
import { openSpool, type Spool } from '../spool/spool.ts';
import { MailIndex } from '../store/mail-index.ts';
import { loadTlsMaterial, type CertificateSource, type TlsMaterial } from '../tls/certificates.ts';
import { ConnectionLimits } from '../transport/connection-limits.ts';
import { BindError, listen, removeStaleUnixSocket, type Listener, type ListenTarget } from '../transport/tcp-server.ts';
import { Collector } from './collector.ts';
import { FaultRules } from './fault-rules.ts';
import { startRelay, type RelayService } from './relay-service.ts';
import { relayEnabled } from '../delivery/relay-settings.ts';
import { BasicAuth } from '../http/basic-auth.ts';
import type { HttpServer } from '../http/http-server.ts';
import { httpServesTls, startHttp } from './http-host.ts';
import { uiBundleLoader } from '../ui/assets.ts';
import { uiRoutes } from '../ui/routes.ts';
import { metricsRoute, sessionsByProtocol, type ServeMetrics } from './metrics.ts';
import { createImapHost } from './imap-host.ts';
import { LoginMailboxes } from './login-mailboxes.ts';
import { createPop3Host } from './pop3-host.ts';
import { StoreMaildrops } from './pop3-maildrops.ts';
import { createSessionHost } from './session-host.ts';
import { controlSocketPath, listenControlSocket, type ControlSocket } from '../queue/control-socket.ts';
import { handleQueueRequest, queueAdminContext } from '../queue/queue-admin.ts';

/** One part of the running server. */
export interface Service {
  /** Takes no new work and finishes what is under way; resolves when nothing is left. */
  drain(): Promise<void>;
  /** Ends whatever is left now and lets go of its resources. */
  close(): Promise<void>;
}

export interface Server {
  /** In the order they started. */
  readonly services: readonly Service[];
  readonly listeners: readonly Listener[];
  /** The HTTP listeners (null with --http off): the web UI and /metrics add their routes here. */
  readonly http: HttpServer | null;
  /** The index of local mail the HTTP API reads; null when indexing is switched off. */
  readonly mailIndex: MailIndex | null;
  /** Connections open on every listener. */
  readonly connections: number;
  /** SIGHUP: re-reads the certificate, the users file and the faults file; `next` is the config file read again (relay settings). */
  reload(next?: ServeConfig): void;
  /** Closes every service, in the reverse order of their start. */
  close(): Promise<void>;
}

export interface ServerDeps {
  readonly now: () => number;
  /** Where the control socket goes when the data directory's path is too long ($XDG_RUNTIME_DIR). */
  readonly env?: Record<string, string | undefined>;
  readonly log: Logger;
  /** False leaves out the mail index (MAILBOX_BENCH_INDEX=off: benchmarks of the accept path only). */
  readonly index?: boolean;
  /** The counters `log` feeds (its sink); with --http they are served at /metrics. */
  readonly metrics?: ServeMetrics;
  /** How long start-up waits for a command holding the spool's lock; default LOCK_WAIT_MS. */
  readonly lockWaitMs?: number;
}

const COMPACT_EVERY_MS = 60_000;
/** A command (`mailbox queue`, the sendmail link's drop) holds the spool's lock for well under this. */
export const LOCK_WAIT_MS = 5_000;
const LOCK_RETRY_MS = 100;
/** Committed messages between two full collections, and the quiet time after mail before one more (collector.ts). */
const COLLECT_EVERY_COMMITS = 1024;
const COLLECT_WHEN_QUIET_MS = 1000;

type Protocol = 'smtp' | 'pop3' | 'imap';

/** Starts the spool and the listeners of `config`; throws SetupError (one line) when one cannot start. */
export async function startServer(config: ServeConfig, deps: ServerDeps): Promise<Server> {
  const { log, now } = deps;
  const needsCertificate =
    config.listenTls.length > 0 ||
    config.pop3Tls.length > 0 ||
    config.imapTls.length > 0 ||
    (config.starttls && (config.listen.length > 0 || config.pop3.length > 0 || config.imap.length > 0)) ||
    httpServesTls(config);
  const certificate = needsCertificate ? new CertificateHolder(config, now) : null;
  let users: UserTable | null = config.usersFile ? readUsers(config.usersFile) : null;
  // Catch-all mode: every address may log in as itself (reader-login.ts), so it reads its own mail.
  const directoryOf = (table: UserTable | null) => new LoginDirectory(table, config.domains, config.domains === null);
  let directory = directoryOf(users);
  // Checked before anything starts: a bad faults file is one line and exit 78.
  // Always present: the HTTP API may set rules (PUT /api/mailbox/v1/faults) without a file.
  const faults = new FaultRules(config.faultsFile, log, now);
  const services: Service[] = [];
  const listeners: Listener[] = [];
  const closeAll = async () => {
    for (const service of services.splice(0).reverse()) await service.close();
  };

  let mailIndex: MailIndex | null = null;
  const collector = new Collector({
    every: COLLECT_EVERY_COMMITS,
    quietMs: COLLECT_WHEN_QUIET_MS,
    collect: () => Bun.gc(false),
    // Mail has stopped (so the spool is open): what the burst left goes, the ids its checkpoint
    // would have held until the next chunk too.
    collectWhenQuiet: () => {
      spool.checkpointPending();
      Bun.gc(true);
    },
  });
  // Told of every commit, so that sessions idling on an INBOX hear of new mail.
  const mailboxes = new LoginMailboxes({ store: () => spool.mailStore, states: () => spool.loginStates, directory: () => directory, now });
  const layout = createLayout(config.dataDir);
  const openServeSpool = () =>
    openSpool({
      dir: config.dataDir,
      hostname: config.hostname,
      now,
      log: {
        info: (msg, fields) => log.info(msg, fields),
        warn: (msg, fields) => log.warn(msg, fields),
        error: (msg, fields) => log.error(msg, fields),
      },
      // With the mail index, retention runs there (local mail only, through the journal).
      maxMessages: deps.index === false ? (config.maxMessages ?? undefined) : undefined,
      maxAgeMs: deps.index === false ? (config.maxAgeMs ?? undefined) : undefined,
      onCommit: (message) => {
        collector.worked();
        mailboxes.committed(message.id, message.envelope.recipients.map((r) => addressKey(r.mailbox)));
        mailIndex?.committed(message);
        if (!message.envelope.recipients.every((r) => r.local)) relay?.kick();
      },
    });
  // `mailbox queue` or the sendmail link may hold the spool for a moment: serve waits for it.
  // Two servers on one spool would corrupt it; the second one stops here, as with a port in use.
  const spool = await waitForBriefHolder(config.dataDir, layout.lockPath, openServeSpool, {
    waitMs: deps.lockWaitMs ?? LOCK_WAIT_MS,
    retryMs: LOCK_RETRY_MS,
    now,
    sleep: (ms) => Bun.sleep(ms),
    onWait: (error) => log.warn('spool-busy', { holder: error.holder ?? undefined, pid: error.pid, waitMs: deps.lockWaitMs ?? LOCK_WAIT_MS }),
  }).catch((error: unknown) => {
    throw error instanceof SpoolLockedError ? new SetupError(error.message, EXIT.osErr) : error;
  });
  services.push(spoolService(spool, log, collector));
  // Deletions by the API and retention reach the IMAP sessions (RFC 3501 §7.4.1).
  spool.mailStore.onRemoved((removals) => mailboxes.removed(removals));
  // Started after the spool and closed before it: its outcomes go to the journal.
  const relay: RelayService | null = relayEnabled(config.relay) ? startRelay(config, spool, log, now) : null;
  if (relay) services.push(relay);
  // `mailbox queue` and the sendmail link reach this serve here (src/queue/control-socket.ts).
  const queueContext = queueAdminContext(config, spool, now);
  let control: ControlSocket;
  try {
    control = await listenControlSocket(controlSocketPath(config.dataDir, deps.env ?? {}), config.dataDir, (request) => handleQueueRequest(queueContext, request), log);
  } catch (error) {
    await closeAll();
    throw error instanceof SetupError ? error : new SetupError(`cannot open the control socket: ${(error as Error).message}`, EXIT.osErr);
  }
  services.push(control);
  const { records, tornBytes, damaged } = spool.recovery;
  log.info('spool-opened', { dir: config.dataDir, messages: spool.stats().messages, segments: spool.stats().segments, recovered: records, torn_bytes: tornBytes, damaged: damaged.length });

  if (certificate) certificate.announce(log);
  if (config.authAny) log.warn('auth-any', { note: 'any AUTH credentials are accepted (development mode)' });
  else if (users) log.info('users', { file: config.usersFile, users: users.size });
  const authenticator =
    users || config.authAny ? new Authenticator({ users: () => (config.authAny ? null : users), throttle: new AuthThrottle(), now }) : null;
  if (config.faultsFile) log.warn('faults', { file: config.faultsFile, rules: faults.size, note: 'scripted faults are in force (testing only)' });
  const host = createSessionHost(config, spool, log, now, authenticator, faults, relay);
  // One set of caps for every listener, whatever protocol it speaks.
  const limits = new ConnectionLimits({
    maxConnections: config.maxConnections,
    maxPerAddress: config.maxConnectionsPerIp,
    exempt: host.trusted,
  });
  const options = { now, limits, tls: certificate ?? undefined, handshakeTimeoutMs: config.limits.commandTimeoutMs };
  const maildrops = new StoreMaildrops(() => spool.mailStore, mailboxes);
  const pop3Host = (target: ListenTarget) =>
    createPop3Host(target, { config, log, authenticator, maildrops, starttls: config.starttls && certificate !== null });
  const imapHost = (target: ListenTarget) =>
    createImapHost(target, { config, log, authenticator, mailboxes, starttls: config.starttls && certificate !== null });
  // Each listener with the flag that asked for it, so that a bind failure names what to change.
  const targets: { readonly target: ListenTarget; readonly flag: string; readonly protocol: Protocol }[] = [
    ...config.listen.map((a) => ({ target: { kind: 'tcp' as const, ...a }, flag: '--listen', protocol: 'smtp' as const })),
    ...config.listenTls.map((a) => ({ target: { kind: 'tls' as const, ...a }, flag: '--listen-tls', protocol: 'smtp' as const })),
    ...config.listenUnix.map((path) => ({ target: { kind: 'unix' as const, path }, flag: '--listen', protocol: 'smtp' as const })),
    ...config.pop3.map((a) => ({ target: { kind: 'tcp' as const, ...a }, flag: '--pop3', protocol: 'pop3' as const })),
    ...config.pop3Tls.map((a) => ({ target: { kind: 'tls' as const, ...a }, flag: '--pop3-tls', protocol: 'pop3' as const })),
    ...config.imap.map((a) => ({ target: { kind: 'tcp' as const, ...a }, flag: '--imap', protocol: 'imap' as const })),
    ...config.imapTls.map((a) => ({ target: { kind: 'tls' as const, ...a }, flag: '--imap-tls', protocol: 'imap' as const })),
  ];
  const protocolOf = new Map<Listener, Protocol>();
  for (const { target, flag, protocol } of targets) {
    try {
      if (target.kind === 'unix') await removeStaleUnixSocket(target.path);
      const listener =
        protocol === 'pop3' ? listen(target, pop3Host(target), options) : protocol === 'imap' ? listen(target, imapHost(target), options) : listen(target, host, options);
      protocolOf.set(listener, protocol);
      listeners.push(listener);
      services.push(listener);
    } catch (error) {
      await closeAll();
      const where = target.kind === 'unix' ? `unix:${target.path}` : `${target.host}:${target.port}`;
      const failure = error instanceof BindError ? error : new BindError(where, (error as { code?: string }).code, { cause: error });
      throw new SetupError(`${failure.message}; change ${flag}`, EXIT.osErr);
    }
  }
  // Opened once the listeners are bound (a bind failure is then one line, as before it); what is
  // committed before it is live is caught up from the spool.
  if (deps.index !== false) {
    try {
      mailIndex = await MailIndex.open({
        path: layout.indexPath,
        spool,
        log,
        writer: 'worker',
        background: true,
        now,
        retention: { maxMessages: config.maxMessages ?? undefined, maxAgeMs: config.maxAgeMs ?? undefined },
      });
    } catch (error) {
      await closeAll();
      throw new SetupError(`cannot open the mail index: ${(error as Error).message}`, EXIT.osErr);
    }
    services.push(mailIndex);
  }
  let http: HttpServer | null = null;
  const basicAuth = authenticator && !config.authAny ? new BasicAuth(authenticator, now, log) : null;
  if (config.http.length > 0) {
    try {
      http = startHttp(config, { log, now, certificate, auth: basicAuth, trusted: host.trusted, spool, mailIndex, faults, relay });
      services.push(http);
      http.addRoutes(uiRoutes(uiBundleLoader()));
      if (deps.metrics) {
        http.addRoutes([
          metricsRoute(deps.metrics, {
            sessions: () => sessionsByProtocol(listeners.map((l) => ({ protocol: protocolOf.get(l) ?? 'smtp', opened: l.opened, open: l.connections }))),
            spool: () => spool.stats(),
            queue: () => spool.queueCounts(),
            now,
          }),
        ]);
      }
    } catch (error) {
      await closeAll();
      throw error;
    }
  }
  const where = (kind: ListenTarget['kind'], protocol: Protocol = 'smtp') =>
    listeners.filter((l) => l.target.kind === kind && protocolOf.get(l) === protocol).map((l) => l.address);
  const some = (addresses: string[]) => (addresses.length > 0 ? addresses : undefined);
  log.info('listening', {
    smtp: where('tcp'),
    smtps: some(where('tls')),
    unix: some(where('unix')),
    pop3: some(where('tcp', 'pop3')),
    pop3s: some(where('tls', 'pop3')),
    imap: some(where('tcp', 'imap')),
    imaps: some(where('tls', 'imap')),
    http: http && !http.secure ? http.addresses : undefined,
    https: http?.secure ? http.addresses : undefined,
    data: config.dataDir,
    mode: config.domains ? `domains ${config.domains.join(',')}` : 'catch-all',
    max_size: config.limits.maxMessageBytes,
    starttls: config.starttls && config.listen.length > 0 ? 'offered' : 'off',
    auth: config.authAny ? 'any' : users ? 'users' : 'off',
    trust: config.trust.networks.length > 0 ? config.trust.networks.map(formatCidr) : 'none',
    control: control.path,
  });

  return {
    services,
    listeners,
    http,
    mailIndex,
    get connections() {
      return listeners.reduce((n, l) => n + l.connections, 0);
    },
    reload(next) {
      if (next && relay) relay.reload(next);
      if (certificate?.reload(log)) for (const l of listeners) l.reloadTls();
      if (config.usersFile) {
        try {
          users = readUsers(config.usersFile);
          basicAuth?.forget();
          directory = directoryOf(users);
          log.info('users-reloaded', { file: config.usersFile, users: users.size });
        } catch (error) {
          log.error('users-reload-failed', { file: config.usersFile, error: (error as Error).message, kept: 'the users read before' });
        }
      }
      faults.reload(next === undefined ? undefined : next.faultsFile);
    },
    close: closeAll,
  };
}

/** The spool as a service: compaction runs every minute until close, which flushes and unlocks. */
/** The spool, its compaction timer and the collections its commits call for. */
function spoolService(spool: Spool, log: Logger, collector: Collector): Service {
  const compactTimer = setInterval(() => {
    spool.compact().catch((error: unknown) => log.error('compaction-failed', { error: (error as Error).message }));
  }, COMPACT_EVERY_MS);
  return {
    // Its work comes from the sessions: it is done when they are, which the listeners await.
    drain: async () => clearInterval(compactTimer),
    async close() {
      clearInterval(compactTimer);
      collector.close();
      await spool.close();
    },
  };
}

/** The certificate in force for STARTTLS and implicit TLS; replaced on SIGHUP. */
class CertificateHolder {
  readonly #source: CertificateSource;
  readonly #now: () => number;
  #material: TlsMaterial;

  constructor(config: ServeConfig, now: () => number) {
    this.#source = config.tlsFiles
      ? { kind: 'files', certFile: config.tlsFiles.cert, keyFile: config.tlsFiles.key }
      : { kind: 'self-signed', dataDir: config.dataDir, hostname: config.hostname };
    this.#now = now;
    this.#material = loadTlsMaterial(this.#source, now());
  }

  current(): TlsMaterial {
    return this.#material;
  }

  announce(log: Logger, event = 'tls-certificate'): void {
    const m = this.#material;
    log.info(event, {
      source: this.#source.kind,
      file: m.certFile,
      subject: m.subject,
      sha256: m.fingerprint,
      expires: new Date(m.notAfterMs).toISOString(),
      created: m.created ? true : undefined,
    });
  }

  /** Re-reads the certificate; true when a new one is in force. */
  reload(log: Logger): boolean {
    try {
      const next = loadTlsMaterial(this.#source, this.#now());
      if (next.fingerprint === this.#material.fingerprint && next.key === this.#material.key) return false;
      this.#material = next;
      this.announce(log, 'tls-reloaded');
      return true;
    } catch (error) {
      log.error('tls-reload-failed', { error: (error as Error).message, kept: this.#material.fingerprint });
      return false;
    }
  }
}
