// RFC 3501 §6.4.4: the SEARCH key grammar read into a tree, and the evaluator over message views.
import { describe, expect, test } from 'bun:test';
import { CommandReader, type ImapValue } from '../../../src/core/imap/parser.ts';
import { matchesSearch, parseSearch, parseSearchDate, searchNeeds, sentDay, type SearchContext, type SearchMessage } from '../../../src/core/imap/search.ts';
import { formatStatus } from '../../../src/core/imap/responses.ts';
import { daysFromCivil } from '../../../src/core/calendar.ts';

/** The arguments of one command line, read by the real command reader (LITERAL+ literals allowed). */
function args(line: string): readonly ImapValue[] {
  const reader = new CommandReader({ maxLineBytes: 65536, maxLiteralBytes: 1000 });
  reader.feed(new TextEncoder().encode(`a SEARCH ${line}\r\n`));
  const item = reader.next();
  if (item?.kind !== 'command') throw new Error(`not a command: ${JSON.stringify(item)}`);
  return item.command.args;
}

const parse = (line: string) => parseSearch(args(line));

describe('parseSearch: the RFC 3501 §6.4.4 keys', () => {
  test.each([
    ['ALL', { kind: 'all' }],
    ['answered', { kind: 'flag', flag: '\\Answered', set: true }],
    ['UNSEEN', { kind: 'flag', flag: '\\Seen', set: false }],
    ['DELETED', { kind: 'flag', flag: '\\Deleted', set: true }],
    ['UNDRAFT', { kind: 'flag', flag: '\\Draft', set: false }],
    ['FLAGGED', { kind: 'flag', flag: '\\Flagged', set: true }],
    ['KEYWORD $Label1', { kind: 'flag', flag: '$Label1', set: true }],
    ['UNKEYWORD work', { kind: 'flag', flag: 'work', set: false }],
    ['NEW', { kind: 'and', keys: [{ kind: 'recent', set: true }, { kind: 'flag', flag: '\\Seen', set: false }] }],
    ['OLD', { kind: 'recent', set: false }],
    ['RECENT', { kind: 'recent', set: true }],
    ['BCC x', { kind: 'header', field: 'bcc', text: 'x' }],
    ['CC "a b"', { kind: 'header', field: 'cc', text: 'a b' }],
    ['FROM alice', { kind: 'header', field: 'from', text: 'alice' }],
    ['SUBJECT {5+}\r\nhello', { kind: 'header', field: 'subject', text: 'hello' }],
    ['TO bob', { kind: 'header', field: 'to', text: 'bob' }],
    ['HEADER Message-ID "<x@y>"', { kind: 'header', field: 'message-id', text: '<x@y>' }],
    ['HEADER X-Empty ""', { kind: 'header', field: 'x-empty', text: '' }],
    ['BODY word', { kind: 'body', text: 'word' }],
    ['TEXT word', { kind: 'text', text: 'word' }],
    ['BEFORE 1-Feb-1994', { kind: 'internal-date', op: 'before', day: daysFromCivil(1994, 2, 1) }],
    ['ON "15-mar-2026"', { kind: 'internal-date', op: 'on', day: daysFromCivil(2026, 3, 15) }],
    ['SINCE 29-Feb-2024', { kind: 'internal-date', op: 'since', day: daysFromCivil(2024, 2, 29) }],
    ['SENTBEFORE 1-Jan-2000', { kind: 'sent-date', op: 'before', day: daysFromCivil(2000, 1, 1) }],
    ['SENTON 1-Jan-2000', { kind: 'sent-date', op: 'on', day: daysFromCivil(2000, 1, 1) }],
    ['SENTSINCE 1-Jan-2000', { kind: 'sent-date', op: 'since', day: daysFromCivil(2000, 1, 1) }],
    ['LARGER 100', { kind: 'size', op: 'larger', octets: 100 }],
    ['SMALLER 0', { kind: 'size', op: 'smaller', octets: 0 }],
    ['UID 1:5,9', { kind: 'uid', set: { kind: 'ranges', ranges: [{ from: 1, to: 5 }, { from: 9, to: 9 }] } }],
    ['2:*', { kind: 'sequence', set: { kind: 'ranges', ranges: [{ from: 2, to: '*' }] } }],
    ['$', { kind: 'sequence', set: { kind: 'saved' } }],
    ['NOT SEEN', { kind: 'not', key: { kind: 'flag', flag: '\\Seen', set: true } }],
    ['OR SEEN FLAGGED', { kind: 'or', left: { kind: 'flag', flag: '\\Seen', set: true }, right: { kind: 'flag', flag: '\\Flagged', set: true } }],
    ['(SEEN)', { kind: 'flag', flag: '\\Seen', set: true }],
    ['SEEN LARGER 5', { kind: 'and', keys: [{ kind: 'flag', flag: '\\Seen', set: true }, { kind: 'size', op: 'larger', octets: 5 }] }],
    ['OR (SEEN FLAGGED) NOT (OR DRAFT 1)', {
      kind: 'or',
      left: { kind: 'and', keys: [{ kind: 'flag', flag: '\\Seen', set: true }, { kind: 'flag', flag: '\\Flagged', set: true }] },
      right: { kind: 'not', key: { kind: 'or', left: { kind: 'flag', flag: '\\Draft', set: true }, right: { kind: 'sequence', set: { kind: 'ranges', ranges: [{ from: 1, to: 1 }] } } } },
    }],
  ])('%s', (line, key) => {
    expect(parse(line)).toEqual({ ok: true, charset: 'US-ASCII', key } as never);
  });

  test('RFC 3501 §6.4.4: CHARSET UTF-8 decodes 8-bit strings; US-ASCII refuses them', () => {
    expect(parse('CHARSET UTF-8 SUBJECT "grüße"')).toEqual({ ok: true, charset: 'UTF-8', key: { kind: 'header', field: 'subject', text: 'grüße' } });
    expect(parse('CHARSET utf-8 TEXT {7+}\r\ngrüße')).toEqual({ ok: true, charset: 'UTF-8', key: { kind: 'text', text: 'grüße' } });
    const r = parse('SUBJECT "grüße"');
    expect(r.ok ? '' : formatStatus('a', r.status)).toBe('a BAD Syntax error: 8-bit text needs CHARSET UTF-8\r\n');
  });

  test('RFC 3501 §6.4.4 and §7.1: an unknown charset is NO [BADCHARSET] with the list', () => {
    const r = parse('CHARSET KOI8-R TEXT x');
    expect(r.ok ? '' : formatStatus('a', r.status)).toBe('a NO [BADCHARSET (US-ASCII UTF-8)] Only US-ASCII and UTF-8 are supported\r\n');
  });

  test.each([
    ['', 'SEARCH needs at least one key'],
    ['FOO', '"FOO" is not a search key'],
    ['FROM', 'FROM needs a string'],
    ['OR SEEN', 'SEARCH needs a search key'],
    ['NOT', 'SEARCH needs a search key'],
    ['BEFORE 30-Feb-2026', 'BEFORE needs a date like 1-Feb-1994'],
    ['SINCE 1-Foo-2026', 'SINCE needs a date like 1-Feb-1994'],
    ['SINCE 2026-01-01', 'SINCE needs a date like 1-Feb-1994'],
    ['LARGER x', 'LARGER needs a number'],
    ['LARGER 99999999999', 'LARGER needs a number'],
    ['KEYWORD \\Seen', 'KEYWORD needs a keyword, not "\\Seen"'],
    ['UID x', 'UID needs a sequence set'],
    ['()', 'an empty parenthesised list of keys'],
    ['HEADER "a:b" x', 'HEADER needs a field name'],
    ['CHARSET', 'CHARSET needs a charset name'],
  ])('BAD for %j', (line, why) => {
    const r = line === '' ? parseSearch([]) : parse(line);
    expect(r.ok ? 'ok' : r.status.text).toBe(`Syntax error: ${why}`);
  });

  test('dates: day numbers, leap years, and "disregarding time and timezone" for Date fields', () => {
    expect(parseSearchDate('1-Jan-1970')).toBe(0);
    expect(parseSearchDate('29-Feb-2023')).toBeNull();
    expect(sentDay('Tue, 1 Dec 2026 23:59:59 -1200')).toBe(daysFromCivil(2026, 12, 1));
    expect(sentDay('1 Dec 26 10:00 GMT')).toBe(daysFromCivil(2026, 12, 1));
    expect(sentDay('Mon, 31 December 1999 10:00 +0000')).toBe(daysFromCivil(1999, 12, 31));
    expect(sentDay('garbage')).toBeNull();
  });
});

