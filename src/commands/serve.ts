/**
 * @module `mailbox serve`: flags → Config → spool, listeners and the session host.
 * Rule: no protocol logic here; the core decides replies, the spool decides durability.
 */
import type { CAC } from 'cac';
import { ServerSession, mailboxKey, type SessionEvent } from '../core/server-session.ts';
import { SmtpError } from '../core/errors.ts';
import { replies } from '../core/replies.ts';
import { describeReply } from '../core/reply.ts';
import { buildServeConfig, type ServeConfig } from '../config.ts';
import { createIdGenerator } from '../ids.ts';
import { createLogger, type Logger } from '../log.ts';
import { openSpool, type Spool } from '../spool/spool.ts';
import { listenSmtp, type Connection, type Listener, type SessionHost } from '../transport/tcp-server.ts';
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
  cli
    .command('serve', 'Run the SMTP server: accept mail, keep it durably in the spool, deliver it locally')
    .option('--listen <host:port>', 'SMTP listener address; repeat for several (default 127.0.0.1:1025)')
    .option('--data <dir>', 'Spool directory (default $XDG_DATA_HOME/mailbox or ~/.local/share/mailbox)')
    .option('--hostname <name>', 'Name used in the greeting and Received headers (default: the host name)')
    .option('--domain <domain>', 'Accept mail only for this domain; repeat or comma-separate (default: every domain)')
    .option('--max-size <size>', 'Largest message accepted, advertised in SIZE (default 50M)')
    .option('--max-recipients <n>', 'Recipients per message, at least 100 (default 1000)')
    .option('--max-errors <n>', 'Failed commands per session before it is closed (default 20)')
    .option('--command-timeout <duration>', 'Idle time allowed between commands (default 5m)')
    .option('--data-timeout <duration>', 'Idle time allowed inside DATA (default 5m)')
    .option('--max-messages <n>', 'Keep at most this many messages; the oldest are deleted (catch-all mode)')
    .option('--max-age <duration>', 'Delete messages older than this, e.g. 7d (catch-all mode)')
    .option('--log <format>', 'Log format: text (one readable line per event) or json (default text)')
    .option('--log-file <file>', 'Append the log to this file instead of standard error; reopened on SIGHUP')
    .option('--shutdown-timeout <duration>', 'How long SIGTERM waits for open transactions (default 30s)')
    .option('--config <file>', 'Read settings from a file: one "name value" per line, names as the flags')
    .example('mailbox serve')
    .example('mailbox serve --listen 127.0.0.1:2525 --data /tmp/spool --domain example.test')
    .action(async (options: Record<string, unknown>) => {
      const config = buildServeConfig(options, deps.env);
      await runServe(config, deps);
    });
}

/** Runs the server until a stop signal, then drains and closes. */
export async function runServe(config: ServeConfig, deps: ServeDeps): Promise<void> {
  const log = createLogger({ format: config.log, file: config.logFile ?? undefined, now: deps.now, env: deps.env });
  const signals = deps.signals();
  signals.onHangup(() => {
    log.reopen();
    log.info('log-reopened');
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
  });
  const { records, tornBytes, damaged } = spool.recovery;
  log.info('spool-opened', { dir: config.dataDir, messages: spool.stats().messages, recovered: records, torn_bytes: tornBytes, damaged: damaged.length });

  const host = createSessionHost(config, spool, log, deps.now);
  const listeners: Listener[] = [];
  try {
    for (const address of config.listen) {
      listeners.push(listenSmtp(address.host, address.port, host, { now: deps.now }));
    }
  } catch (error) {
    for (const l of listeners) l.closeAll();
    await spool.close();
    const where = config.listen.map((a) => `${a.host}:${a.port}`).join(', ');
    throw new SetupError(`cannot listen on ${where}: ${(error as Error).message}`, EXIT.osErr);
  }
  log.info('listening', {
    smtp: listeners.map((l) => `${l.host}:${l.port}`),
    data: config.dataDir,
    mode: config.domains ? `domains ${config.domains.join(',')}` : 'catch-all',
    max_size: config.limits.maxMessageBytes,
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

function createSessionHost(config: ServeConfig, spool: Spool, log: Logger, now: () => number): SessionHost {
  const newId = createIdGenerator(now);
  const localDomains = config.domains ? new Set(config.domains) : null;
  return {
    openSession(client, at) {
      return new ServerSession(
        {
          hostname: config.hostname,
          limits: config.limits,
          localDomains,
          relay: false,
          trusted: false,
          clientAddress: client.address,
          tls: 'none',
          requireTls: false,
          auth: null,
          newId,
        },
        at,
      );
    },
    handleEvents(conn, events) {
      for (const event of events) handleEvent(conn, event);
    },
    internalError(conn, error) {
      log.error('internal-error', { client: conn.client.address, error: error instanceof Error ? error.stack ?? error.message : String(error) });
    },
  };

  function handleEvent(conn: Connection, event: SessionEvent): void {
    switch (event.kind) {
      case 'message': {
        const { envelope } = event;
        spool
          .commit({
            id: event.id,
            timeMs: now(),
            envelope,
            stuffed: event.stuffed,
            localRecipients: envelope.recipients.map((r) => r.local),
          })
          .then(
            () => {
              log.info('accepted', {
                id: event.id,
                from: mailboxKey(envelope.sender),
                to: envelope.recipients.map((r) => mailboxKey(r.mailbox)),
                size: event.size,
                client: conn.client.address,
              });
              conn.resolve(event.requestId, { ok: true });
            },
            (error: unknown) => {
              const reply = error instanceof SmtpError ? error.reply : replies.spoolUnavailable('the spool could not store it');
              log.error('not-stored', {
                id: event.id,
                from: mailboxKey(envelope.sender),
                client: conn.client.address,
                reply: describeReply(reply),
                error: error instanceof Error ? error.message : String(error),
              });
              conn.resolve(event.requestId, { ok: false, reply });
            },
          );
        return;
      }
      case 'rejected':
        log.warn('rejected', { client: conn.client.address, command: event.command, reply: describeReply(event.reply) });
        return;
      case 'auth':
      case 'authenticated':
      case 'transition':
        return;
      default: {
        const never: never = event;
        return never;
      }
    }
  }
}
