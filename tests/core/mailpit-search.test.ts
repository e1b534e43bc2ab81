// Table tests of the Mailpit search parser. Each row cites where research/mailpit-api.md §1.5
// (or the client it quotes) describes the behaviour.
import { expect, test } from 'bun:test';
import { daysFromCivil } from '../../src/core/calendar.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { cleanText, parseMailpitSearch, parseSearchDate, parseSearchSize, searchDateToMs, splitArgs, type SearchTerm } from '../../src/core/mailpit-search.ts';

const terms = (q: string, extensions = false) => parseMailpitSearch(q, { extensions }).terms;
const text = (value: string, negated = false): SearchTerm => ({ kind: 'text', value, negated });

test.each<[string, string, SearchTerm[]]>([
  ['§1.5 free text is ANDed words', 'hello World', [text('hello'), text('world')]],
  ['§1.5 a quoted phrase is one term; quotes are dropped', '"two words" x', [text('two words'), text('x')]],
  ['§1.5 no escape: a quote always toggles', 'a"b c"d', [text('ab cd')]],
  ['§1.5 `-` negates', '-spam', [text('spam', true)]],
  ['§1.5 `!` negates', '!spam', [text('spam', true)]],
  ['a lone `-` is not a negation', '- x', [text('x')]],
  ['§1.5 prefixes are case-insensitive', 'TO:Bob@X.test', [{ kind: 'address', field: 'to', value: 'bob@x.test', negated: false }]],
  ['§1.5 to: is a substring filter (pytest-mailpit: to:a@x.test finds ba@x.test)', 'to:a@x.test', [{ kind: 'address', field: 'to', value: 'a@x.test', negated: false }]],
  ['§1.5 to:"john doe" matches the display name', 'to:"john doe"', [{ kind: 'address', field: 'to', value: 'john doe', negated: false }]],
  ['§1.5 from:, cc:, bcc:, reply-to:, addressed:', 'from:a cc:b bcc:c reply-to:d addressed:e', [
    { kind: 'address', field: 'from', value: 'a', negated: false },
    { kind: 'address', field: 'cc', value: 'b', negated: false },
    { kind: 'address', field: 'bcc', value: 'c', negated: false },
    { kind: 'address', field: 'reply-to', value: 'd', negated: false },
    { kind: 'address', field: 'addressed', value: 'e', negated: false },
  ]],
  ['§1.5 address values are cleaned of <>', 'from:<Ann@X.test>', [{ kind: 'address', field: 'from', value: 'ann@x.test', negated: false }]],
  ['§1.5 subject: is not cleaned', 'subject:"Two Words"', [{ kind: 'subject', value: 'Two Words', negated: false }]],
  ['§2 cypress-mailpit: an unquoted subject:two words is subject AND free text', 'subject:two words', [{ kind: 'subject', value: 'two', negated: false }, text('words')]],
  ['§1.5 message-id:', 'message-id:<abc@x>', [{ kind: 'message-id', value: 'abc@x', negated: false }]],
  ['§1.5 tag:', '-tag:Urgent', [{ kind: 'tag', value: 'urgent', negated: true }]],
  ['§1.5 is:read / is:unread / is:tagged', 'is:read !is:unread is:TAGGED', [
    { kind: 'flag', flag: 'read', negated: false },
    { kind: 'flag', flag: 'unread', negated: true },
    { kind: 'flag', flag: 'tagged', negated: false },
  ]],
  ['§1.5 has:attachment(s) and has:inline(s)', 'has:attachment has:attachments -has:inline has:inlines', [
    { kind: 'flag', flag: 'attachment', negated: false },
    { kind: 'flag', flag: 'attachment', negated: false },
    { kind: 'flag', flag: 'inline', negated: true },
    { kind: 'flag', flag: 'inline', negated: false },
  ]],
  ['an unknown is: value is free text, as in Mailpit', 'is:starred', [text('is:starred')]],
  ['§1.5 larger:/smaller: take N[k|kb|m|mb]', 'larger:2MB smaller:10k -larger:1.5m smaller:300', [
    { kind: 'size', op: 'larger', bytes: 2 * 1024 * 1024, negated: false },
    { kind: 'size', op: 'smaller', bytes: 10 * 1024, negated: false },
    { kind: 'size', op: 'larger', bytes: 1572864, negated: true },
    { kind: 'size', op: 'smaller', bytes: 300, negated: false },
  ]],
  ['§1.5 after:/before: (yyyy/mm/dd advised)', 'after:2024/01/02 -before:2024-03-04', [
    { kind: 'date', op: 'after', date: { kind: 'civil', year: 2024, month: 1, day: 2, hour: 0, minute: 0, second: 0, millisecond: 0, offsetMinutes: null }, negated: false },
    { kind: 'date', op: 'before', date: { kind: 'civil', year: 2024, month: 3, day: 4, hour: 0, minute: 0, second: 0, millisecond: 0, offsetMinutes: null }, negated: true },
  ]],
  ['§1.5 US order mm/dd', 'after:01/02/2024', [{ kind: 'date', op: 'after', date: { kind: 'civil', year: 2024, month: 1, day: 2, hour: 0, minute: 0, second: 0, millisecond: 0, offsetMinutes: null }, negated: false }]],
  ['free text is cleaned: `<>",;()` are spaces', 'a;b (c)', [text('a b'), text('c')]],
  ['LIKE wildcards stay literal in the term (§1.5: the quirk to fix)', '100% a_b', [text('100%'), text('a_b')]],
])('%s: %s', (_why, query, expected) => {
  expect(terms(query)).toEqual(expected);
});

