/**
 * @module Mailpit's search language, parsed into terms that are ANDed (research/mailpit-api.md §1.5).
 * Rule 1: Mailpit's meaning, quirks included: the query splits on spaces outside double quotes
 *         and every `"` is then dropped (no escape); a leading `-` or `!` negates; prefixes are
 *         case-insensitive; a filter with an empty value, or an invalid date or size, is dropped,
 *         so a query of dropped terms matches everything.
 * Rule 2: pure. Dates stay calendar fields here; turning a date without a zone into an instant
 *         needs the caller's time zone (Mailpit's `tz`), which the executor supplies.
 * Rule 3: our own keywords (rcpt:, mailfrom:, inbox:) exist only when the caller asks for them,
 *         so Mailpit's routes never give a Mailpit query a meaning Mailpit does not.
 */
import { daysFromCivil } from './calendar.ts';
import { WHITESPACE_BUT_SPACE_CLASS } from './whitespace.ts';

export type AddressField = 'to' | 'from' | 'cc' | 'bcc' | 'reply-to' | 'addressed';
export type SearchFlag = 'read' | 'unread' | 'tagged' | 'attachment' | 'inline';

/** A date as written: calendar fields with the offset if one was given, or an exact instant. */
export type SearchDate =
  | { readonly kind: 'epoch'; readonly ms: number }
  | {
      readonly kind: 'civil';
      readonly year: number;
      readonly month: number;
      readonly day: number;
      readonly hour: number;
      readonly minute: number;
      readonly second: number;
      readonly millisecond: number;
      /** Minutes east of UTC when the text named a zone; null means the caller's zone. */
      readonly offsetMinutes: number | null;
    };

export type SearchTerm =
  /** Substring of the lower-cased search text (headers, body text, attachment names). */
  | { readonly kind: 'text'; readonly value: string; readonly negated: boolean }
  /** Substring of "Name <address>" lists; `addressed` is any of the five fields. */
  | { readonly kind: 'address'; readonly field: AddressField; readonly value: string; readonly negated: boolean }
  /** Substring of the Subject, not cleaned (Mailpit passes the value as typed). */
  | { readonly kind: 'subject'; readonly value: string; readonly negated: boolean }
  | { readonly kind: 'message-id'; readonly value: string; readonly negated: boolean }
  /** Exact tag name (case-insensitive). */
  | { readonly kind: 'tag'; readonly value: string; readonly negated: boolean }
  | { readonly kind: 'flag'; readonly flag: SearchFlag; readonly negated: boolean }
  /** after: is Created >= t (negated: <= t); before: is Created <= t (negated: >= t). */
  | { readonly kind: 'date'; readonly op: 'after' | 'before'; readonly date: SearchDate; readonly negated: boolean }
  /** larger: is Size > n (negated: < n); smaller: is Size < n (negated: > n). */
  | { readonly kind: 'size'; readonly op: 'larger' | 'smaller'; readonly bytes: number; readonly negated: boolean }
  /** Ours: exact envelope address, the domain without regard to case. */
  | { readonly kind: 'envelope'; readonly field: 'rcpt' | 'mailfrom'; readonly value: string; readonly negated: boolean };

export interface SearchQuery {
  readonly terms: readonly SearchTerm[];
  /** Terms that were dropped, as typed (for logs and tests; they match everything). */
  readonly dropped: readonly string[];
}

export interface SearchOptions {
  /** Accept rcpt:, mailfrom: and inbox: (our API only). */
  readonly extensions?: boolean;
}

/** Parses a Mailpit search query. Never throws; unknown syntax is free text. */
export function parseMailpitSearch(query: string, options: SearchOptions = {}): SearchQuery {
  const terms: SearchTerm[] = [];
  const dropped: string[] = [];
  for (const raw of splitArgs(query)) {
    if (cleanText(raw) === '') continue;
    let word = raw;
    let negated = false;
    if (word.length > 1 && (word[0] === '-' || word[0] === '!')) {
      negated = true;
      word = word.slice(1);
    }
    // Mailpit skips a term with nothing alphanumeric in it; we count any letter or digit, so a
    // search for "日本" is not silently ignored as it is with Mailpit's ASCII-only test.
    if (!/[\p{L}\p{N}]/u.test(word)) {
      dropped.push(raw);
      continue;
    }
    const term = parseTerm(word, negated, options);
    if (term === null) dropped.push(raw);
    else terms.push(term);
  }
  return { terms, dropped };
}

