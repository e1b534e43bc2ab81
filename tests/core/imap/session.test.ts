import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runImapTranscript } from '../../helpers/imap-transcript.ts';
import { FEED_MODES } from '../../helpers/transcript.ts';
import { ImapSession, DEFAULT_IMAP_LIMITS, type ImapStep } from '../../../src/core/imap/session.ts';

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

const enc = new TextEncoder();
const config = { hostname: 'imap.test', tls: 'none' as const, allowInsecureAuth: true, limits: DEFAULT_IMAP_LIMITS };
const text = (step: ImapStep) => (typeof step.out === 'string' ? step.out : new TextDecoder().decode(step.out));

describe('IMAP session', () => {
  test('RFC 3501 §5.4: 60 s to log in, then at least 30 minutes; no timer while the host answers', () => {
    const session = new ImapSession(config, 0);
    session.greet(0);
    expect(session.deadline).toBe(60_000);
    const step = session.receive(enc.encode('a LOGIN alice secret\r\n'), 10);
    expect(session.deadline).toBe(Infinity);
    const auth = step.events.find((e) => e.kind === 'auth')!;
    session.resolveAuth(auth.requestId, { ok: true, user: 'alice' }, 20);
    expect(session.deadline).toBe(20 + 30 * 60_000);
  });

  test('a line over 64 KB is answered BAD [TOOBIG] under its tag and the session goes on', () => {
    const session = new ImapSession(config, 0);
    session.greet(0);
    const out = text(session.receive(enc.encode(`x1 NOOP ${'a'.repeat(70_000)}\r\nx2 NOOP\r\n`), 0));
    expect(out).toBe('x1 BAD [TOOBIG] Command line too long\r\nx2 OK NOOP completed\r\n');
  });

  test('commands pipelined behind one the host answers wait, then run in order; a stale answer is ignored', () => {
    const session = new ImapSession(config, 0);
    session.greet(0);
    const step = session.receive(enc.encode('a LOGIN alice secret\r\nb NOOP\r\n'), 0);
    expect(text(step)).toBe('');
    const auth = step.events.find((e) => e.kind === 'auth')!;
    expect(text(session.resolveAuth(auth.requestId + 1, { ok: true, user: 'alice' }, 0))).toBe('');
    const out = text(session.resolveAuth(auth.requestId, { ok: true, user: 'alice' }, 0));
    expect(out).toMatch(/^a OK \[CAPABILITY [^\]]+\] Logged in\r\nb OK NOOP completed\r\n$/);
  });

  test('shutdown while the host answers ends the session after the answer, and a selected session unselects', () => {
    const session = new ImapSession(config, 0);
    session.greet(0);
    const login = session.receive(enc.encode('a LOGIN alice secret\r\n'), 0).events.find((e) => e.kind === 'auth')!;
    const open = session.resolveAuth(login.requestId, { ok: true, user: 'alice' }, 0);
    expect(open.events.map((e) => e.kind)).toEqual(['logged-in']);
    const select = session.receive(enc.encode('s SELECT INBOX\r\n'), 0).events.find((e) => e.kind === 'open')!;
    expect(session.shutdown().close).toBe(false);
    const step = session.resolveOpen(select.requestId, { ok: true, mailbox: { uidValidity: 1, uidNext: 1, messages: [], recentUids: [] } }, 0);
    expect(text(step)).toEndWith('s OK [READ-WRITE] SELECT completed\r\n* BYE [UNAVAILABLE] Server shutting down\r\n');
    expect(step.close).toBe(true);
    expect(step.events.map((e) => e.kind)).toEqual(['selected', 'unselected']);
  });

  test('RFC 2180 §4.1.2: STORE on a message expunged elsewhere answers NO [EXPUNGEISSUED] and stores the others', () => {
    const session = new ImapSession(config, 0);
    session.greet(0);
    const login = session.receive(enc.encode('a LOGIN alice secret\r\n'), 0).events.find((e) => e.kind === 'auth')!;
    session.resolveAuth(login.requestId, { ok: true, user: 'alice' }, 0);
    const select = session.receive(enc.encode('s SELECT INBOX\r\n'), 0).events.find((e) => e.kind === 'open')!;
    session.resolveOpen(select.requestId, { ok: true, mailbox: { uidValidity: 1, uidNext: 3, messages: [{ uid: 1, flags: [] }, { uid: 2, flags: [] }], recentUids: [] } }, 0);
    expect(text(session.notify([{ kind: 'expunged', uid: 1 }], 0))).toBe('');
    const store = session.receive(enc.encode('t STORE 1:2 +FLAGS (\\Seen)\r\n'), 0).events.find((e) => e.kind === 'store-flags')!;
    expect(store.kind === 'store-flags' && store.changes).toEqual([{ uid: 2, flags: ['\\Seen'] }]);
    const out = text(session.resolveChange(store.requestId, { ok: true }, 0));
    expect(out).toBe('* 2 FETCH (FLAGS (\\Seen))\r\nt NO [EXPUNGEISSUED] STORE completed in part: some messages were expunged\r\n');
    expect(text(session.receive(enc.encode('n NOOP\r\n'), 0))).toBe('* 1 EXPUNGE\r\nn OK NOOP completed\r\n');
  });
});

test('RFC 3501 §6.3.8: a LIST pattern of thousands of wildcards is answered, not backtracked over', () => {
  const session = new ImapSession(config, 0);
  session.greet(0);
  const login = session.receive(enc.encode('a LOGIN alice secret\r\n'), 0).events.find((e) => e.kind === 'auth')!;
  session.resolveAuth(login.requestId, { ok: true, user: 'alice' }, 0);
  expect(text(session.receive(enc.encode(`l LIST "" "${'*%'.repeat(20_000)}Z"\r\n`), 0))).toBe('l OK LIST completed\r\n');
});

test('a client that sends more than a command and a literal ahead of the answers is closed with BYE, not buffered without end', () => {
  const small = { ...config, limits: { ...DEFAULT_IMAP_LIMITS, maxLineBytes: 1000, maxLiteralBytes: 1000 } };
  const session = new ImapSession(small, 0);
  session.greet(0);
  const first = session.receive(enc.encode('a LOGIN alice secret\r\nb NOOP\r\n'), 0);
  expect(first.close).toBe(false);
  expect(session.receive(enc.encode('c NOOP\r\n'.repeat(300)), 0).close).toBe(false);
  const step = session.receive(enc.encode('d NOOP\r\n'.repeat(100)), 0);
  expect(text(step)).toBe('* BYE [LIMIT] Too much input sent ahead of the answers; closing the connection\r\n');
  expect(step.close).toBe(true);
});