test.each<[string, string]>([
  ['§1.5 invalid dates are dropped', 'after:yesterday'],
  ['§1.5 impossible dates are dropped', 'before:2024-02-30'],
  ['§1.5 invalid sizes are dropped', 'larger:lots'],
  ['zero or unknown units are dropped', 'smaller:0 larger:5gb'],
  ['a filter with no value is dropped', 'to: from:"" subject:'],
  ['terms without a letter or digit are dropped', '- !! *** "<>"'],
])('%s, and a query of dropped terms matches everything: %s', (_why, query) => {
  const q = parseMailpitSearch(query);
  expect(q.terms).toEqual([]);
  expect(q.dropped.length).toBeGreaterThan(0);
});

test('empty and blank queries have no terms', () => {
  expect(parseMailpitSearch('')).toEqual({ terms: [], dropped: [] });
  expect(parseMailpitSearch('   ')).toEqual({ terms: [], dropped: [] });
});

test('a non-ASCII word is searched, not ignored as Mailpit does', () => {
  expect(terms('日本 Ünïcödé')).toEqual([text('日本'), text('ünïcödé')]);
});

test('our keywords exist only with extensions on (the Mailpit routes read them as free text)', () => {
  expect(terms('rcpt:a@x.test')).toEqual([text('rcpt:a@x.test')]);
  expect(terms('rcpt:<A@X.test> -mailfrom:<> inbox:b@x.test rcpt:', true)).toEqual([
    { kind: 'envelope', field: 'rcpt', value: 'A@X.test', negated: false },
    { kind: 'envelope', field: 'mailfrom', value: '', negated: true },
    { kind: 'envelope', field: 'rcpt', value: 'b@x.test', negated: false },
  ]);
});

test('splitArgs and cleanText follow Mailpit', () => {
  expect(splitArgs('  a  "b c"d "e')).toEqual(['a', 'b cd', 'e']);
  expect(cleanText(' A\tB\r\n<c>,"d";(e)\uFEFF ')).toBe('a b c d e');
});