const ADDRESS_PREFIXES: readonly AddressField[] = ['to', 'from', 'cc', 'bcc', 'reply-to', 'addressed'];
const FLAGS: Readonly<Record<string, SearchFlag>> = {
  'is:read': 'read',
  'is:unread': 'unread',
  'is:tagged': 'tagged',
  'has:attachment': 'attachment',
  'has:attachments': 'attachment',
  'has:inline': 'inline',
  'has:inlines': 'inline',
};

function parseTerm(word: string, negated: boolean, options: SearchOptions): SearchTerm | null {
  const lower = word.toLowerCase();
  const prefix = (p: string) => lower.startsWith(`${p}:`);
  const rest = (p: string) => word.slice(p.length + 1);
  for (const field of ADDRESS_PREFIXES) {
    if (prefix(field)) {
      const value = cleanText(rest(field));
      return value === '' ? null : { kind: 'address', field, value, negated };
    }
  }
  if (prefix('subject')) {
    const value = rest('subject');
    return value === '' ? null : { kind: 'subject', value, negated };
  }
  if (prefix('message-id')) {
    const value = cleanText(rest('message-id'));
    return value === '' ? null : { kind: 'message-id', value, negated };
  }
  if (prefix('tag')) {
    const value = cleanText(rest('tag'));
    return value === '' ? null : { kind: 'tag', value, negated };
  }
  const flag = FLAGS[lower];
  if (flag !== undefined) return { kind: 'flag', flag, negated };
  for (const op of ['after', 'before'] as const) {
    if (prefix(op)) {
      const date = parseSearchDate(cleanText(rest(op)));
      return date === null ? null : { kind: 'date', op, date, negated };
    }
  }
  for (const op of ['larger', 'smaller'] as const) {
    if (prefix(op)) {
      const bytes = parseSearchSize(cleanText(rest(op)));
      return bytes === null ? null : { kind: 'size', op, bytes, negated };
    }
  }
  if (options.extensions === true) {
    for (const [p, field] of [['rcpt', 'rcpt'], ['inbox', 'rcpt'], ['mailfrom', 'mailfrom']] as const) {
      if (prefix(p)) {
        const value = rest(p).trim().replace(/^<(.*)>$/, '$1');
        return value === '' && field === 'rcpt' ? null : { kind: 'envelope', field, value, negated };
      }
    }
  }
  const value = cleanText(word);
  return value === '' ? null : { kind: 'text', value, negated };
}

/**
 * Mailpit's argument splitter: spaces outside double quotes separate terms, then every `"` is
 * removed. There is no escape, so a term can never contain a `"`.
 */
export function splitArgs(query: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const c of query) {
    if (c === '"') quoted = !quoted;
    else if (c === ' ' && !quoted) {
      if (current !== '') out.push(current);
      current = '';
    } else current += c;
  }
  if (current !== '') out.push(current);
  return out;
}

/**
 * The cleaning Mailpit applies to stored search text and to query values: line breaks, tabs and
 * `<>",;()` become spaces, U+FEFF too, whitespace collapses, and the result is lower-cased.
 */
export function cleanText(text: string): string {
  // \s holds \r, \n, \t and U+FEFF, and trim() strips what \s matches. A lone space is left
  // as it is, so only the runs that change are replaced: most text has far fewer of them than
  // spaces, and each costs the regex a replacement (a 1 KB body: 3.7 µs instead of 13.8).
  return text.replace(SEPARATOR_RUNS, ' ').trim().toLowerCase();
}

/**
 * Runs of `\s<>",;()` that are not a single space: two or more, or one other than a space. The
 * one is a single class, `\s` less the space spelled out (ECMA-262 WhiteSpace and
 * LineTerminator), rather than `[^\S ]|[<>",;()]`: the regex then tries two alternatives at each
 * character instead of three (1 KB of 78-character lines: 1.6 µs instead of 5; of prose: 6
 * instead of 8.7).
 */
const SEPARATOR_RUNS = new RegExp(`[\\s<>",;()]{2,}|[${WHITESPACE_BUT_SPACE_CLASS}<>",;()]`, 'g');

/** `N[.N][ ][k|kb|m|mb]` (case-insensitive) in bytes; 0, junk or another unit is null. */
export function parseSearchSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?) ?([a-z]{1,2})?$/.exec(text.toLowerCase());
  if (m === null) return null;
  const n = Number(m[1]);
  const unit = m[2] ?? '';
  const factor = unit === '' ? 1 : unit === 'k' || unit === 'kb' ? 1024 : unit === 'm' || unit === 'mb' ? 1024 * 1024 : 0;
  const bytes = Math.trunc(n * factor);
  return bytes > 0 ? bytes : null;
}

const MONTHS: Readonly<Record<string, number>> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, sept: 9, oct: 10, nov: 11, dec: 12,
  january: 1, february: 2, march: 3, april: 4, june: 6, july: 7, august: 8, september: 9, october: 10, november: 11, december: 12,
};

