import { describe, expect, test } from 'bun:test';
import { matchesPattern, parseTranscript, renderTranscript, type TranscriptEntry } from '../../src/core/transcript.ts';

const ENCODER = new TextEncoder();
const C = (text: string, secret?: boolean): TranscriptEntry => ({ kind: 'line', dir: 'C', text, secret });
const S = (text: string): TranscriptEntry => ({ kind: 'line', dir: 'S', text });

describe('renderTranscript', () => {
  test('lines keep their direction and text', () => {
    expect(renderTranscript([S('220 mx ESMTP'), C('MAIL FROM:<a@b>'), S('250 2.1.0 OK')])).toEqual([
      'S: 220 mx ESMTP',
      'C: MAIL FROM:<a@b>',
      'S: 250 2.1.0 OK',
    ]);
  });

  const content: TranscriptEntry = { kind: 'content', bytes: ENCODER.encode('Subject: x\r\n\r\n..dot\r\nend\r\n') };

  test('message content is summarised by default', () => {
    expect(renderTranscript([content, C('.')])).toEqual(['C: [message: 4 lines, 26 bytes]', 'C: .']);
  });

  test('message content can be shown in full, as written (dot-stuffed)', () => {
    expect(renderTranscript([content, C('.')], { content: 'full' })).toEqual([
      'C: Subject: x',
      'C: ',
      'C: ..dot',
      'C: end',
      'C: .',
    ]);
  });

  test('events and notes render in the fixture syntax', () => {
    expect(renderTranscript([{ kind: 'event', name: 'tls' }, { kind: 'note', text: 'connected to 127.0.0.1:25' }])).toEqual([
      '@ tls',
      '# connected to 127.0.0.1:25',
    ]);
  });

  test.each([
    ['AUTH PLAIN AGFsaWNlAHNlY3JldA==', 'C: AUTH PLAIN <redacted>'],
    ['auth login YWxpY2U=', 'C: auth login <redacted>'],
    ['AUTH LOGIN', 'C: AUTH LOGIN'],
  ])('AUTH initial responses are redacted (RFC 4954 §4): %s', (line, shown) => {
    expect(renderTranscript([C(line)])).toEqual([shown]);
  });

  test('answers to 334 challenges and lines marked secret are redacted', () => {
    const shown = renderTranscript([C('AUTH LOGIN'), S('334 VXNlcm5hbWU6'), C('YWxpY2U='), S('334 UGFzc3dvcmQ6'), C('c2VjcmV0'), S('235 2.7.0 OK'), C('MAIL FROM:<a@b>'), C('xyz', true)]);
    expect(shown).toEqual([
      'C: AUTH LOGIN',
      'S: 334 VXNlcm5hbWU6',
      'C: <redacted>',
      'S: 334 UGFzc3dvcmQ6',
      'C: <redacted>',
      'S: 235 2.7.0 OK',
      'C: MAIL FROM:<a@b>',
      'C: <redacted>',
    ]);
  });
});

describe('parseTranscript', () => {
  test('title, lines, events and expectations, with their line numbers', () => {
    const parsed = parseTranscript('# RFC 5321 §3.3: title\n# more\n\nS: 220 *\nC: EHLO x\nC: \n@ idle\n@ send <a@b> <c@d>\n= closed\n');
    expect(parsed.title).toBe('RFC 5321 §3.3: title more');
    expect(parsed.steps).toEqual([
      { kind: 'S', text: '220 *', line: 4 },
      { kind: 'C', text: 'EHLO x', line: 5 },
      { kind: 'C', text: '', line: 6 },
      { kind: 'event', name: 'idle', args: '', line: 7 },
      { kind: 'event', name: 'send', args: '<a@b> <c@d>', line: 8 },
      { kind: 'expect', text: 'closed', line: 9 },
    ]);
  });

  test('C: with nothing after the colon is an empty line', () => {
    expect(parseTranscript('C:').steps).toEqual([{ kind: 'C', text: '', line: 1 }]);
  });

  test('an unknown line is an error that names the line', () => {
    expect(() => parseTranscript('S: 220 ok\nX: what')).toThrow(/line 2/);
  });

  test('rendered transcripts parse back', () => {
    const lines = renderTranscript([S('220 mx'), C('EHLO c'), { kind: 'event', name: 'peer-closes' }]);
    expect(parseTranscript(lines.join('\n')).steps.map((s) => s.kind)).toEqual(['S', 'C', 'event']);
  });
});

describe('matchesPattern', () => {
  test.each([
    ['250 2.1.5 *', '250 2.1.5 Recipient OK', true],
    ['250 2.1.5 *', '250 2.1.0 Sender OK', false],
    ['250-*', '250-mx.example greets you', true],
    ['250-*', '250 last', false],
    ['503 5.5.1 *', '503 5.5.1 ', true],
    ['*', '', true],
    ['EHLO *', 'EHLO client.example', true],
    ['a*b*c', 'a--b--c', true],
    ['a*b*c', 'a--c--b', false],
    ['ab*ba', 'aba', false],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
  ])('%s vs %s', (pattern, actual, ok) => {
    expect(matchesPattern(pattern, actual)).toBe(ok);
  });
});
