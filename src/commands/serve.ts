/**
 * @module `mailbox serve`: flags → Config → spool, certificate, users, listeners and the session host.
 * Rule 1: no protocol logic here; the core decides replies, the spool decides durability.
 * Rule 2: SIGHUP reopens the log, re-reads the certificate and the users file; a bad new file is
 *         logged and the old one stays in force. Open sessions are never dropped.
 */
import type { CAC } from 'cac';
import { buildServeConfig, type ServeConfig } from '../config.ts';
import { SERVE_SETTINGS, formatFlag } from '../serve/settings.ts';
import { createLogger, type Logger } from '../log.ts';
import { SpoolLockedError } from '../spool/lock.ts';
import { openSpool } from '../spool/spool.ts';
import { createSessionHost } from '../serve/session-host.ts';
import { BindError, listen, removeStaleUnixSocket, type ListenTarget, type Listener } from '../transport/tcp-server.ts';
import { ConnectionLimits } from '../transport/connection-limits.ts';
import { loadTlsMaterial, type CertificateSource, type TlsMaterial } from '../tls/certificates.ts';
import { Authenticator } from '../auth/authenticator.ts';
import { formatCidr } from '../auth/networks.ts';
import { AuthThrottle } from '../auth/throttle.ts';
import { readUsers, type UserTable } from '../auth/users.ts';
import { SetupError, EXIT } from '../cli/exit-codes.ts';

export interface ServeDeps {
  readonly env: Record<string, string | undefined>;
  readonly now: () => number;
  /**
   * `stop` resolves when the process is asked to stop (SIGTERM/SIGINT), `urgent` on a second
   * request (stop waiting for open transactions); `onHangup` gets SIGHUP.
   */
  readonly signals: () => { stop: Promise<string>; urgent: Promise<string>; onHangup(handler: () => void): void };
}

const COMPACT_EVERY_MS = 60_000;

export function register(cli: CAC, deps: ServeDeps): void {
  const command = cli.command('serve', 'Run the SMTP server: accept mail, keep it durably in the spool, deliver it locally');
  for (const setting of SERVE_SETTINGS) command.option(formatFlag(setting), setting.help);
  command
    .example('mailbox serve')
    .example('mailbox serve --listen 127.0.0.1:2525 --data /tmp/spool --domain example.test')
    .example('mailbox serve --listen 0.0.0.0:587 --listen-tls 0.0.0.0:465 --tls-cert cert.pem --tls-key key.pem --users users --require-tls')
    .action(async (options: Record<string, unknown>) => {
      const config = buildServeConfig(options, deps.env);
      await runServe(config, deps);
    });
}

