import { describe, expect, test } from 'bun:test';
import { parseRawMessage } from '../../src/message/raw-message.ts';
import { headerSummary, SUMMARY_HEAD_BYTES, type HeaderSummary } from '../../src/spool/header-summary.ts';

const enc = (s: string) => new TextEncoder().encode(s);

/** The summary as the general parser sees the fields: what headerSummary() must agree with. */
function reference(bytes: Uint8Array): HeaderSummary {
  const names: Record<string, keyof HeaderSummary> = { from: 'from', to: 'to', cc: 'cc', subject: 'subject', date: 'date', 'message-id': 'messageId' };
  const out: Record<keyof HeaderSummary, string> = { from: '', to: '', cc: '', subject: '', date: '', messageId: '' };
  const seen = new Set<string>();
  for (const f of parseRawMessage(bytes.subarray(0, SUMMARY_HEAD_BYTES)).fields) {
    const key = names[f.name.toLowerCase()];
    if (key === undefined || seen.has(key)) continue;
    seen.add(key);
    out[key] = f.value.slice(0, 998);
  }
  return out;
}

describe('headerSummary', () => {
  test('reads the six fields, unfolded (RFC 5322 §2.2.3), first of each name (§3.6), names in any case', () => {
    const text =
      'Received: from x by y;\r\n Tue, 1 Dec 2026 00:00:00 +0000\r\nFROM: Ann <ann@a.example>\r\nTo: b@b.example,\r\n\tc@c.example\r\n' +
      'Subject:  Grüße \r\nsubject: second\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\nMessage-ID: <1@a.example>\r\n\r\nFrom: body@x\r\n';
    expect(headerSummary(enc(text))).toEqual({
      from: 'Ann <ann@a.example>',
      to: 'b@b.example,\tc@c.example',
      cc: '',
      subject: 'Grüße',
      date: 'Tue, 1 Dec 2026 00:00:00 +0000',
      messageId: '<1@a.example>',
    });
  });

  test('a line that is not a field ends the header section, as parseRawMessage says', () => {
    expect(headerSummary(enc('Subject: a\nnot a field\nFrom: late@x\n')).from).toBe('');
    expect(headerSummary(enc('Sub ject: a\r\nFrom: late@x\r\n')).from).toBe('');
    expect(headerSummary(enc(': a\r\nFrom: late@x\r\n')).from).toBe('');
    expect(headerSummary(enc(' folded first\r\nFrom: late@x\r\n')).from).toBe('');
  });

  test('caps a value at 998 characters', () => {
    expect(headerSummary(enc(`Subject: ${'x'.repeat(5000)}\r\n\r\n`)).subject.length).toBe(998);
  });

  test('agrees with the general parser on generated header sections', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const pieces = ['From', 'from', 'TO', 'Cc', 'Subject', 'Date', 'Message-Id', 'X-Other', 'Received', 'Bad Name', '', ' cont', '\tcont', 'é', ':', 'a:b'];
    for (let run = 0; run < 3000; run++) {
      let text = '';
      const lines = rand(12);
      for (let i = 0; i < lines; i++) {
        const p = pieces[rand(pieces.length)];
        const sep = rand(4) === 0 ? '' : ':';
        const value = ['', ' v', '  spaced  ', ' ünï', ' a:b', ' <x@y>'][rand(6)];
        text += (p.startsWith(' ') || p.startsWith('\t') ? p : p + sep + value) + (rand(3) === 0 ? '\n' : '\r\n');
      }
      if (rand(2) === 0) text += '\r\nbody: x\r\n';
      const bytes = enc(text);
      expect({ text, summary: headerSummary(bytes) }).toEqual({ text, summary: reference(bytes) });
    }
  });
});
