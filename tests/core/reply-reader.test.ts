// Reply framing alone (core/reply-reader.ts): lines and replies from bytes split anywhere,
// multi-line replies (RFC 5321 §4.2.1), bare LF tolerated, and each kind of broken framing.
import { describe, expect, test } from 'bun:test';
import { MAX_REPLY_LINE_BYTES, ReplyReader, type ReplyReading } from '../../src/core/reply-reader.ts';

const ENCODER = new TextEncoder();

function readAll(reader: ReplyReader): ReplyReading[] {
  const out: ReplyReading[] = [];
  for (let r = reader.next(); r !== null; r = reader.next()) out.push(r);
  return out;
}

/** Feeds `text` in pieces of `size` bytes (0: whole) and collects every reading. */
function feed(text: string, size = 0): ReplyReading[] {
  const reader = new ReplyReader();
  const bytes = ENCODER.encode(text);
  const out: ReplyReading[] = [];
  const step = size === 0 ? bytes.length : size;
  for (let at = 0; at < bytes.length; at += step) {
    reader.push(bytes.subarray(at, at + step));
    out.push(...readAll(reader));
  }
  return out;
}

const DIALOGUE = '220 mx ESMTP\r\n250-mx greets you\r\n250-PIPELINING\r\n250 SIZE 1000\r\n550 5.1.1 <x@y>: no such user\n';

describe('framing', () => {
  test('lines, then each reply after its last line; the same however the bytes are split', () => {
    const whole = feed(DIALOGUE);
    expect(whole.map((r) => r.kind)).toEqual(['line', 'reply', 'line', 'line', 'line', 'reply', 'line', 'reply']);
    const replies = whole.flatMap((r) => (r.kind === 'reply' ? [r.reply] : []));
    expect(replies).toEqual([
      { code: 220, enhanced: undefined, lines: ['mx ESMTP'] },
      { code: 250, enhanced: undefined, lines: ['mx greets you', 'PIPELINING', 'SIZE 1000'] },
      { code: 550, enhanced: '5.1.1', lines: ['<x@y>: no such user'] },
    ]);
    for (const size of [1, 2, 3, 7, 13]) expect(feed(DIALOGUE, size)).toEqual(whole);
  });

  test('UTF-8 split across pushes is decoded whole', () => {
    expect(feed('250 Grüße\r\n', 1).find((r) => r.kind === 'line')).toEqual({ kind: 'line', text: '250 Grüße' });
  });

  test('a malformed line, and a multi-line reply that changes its code, are violations; the reader then stops', () => {
    const malformed = feed('2x0 hello\r\n250 ok\r\n');
    expect(malformed).toEqual([{ kind: 'line', text: '2x0 hello' }, { kind: 'violation', what: 'a malformed reply line "2x0 hello"' }]);
    const changed = feed('250-one\r\n251 two\r\n');
    expect(changed.map((r) => r.kind)).toEqual(['line', 'line', 'violation']);
  });

  test('a line that never ends is a violation past the cap', () => {
    const reader = new ReplyReader();
    reader.push(ENCODER.encode(`250 ${'x'.repeat(MAX_REPLY_LINE_BYTES)}`));
    expect(readAll(reader)).toEqual([{ kind: 'violation', what: `a reply line longer than ${MAX_REPLY_LINE_BYTES} bytes` }]);
  });

  test('the session can stop between replies and throw the rest away (RFC 3207 §4.2)', () => {
    const reader = new ReplyReader();
    reader.push(ENCODER.encode('220 2.0.0 go ahead\r\n250 injected\r\n'));
    expect(reader.next()).toEqual({ kind: 'line', text: '220 2.0.0 go ahead' });
    expect(reader.next()?.kind).toBe('reply');
    expect(reader.discard()).toBe('250 injected\r\n'.length);
    expect(reader.next()).toBeNull();
  });
});
