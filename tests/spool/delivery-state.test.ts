// State journal lines: records written together are the bytes of each record's own line, and
// each reads back with its checksum.
import { expect, test } from 'bun:test';
import { formatStateRecord, formatStateRecords, parseStateLine, type StateRecord } from '../../src/spool/delivery-state.ts';

const records: StateRecord[] = [
  { id: '0mj8abcd0000001', rcpt: 0, state: { kind: 'delivered', atMs: 1_764_684_000_000, reply: { code: 250, enhanced: '2.0.0', lines: ['Ok: queued as 4F2A'] } } },
  { id: '0mj8abcd0000002', rcpt: 1, state: { kind: 'deferred', attempts: 2, nextAttemptMs: 1_764_684_060_000, lastReply: { code: 451, enhanced: '4.7.1', lines: ['Grüße aus Köln', '日本語 😀'] }, warned: true } },
  { id: '0mj8abcd0000003', rcpt: null, state: { kind: 'bounced', atMs: 1_764_684_000_001, reply: { code: 550, lines: ['lone \ud800 surrogate'] } } },
  { id: '0mj8abcd0000004', rcpt: 2, state: { kind: 'pending' } },
];

test('formatStateRecords gives the lines formatStateRecord gives one by one', () => {
  const together = formatStateRecords(records);
  expect(together.equals(Buffer.concat(records.map(formatStateRecord)))).toBe(true);
  const lines = together.toString('utf8').split('\n');
  expect(lines.pop()).toBe('');
  expect(lines.length).toBe(records.length);
  expect(lines.map((line) => parseStateLine(Buffer.from(line, 'utf8')))).toEqual(records.map((record) => ({ kind: 'record', record: JSON.parse(JSON.stringify(record)) })));
  expect(formatStateRecords([]).length).toBe(0);
});
