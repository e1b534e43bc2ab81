import { describe, expect, test } from 'bun:test';
import { UsageError } from '../../src/cli/exit-codes.ts';
import { formatMailbox } from '../../src/core/address.ts';
import { globPattern } from '../../src/core/address-pattern.ts';
import { decide, parseEnvelopeRules } from '../../src/replay/envelope-rules.ts';
import type { ReplayItem } from '../../src/replay/sources.ts';
import { mailbox } from '../helpers/mailbox.ts';

function item(sender: string | null | undefined, recipients: string[], extra: Partial<ReplayItem> = {}): ReplayItem {
  return {
    file: 'seg.smtp',
    offset: 9,
    id: 'm1',
    messageId: null,
    timeMs: Date.parse('2026-11-27T10:00:00Z'),
    sender: sender === null || sender === undefined ? sender : mailbox(sender),
    recipients: recipients.map((r) => ({ mailbox: mailbox(r), local: false, params: [] })),
    recipientsProblem: recipients.length === 0 ? 'the header names no recipient (To, Cc, Bcc)' : null,
    mailParams: [],
    authUser: null,
    body: { stuffed: new Uint8Array(0) },
    sourceBytes: 100,
    ...extra,
  };
}

/** The decision as text: "from → to,to", "skip", or "problem: reason". */
function run(flags: Record<string, unknown>, it: ReplayItem): string {
  const d = decide(it, parseEnvelopeRules(flags));
  if (d.kind === 'skip') return 'skip';
  if (d.kind === 'problem') return `problem: ${d.reason}`;
  return `${d.sender === null ? '<>' : formatMailbox(d.sender)} → ${d.recipients.map((r) => formatMailbox(r.mailbox)).join(',')}`;
}

const recorded = item('alice@example.com', ['bob@example.com', 'carol@other.org']);

describe('envelope rules: --filter, then --rewrite-domain, then --from/--to', () => {
  test.each([
    [{}, 'alice@example.com → bob@example.com,carol@other.org'],
    [{ to: ['qa@staging.test'] }, 'alice@example.com → qa@staging.test'],
    [{ to: ['a@x.test,b@x.test'] }, 'alice@example.com → a@x.test,b@x.test'],
    [{ from: '<>' }, '<> → bob@example.com,carol@other.org'],
    [{ from: 'ops@example.net' }, 'ops@example.net → bob@example.com,carol@other.org'],
    [{ rewriteDomain: ['EXAMPLE.com=staging.example.net'] }, 'alice@staging.example.net → bob@staging.example.net,carol@other.org'],
    [{ filter: ['to=*@other.org'] }, 'alice@example.com → carol@other.org'],
    [{ filter: ['to=@example.com'] }, 'alice@example.com → bob@example.com'],
    [{ filter: ['to=nobody@*'] }, 'skip'],
    [{ filter: ['to=BOB@example.com', 'to=carol@*'] }, 'alice@example.com → bob@example.com,carol@other.org'],
    [{ filter: ['from=alice@*'] }, 'alice@example.com → bob@example.com,carol@other.org'],
    [{ filter: ['from=mallory@*'] }, 'skip'],
    [{ filter: ['from=alice@*', 'to=zed@*'] }, 'skip'],
    [{ filter: ['id=m?'] }, 'alice@example.com → bob@example.com,carol@other.org'],
    [{ filter: ['id=m2'] }, 'skip'],
    [{ filter: ['since=2026-11-27'] }, 'alice@example.com → bob@example.com,carol@other.org'],
    [{ filter: ['since=2026-11-28'] }, 'skip'],
    [{ filter: ['until=2026-11-27T10:00:00Z'] }, 'skip'],
    [{ filter: ['to=carol@*'], rewriteDomain: ['other.org=example.net'], from: 'x@y.test' }, 'x@y.test → carol@example.net'],
  ] as const)('%j', (flags, expected) => {
    expect(run(flags as Record<string, unknown>, recorded)).toBe(expected);
  });

  test('a message file whose header gives no envelope needs --from/--to, and says so', () => {
    expect(run({}, item(undefined, ['b@x.test']))).toBe('problem: no sender: the header has no Return-Path or From (give --from)');
    expect(run({ from: 'a@x.test' }, item(undefined, ['b@x.test']))).toBe('a@x.test → b@x.test');
    expect(run({}, item('a@x.test', []))).toBe('problem: no recipients: the header names no recipient (To, Cc, Bcc) (give --to)');
    expect(run({ to: ['c@x.test'] }, item('a@x.test', []))).toBe('a@x.test → c@x.test');
  });

  test('date filters leave out items of unknown date; id= also matches a Message-ID', () => {
    expect(run({ filter: ['since=2020-01-01'] }, item('a@x.test', ['b@x.test'], { timeMs: null }))).toBe('skip');
    expect(run({ filter: ['id=*@mail.example'] }, item('a@x.test', ['b@x.test'], { id: null, messageId: 'abc@mail.example' }))).toBe('a@x.test → b@x.test');
  });

  test.each([
    [{ filter: ['color=red'] }, /--filter color=red: expected to=PATTERN/],
    [{ filter: ['to='] }, /--filter to=: expected/],
    [{ filter: ['since=yesterday'] }, /is not a date/],
    [{ rewriteDomain: ['example.com'] }, /expected OLD=NEW/],
    [{ to: ['not an address'] }, /--to not an address/],
    [{ from: ['a@x.test', 'b@x.test'] }, /--from may be given once/],
  ] as const)('%j is a usage error', (flags, message) => {
    expect(() => parseEnvelopeRules(flags as Record<string, unknown>)).toThrow(UsageError);
    expect(() => parseEnvelopeRules(flags as Record<string, unknown>)).toThrow(message);
  });

  test('globPattern: * and ? only, the rest literal, whole-string, any case', () => {
    expect(globPattern('a.b*').test('A.Bcd')).toBe(true);
    expect(globPattern('a.b*').test('axb')).toBe(false);
    expect(globPattern('m?').test('m12')).toBe(false);
  });
});
