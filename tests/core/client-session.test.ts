import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ClientSession,
  type ClientEvent,
  type ClientOptions,
  type ClientStep,
  type OutgoingTransaction,
  type TransactionOutcome,
} from '../../src/core/client-session.ts';
import { ClientFailure } from '../../src/core/errors.ts';
import { renderTranscript } from '../../src/core/transcript.ts';
import { FEED_MODES, readClientFixtures, runClientTranscript } from '../helpers/transcript.ts';
import { mailbox } from '../helpers/mailbox.ts';

const FIXTURES = join(import.meta.dir, '../fixtures/transcripts/client');
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

function tx(from: string, to: string[], message = 'Subject: x\n\nbody\n'): OutgoingTransaction {
  return { sender: mailbox(from), recipients: to.map(mailbox), message: ENCODER.encode(message) };
}

const text = (step: ClientStep) => step.out.map((c) => (typeof c === 'string' ? c : DECODER.decode(c))).join('');
const feed = (session: ClientSession, s: string) => session.receive(ENCODER.encode(s));
const outcomes = (events: readonly ClientEvent[]): TransactionOutcome[] =>
  events.flatMap((e) => (e.kind === 'outcome' ? [e.outcome] : []));
const failures = (events: readonly ClientEvent[]): ClientFailure[] =>
  events.flatMap((e) => (e.kind === 'failed' ? [e.failure] : []));

/** A session greeted and past EHLO with the given keywords. */
function readySession(keywords: string[], options: Partial<ClientOptions> = {}): ClientSession {
  const session = new ClientSession({ ehloName: 'client.example', ...options });
  expect(text(feed(session, '220 mx ESMTP\r\n'))).toBe('EHLO client.example\r\n');
  const lines = ['mx', ...keywords];
  const reply = lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
  feed(session, reply);
  return session;
}

describe('client transcripts', () => {
  const fixtures = readClientFixtures(FIXTURES);
  test('there are fixtures, each headed by the RFC section it pins', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(5);
    for (const [, body] of fixtures) expect(body).toMatch(/^# RFC \d+ §/);
  });
  for (const [name, body] of fixtures) {
    for (const mode of FEED_MODES) {
      test(`${name} (${mode})`, () => {
        runClientTranscript(body, mode);
      });
    }
  }
});

describe('pipelining (RFC 2920)', () => {
  test('MAIL, every RCPT and DATA leave in one write', () => {
    const session = readySession(['PIPELINING']);
    const step = session.send(tx('a@example.org', ['b@example.net', 'c@example.net']));
    expect(step.out).toHaveLength(1);
    expect(text(step)).toBe('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n');
    expect(session.awaitingStage).toBe('mail');
  });

  test('without PIPELINING, each command waits for its reply', () => {
    const session = readySession(['8BITMIME']);
    expect(text(session.send(tx('a@example.org', ['b@example.net', 'c@example.net'])))).toBe('MAIL FROM:<a@example.org>\r\n');
    expect(text(feed(session, '250 ok\r\n'))).toBe('RCPT TO:<b@example.net>\r\n');
    expect(text(feed(session, '250 ok\r\n'))).toBe('RCPT TO:<c@example.net>\r\n');
    expect(text(feed(session, '250 ok\r\n'))).toBe('DATA\r\n');
    const step = feed(session, '354 go\r\n');
    expect(text(step)).toBe('Subject: x\r\n\r\nbody\r\n.\r\n');
  });

  test('all replies of a group in one chunk are handled in order', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net']));
    session.quit();
    const step = feed(session, '250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n');
    expect(text(step)).toBe('Subject: x\r\n\r\nbody\r\n.\r\n');
    const end = feed(session, '250 2.0.0 queued as X\r\n');
    expect(text(end)).toBe('QUIT\r\n');
    const [outcome] = outcomes(end.events);
    expect(outcome.ok).toBe(true);
    if (outcome.ok) {
      expect(outcome.reply.enhanced).toBe('2.0.0');
      expect(outcome.recipients.map((r) => r.accepted)).toEqual([true]);
    }
  });

  test('a rejected MAIL fails the transaction at mail; the group is drained, no RSET is needed', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net']));
    session.quit();
    const step = feed(session, '550 5.7.1 sender denied\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n');
    const [outcome] = outcomes(step.events);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.failure.stage).toBe('mail');
      expect(outcome.failure.reply?.code).toBe(550);
      expect(outcome.failure.permanent).toBe(true);
    }
    expect(text(step)).toBe('QUIT\r\n');
  });

  test('DATA rejected with recipients accepted fails at data, then RSET', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net']));
    const step = feed(session, '250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n');
    const [outcome] = outcomes(step.events);
    expect(!outcome.ok && outcome.failure.stage).toBe('data');
    expect(!outcome.ok && outcome.failure.permanent).toBe(false);
    expect(text(step)).toBe('RSET\r\n');
  });
});

