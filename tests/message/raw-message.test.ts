import { describe, expect, test } from 'bun:test';
import { cutAtDotLine, headerRecipients, headerSender, parseRawMessage, prepareRawMessage } from '../../src/message/raw-message.ts';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const raw = (text: string) => parseRawMessage(ENCODER.encode(text));
const completion = { sender: { local: 'me', domain: 'example.org' }, fullName: null, date: 'Fri, 27 Nov 2026 02:00:00 +0000', messageId: '<gen@example.org>' };

describe('messages given whole (-t, --eml, sendmail)', () => {
  test('folded fields are unfolded; the body starts after the blank line; LF or CRLF', () => {
    for (const eol of ['\n', '\r\n']) {
      const m = raw(['Subject: a', ' folded', 'To: x@example.net', '', 'Body: not a field', ''].join(eol));
      expect(m.fields.map((f) => [f.name, f.value])).toEqual([['Subject', 'a folded'], ['To', 'x@example.net']]);
      expect(DECODER.decode(m.bytes.subarray(m.bodyStart))).toBe(`Body: not a field${eol}`);
    }
  });

  test('To, Cc and Bcc, with display names, groups and comments, are the recipients', () => {
    const m = raw('From: "Ops" <ops@example.org> (cron)\nTo: Team: a@example.net, "Doe, J." <j@example.net>;\nCc: b@example.net (Bee)\nBcc: c@example.net\n\nx\n');
    expect(headerRecipients(m).map((r) => `${r.local}@${r.domain}`)).toEqual(['a@example.net', 'j@example.net', 'b@example.net', 'c@example.net']);
    expect(headerSender(m)?.mailbox).toEqual({ local: 'ops', domain: 'example.org' });
  });

  test('Bcc is removed, folded lines included; missing From, Date and Message-ID are added in front', () => {
    const m = raw('To: x@example.net\nBcc: a@example.net,\n b@example.net\nSubject: s\n\nbody\n');
    expect(DECODER.decode(prepareRawMessage(m, completion))).toBe(
      'From: me@example.org\r\nDate: Fri, 27 Nov 2026 02:00:00 +0000\r\nMessage-ID: <gen@example.org>\r\nTo: x@example.net\nSubject: s\n\nbody\n',
    );
  });

  test('a message with every field keeps its bytes', () => {
    const text = 'From: a@example.org\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\n.dot\r\n';
    expect(DECODER.decode(prepareRawMessage(raw(text), completion))).toBe(text);
  });

  test('without -i a line of a single "." ends the input', () => {
    expect(DECODER.decode(cutAtDotLine(ENCODER.encode('a\n.\nb\n')))).toBe('a\n');
    expect(DECODER.decode(cutAtDotLine(ENCODER.encode('a\r\n.\r\nb\r\n')))).toBe('a\r\n');
    expect(DECODER.decode(cutAtDotLine(ENCODER.encode('a\n..\n.b\n')))).toBe('a\n..\n.b\n');
  });
});
