import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { envelope, memoryLog, removeDir, request, tempDir } from './fixtures/messages.ts';

const T0 = 1_700_000_000_000;
let dir = '';
let spool: Spool;

const messages: [id: string, minute: number, sender: string | null, recipients: string[]][] = [
  ['a', 0, 'alice@one.example', ['bob@two.example']],
  ['b', 1, 'Alice@One.Example', ['carol@two.example', 'bob@two.example']],
  ['c', 2, 'dave@three.example', ['carol@two.example']],
  ['d', 3, null, ['bob@two.example']],
  ['e', 3, 'alice@one.example', ['erin@four.example']],
  ['f', 5, 'dave@three.example', ['BOB@two.example']],
];

beforeAll(async () => {
  dir = tempDir();
  const s = await openSpool({ dir, hostname: 'mx.test', now: () => T0, log: memoryLog() });
  // Out of time order on purpose: the index sorts by message time, not by arrival.
  for (const [id, minute, sender, recipients] of [...messages].reverse()) {
    await s.commit(request(id, { timeMs: T0 + minute * 60_000, envelope: envelope(sender, recipients) }));
  }
  await s.close();
  spool = await openSpool({ dir, hostname: 'mx.test', now: () => T0, log: memoryLog() });
});

afterAll(async () => {
  await spool.close();
  removeDir(dir);
});

const ids = (q?: Parameters<Spool['list']>[0]) => spool.list(q).map((m) => m.id).join('');

describe('index', () => {
  test('by id', () => {
    expect(spool.get('c')?.recipients.map((r) => r.address)).toEqual(['carol@two.example']);
    expect(spool.get('zz')).toBeUndefined();
  });

  test('everything, newest first; equal times in order of arrival, latest first', () => {
    // d and e share a minute; e was committed before d.
    expect(ids()).toBe('fdecba');
    expect(ids({ limit: 2 })).toBe('fd');
  });

  test('by recipient, without regard to case or angle brackets', () => {
    expect(ids({ recipient: 'bob@two.example' })).toBe('fdba');
    expect(ids({ recipient: '<Bob@Two.Example>' })).toBe('fdba');
    expect(ids({ recipient: 'nobody@two.example' })).toBe('');
  });

  test('by sender, the null sender as <>', () => {
    expect(ids({ sender: 'alice@one.example' })).toBe('eba');
    expect(ids({ sender: '<>' })).toBe('d');
  });

  test('by time: since inclusive, until exclusive', () => {
    expect(ids({ since: T0 + 60_000 })).toBe('fdecb');
    expect(ids({ until: T0 + 3 * 60_000 })).toBe('cba');
    expect(ids({ since: T0 + 3 * 60_000, until: T0 + 4 * 60_000 })).toBe('de');
  });

  test('combined', () => {
    expect(ids({ sender: 'alice@one.example', recipient: 'bob@two.example' })).toBe('ba');
    expect(ids({ recipient: 'bob@two.example', since: T0 + 60_000, limit: 2 })).toBe('fd');
  });

  test('a recipient whose copy is removed no longer finds it; the others still do', async () => {
    await spool.mailStore.expunge('bob@two.example', ['b']);
    expect(ids({ recipient: 'bob@two.example' })).toBe('fda');
    expect(ids({ recipient: 'carol@two.example' })).toBe('cb');
    // Removal is final, and a copy held locally has no delivery state to set.
    await expect(spool.setState('b', 1, { kind: 'pending' })).rejects.toThrow(/held locally/);
    expect(spool.get('b')?.recipients[1].state.kind).toBe('removed');
    await spool.delete(['b']);
    expect(ids()).toBe('fdeca');
    expect(ids({ recipient: 'carol@two.example' })).toBe('c');
  });
});
