// RFC 3501 §7.3.1, §7.4.1 and §6.4.8, RFC 2180 §4: one session's view of the selected mailbox.
import { describe, expect, test } from 'bun:test';
import { SelectedMailbox } from '../../../src/core/imap/selected-mailbox.ts';
import { parseSequenceSet, type SequenceSet } from '../../../src/core/imap/parser.ts';

const box = (...uids: number[]) => new SelectedMailbox(uids.map((uid) => ({ uid, flags: [] })));
const set = (text: string): SequenceSet => parseSequenceSet(text)!;

describe('untagged updates (RFC 3501 §7.4.1)', () => {
  test('an expunge made elsewhere keeps its number until EXPUNGE may be sent', () => {
    const m = box(10, 20, 30, 40);
    m.apply({ kind: 'expunged', uid: 20 });
    m.apply({ kind: 'expunged', uid: 40 });
    expect(m.updates(false)).toEqual([]);
    expect([m.exists, m.uidAt(2), m.isExpunged(2), m.isExpunged(1)]).toEqual([4, 20, true, false]);
    expect(m.updates(true)).toEqual(['* 4 EXPUNGE\r\n', '* 2 EXPUNGE\r\n']);
    expect([m.exists, m.uidAt(2), m.seqOf(30), m.seqOf(20)]).toEqual([2, 30, 2, null]);
  });

  test('RFC 3501 §7.3.1: EXISTS never goes down; new mail behind unannounced expunges counts them', () => {
    const m = box(1, 2);
    m.apply({ kind: 'expunged', uid: 1 });
    m.apply({ kind: 'appended', uid: 3, flags: [] });
    expect(m.updates(false)).toEqual(['* 3 EXISTS\r\n']);
    expect(m.updates(true)).toEqual(['* 1 EXPUNGE\r\n']);
    expect([m.exists, m.uidAt(1), m.uidAt(2)]).toEqual([2, 2, 3]);
  });

  test('a message appended and expunged before anyone was told goes without a word', () => {
    const m = box(1);
    m.apply({ kind: 'appended', uid: 2, flags: [] });
    m.apply({ kind: 'expunged', uid: 2 });
    expect(m.updates(true)).toEqual([]);
  });

  test('flags changed elsewhere come as FETCH with UID; unchanged, own or ghost ones do not', () => {
    const m = box(5, 6, 7);
    m.apply({ kind: 'flags', uid: 6, flags: ['\\Seen'] });
    m.apply({ kind: 'flags', uid: 5, flags: [] });
    m.apply({ kind: 'flags', uid: 7, flags: ['\\Flagged'] });
    m.storedHere(7, ['\\Flagged']);
    expect(m.updates(false)).toEqual(['* 2 FETCH (UID 6 FLAGS (\\Seen))\r\n']);
    m.apply({ kind: 'flags', uid: 6, flags: ['\\SEEN'] });
    m.apply({ kind: 'expunged', uid: 5 });
    m.apply({ kind: 'flags', uid: 5, flags: ['\\Deleted'] });
    expect(m.updates(true)).toEqual(['* 1 EXPUNGE\r\n']);
    expect(m.flagsAt(1)).toEqual(['\\Seen']);
  });
});

describe('finding a message by UID', () => {
  test('a long view: every UID, a missing one, and flags stored here and elsewhere', () => {
    const uids = Array.from({ length: 1000 }, (_, i) => 3 * i + 1);
    const m = box(...uids);
    expect(uids.every((uid, i) => m.seqOf(uid) === i + 1)).toBe(true);
    expect([m.seqOf(2), m.seqOf(0), m.seqOf(3000)]).toEqual([null, null, null]);
    m.storedHere(301, ['\\Seen']);
    m.apply({ kind: 'flags', uid: 2998, flags: ['\\Flagged'] });
    m.apply({ kind: 'flags', uid: 2, flags: ['\\Flagged'] });
    expect(m.updates(true)).toEqual(['* 1000 FETCH (UID 2998 FLAGS (\\Flagged))\r\n']);
    expect([m.flagsAt(101), m.flagsAt(1000)]).toEqual([['\\Seen'], ['\\Flagged']]);
  });

  test('UIDs a store gives out of order are still found', () => {
    const m = box(30, 10, 20);
    expect([m.seqOf(10), m.seqOf(20), m.seqOf(30)]).toEqual([2, 3, 1]);
    m.apply({ kind: 'expunged', uid: 10 });
    m.apply({ kind: 'appended', uid: 5, flags: [] });
    expect(m.updates(true)).toEqual(['* 2 EXPUNGE\r\n', '* 3 EXISTS\r\n']);
    expect([m.seqOf(30), m.seqOf(20), m.seqOf(5), m.seqOf(10)]).toEqual([1, 2, 3, null]);
  });
});

describe('sequence sets (RFC 3501 §6.4.8, §9)', () => {
  const m = box(3, 7, 9, 15);
  test.each([
    ['1:2', false, [1, 2]],
    ['*', false, [4]],
    ['3:*', false, [3, 4]],
    ['4:1', false, [1, 2, 3, 4]],
    ['7:9', true, [2, 3]],
    ['10:*', true, [4]],
    ['16:*', true, [4]],
    ['1:2', true, []],
    ['*', true, [4]],
  ])('%s (uid %p)', (text, byUid, seqs) => expect(m.resolve(set(text as string), byUid as boolean, null)).toEqual({ ok: true, seqs: seqs as number[] }));

  test('a message number beyond EXISTS is an error; an empty mailbox has none', () => {
    expect(m.resolve(set('5'), false, null)).toEqual({ ok: false, why: 'message numbers go up to 4' });
    expect(box().resolve(set('*'), false, null)).toEqual({ ok: false, why: 'the mailbox is empty' });
    expect(box().resolve(set('1:*'), true, null)).toEqual({ ok: true, seqs: [] });
  });

  test('"$" is the saved UIDs (RFC 5182 §2.1)', () => {
    expect(m.resolve(set('$'), false, new Set([9, 3, 100]))).toEqual({ ok: true, seqs: [1, 3] });
    expect(m.resolve(set('$'), true, null)).toEqual({ ok: true, seqs: [] });
  });
});