/** A message view with counted accessor calls, to check laziness. */
function message(over: Partial<SearchMessage> & { headers?: Record<string, string[]>; body?: string } = {}): SearchMessage & { reads: string[] } {
  const reads: string[] = [];
  const headers = over.headers ?? {};
  return {
    seq: over.seq ?? 1,
    uid: over.uid ?? 10,
    flags: over.flags ?? new Set(),
    recent: over.recent ?? false,
    internalDateMs: over.internalDateMs ?? daysFromCivil(2026, 12, 1) * 86_400_000 + 3_600_000,
    size: over.size ?? 1000,
    headerValues(name) {
      reads.push(`header ${name}`);
      return headers[name] ?? [];
    },
    headerText() {
      reads.push('headers');
      return Object.entries(headers).map(([k, v]) => v.map((x) => `${k}: ${x}`).join('\r\n')).join('\r\n');
    },
    bodyText() {
      reads.push('body');
      return over.body ?? '';
    },
    reads,
  };
}

const CTX: SearchContext = { largestSeq: 5, largestUid: 50, savedUids: new Set([10]) };
const matches = (line: string, msg: SearchMessage, ctx = CTX) => {
  const r = parse(line);
  if (!r.ok) throw new Error(r.status.text);
  return matchesSearch(r.key, msg, ctx);
};