test('cleanText equals its one-regex definition on random text', () => {
  // The definition: every run of \s or <>",;() becomes one space, then trim and lower-case.
  const definition = (t: string) => t.replace(/[\s<>",;()]+/g, ' ').trim().toLowerCase();
  // Every code unit \s matches, two it does not (U+180E, U+200B), and a lone surrogate.
  const alphabet = [...' \t\n\r\v\f<>",;()aZé\u00a0\u1680\u2000\u2003\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u180e\u200b😀.', '\ud800'];
  const r = seededRandom(7);
  for (let k = 0; k < 20_000; k++) {
    let t = '';
    for (let n = Math.floor(r() * 24); n > 0; n--) t += alphabet[Math.floor(r() * alphabet.length)];
    expect(cleanText(t)).toBe(definition(t));
  }
});

test.each<[string, number | null]>([
  ['1', 1], ['1k', 1024], ['1 kb', 1024], ['1.5K', 1536], ['2m', 2097152], ['3MB', 3145728], ['1g', null], ['-1', null], ['k', null], ['0.0001k', null],
])('size %s', (input, bytes) => expect(parseSearchSize(input)).toBe(bytes));

const civil = (year: number, month: number, day: number, hour = 0, minute = 0, second = 0, millisecond = 0, offsetMinutes: number | null = null) => ({ kind: 'civil', year, month, day, hour, minute, second, millisecond, offsetMinutes });

test.each<[string, unknown]>([
  ['2024-01-02', civil(2024, 1, 2)],
  ['2024.1.2', civil(2024, 1, 2)],
  ['20240102', civil(2024, 1, 2)],
  ['2024-01-02T10:20:30Z', civil(2024, 1, 2, 10, 20, 30, 0, 0)],
  ['2024-01-02 10:20:30.123456+05:30', civil(2024, 1, 2, 10, 20, 30, 123, 330)],
  ['2024-01-02 10:20 -0800', civil(2024, 1, 2, 10, 20, 0, 0, -480)],
  ['12/31/2024', civil(2024, 12, 31)],
  ['1/2/24 3:04 pm', civil(2024, 1, 2, 15, 4)],
  ['2 Jan 2006', civil(2006, 1, 2)],
  ['Jan 2 2006', civil(2006, 1, 2)],
  ['january 2nd 2006', civil(2006, 1, 2)],
  ['mon 02 jan 2006 15:04:05 -0700', civil(2006, 1, 2, 15, 4, 5, 0, -420)],
  ['2006-Feb-12', civil(2006, 2, 12)],
  ['2024-02-29', civil(2024, 2, 29)],
  ['1700000000', { kind: 'epoch', ms: 1_700_000_000_000 }],
  ['1700000000123', { kind: 'epoch', ms: 1_700_000_000_123 }],
  ['2023-02-29', null],
  ['13/01/2024', null],
  ['2024-01-02 25:00', null],
  ['12:00 pm', null],
  ['2024-01-02 10:00 +5', null],
  ['tomorrow', null],
])('date %s', (input, expected) => expect(parseSearchDate(input)).toEqual(expected as never));

test('dates become instants: with a zone exactly, without one in the caller\'s zone', () => {
  expect(daysFromCivil(1970, 1, 1)).toBe(0);
  expect(daysFromCivil(2000, 3, 1)).toBe(11017);
  expect(daysFromCivil(1969, 12, 31)).toBe(-1);
  const utc = () => 0;
  expect(searchDateToMs(parseSearchDate('2024-01-02T10:20:30Z')!, utc)).toBe(1704190830000);
  expect(searchDateToMs(parseSearchDate('2024-01-02T10:20:30+01:00')!, () => 999)).toBe(1704190830000 - 3_600_000);
  expect(searchDateToMs(parseSearchDate('2024-01-02 10:20:30')!, () => 120)).toBe(1704190830000 - 7_200_000);
  expect(searchDateToMs({ kind: 'epoch', ms: 5 }, utc)).toBe(5);
});
