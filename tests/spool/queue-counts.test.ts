// The relay queue's counts by state (what /metrics reports): kept by the spool index as records
// come, change and go, so they always equal a walk over the queued messages: through commits,
// attempts, the operator's hold, release, delete and bounce, a delivery, compaction, and a
// reopen that loads checkpoint chunks and replays the journal after them.
import { expect, test } from 'bun:test';
import { reply } from '../../src/core/reply.ts';
import type { QueuedKind, Spool } from '../../src/spool/spool.ts';
import { envelope, request } from './fixtures/messages.ts';
import { spoolsPerTest } from './fixtures/spools.ts';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const spools = spoolsPerTest(() => T0);

/** The counts as a walk finds them. */
function walked(s: Spool): Record<QueuedKind, number> {
  const counts = { pending: 0, deferred: 0, held: 0 };
  for (const m of s.queued()) for (const r of m.recipients) if (r.state.kind in counts) counts[r.state.kind as QueuedKind]++;
  return counts;
}

/** Two remote recipients and one local. */
const relayed = (id: string) =>
  request(id, { envelope: envelope('a@client.example', ['x@far.example', 'y@near.example', 'me@here.example']), localRecipients: [false, false, true] });

test('the counts follow every change and survive a reopen from checkpoint chunks', async () => {
  const dir = spools.newDir();
  const s = await spools.open(dir, { checkpointEvery: 2 });
  const check = (expected: Record<QueuedKind, number>) => {
    expect(s.queueCounts()).toEqual(walked(s));
    expect(s.queueCounts()).toEqual(expected);
  };
  check({ pending: 0, deferred: 0, held: 0 });
  for (const id of ['a', 'b', 'c', 'd', 'e']) await s.commit(relayed(id));
  await s.commit(request('local-only'));
  check({ pending: 10, deferred: 0, held: 0 });

  const q = s.deliveryQueue;
  const jobs = q.lease(T0, 2);
  const rest = ['a', 'b', 'c', 'd', 'e'].filter((id) => !jobs.some((j) => j.id === id));
  const deferred = { kind: 'deferred' as const, attempts: 1, nextAttemptMs: T0 + HOUR, lastReply: reply(451, '4.4.1', 'No answer') };
  await q.complete(jobs[0], [{ rcptIndex: 0, state: deferred }, { rcptIndex: 1, state: { kind: 'delivered', atMs: T0, reply: reply(250, '2.0.0', 'OK') } }]);
  await q.complete(jobs[1], [{ rcptIndex: 0, state: deferred }, { rcptIndex: 1, state: deferred }]);
  check({ pending: 6, deferred: 3, held: 0 });
  await q.hold([jobs[1].id, rest[0]], T0);
  check({ pending: 4, deferred: 1, held: 4 });
  await q.releaseHeld([rest[0]], T0);
  check({ pending: 6, deferred: 1, held: 2 });
  await q.deleteQueued([rest[1]], T0);
  check({ pending: 4, deferred: 1, held: 2 });
  await q.bounceQueued([rest[2]], T0, reply(550, '5.0.0', 'bounced by the operator'), () => null);
  check({ pending: 2, deferred: 1, held: 2 });
  await s.compact();
  check({ pending: 2, deferred: 1, held: 2 });

  await spools.close(s);
  const again = await spools.open(dir, { checkpointEvery: 2 });
  expect(again.queueCounts()).toEqual(walked(again));
  expect(again.queueCounts()).toEqual({ pending: 2, deferred: 1, held: 2 });
});
