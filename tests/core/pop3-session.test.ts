import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pop3Session, DEFAULT_POP3_LIMITS, topOfMessage, type Pop3Step } from '../../src/core/pop3-session.ts';
import { dotUnstuff } from '../../src/core/data.ts';
import { formatPop3Response, pop3Replies } from '../../src/core/pop3-replies.ts';
import { isPop3UniqueId } from '../../src/core/pop3-maildrop.ts';
import { runPop3Transcript } from '../helpers/pop3-transcript.ts';
import type { FeedMode } from '../helpers/server-transcript.ts';

const dir = join(import.meta.dir, '..', 'fixtures', 'transcripts', 'pop3');
const MODES: FeedMode[] = ['whole', 'line', 'byte'];
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

describe('POP3 transcripts', () => {
  test('every fixture is headed by the RFC section it pins', () => {
    for (const file of fixtures) expect({ file, head: /^# RFC \d+ §/.test(readFileSync(join(dir, file), 'utf8')) }).toEqual({ file, head: true });
  });
  for (const file of fixtures) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const mode of MODES) {
      test(`${file} (${mode})`, () => {
        expect(runPop3Transcript(text, mode).mismatches).toEqual([]);
      });
    }
  }
  test('the output is the same byte for byte in every feed mode', () => {
    for (const file of fixtures) {
      const text = readFileSync(join(dir, file), 'utf8');
      const whole = runPop3Transcript(text, 'whole').output;
      for (const mode of ['line', 'byte'] as const) expect({ file, mode, same: Buffer.from(runPop3Transcript(text, mode).output).equals(Buffer.from(whole)) }).toEqual({ file, mode, same: true });
    }
  });
});

const enc = new TextEncoder();
const config = { hostname: 'pop.test', tls: 'none' as const, allowInsecureAuth: true, limits: DEFAULT_POP3_LIMITS };

/** Logs alice in on a maildrop of the given messages and returns the session and a step collector. */
function loggedIn(messages: Uint8Array[]) {
  const session = new Pop3Session(config, 0);
  const out: Uint8Array[] = [];
  const kinds: string[] = [];
  const take = (step: Pop3Step): void => {
    kinds.push(typeof step.out);
    out.push(typeof step.out === 'string' ? enc.encode(step.out) : step.out);
    for (const e of step.events) {
      if (e.kind === 'auth') take(session.resolveAuth(e.requestId, { ok: true, user: e.username }, 0));
      else if (e.kind === 'lock') take(session.resolveLock(e.requestId, { ok: true, maildrop: { messages: messages.map((m, i) => ({ uid: `u${i}`, size: m.length })) } }, 0));
      else if (e.kind === 'read') take(session.resolveRead(e.requestId, { ok: true, bytes: messages[Number(e.uid.slice(1))] }, 0));
    }
  };
  take(session.greet(0));
  take(session.receive(enc.encode('USER alice\r\nPASS x\r\n'), 0));
  out.length = 0;
  kinds.length = 0;
  return { session, out, kinds, take };
}

function joined(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

describe('RETR is byte-exact (RFC 1939 §3)', () => {
  test('8-bit and binary octets pass unchanged, and unstuffing the text gives the stored message back', () => {
    const body = new Uint8Array([...enc.encode('Subject: bin\r\n\r\n'), 0xff, 0x00, 0xc3, 0xa9, 0x2e, 0x0d, 0x0a, 0x2e, 0x2e, 0x0d, 0x0a, 0x80, 0x0d, 0x0a]);
    const { session, out, kinds, take } = loggedIn([body]);
    take(session.receive(enc.encode('RETR 1\r\n'), 0));
    const all = joined(out);
    const head = enc.encode(`+OK ${body.length} octets\r\n`);
    expect(Buffer.from(all.subarray(0, head.length)).equals(Buffer.from(head))).toBe(true);
    const text = all.subarray(head.length, all.length - 3);
    expect(Buffer.from(all.subarray(all.length - 3)).toString()).toBe('.\r\n');
    expect(Buffer.from(dotUnstuff(text)).equals(Buffer.from(body))).toBe(true);
    // The step that answers RETR carries octets, not text: 0xff and NUL survive no decoding.
    expect(kinds).toContain('object');
  });
});

describe('topOfMessage (RFC 1939 §7)', () => {
  const t = (text: string, n: number) => new TextDecoder().decode(topOfMessage(enc.encode(text), n));
  test.each([
    ['A: 1\r\n\r\nx\r\ny\r\n', 0, 'A: 1\r\n\r\n'],
    ['A: 1\r\n\r\nx\r\ny\r\n', 1, 'A: 1\r\n\r\nx\r\n'],
    ['A: 1\r\n\r\nx\r\ny', 5, 'A: 1\r\n\r\nx\r\ny'],
    ['A: 1\r\n', 3, 'A: 1\r\n'],
    ['\r\nbody\r\n', 0, '\r\n'],
    ['A: 1\n\nx\n', 0, 'A: 1\n\n'],
  ])('%j with %d lines', (text, n, want) => expect(t(text as string, n as number)).toBe(want as string));
});

describe('response lines (RFC 2449 §4)', () => {
  test('a long echoed argument is cut to 512 octets with CRLF', () => {
    const line = formatPop3Response(pop3Replies.noSuchMessage('é'.repeat(600)));
    expect(enc.encode(line).length).toBeLessThanOrEqual(512);
    expect(line.endsWith('...\r\n')).toBe(true);
  });
  test('response codes are bracketed after -ERR', () => {
    expect(formatPop3Response(pop3Replies.maildropInUse())).toBe('-ERR [IN-USE] Maildrop is in use by another session\r\n');
  });
  test('unique-ids are 1 to 70 printable characters (RFC 1939 §7)', () => {
    expect([isPop3UniqueId('a'), isPop3UniqueId('x'.repeat(70)), isPop3UniqueId(''), isPop3UniqueId('x'.repeat(71)), isPop3UniqueId('a b')]).toEqual([true, true, false, false, false]);
  });
});

describe('lock bookkeeping', () => {
  test('a lock granted after the client left is given straight back', () => {
    const session = new Pop3Session(config, 0);
    session.greet(0);
    const auth = session.receive(enc.encode('USER alice\r\nPASS x\r\n'), 0).events.find((e) => e.kind === 'auth')!;
    const lock = session.resolveAuth(auth.requestId, { ok: true, user: 'alice' }, 0).events.find((e) => e.kind === 'lock')!;
    expect(session.peerClosed().events).toEqual([]);
    expect(session.resolveLock(lock.requestId, { ok: true, maildrop: { messages: [] } }, 0).events).toEqual([{ kind: 'release', user: 'alice' }]);
  });
});
