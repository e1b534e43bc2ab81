import { afterEach, describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { reply } from '../../src/core/reply.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { openSpool, type Spool, type SpoolOptions } from '../../src/spool/spool.ts';
import { envelope, memoryLog, messageFor, removeDir, request, tempDir } from './fixtures/messages.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

function newDir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

const T0 = 1_700_000_000_000;
const clock = { now: T0 };
const open = (dir: string, extra: Partial<SpoolOptions> = {}) =>
  openSpool({ dir, hostname: 'mx.test', now: () => clock.now, log: memoryLog(), ...extra });

const segmentNames = (dir: string) => fs.readdirSync(createLayout(dir).segmentsDir).sort();

async function expectReadable(s: Spool, ids: string[]): Promise<void> {
  for (const id of ids) expect(Buffer.from(await s.readMessage(id)).equals(Buffer.from(messageFor(id)))).toBe(true);
}

/** A segmentBytes that holds exactly two records of the test messages (all the same size). */
async function twoRecordsPerSegment(): Promise<number> {
  const dir = newDir();
  const s = await open(dir);
  await s.commit(request('m0'));
  await s.commit(request('m1'));
  const bytes = s.stats().bytes;
  await s.close();
  return bytes + 1;
}

describe('journal', () => {
  test('deletes survive reopen', async () => {
    const dir = newDir();
    const s = await open(dir);
    for (let i = 0; i < 5; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    await s.delete(['m1', 'm3', 'nonexistent']);
    expect(s.list().map((m) => m.id)).toEqual(['m4', 'm2', 'm0']);
    await expect(s.readMessage('m1')).rejects.toThrow(/no message m1/);
    await s.close();
    const again = await open(dir);
    expect(again.list().map((m) => m.id)).toEqual(['m4', 'm2', 'm0']);
    expect(again.get('m3')).toBeUndefined();
    await again.close();
  });

  test('relay outcomes per recipient survive reopen', async () => {
    const dir = newDir();
    const s = await open(dir);
    await s.commit(request('r', { envelope: envelope('a@b.example', ['x@far.example', 'y@far.example', 'z@here.example']), localRecipients: [false, false, true] }));
    expect(s.deliveries().map((d) => d.rcptIndex)).toEqual([0, 1]);
    const later = reply(451, '4.4.1', 'Connection timed out');
    await s.setState('r', 0, { kind: 'deferred', attempts: 1, nextAttemptMs: T0 + 60_000, lastReply: later });
    await s.setState('r', 1, { kind: 'delivered', atMs: T0 + 5, reply: reply(250, '2.0.0', 'OK') });
    expect(s.deliveries({ dueBy: T0 }).length).toBe(0);
    expect(s.deliveries({ dueBy: T0 + 60_000 }).map((d) => d.recipient.local)).toEqual(['x']);
    await s.close();
    const again = await open(dir);
    expect(again.get('r')?.recipients.map((r) => r.state)).toEqual([
      { kind: 'deferred', attempts: 1, nextAttemptMs: T0 + 60_000, lastReply: later },
      { kind: 'delivered', atMs: T0 + 5, reply: reply(250, '2.0.0', 'OK') },
      { kind: 'local' },
    ]);
    await expect(again.setState('nope', 0, { kind: 'pending' })).rejects.toThrow(/no message nope/);
    await again.close();
  });
});

describe('retention', () => {
  test('maxMessages keeps the newest held messages', async () => {
    const dir = newDir();
    const s = await open(dir, { maxMessages: 3 });
    for (let i = 0; i < 6; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    // A message waiting for relay is the queue's business, not retention's.
    await s.commit(request('relay', { timeMs: T0 - 1, localRecipients: [false] }));
    const report = await s.compact();
    expect(report.retentionDeleted).toBe(4);
    expect(s.list().map((m) => m.id)).toEqual(['m5', 'm4', 'relay']);
    await s.close();
    const again = await open(dir, { maxMessages: 3 });
    expect(again.stats().messages).toBe(3);
    await again.close();
  });

  test('maxAgeMs deletes what is older than the limit', async () => {
    const dir = newDir();
    clock.now = T0;
    const s = await open(dir, { maxAgeMs: 60_000 });
    await s.commit(request('old', { timeMs: T0 - 120_000 }));
    await s.commit(request('young', { timeMs: T0 - 30_000 }));
    expect((await s.compact()).retentionDeleted).toBe(1);
    expect(s.list().map((m) => m.id)).toEqual(['young']);
    clock.now = T0 + 40_000;
    expect((await s.compact()).retentionDeleted).toBe(1);
    expect(s.stats().messages).toBe(0);
    clock.now = T0;
    await s.close();
  });
});

describe('reclaiming space', () => {
  test('a segment whose every message is finished is removed; the active one is not', async () => {
    const dir = newDir();
    const s = await open(dir, { segmentBytes: await twoRecordsPerSegment() });
    for (let i = 0; i < 6; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    expect(['m0', 'm1', 'm2', 'm3', 'm4', 'm5'].map((id) => s.get(id)!.segment)).toEqual([
      '00000001.smtp', '00000001.smtp', '00000002.smtp', '00000002.smtp', '00000003.smtp', '00000003.smtp',
    ]);
    await s.delete(['m1']);
    await s.commit(request('rr', { timeMs: T0 + 10, localRecipients: [false] }));
    expect((await s.compact()).removedSegments).toEqual([]); // m0 is still held
    await s.delete(['m0']);
    expect((await s.compact()).removedSegments).toEqual(['00000001.smtp']);
    expect(segmentNames(dir)).toEqual(['00000002.smtp', '00000003.smtp', '00000004.smtp']);
    await expectReadable(s, ['m2', 'm3', 'm4', 'm5']);

    // Relay outcomes finish a message too; the active segment is left alone even when all dead.
    await s.setState('rr', 0, { kind: 'bounced', atMs: T0, reply: reply(550, '5.1.1', 'No such user') });
    await s.delete(['m2', 'm3']);
    await s.commit(request('n0', { timeMs: T0 + 20 }));
    await s.delete(['n0']);
    expect((await s.compact()).removedSegments).toEqual(['00000002.smtp']);
    await s.commit(request('n1', { timeMs: T0 + 21 }));
    expect(s.get('n1')!.segment).toBe('00000005.smtp');
    expect((await s.compact()).removedSegments).toEqual(['00000004.smtp']);
    await s.close();
    const reopened = await open(dir);
    expect(reopened.recovery.damaged).toEqual([]);
    expect(reopened.list().map((m) => m.id)).toEqual(['n1', 'm5', 'm4']);
    expect(reopened.get('rr')).toBeUndefined();
    await reopened.close();
  });

  test('a mostly-dead segment is rewritten; its live messages keep their ids and stay readable', async () => {
    const dir = newDir();
    const segmentBytes = (await twoRecordsPerSegment()) * 2;
    const s = await open(dir, { segmentBytes });
    for (let i = 0; i < 8; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    expect(s.get('m3')!.segment).toBe('00000001.smtp');
    expect(s.get('m4')!.segment).toBe('00000002.smtp');
    await s.delete(['m0', 'm2', 'm3']);
    await s.commit(request('tail', { timeMs: T0 + 50 }));
    const report = await s.compact();
    expect(report.removedSegments).toEqual([]);
    expect(report.rewrittenSegments).toEqual(['00000001.smtp']);
    expect(report.newSegments).toEqual(['00000004.smtp']);
    expect(report.movedRecords).toBe(1);
    expect(report.reclaimedBytes).toBeGreaterThan(0);
    expect(s.get('m1')!.segment).toBe('00000004.smtp');
    expect(segmentNames(dir)).toEqual(['00000002.smtp', '00000003.smtp', '00000004.smtp']);
    await expectReadable(s, ['m1', 'm4', 'm7']);
    await s.close();
    const again = await open(dir, { segmentBytes });
    expect(again.recovery.damaged).toEqual([]);
    expect(again.get('m1')?.segment).toBe('00000004.smtp');
    expect(again.list().map((m) => m.id)).toEqual(['tail', 'm7', 'm6', 'm5', 'm4', 'm1']);
    await expectReadable(again, ['m1', 'm4', 'm5', 'm6', 'm7']);
    await again.close();
  });

  test('two copies left by a crash between rename and unlink: each id is listed once, the later copy wins', async () => {
    const dir = newDir();
    const layout = createLayout(dir);
    const s = await open(dir);
    for (let i = 0; i < 3; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    await s.close();
    fs.copyFileSync(layout.segmentPath(1), layout.segmentPath(7));
    const again = await open(dir);
    expect(again.list().map((m) => m.id)).toEqual(['m2', 'm1', 'm0']);
    expect(again.get('m1')?.segment).toBe('00000007.smtp');
    await again.commit(request('new', { timeMs: T0 + 9 }));
    expect(again.get('new')?.segment).toBe('00000007.smtp');
    const report = await again.compact();
    expect(report.removedSegments).toEqual(['00000001.smtp']);
    await again.close();
    const third = await open(dir);
    expect(third.list().map((m) => m.id)).toEqual(['new', 'm2', 'm1', 'm0']);
    await third.close();
  });

  test('a journal that is mostly obsolete is replaced by a snapshot with the same meaning', async () => {
    const dir = newDir();
    const layout = createLayout(dir);
    const s = await open(dir);
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const id of ids) await s.commit(request(id, { envelope: envelope('a@b.example', ['x@far.example']), localRecipients: [false] }));
    const pending: Promise<void>[] = [];
    for (let attempt = 1; attempt <= 150; attempt++) {
      for (const id of ids) {
        pending.push(s.setState(id, 0, { kind: 'deferred', attempts: attempt, nextAttemptMs: T0 + attempt, lastReply: reply(451, '4.4.1', 'try later') }));
      }
    }
    await Promise.all(pending);
    await s.delete(['m0']);
    const before = fs.statSync(layout.journalPath).size;
    expect(before).toBeGreaterThan(256 * 1024);
    const report = await s.compact();
    expect(report.journalRewritten).toBe(true);
    expect(fs.statSync(layout.journalPath).size).toBeLessThan(before / 50);
    await s.setState('m1', 0, { kind: 'delivered', atMs: T0 });
    await s.close();
    const again = await open(dir);
    expect(again.recovery.damaged).toEqual([]);
    expect(again.get('m0')).toBeUndefined();
    expect(again.get('m1')?.recipients[0].state.kind).toBe('delivered');
    expect(again.get('m2')?.recipients[0].state).toEqual({ kind: 'deferred', attempts: 150, nextAttemptMs: T0 + 150, lastReply: reply(451, '4.4.1', 'try later') });
    await again.close();
  });
});
