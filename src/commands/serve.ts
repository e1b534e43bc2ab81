/**
 * @module `mailbox serve`: flags (the table in serve/settings.ts) → Config → the server's services
 * (serve/server.ts), run until SIGTERM or SIGINT; then they drain, at most --shutdown-timeout.
 * Rule 1: no protocol logic here; the core decides replies, the spool decides durability.
 * Rule 2: SIGHUP reopens the log, then the server re-reads the certificate, the users file, the
 *         faults file and the config file's relay settings.
 */
import type { CAC } from 'cac';
import { buildServeConfig, type ServeConfig } from '../config.ts';
import { logLineStyle } from '../cli/render.ts';
import { createLogger } from '../log.ts';
import { ServeMetrics } from '../serve/metrics.ts';
import { startServer, type Server } from '../serve/server.ts';
import { SERVE_SETTINGS, formatFlag } from '../serve/settings.ts';

export interface ServeDeps {
  readonly env: Record<string, string | undefined>;
  readonly now: () => number;
  /**
   * `stop` resolves when the process is asked to stop (SIGTERM/SIGINT), `urgent` on a second
   * request (stop waiting for open transactions); `onHangup` gets SIGHUP.
   */
  readonly signals: () => { stop: Promise<string>; urgent: Promise<string>; onHangup(handler: () => void): void };
}

export function register(cli: CAC, deps: ServeDeps): void {
  const command = cli.command('serve', 'Run the SMTP server: accept mail, keep it durably in the spool, deliver it locally');
  for (const setting of SERVE_SETTINGS) command.option(formatFlag(setting), setting.help);
  command
    .example('mailbox serve')
    .example('mailbox serve --listen 127.0.0.1:2525 --data /tmp/spool --domain example.test')
    .example(`mailbox serve --faults faults.json   # faults.json: {"rules": [{"stage": "rcpt", "address": "@example.org", "reply": "450 4.2.0 Try later", "times": 2}]}`)
    .example('mailbox serve --listen 0.0.0.0:587 --listen-tls 0.0.0.0:465 --tls-cert cert.pem --tls-key key.pem --users users --require-tls')
    .action(async (options: Record<string, unknown>) => {
      const config = buildServeConfig(options, deps.env);
      await runServe(config, deps, () => buildServeConfig(options, deps.env));
    });
}

/** Runs the server until a stop signal, then drains its services and closes them. */
export async function runServe(config: ServeConfig, deps: ServeDeps, reread?: () => ServeConfig): Promise<void> {
  // The /metrics counters count what the log says: they are fed the logger's own events.
  const metrics = new ServeMetrics();
  const style = logLineStyle(config.logFile ? { isTTY: false } : process.stderr, deps.env);
  const log = createLogger({ format: config.log, file: config.logFile ?? undefined, now: deps.now, style, sink: metrics.sink });
  const signals = deps.signals();
  let server: Server | null = null;
  signals.onHangup(() => {
    log.reopen();
    log.info('log-reopened');
    let next: ServeConfig | undefined;
    try {
      next = reread?.();
    } catch (error) {
      // A broken config file keeps the settings in force, as a broken certificate does.
      log.error('config-reload-failed', { error: (error as Error).message, kept: 'the settings read before' });
    }
    server?.reload(next);
  });
  server = await startServer(config, { now: deps.now, env: deps.env, log, metrics, index: deps.env.MAILBOX_BENCH_INDEX !== 'off' });

  const signal = await signals.stop;
  log.info('stopping', { signal, open_sessions: server.connections });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, config.shutdownTimeoutMs)));
  const urgent = signals.urgent.then((again) => log.warn('stopping-now', { signal: again }));
  await Promise.race([Promise.all(server.services.map((s) => s.drain())), timedOut, urgent]);
  clearTimeout(timer);
  await server.close();
  log.info('stopped');
  log.close();
}
