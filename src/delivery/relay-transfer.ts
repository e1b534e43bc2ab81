/**
 * @module The delivery Worker's engine: one TransferTask (a message's recipients that share a
 * destination) handed to the destination's servers, over sessions kept open per destination.
 * Rule 1: at most `concurrency` connections per destination, counting those being opened. When
 *         opening one fails, every task waiting for that destination fails with the same failure:
 *         a dead destination costs the cap in connections, never one per message.
 * Rule 2: a session carries one transaction at a time and is kept for the next (a new MAIL after
 *         the end of data, RSET after a failed one: the client core's rule); idle ones are closed
 *         with QUIT after IDLE_MS. A kept session that turns out dead before any reply is
 *         replaced once by a new connection, so a stale session never defers a message.
 * Rule 3: MX hosts at this host's own preference or worse are skipped (RFC 5321 §5.1).
 * Rule 4: a segment file read for one task stays open for the next (SegmentReader): a busy
 *         destination costs a read per message, not an open, a read and a close. The spool never
 *         writes a segment's bytes anew under its name (compaction copies into a new one), so an
 *         open file always holds what a task names; one unused for SEGMENT_IDLE_MS is closed.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { ClientFailure, type ClientStage } from '../core/errors.ts';
import { clientReplies } from '../core/client-replies.ts';
import type { Reply } from '../core/reply.ts';
import { parseResolvConf, FALLBACK_SERVER } from '../dns/resolv-conf.ts';
import { DnsResolver } from '../dns/resolver.ts';
import type { MailHost } from '../dns/mail-route.ts';
import { openSmtpClient, type SmtpClient, type TlsMode } from '../transport/tcp-client.ts';
import { walkMx, type MxConnectOptions } from './mx-client.ts';
import { OPPORTUNISTIC, type MxPolicy } from './mx-policy.ts';
import type { TransferRecipient, TransferResult, TransferTask, WorkerSettings } from './relay-protocol.ts';
import type { Smarthost } from './relay-settings.ts';
import { routeDomain, targetsOf } from './route.ts';

/**
 * Transactions queued on one session at most: the client core sends the next one's MAIL, RCPT
 * and DATA with the end of the message before it (RFC 2920 §3.1), so a busy destination costs a
 * round trip per message, not three, and the journal gets its outcomes in larger batches.
 */
export const TRANSACTIONS_PER_SESSION = 8;
/** How long a session with nothing to carry stays open (Postfix's connection cache keeps 2 s). */
const IDLE_MS = 5_000;
/** A segment file unused this long is closed (Rule 4); at most MAX_OPEN_SEGMENTS stay open. */
const SEGMENT_IDLE_MS = 2_000;
const MAX_OPEN_SEGMENTS = 16;
/** A DNS answer is reused this long; then a fresh resolver asks again. */
const DNS_REUSE_MS = 60_000;
/** RFC 5321 §4.5.3.2, and a connect timeout. */
const RFC_TIMEOUTS_MS: Partial<Record<ClientStage, number>> = {
  connect: 30_000,
  greeting: 300_000,
  ehlo: 300_000,
  starttls: 300_000,
  auth: 300_000,
  mail: 300_000,
  rcpt: 300_000,
  data: 120_000,
  message: 600_000,
  quit: 60_000,
};

interface Slot {
  readonly client: SmtpClient;
  /** "host[address]:port". */
  readonly relay: string;
  /** Transactions given to it and not finished (queued ones are pipelined, RFC 2920). */
  inUse: number;
  /** The settings it was opened under (update() counts them): older ones take no new task. */
  readonly generation: number;
}

/** A task's hold on a session; `fresh` when it was opened for the task (its failure is no stale session's). */
interface Use {
  readonly slot: Slot;
  readonly fresh: boolean;
}

interface Destination {
  readonly slots: Slot[];
  opening: number;
  readonly waiters: { resolve: () => void; reject: (failure: ClientFailure) => void }[];
  idleTimer: ReturnType<typeof setTimeout> | null;
}

type Opened = { readonly client: SmtpClient; readonly relay: string };

/** A route that leads nowhere (DNS) or back here: the status, and whether it was a null MX. */
class NoRoute extends Error {
  constructor(readonly status: Reply, readonly nullMx: boolean) {
    super(status.lines.join(' '));
  }
}

export class Transferer {
  #settings: WorkerSettings;
  readonly #destinations = new Map<string, Destination>();
  #resolver: DnsResolver | null = null;
  #resolverMadeMs = 0;
  #generation = 0;
  readonly #segments = new SegmentReader();

  constructor(settings: WorkerSettings) {
    this.#settings = settings;
  }