describe('transactions', () => {
  test('several transactions run one after another; each gets one outcome', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net']));
    session.send(tx('a@example.org', ['c@example.net']));
    session.quit();
    let events: ClientEvent[] = [];
    let wire = '';
    for (const reply of ['250 ok\r\n250 ok\r\n354 go\r\n', '250 first\r\n', '250 ok\r\n250 ok\r\n354 go\r\n', '250 second\r\n', '221 bye\r\n']) {
      const step = feed(session, reply);
      events = [...events, ...step.events];
      wire += text(step);
    }
    expect(outcomes(events).map((o) => o.ok && o.reply.lines[0])).toEqual(['first', 'second']);
    expect(wire.match(/^MAIL /gm)).toHaveLength(1);
    expect(wire.endsWith('QUIT\r\n')).toBe(true);
    expect(session.closed).toBe(true);
  });

  test('a transaction sent to an idle ready session starts at once', () => {
    const session = readySession([]);
    expect(text(session.send(tx('a@example.org', ['b@example.net'])))).toBe('MAIL FROM:<a@example.org>\r\n');
  });

  test('transactions queued before the greeting wait for EHLO', () => {
    const session = new ClientSession({ ehloName: 'c.example' });
    expect(session.send(tx('a@example.org', ['b@example.net'])).out).toHaveLength(0);
    expect(text(feed(session, '220 hi\r\n'))).toBe('EHLO c.example\r\n');
    expect(text(feed(session, '250 mx\r\n'))).toBe('MAIL FROM:<a@example.org>\r\n');
  });

  test('the null reverse-path is written as <>', () => {
    const session = readySession([]);
    const bounce: OutgoingTransaction = { sender: null, recipients: [mailbox('b@example.net')], message: ENCODER.encode('x\n') };
    expect(text(session.send(bounce))).toBe('MAIL FROM:<>\r\n');
  });

  test('line endings become CRLF and the message ends with CRLF before the dot', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net'], 'A\rB\r\nC\nD'));
    expect(text(feed(session, '250 ok\r\n250 ok\r\n354 go\r\n'))).toBe('A\r\nB\r\nC\r\nD\r\n.\r\n');
  });

  test('an empty message is just the terminating dot', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net'], ''));
    expect(text(feed(session, '250 ok\r\n250 ok\r\n354 go\r\n'))).toBe('.\r\n');
  });

  test('SIZE is declared when offered, and counts CRLF but not stuffing dots', () => {
    const session = readySession(['SIZE 1000']);
    expect(text(session.send(tx('a@example.org', ['b@example.net'], '.a\n..b\n')))).toBe('MAIL FROM:<a@example.org> SIZE=9\r\n');
  });

  test('SIZE 0 means no fixed limit (RFC 1870 §4)', () => {
    const session = readySession(['SIZE 0']);
    expect(text(session.send(tx('a@example.org', ['b@example.net'], 'x'.repeat(500))))).toStartWith('MAIL FROM:<a@example.org> SIZE=');
  });

  test('8-bit content without 8BITMIME fails before MAIL (RFC 6152 §3)', () => {
    const session = readySession(['PIPELINING']);
    const step = session.send(tx('a@example.org', ['b@example.net'], 'caf\u00e9\n'));
    expect(step.out).toHaveLength(0);
    const [outcome] = outcomes(step.events);
    expect(!outcome.ok && outcome.failure.stage).toBe('mail');
    expect(!outcome.ok && outcome.failure.message).toContain('8BITMIME');
  });

  test('a pre-stuffed message (as the spool keeps it) goes out as the same bytes, not a copy', () => {
    const session = readySession(['PIPELINING', 'SIZE 1000', '8BITMIME']);
    const stuffed = ENCODER.encode('Subject: x\r\n\r\n..leading dot\r\n\u00e9\r\n');
    const step = session.send({ sender: mailbox('a@example.org'), recipients: [mailbox('b@example.net')], stuffed });
    // SIZE counts the message before stuffing: one dot less.
    expect(text(step)).toStartWith(`MAIL FROM:<a@example.org> SIZE=${stuffed.length - 1} BODY=8BITMIME\r\n`);
    const data = feed(session, '250 ok\r\n250 ok\r\n354 go\r\n');
    expect(data.out[0]).toBe(stuffed);
    expect(text(data)).toBe('Subject: x\r\n\r\n..leading dot\r\n\u00e9\r\n.\r\n');
  });

  test('a pre-stuffed message is unstuffed for BDAT (RFC 3030 §2)', () => {
    const session = readySession(['PIPELINING', 'CHUNKING']);
    session.send({ sender: mailbox('a@example.org'), recipients: [mailbox('b@example.net')], stuffed: ENCODER.encode('..x\r\n') });
    expect(text(feed(session, '250 ok\r\n250 ok\r\n'))).toBe('BDAT 4 LAST\r\n.x\r\n');
  });

  test.each([
    ['a line of a single dot', 'a\r\n.\r\nMAIL FROM:<evil@example.org>\r\n'],
    ['a first line of a single dot', '.\r\nb\r\n'],
    ['no final CRLF', 'a\r\nb'],
  ])('a pre-stuffed message with %s is refused before MAIL', (_, bytes) => {
    const session = readySession(['PIPELINING']);
    const step = session.send({ sender: mailbox('a@example.org'), recipients: [mailbox('b@example.net')], stuffed: ENCODER.encode(bytes) });
    expect(step.out).toHaveLength(0);
    const [outcome] = outcomes(step.events);
    expect(!outcome.ok && outcome.failure.kind).toBe('internal');
  });

  test('one 8-bit byte anywhere in a pre-stuffed view is seen, whatever its alignment', () => {
    for (let start = 0; start < 4; start++) {
      for (let at = 0; at < 11; at++) {
        const backing = new Uint8Array(start + 13).fill(0x61);
        backing.set([13, 10], start + 11);
        backing[start + at] = 0xe9;
        const session = readySession(['PIPELINING']);
        const step = session.send({ sender: mailbox('a@example.org'), recipients: [mailbox('b@example.net')], stuffed: backing.subarray(start) });
        const [outcome] = outcomes(step.events);
        expect(!outcome.ok && outcome.failure.message).toContain('8BITMIME');
      }
    }
  });

  test('a transaction without recipients is refused as a caller error', () => {
    const session = readySession([]);
    const [outcome] = outcomes(session.send(tx('a@example.org', [])).events);
    expect(!outcome.ok && outcome.failure.kind).toBe('internal');
  });

  test('send() after the session closed fails at once', () => {
    const session = readySession([]);
    feed(session, '421 4.4.2 idle timeout\r\n');
    expect(session.closed).toBe(true);
    const [outcome] = outcomes(session.send(tx('a@example.org', ['b@example.net'])).events);
    expect(!outcome.ok && outcome.failure.kind).toBe('connect');
  });

  test('quit() on an idle session says QUIT; 221 closes', () => {
    const session = readySession([]);
    expect(text(session.quit())).toBe('QUIT\r\n');
    const step = feed(session, '221 bye\r\n');
    expect(step.close).toBe(true);
    expect(step.events.some((e) => e.kind === 'closed')).toBe(true);
  });

  test('a server that closes after QUIT without 221 is fine', () => {
    const session = readySession([]);
    session.quit();
    const step = session.peerClosed();
    expect(failures(step.events)).toHaveLength(0);
    expect(step.close).toBe(true);
  });
});

