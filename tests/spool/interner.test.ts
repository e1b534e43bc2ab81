import { describe, expect, test } from 'bun:test';
import { LOCAL_COPY } from '../../src/spool/copy-state.ts';
import { PENDING } from '../../src/spool/delivery-state.ts';
import { Interner } from '../../src/spool/interner.ts';
import { envelope } from './fixtures/messages.ts';

describe('interner', () => {
  test('equal envelopes come back as one frozen object equal to each', () => {
    const interner = new Interner();
    const a = envelope('Sender@Client.Example', ['x@one.example', 'y@two.example']);
    const b = envelope('Sender@Client.Example', ['x@one.example', 'y@two.example']);
    const shared = interner.envelope(a);
    expect(shared).toEqual(a);
    expect(interner.envelope(b)).toBe(shared);
    expect(Object.isFrozen(shared)).toBe(true);
    expect(Object.isFrozen(shared.recipients[0])).toBe(true);
    expect(Object.isFrozen(shared.recipients[0].mailbox)).toBe(true);
  });

  test('envelopes that differ in any field stay apart; their equal strings are shared', () => {
    const interner = new Interner();
    const base = envelope('sender@client.example', ['x@one.example']);
    const variants = [
      base,
      envelope('sender@client.example', ['x@two.example']),
      { ...base, authUser: 'alice' },
      { ...base, declaredSize: 10 },
      { ...base, recipients: [{ ...base.recipients[0], local: false }] },
      { ...base, recipients: [{ ...base.recipients[0], params: [{ name: 'NOTIFY', value: 'NEVER' }] }] },
      { ...base, mailParams: [] },
    ];
    const shared = variants.map((v) => interner.envelope(v));
    expect(new Set(shared).size).toBe(variants.length);
    shared.forEach((s, i) => expect(s).toEqual(variants[i]));
    expect(shared[1].sender).toEqual(shared[0].sender);
  });

  test('flags and their initial states are shared between equal flags', () => {
    const interner = new Interner();
    const one = interner.flags([true, false]);
    expect(one).toEqual({ local: [true, false], states: [LOCAL_COPY, PENDING] });
    expect(interner.flags([true, false])).toBe(one);
    expect(interner.flags([false, true]).states).toEqual([PENDING, LOCAL_COPY]);
    expect(Object.isFrozen(one.states)).toBe(true);
  });

  test('equal states come back as one array of frozen states (their replies too) equal to them', () => {
    const interner = new Interner();
    const reply = (text: string) => ({ code: 421, enhanced: '4.3.2', lines: [text] });
    const deferred = (at: number, text = 'down') => ({ kind: 'deferred', attempts: 1, nextAttemptMs: at, lastReply: reply(text) }) as const;
    const one = interner.states([deferred(1000)]);
    expect(one).toEqual([deferred(1000)]);
    expect(interner.states([deferred(1000)])).toBe(one);
    expect(Object.isFrozen(one[0])).toBe(true);
    expect(Object.isFrozen(one[0].kind === 'deferred' && one[0].lastReply)).toBe(true);
    const two = interner.states([PENDING, deferred(1000)]);
    expect(two).toEqual([PENDING, deferred(1000)]);
    expect(two[0]).toBe(PENDING);
    expect(two[1]).toBe(one[0]);
    for (const other of [[deferred(2000)], [deferred(1000, 'busy')], [{ ...deferred(1000), warned: true } as const], [deferred(1000), PENDING]]) {
      const shared = interner.states(other);
      expect(shared).toEqual(other);
      expect(shared).not.toBe(one);
    }
  });

  test("a reply's lines cannot make two different states arrays one (its lines come from the remote server)", () => {
    const interner = new Interner();
    const reply = (...lines: string[]) => ({ code: 450, enhanced: '4.2.0', lines });
    const one = interner.states([{ kind: 'deferred', attempts: 1, nextAttemptMs: 5, lastReply: reply('busy', 'pending') }]);
    const two = interner.states([{ kind: 'deferred', attempts: 1, nextAttemptMs: 5, lastReply: reply('busy') }, PENDING]);
    expect(one).toHaveLength(1);
    expect(two).toHaveLength(2);
    expect(two[1]).toBe(PENDING);
  });
});
