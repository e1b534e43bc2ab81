// Login-state records (spool/login-state.ts): the journal JSON round-trips, a bad record is
// refused, the last record of a (login, message) wins, and the next UID never goes back, also
// through a snapshot that leaves out messages gone from the spool (RFC 3501 §2.3.1.1).
import { expect, test } from 'bun:test';
import { formatLoginRecord, parseStateLine } from '../../src/spool/delivery-state.ts';
import { LoginStates, loginRecordJson, parseLoginRecord, type LoginRecord } from '../../src/spool/login-state.ts';

const box: LoginRecord = { kind: 'mailbox', login: 'bob@x.example', uidValidity: 1_700_000_000, uidNext: 1 };
const m = (id: string, uid: number, flags: string[] = [], expunged = false): LoginRecord => ({ kind: 'message', login: 'bob@x.example', id, uid, flags, expunged });

test('records round-trip through a framed journal line; other lines are not login records', () => {
  for (const r of [box, m('a', 1, ['\\Seen', '$Label']), m('b', 2, [], true)]) {
    const line = formatLoginRecord(r);
    expect(parseStateLine(line.subarray(0, line.length - 1))).toEqual({ kind: 'login', record: r });
  }
  expect(loginRecordJson(m('a', 1))).toBe('{"l":"bob@x.example","id":"a","u":1,"f":[]}');
  for (const bad of [{ l: '' }, { l: 'x', v: 0, n: 1 }, { l: 'x', id: 'a', u: 0, f: [] }, { l: 'x', id: 'a', u: 1, f: [1] }, { l: 'x', id: 7, u: 1, f: [] }]) {
    expect(parseLoginRecord(bad)).toBeNull();
  }
});

test('the last record wins; UIDs only grow; a snapshot keeps the next UID past messages that are gone', () => {
  const states = new LoginStates();
  for (const r of [box, m('a', 1), m('b', 2), m('a', 1, ['\\Seen']), m('b', 2, [], true)]) states.apply(r);
  const s = states.mailbox('bob@x.example')!;
  expect(s.message('a')).toEqual({ uid: 1, flags: ['\\Seen'], expunged: false });
  expect(s.message('b')!.expunged).toBe(true);
  expect(s.idOf(2)).toBe('b');
  expect(s.uidNext).toBe(3);
  expect(states.loginsHolding('a')).toEqual(['bob@x.example']);
  const snapshot = states.snapshot((id) => id === 'a');
  expect(snapshot).toEqual([{ ...box, uidNext: 3 }, m('a', 1, ['\\Seen'])]);
  const rebuilt = new LoginStates();
  for (const r of snapshot) rebuilt.apply(r);
  expect(rebuilt.mailbox('bob@x.example')!.uidNext).toBe(3);
  expect(rebuilt.mailbox('bob@x.example')!.message('b')).toBeUndefined();
  states.prune((id) => id === 'a');
  expect(states.size).toBe(2);
  expect(states.mailbox('carol@x.example')).toBeUndefined();
});
