// A spool written before removals had journal records of their own: its journal says "deleted"
// (and once "local") in delivery records. fixtures/journal-v1 is such a spool, made by that
// writer: a reader's expunge, the UI's delete of a local copy, a whole message deleted, an
// operator's `queue delete` followed by a later state, held and bounced recipients, a read mark.
// It opens with the same meaning, and a rewrite of its journal says the same in today's records.
import { afterEach, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseStateLine } from '../../src/spool/delivery-state.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { memoryLog, removeDir, tempDir } from './fixtures/messages.ts';

const T0 = 1_700_000_000_000;
const FIXTURE = path.join(import.meta.dir, 'fixtures/journal-v1');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

function copyOfFixture(): string {
  const dir = tempDir();
  dirs.push(dir);
  fs.cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

const open = (dir: string) => openSpool({ dir, hostname: 'mx.test', now: () => T0 + 1000, log: memoryLog() });

const IDS = ['local2', 'mixed', 'gone', 'cancelled', 'held', 'bounced', 'read'];

/** What the fixture's writer showed before it closed, in today's names ('deleted' is 'removed'). */
function expectFixtureMeaning(s: Spool): void {
  const kinds = Object.fromEntries(IDS.map((id) => [id, s.get(id)?.recipients.map((r) => r.state.kind) ?? null]));
  expect(kinds).toEqual({
    local2: ['local', 'removed'],
    mixed: ['delivered', 'removed'],
    gone: null,
    // The operator's delete is final: the "pending" line written after it changes nothing.
    cancelled: ['removed', 'local'],
    held: ['held'],
    bounced: ['bounced', 'local'],
    read: ['local'],
  });
  expect(s.get('local2')?.recipients[1].state).toEqual({ kind: 'removed', atMs: T0 });
  expect(s.get('mixed')?.recipients[0].state).toEqual({ kind: 'delivered', atMs: T0 + 101, reply: { code: 250, enhanced: '2.0.0', lines: ['OK'] } });
  expect(s.list().map((m) => m.id)).toEqual(['read', 'bounced', 'held', 'cancelled', 'mixed', 'local2']);
  expect(s.queued().map((m) => m.id)).toEqual(['held']);
  expect(s.deliveries()).toEqual([]);
  expect(s.deliveryQueue.nextDueMs()).toBeNull();
  const ann = s.mailStore.list('ann@here.example', null).messages;
  expect(ann.map((m) => [m.id, m.flags.read, m.flags.tags])).toEqual([
    ['local2', false, []],
    ['read', true, ['Important']],
  ]);
  expect(s.mailStore.list('bob@here.example', null).messages).toEqual([]);
  expect(s.mailStore.list('me@here.example', null).messages.map((m) => m.id)).toEqual(['cancelled', 'bounced']);
}

test('old "deleted" and "local" lines parse as a removal and as nothing to apply', () => {
  const line = (json: string) => parseStateLine(frame(json));
  expect(line('{"id":"m","r":1,"s":{"kind":"deleted","atMs":5}}')).toEqual({ kind: 'removal', record: { id: 'm', rcpt: 1, atMs: 5 } });
  expect(line('{"id":"m","r":null,"s":{"kind":"deleted","atMs":5}}')).toEqual({ kind: 'removal', record: { id: 'm', rcpt: null, atMs: 5 } });
  expect(line('{"id":"m","r":0,"s":{"kind":"local"}}')).toEqual({ kind: 'local' });
  expect(line('{"id":"m","r":0,"s":{"kind":"deleted"}}').kind).toBe('bad');
  expect(line('{"id":"m","rm":2,"at":7}')).toEqual({ kind: 'removal', record: { id: 'm', rcpt: 2, atMs: 7 } });
  expect(line('{"id":"m","rm":-1,"at":7}').kind).toBe('bad');
});

function frame(json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  return Buffer.concat([Buffer.from(`${(Bun.hash.crc32(body) >>> 0).toString(16).padStart(8, '0')} `, 'latin1'), body]);
}

test('a spool with an old journal opens with the meaning it had, and takes new records beside the old', async () => {
  const dir = copyOfFixture();
  const s = await open(dir);
  expect(s.recovery.damaged).toEqual([]);
  expectFixtureMeaning(s);
  await s.mailStore.expunge('ann@here.example', ['read']);
  await s.close();
  const journal = fs.readFileSync(createLayout(dir).journalPath, 'latin1');
  expect(journal.trimEnd().split('\n').at(-1)).toMatch(/^[0-9a-f]{8} \{"id":"read","rm":0,"at":1700000001000\}$/);
  const again = await open(dir);
  expect(again.get('read')).toBeUndefined();
  expect(again.list().map((m) => m.id)).toEqual(['bounced', 'held', 'cancelled', 'mixed', 'local2']);
  await again.close();
});

test('a rewrite of an old journal says the same in removal records, with no "deleted" or "local" line left', async () => {
  const dir = copyOfFixture();
  const layout = createLayout(dir);
  // A damaged line makes start-up rewrite the journal from what it applied.
  fs.appendFileSync(layout.journalPath, '00000000 {"id":"damaged"}\n');
  const s = await open(dir);
  expect(s.recovery.damaged.map((d) => d.reason)).toEqual([expect.stringContaining('checksum mismatch')]);
  expectFixtureMeaning(s);
  await s.close();
  const lines = fs.readFileSync(layout.journalPath, 'utf8').trimEnd().split('\n');
  const json = lines.map((l) => JSON.parse(l.slice(9)) as Record<string, unknown>);
  expect(json.some((o) => JSON.stringify(o).includes('"deleted"') || JSON.stringify(o).includes('"local"'))).toBe(false);
  expect(json.filter((o) => 'rm' in o)).toEqual([
    { id: 'local2', rm: 1, at: T0 },
    { id: 'mixed', rm: 1, at: T0 },
    { id: 'gone', rm: null, at: T0 },
    { id: 'cancelled', rm: 0, at: T0 + 200 },
  ]);
  const again = await open(dir);
  expect(again.recovery.damaged).toEqual([]);
  expectFixtureMeaning(again);
  await again.close();
});
