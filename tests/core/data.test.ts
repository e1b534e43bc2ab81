import { describe, expect, test } from 'bun:test';
import { DataReceiver, dotStuff, dotUnstuff } from '../../src/core/data.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Feeds `wire` in pieces cut at the given offsets; returns the result and the bytes left over. */
function receive(wire: Uint8Array, cuts: number[], max = 1 << 20) {
  const r = new DataReceiver(max, 1000);
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < wire.length).sort((a, b) => a - b), wire.length];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const piece = wire.subarray(bounds[k], bounds[k + 1]);
    const { consumed, done } = r.push(piece);
    if (done) return { result: r.result(), rest: dec(piece.subarray(consumed)) + dec(wire.subarray(bounds[k + 1])) };
  }
  return { result: null, rest: '' };
}

describe('DataReceiver', () => {
  const cases: [string, string, string | null, string][] = [
    // name, wire, stuffed content (null = violation), rest
    ['empty message', '.\r\nNOOP\r\n', '', 'NOOP\r\n'],
    ['one line', 'a\r\n.\r\n', 'a\r\n', ''],
    ['stuffed dots kept', '..a\r\n...\r\n.\r\nQUIT\r\n', '..a\r\n...\r\n', 'QUIT\r\n'],
    ['998-octet line', `${'x'.repeat(998)}\r\n.\r\n`, `${'x'.repeat(998)}\r\n`, ''],
    ['dot then text is not the end', '.x\r\n.\r\n', '.x\r\n', ''],
  ];
  for (const [name, wire, content, rest] of cases) {
    test(`${name}: the same at every split point`, () => {
      const bytes = enc(wire);
      for (let cut = 0; cut <= bytes.length; cut++) {
        for (const second of [cut + 1, cut + 3]) {
          const { result, rest: left } = receive(bytes, [cut, second]);
          expect(result?.violation ?? null).toBeNull();
          expect(dec(result!.stuffed)).toBe(content!);
          expect(left).toBe(rest);
        }
      }
    });
  }

  test('RFC 5321 §4.5.3.1.6: a 1001-octet line is refused, a 1000-octet one is not', () => {
    expect(receive(enc(`${'x'.repeat(999)}\r\n.\r\n`), []).result!.violation).toBe('line-too-long');
    expect(receive(enc(`${'x'.repeat(998)}\r\n.\r\n`), []).result!.violation).toBeNull();
  });

  test('bare LF and bare CR are violations at every split point, and only CRLF.CRLF ends', () => {
    for (const wire of ['a\nb\r\n.\r\nrest', 'a\rb\r\n.\r\nrest', 'a\r\n.\n.\r\n.\r\nrest', 'a\r\n.\r.\r\n.\r\nrest', 'a\r\r\n.\r\nrest']) {
      const bytes = enc(wire);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const { result, rest } = receive(bytes, [cut]);
        expect(result!.violation).toBe('bare-line-ending');
        expect(rest).toBe('rest');
      }
    }
  });

  test('SIZE counts unstuffed octets; too big is reported after the end', () => {
    const { result } = receive(enc('..abc\r\n.\r\n'), [], 6);
    expect(result!.size).toBe(6);
    expect(result!.violation).toBeNull();
    const big = receive(enc('abcdef\r\n.\r\nNOOP\r\n'), [3], 5);
    expect(big.result!.violation).toBe('too-big');
    expect(big.rest).toBe('NOOP\r\n');
  });
});

describe('dot-stuffing', () => {
  test('dotStuff converts every line ending to CRLF and doubles leading dots', () => {
    expect(dec(dotStuff(enc('a\n.b\r\n..c\rd')))).toBe('a\r\n..b\r\n...c\r\nd\r\n');
    expect(dec(dotStuff(enc('')))).toBe('');
    expect(dec(dotStuff(enc('.')))).toBe('..\r\n');
  });

  test('dotUnstuff inverts dotStuff for CRLF text', () => {
    const text = '.\r\n..\r\nplain\r\n.leading\r\n\r\n';
    expect(dec(dotUnstuff(dotStuff(enc(text))))).toBe(text);
  });
});
