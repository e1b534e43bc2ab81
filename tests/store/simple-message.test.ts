// parseSimpleMessage against postal-mime: for every message it reads, the fields the index uses
// are postal-mime's exactly; the messages it leaves to postal-mime are the ones that need MIME.
import { describe, expect, test } from 'bun:test';
import PostalMime from 'postal-mime';
import { summarizeMessage, summaryOf } from '../../src/store/index-db.ts';
import { parseSimpleMessage, type MessageParts } from '../../src/store/simple-message.ts';

const FIELDS = ['from', 'to', 'cc', 'bcc', 'replyTo', 'returnPath', 'subject', 'messageId', 'date', 'text', 'html', 'attachments'] as const;

function pick(email: MessageParts): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) if (email[f] !== undefined) out[f] = email[f];
  return out;
}

const bytes = (s: string | Uint8Array) => (typeof s === 'string' ? new TextEncoder().encode(s) : s);
const join = (...parts: (string | Uint8Array)[]) => Buffer.concat(parts.map((p) => Buffer.from(bytes(p))));

/** [name, message, read here (true) or left to postal-mime (false)] */
const CASES: [string, Uint8Array, boolean][] = [
  ['plain, CRLF', bytes('From: Ann <ann@x.test>\r\nTo: bob@x.test, "Carol C" <carol@x.test>\r\nSubject: hello there\r\nMessage-ID: <m1@x.test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0100\r\n\r\nline one\r\nline two\r\n'), true],
  ['smtp-source', bytes(`Received: from x (localhost [127.0.0.1])\r\n\tby mailbox; Wed, 2 Dec 2026 05:00:00 +0000\r\nFrom: <foo@bench.local>\r\nTo: <foo@bench.local>\r\nDate: Wed, 2 Dec 2026 05:00:00 +0000\r\nMessage-Id: <5a8b.0003.0001@bench.local>\r\n\r\n${'1XXXXXXXX\r\n'.repeat(20)}`), true],
  ['bare LF, no final newline', bytes('From: a@x.test\nSubject: s\n\nbody\nlast'), true],
  ['CRs before LF and at the end', bytes('Subject: s\r\r\n\r\nx\r\r\ny\r'), true],
  ['lone CRs in the body, CR runs at the end', bytes('Subject: s\r\n\r\na\rb\r\r\r\nc\n\r\r'), true],
  ['lone CR in a header, a header of CRs only ending the section', bytes('Subject: a\rb\r\nTo: x@x.test\r\n\r\r\nbody\r\n'), true],
  ['empty body', bytes('Subject: s\r\n\r\n'), true],
  ['only an empty line in the body', bytes('Subject: s\r\n\r\n\r\n'), true],
  ['folded headers, tabs, repeated To and Cc, groups', bytes('To: a@x.test,\r\n\tb@x.test\r\nTo: Team: c@x.test, d@x.test;\r\nCc:  e@x.test  \r\nBcc: f@x.test\r\nReply-To: r@x.test\r\nReturn-Path: <bounce@x.test>\r\nSubject: folded\r\n   subject\t\r\n\r\nb\r\n'), true],
  ['lone addresses, bare, bracketed and half-bracketed', bytes("From: ann.b+tag@x-y.test\r\nTo: <bob@x.test>\r\nCc: <carol@x.test\r\nReply-To: dave@x.test>\r\nBcc: o'brien@x.test\r\nReturn-Path: <bounce_1@x.test>\r\nSubject: no =? word\r\n\r\nx\r\n"), true],
  ['addresses a parser must read', bytes('From: <a@b@x.test>\r\nTo: <@x.test>, <a@>, <a@x.test> (c), <a b@x.test>\r\nCc: <=?utf-8?q?a?=@x.test>\r\n\r\nx\r\n'), true],
  ['encoded words', bytes('From: =?utf-8?q?J=C3=BCrgen?= <j@x.test>\r\nSubject: =?UTF-8?B?w6TDtsO8?= and =?iso-8859-1?q?caf=E9?=\r\n\r\nx\r\n'), true],
  ['raw UTF-8 headers and body', join('From: Zoë <zoe@x.test>\r\nSubject: Grüße ☃\r\n\r\n', 'Ünïcödé body ☃\r\n'), true],
  ['invalid UTF-8', join('Subject: bad \xff here\r\n\r\n', new Uint8Array([0xe2, 0x82, 0x0d, 0x0a, 0x41, 0xff, 0x0a])), true],
  ['only a BOM in the body', join('Subject: bom\r\n\r\n', new Uint8Array([0xef, 0xbb, 0xbf])), true],
  ['BOM at the body start', join('Subject: bom\r\n\r\n', new Uint8Array([0xef, 0xbb, 0xbf]), 'text\r\n'), true],
  ['Content-Type text/plain utf-8, 8bit', bytes('Content-Type: text/plain; charset="UTF-8"\r\nContent-Transfer-Encoding: 8bit\r\nSubject: ct\r\n\r\nhi ☃\r\n'), true],
  ['Content-Type TEXT/PLAIN us-ascii', bytes('Content-Type: TEXT/PLAIN; charset=us-ascii\r\n\r\nascii only\r\n'), true],
  ['us-ascii with 8-bit bytes', join('Content-Type: text/plain; charset=us-ascii\r\n\r\n', new Uint8Array([0xe9, 0x0d, 0x0a])), false],
  ['invalid and empty dates, empty subject', bytes('Date: not a date\r\nSubject:\r\nFrom:\r\n\r\nx\r\n'), true],
  ['no date, no addresses', bytes('X-Other: 1\r\n\r\nonly body\r\n'), true],
  ['a name whose colon is on the folded line, a folded field not read', bytes('To\r\n : a@x.test\r\nX-Long: one\r\n two\r\nSubject: s\r\n\r\nx\r\n'), true],
  ['line without a colon, continuation first', bytes(' leading continuation\r\nNot a header line\r\nSubject: s\r\n\r\nx\r\n'), true],
  ['Return-Path without an address', bytes('Return-Path: <>\r\nFrom: undisclosed-recipients:;\r\n\r\nx\r\n'), true],
  ['quoted-printable', bytes('Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n'), false],
  ['base64', bytes('Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n'), false],
  ['format=flowed', bytes('Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\nsoft \r\nbreak\r\n'), false],
  ['latin-1', join('Content-Type: text/plain; charset=iso-8859-1\r\n\r\n', new Uint8Array([0xe9, 0x0d, 0x0a])), false],
  ['html', bytes('Content-Type: text/html\r\n\r\n<p>hi</p>\r\n'), false],
  ['multipart', bytes('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n'), false],
  ['attachment disposition', bytes('Content-Disposition: attachment; filename=a.txt\r\n\r\nx\r\n'), false],
  ['empty Content-Type', bytes('Content-Type:\r\n\r\nx\r\n'), false],
  ['no end of the header section', bytes('Subject: s\r\nFrom: a@x.test\r\n'), false],
];

describe('parseSimpleMessage', () => {
  for (const [name, message, simple] of CASES) {
    test(`${name}: ${simple ? "postal-mime's fields" : 'left to postal-mime'}`, async () => {
      const parts = parseSimpleMessage(message);
      expect(parts !== null).toBe(simple);
      if (parts !== null) expect(pick(parts)).toEqual(pick(await PostalMime.parse(message, { attachmentEncoding: 'arraybuffer' })));
    });
  }

  test('summarizeMessage gives the same summary by either path', async () => {
    const envelope = { mailFrom: 'ann@x.test', recipients: ['bob@x.test', 'hidden@x.test'], authUser: null };
    for (const [, message, simple] of CASES) {
      if (!simple) continue;
      const email = await PostalMime.parse(message, { attachmentEncoding: 'arraybuffer' });
      expect(await summarizeMessage(message, envelope)).toEqual(summaryOf(email, message.length, envelope));
    }
  });
});
