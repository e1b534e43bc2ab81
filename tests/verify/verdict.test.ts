// Verdicts are judged from evidence by pure functions: RCPT replies by code and enhanced code
// (RFC 5321 §4.2.1, RFC 3463), DNS routes, catch-all and VRFY; plus the hints beside them.
import { describe, expect, test } from 'bun:test';
import { assembleReply, type Reply } from '../../src/core/reply.ts';
import { editDistance, hintsFor, likelyTypo } from '../../src/verify/hints.ts';
import { classifyRcpt, judgeProbe, judgeRoute, REASONS, type ProbeFacts, type RcptClass } from '../../src/verify/verdict.ts';

const r = (line: string): Reply => assembleReply(Number(line.slice(0, 3)), [line.slice(4)]);
const OK = r('250 2.1.0 OK');

describe('classifyRcpt', () => {
  const table: [string, RcptClass][] = [
    ['250 2.1.5 OK', 'accepted'],
    ['251 User not local; will forward', 'accepted'],
    ['550 5.1.1 No such user', 'rejected'],
    ['550 Requested action not taken', 'rejected'],
    ['553 5.1.3 Bad address syntax', 'rejected'],
    ['551 5.1.6 User has moved', 'rejected'],
    ['550 5.2.1 Mailbox disabled', 'disabled'],
    ['552 5.2.2 Mailbox full', 'full'],
    ['552 Requested mail action aborted: exceeded storage allocation', 'full'],
    ['452 4.2.2 Over quota', 'full'],
    ['452 Insufficient system storage', 'full'],
    ['452 4.5.3 Too many recipients', 'too-many'],
    ['450 4.7.1 Greylisted, try again later', 'deferred'],
    ['451 4.3.0 Temporary failure', 'deferred'],
    ['550 5.7.1 Client host blocked using zen.spamhaus.org', 'policy'],
    ['554 5.7.1 Relay access denied', 'policy'],
  ];
  for (const [line, want] of table) test(line, () => expect(classifyRcpt(r(line))).toBe(want));
});

describe('judgeProbe', () => {
  const facts = (over: Partial<ProbeFacts>): ProbeFacts => ({ mail: OK, rcpt: null, vrfy: null, catchAll: false, failure: null, ...over });
  const table: [string, Partial<ProbeFacts>, string][] = [
    ['accepted, random refused', { rcpt: r('250 2.1.5 OK') }, 'deliverable accepted'],
    ['accepted, random accepted', { rcpt: r('250 2.1.5 OK'), catchAll: true }, 'risky catch-all'],
    ['accepted, catch-all not known', { rcpt: r('250 2.1.5 OK'), catchAll: null }, 'risky catch-all-unknown'],
    ['catch-all, VRFY 250', { rcpt: r('250 OK'), catchAll: true, vrfy: r('250 2.1.5 <a@b.test>') }, 'deliverable vrfy-confirmed'],
    ['catch-all, VRFY 550', { rcpt: r('250 OK'), catchAll: true, vrfy: r('550 5.1.1 unknown') }, 'undeliverable vrfy-rejected'],
    ['catch-all, VRFY 252', { rcpt: r('250 OK'), catchAll: true, vrfy: r('252 2.5.2 Cannot VRFY') }, 'risky catch-all'],
    ['refused', { rcpt: r('550 5.1.1 No such user') }, 'undeliverable rejected'],
    ['disabled', { rcpt: r('550 5.2.1 Disabled') }, 'undeliverable mailbox-disabled'],
    ['full 552', { rcpt: r('552 5.2.2 Full') }, 'risky mailbox-full'],
    ['full 452', { rcpt: r('452 4.2.2 Full') }, 'risky mailbox-full'],
    ['greylisted', { rcpt: r('450 4.7.1 Greylisted') }, 'risky greylisted'],
    ['policy', { rcpt: r('554 5.7.1 Blocked') }, 'unknown policy-block'],
    ['sender refused', { mail: r('553 5.7.1 Sender refused'), rcpt: r('503 5.5.1 Need MAIL') }, 'unknown sender-rejected'],
    ['no answer', { rcpt: null, failure: 'connection closed by the server' }, 'unknown smtp-error'],
  ];
  for (const [name, over, want] of table) {
    test(name, () => {
      const j = judgeProbe(facts(over));
      expect(`${j.verdict} ${j.reason}`).toBe(want);
    });
  }
  test('the detail is the deciding reply, verbatim', () => {
    expect(judgeProbe(facts({ rcpt: r('550 5.1.1 <x@y.test>: User unknown') })).detail).toBe('RCPT TO: 550 5.1.1 <x@y.test>: User unknown');
  });
});

describe('judgeRoute', () => {
  test('routes that decide alone', () => {
    expect(judgeRoute({ kind: 'nxdomain' })?.reason).toBe('no-such-domain');
    expect(judgeRoute({ kind: 'null-mx' })?.verdict).toBe('undeliverable');
    expect(judgeRoute({ kind: 'no-mail-host' })?.verdict).toBe('undeliverable');
    expect(judgeRoute({ kind: 'mx-unresolvable' })?.verdict).toBe('undeliverable');
    expect(judgeRoute({ kind: 'temporary', status: 'timeout', why: 'x MX: no answer' })).toEqual({ verdict: 'unknown', reason: 'dns-timeout', detail: 'x MX: no answer' });
    expect(judgeRoute({ kind: 'temporary', status: 'servfail', why: 'x MX: SERVFAIL' })?.reason).toBe('dns-failure');
    expect(judgeRoute({ kind: 'hosts', implicit: true, hosts: [], skipped: [] })).toBeNull();
  });
  test('temporary DNS trouble is never a verdict about the address', () => {
    for (const reason of ['dns-timeout', 'dns-failure'] as const) expect(REASONS[reason].verdict).toBe('unknown');
  });
});

describe('hints', () => {
  test('role accounts, disposable domains, typos of big providers', () => {
    expect(hintsFor({ local: 'postmaster', domain: 'example.org' }).map((h) => h.code)).toEqual(['role-account']);
    expect(hintsFor({ local: 'Info+news', domain: 'example.org' }).map((h) => h.code)).toEqual(['role-account']);
    expect(hintsFor({ local: 'x', domain: 'mailinator.com' }).map((h) => h.code)).toEqual(['disposable-domain']);
    expect(hintsFor({ local: 'x', domain: 'gmial.com' })).toEqual([{ code: 'possible-typo', text: 'did you mean x@gmail.com?', suggestion: 'x@gmail.com' }]);
    expect(hintsFor({ local: 'alice', domain: 'example.org' })).toEqual([]);
    expect(hintsFor({ local: 'alice', domain: 'gmail.com' })).toEqual([]);
  });
  test('typo distance', () => {
    expect(likelyTypo('gmail.con')).toBe('gmail.com');
    expect(likelyTypo('hotmial.com')).toBe('hotmail.com');
    expect(likelyTypo('outlok.com')).toBe('outlook.com');
    expect(likelyTypo('example.com')).toBeNull();
    expect(editDistance('abcd', 'abdc', 2)).toBe(1);
    expect(editDistance('kitten', 'sitting', 5)).toBe(3);
  });
});
