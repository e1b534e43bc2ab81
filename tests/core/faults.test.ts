// Scripted faults: the file's rules (parsed and checked), the decision table, and the server
// session carrying the actions out (a reply in place of the normal one, a delay, a drop, silence).
import { describe, expect, test } from 'bun:test';
import { FaultPlan, describeFaultAction, parseFaultRules, type FaultAction, type FaultRule, type FaultStage } from '../../src/core/faults.ts';
import { DEFAULT_LIMITS } from '../../src/core/limits.ts';
import { ServerSession, type ServerConfig, type Step } from '../../src/core/server-session.ts';

function rules(json: unknown): readonly FaultRule[] {
  const parsed = parseFaultRules(json);
  if (!parsed.ok) throw new Error(parsed.why);
  return parsed.rules;
}

function why(json: unknown): string {
  const parsed = parseFaultRules(json);
  return parsed.ok ? 'accepted' : parsed.why;
}

/** What the plan does for a run of events: one short word per event. */
function run(plan: FaultPlan, events: readonly [FaultStage, string | null, number?][]): string[] {
  return events.map(([stage, address, now]) => {
    const d = plan.decide(stage, address, now ?? 0);
    return d === null ? '-' : `${d.index}:${describeFaultAction(d.action)}`;
  });
}

describe('parsing and checking a faults file', () => {
  test('both shapes, every action, and the reply forms', () => {
    const parsed = rules({
      rules: [
        { name: 'greylist', stage: 'rcpt', address: '@example.org', reply: '450 4.2.0 Greylisted, try later', times: 2 },
        { stage: 'connect', reply: { code: 421, enhanced: '4.3.2', text: 'Not now' }, every: 3 },
        { stage: 'data', drop: { afterBytes: 100 } },
        { stage: 'quit', drop: true, delayMs: 5 },
        { stage: 'mail', silent: true },
        { stage: 'ehlo', delayMs: 250 },
        { stage: 'mail', rateLimit: { limit: 3, windowMs: 60000, code: 421 } },
        { stage: 'end-of-data', reply: '554' },
      ],
    });
    expect(parsed.map((r) => [r.name, r.stage, r.address, r.effect.kind === 'action' ? describeFaultAction(r.effect.action) : `rate ${r.effect.limit}/${r.effect.windowMs}`])).toEqual([
      ['greylist', 'rcpt', '@example.org', 'reply 450 4.2.0'],
      ['#2', 'connect', null, 'reply 421 4.3.2'],
      ['#3', 'data', null, 'drop after 100 bytes'],
      ['#4', 'quit', null, 'drop after 5ms'],
      ['#5', 'mail', null, 'silence'],
      ['#6', 'ehlo', null, 'delay 250ms'],
      ['#7', 'mail', null, 'rate 3/60000'],
      ['#8', 'end-of-data', null, 'reply 554 5.0.0'],
    ]);
    const greylist = parsed[0].effect;
    expect(greylist.kind === 'action' && greylist.action.kind === 'reply' ? greylist.action.reply.lines : null).toEqual(['Greylisted, try later']);
    expect(rules([{ stage: 'rcpt', reply: '550' }])).toHaveLength(1);
    expect(rules([])).toEqual([]);
  });

  const BAD: [string, unknown, string][] = [
    ['a scalar', 42, 'expected {"rules": [...]} or an array of rules'],
    ['an unknown top key', { rules: [], rule: [] }, 'unknown key "rule" at the top (use "rules")'],
    ['a rule that is no object', ['x'], 'rule 1: must be an object'],
    ['an unknown stage', [{ stage: 'helo', reply: '550' }], 'rule 1: "stage" must be one of connect, ehlo, starttls, auth, mail, rcpt, data, end-of-data, bdat, quit, not "helo"'],
    ['a misspelt key', [{ stage: 'rcpt', reply: '550', time: 2 }], 'rule 1: unknown key "time"'],
    ['no action', [{ stage: 'rcpt' }], 'rule 1: needs an action'],
    ['two actions', [{ stage: 'rcpt', reply: '550', drop: true }], 'rule 1: give one action, not "reply" and "drop"'],
    ['an address outside mail and rcpt', [{ stage: 'data', address: '*', reply: '550' }], 'rule 1: "address" applies only to stages mail and rcpt, not data'],
    ['a 3xx reply', [{ stage: 'data', reply: '354 go' }], 'rule 1: "reply" code 354 must be 2xx, 4xx or 5xx'],
    ['a reply that is no reply', [{ stage: 'rcpt', reply: 'no thanks' }], 'rule 1: "reply" "no thanks" is not "CODE [X.Y.Z] [text]"'],
    ['a mismatched enhanced code', [{ stage: 'rcpt', reply: { code: 550, enhanced: '4.1.1' } }], 'rule 1: "reply" enhanced code 4.1.1 does not fit reply code 550'],
    ['times and every', [{ stage: 'rcpt', reply: '450', times: 2, every: 3 }], 'rule 1: "times" and "every" exclude each other'],
    ['times zero', [{ stage: 'rcpt', reply: '450', times: 0 }], 'rule 1: "times" must be a whole number from 1 up, not 0'],
    ['a negative delay', [{ stage: 'mail', delayMs: -1 }], 'rule 1: "delayMs" must be a whole number from 0 to 3600000, not -1'],
    ['afterBytes outside data', [{ stage: 'rcpt', drop: { afterBytes: 3 } }], 'rule 1: "drop.afterBytes" applies only to stage data'],
    ['a rate limit with another code', [{ stage: 'mail', rateLimit: { limit: 1, windowMs: 1000, code: 450 } }], 'rule 1: "rateLimit.code" must be 421 or 451, not 450'],
    ['a rate limit with a schedule', [{ stage: 'mail', rateLimit: { limit: 1, windowMs: 1000 }, times: 1 }], 'rule 1: "rateLimit" takes no "delayMs", "times" or "every"'],
    ['silent false', [{ stage: 'mail', silent: false }], 'rule 1: "silent" must be true'],
    ['the second rule, named', [{ stage: 'mail', silent: true }, { name: 'x', stage: 'rcpt', reply: 42 }], 'rule 2 ("x"): "reply" must be a string'],
  ];
  for (const [label, json, expected] of BAD) {
    test(`refused: ${label}`, () => {
      expect(why(json)).toStartWith(expected);
      expect(why(json)).not.toContain('\n');
    });
  }
});

