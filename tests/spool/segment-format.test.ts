import { describe, expect, test } from 'bun:test';
import { dotStuff } from '../../src/core/data.ts';
import {
  findNextRecord,
  formatRecord,
  formatSegmentHeader,
  parseRecordAt,
  parseRecordSession,
  parseSegmentHeader,
} from '../../src/spool/segment-format.ts';
import { envelope } from './fixtures/messages.ts';
import { checkUserName } from '../../src/auth/users.ts';

const body = dotStuff(Buffer.from('Subject: t\r\n\r\n.dot\r\nx\r\n'));

function record(id: string, local: boolean[], authUser: string | null = null): Buffer {
  const env = { ...envelope('a@b.example', local.map((_, i) => `r${i}@c.example`)), authUser };
  return formatRecord({ id, timeMs: 1234, envelope: env, stuffed: body, local });
}

describe('segment format', () => {
  test('the session fields (client, helo, tls) follow auth in the record line, percent-encoded and checksummed; a record without them still reads', () => {
    const env = { ...envelope('a@b.example', ['r@c.example']), authUser: 'ann smith' };
    const session = { clientAddress: '::1', heloName: 'client "one".test', tls: 'TLSv1.3' };
    const rec = formatRecord({ id: 'sess1', timeMs: 1234, envelope: env, stuffed: body, local: [true], session });
    const line = rec.toString('latin1', 0, rec.indexOf('\n') + 1);
    expect(line).toMatch(/^NOOP "mailbox id=sess1 t=1234 len=\d+ local=\* auth=ann%20smith client=%3A%3A1 helo=client%20%22one%22.test tls=TLSv1.3 crc=[0-9a-f]{8}"\r\n$/);
    expect(parseRecordSession(line)).toEqual({ id: 'sess1', clientAddress: '::1', heloName: 'client "one".test', tls: 'TLSv1.3' });
    const scan = parseRecordAt(rec, 0);
    expect(scan.kind === 'record' && scan.record.envelope.authUser).toBe('ann smith');
    // A flipped byte in a session field fails the checksum like any other.
    const bad = Buffer.from(rec);
    bad[line.indexOf('helo=') + 5] ^= 1;
    expect(parseRecordAt(bad, 0).kind).toBe('bad');
    // Clear sessions leave tls out; records from before these fields have none of them.
    const clear = formatRecord({ id: 'sess2', timeMs: 1, envelope: env, stuffed: body, local: [true], session: { ...session, tls: null } });
    expect(parseRecordSession(clear.toString('latin1', 0, clear.indexOf('\n') + 1))?.tls).toBeNull();
    const old = record('old1', [true]);
    expect(parseRecordSession(old.toString('latin1', 0, old.indexOf('\n') + 1))).toEqual({ id: 'old1', clientAddress: null, heloName: null, tls: null });
    expect(parseRecordAt(old, 0).kind).toBe('record');
  });

  test('a record reads as NOOP, MAIL, RCPT, DATA, the stuffed message and "."', () => {
    const text = record('abc', [true]).toString('latin1');
    const lines = text.split('\r\n');
    expect(lines[0]).toMatch(/^NOOP "mailbox id=abc t=1234 len=\d+ local=\* crc=[0-9a-f]{8}"$/);
    expect(lines.slice(1)).toEqual(['MAIL FROM:<a@b.example> BODY=8BITMIME', 'RCPT TO:<r0@c.example>', 'DATA', 'Subject: t', '', '..dot', 'x', '.', '']);
    const len = Number(/len=(\d+)/.exec(lines[0])![1]);
    expect(len).toBe(Buffer.byteLength(text) - lines[0].length - 2);
  });

  test('parse is the inverse of format: envelope, local flags, auth identity, body position', () => {
    const auth = 'user name "quoted"@example.org';
    const bytes = Buffer.concat([Buffer.from('EHLO h\r\n'), record('x.1-_', [false, true, false, false, true], auth)]);
    expect(parseSegmentHeader(bytes)).toBe(8);
    const scan = parseRecordAt(bytes, 8);
    if (scan.kind !== 'record') throw new Error(`not a record: ${JSON.stringify(scan)}`);
    const r = scan.record;
    expect(r.id).toBe('x.1-_');
    expect(r.timeMs).toBe(1234);
    expect(r.local).toEqual([false, true, false, false, true]);
    expect(r.envelope.recipients.map((x) => x.local)).toEqual([...r.local]);
    expect(r.envelope.authUser).toBe(auth);
    expect(r.envelope.sender).toEqual({ local: 'a', domain: 'b.example' });
    expect(r.envelope.body).toBe('8BITMIME');
    expect(bytes.subarray(r.bodyOffset, r.bodyOffset + r.bodyBytes).equals(Buffer.from(body))).toBe(true);
    expect(r.offset + r.bytes).toBe(bytes.length);
    expect(bytes.toString('latin1', 8, 120)).toContain('auth=user%20name%20%22quoted%22%40example.org');
  });

  test('every user name AUTH can accept reads back: 255 octets of UTF-8 with 1,000 mixed local flags', () => {
    for (const name of ['a'.repeat(255), '用'.repeat(85), '\u{1F600}'.repeat(63) + 'abc']) {
      expect(checkUserName(name)).toBeNull();
      const local = Array.from({ length: 1000 }, (_, i) => i % 3 === 0);
      const scan = parseRecordAt(record('long', local, name), 0);
      expect(scan.kind).toBe('record');
      if (scan.kind === 'record') expect(scan.record.envelope.authUser).toBe(name);
    }
    expect(checkUserName('用'.repeat(86))).not.toBeNull();
  });

  test('the checksum covers the NOOP line as well as the rest', () => {
    const good = record('abc', [true, false]);
    expect(parseRecordAt(good, 0).kind).toBe('record');
    // "local=1" → "local=3": still well-formed, so only the checksum can tell.
    const text = good.toString('latin1');
    const at = text.indexOf('local=') + 6;
    const flipped = Buffer.from(good);
    flipped[at] = '3'.charCodeAt(0);
    const scan = parseRecordAt(flipped, 0);
    expect(scan.kind).toBe('bad');
    if (scan.kind === 'bad') {
      expect(scan.reason).toContain('checksum mismatch');
      expect(scan.end).toBe(flipped.length);
    }
  });

  test('a short record is "short"; resync finds the next good record after damage', () => {
    const a = record('a', [true]);
    const b = record('b', [true]);
    expect(parseRecordAt(a.subarray(0, a.length - 1), 0).kind).toBe('short');
    expect(parseRecordAt(a.subarray(0, 10), 0).kind).toBe('short');
    const both = Buffer.concat([a, b]);
    both[5] = 0x00;
    expect(parseRecordAt(both, 0).kind).toBe('bad');
    expect(findNextRecord(both, 1)).toBe(a.length);
    // A marker inside a message body is not a record: its checksum cannot match.
    const fake = Buffer.concat([Buffer.from('NOOP "mailbox id=z t=1 len=5 crc=00000000"\r\nhello'), b]);
    expect(findNextRecord(fake, 0)).toBe(fake.length - b.length);
  });

  test('writer bugs are refused', () => {
    const env = envelope('a@b.example', ['c@d.example']);
    const ok = { id: 'i', timeMs: 1, envelope: env, stuffed: body, local: [true] };
    expect(() => formatRecord({ ...ok, id: 'has space' })).toThrow(/unsafe/);
    expect(() => formatRecord({ ...ok, id: 'x'.repeat(65) })).toThrow(/unsafe/);
    expect(() => formatRecord({ ...ok, local: [] })).toThrow(/localRecipients/);
    expect(() => formatRecord({ ...ok, stuffed: Buffer.from('.\r\n') })).toThrow(/end-of-data/);
    expect(() => formatRecord({ ...ok, stuffed: Buffer.from('a\r\nb') })).toThrow(/CRLF/);
  });

  test('the EHLO line takes a sanitised host name', () => {
    expect(Buffer.from(formatSegmentHeader('mx.example')).toString()).toBe('EHLO mx.example\r\n');
    expect(Buffer.from(formatSegmentHeader('bad host\r\n')).toString()).toBe('EHLO badhost\r\n');
    expect(parseSegmentHeader(Buffer.from('HELO x\r\n'))).toBeNull();
  });

  test('with an envelope cache, a repeated envelope is parsed once; local flags and AUTH keep them apart', () => {
    const cache = new Map();
    const envelopeOf = (bytes: Buffer) => {
      const scan = parseRecordAt(bytes, 0, cache);
      if (scan.kind !== 'record') throw new Error('not a record');
      return scan.record.envelope;
    };
    const a = envelopeOf(record('m1', [false, true]));
    expect(envelopeOf(record('m2', [false, true]))).toBe(a);
    expect(envelopeOf(record('m3', [true, true]))).not.toBe(a);
    const authed = envelopeOf(record('m4', [false, true], 'alice'));
    expect(authed).not.toBe(a);
    expect(authed.authUser).toBe('alice');
    expect(cache.size).toBe(3);
    const fresh = parseRecordAt(record('m5', [false, true]), 0);
    expect(fresh.kind === 'record' && fresh.record.envelope).toEqual(envelopeOf(record('m5', [false, true])));
  });
});
