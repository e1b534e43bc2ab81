/**
 * @module The DeliveryQueue port, for the relay: which recipients are due, handed out as leased
 * jobs, and their outcomes written back in one group commit.
 * Rule 1: due-time order from a heap: a poll costs what it hands out (plus stale heap items),
 *         never a rescan of the spool. A message is due at its commit time while a recipient is
 *         pending, at nextAttemptMs while one is deferred.
 * Rule 2: a lease lives in memory only; after a crash or a reopen the job is pending again
 *         (delivery is at-least-once on the wire, DESIGN.md). A leased message is not handed out
 *         twice, and its segment is pinned: compaction neither moves nor removes it.
 * Rule 3: complete() journals every outcome of a job, and commits any bounce message, in one
 *         group-commit batch; the lease ends once that batch is durable or has failed. The jobs
 *         completed in one turn of the event loop go to the spool together, in one journal write
 *         (a relay finishing a Worker's batch of results completes them all in one turn).
 * Rule 4: an operator's action (`mailbox queue`: hold, release, retry, delete, bounce) is journal
 *         records too, durable before it is reported. One that lands while a job is leased wins
 *         over the job's outcome: a held recipient stays held (with the new attempt counted), a
 *         bounced one stays so, and a removed copy (`delete`: a removal record) has no state to
 *         change; only a delivery or a bounce ends a held recipient.
 * Rule 5: `retry` of many messages (`--all`) is written OPERATOR_SLICE messages at a time, each
 *         slice durable and woken (onWake) before the next: a relay starts on the first slice
 *         while the rest are written, instead of after the last.
 */
import type { Envelope, Recipient } from '../core/envelope.ts';
import type { Reply } from '../core/reply.ts';
import { isSettled, transportState, type CopyState } from './copy-state.ts';
import { isQueued, type DeliveryState, type StateRecord } from './delivery-state.ts';
import type { RemovalRecord } from './mailbox-state.ts';
import { shapeOf, type Entry, type RelayView } from './index.ts';
import type { CommitRequest } from './commit.ts';

export interface JobRecipient {
  /** The recipient's position in the envelope: what an outcome names. */
  readonly rcptIndex: number;
  readonly recipient: Recipient;
  /** pending, or deferred with its attempts so far. */
  readonly state: DeliveryState;
}

export interface DeliveryJob {
  readonly id: string;
  /** The due recipients of the message (not the finished or local ones). */
  readonly recipients: readonly JobRecipient[];
  /** The whole envelope: sender, MAIL parameters, and every recipient's parameters. */
  readonly envelope: Envelope;
  /** The segment file, and where the stored (dot-stuffed) message is in it. */
  readonly segmentPath: string;
  readonly bodyOffset: number;
  readonly bodyLength: number;
}

/** A recipient's new state after an attempt: delivered, deferred or bounced. */
export interface Outcome {
  readonly rcptIndex: number;
  readonly state: DeliveryState;
}

export interface DeliveryQueue {
  /** Up to `max` jobs due by `nowMs`, earliest first; each is leased until complete() or release(). */
  lease(nowMs: number, max: number): DeliveryJob[];
  /** Journals the outcomes (and commits the bounces) in one batch; resolves once durable. */
  complete(job: DeliveryJob, outcomes: readonly Outcome[], bounces?: readonly CommitRequest[]): Promise<void>;
  /** Gives a job back untouched (its worker died): due again at once. */
  release(job: DeliveryJob): void;
  /** When the earliest unleased work is due (epoch ms), or null when there is none. */
  nextDueMs(): number | null;
  /** Jobs leased now. */
  readonly leased: number;
  /** Operator: keeps the queued recipients of `ids` from being relayed until released. */
  hold(ids: readonly string[], nowMs: number): Promise<OperatorResult[]>;
  /** Operator: held recipients are queued again, due at once. */
  releaseHeld(ids: readonly string[], nowMs: number): Promise<OperatorResult[]>;
  /** Operator: deferred recipients are due at once (a leased message is being tried already). */
  retryNow(ids: readonly string[], nowMs: number): Promise<OperatorResult[]>;
  /** Operator: queued recipients' copies are removed unsent, without a report. */
  deleteQueued(ids: readonly string[], nowMs: number): Promise<OperatorResult[]>;
  /** Operator: queued recipients are bounced with `reply`; `report` makes each sender's DSN. */
  bounceQueued(ids: readonly string[], nowMs: number, reply: Reply, report: ReportMaker): Promise<OperatorResult[]>;
  /**
   * Told, once durable, of messages an operator made due now (retry, release): a relay forgets
   * what it held against their destinations (cool-off) and looks at the queue again.
   */
  onWake(listener: (ids: readonly string[]) => void): void;
}

