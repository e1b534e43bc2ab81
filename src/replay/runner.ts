/**
 * @module Replay's flow control: transactions from the sources go out over up to N connections
 * (--concurrency), at most R per second (--rate), many per connection, two queued on each so that
 * the next one's MAIL, RCPT and DATA travel with the end of the one before (RFC 2920 §3.1).
 * Rule 1: every transaction pulled from the source gets exactly one result, sent or not.
 * Rule 2: the first connection is opened before anything is pulled: a server that cannot be
 *         reached fails the run at once. Later, a lost connection is reopened for the next
 *         transaction; after MAX_CONNECT_FAILURES failed opens in a row the rest are failed unsent.
 * Rule 3: time and sleeping come from ReplayClock; the sockets from transport/tcp-client.ts.
 */
import type { AnyTransaction, ClientAuth } from '../core/client-session.ts';
import type { Recipient } from '../core/envelope.ts';
import { recordedDsn, recordedRecipient } from '../core/outgoing.ts';
import { ClientFailure } from '../core/errors.ts';
import type { Mailbox } from '../core/address.ts';
import type { TranscriptEntry } from '../core/transcript.ts';
import { openSmtpClient, type ServerAddress, type SmtpClient, type TlsSettings } from '../transport/tcp-client.ts';
import { decide, type EnvelopeRules } from './envelope-rules.ts';
import { resultOf, unsentResult, type ExpectedCode, type ReplayResult } from './outcome.ts';
import type { ReplayItem, ReplayProblem, SourceEvent } from './sources.ts';

/** Transactions queued per connection: one on the wire, the next ready to go with its ".". */
const PER_CONNECTION = 3;
const MAX_CONNECT_FAILURES = 3;
const TIMER_TICK_MS = 1;

export interface ReplayPlan {
  readonly server: ServerAddress;
  readonly ehloName: string;
  readonly timeoutMs: number;
  /** As given to every connection (the --server hints are the command's, applied before). */
  readonly tlsSettings: TlsSettings;
  readonly auth?: ClientAuth;
  /** BDAT when the server offers CHUNKING. */
  readonly chunking: boolean;
  readonly concurrency: number;
  /** Transactions per second over all connections; null: as fast as the server takes them. */
  readonly ratePerSecond: number | null;
  readonly expect: ExpectedCode | null;
  readonly rules: EnvelopeRules;
}

export interface ReplayHooks {
  readonly onResult: (result: ReplayResult) => void;
  readonly onProblem: (problem: ReplayProblem) => void;
  /** An item --filter left out. */
  readonly onFiltered: (item: ReplayItem) => void;
  /** A connection (1-based) is being opened. */
  readonly onConnect?: (connection: number) => void;
  readonly onTranscript?: (connection: number, entry: TranscriptEntry) => void;
}

export interface ReplayClock {
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

interface Job {
  readonly item: ReplayItem;
  readonly sender: Mailbox | null;
  readonly recipients: readonly Recipient[];
}

/** Pulls the next transaction to send; problems and filtered items go to the hooks on the way. */
class Feeder {
  readonly #source: Iterator<SourceEvent>;
  readonly #rules: EnvelopeRules;
  readonly #hooks: ReplayHooks;
  #done = false;

  constructor(source: Iterator<SourceEvent>, rules: EnvelopeRules, hooks: ReplayHooks) {
    this.#source = source;
    this.#rules = rules;
    this.#hooks = hooks;
  }

  next(): Job | null {
    while (!this.#done) {
      const step = this.#source.next();
      if (step.done) {
        this.#done = true;
        break;
      }
      const event = step.value;
      if (event.kind === 'problem') {
        this.#hooks.onProblem(event.problem);
        continue;
      }
      const { item } = event;
      const decision = decide(item, this.#rules);
      if (decision.kind === 'send') return { item, sender: decision.sender, recipients: decision.recipients };
      if (decision.kind === 'skip') this.#hooks.onFiltered(item);
      else this.#hooks.onProblem({ file: item.file, offset: item.offset, bytes: item.sourceBytes, reason: decision.reason });
    }
    return null;
  }
}

/**
 * --rate: evenly spaced start times, shared by every connection. A start less than a timer tick
 * (1 ms) early goes at once: the schedule still holds on average, and rates above 1,000/s do not
 * turn into one timer per transaction.
 */
class Pacer {
  readonly #intervalMs: number;
  readonly #clock: ReplayClock;
  #nextMs = -Infinity;

  constructor(ratePerSecond: number, clock: ReplayClock) {
    this.#intervalMs = 1000 / ratePerSecond;
    this.#clock = clock;
  }