  /**
   * New settings (SIGHUP): sessions opened before finish what they carry and take nothing new (a
   * kept session may break the new TLS policy or route); idle ones are closed now.
   */
  update(settings: WorkerSettings): void {
    this.#settings = settings;
    this.#resolver = null;
    this.#generation++;
    for (const dest of this.#destinations.values()) {
      const idle = dest.slots.filter((s) => s.inUse === 0);
      for (const s of idle) dest.slots.splice(dest.slots.indexOf(s), 1);
      for (const s of idle) void s.client.quit();
    }
  }

  async run(task: TransferTask): Promise<TransferResult> {
    const base = { taskId: task.taskId, nullMx: false, relayedWithoutDsn: [] as number[], tls: null };
    const failAll = (relay: string, status: Reply, failure: ClientFailure | null, unreachable: boolean, nullMx = false): TransferResult => ({
      ...base,
      nullMx,
      relay,
      recipients: task.recipients.map((r) => ({ rcptIndex: r.rcptIndex, reply: status, accepted: false, fromServer: failure?.reply !== undefined })),
      failure: failure === null ? { kind: status.code >= 500 ? 'rejected' : 'connect', stage: 'connect', message: status.lines.join(' ') } : { kind: failure.kind, stage: failure.stage, message: failure.message },
      unreachable,
    });
    let use: Use;
    try {
      use = await this.#acquire(task);
    } catch (error) {
      if (error instanceof NoRoute) return failAll(task.domain, error.status, null, false, error.nullMx);
      if (!(error instanceof ClientFailure)) throw error;
      const status = this.#statusFor(task, error);
      return failAll(task.domain, status, error, !error.permanent);
    }
    let stuffed: Uint8Array;
    try {
      stuffed = this.#segments.read(task.segmentPath, task.bodyOffset, task.bodyLength);
    } catch (error) {
      this.#release(task.destination, use.slot);
      const status = clientReplies.spoolUnreadable((error as Error).message);
      return failAll(use.slot.relay, status, null, false);
    }
    for (let attempt = 0; ; attempt++) {
      const { slot, fresh } = use;
      const outcome = await slot.client.send({ sender: task.sender, recipients: task.recipients.map((r) => r.recipient), stuffed, dsn: task.dsn, smtpUtf8: task.smtpUtf8 });
      const stale = !outcome.ok && !fresh && attempt === 0 && outcome.failure.kind === 'connect' && outcome.recipients.length === 0;
      if (stale) {
        // A kept session the server had closed meanwhile: one new connection, then the verdict.
        this.#release(task.destination, slot);
        try {
          use = await this.#acquire(task);
        } catch (error) {
          if (!(error instanceof ClientFailure)) throw error;
          return failAll(task.domain, this.#statusFor(task, error), error, !error.permanent);
        }
        continue;
      }
      const tlsInfo = slot.client.tlsInfo;
      const dsnOffered = slot.client.extensions.has('DSN');
      this.#release(task.destination, slot);
      const recipients: TransferRecipient[] = task.recipients.map((r, i) => {
        const rcpt = outcome.recipients[i];
        if (rcpt !== undefined && !rcpt.accepted) return { rcptIndex: r.rcptIndex, reply: rcpt.reply, accepted: false, fromServer: true };
        if (outcome.ok) return { rcptIndex: r.rcptIndex, reply: outcome.reply, accepted: true, fromServer: true };
        return { rcptIndex: r.rcptIndex, reply: outcome.failure.status, accepted: false, fromServer: outcome.failure.reply !== undefined };
      });
      const relayedWithoutDsn = outcome.ok && !dsnOffered
        ? task.recipients.filter((r, i) => recipients[i].accepted && (r.recipient.params?.notify ?? task.dsn?.notify ?? []).includes('SUCCESS')).map((r) => r.rcptIndex)
        : [];
      return {
        ...base,
        relay: slot.relay,
        recipients,
        failure: outcome.ok ? null : { kind: outcome.failure.kind, stage: outcome.failure.stage, message: outcome.failure.message },
        unreachable: false,
        relayedWithoutDsn,
        tls: tlsInfo ? `${tlsInfo.version} ${tlsInfo.cipher}` : null,
      };
    }
  }

  /** QUIT on every open session. */
  async close(): Promise<void> {
    this.#segments.close();
    const all: SmtpClient[] = [];
    for (const d of this.#destinations.values()) {
      if (d.idleTimer) clearTimeout(d.idleTimer);
      for (const s of d.slots) all.push(s.client);
      d.slots.length = 0;
    }
    await Promise.all(all.map((c) => c.quit()));
  }

  /** Credentials are never sent in clear: a smarthost with a user and no TLS defers with 4.7.0. */
  #statusFor(task: TransferTask, failure: ClientFailure): Reply {
    if (task.route.kind === 'smarthost' && failure.kind === 'tls' && task.route.hosts.some((h) => h.user !== null)) {
      return clientReplies.credentialsInClear(failure.message);
    }
    return failure.status;
  }

