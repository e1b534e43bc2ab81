/**
 * @module The relay's main-thread side: leases due messages from the DeliveryQueue, splits each
 * into one task per destination, hands tasks to the delivery Workers (Transfers), and journals
 * every recipient's outcome (with any report to the sender) before the lease ends.
 * Rule 1: outcomes are written to the journal before they are acted on: the lease ends, and the
 *         recipient is retried or forgotten, only once complete() is durable.
 * Rule 2: per destination at most `concurrency` connections (the Worker's rule) and at most
 *         TRANSACTIONS_PER_SESSION tasks each in flight. A destination that cannot be reached cools
 *         off: its tasks are deferred to the end of the cool-off without a connection.
 * Rule 3: a tick costs what it hands out: the queue's heap says what is due and when next. It
 *         leases at most LEASE_BATCH messages and goes on in the next turn of the event loop, so
 *         a queue falling due at once (`mailbox queue retry --all`) has its first tasks with the
 *         workers at once, and results and new mail are served in between. Kicks in one turn
 *         (new mail, finished jobs) make one tick.
 * Rule 4: one log line per attempt and recipient (delivered, deferred, bounced), like Postfix's
 *         smtp lines: id, to, relay, delay, dsn, reply.
 * Rule 5: a burst of outcomes (a queue due at once for a dead destination: 100,000 deferred in
 *         seconds) leaves garbage faster than the collector, running beside it, frees it; every
 *         COLLECT_EVERY outcomes deps.collect() runs (serve: a full collection), in a turn of its
 *         own, where no stack of this turn's work keeps any of it.
 */
import type { Mailbox } from '../core/address.ts';
import { formatMailbox } from '../core/address.ts';
import { dotUnstuff } from '../core/data.ts';
import { recordedDsn, recordedRecipient } from '../core/outgoing.ts';
import { describeReply, type Reply } from '../core/reply.ts';
import type { CommitRequest } from '../spool/commit.ts';
import type { DeliveryJob, DeliveryQueue, Outcome } from '../spool/delivery-queue.ts';
import type { DeliveryState } from '../spool/delivery-state.ts';
import { buildDeliveryReport, reportCommit, statusOf, wantsReport, type ReportedRecipient } from './bounce.ts';
import type { TransferResult, TransferTask, WorkerSettings } from './relay-protocol.ts';
import { destinationKey, routeFor, type RelayRoute, type RelaySettings } from './relay-settings.ts';
import { readStoredBody, TRANSACTIONS_PER_SESSION } from './relay-transfer.ts';
import { afterAttempt, afterCoolOff } from './retry.ts';

/** The Workers, or a Transferer in this thread (tests): one task in, its result out. */
export interface Transfers {
  run(task: TransferTask): Promise<TransferResult>;
  update(settings: WorkerSettings): void;
  close(): Promise<void>;
}

export interface RelayLog {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export interface RelayDeps {
  readonly queue: DeliveryQueue;
  readonly transfers: Transfers;
  readonly log: RelayLog;
  readonly now: () => number;
  /** The host name: Reporting-MTA of reports. */
  readonly hostname: string;
  readonly newId: () => string;
  /** Whether a report to this sender stays here (a local domain) or is relayed. */
  readonly isLocal: (mailbox: Mailbox) => boolean;
  /** RET=FULL returns the original up to this size (--bounce-size-limit). */
  readonly returnLimitBytes: number;
  /** Frees the garbage of a burst of outcomes (Rule 5); none when absent. */
  readonly collect?: () => void;
}

/** Messages leased at once at most; more wait in the queue, costing nothing. */
const MAX_JOBS = 5_000;
/** Operator wakes closer together than this are one retry (retryNow). */
const WAKE_BURST_MS = 2_000;
/** Messages leased in one turn of the event loop at most (Rule 3). */
const LEASE_BATCH = 250;
/** How long a known null MX makes RCPT refuse without asking DNS. */
const NULL_MX_MEMORY_MS = 3_600_000;
/**
 * Outcomes between two collections (Rule 5). 100,000 deferred at once for a dead destination
 * (bench:relay-scale, runs interleaved): serve's peak RSS 218-242 MB with no collection, 193-201
 * MB with one every 32,768 outcomes, 184-192 MB every 16,384; one takes 25-75 ms.
 */
export const COLLECT_EVERY = 16_384;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Group {
  readonly route: RelayRoute;
  readonly domain: string;
  readonly key: string;
  readonly recipients: DeliveryJob['recipients'][number][];
}

interface Running {
  readonly job: DeliveryJob;
  readonly arrivedMs: number;
  left: number;
  readonly outcomes: Outcome[];
  readonly reported: ReportedRecipient[];
}

interface Destination {
  inFlight: number;
  readonly waiting: { readonly run: Running; readonly group: Group }[];
  coolUntilMs: number;
  /** When the cool-off began. */
  coolSinceMs: number;
  lastReply: Reply | null;
}

export class Relay {
  readonly #deps: RelayDeps;
  #settings: RelaySettings;
  readonly #destinations = new Map<string, Destination>();
  readonly #nullMx = new Map<string, number>();
  #jobs = 0;
  #taskIds = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** A tick is due in the next turn (kick): later kicks in this turn add nothing. */
  #kicked = false;
  /** When the operator's retry now under way began, and its last wake (retryNow). */
  #retrySinceMs = -Infinity;
  #lastWakeMs = -Infinity;
  #closing = false;
  #idle = Promise.withResolvers<void>();
  /** Outcomes recorded since the last collection (Rule 5). */
  #sinceCollect = 0;

