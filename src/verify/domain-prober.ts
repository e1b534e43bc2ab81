/**
 * @module Probing every address of one domain: a few reused connections (at most `perDomain`,
 * each taking up to MAX_PROBES_PER_CONNECTION probes with RSET between them), a polite pace,
 * one random address per domain to detect a catch-all, and one retry after a greylisting delay.
 * Rule 1: each address gets exactly one verdict, through finish(), with the evidence behind it.
 * Rule 2: a session that breaks off costs the address in flight one more try on a new
 *         connection, never a verdict it did not earn.
 */
import type { Mailbox } from '../core/address.ts';
import { formatMailbox } from '../core/address.ts';
import { describeReply, isPositive, type Reply } from '../core/reply.ts';
import { openProbeConnection, type Attempt, type ConnectSettings, type ProbeConnection, type Target } from './connection.ts';
import type { Semaphore } from './semaphore.ts';
import { classifyRcpt, judgement, judgeProbe, type Judgement } from './verdict.ts';

export interface ProbeSettings extends ConnectSettings {
  /** MAIL FROM; null is the null sender "<>". */
  readonly sender: Mailbox | null;
  readonly vrfy: boolean;
  /** Simultaneous connections to one domain's mail hosts. */
  readonly perDomain: number;
  /** Probes per second to one domain; 0 for no limit. */
  readonly ratePerSecond: number;
  /** Wait this long and ask once more for greylisted addresses; 0 for no retry. */
  readonly retryGreylistMs: number;
}

export interface ProbeDeps {
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** A fresh random local part for the catch-all test. */
  readonly randomLocalPart: () => string;
}

export interface ProbeStats {
  connections: number;
  probes: number;
  /** Connection attempts made, and how many of them reached a server that answered. */
  attempts: number;
  answered: number;
}

export interface CatchAllEvidence {
  /** The random address asked about. */
  readonly address: string;
  /** True: accepted too; false: refused; null: not known (no answer, or only 4xx). */
  readonly acceptsAll: boolean | null;
  readonly reply: string | null;
}

/** The SMTP evidence for one address. */
export interface SmtpEvidence {
  /** Connection attempts up to the one this address was asked on, in order. */
  readonly attempts: readonly Attempt[];
  readonly server: { readonly host: string; readonly address: string; readonly port: number; readonly tls: boolean } | null;
  /** The connection's greeting and EHLO (STARTTLS) lines. */
  readonly session: readonly string[];
  /** This address's own dialogue: VRFY, MAIL, RCPT, RSET, verbatim; "#" lines are notes. */
  readonly transcript: readonly string[];
  readonly catchAll: CatchAllEvidence | null;
}

export interface ProbeItem {
  readonly index: number;
  readonly mailbox: Mailbox;
  readonly smtpUtf8: boolean;
}

export type ProbeDone = (index: number, judgement: Judgement, evidence: SmtpEvidence) => void;

export interface ProbeShared {
  readonly connections: Semaphore;
  readonly stats: ProbeStats;
}

/** Enough for a batch to reuse connections well, few enough that no server counts it abuse. */
export const MAX_PROBES_PER_CONNECTION = 100;
/** Tries for an address whose session broke off before its RCPT was answered. */
const MAX_TRIES = 2;
/** Transactions that may carry the random address before the catch-all question is given up. */
const MAX_CATCH_ALL_TRIES = 3;

interface Pending {
  readonly item: ProbeItem;
  tries: number;
  retried: boolean;
  transcript: string[];
  mail: Reply | null;
  rcpt: Reply | null;
  vrfy: Reply | null;
  failure: string | null;
  connection: ProbeConnection | null;
  attemptsSeen: number;
}

type CatchAllState =
  | { readonly kind: 'unknown'; readonly tries: number }
  | { readonly kind: 'pending'; readonly tries: number }
  | { readonly kind: 'known'; readonly acceptsAll: boolean; readonly reply: string }
  | { readonly kind: 'inconclusive'; readonly reply: string | null };

export class DomainProber {
  readonly #targets: readonly Target[];
  readonly #settings: ProbeSettings;
  readonly #deps: ProbeDeps;
  readonly #shared: ProbeShared;
  readonly #onDone: ProbeDone;
  readonly #random: Mailbox;
  readonly #attempts: Attempt[] = [];
  readonly #down = new Set<string>();
  readonly #attemptsAtOpen = new Map<ProbeConnection, number>();
  #queue: Pending[];
  #greylisted: Pending[] = [];
  #awaitingCatchAll: Pending[] = [];
  #catchAll: CatchAllState = { kind: 'unknown', tries: 0 };
  #live = 0;
  #nextProbeAt = 0;
  #opening: Promise<void> = Promise.resolve();