describe('the decision table', () => {
  test('times N: the first N matches, then never; counted per rule', () => {
    const plan = new FaultPlan(rules([{ stage: 'rcpt', reply: '450 4.2.0 later', times: 2 }]));
    expect(run(plan, [['rcpt', 'a@x.org'], ['mail', 'a@x.org'], ['rcpt', 'b@x.org'], ['rcpt', 'c@x.org'], ['rcpt', 'd@x.org']])).toEqual(['1:reply 450 4.2.0', '-', '1:reply 450 4.2.0', '-', '-']);
  });

  test('every K: the Kth, 2Kth, … match', () => {
    const plan = new FaultPlan(rules([{ stage: 'connect', reply: '421 4.3.2 busy', every: 3 }]));
    expect(run(plan, Array.from({ length: 7 }, () => ['connect', null] as [FaultStage, null]))).toEqual(['-', '-', '1:reply 421 4.3.2', '-', '-', '1:reply 421 4.3.2', '-']);
  });

  test('address patterns: exact, glob, @domain, <>; an unreadable address matches only rules without one', () => {
    const plan = new FaultPlan(
      rules([
        { stage: 'rcpt', address: 'bob@example.org', reply: '550 5.1.1 no bob' },
        { stage: 'rcpt', address: '@spam.test', reply: '554 5.7.1 spam' },
        { stage: 'rcpt', address: 'c?@*', reply: '551' },
        { stage: 'mail', address: '<>', reply: '553' },
      ]),
    );
    expect(run(plan, [['rcpt', 'BOB@Example.ORG'], ['rcpt', 'x@spam.test'], ['rcpt', 'x@sub.spam.test'], ['rcpt', 'c1@a.b'], ['rcpt', 'c12@a.b'], ['rcpt', null], ['mail', ''], ['mail', 'a@b.c']])).toEqual([
      '1:reply 550 5.1.1',
      '2:reply 554 5.7.1',
      '-',
      '3:reply 551 5.0.0',
      '-',
      '-',
      '4:reply 553 5.0.0',
      '-',
    ]);
  });

  test('the first rule that fires decides; a rule that matches but does not fire still counts', () => {
    const plan = new FaultPlan(
      rules([
        { stage: 'rcpt', address: '@x.org', reply: '450', every: 2 },
        { stage: 'rcpt', reply: '550', times: 1 },
      ]),
    );
    // a@x.org: rule 1 counts (1, no), rule 2 fires (1). b@x.org: rule 1 fires (2). c@y: rule 1 skips, rule 2 counts (2, no).
    expect(run(plan, [['rcpt', 'a@x.org'], ['rcpt', 'b@x.org'], ['rcpt', 'c@y.org'], ['rcpt', 'd@x.org'], ['rcpt', 'e@x.org']])).toEqual(['2:reply 550 5.0.0', '1:reply 450 4.0.0', '-', '-', '1:reply 450 4.0.0']);
  });

  test('a rate limit: N per window from its first match, then 421 or 451, and a fresh window after it', () => {
    const plan = new FaultPlan(rules([{ stage: 'mail', rateLimit: { limit: 2, windowMs: 1000 } }]));
    expect(run(plan, [['mail', 'a@b.c', 0], ['mail', 'a@b.c', 10], ['mail', 'a@b.c', 999], ['mail', 'a@b.c', 1000], ['mail', 'a@b.c', 1500], ['mail', 'a@b.c', 1999], ['mail', 'a@b.c', 5000]])).toEqual([
      '-',
      '-',
      '1:reply 451 4.7.0',
      '-',
      '-',
      '1:reply 451 4.7.0',
      '-',
    ]);
    const closing = new FaultPlan(rules([{ stage: 'connect', rateLimit: { limit: 0, windowMs: 1, code: 421 } }]));
    expect(run(closing, [['connect', null]])).toEqual(['1:reply 421 4.7.0']);
  });

  test('the same events give the same answers on a fresh plan (deterministic, no randomness)', () => {
    const json = [{ stage: 'rcpt', reply: '450', every: 2 }, { stage: 'data', drop: { afterBytes: 10 }, times: 1 }];
    const events: [FaultStage, string | null][] = [['rcpt', 'a@b'], ['data', null], ['rcpt', 'a@b'], ['data', null], ['rcpt', 'a@b']];
    expect(run(new FaultPlan(rules(json)), events)).toEqual(run(new FaultPlan(rules(json)), events));
    expect(run(new FaultPlan(rules(json)), events)).toEqual(['-', '2:drop after 10 bytes', '1:reply 450 4.0.0', '-', '-']);
  });
});

