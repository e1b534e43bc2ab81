import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dotUnstuff } from '../../src/core/data.ts';
import { runServerTranscript, type FeedMode } from '../helpers/server-transcript.ts';

const dir = join(import.meta.dir, '..', 'fixtures', 'transcripts', 'server');
const MODES: FeedMode[] = ['whole', 'line', 'byte'];
const overrides: Record<string, Parameters<typeof runServerTranscript>[2]> = {
  'size.txt': { limits: { maxMessageBytes: 64 } },
  'line-limits.txt': { limits: { commandLineBytes: 200 } },
};

describe('server transcripts', () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const mode of MODES) {
      test(`${file} (${mode})`, () => {
        const result = runServerTranscript(text, mode, overrides[file]);
        expect(result.mismatches).toEqual([]);
      });
    }
  }
});

const decode = (b: Uint8Array) => new TextDecoder().decode(b);
/** The message without the Received header the server put on top. */
const bodyOf = (stuffed: Uint8Array) => decode(dotUnstuff(stuffed)).replace(/^Received: [^\r]*\r\n(?:\t[^\r]*\r\n)*/, '');

describe('accepted message content', () => {
  test('dot-stuffed lines come back unstuffed, after one Received header', () => {
    const text = readFileSync(join(dir, 'empty-and-dots.txt'), 'utf8');
    for (const mode of MODES) {
      const { messages } = runServerTranscript(text, mode);
      expect(messages.length).toBe(2);
      expect(decode(messages[0])).toMatch(/^Received: from c\.example \(\[192\.0\.2\.1\]\)\r\n\tby mx\.test \(mailbox\) with SMTP id ID1\r\n\tfor <b@x\.example>;\r\n\t\w{3}, \d+ \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n$/);
      expect(bodyOf(messages[1])).toBe('.\r\n..leading dots\r\nx\r\n');
    }
  });

  test('8-bit UTF-8 content is kept byte for byte', () => {
    const text = readFileSync(join(dir, 'smtputf8.txt'), 'utf8');
    const { messages } = runServerTranscript(text, 'byte');
    expect(decode(messages[0])).toContain('with UTF8SMTP id ID1');
    expect(bodyOf(messages[0])).toBe('Subject: grüße\r\n\r\nünïcödé\r\n');
  });

  test('the bare <Postmaster> is recorded as the local postmaster mailbox, never relayed', () => {
    const recipients = (file: string, mode: FeedMode) =>
      runServerTranscript(readFileSync(join(dir, file), 'utf8'), mode).envelopes.map((e) => e.recipients.map((r) => `${r.local ? 'local' : 'relay'} ${r.mailbox.local}@${r.mailbox.domain}`));
    for (const mode of MODES) {
      expect(recipients('postmaster.txt', mode)).toEqual([
        ['local postmaster@local.example', 'local postmaster@local.example', 'local postmaster@local.example', 'local postmaster@LOCAL.EXAMPLE', 'local PostMaster@other.example'],
        ['local postmaster@local.example'],
      ]);
      expect(recipients('postmaster-address.txt', mode)).toEqual([['local hostmaster@local.example']]);
    }
  });

  test('a 998-octet line starting with "." comes back whole, from DATA and from BDAT', () => {
    const text = readFileSync(join(dir, 'transparency-dot.txt'), 'utf8');
    for (const mode of MODES) {
      const { messages } = runServerTranscript(text, mode);
      expect(messages.length).toBe(2);
      expect(bodyOf(messages[0])).toBe(`.${'x'.repeat(997)}\r\n${'y'.repeat(998)}\r\n`);
      expect(bodyOf(messages[1])).toBe(`.${'x'.repeat(997)}\r\n`);
    }
  });

  test('the smuggled transaction never becomes a message', () => {
    const text = readFileSync(join(dir, 'smuggling.txt'), 'utf8');
    for (const mode of MODES) expect(runServerTranscript(text, mode).messages).toEqual([]);
  });
});