/** What an operator's action did to one message. */
export interface OperatorResult {
  readonly id: string;
  /** 'done': `recipients` changed; 'unchanged': none was in a state it applies to; 'not-found'. */
  readonly outcome: 'done' | 'unchanged' | 'not-found';
  readonly recipients: number;
}

/** Builds the DSN for recipients an operator bounced: a commit for the spool, or null for none. */
export type ReportMaker = (
  message: { readonly id: string; readonly timeMs: number; readonly envelope: Envelope },
  bounced: readonly { readonly rcptIndex: number; readonly reply: Reply; readonly lastReply?: Reply }[],
  bytes: Uint8Array,
) => CommitRequest | null;

/** What the queue needs of the spool. */
export interface QueueHost {
  entry(id: string): Entry | undefined;
  /** The id, time, states and liveness of entry(id), without a snapshot of the whole record. */
  relayView(id: string): RelayView | undefined;
  segmentPath(seq: number): string;
  /** Appends the bounces, the state records and the removals, and resolves when their one batch is durable. */
  commitBatch(states: readonly StateRecord[], bounces: readonly CommitRequest[], removals?: readonly RemovalRecord[]): Promise<void>;
  /** The message as stored, dot-unstuffed (for the reports of bounceQueued). */
  readMessage(id: string): Promise<Uint8Array>;
}

const OUTCOME_KINDS: ReadonlySet<DeliveryState['kind']> = new Set(['delivered', 'deferred', 'bounced']);

/**
 * Rule 4: the state an attempt's outcome leaves when an operator acted during the attempt. The
 * outcome as it is while the recipient is still pending or deferred; null to write nothing.
 */
function afterOperator(current: CopyState | undefined, outcome: DeliveryState): DeliveryState | null {
  if (current === undefined || current.kind === 'pending' || current.kind === 'deferred') return outcome;
  if (current.kind === 'held') {
    if (outcome.kind !== 'deferred') return outcome;
    return warnedAs(current.warned ? current : outcome, { kind: 'held', atMs: current.atMs, attempts: outcome.attempts, lastReply: outcome.lastReply });
  }
  return isSettled(current) || current.kind === 'local' ? null : outcome;
}

/** A hold, a release or an attempt keeps the mark of a delay warning sent (the sender hears of it once). */
function warnedAs<T extends DeliveryState & { kind: 'held' | 'deferred' }>(before: DeliveryState, next: T): T {
  return (before.kind === 'deferred' || before.kind === 'held') && before.warned ? { ...next, warned: true } : next;
}

/** When a message's relay work is due, or null when it has none. */
export function dueMs(entry: RelayView): number | null {
  if (!entry.live || !shapeOf(entry.states).relay) return null;
  let due: number | null = null;
  for (const s of entry.states) {
    const at = s.kind === 'pending' ? entry.timeMs : s.kind === 'deferred' ? s.nextAttemptMs : null;
    if (at !== null && (due === null || at < due)) due = at;
  }
  return due;
}

/** What an operator's action makes of a relayed recipient's copy: removes it. */
const REMOVE = Symbol('remove');

/** An operator's action on one relayed recipient: its new state, REMOVE, or null to leave it. */
type Change = (state: DeliveryState, leased: boolean) => DeliveryState | typeof REMOVE | null;

/** Messages of one `retry` written and woken together (Rule 5). */
const OPERATOR_SLICE = 1_000;

interface Lease {
  readonly job: DeliveryJob;
  readonly seq: number;
}