  /** A session for the task: an idle one, else a new one under the cap, else the least busy one. */
  async #acquire(task: TransferTask): Promise<Use> {
    let dest = this.#destinations.get(task.destination);
    if (dest === undefined) {
      dest = { slots: [], opening: 0, waiters: [], idleTimer: null };
      this.#destinations.set(task.destination, dest);
    }
    for (;;) {
      for (let i = dest.slots.length - 1; i >= 0; i--) if (dest.slots[i].client.closed && dest.slots[i].inUse === 0) dest.slots.splice(i, 1);
      const open = dest.slots.filter((s) => !s.client.closed && s.generation === this.#generation);
      const idle = open.find((s) => s.inUse === 0);
      if (idle !== undefined) return this.#use(idle, false);
      if (dest.slots.length + dest.opening < this.#settings.concurrency) {
        dest.opening++;
        try {
          const opened = await this.#open(task);
          const slot: Slot = { ...opened, inUse: 0, generation: this.#generation };
          dest.slots.push(slot);
          // Those waiting may queue on it now.
          for (const w of dest.waiters.splice(0)) w.resolve();
          return this.#use(slot, true);
        } catch (error) {
          // Rule 1: those waiting for this destination get the same answer, without a connection.
          if (error instanceof ClientFailure || error instanceof NoRoute) for (const w of dest.waiters.splice(0)) w.reject(error as ClientFailure);
          throw error;
        } finally {
          dest.opening--;
        }
      }
      const least = open.reduce<Slot | null>((best, s) => (s.inUse < TRANSACTIONS_PER_SESSION && (best === null || s.inUse < best.inUse) ? s : best), null);
      if (least !== null) return this.#use(least, false);
      await new Promise<void>((resolve, reject) => dest.waiters.push({ resolve, reject }));
    }
  }

  #use(slot: Slot, fresh: boolean): Use {
    slot.inUse++;
    return { slot, fresh };
  }

  #release(key: string, slot: Slot): void {
    slot.inUse--;
    const dest = this.#destinations.get(key);
    if (dest === undefined) return;
    if ((slot.client.closed || slot.generation !== this.#generation) && slot.inUse === 0) {
      const at = dest.slots.indexOf(slot);
      if (at >= 0) dest.slots.splice(at, 1);
      if (!slot.client.closed) void slot.client.quit();
    }
    // A waiter looks again: a place on a session, or room for a new one, is free now.
    const waiter = dest.waiters.shift();
    if (waiter !== undefined) return waiter.resolve();
    if (slot.inUse === 0 && dest.idleTimer === null) {
      dest.idleTimer = setTimeout(() => {
        dest.idleTimer = null;
        const idle = dest.slots.filter((s) => s.inUse === 0);
        for (const s of idle) dest.slots.splice(dest.slots.indexOf(s), 1);
        for (const s of idle) void s.client.quit();
        if (dest.slots.length === 0 && dest.waiters.length === 0 && dest.opening === 0) this.#destinations.delete(key);
      }, IDLE_MS);
    }
  }

  #connectOptions(): MxConnectOptions {
    const cap = this.#settings.timeoutMs;
    const stageTimeoutsMs = Object.fromEntries(Object.entries(RFC_TIMEOUTS_MS).map(([k, v]) => [k, cap === null ? v : Math.min(v, cap)]));
    return {
      port: this.#settings.mxPort,
      ehloName: this.#settings.ehloName,
      timeoutMs: stageTimeoutsMs.connect,
      stageTimeoutsMs,
      chunking: false,
      outgoing: 'relay',
    };
  }

  async #open(task: TransferTask): Promise<Opened> {
    const route = task.route;
    if (route.kind === 'smarthost') return this.#openSmarthost(route.hosts);
    const resolved = await routeDomain(task.domain, this.#dns());
    if (resolved.kind === 'refused') throw new NoRoute(resolved.status, resolved.route?.kind === 'null-mx');
    const hosts = withoutSelf(resolved.hosts, this.#settings.selfNames);
    // RFC 5321 §5.1: this host is the best MX left, so there is nowhere to send it: a loop.
    if (hosts.length === 0) throw new NoRoute(clientReplies.mxLoop(task.domain), false);
    const policy = mxPolicy(task.tlsPolicy, this.#settings.ca);
    const connect = this.#connectOptions();
    const walk = await walkMx(targetsOf(hosts), connect, policy);
    if (!walk.ok) throw walk.failure;
    return { client: walk.client, relay: `${walk.target.host.replace(/\.$/, '')}[${walk.target.address}]:${connect.port}` };
  }

  async #openSmarthost(hosts: readonly Smarthost[]): Promise<Opened> {
    let last: ClientFailure | null = null;
    for (const host of hosts) {
      const mode: TlsMode = host.tls === 'opportunistic' && host.user !== null ? 'starttls' : host.tls;
      try {
        const client = await openSmtpClient({
          ...this.#connectOptions(),
          host: host.host,
          port: host.port,
          tls: mode,
          tlsSettings: { rejectUnauthorized: host.verify, ca: this.#settings.ca ?? undefined, servername: /^[\d.]+$|:/.test(host.host) ? undefined : host.host },
          auth: host.user !== null && host.password !== null ? { username: host.user, secret: host.password, secretKind: 'password' } : undefined,
        });
        return { client, relay: `${host.host}[${host.host}]:${host.port}` };
      } catch (error) {
        if (!(error instanceof ClientFailure)) throw error;
        last = error;
      }
    }
    throw last ?? new ClientFailure('connect', 'connect', 'no smarthost');
  }

  #dns(): DnsResolver {
    const now = Date.now();
    if (this.#resolver === null || now - this.#resolverMadeMs > DNS_REUSE_MS) {
      this.#resolver = new DnsResolver({ server: this.#settings.dns ?? systemDns(), timeoutMs: 5000, attempts: 2 });
      this.#resolverMadeMs = now;
    }
    return this.#resolver;
  }
}