  constructor(domain: string, targets: readonly Target[], items: readonly ProbeItem[], settings: ProbeSettings, deps: ProbeDeps, shared: ProbeShared, onDone: ProbeDone) {
    this.#targets = targets;
    this.#settings = settings;
    this.#deps = deps;
    this.#shared = shared;
    this.#onDone = onDone;
    this.#random = { local: deps.randomLocalPart(), domain };
    this.#queue = items.map((item) => ({
      item, tries: 0, retried: false, transcript: [], mail: null, rcpt: null, vrfy: null, failure: null, connection: null, attemptsSeen: 0,
    }));
  }

  /** Probes every address; resolves once each has had its verdict. */
  async run(): Promise<void> {
    await this.#pass();
    if (this.#greylisted.length > 0) {
      const ms = this.#settings.retryGreylistMs;
      await this.#deps.sleep(ms);
      for (const p of this.#greylisted) {
        p.retried = true;
        p.transcript.push(`# asked again after ${ms / 1000} s (--retry-greylist)`);
      }
      if (this.#catchAll.kind !== 'known') this.#catchAll = { kind: 'unknown', tries: 0 };
      this.#queue = this.#greylisted;
      this.#greylisted = [];
      await this.#pass();
    }
    // Whatever still waits for the catch-all answer gets it as "not known".
    for (const p of this.#awaitingCatchAll.splice(0)) this.#finish(p);
  }

  async #pass(): Promise<void> {
    const workers = Math.min(Math.max(1, this.#settings.perDomain), this.#queue.length);
    await Promise.all(Array.from({ length: workers }, () => this.#worker()));
  }

  async #worker(): Promise<void> {
    let conn: ProbeConnection | null = null;
    try {
      while (this.#queue.length > 0) {
        if (conn !== null && (!conn.usable || conn.probesRun >= MAX_PROBES_PER_CONNECTION)) {
          await this.#close(conn);
          conn = null;
        }
        if (conn === null) {
          conn = await this.#open();
          if (conn === null) {
            // Another connection of this domain carries on; without one, nothing can be asked.
            if (this.#live === 0) this.#failQueue();
            return;
          }
        }
        const p = this.#queue.shift();
        if (p === undefined) return;
        await this.#pace();
        await this.#probeOne(conn, p);
      }
    } finally {
      if (conn !== null) await this.#close(conn);
    }
  }

  /** Opens one at a time per domain, so a host found down is skipped by the next connection. */
  #open(): Promise<ProbeConnection | null> {
    const turn = this.#opening.then(() => this.#openNow());
    this.#opening = turn.then(() => undefined, () => undefined);
    return turn;
  }

  async #openNow(): Promise<ProbeConnection | null> {
    await this.#shared.connections.acquire();
    const before = this.#attempts.length;
    const conn = await openProbeConnection(this.#targets, this.#settings, this.#attempts, this.#down);
    const made = this.#attempts.slice(before);
    this.#shared.stats.attempts += made.length;
    this.#shared.stats.answered += made.filter((a) => a.answered).length;
    if (conn === null) {
      this.#shared.connections.release();
      return null;
    }
    this.#live++;
    this.#shared.stats.connections++;
    this.#attemptsAtOpen.set(conn, this.#attempts.length);
    return conn;
  }

  async #close(conn: ProbeConnection): Promise<void> {
    this.#live--;
    try {
      await conn.quit();
    } finally {
      this.#shared.connections.release();
    }
  }

  /** A steady pace per domain: probes start at least 1/rate seconds apart. */
  async #pace(): Promise<void> {
    if (this.#settings.ratePerSecond <= 0) return;
    const now = this.#deps.now();
    const at = Math.max(now, this.#nextProbeAt);
    this.#nextProbeAt = at + 1000 / this.#settings.ratePerSecond;
    if (at > now) await this.#deps.sleep(at - now);
  }

  async #probeOne(conn: ProbeConnection, p: Pending): Promise<void> {
    p.connection = conn;
    p.attemptsSeen = this.#attemptsAtOpen.get(conn) ?? this.#attempts.length;
    if (p.item.smtpUtf8 && !conn.smtpUtf8) {
      this.#finish(p, judgement('smtputf8-unsupported', `${conn.target.host} does not offer SMTPUTF8, which a UTF-8 local part needs (RFC 6531 §3.2)`));
      return;
    }
    const askCatchAll = this.#catchAll.kind === 'unknown';
    if (this.#catchAll.kind === 'unknown') this.#catchAll = { kind: 'pending', tries: this.#catchAll.tries };
    const recipients = askCatchAll ? [p.item.mailbox, this.#random] : [p.item.mailbox];
    this.#shared.stats.probes++;
    const { outcome, transcript } = await conn.probe({
      sender: this.#settings.sender,
      recipients,
      vrfy: this.#settings.vrfy ? [p.item.mailbox] : undefined,
    });
    p.transcript.push(...transcript);
    p.mail = outcome.mail;
    p.vrfy = outcome.vrfy[0]?.reply ?? null;
    p.rcpt = outcome.recipients[0]?.reply ?? null;
    p.failure = outcome.failure?.message ?? null;
    const mailOk = outcome.mail !== null && isPositive(outcome.mail);
    if (askCatchAll) this.#learnCatchAll(mailOk ? (outcome.recipients[1]?.reply ?? null) : null);

    if (!mailOk || p.rcpt === null) {
      // MAIL refused decides (sender-rejected); a session that broke off earns another try.
      if (mailOk || outcome.mail === null) {
        if (outcome.failure !== null && p.tries + 1 < MAX_TRIES) {
          p.tries++;
          p.transcript.push(`# the session broke off (${outcome.failure.message}); asking again on a new connection`);
          this.#queue.unshift(p);
          return;
        }
      }
      this.#finish(p);
      return;
    }
    const kind = classifyRcpt(p.rcpt);
    if (kind === 'too-many' && p.tries + 1 < MAX_TRIES) {
      // RFC 5321 §4.5.3.1.10: 452 "too many recipients" asks for a new transaction, not a verdict.
      p.tries++;
      this.#queue.push(p);
      return;
    }
    if ((kind === 'deferred' || kind === 'too-many') && this.#settings.retryGreylistMs > 0 && !p.retried) {
      this.#greylisted.push(p);
      return;
    }
    if (kind === 'accepted' && this.#catchAll.kind !== 'known' && this.#catchAll.kind !== 'inconclusive') {
      this.#awaitingCatchAll.push(p);
      return;
    }
    this.#finish(p);
  }

  /** The random address's reply: 2xx means catch-all, 5xx not; anything else is asked again. */
  #learnCatchAll(reply: Reply | null): void {
    const tries = (this.#catchAll.kind === 'pending' ? this.#catchAll.tries : 0) + 1;
    if (reply !== null && (isPositive(reply) || reply.code >= 500)) {
      this.#catchAll = { kind: 'known', acceptsAll: isPositive(reply), reply: describeReply(reply) };
    } else if (tries >= MAX_CATCH_ALL_TRIES) {
      this.#catchAll = { kind: 'inconclusive', reply: reply === null ? null : describeReply(reply) };
    } else {
      this.#catchAll = { kind: 'unknown', tries };
      return;
    }
    for (const p of this.#awaitingCatchAll.splice(0)) this.#finish(p);
  }

  #catchAllEvidence(): CatchAllEvidence | null {
    const address = formatMailbox(this.#random);
    switch (this.#catchAll.kind) {
      case 'known':
        return { address, acceptsAll: this.#catchAll.acceptsAll, reply: this.#catchAll.reply };
      case 'inconclusive':
        return { address, acceptsAll: null, reply: this.#catchAll.reply };
      case 'unknown':
      case 'pending':
        return null;
      default:
        this.#catchAll satisfies never;
        return null;
    }
  }

  /** Every address of the queue, when no connection could be made: the attempts are the evidence. */
  #failQueue(): void {
    const attempts = this.#attempts;
    const port = this.#settings.port;
    const listed = attempts.map((a) => `${a.host} ${a.address}: ${a.detail}`).join('; ');
    const answered = attempts.some((a) => a.answered);
    const decided = answered
      ? judgement('session-refused', `the mail hosts refused the session (${listed})`)
      : judgement('smtp-unreachable', `no mail host answered on port ${port} (${listed || 'no address left to try'}); they may all be down, or outbound SMTP to port ${port} may be blocked from this machine`);
    for (const p of this.#queue.splice(0)) {
      p.connection = null;
      p.attemptsSeen = attempts.length;
      this.#finish(p, decided);
    }
  }

  #finish(p: Pending, decided?: Judgement): void {
    const catchAll = this.#catchAllEvidence();
    const verdict = decided ?? judgeProbe({
      mail: p.mail,
      rcpt: p.rcpt,
      vrfy: p.vrfy,
      catchAll: catchAll?.acceptsAll ?? null,
      failure: p.failure,
    });
    const conn = p.connection;
    this.#onDone(p.item.index, verdict, {
      attempts: this.#attempts.slice(0, p.attemptsSeen),
      server: conn === null ? null : { host: conn.target.host, address: conn.target.address, port: conn.port, tls: conn.tls },
      session: conn === null ? [] : conn.session,
      transcript: p.transcript,
      catchAll: p.rcpt !== null && isPositive(p.rcpt) ? catchAll : null,
    });
  }
}