describe('session setup', () => {
  test('EHLO refused with something other than 500/502 fails at ehlo and says QUIT', () => {
    const session = new ClientSession({ ehloName: 'c.example' });
    feed(session, '220 hi\r\n');
    const step = feed(session, '550 5.7.1 go away\r\n');
    expect(failures(step.events)[0].stage).toBe('ehlo');
    expect(text(step)).toBe('QUIT\r\n');
  });

  test('EHLO keywords are read from the multi-line reply', () => {
    const session = readySession(['PIPELINING', 'SIZE 1000', 'AUTH PLAIN LOGIN']);
    expect(session.extensions.get('SIZE')).toEqual(['1000']);
    expect(session.extensions.get('AUTH')).toEqual(['PLAIN', 'LOGIN']);
  });

  test('opportunistic STARTTLS goes on in clear after 454', () => {
    const session = new ClientSession({ ehloName: 'c.example', startTls: 'opportunistic' });
    feed(session, '220 hi\r\n');
    expect(text(feed(session, '250-mx\r\n250 STARTTLS\r\n'))).toBe('STARTTLS\r\n');
    const step = feed(session, '454 4.7.0 TLS not available\r\n');
    expect(step.events.find((e) => e.kind === 'ready')).toEqual({ kind: 'ready', extensions: session.extensions, tls: false });
  });

  test('required STARTTLS without the keyword fails at starttls with kind tls', () => {
    const session = new ClientSession({ ehloName: 'c.example', startTls: 'required' });
    session.send(tx('a@example.org', ['b@example.net']));
    feed(session, '220 hi\r\n');
    const step = feed(session, '250 mx\r\n');
    expect(failures(step.events).map((f) => [f.kind, f.stage])).toEqual([['tls', 'starttls']]);
    expect(outcomes(step.events)).toHaveLength(1);
    expect(text(step)).toBe('QUIT\r\n');
  });

  test('implicit TLS never tries STARTTLS', () => {
    const session = new ClientSession({ ehloName: 'c.example', startTls: 'required', tls: true });
    feed(session, '220 hi\r\n');
    const step = feed(session, '250-mx\r\n250 STARTTLS\r\n');
    expect(step.events.some((e) => e.kind === 'ready')).toBe(true);
    expect(step.out).toHaveLength(0);
  });

  test('a failed TLS handshake closes without QUIT', () => {
    const session = new ClientSession({ ehloName: 'c.example', startTls: 'required' });
    feed(session, '220 hi\r\n');
    feed(session, '250-mx\r\n250 STARTTLS\r\n');
    feed(session, '220 go\r\n');
    expect(session.awaitingStage).toBe('starttls');
    const step = session.tlsFailed('certificate has expired');
    expect(step.out).toHaveLength(0);
    expect(step.close).toBe(true);
    expect(failures(step.events)[0].message).toContain('certificate has expired');
  });
});

