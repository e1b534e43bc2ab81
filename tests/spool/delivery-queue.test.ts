// The relay's port on the spool: due-time order, leases that live in memory and pin their
// segment, and outcomes (with bounces) journalled in one group-commit batch.
import { describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { reply } from '../../src/core/reply.ts';
import { readExactly, nodeIo, type SpoolIo } from '../../src/spool/journal.ts';
import type { Spool } from '../../src/spool/spool.ts';
import { dotStuff } from '../../src/core/data.ts';
import { spoolsPerTest } from './fixtures/spools.ts';
import { envelope, messageFor, request } from './fixtures/messages.ts';


const T0 = 1_700_000_000_000;
const clock = { now: T0 };

const { open, close, newDir } = spoolsPerTest(() => clock.now);

/** A message to relay: two remote recipients and one local. */
const relayed = (id: string, timeMs = T0) =>
  request(id, {
    timeMs,
    envelope: envelope('a@client.example', ['x@far.example', 'y@far.example', 'me@here.example']),
    localRecipients: [false, false, true],
  });

const later = reply(451, '4.4.1', 'No answer');
const ok = reply(250, '2.0.0', 'OK');

describe('DeliveryQueue', () => {
  test('lease hands out due jobs earliest first, with where the message is; never one job twice', async () => {
    const s = await open(newDir());
    await s.commit(relayed('late', T0 + 20));
    await s.commit(relayed('early', T0 + 10));
    await s.commit(request('local-only'));
    const q = s.deliveryQueue;
    expect(q.nextDueMs()).toBe(T0 + 10);
    expect(q.lease(T0 + 5, 10)).toEqual([]);
    const jobs = q.lease(T0 + 100, 10);
    expect(jobs.map((j) => j.id)).toEqual(['early', 'late']);
    expect(q.lease(T0 + 100, 10)).toEqual([]);
    expect(q.leased).toBe(2);
    const job = jobs[0];
    expect(job.recipients.map((r) => [r.rcptIndex, `${r.recipient.mailbox.local}@${r.recipient.mailbox.domain}`, r.state.kind])).toEqual([
      [0, 'x@far.example', 'pending'],
      [1, 'y@far.example', 'pending'],
    ]);
    // The job says where the stored message is; a worker reads it from there.
    const fd = fs.openSync(job.segmentPath, 'r');
    try {
      const stored = readExactly(fd, job.bodyOffset, job.bodyLength);
      expect(stored.equals(Buffer.from(dotStuff(messageFor('early'))))).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('complete journals each outcome; a deferred recipient is due again at its next attempt', async () => {
    const dir = newDir();
    const s = await open(dir);
    await s.commit(relayed('m'));
    const q = s.deliveryQueue;
    const [job] = q.lease(T0, 1);
    await q.complete(job, [
      { rcptIndex: 0, state: { kind: 'delivered', atMs: T0 + 1, reply: ok } },
      { rcptIndex: 1, state: { kind: 'deferred', attempts: 1, nextAttemptMs: T0 + 60_000, lastReply: later } },
    ]);
    expect(q.leased).toBe(0);
    expect(s.get('m')?.recipients.map((r) => r.state.kind)).toEqual(['delivered', 'deferred', 'local']);
    expect(q.nextDueMs()).toBe(T0 + 60_000);
    expect(q.lease(T0 + 59_999, 5)).toEqual([]);
    const [again] = q.lease(T0 + 60_000, 5);
    expect(again.recipients.map((r) => r.rcptIndex)).toEqual([1]);
    await q.complete(again, [{ rcptIndex: 1, state: { kind: 'delivered', atMs: T0 + 60_001 } }]);
    expect(q.nextDueMs()).toBeNull();

    await close(s);
    const reopened = await open(dir);
    expect(reopened.get('m')?.recipients.map((r) => r.state.kind)).toEqual(['delivered', 'delivered', 'local']);
    expect(reopened.deliveryQueue.lease(T0 + 1e9, 5)).toEqual([]);
  });

  test('complete writes the outcomes and the bounce message in one group-commit batch', async () => {
    let syncs = 0;
    const io: SpoolIo = { write: nodeIo.write, datasync: (fd) => (syncs++, nodeIo.datasync(fd)) };
    const s = await open(newDir(), { io });
    await s.commit(relayed('m'));
    const q = s.deliveryQueue;
    const [job] = q.lease(T0, 1);
    const batches = s.stats().syncBatches;
    const gone = reply(550, '5.1.1', 'No such user');
    await q.complete(
      job,
      [
        { rcptIndex: 0, state: { kind: 'bounced', atMs: T0, reply: gone } },
        { rcptIndex: 1, state: { kind: 'bounced', atMs: T0, reply: gone } },
      ],
      [request('bounce-of-m', { envelope: envelope(null, ['a@client.example']), localRecipients: [false] })],
    );
    expect(s.stats().syncBatches).toBe(batches + 1);
    expect(s.get('m')?.recipients.map((r) => r.state.kind)).toEqual(['bounced', 'bounced', 'local']);
    expect(s.get('bounce-of-m')?.sender).toBe('<>');
    // The bounce is relay work of its own.
    expect(q.lease(T0 + 1e9, 5).map((j) => j.id)).toEqual(['bounce-of-m']);
    expect(syncs).toBeGreaterThan(0);
  });

  test('the jobs completed in one turn are journalled in one write, and each lease ends once it is durable', async () => {
    const writes: number[] = [];
    const io: SpoolIo = { write: (fd, bytes, position) => (writes.push(bytes.length), nodeIo.write(fd, bytes, position)), datasync: nodeIo.datasync };
    const dir = newDir();
    const s = await open(dir, { io });
    for (const id of ['m1', 'm2', 'm3']) await s.commit(relayed(id));
    const q = s.deliveryQueue;
    const jobs = q.lease(T0, 10);
    expect(jobs.length).toBe(3);
    writes.length = 0;
    const done = jobs.map((job, i) =>
      q.complete(job, [
        { rcptIndex: 0, state: { kind: 'delivered', atMs: T0 + i, reply: ok } },
        { rcptIndex: 1, state: { kind: 'deferred', attempts: 1, nextAttemptMs: T0 + 60_000, lastReply: later } },
      ]),
    );
    expect(q.leased).toBe(3);
    await Promise.all(done);
    expect(writes.length).toBe(1);
    expect(q.leased).toBe(0);
    expect(q.lease(T0 + 60_000, 10).map((j) => j.id).sort()).toEqual(['m1', 'm2', 'm3']);
    await close(s);
    const reopened = await open(dir);
    for (const id of ['m1', 'm2', 'm3']) expect(reopened.get(id)?.recipients.map((r) => r.state.kind)).toEqual(['delivered', 'deferred', 'local']);
  });

  test('outcomes must name a leased recipient and be the result of an attempt', async () => {
    const s = await open(newDir());
    await s.commit(relayed('m'));
    const q = s.deliveryQueue;
    const [job] = q.lease(T0, 1);
    await expect(q.complete(job, [{ rcptIndex: 2, state: { kind: 'delivered', atMs: T0 } }])).rejects.toThrow(/no recipient 2/);
    await expect(q.complete(job, [{ rcptIndex: 0, state: { kind: 'pending' } }])).rejects.toThrow(/not an outcome/);
    q.release(job);
    await expect(q.complete(job, [])).rejects.toThrow(/not leased/);
    expect(q.lease(T0, 1).map((j) => j.id)).toEqual(['m']);
  });

  test('leases live in memory: after a crash (kill -9) the leased job is pending again', async () => {
    const dir = newDir();
    const child = Bun.spawn([process.execPath, path.join(import.meta.dir, 'fixtures', 'lease-and-wait.ts'), dir], { stdout: 'pipe', stderr: 'inherit' });
    let out = '';
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      out += decoder.decode(chunk, { stream: true });
      if (out.includes('\n')) break;
    }
    child.kill('SIGKILL');
    await child.exited;
    expect(out).toBe('leased m 2\n');
    const reopened = await open(dir);
    const [again] = reopened.deliveryQueue.lease(T0, 1);
    expect(again.id).toBe('m');
    expect(again.recipients.map((r) => r.state.kind)).toEqual(['pending', 'pending']);
  });

  test('compaction never moves or removes a leased segment; once completed it may', async () => {
    // Segment 1 holds exactly one message to relay and three local ones that get deleted, so
    // it is mostly dead: compaction would rewrite it.
    const firstFour = async (s: Spool) => {
      await s.commit(relayed('r', T0));
      for (let i = 0; i < 3; i++) await s.commit(request(`l${i}`, { timeMs: T0 + i }));
    };
    const scratch = await open(newDir());
    await firstFour(scratch);
    const segmentBytes = scratch.stats().bytes + 1;
    await close(scratch);
    const dir = newDir();
    const s = await open(dir, { segmentBytes });
    await firstFour(s);
    for (let i = 0; i < 6; i++) await s.commit(request(`n${i}`, { timeMs: T0 + 10 + i }));
    const [job] = s.deliveryQueue.lease(T0, 1);
    const seg = s.get('r')!.segment;
    expect(s.get('n0')!.segment).not.toBe(seg);
    await s.delete(['l0', 'l1', 'l2']);
    const before = fs.readFileSync(job.segmentPath);
    const report = await s.compact();
    expect(report.rewrittenSegments).not.toContain(seg);
    expect(report.removedSegments).not.toContain(seg);
    expect(s.get('r')!.segment).toBe(seg);
    expect(fs.readFileSync(job.segmentPath).equals(before)).toBe(true);

    await s.deliveryQueue.complete(job, [
      { rcptIndex: 0, state: { kind: 'delivered', atMs: T0 } },
      { rcptIndex: 1, state: { kind: 'delivered', atMs: T0 } },
    ]);
    await s.delete(['r']);
    const after = await s.compact();
    expect([...after.removedSegments, ...after.rewrittenSegments]).toContain(seg);
    expect(fs.existsSync(job.segmentPath)).toBe(false);
  });
});
