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
 *         group-commit batch; the lease ends once that batch is durable or has failed.
 */
import type { Envelope, Recipient } from '../core/envelope.ts';
import type { DeliveryState, StateRecord } from './delivery-state.ts';
import { shapeOf, type Entry } from './index.ts';
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
}

/** What the queue needs of the spool. */
export interface QueueHost {
  entry(id: string): Entry | undefined;
  segmentPath(seq: number): string;
  /** Appends the bounces and the state records, and resolves when their one batch is durable. */
  commitBatch(states: readonly StateRecord[], bounces: readonly CommitRequest[]): Promise<void>;
}

const OUTCOME_KINDS: ReadonlySet<DeliveryState['kind']> = new Set(['delivered', 'deferred', 'bounced']);

/** When a message's relay work is due, or null when it has none. */
export function dueMs(entry: Entry): number | null {
  if (!entry.live || !shapeOf(entry.states).relay) return null;
  let due: number | null = null;
  for (const s of entry.states) {
    const at = s.kind === 'pending' ? entry.timeMs : s.kind === 'deferred' ? s.nextAttemptMs : null;
    if (at !== null && (due === null || at < due)) due = at;
  }
  return due;
}

interface Lease {
  readonly job: DeliveryJob;
  readonly seq: number;
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

  constructor(host: QueueHost) {
    this.#host = host;
  }

  get leased(): number {
    return this.#leases.size;
  }

  /** The spool calls this whenever an entry is added or its states change. */
  note(entry: Entry): void {
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
      const entry = this.#host.entry(id);
      if (!entry || this.#leases.has(id)) continue;
      const actual = dueMs(entry);
      if (actual === null) continue;
      if (actual > nowMs) {
        this.#queued.set(id, actual);
        this.#push(actual, id);
        continue;
      }
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
    try {
      await this.#host.commitBatch(
        outcomes.map((o) => ({ id: job.id, rcpt: o.rcptIndex, state: o.state })),
        bounces,
      );
    } finally {
      this.#end(lease);
    }
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
    const entry = this.#host.entry(lease.job.id);
    if (entry) this.note(entry);
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