describe('protocol errors and timeouts', () => {
  test('a malformed reply fails the session as a protocol error and closes', () => {
    const session = readySession([]);
    session.send(tx('a@example.org', ['b@example.net']));
    const step = feed(session, 'hello there\r\n');
    expect(failures(step.events)[0].kind).toBe('protocol');
    expect(outcomes(step.events)).toHaveLength(1);
    expect(step.close).toBe(true);
  });

  test('a multi-line reply whose code changes is a protocol error (RFC 5321 §4.2.1)', () => {
    const session = new ClientSession({ ehloName: 'c.example' });
    feed(session, '220 hi\r\n');
    const step = feed(session, '250-mx\r\n251 SIZE\r\n');
    expect(failures(step.events)[0]).toMatchObject({ kind: 'protocol', stage: 'ehlo' });
  });

  test('a reply line that never ends is cut off', () => {
    const session = new ClientSession({ ehloName: 'c.example' });
    const step = feed(session, `220 ${'x'.repeat(10_000)}`);
    expect(failures(step.events)[0].kind).toBe('protocol');
  });

  test('an unsolicited reply is a protocol error', () => {
    const session = readySession([]);
    expect(failures(feed(session, '250 surprise\r\n').events)[0].kind).toBe('protocol');
  });

  test('a timeout fails what waits, at the stage it waits in', () => {
    const session = readySession(['PIPELINING']);
    session.send(tx('a@example.org', ['b@example.net']));
    feed(session, '250 ok\r\n');
    expect(session.awaitingStage).toBe('rcpt');
    const step = session.timeout('no reply within 30 s');
    const [outcome] = outcomes(step.events);
    expect(!outcome.ok && [outcome.failure.kind, outcome.failure.stage, outcome.failure.message]).toEqual([
      'connect',
      'rcpt',
      'no reply within 30 s',
    ]);
    expect(step.close).toBe(true);
  });

  test('a timeout while waiting for the reply to QUIT just closes', () => {
    const session = readySession([]);
    session.quit();
    const step = session.timeout();
    expect(failures(step.events)).toHaveLength(0);
    expect(step.close).toBe(true);
  });

  test('replies split at every byte boundary give the same result', () => {
    const replies = '220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 done\r\n221 bye\r\n';
    const bytes = ENCODER.encode(replies);
    for (let cut = 1; cut < bytes.length; cut++) {
      const session = new ClientSession({ ehloName: 'c.example' });
      session.send(tx('a@example.org', ['b@example.net']));
      session.quit();
      const events = [...session.receive(bytes.subarray(0, cut)).events, ...session.receive(bytes.subarray(cut)).events];
      const [outcome] = outcomes(events);
      expect(outcome?.ok).toBe(true);
      expect(session.closed).toBe(true);
    }
  });
});

