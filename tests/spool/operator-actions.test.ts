// The operator's actions on the relay queue (`mailbox queue`): hold, release, retry now, delete,
// bounce. Each is journal records, durable before it resolves (checked across a reopen), and one
// that lands while a job is leased wins over the job's outcome.
import { afterEach, expect, test } from 'bun:test';
import { reply } from '../../src/core/reply.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import type { ReportMaker } from '../../src/spool/delivery-queue.ts';
import { envelope, memoryLog, messageFor, removeDir, request, tempDir } from './fixtures/messages.ts';

const dirs: string[] = [];
const opened: Spool[] = [];
afterEach(async () => {
  clock.now = T0;
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const clock = { now: T0 };
const later = reply(451, '4.4.1', 'No answer');
const byOperator = reply(550, '5.0.0', 'bounced by the operator');

async function open(dir?: string): Promise<{ s: Spool; dir: string }> {
  const d = dir ?? tempDir();
  if (dir === undefined) dirs.push(d);
  const s = await openSpool({ dir: d, hostname: 'mx.test', now: () => clock.now, log: memoryLog() });
  opened.push(s);
  return { s, dir: d };
}

async function reopen(s: Spool, dir: string): Promise<Spool> {
  opened.splice(opened.indexOf(s), 1);
  await s.close();
  return (await open(dir)).s;
}

/** Two remote recipients and one local. */
const relayed = (id: string, timeMs = T0) =>
  request(id, { timeMs, envelope: envelope('a@client.example', ['x@far.example', 'y@near.example', 'me@here.example']), localRecipients: [false, false, true] });

const kinds = (s: Spool, id: string) => s.get(id)!.recipients.map((r) => r.state.kind);

/** Commits `id`, leases it and defers both remote recipients (next attempt in an hour). */
async function deferred(s: Spool, id: string): Promise<void> {
  await s.commit(relayed(id));
  const [job] = s.deliveryQueue.lease(clock.now, 1);
  const state = { kind: 'deferred' as const, attempts: 1, nextAttemptMs: clock.now + HOUR, lastReply: later };
  await s.deliveryQueue.complete(job, [{ rcptIndex: 0, state }, { rcptIndex: 1, state }]);
}

test('hold keeps queued recipients from the relay, durably; release makes them due at once with their attempts', async () => {
  const { s, dir } = await open();
  await deferred(s, 'd');
  await s.commit(relayed('p'));
  const q = s.deliveryQueue;
  expect(await q.hold(['d', 'p', 'missing'], T0)).toEqual([
    { id: 'd', outcome: 'done', recipients: 2 },
    { id: 'p', outcome: 'done', recipients: 2 },
    { id: 'missing', outcome: 'not-found', recipients: 0 },
  ]);
  // The local copy is not the queue's: it stays local.
  expect(kinds(s, 'd')).toEqual(['held', 'held', 'local']);
  expect(q.lease(T0 + 10 * HOUR, 10)).toEqual([]);
  expect(q.nextDueMs()).toBeNull();

  const again = await reopen(s, dir);
  expect(kinds(again, 'p')).toEqual(['held', 'held', 'local']);
  expect(again.queued().map((m) => m.id)).toEqual(['d', 'p']);
  const woken: string[][] = [];
  again.deliveryQueue.onWake((ids) => woken.push([...ids]));
  clock.now = T0 + 60_000;
  expect((await again.deliveryQueue.releaseHeld(['d', 'p'], clock.now)).map((r) => r.outcome)).toEqual(['done', 'done']);
  expect(woken).toEqual([['d', 'p']]);
  expect(again.get('d')!.recipients[0].state).toEqual({ kind: 'deferred', attempts: 1, nextAttemptMs: clock.now, lastReply: later });
  expect(kinds(again, 'p')).toEqual(['pending', 'pending', 'local']);
  expect(again.deliveryQueue.lease(clock.now, 10).map((j) => j.id).sort()).toEqual(['d', 'p']);
});

test('a delay warning already sent stays marked through hold, a reopen and release (the sender hears of it once)', async () => {
  const { s, dir } = await open();
  await s.commit(relayed('w'));
  const [job] = s.deliveryQueue.lease(clock.now, 1);
  const plain = { kind: 'deferred' as const, attempts: 3, nextAttemptMs: clock.now + HOUR, lastReply: later };
  await s.deliveryQueue.complete(job, [{ rcptIndex: 0, state: { ...plain, warned: true } }, { rcptIndex: 1, state: plain }]);
  await s.deliveryQueue.hold(['w'], T0);
  expect(s.get('w')!.recipients.map((r) => r.state)).toEqual([
    { kind: 'held', atMs: T0, attempts: 3, lastReply: later, warned: true },
    { kind: 'held', atMs: T0, attempts: 3, lastReply: later },
    { kind: 'local' },
  ]);
  const again = await reopen(s, dir);
  await again.deliveryQueue.releaseHeld(['w'], T0 + 5);
  expect(again.get('w')!.recipients.map((r) => r.state.kind === 'deferred' && r.state.warned)).toEqual([true, undefined, false]);
});

test('retry now: deferred recipients are due at once; a leased message is left to its attempt', async () => {
  const { s, dir } = await open();
  await deferred(s, 'd1');
  await deferred(s, 'd2');
  const q = s.deliveryQueue;
  expect(q.nextDueMs()).toBe(T0 + HOUR);
  const woken: string[][] = [];
  q.onWake((ids) => woken.push([...ids]));
  expect(await q.retryNow(['d1'], T0 + 5)).toEqual([{ id: 'd1', outcome: 'done', recipients: 2 }]);
  expect(woken).toEqual([['d1']]);
  expect(q.nextDueMs()).toBe(T0 + 5);
  const [job] = q.lease(T0 + 5, 10);
  expect(job.id).toBe('d1');
  expect(await q.retryNow(['d1'], T0 + 6)).toEqual([{ id: 'd1', outcome: 'unchanged', recipients: 0 }]);
  q.release(job);
  const again = await reopen(s, dir);
  expect(again.get('d1')!.recipients[0].state).toMatchObject({ kind: 'deferred', nextAttemptMs: T0 + 5, attempts: 1 });
  expect(again.get('d2')!.recipients[0].state).toMatchObject({ kind: 'deferred', nextAttemptMs: T0 + HOUR });
});

test('retry of many: written a slice of 1,000 at a time, each durable and woken before the next is planned', async () => {
  const { s } = await open();
  const ids = Array.from({ length: 2_500 }, (_, i) => `m${String(i).padStart(4, '0')}`);
  await Promise.all(ids.map((id) => s.commit(relayed(id))));
  const q = s.deliveryQueue;
  const jobs = q.lease(T0, ids.length);
  const state = { kind: 'deferred' as const, attempts: 1, nextAttemptMs: T0 + HOUR, lastReply: later };
  await Promise.all(jobs.map((job) => q.complete(job, [{ rcptIndex: 0, state }, { rcptIndex: 1, state }])));
  const nextOf = (id: string) => (s.get(id)!.recipients[0].state as { nextAttemptMs: number }).nextAttemptMs;
  const woken: { ids: number; due: number; secondSliceDue: boolean }[] = [];
  // At each wake, what the relay would see: the woken slice due already, the next slice not yet.
  q.onWake((w) => woken.push({ ids: w.length, due: w.filter((id) => nextOf(id) === T0 + 5).length, secondSliceDue: nextOf(ids[1_000]) === T0 + 5 }));
  const results = await q.retryNow([...ids, ids[0]], T0 + 5);
  expect(results.length).toBe(2_500);
  expect(results.every((r) => r.outcome === 'done')).toBe(true);
  expect(woken).toEqual([
    { ids: 1_000, due: 1_000, secondSliceDue: false },
    { ids: 1_000, due: 1_000, secondSliceDue: true },
    { ids: 500, due: 500, secondSliceDue: true },
  ]);
  expect(q.lease(T0 + 5, 3_000).length).toBe(2_500);
});

test('delete removes the queued recipients unsent; the local copy stays, and the message leaves the queue', async () => {
  const { s, dir } = await open();
  await deferred(s, 'd');
  await s.commit(request('local-only'));
  expect(await s.deliveryQueue.deleteQueued(['d', 'local-only'], T0)).toEqual([
    { id: 'd', outcome: 'done', recipients: 2 },
    { id: 'local-only', outcome: 'unchanged', recipients: 0 },
  ]);
  const again = await reopen(s, dir);
  expect(kinds(again, 'd')).toEqual(['removed', 'removed', 'local']);
  expect(again.queued()).toEqual([]);
  expect(again.deliveryQueue.nextDueMs()).toBeNull();
});

test('bounce marks queued recipients bounced and commits the report in the same batch', async () => {
  const { s, dir } = await open();
  await deferred(s, 'd');
  await s.deliveryQueue.hold(['d'], T0);
  const calls: Parameters<ReportMaker>[] = [];
  const report: ReportMaker = (message, bounced, bytes) => {
    calls.push([message, bounced, bytes]);
    return request('dsn-for-d', { timeMs: T0 + 1, envelope: envelope(null, ['a@client.example']), localRecipients: [true] });
  };
  expect(await s.deliveryQueue.bounceQueued(['d'], T0 + 1, byOperator, report)).toEqual([{ id: 'd', outcome: 'done', recipients: 2 }]);
  expect(calls.length).toBe(1);
  const [message, bounced, bytes] = calls[0];
  expect(message.id).toBe('d');
  // The last remote reply of a held or deferred recipient goes with it into the report.
  expect(bounced).toEqual([
    { rcptIndex: 0, reply: byOperator, lastReply: later },
    { rcptIndex: 1, reply: byOperator, lastReply: later },
  ]);
  expect(Buffer.from(bytes).equals(Buffer.from(messageFor('d')))).toBe(true);
  const again = await reopen(s, dir);
  expect(kinds(again, 'd')).toEqual(['bounced', 'bounced', 'local']);
  expect(again.get('dsn-for-d')!.envelope.sender).toBeNull();
  expect(Buffer.from(await again.readMessage('dsn-for-d')).equals(Buffer.from(messageFor('dsn-for-d')))).toBe(true);
});

test('an action during an attempt wins: held stays held (the attempt counted), deleted and bounced stay', async () => {
  const { s } = await open();
  await s.commit(relayed('h'));
  await s.commit(relayed('x'));
  const q = s.deliveryQueue;
  const jobs = q.lease(T0, 10);
  expect(jobs.map((j) => j.id)).toEqual(['h', 'x']);
  await q.hold(['h'], T0);
  await q.deleteQueued(['x'], T0);
  const deferredState = { kind: 'deferred' as const, attempts: 1, nextAttemptMs: T0 + HOUR, lastReply: later };
  await q.complete(jobs[0], [{ rcptIndex: 0, state: deferredState }, { rcptIndex: 1, state: { kind: 'delivered', atMs: T0 } }]);
  await q.complete(jobs[1], [{ rcptIndex: 0, state: deferredState }, { rcptIndex: 1, state: deferredState }]);
  expect(s.get('h')!.recipients.map((r) => r.state)).toEqual([
    { kind: 'held', atMs: T0, attempts: 1, lastReply: later },
    { kind: 'delivered', atMs: T0 },
    { kind: 'local' },
  ]);
  expect(kinds(s, 'x')).toEqual(['removed', 'removed', 'local']);
  expect(q.nextDueMs()).toBeNull();
});