function systemDns() {
  try {
    return parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8')) ?? FALLBACK_SERVER;
  } catch {
    return FALLBACK_SERVER;
  }
}

/** A message as the spool stores it (dot-stuffed), read from its segment. */
export function readStoredBody(segmentPath: string, offset: number, length: number): Uint8Array {
  const fd = openSync(segmentPath, 'r');
  try {
    return readAt(fd, segmentPath, offset, length);
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, segmentPath: string, offset: number, length: number): Uint8Array {
  const bytes = Buffer.allocUnsafe(length);
  let at = 0;
  while (at < bytes.length) {
    const n = readSync(fd, bytes, at, bytes.length - at, offset + at);
    if (n === 0) throw new Error(`${segmentPath} ends before the message does`);
    at += n;
  }
  return bytes;
}

/** Rule 4: segment files kept open between tasks, closed when unused for SEGMENT_IDLE_MS. */
class SegmentReader {
  readonly #open = new Map<string, { readonly fd: number; usedMs: number }>();
  #sweep: ReturnType<typeof setInterval> | null = null;

  read(segmentPath: string, offset: number, length: number): Uint8Array {
    let file = this.#open.get(segmentPath);
    if (file === undefined) {
      if (this.#open.size >= MAX_OPEN_SEGMENTS) this.#closeOne(this.#open.keys().next().value!);
      file = { fd: openSync(segmentPath, 'r'), usedMs: 0 };
      this.#open.set(segmentPath, file);
      this.#sweep ??= setInterval(() => this.#closeIdle(), SEGMENT_IDLE_MS).unref();
    }
    file.usedMs = performance.now();
    try {
      return readAt(file.fd, segmentPath, offset, length);
    } catch (error) {
      this.#closeOne(segmentPath);
      throw error;
    }
  }

  close(): void {
    for (const path of [...this.#open.keys()]) this.#closeOne(path);
  }

  #closeIdle(): void {
    const before = performance.now() - SEGMENT_IDLE_MS;
    for (const [path, file] of [...this.#open]) if (file.usedMs < before) this.#closeOne(path);
  }

  #closeOne(path: string): void {
    const file = this.#open.get(path);
    if (file === undefined) return;
    this.#open.delete(path);
    closeSync(file.fd);
    if (this.#open.size === 0 && this.#sweep !== null) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }
}

/** --tls-policy: require STARTTLS, or also a certificate valid for the MX name. */
function mxPolicy(requirement: TransferTask['tlsPolicy'], ca: string | null): MxPolicy {
  if (requirement === 'require') return { tls: 'starttls', verify: null };
  if (requirement === 'verify') return { tls: 'starttls', verify: { ca: ca ?? undefined } };
  return OPPORTUNISTIC;
}

/**
 * RFC 5321 §5.1: when an MX names this host (by name or address), it and every MX at that
 * preference or higher-numbered are dropped.
 */
export function withoutSelf(hosts: readonly MailHost[], selfNames: readonly string[]): MailHost[] {
  const self = new Set(selfNames.map((n) => n.toLowerCase().replace(/\.$/, '')));
  const mine = hosts.filter((h) => self.has(h.name.toLowerCase().replace(/\.$/, '')) || h.addresses.some((a) => self.has(a)));
  if (mine.length === 0) return [...hosts];
  const cut = Math.min(...mine.map((h) => h.preference ?? 0));
  return hosts.filter((h) => (h.preference ?? 0) < cut);
}