/** One complete() waiting for the turn's commit (Rule 3). */
interface Completion {
  readonly records: readonly StateRecord[];
  readonly bounces: readonly CommitRequest[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class RelayQueue implements DeliveryQueue {
  readonly #host: QueueHost;
  /** A binary min-heap of (due, id) in two parallel arrays. */
  readonly #due: number[] = [];
  readonly #ids: string[] = [];
  /** The due time each id is in the heap under; an item that disagrees is stale and skipped. */
  readonly #queued = new Map<string, number>();
  readonly #leases = new Map<string, Lease>();
  /** Leased jobs per segment sequence number. */
  readonly #pins = new Map<number, number>();
  readonly #wake: ((ids: readonly string[]) => void)[] = [];
  /** The completions of this turn, committed together in a microtask (Rule 3); null when none. */
  #completing: Completion[] | null = null;

  constructor(host: QueueHost) {
    this.#host = host;
  }

  get leased(): number {
    return this.#leases.size;
  }

  /** The spool calls this whenever an entry is added or its states change. */
  note(entry: RelayView): void {
    if (this.#leases.has(entry.id)) return;
    const due = dueMs(entry);
    if (due === null) return;
    const queued = this.#queued.get(entry.id);
    if (queued !== undefined && queued <= due) return;
    this.#queued.set(entry.id, due);
    this.#push(due, entry.id);
  }

  /** True while a leased job reads from segment `seq`. */
  pinned(seq: number): boolean {
    return (this.#pins.get(seq) ?? 0) > 0;
  }

  lease(nowMs: number, max: number): DeliveryJob[] {
    const jobs: DeliveryJob[] = [];
    while (jobs.length < max && this.#due.length > 0 && this.#due[0] <= nowMs) {
      const [due, id] = this.#pop();
      if (this.#queued.get(id) !== due) continue;
      this.#queued.delete(id);
      const view = this.#host.relayView(id);
      if (!view || this.#leases.has(id)) continue;
      const actual = dueMs(view);
      if (actual === null) continue;
      if (actual > nowMs) {
        this.#queued.set(id, actual);
        this.#push(actual, id);
        continue;
      }
      // The whole record (envelope, segment, offsets) only for a message leased.
      const entry = this.#host.entry(id)!;
      const recipients: JobRecipient[] = [];
      entry.states.forEach((state, rcptIndex) => {
        if (state.kind === 'pending' || (state.kind === 'deferred' && state.nextAttemptMs <= nowMs)) {
          recipients.push({ rcptIndex, recipient: entry.envelope.recipients[rcptIndex], state });
        }
      });
      const job: DeliveryJob = {
        id,
        recipients,
        envelope: entry.envelope,
        segmentPath: this.#host.segmentPath(entry.seq),
        bodyOffset: entry.bodyOffset,
        bodyLength: entry.bodyBytes,
      };
      this.#leases.set(id, { job, seq: entry.seq });
      this.#pins.set(entry.seq, (this.#pins.get(entry.seq) ?? 0) + 1);
      jobs.push(job);
    }
    return jobs;
  }

  async complete(job: DeliveryJob, outcomes: readonly Outcome[], bounces: readonly CommitRequest[] = []): Promise<void> {
    const lease = this.#leases.get(job.id);
    if (lease?.job !== job) throw new Error(`spool: job ${job.id} is not leased`);
    const allowed = new Set(job.recipients.map((r) => r.rcptIndex));
    for (const o of outcomes) {
      if (!allowed.has(o.rcptIndex)) throw new Error(`spool: job ${job.id} has no recipient ${o.rcptIndex}`);
      if (!OUTCOME_KINDS.has(o.state.kind)) throw new Error(`spool: ${o.state.kind} is not an outcome of an attempt`);
    }
    const entry = this.#host.relayView(job.id);
    const records: StateRecord[] = [];
    for (const o of outcomes) {
      const state = entry === undefined ? o.state : afterOperator(entry.states[o.rcptIndex], o.state);
      if (state !== null) records.push({ id: job.id, rcpt: o.rcptIndex, state });
    }
    try {
      // A message gone from the spool is the spool's to refuse, alone, not in the turn's commit.
      if (entry === undefined) await this.#host.commitBatch(records, bounces);
      else if (records.length > 0 || bounces.length > 0) await this.#inTurn(records, bounces);
    } finally {
      this.#end(lease);
    }
  }

  /** Rule 3: joins the turn's commit; resolves once it is durable, rejects when it failed. */
  #inTurn(records: readonly StateRecord[], bounces: readonly CommitRequest[]): Promise<void> {
    const done = Promise.withResolvers<void>();
    if (this.#completing === null) {
      this.#completing = [];
      queueMicrotask(() => this.#commitTurn());
    }
    this.#completing.push({ records, bounces, resolve: done.resolve, reject: done.reject });
    return done.promise;
  }

  /**
   * A leased message's segment is pinned (Rule 2), so its record stays in the index and the
   * spool has no reason to refuse one job of the turn; if it refused the commit, every job of
   * the turn fails as its own commit would have, and its recipients stay due.
   */
  #commitTurn(): void {
    const turn = this.#completing ?? [];
    this.#completing = null;
    const records: StateRecord[] = [];
    const bounces: CommitRequest[] = [];
    for (const c of turn) {
      for (const r of c.records) records.push(r);
      for (const b of c.bounces) bounces.push(b);
    }
    this.#host.commitBatch(records, bounces).then(
      () => {
        for (const c of turn) c.resolve();
      },
      (error: unknown) => {
        for (const c of turn) c.reject(error);
      },
    );
  }

  hold(ids: readonly string[], nowMs: number): Promise<OperatorResult[]> {
    return this.#operate(ids, nowMs, (s) => {
      if (s.kind === 'pending') return { kind: 'held', atMs: nowMs, attempts: 0 };
      if (s.kind === 'deferred') return warnedAs(s, { kind: 'held', atMs: nowMs, attempts: s.attempts, lastReply: s.lastReply });
      return null;
    });
  }

  async releaseHeld(ids: readonly string[], nowMs: number): Promise<OperatorResult[]> {
    const results = await this.#operate(ids, nowMs, (s) => {
      if (s.kind !== 'held') return null;
      // Released mail is due at once; its attempts so far still count towards the next wait.
      return s.attempts > 0 && s.lastReply !== undefined ? warnedAs(s, { kind: 'deferred', attempts: s.attempts, nextAttemptMs: nowMs, lastReply: s.lastReply }) : { kind: 'pending' };
    });
    this.#woken(results);
    return results;
  }

