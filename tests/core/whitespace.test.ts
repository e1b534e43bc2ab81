// The two forms of `\s` in src/core/whitespace.ts against the regex engine's own, on every code unit.
import { expect, test } from 'bun:test';
import { isWhitespace, WHITESPACE_BUT_SPACE_CLASS } from '../../src/core/whitespace.ts';

test('isWhitespace and the class without the space list exactly what \\s matches', () => {
  const butSpace = new RegExp(`^[${WHITESPACE_BUT_SPACE_CLASS}]$`);
  const differing: number[] = [];
  for (let code = 0; code <= 0xffff; code++) {
    const c = String.fromCharCode(code);
    const s = /^\s$/.test(c);
    if (isWhitespace(code) !== s || butSpace.test(c) !== (s && code !== 32)) differing.push(code);
  }
  expect(differing).toEqual([]);
});
