import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runImapTranscript } from '../../helpers/imap-transcript.ts';
import { FEED_MODES } from '../../helpers/transcript.ts';

const dir = join(import.meta.dir, '..', '..', 'fixtures', 'transcripts', 'imap');
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('IMAP transcripts', () => {
  test('every fixture is headed by the RFC section it pins', () => {
    expect(fixtures.length).toBeGreaterThan(5);
    for (const file of fixtures) expect({ file, head: /^# RFC \d+ §/.test(readFileSync(join(dir, file), 'utf8')) }).toEqual({ file, head: true });
  });
  for (const file of fixtures) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const mode of FEED_MODES) {
      test(`${file} (${mode})`, () => {
        expect(runImapTranscript(text, mode).mismatches).toEqual([]);
      });
    }
  }
  test('the output is the same byte for byte in every feed mode', () => {
    for (const file of fixtures) {
      const text = readFileSync(join(dir, file), 'utf8');
      const whole = runImapTranscript(text, 'whole').output;
      for (const mode of ['line', 'byte'] as const) expect({ file, mode, same: Buffer.from(runImapTranscript(text, mode).output).equals(Buffer.from(whole)) }).toEqual({ file, mode, same: true });
    }
  });
});
