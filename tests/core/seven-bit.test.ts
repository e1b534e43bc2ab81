// 8-bit to 7-bit conversion (core/seven-bit.ts) for a server without 8BITMIME (RFC 6152 §3,
// RFC 1652 §4): byte-exact expectations, and what is refused with a reason.
import { expect, test } from 'bun:test';
import { convertToSevenBit } from '../../src/core/seven-bit.ts';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const crlf = (lines: string[]) => lines.map((l) => `${l}\r\n`).join('');

function converted(text: string): string {
  const r = convertToSevenBit(ENCODER.encode(text));
  if (!r.ok) throw new Error(r.why);
  expect(r.message.every((b) => b < 0x80)).toBe(true);
  return DECODER.decode(r.message);
}

function refused(text: string): string {
  const r = convertToSevenBit(ENCODER.encode(text));
  if (r.ok) throw new Error('expected a refusal');
  return r.why;
}

test('a 7-bit message is returned as it is, the same bytes', () => {
  const bytes = ENCODER.encode(crlf(['Subject: hi', '', 'plain']));
  const r = convertToSevenBit(bytes);
  expect(r.ok && r.message).toBe(bytes);
});

test('a single 8bit text part: quoted-printable, its Content-Transfer-Encoding replaced in place', () => {
  const input = crlf([
    'From: a@example.org',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Subject: plain',
    '',
    'Grüße aus Köln, = sign ',
    `${'x'.repeat(80)}é`,
  ]);
  expect(converted(input)).toBe(crlf([
    'From: a@example.org',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    'Subject: plain',
    '',
    // RFC 2045 §6.7 rule 3: a space at the end of a line is encoded; rule 5: lines of at most 76.
    'Gr=C3=BC=C3=9Fe aus K=C3=B6ln, =3D sign=20',
    `${'x'.repeat(75)}=`,
    'xxxxx=C3=A9',
  ]));
});

test('a message without MIME headers gets MIME-Version and Content-Transfer-Encoding', () => {
  expect(converted(crlf(['Subject: cron', '', 'Temperatur 21°C']))).toBe(crlf([
    'Subject: cron',
    'MIME-Version: 1.0',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Temperatur 21=C2=B0C',
  ]));
});

test('multipart: only the 8-bit part is re-encoded; delimiters, 7-bit parts and base64 are copied; 8bit says 7bit', () => {
  const input = crlf([
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    'Content-Transfer-Encoding: 8bit',
    '',
    'preamble',
    '--b1',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'ascii part',
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 8BIT',
    '',
    '<p>café</p>',
    '--b1',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    'AAEC',
    '--b1--',
    'epilogue',
  ]);
  expect(converted(input)).toBe(crlf([
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    'Content-Transfer-Encoding: 7bit',
    '',
    'preamble',
    '--b1',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'ascii part',
    '--b1',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    // The line ending before a delimiter belongs to the delimiter (RFC 2046 §5.1.1): kept as it was.
    '<p>caf=C3=A9</p>',
    '--b1',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    'AAEC',
    '--b1--',
    'epilogue',
  ]));
});

test('a message/rfc822 part is converted inside, and stays unencoded itself (RFC 2046 §5.2.1)', () => {
  const input = crlf([
    'Content-Type: multipart/mixed; boundary=x',
    '',
    '--x',
    'Content-Type: message/rfc822',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Subject: inner',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'naïve',
    '--x--',
  ]);
  expect(converted(input)).toBe(crlf([
    'Content-Type: multipart/mixed; boundary=x',
    '',
    '--x',
    'Content-Type: message/rfc822',
    'Content-Transfer-Encoding: 7bit',
    '',
    'Subject: inner',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'na=C3=AFve',
    '--x--',
  ]));
});

test('an 8-bit Subject becomes RFC 2047 encoded words; the other fields are copied', () => {
  expect(converted(crlf(['Subject: Grüße', ' aus Köln', 'X-Plain: yes', '', 'body']))).toBe(crlf([
    'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=',
    'X-Plain: yes',
    '',
    'body',
  ]));
});

test('refused with a reason: DKIM-signed, 8-bit structured fields, preamble, encoded parts, non-UTF-8 subjects', () => {
  expect(refused(crlf(['DKIM-Signature: v=1; a=rsa-sha256; d=example.org', '', 'Grüße']))).toContain('DKIM-signed');
  expect(refused(crlf(['From: Jörg <j@example.org>', '', 'x']))).toContain('the From field');
  expect(refused(crlf(['Content-Type: multipart/mixed; boundary=b', '', 'pré', '--b', '', 'x', '--b--']))).toContain('preamble');
  expect(refused(crlf(['Content-Transfer-Encoding: base64', '', 'Zé==']))).toContain('encoded as base64');
  const latin1 = new Uint8Array([...ENCODER.encode('Subject: Gr'), 0xfc, ...ENCODER.encode('\r\n\r\nx\r\n')]);
  const r = convertToSevenBit(latin1);
  expect(!r.ok && r.why).toContain('not UTF-8');
});
