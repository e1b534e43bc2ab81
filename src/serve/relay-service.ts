/**
 * @module The relay as a service of `mailbox serve`: the delivery Workers (delivery/worker-pool.ts)
 * and the main-thread scheduler (delivery/relay.ts) over the spool's DeliveryQueue.
 * Rule: SIGHUP gives it the config file's relay settings again (routes, --relay, --tls-policy,
 *       timeouts, retry schedule, concurrency, cool-off, delay warning); --workers, --relay-domain,
 *       --relay-recipients and --max-hops need a restart.
 */
import { normalizeDomain, type Mailbox } from '../core/address.ts';
import type { ServeConfig } from '../config.ts';
import { Relay } from '../delivery/relay.ts';
import type { WorkerSettings } from '../delivery/relay-protocol.ts';
import type { RelaySettings } from '../delivery/relay-settings.ts';
import { WorkerPool } from '../delivery/worker-pool.ts';
import { createIdGenerator } from '../ids.ts';
import type { Logger } from '../log.ts';
import type { Spool } from '../spool/spool.ts';
import type { Service } from './server.ts';

export interface RelayService extends Service {
  /** New mail was committed: it may be due now. */
  kick(): void;
  knownNullMx(domain: string): boolean;
  reload(config: ServeConfig): void;
}

/** Port 25: where mail hosts listen (RFC 5321 §4.5.4.2). */
const MX_PORT = 25;

function workerSettings(config: ServeConfig, relay: RelaySettings): WorkerSettings {
  const selfNames = [config.hostname, ...config.listen.map((l) => l.host), ...config.listenTls.map((l) => l.host)].filter((h) => h !== '0.0.0.0' && h !== '::');
  return {
    ehloName: config.hostname,
    selfNames,
    dns: relay.dns,
    ca: relay.ca,
    concurrency: relay.concurrency,
    timeoutMs: relay.timeoutMs,
    mxPort: MX_PORT,
  };
}

export function startRelay(config: ServeConfig, spool: Spool, log: Logger, now: () => number): RelayService {
  const settings = config.relay;
  const pool = new WorkerPool(settings.workers, workerSettings(config, settings), (error) => log.error('relay-worker-crashed', { error }));
  const local = new Set(config.domains ?? []);
  const relay = new Relay(settings, {
    queue: spool.deliveryQueue,
    transfers: pool,
    log,
    now,
    hostname: config.hostname,
    newId: createIdGenerator(now),
    isLocal: (mailbox: Mailbox) => local.has(normalizeDomain(mailbox.domain)),
    returnLimitBytes: config.bounceSizeLimitBytes,
    collect: () => Bun.gc(true),
  });
  const route = settings.route === null ? 'mx (relay domains only)' : settings.route.kind === 'mx' ? 'mx' : settings.route.hosts.map((h) => h.label).join(' then ');
  log.info('relay', { route, routes: settings.routes.size || undefined, workers: settings.workers, concurrency: settings.concurrency, relay_domains: settings.relayDomains.length > 0 ? settings.relayDomains : undefined });
  relay.kick();
  spool.deliveryQueue.onWake(() => relay.retryNow());
  return {
    kick: () => relay.kick(),
    knownNullMx: (domain) => relay.knownNullMx(domain),
    reload(next) {
      pool.update(workerSettings(config, next.relay));
      relay.reload(next.relay);
      log.info('relay-reloaded', { workers_unchanged: next.relay.workers !== settings.workers ? 'restart to change --workers' : undefined });
    },
    drain: () => relay.drain(),
    close: () => relay.close(),
  };
}