  constructor(settings: RelaySettings, deps: RelayDeps) {
    this.#settings = settings;
    this.#deps = deps;
  }

  /** Messages leased and not yet completed. */
  get inFlight(): number {
    return this.#jobs;
  }

  /** New mail, or a retry asked for: look at the queue now. */
  kick(): void {
    if (this.#closing || this.#kicked) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      this.tick();
    });
  }

  /**
   * An operator asked for a retry (`mailbox queue retry`, `release`): destinations cooling off
   * are tried again at once, as Postfix's flush forgets its dead destinations. A large retry
   * wakes the relay once per slice it writes (delivery-queue.ts Rule 5); wakes less than
   * WAKE_BURST_MS apart are one retry, which forgets the cool-offs begun before it, not one found
   * while it is written (a dead destination still costs the cap in connections once).
   */
  retryNow(): void {
    const now = this.#deps.now();
    if (now - this.#lastWakeMs > WAKE_BURST_MS) this.#retrySinceMs = now;
    this.#lastWakeMs = now;
    for (const dest of this.#destinations.values()) if (dest.coolSinceMs <= this.#retrySinceMs) dest.coolUntilMs = 0;
    this.kick();
  }

  /** SIGHUP: new routes, TLS policies and limits for the tasks not yet started. */
  reload(settings: RelaySettings): void {
    this.#settings = settings;
    this.kick();
  }

  /** Whether RCPT may refuse this domain now: DNS said null MX within the last hour (RFC 7505). */
  knownNullMx(domain: string): boolean {
    const until = this.#nullMx.get(domain.toLowerCase());
    return until !== undefined && until > this.#deps.now();
  }

  /** Leases what is due and starts it; then sleeps until the next due time. */
  tick(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#closing || this.#jobs >= MAX_JOBS) return;
    const now = this.#deps.now();
    const max = Math.min(LEASE_BATCH, MAX_JOBS - this.#jobs);
    const jobs = this.#deps.queue.lease(now, max);
    for (const job of jobs) this.#start(job, now);
    // Rule 3: more may be due; the next slice in the next turn.
    if (jobs.length === max) this.kick();
    else this.#sleep(now);
  }

  /** Takes no new work and waits for the jobs under way. */
  async drain(): Promise<void> {
    this.#closing = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#jobs > 0) await this.#idle.promise;
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#deps.transfers.close();
  }

  #sleep(now: number): void {
    if (this.#closing || this.#jobs >= MAX_JOBS) return;
    const due = this.#deps.queue.nextDueMs();
    if (due === null) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.tick(), Math.min(MAX_TIMER_MS, Math.max(0, due - now)));
  }

  #start(job: DeliveryJob, now: number): void {
    this.#jobs++;
    const groups = new Map<string, Group>();
    for (const r of job.recipients) {
      const domain = r.recipient.mailbox.domain.toLowerCase();
      const route = routeFor(this.#settings, domain);
      const key = destinationKey(route, domain);
      const group = groups.get(key) ?? { route, domain, key, recipients: [] };
      group.recipients.push(r);
      groups.set(key, group);
    }
    const run: Running = { job, arrivedMs: this.#arrivedMs(job, now), left: groups.size, outcomes: [], reported: [] };
    for (const group of groups.values()) {
      const dest = this.#destination(group.key);
      if (dest.coolUntilMs > now && dest.lastReply !== null) this.#coolOff(run, group, dest, now);
      else {
        dest.waiting.push({ run, group });
        this.#pump(group.key, dest);
      }
    }
    if (groups.size === 0) this.#finish(run);
  }

  /** The message's arrival: the id's time is when it was committed (ids.ts). */
  #arrivedMs(job: DeliveryJob, now: number): number {
    const ms = parseInt(job.id.slice(0, 9), 36);
    return Number.isFinite(ms) && ms > 0 && ms <= now ? ms : now;
  }

  #destination(key: string): Destination {
    let dest = this.#destinations.get(key);
    if (dest === undefined) {
      dest = { inFlight: 0, waiting: [], coolUntilMs: 0, coolSinceMs: 0, lastReply: null };
      this.#destinations.set(key, dest);
    }
    return dest;
  }

  #pump(key: string, dest: Destination): void {
    const cap = this.#settings.concurrency * TRANSACTIONS_PER_SESSION;
    while (dest.inFlight < cap && dest.waiting.length > 0) {
      const { run, group } = dest.waiting.shift()!;
      dest.inFlight++;
      const task = this.#task(run.job, group);
      this.#deps.transfers.run(task).then(
        (result) => this.#onResult(key, dest, run, group, result),
        (error: unknown) => {
          this.#deps.log.error('relay-worker-failed', { id: run.job.id, error: error instanceof Error ? error.message : String(error) });
          dest.inFlight--;
          this.#fail(run);
        },
      );
    }
    if (dest.inFlight === 0 && dest.waiting.length === 0 && dest.coolUntilMs <= this.#deps.now()) this.#destinations.delete(key);
  }

