/**
 * @module The characters JavaScript's `\s` matches and `String.prototype.trim` strips (ECMA-262
 * WhiteSpace and LineTerminator): as a test on one UTF-16 code unit, for loops that read text a
 * code unit at a time, and as a regex class without the space, for regexes that leave a lone
 * space alone. The two list the same characters; keep them together.
 */

/** The body of a regex character class: every character `\s` matches but the space. */
export const WHITESPACE_BUT_SPACE_CLASS = '\\t-\\r\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff';

/** Whether `code` (a UTF-16 code unit) is one `\s` matches. */
export function isWhitespace(code: number): boolean {
  if (code < 0x80) return code === 32 || (code >= 9 && code <= 13);
  return (
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff
  );
}
