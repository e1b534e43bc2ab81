// RFC 2047 encoded-words decoded for IMAP SEARCH (RFC 3501 §6.4.4 matches decoded text).
import { expect, test } from 'bun:test';
import { decodeEncodedWords } from '../../src/core/encoded-words.ts';

test.each([
  ['plain text', 'plain text'],
  ['=?utf-8?q?caf=C3=A9_cr=C3=A8me?=', 'café crème'],
  ['=?UTF-8?B?w6l0w6k=?=', 'été'],
  // RFC 2047 §6.2: space between adjacent encoded-words goes; around them it stays.
  ['Re: =?utf-8?q?caf=C3=A9?=  =?utf-8?b?IGNyw6htZQ==?= !', 'Re: café crème !'],
  ['=?iso-8859-1?q?na=EFve?=', 'naïve'],
  ['=?utf-8*en?q?hi?=', 'hi'],
  ['=?x-unknown?q?abc?=', '=?x-unknown?q?abc?='],
  ['=?utf-8?b?***?=', '=?utf-8?b?***?='],
])('%p decodes to %p', (raw, decoded) => {
  expect(decodeEncodedWords(raw)).toBe(decoded);
});