  #task(job: DeliveryJob, group: Group): TransferTask {
    const envelope = job.envelope;
    return {
      taskId: ++this.#taskIds,
      messageId: job.id,
      segmentPath: job.segmentPath,
      bodyOffset: job.bodyOffset,
      bodyLength: job.bodyLength,
      sender: envelope.sender,
      recipients: group.recipients.map((r) => ({ rcptIndex: r.rcptIndex, recipient: recordedRecipient(r.recipient) })),
      dsn: recordedDsn(envelope.mailParams),
      smtpUtf8: envelope.utf8,
      destination: group.key,
      domain: group.domain,
      route: group.route,
      tlsPolicy: group.route.kind === 'mx' ? (this.#settings.tlsPolicy.get(group.domain) ?? null) : null,
    };
  }

  #onResult(key: string, dest: Destination, run: Running, group: Group, result: TransferResult): void {
    dest.inFlight--;
    const now = this.#deps.now();
    if (result.nullMx) this.#nullMx.set(group.domain, now + NULL_MX_MEMORY_MS);
    if (result.unreachable) {
      dest.coolUntilMs = now + this.#settings.coolOffMs;
      dest.coolSinceMs = now;
      dest.lastReply = result.recipients[0]?.reply ?? null;
      this.#deps.log.warn('relay-cool-off', { destination: key, until: new Date(dest.coolUntilMs).toISOString(), waiting: dest.waiting.length, reply: dest.lastReply ? describeReply(dest.lastReply) : undefined });
      // Rule 2: what waits for it is deferred now, without a connection.
      for (const w of dest.waiting.splice(0)) this.#coolOff(w.run, w.group, dest, now);
    } else if (result.failure === null || result.recipients.some((r) => r.accepted)) {
      dest.coolUntilMs = 0;
    }
    const byIndex = new Map(group.recipients.map((r) => [r.rcptIndex, r]));
    for (const r of result.recipients) {
      const jr = byIndex.get(r.rcptIndex);
      if (jr === undefined) continue;
      const state = afterAttempt(jr.state, r, run.arrivedMs, now, this.#settings);
      this.#record(run, jr.rcptIndex, state, now, { relay: result.relay, tls: result.tls ?? undefined, reply: state.kind === 'bounced' ? state.reply : r.reply, remote: r.fromServer && result.relay !== group.domain });
    }
    for (const index of result.relayedWithoutDsn) {
      const jr = byIndex.get(index);
      // RFC 3464 §2.3.3: the next hop takes no DSN, so "relayed" is as far as this relay can say.
      if (jr) run.reported.push({ rcptIndex: index, action: 'relayed', reply: result.recipients.find((r) => r.rcptIndex === index)!.reply, remoteMta: result.relay, lastAttemptMs: now });
    }
    this.#settled(run);
    this.#pump(key, dest);
  }

  #coolOff(run: Running, group: Group, dest: Destination, now: number): void {
    for (const jr of group.recipients) {
      const state = afterCoolOff(jr.state, dest.lastReply!, dest.coolUntilMs, run.arrivedMs, now, this.#settings);
      this.#record(run, jr.rcptIndex, state, now, { relay: 'none', note: 'destination cooling off', reply: state.kind === 'bounced' ? state.reply : dest.lastReply!, remote: false });
    }
    this.#settled(run);
  }

