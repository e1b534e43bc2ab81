// RFC 3501 §4 and §9: how response data is written: quoted or literal strings, NIL, astrings,
// flag lists and the INTERNALDATE date-time.
import { describe, expect, test } from 'bun:test';
import { civilFromDays, daysFromCivil } from '../../../src/core/calendar.ts';
import { ResponseBuilder, formatInternalDate, isValidFlag } from '../../../src/core/imap/format.ts';

const text = (b: ResponseBuilder) => b.build().map((c) => (typeof c === 'string' ? c : new TextDecoder().decode(c))).join('');

describe('strings (RFC 3501 §4.3)', () => {
  test.each([
    ['plain', '"plain"'],
    ['', '""'],
    ['say "hi" \\o/', '"say \\"hi\\" \\\\o/"'],
    ['two\r\nlines', '{10}\r\ntwo\r\nlines'],
    ['grüße', '{7}\r\ngrüße'],
    ['nul\u0000', '{4}\r\nnul\u0000'],
  ])('%j', (value, want) => expect(text(new ResponseBuilder().string(value))).toBe(want));

  test('a long string goes out as a literal', () => {
    expect(text(new ResponseBuilder().string('x'.repeat(2000))).startsWith('{2000}\r\n')).toBe(true);
  });

  test('literal bytes are passed through as the same chunk, not copied into text', () => {
    const body = new Uint8Array([0xff, 0, 13, 10]);
    const chunks = new ResponseBuilder().raw('* 1 FETCH (BODY[] ').literal(body).raw(')\r\n').build();
    expect(chunks.length).toBe(3);
    expect(chunks[0]).toBe('* 1 FETCH (BODY[] {4}\r\n');
    expect(chunks[1]).toBe(body);
    expect(chunks[2]).toBe(')\r\n');
  });

  test('RFC 3501 §4.5: nstring is NIL or a string; astring is an atom when it can be', () => {
    expect(text(new ResponseBuilder().nstring(null).raw(' ').nstring('NIL').raw(' ').astring('INBOX').raw(' ').astring('NIL').raw(' ').astring('a b').raw(' ').astring('x*'))).toBe('NIL "NIL" INBOX "NIL" "a b" "x*"');
  });

  test('RFC 3501 §9: flag lists', () => {
    expect(text(new ResponseBuilder().flagList(['\\Seen', '$Label']).raw(' ').flagList([]))).toBe('(\\Seen $Label) ()');
  });

  test('RFC 3501 §2.3.2: settable flags are the system flags and atoms', () => {
    expect(['\\Seen', '\\deleted', '$Label', 'work'].map(isValidFlag)).toEqual([true, true, true, true]);
    expect(['\\Recent', '\\Foo', 'a b', 'x(', '', '\\'].map(isValidFlag)).toEqual([false, false, false, false, false, false]);
  });
});

describe('dates without a Date object', () => {
  test('day numbers round-trip across eras and leap days', () => {
    for (const [y, m, d] of [[1970, 1, 1], [2000, 2, 29], [1900, 3, 1], [2026, 12, 31], [1600, 1, 1]]) {
      expect(civilFromDays(daysFromCivil(y, m, d))).toEqual({ year: y, month: m, day: d });
    }
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(daysFromCivil(2026, 12, 1)).toBe(20788);
  });
  test('RFC 3501 §9 date-time, with a space-padded day and a zone', () => {
    expect(formatInternalDate(0)).toBe('" 1-Jan-1970 00:00:00 +0000"');
    expect(formatInternalDate(1_796_168_480_000)).toBe('" 1-Dec-2026 23:41:20 +0000"');
    expect(formatInternalDate(1_796_168_480_000, 60)).toBe('" 2-Dec-2026 00:41:20 +0100"');
    expect(formatInternalDate(1_796_168_480_000, -330)).toBe('" 1-Dec-2026 18:11:20 -0530"');
  });
});
