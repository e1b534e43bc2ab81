// Every client failure carries a status Reply (the server's, or the client catalogue's), and
// permanent or temporary follows from its code alone (RFC 5321 §4.2.1, RFC 3463 §3.1).
import { describe, expect, test } from 'bun:test';
import { clientReplies } from '../../src/core/client-replies.ts';
import { ClientSession, type ClientEvent, type TransactionOutcome } from '../../src/core/client-session.ts';
import { ClientFailure } from '../../src/core/errors.ts';
import { reply } from '../../src/core/reply.ts';
import { mailbox } from '../helpers/mailbox.ts';

const ENCODER = new TextEncoder();
const outcomes = (events: readonly ClientEvent[]): TransactionOutcome[] => events.flatMap((e) => (e.kind === 'outcome' ? [e.outcome] : []));

function ready(keywords: string[]): ClientSession {
  const session = new ClientSession({ ehloName: 'client.example' });
  session.receive(ENCODER.encode('220 mx ESMTP\r\n'));
  const lines = ['mx', ...keywords];
  session.receive(ENCODER.encode(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('')));
  return session;
}

function refusal(keywords: string[], to: string, message: string, dsn?: { notify: ['SUCCESS'] }): ClientFailure {
  const [outcome] = outcomes(ready(keywords).send({ sender: mailbox('a@example.org'), recipients: [mailbox(to)], message: ENCODER.encode(message), dsn }).events);
  if (outcome.ok) throw new Error('expected a refusal');
  return outcome.failure;
}

describe("the client core's own refusals carry catalogue replies and are permanent", () => {
  const cases: [string, () => ClientFailure, number, string][] = [
    ['over SIZE', () => refusal(['SIZE 10'], 'b@example.net', 'x'.repeat(100)), 552, '5.3.4'],
    ['8-bit without 8BITMIME', () => refusal([], 'b@example.net', 'Grüße\n'), 554, '5.6.3'],
    ['non-ASCII address without SMTPUTF8', () => refusal(['8BITMIME'], 'jörg@example.net', 'x\n'), 553, '5.6.7'],
    ['DSN asked, not offered', () => refusal([], 'b@example.net', 'x\n', { notify: ['SUCCESS'] }), 554, '5.3.3'],
  ];
  for (const [name, make, code, enhanced] of cases) {
    test(name, () => {
      const failure = make();
      expect([failure.reply, failure.status.code, failure.status.enhanced, failure.permanent]).toEqual([undefined, code, enhanced, true]);
      expect(failure.message).toBe(failure.status.lines.join(' '));
    });
  }
});

describe('status by kind when no reply decides', () => {
  test('no answer, a broken connection, TLS and protocol trouble are temporary', () => {
    expect(new ClientFailure('connect', 'connect', 'refused').status.enhanced).toBe('4.4.1');
    expect(new ClientFailure('connect', 'data', 'closed').status.enhanced).toBe('4.4.2');
    expect(new ClientFailure('tls', 'starttls', 'handshake failed').status.enhanced).toBe('4.7.5');
    expect(new ClientFailure('protocol', 'mail', 'malformed').status.enhanced).toBe('4.5.0');
    for (const kind of ['connect', 'tls', 'protocol'] as const) expect(new ClientFailure(kind, 'mail', 'x').permanent).toBe(false);
  });

  test('a timeout is "no answer" (4.4.1)', () => {
    const session = new ClientSession({ ehloName: 'c' });
    const failed = session.timeout('no reply within 5 s').events.flatMap((e) => (e.kind === 'failed' ? [e.failure] : []));
    expect(failed[0].status.enhanced).toBe('4.4.1');
  });

  test("the server's reply decides over the kind, and a told-again failure keeps its status", () => {
    const f = new ClientFailure('tls', 'starttls', 'refused', reply(554, '5.7.0', 'no TLS for you'));
    expect([f.status.code, f.permanent]).toEqual([554, true]);
    const told = f.withMessage('send via x failed: refused');
    expect([told.kind, told.stage, told.reply, told.status, told.permanent]).toEqual([f.kind, f.stage, f.reply, f.status, true]);
  });

  test('route failures: null MX 5.1.10 and no such domain 5.1.2 are permanent; DNS trouble 4.4.3 is not', () => {
    const status = (r: ReturnType<typeof clientReplies.nullMx>) => new ClientFailure('rejected', 'connect', r.lines[0], undefined, { status: r });
    expect([clientReplies.nullMx('n.test').enhanced, status(clientReplies.nullMx('n.test')).permanent]).toEqual(['5.1.10', true]);
    expect([clientReplies.noSuchDomain('x.test').enhanced, status(clientReplies.noSuchDomain('x.test')).permanent]).toEqual(['5.1.2', true]);
    expect([clientReplies.dnsTemporary('x.test', 'SERVFAIL').enhanced, status(clientReplies.dnsTemporary('x.test', 'SERVFAIL')).permanent]).toEqual(['4.4.3', false]);
  });
});