  async take(): Promise<void> {
    const now = this.#clock.now();
    const at = Math.max(now, this.#nextMs);
    this.#nextMs = at + this.#intervalMs;
    if (at - now >= TIMER_TICK_MS) await this.#clock.sleep(at - now);
  }
}

/**
 * RFC 3461 §4: DSN parameters go only to a server that offers DSN; one that does not gets the
 * message without them, as a relay would send it (the client strips them: core/outgoing.ts).
 */
function transactionFor(job: Job): AnyTransaction {
  const { item } = job;
  const recipients = job.recipients.map(recordedRecipient);
  const dsn = recordedDsn(item.mailParams);
  // A recorded SMTPUTF8 travels again: its UTF-8 header fields need it (RFC 6532 §3, RFC 6531 §3.2).
  const smtpUtf8 = item.mailParams.some((p) => p.name.toUpperCase() === 'SMTPUTF8');
  return item.body.stuffed !== undefined
    ? { sender: job.sender, recipients, stuffed: item.body.stuffed, dsn, smtpUtf8 }
    : { sender: job.sender, recipients, message: item.body.message, dsn, smtpUtf8 };
}

/** What the connections share: the feeder, the pacer, and the run's failure state. */
interface Shared {
  readonly feeder: Feeder;
  readonly pacer: Pacer | null;
  readonly plan: ReplayPlan;
  readonly hooks: ReplayHooks;
  connectFailures: number;
  /** Set once connections keep failing: the rest of the transactions fail unsent with it. */
  abandoned: ClientFailure | null;
}

/** One connection slot: opens (and reopens) a session and feeds it transactions. */
class Lane {
  readonly #index: number;
  readonly #shared: Shared;
  #client: SmtpClient | null = null;
  #opening: Promise<SmtpClient> | null = null;

  constructor(index: number, shared: Shared, first: SmtpClient | null = null) {
    this.#index = index;
    this.#shared = shared;
    this.#client = first;
  }

  async run(): Promise<void> {
    const workers: Promise<void>[] = [];
    for (let i = 0; i < PER_CONNECTION; i++) workers.push(this.#work());
    await Promise.all(workers);
    if (this.#client !== null && !this.#client.closed) await this.#client.quit();
  }

  async #work(): Promise<void> {
    const { feeder, pacer, plan, hooks } = this.#shared;
    for (;;) {
      if (pacer !== null) await pacer.take();
      const job = feeder.next();
      if (job === null) return;
      const abandoned = this.#shared.abandoned;
      if (abandoned !== null) {
        hooks.onResult(unsentResult(job.item, job.sender, job.recipients, abandoned, plan.expect));
        continue;
      }
      let client: SmtpClient;
      try {
        client = await this.#session();
      } catch (error) {
        if (!(error instanceof ClientFailure)) throw error;
        hooks.onResult(unsentResult(job.item, job.sender, job.recipients, error, plan.expect));
        continue;
      }
      const outcome = await client.send(transactionFor(job));
      hooks.onResult(resultOf(job.item, job.sender, job.recipients, outcome, this.#index, plan.expect));
    }
  }

  /** The open session, or a new one (one open at a time per lane). */
  #session(): Promise<SmtpClient> {
    if (this.#client !== null && !this.#client.closed) return Promise.resolve(this.#client);
    this.#opening ??= openSession(this.#index, this.#shared)
      .then((client) => {
        this.#client = client;
        this.#shared.connectFailures = 0;
        return client;
      })
      .catch((error: unknown) => {
        if (error instanceof ClientFailure && ++this.#shared.connectFailures >= MAX_CONNECT_FAILURES) this.#shared.abandoned = error;
        throw error;
      })
      .finally(() => {
        this.#opening = null;
      });
    return this.#opening;
  }
}

function openSession(index: number, shared: Shared): Promise<SmtpClient> {
  const { plan, hooks } = shared;
  hooks.onConnect?.(index);
  const onTranscript = hooks.onTranscript;
  return openSmtpClient({
    host: plan.server.host,
    port: plan.server.port,
    ehloName: plan.ehloName,
    timeoutMs: plan.timeoutMs,
    tls: plan.server.tls,
    tlsSettings: plan.tlsSettings,
    auth: plan.auth,
    chunking: plan.chunking,
    outgoing: 'strip',
    onTranscript: onTranscript === undefined ? undefined : (entry) => onTranscript(index, entry),
  });
}

/**
 * Replays every transaction of `source`. Throws a ClientFailure when the first connection cannot
 * be opened (nothing has been read then); otherwise every outcome goes to the hooks.
 */
export async function runReplay(source: Iterator<SourceEvent>, plan: ReplayPlan, hooks: ReplayHooks, clock: ReplayClock): Promise<void> {
  const shared: Shared = {
    feeder: new Feeder(source, plan.rules, hooks),
    pacer: plan.ratePerSecond === null ? null : new Pacer(plan.ratePerSecond, clock),
    plan,
    hooks,
    connectFailures: 0,
    abandoned: null,
  };
  const first = await openSession(1, shared);
  const lanes = [new Lane(1, shared, first)];
  for (let i = 2; i <= plan.concurrency; i++) lanes.push(new Lane(i, shared));
  await Promise.all(lanes.map((lane) => lane.run()));
}