  async retryNow(ids: readonly string[], nowMs: number): Promise<OperatorResult[]> {
    const results: OperatorResult[] = [];
    const unique = [...new Set(ids)];
    // Rule 5: a slice at a time, each durable and told to the relay before the next is planned.
    for (let at = 0; at < unique.length; at += OPERATOR_SLICE) {
      const slice = unique.slice(at, at + OPERATOR_SLICE);
      const done = await this.#operate(slice, nowMs, (s, leased) => {
        if (leased || s.kind !== 'deferred' || s.nextAttemptMs <= nowMs) return null;
        return { ...s, nextAttemptMs: nowMs };
      });
      // Pending mail is due already; a relay still hears of it, to forget a cool-off.
      this.#woken(
        done,
        slice.filter((id) => {
          const view = this.#host.relayView(id);
          return view !== undefined && shapeOf(view.states).relay;
        }),
      );
      results.push(...done);
    }
    return results;
  }

  deleteQueued(ids: readonly string[], nowMs: number): Promise<OperatorResult[]> {
    return this.#operate(ids, nowMs, (s) => (isQueued(s) ? REMOVE : null));
  }

  async bounceQueued(ids: readonly string[], nowMs: number, reply: Reply, report: ReportMaker): Promise<OperatorResult[]> {
    const bounces: CommitRequest[] = [];
    const plan = this.#plan(ids, nowMs, (s) => (isQueued(s) ? { kind: 'bounced', atMs: nowMs, reply } : null));
    for (const [id, changes] of plan.byId) {
      const entry = this.#host.entry(id)!;
      const bounced = changes.map(({ rcpt }) => {
        const before = entry.states[rcpt];
        const lastReply = before.kind === 'deferred' || before.kind === 'held' ? before.lastReply : undefined;
        return lastReply ? { rcptIndex: rcpt, reply, lastReply } : { rcptIndex: rcpt, reply };
      });
      const dsn = report({ id, timeMs: entry.timeMs, envelope: entry.envelope }, bounced, await this.#host.readMessage(id));
      if (dsn !== null) bounces.push(dsn);
    }
    await this.#host.commitBatch(plan.records, bounces);
    return plan.results;
  }

  onWake(listener: (ids: readonly string[]) => void): void {
    this.#wake.push(listener);
  }

  #woken(results: readonly OperatorResult[], also: readonly string[] = []): void {
    const ids = [...new Set([...results.filter((r) => r.outcome === 'done').map((r) => r.id), ...also])];
    if (ids.length === 0) return;
    for (const listener of this.#wake) listener(ids);
  }

  /**
   * The records an action writes: per relayed recipient, the new state `change` gives, or its
   * removal (at `nowMs`), or null for none.
   */
  #plan(ids: readonly string[], nowMs: number, change: Change) {
    const results: OperatorResult[] = [];
    const records: StateRecord[] = [];
    const removals: RemovalRecord[] = [];
    const byId = new Map<string, { readonly rcpt: number }[]>();
    for (const id of new Set(ids)) {
      const view = this.#host.relayView(id);
      if (!view || !view.live) {
        results.push({ id, outcome: 'not-found', recipients: 0 });
        continue;
      }
      const leased = this.#leases.has(id);
      const mine: { readonly rcpt: number }[] = [];
      view.states.forEach((copy, rcpt) => {
        const s = transportState(copy);
        const next = s === null ? null : change(s, leased);
        if (next === null) return;
        mine.push({ rcpt });
        if (next === REMOVE) removals.push({ id, rcpt, atMs: nowMs });
        else records.push({ id, rcpt, state: next });
      });
      results.push({ id, outcome: mine.length > 0 ? 'done' : 'unchanged', recipients: mine.length });
      if (mine.length > 0) byId.set(id, mine);
    }
    return { results, records, removals, byId };
  }

  async #operate(ids: readonly string[], nowMs: number, change: Change): Promise<OperatorResult[]> {
    const plan = this.#plan(ids, nowMs, change);
    if (plan.records.length + plan.removals.length > 0) await this.#host.commitBatch(plan.records, [], plan.removals);
    return plan.results;
  }

  release(job: DeliveryJob): void {
    const lease = this.#leases.get(job.id);
    if (lease?.job === job) this.#end(lease);
  }

  nextDueMs(): number | null {
    while (this.#due.length > 0) {
      const id = this.#ids[0];
      const due = this.#due[0];
      if (this.#queued.get(id) === due && !this.#leases.has(id)) return due;
      this.#pop();
      if (this.#queued.get(id) === due) this.#queued.delete(id);
    }
    return null;
  }

  #end(lease: Lease): void {
    this.#leases.delete(lease.job.id);
    const pins = (this.#pins.get(lease.seq) ?? 1) - 1;
    if (pins > 0) this.#pins.set(lease.seq, pins);
    else this.#pins.delete(lease.seq);
    const view = this.#host.relayView(lease.job.id);
    if (view) this.note(view);
  }

  #push(due: number, id: string): void {
    const dues = this.#due;
    const ids = this.#ids;
    let i = dues.length;
    dues.push(due);
    ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (dues[parent] <= due) break;
      dues[i] = dues[parent];
      ids[i] = ids[parent];
      i = parent;
    }
    dues[i] = due;
    ids[i] = id;
  }

  #pop(): [number, string] {
    const dues = this.#due;
    const ids = this.#ids;
    const top: [number, string] = [dues[0], ids[0]];
    const lastDue = dues.pop()!;
    const lastId = ids.pop()!;
    const n = dues.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && dues[child + 1] < dues[child]) child++;
      if (dues[child] >= lastDue) break;
      dues[i] = dues[child];
      ids[i] = ids[child];
      i = child;
    }
    dues[i] = lastDue;
    ids[i] = lastId;
    return top;
  }
}