describe('the server session carries the actions out', () => {
  const enc = new TextEncoder();
  function session(json: unknown, asked: string[] = []) {
    const plan = new FaultPlan(rules(json));
    const config: ServerConfig = {
      hostname: 'mx.test',
      limits: { ...DEFAULT_LIMITS, commandTimeoutMs: 1000 },
      localDomains: null,
      relay: false,
      trusted: false,
      clientAddress: '192.0.2.1',
      tls: 'none',
      requireTls: false,
      auth: null,
      postmaster: { local: 'postmaster', domain: 'mx.test' },
      newId: () => 'ID1',
      faults: (stage, address): FaultAction | null => {
        asked.push(address === null ? stage : `${stage} ${address}`);
        return plan.decide(stage, address, 0)?.action ?? null;
      },
    };
    return new ServerSession(config, 0);
  }
  const send = (s: ServerSession, text: string): Step => s.receive(enc.encode(text), 0);
  const codes = (step: Step) => step.out.split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3));

  test('421 at connect: the greeting is replaced and the connection closes', () => {
    const step = session([{ stage: 'connect', reply: '421 4.3.2 Not today' }]).greet(0);
    expect(step.out).toBe('421 4.3.2 Not today\r\n');
    expect(step.close).toBe(true);
  });

  test('450 for the first two RCPTs, then the normal reply; the sender and recipient are what rules see', () => {
    const asked: string[] = [];
    const s = session([{ stage: 'rcpt', address: '@example.org', reply: '450 4.2.0 Later', times: 2 }], asked);
    s.greet(0);
    const step = send(s, 'EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT TO:<Postmaster>\r\n');
    expect(codes(step)).toEqual(['250', '250', '450', '450', '250', '250']);
    expect(asked).toEqual(['connect', 'ehlo', 'mail ', 'rcpt a@example.org', 'rcpt b@example.org', 'rcpt c@example.org', 'rcpt postmaster']);
    // Scripted refusals are never charged to the client.
    expect(step.delayMs).toBe(0);
  });

  test('a delay is carried in the step, before the normal reply', () => {
    const s = session([{ stage: 'mail', delayMs: 700 }]);
    s.greet(0);
    send(s, 'EHLO c\r\n');
    const step = send(s, 'MAIL FROM:<a@b.test>\r\n');
    expect([step.delayMs, codes(step)]).toEqual([700, ['250']]);
  });

  test('a drop mid-DATA closes after N bytes of the message, without a reply', () => {
    const s = session([{ stage: 'data', drop: { afterBytes: 20 } }]);
    s.greet(0);
    expect(codes(send(s, 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n'))).toEqual(['250', '250', '250', '354']);
    const first = send(s, 'Subject: x\r\n\r\n');
    expect([first.out, first.close]).toEqual(['', false]);
    const second = send(s, 'more than enough bytes\r\n.\r\n');
    expect([second.out, second.close, second.events.length]).toEqual(['', true, 0]);
  });

  test('silence: nothing is answered, and the idle timeout closes without a word', () => {
    const s = session([{ stage: 'mail', silent: true }]);
    s.greet(0);
    send(s, 'EHLO c\r\n');
    const step = send(s, 'MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nQUIT\r\n');
    expect([step.out, step.close]).toEqual(['', false]);
    expect(s.deadline).toBe(1000);
    const end = s.tick(1000);
    expect([end.out, end.close]).toEqual(['', true]);
  });

  test('end-of-data: the reply replaces the commit, and the transaction is over', () => {
    const s = session([{ stage: 'end-of-data', reply: '452 4.3.1 Full', times: 1 }]);
    s.greet(0);
    const step = send(s, 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n');
    expect(codes(step).at(-1)).toBe('354');
    const end = send(s, 'hi\r\n.\r\nMAIL FROM:<a@b.test>\r\n');
    expect([codes(end), end.events.filter((e) => e.kind === 'message').length]).toEqual([['452', '250'], 0]);
  });

  test('a BDAT chunk answered by a rule ends the transaction; the chunk is still read', () => {
    const s = session([{ stage: 'bdat', reply: '451 4.3.0 Chunk lost' }]);
    s.greet(0);
    const step = send(s, 'EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 5\r\nhelloNOOP\r\n');
    expect(codes(step)).toEqual(['250', '250', '250', '451', '250']);
    expect(s.state).toBe('ready');
  });

  test('QUIT answered by a rule still closes', () => {
    const s = session([{ stage: 'quit', reply: '550 5.0.0 No goodbye' }]);
    s.greet(0);
    const step = send(s, 'QUIT\r\n');
    expect([codes(step), step.close]).toEqual([['550'], true]);
  });
});