describe('purity', () => {
  test('client-session.ts and transcript.ts import only other core files', () => {
    for (const file of ['client-session.ts', 'transcript.ts']) {
      const source = readFileSync(join(import.meta.dir, '../../src/core', file), 'utf8');
      const imports = [...source.matchAll(/^\s*import\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1]);
      for (const spec of imports) expect(spec).toMatch(/^\.\/[a-z-]+\.ts$/);
      expect(source).not.toMatch(/\b(Date|setTimeout|setInterval|console|Bun|process)\b[.(]/);
    }
  });
});

describe('the transcript runner', () => {
  const lockstep = readFileSync(join(FIXTURES, 'lockstep-helo-fallback.txt'), 'utf8');

  test('notices a client that writes before the reply it should wait for', () => {
    // The same dialogue where the C: lines expect lock-step, but the server offers PIPELINING.
    const piped = lockstep.replace('S: 502 5.5.1 Command not implemented\nC: HELO client.example\nS: 250 old.example.net', 'S: 250-old.example.net\nS: 250 PIPELINING');
    expect(piped).not.toBe(lockstep);
    expect(() => runClientTranscript(piped, 'line')).toThrow(/the client wrote "RCPT TO:<bob@example.net>"/);
    expect(() => runClientTranscript(piped, 'byte')).toThrow(/the client wrote/);
  });

  test('notices a wrong event', () => {
    const wrong = lockstep.replace('= sent to 2/2: 250 OK id=1', '= sent to 1/2: *');
    for (const mode of FEED_MODES) expect(() => runClientTranscript(wrong, mode)).toThrow(/expects "= sent to 1\/2: \*"/);
  });
});

describe('AUTH secrets stay out of transcripts (RFC 4954 §4)', () => {
  test.each([
    ['auth-plain-after-starttls.txt', ['AGFsaWNlAHMzY3JldA==']],
    ['auth-login.txt', ['YWxpY2U=', 'czNjcmV0']],
    ['auth-cram-md5.txt', ['dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw']],
    ['auth-oauthbearer.txt', ['bixhPWFsaWNlQGV4YW1wbGUub3JnLAFhdXRoPUJlYXJlciB5YTI5LnRvawEB']],
  ])('%s: the wire has the credentials, the transcript entries only <redacted>', (name, secrets) => {
    const run = runClientTranscript(readFileSync(join(FIXTURES, name), 'utf8'), 'whole');
    const wire = run.writes.flat().map((c) => (typeof c === 'string' ? c : DECODER.decode(c))).join('');
    const entries = JSON.stringify(run.transcript);
    const rendered = renderTranscript(run.transcript).join('\n');
    for (const secret of secrets) {
      expect(wire).toContain(secret);
      expect(entries).not.toContain(secret);
      expect(rendered).not.toContain(secret);
    }
    expect(rendered).toMatch(/^C: (AUTH \S+ )?<redacted>$/m);
  });
});