describe('matchesSearch (RFC 3501 §6.4.4)', () => {
  const m = message({
    seq: 3,
    uid: 30,
    flags: new Set(['\\Seen', '$Label1']),
    recent: true,
    size: 1000,
    headers: { subject: ['Grüße aus Köln'], from: ['Alice <alice@example.com>'], date: ['Tue, 1 Dec 2026 10:00:00 +0100'], 'x-empty': [''] },
    body: 'The quick brown fox',
  });
  test.each([
    ['ALL', true],
    ['SEEN', true],
    ['seen unseen', false],
    ['UNSEEN', false],
    ['KEYWORD $label1', true],
    ['UNKEYWORD $Label1', false],
    ['NEW', false],
    ['RECENT', true],
    ['OLD', false],
    ['LARGER 999', true],
    ['LARGER 1000', false],
    ['SMALLER 1001', true],
    ['SMALLER 1000', false],
    ['FROM ALICE@EXAMPLE', true],
    ['CHARSET UTF-8 SUBJECT "GRÜSSE"', false],
    ['CHARSET UTF-8 SUBJECT "grüße AUS"', true],
    ['TO alice', false],
    ['HEADER X-Empty ""', true],
    ['HEADER X-Missing ""', false],
    ['BODY QUICK', true],
    ['CHARSET UTF-8 BODY "köln"', false],
    ['CHARSET UTF-8 TEXT "KÖLN"', true],
    ['TEXT fox', true],
    ['ON 1-Dec-2026', true],
    ['SINCE 1-Dec-2026', true],
    ['BEFORE 1-Dec-2026', false],
    ['BEFORE 2-Dec-2026', true],
    ['SENTON 1-Dec-2026', true],
    ['SENTBEFORE 1-Dec-2026', false],
    ['SENTSINCE 2-Dec-2026', false],
    ['3', true],
    ['1:2,4', false],
    ['*', false],
    ['3:*', true],
    ['UID 30', true],
    ['UID 31:*', false],
    ['UID *', false],
    ['NOT SEEN', false],
    ['OR UNSEEN FROM alice', true],
    ['OR UNSEEN (FROM alice DELETED)', false],
    ['$', false],
  ])('%s → %p', (line, want) => expect(matches(line as string, m)).toBe(want as boolean));

  test('"$" is the saved result, as UIDs (RFC 5182 §2.1)', () => {
    expect(matches('$', message({ uid: 10 }))).toBe(true);
    expect(matches('UID $', message({ uid: 10 }), { ...CTX, savedUids: null })).toBe(false);
  });

  test('flags compare case-insensitively (RFC 3501 §2.3.2)', () => {
    expect(matches('FLAGGED', message({ flags: new Set(['\\flagged']) }))).toBe(true);
  });

  test('a message without a readable Date matches no SENT* key', () => {
    expect(matches('SENTSINCE 1-Jan-1970', message({ headers: { date: ['soon'] } }))).toBe(false);
    expect(matches('NOT SENTSINCE 1-Jan-1970', message())).toBe(true);
  });

  test('text accessors are read only for keys that need them', () => {
    const lazy = message({ flags: new Set(['\\Seen']) });
    expect(matches('SEEN UID 1:*', lazy)).toBe(true);
    expect(lazy.reads).toEqual([]);
    expect(matches('OR SEEN BODY x', lazy)).toBe(true);
    expect(lazy.reads).toEqual([]);
    expect(matches('SUBJECT x', lazy)).toBe(false);
    expect(lazy.reads).toEqual(['header subject']);
  });

  test('searchNeeds says what a search reads', () => {
    const needs = (line: string) => {
      const r = parse(line);
      return r.ok ? searchNeeds(r.key) : null;
    };
    expect(needs('SEEN UID 1:*')).toEqual({ headers: false, body: false });
    expect(needs('OR SUBJECT a SEEN')).toEqual({ headers: true, body: false });
    expect(needs('NOT BODY a')).toEqual({ headers: false, body: true });
    expect(needs('TEXT a')).toEqual({ headers: true, body: true });
  });
});
