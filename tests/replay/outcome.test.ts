import { describe, expect, test } from 'bun:test';
import type { OutgoingTransaction, TransactionOutcome } from '../../src/core/client-session.ts';
import { ClientFailure } from '../../src/core/errors.ts';
import { reply } from '../../src/core/reply.ts';
import { countResult, emptyTotals, parseExpectedCode, refusedRecipients, resultOf, unsentResult } from '../../src/replay/outcome.ts';
import type { ReplayItem } from '../../src/replay/sources.ts';
import { mailbox } from '../helpers/mailbox.ts';

const to = [mailbox('b@x.test'), mailbox('c@x.test')];
const recipients = to.map((m) => ({ mailbox: m, local: false, params: [] }));
const item = { file: 'f.smtp', offset: 9, id: 'm1', sourceBytes: 10 } as ReplayItem;
const tx: OutgoingTransaction = { sender: mailbox('a@x.test'), recipients: to, stuffed: new Uint8Array(0) };
const ok250 = reply(250, '2.1.5', 'OK');
const no550 = reply(550, '5.1.1', 'No such user');

function sent(rcpt: (typeof ok250)[]): TransactionOutcome {
  return { ok: true, transaction: tx, reply: reply(250, '2.0.0', 'queued'), recipients: rcpt.map((r, i) => ({ mailbox: to[i], reply: r, accepted: r.code < 300 })) };
}

describe('replay outcomes', () => {
  test('all accepted: sent; some refused: partial, and only those are refused', () => {
    expect(resultOf(item, tx.sender, recipients, sent([ok250, ok250]), 1, null).verdict).toBe('sent');
    const partial = resultOf(item, tx.sender, recipients, sent([ok250, no550]), 1, null);
    expect(partial.verdict).toBe('partial');
    expect(refusedRecipients(partial).map((r) => r.mailbox.local)).toEqual(['c']);
  });

  test('failures: 4xx and lost connections are temporary, 5xx and local refusals permanent', () => {
    const fail = (failure: ClientFailure): TransactionOutcome => ({ ok: false, transaction: tx, failure, recipients: [] });
    const verdict = (f: ClientFailure) => resultOf(item, tx.sender, recipients, fail(f), 1, null).verdict;
    expect(verdict(new ClientFailure('rejected', 'message', 'message rejected', reply(451, '4.3.0', 'try later')))).toBe('temp');
    expect(verdict(new ClientFailure('rejected', 'message', 'message rejected', reply(554, '5.7.1', 'no')))).toBe('perm');
    expect(verdict(new ClientFailure('connect', 'data', 'connection closed by the server'))).toBe('temp');
    expect(verdict(new ClientFailure('rejected', 'mail', 'the server does not offer SMTPUTF8'))).toBe('perm');
    expect(unsentResult(item, null, recipients, new ClientFailure('connect', 'connect', 'refused'), null).verdict).toBe('temp');
  });

  test('--expect checks every RCPT reply and the final one, and quotes what differs', () => {
    const expect250 = parseExpectedCode('250')!;
    expect(resultOf(item, tx.sender, recipients, sent([ok250, ok250]), 1, expect250).mismatches).toEqual([]);
    expect(resultOf(item, tx.sender, recipients, sent([ok250, no550]), 1, expect250).mismatches).toEqual(['RCPT TO:<c@x.test>: 550 5.1.1 No such user']);
    const all550: TransactionOutcome = {
      ok: false,
      transaction: tx,
      failure: new ClientFailure('rejected', 'rcpt', 'all 2 recipients rejected', no550),
      recipients: to.map((m) => ({ mailbox: m, reply: no550, accepted: false })),
    };
    expect(resultOf(item, tx.sender, recipients, all550, 1, parseExpectedCode('5xx')).mismatches).toEqual([]);
    expect(unsentResult(item, null, recipients, new ClientFailure('connect', 'connect', 'connection refused'), expect250).mismatches).toEqual(['no reply: connection refused']);
  });

  test.each(['250', '2xx', '55X', '4x1'])('--expect %s parses', (text) => expect(parseExpectedCode(text)).not.toBeNull());
  test.each(['25', '2500', '199', '6xx', 'ok'])('--expect %s does not', (text) => expect(parseExpectedCode(text)).toBeNull());

  test('totals count each verdict and each transaction that differed', () => {
    const totals = emptyTotals();
    countResult(totals, resultOf(item, tx.sender, recipients, sent([ok250, ok250]), 1, null));
    countResult(totals, resultOf(item, tx.sender, recipients, sent([ok250, no550]), 1, parseExpectedCode('250')));
    expect(totals).toMatchObject({ transactions: 2, sent: 1, partial: 1, mismatched: 1 });
  });
});