/** Runs the server until a stop signal, then drains and closes. */
export async function runServe(config: ServeConfig, deps: ServeDeps): Promise<void> {
  const log = createLogger({ format: config.log, file: config.logFile ?? undefined, now: deps.now, env: deps.env });
  const signals = deps.signals();
  const certificate = config.listenTls.length > 0 || (config.starttls && config.listen.length > 0) ? new CertificateHolder(config, deps.now) : null;
  let users: UserTable | null = config.usersFile ? readUsers(config.usersFile) : null;
  const listeners: Listener[] = [];
  signals.onHangup(() => {
    log.reopen();
    log.info('log-reopened');
    if (certificate?.reload(log)) for (const l of listeners) l.reloadTls();
    if (config.usersFile) {
      try {
        users = readUsers(config.usersFile);
        log.info('users-reloaded', { file: config.usersFile, users: users.size });
      } catch (error) {
        log.error('users-reload-failed', { file: config.usersFile, error: (error as Error).message, kept: 'the users read before' });
      }
    }
  });
  const spool = await openSpool({
    dir: config.dataDir,
    hostname: config.hostname,
    now: deps.now,
    log: {
      info: (msg, fields) => log.info(msg, fields),
      warn: (msg, fields) => log.warn(msg, fields),
      error: (msg, fields) => log.error(msg, fields),
    },
    maxMessages: config.maxMessages ?? undefined,
    maxAgeMs: config.maxAgeMs ?? undefined,
  }).catch((error: unknown) => {
    // Two servers on one spool would corrupt it; the second one stops here, as with a port in use.
    throw error instanceof SpoolLockedError ? new SetupError(error.message, EXIT.osErr) : error;
  });
  const { records, tornBytes, damaged } = spool.recovery;
  log.info('spool-opened', { dir: config.dataDir, messages: spool.stats().messages, segments: spool.stats().segments, recovered: records, torn_bytes: tornBytes, damaged: damaged.length });

  if (certificate) certificate.announce(log);
  if (config.authAny) log.warn('auth-any', { note: 'any AUTH credentials are accepted (development mode)' });
  else if (users) log.info('users', { file: config.usersFile, users: users.size });
  const authenticator =
    users || config.authAny ? new Authenticator({ users: () => (config.authAny ? null : users), throttle: new AuthThrottle(), now: deps.now }) : null;
  const host = createSessionHost(config, spool, log, deps.now, authenticator);
  const limits = new ConnectionLimits({
    maxConnections: config.maxConnections,
    maxPerAddress: config.maxConnectionsPerIp,
    exempt: host.trusted,
  });
  const options = { now: deps.now, limits, tls: certificate ?? undefined, handshakeTimeoutMs: config.limits.commandTimeoutMs };
  // Each listener with the flag that asked for it, so that a bind failure names what to change.
  const targets: { readonly target: ListenTarget; readonly flag: string }[] = [
    ...config.listen.map((a) => ({ target: { kind: 'tcp' as const, ...a }, flag: '--listen' })),
    ...config.listenTls.map((a) => ({ target: { kind: 'tls' as const, ...a }, flag: '--listen-tls' })),
    ...config.listenUnix.map((path) => ({ target: { kind: 'unix' as const, path }, flag: '--listen' })),
  ];
  for (const { target, flag } of targets) {
    try {
      if (target.kind === 'unix') await removeStaleUnixSocket(target.path);
      listeners.push(listen(target, host, options));
    } catch (error) {
      for (const l of listeners) l.closeAll();
      await spool.close();
      const where = target.kind === 'unix' ? `unix:${target.path}` : `${target.host}:${target.port}`;
      const failure = error instanceof BindError ? error : new BindError(where, (error as { code?: string }).code, { cause: error });
      throw new SetupError(`${failure.message}; change ${flag}`, EXIT.osErr);
    }
  }
  const where = (kind: ListenTarget['kind']) => listeners.filter((l) => l.target.kind === kind).map((l) => l.address);
  log.info('listening', {
    smtp: where('tcp'),
    smtps: where('tls').length > 0 ? where('tls') : undefined,
    unix: where('unix').length > 0 ? where('unix') : undefined,
    data: config.dataDir,
    mode: config.domains ? `domains ${config.domains.join(',')}` : 'catch-all',
    max_size: config.limits.maxMessageBytes,
    starttls: config.starttls && config.listen.length > 0 ? 'offered' : 'off',
    auth: config.authAny ? 'any' : users ? 'users' : 'off',
    trust: config.trust.networks.length > 0 ? config.trust.networks.map(formatCidr) : 'none',
  });

  const compactTimer = setInterval(() => {
    spool.compact().catch((error: unknown) => log.error('compaction-failed', { error: (error as Error).message }));
  }, COMPACT_EVERY_MS);

  const signal = await signals.stop;
  log.info('stopping', { signal, open_sessions: listeners.reduce((n, l) => n + l.connections, 0) });
  clearInterval(compactTimer);
  for (const l of listeners) l.stopAccepting();
  for (const l of listeners) l.shutdown();
  const deadline = deps.now() + config.shutdownTimeoutMs;
  let hurry = false;
  signals.urgent.then((again) => {
    hurry = true;
    log.warn('stopping-now', { signal: again });
  });
  while (listeners.some((l) => l.connections > 0) && deps.now() < deadline && !hurry) {
    await Bun.sleep(20);
  }
  for (const l of listeners) l.closeAll();
  await spool.close();
  log.info('stopped');
  log.close();
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