  #record(run: Running, rcptIndex: number, outcome: DeliveryState, now: number, how: { relay: string; tls?: string; note?: string; reply: Reply; remote: boolean }): void {
    const recipient = run.job.envelope.recipients[rcptIndex];
    const state = this.#delayWarning(run, rcptIndex, outcome, now, how);
    run.outcomes.push({ rcptIndex, state });
    const event = state.kind === 'delivered' ? 'delivered' : state.kind === 'bounced' ? 'bounced' : 'deferred';
    const fields = {
      id: run.job.id,
      to: formatMailbox(recipient.mailbox),
      relay: how.relay,
      delay: Math.round((now - run.arrivedMs) / 100) / 10,
      dsn: statusOf(how.reply),
      reply: describeReply(how.reply),
      tls: how.tls,
      next: state.kind === 'deferred' ? new Date(state.nextAttemptMs).toISOString() : undefined,
      note: how.note,
    };
    if (event === 'delivered') this.#deps.log.info(event, fields);
    else this.#deps.log.warn(event, fields);
    const collect = this.#deps.collect;
    if (collect !== undefined && ++this.#sinceCollect === COLLECT_EVERY) {
      this.#sinceCollect = 0;
      setImmediate(collect);
    }
    if (state.kind === 'bounced') {
      run.reported.push({ rcptIndex, action: 'failed', reply: how.reply, remoteMta: how.remote ? how.relay : undefined, lastAttemptMs: now });
    }
  }

  /**
   * --delay-warning: a recipient still deferred that long after arrival is reported "delayed" to
   * the sender once (RFC 3464 §2.3.3), in the same commit as the deferral that marks it warned.
   * As Postfix does, no NOTIFY counts as one that allows DELAY (RFC 3461 §4.1 leaves it to the
   * MTA); NOTIFY=NEVER, a NOTIFY without DELAY and the null sender get none (wantsReport).
   */
  #delayWarning(run: Running, rcptIndex: number, state: DeliveryState, now: number, how: { relay: string; reply: Reply; remote: boolean }): DeliveryState {
    const after = this.#settings.delayWarningMs;
    if (after === null || state.kind !== 'deferred' || state.warned || now - run.arrivedMs < after) return state;
    const { envelope } = run.job;
    if (!wantsReport(envelope, envelope.recipients[rcptIndex], 'delayed')) return state;
    run.reported.push({
      rcptIndex,
      action: 'delayed',
      reply: how.reply,
      remoteMta: how.remote ? how.relay : undefined,
      // A destination cooling off was not tried this time.
      lastAttemptMs: how.relay === 'none' ? undefined : now,
      willRetryUntilMs: run.arrivedMs + this.#settings.lifetimeMs,
    });
    return { ...state, warned: true };
  }

  #settled(run: Running): void {
    run.left--;
    if (run.left === 0) this.#finish(run);
  }

  #finish(run: Running): void {
    const bounces = this.#reports(run);
    this.#deps.queue.complete(run.job, run.outcomes, bounces).then(
      () => this.#done(),
      (error: unknown) => {
        this.#deps.log.error('relay-journal-failed', { id: run.job.id, error: error instanceof Error ? error.message : String(error), note: 'the recipients stay due and are tried again' });
        this.#done();
      },
    );
  }

  /** A worker that failed: the lease goes back untouched, due again. */
  #fail(run: Running): void {
    run.left = -1;
    this.#deps.queue.release(run.job);
    this.#done();
  }

  #done(): void {
    this.#jobs--;
    if (this.#jobs === 0 && this.#closing) this.#idle.resolve();
    if (!this.#closing) this.kick();
  }

  /** The report to the sender for failed (and relayed) recipients, as NOTIFY asks (delivery/bounce.ts). */
  #reports(run: Running): CommitRequest[] {
    const { job } = run;
    if (run.reported.length === 0) return [];
    const envelope = job.envelope;
    const now = this.#deps.now();
    if (envelope.sender === null) {
      // A report is never reported on (RFC 3461 §6.1): one that cannot be delivered stays here.
      for (const r of run.reported) if (r.action === 'failed') this.#deps.log.warn('report-undeliverable', { id: job.id, to: formatMailbox(envelope.recipients[r.rcptIndex].mailbox), note: 'kept in the spool for the postmaster' });
      return [];
    }
    let message: Uint8Array;
    try {
      message = dotUnstuff(readStoredBody(job.segmentPath, job.bodyOffset, job.bodyLength));
    } catch (error) {
      this.#deps.log.error('report-failed', { id: job.id, error: (error as Error).message });
      return [];
    }
    const report = buildDeliveryReport({
      id: job.id,
      envelope,
      arrivalMs: run.arrivedMs,
      nowMs: now,
      reportingMta: this.#deps.hostname,
      recipients: run.reported,
      message,
      returnLimitBytes: this.#deps.returnLimitBytes,
    });
    if (report === null) return [];
    const id = this.#deps.newId();
    this.#deps.log.info('report', { id, original: job.id, to: formatMailbox(report.to), recipients: report.reported.length, action: [...new Set(run.reported.filter((r) => report.reported.includes(r.rcptIndex)).map((r) => r.action))].join(',') });
    return [reportCommit(report, { id, timeMs: now, local: this.#deps.isLocal(report.to) })];
  }
}