const ZONES: Readonly<Record<string, number>> = { z: 0, utc: 0, gmt: 0, ut: 0, est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420 };

/**
 * The date forms Mailpit's date parser (araddon/dateparse) is documented to take and its users
 * write: ISO `yyyy-mm-dd[Thh:mm[:ss[.fff]]][Z|±hh:mm]` (also with `/` or `.`), US `mm/dd/yyyy`,
 * month names (`2 Jan 2006`, `Jan 2, 2006`, RFC 5322 dates with a weekday), `yyyymmdd`, and Unix
 * timestamps in seconds or milliseconds. Anything else, or an impossible date, is null.
 */
export function parseSearchDate(input: string): SearchDate | null {
  const text = input.trim().toLowerCase().replace(/\s+/g, ' ');
  if (/^\d{9,10}$/.test(text)) return { kind: 'epoch', ms: Number(text) * 1000 };
  if (/^\d{13}$/.test(text)) return { kind: 'epoch', ms: Number(text) };
  let m = /^(\d{4})(\d{2})(\d{2})$/.exec(text);
  if (m !== null) return civil(+m[1], +m[2], +m[3], '');
  m = /^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[t ](.*))?$/.exec(text);
  if (m !== null) return civil(+m[1], +m[3], +m[4], m[5] ?? '');
  m = /^(\d{1,2})\/(\d{1,2})\/(\d{4}|\d{2})(?: (.*))?$/.exec(text);
  if (m !== null) return civil(fullYear(m[3]), +m[1], +m[2], m[4] ?? '');
  // RFC 5322 §3.3: an optional day of the week comes first.
  const words = text.replace(/^(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,? /, '');
  m = /^(\d{1,2})[ -]([a-z]+)\.?[ -](\d{4}|\d{2})(?: (.*))?$/.exec(words);
  if (m !== null && MONTHS[m[2]] !== undefined) return civil(fullYear(m[3]), MONTHS[m[2]], +m[1], m[4] ?? '');
  m = /^([a-z]+)\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})(?: (.*))?$/.exec(words);
  if (m !== null && MONTHS[m[1]] !== undefined) return civil(+m[3], MONTHS[m[1]], +m[2], m[4] ?? '');
  m = /^(\d{4})-([a-z]+)-(\d{1,2})(?: (.*))?$/.exec(words);
  if (m !== null && MONTHS[m[2]] !== undefined) return civil(+m[1], MONTHS[m[2]], +m[3], m[4] ?? '');
  return null;
}

function fullYear(text: string): number {
  const n = Number(text);
  return text.length === 2 ? 2000 + n : n;
}

/** The optional time and zone after a date: `hh:mm[:ss[.fff]] [am|pm] [Z|±hh[:]mm|UTC|GMT…]`. */
function civil(year: number, month: number, day: number, timeText: string): SearchDate | null {
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || year < 1 || year > 9999) return null;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let millisecond = 0;
  let offsetMinutes: number | null = null;
  const t = timeText.trim();
  if (t !== '') {
    const m = /^(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?: ?(am|pm))?(?: ?(z|[+-]\d{2}:?\d{2}|[a-z]{1,4}))?(?: \([a-z ]+\))?$/.exec(t);
    if (m === null) return null;
    hour = Number(m[1]);
    minute = Number(m[2]);
    second = m[3] === undefined ? 0 : Number(m[3]);
    millisecond = m[4] === undefined ? 0 : Number(m[4].slice(0, 3).padEnd(3, '0'));
    if (m[5] !== undefined) {
      if (hour < 1 || hour > 12) return null;
      hour = (hour % 12) + (m[5] === 'pm' ? 12 : 0);
    }
    if (m[6] !== undefined) {
      const zone = m[6];
      if (zone in ZONES) offsetMinutes = ZONES[zone];
      else {
        const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone);
        if (z === null) return null;
        offsetMinutes = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3]));
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return null;
  }
  return { kind: 'civil', year, month, day, hour, minute, second, millisecond, offsetMinutes };
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * The instant a search date names. A date without a zone is read in the caller's zone:
 * `offsetAt(localMs)` gives that zone's offset in minutes for a wall-clock time.
 */
export function searchDateToMs(date: SearchDate, offsetAt: (wallClockMs: number) => number): number {
  if (date.kind === 'epoch') return date.ms;
  const wall = daysFromCivil(date.year, date.month, date.day) * 86_400_000 + ((date.hour * 60 + date.minute) * 60 + date.second) * 1000 + date.millisecond;
  const offset = date.offsetMinutes ?? offsetAt(wall);
  return wall - offset * 60_000;
}
