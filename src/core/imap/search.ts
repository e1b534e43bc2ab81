/**
 * @module SEARCH (RFC 3501 §6.4.4): the search keys read into a tree, and a pure evaluator of
 * that tree over one message at a time.
 * Rule 1: the parser knows every key of RFC 3501 §6.4.4 and answers BAD for anything else, and
 *         NO [BADCHARSET] for a charset other than US-ASCII and UTF-8.
 * Rule 2: the evaluator reads a message only through SearchMessage, whose text accessors are
 *         called only for the keys that need them, so the store can load headers and bodies lazily.
 * Rule 3: string keys are case-insensitive substring matches on decoded text (§6.4.4); dates
 *         are compared as days, "disregarding time and timezone".
 */
import { daysFromCivil } from '../calendar.ts';
import { monthNumber } from './format.ts';
import { astringText, parseNumber, parseSequenceSet, sequenceSetHas, type ImapValue, type SequenceSet } from './parser.ts';
import { imapResponses, type ImapStatus } from './responses.ts';

export type DateOp = 'before' | 'on' | 'since';

export type SearchKey =
  | { readonly kind: 'all' }
  | { readonly kind: 'and'; readonly keys: readonly SearchKey[] }
  | { readonly kind: 'or'; readonly left: SearchKey; readonly right: SearchKey }
  | { readonly kind: 'not'; readonly key: SearchKey }
  /** A flag or keyword set (or, with set false, not set): ANSWERED, UNSEEN, KEYWORD x… */
  | { readonly kind: 'flag'; readonly flag: string; readonly set: boolean }
  | { readonly kind: 'recent'; readonly set: boolean }
  /** BEFORE, ON, SINCE on the internal date; days since 1970-01-01. */
  | { readonly kind: 'internal-date'; readonly op: DateOp; readonly day: number }
  /** SENTBEFORE, SENTON, SENTSINCE on the Date header field. */
  | { readonly kind: 'sent-date'; readonly op: DateOp; readonly day: number }
  | { readonly kind: 'size'; readonly op: 'larger' | 'smaller'; readonly octets: number }
  /** HEADER, and BCC, CC, FROM, SUBJECT, TO as the header fields they name (lower case). */
  | { readonly kind: 'header'; readonly field: string; readonly text: string }
  | { readonly kind: 'body'; readonly text: string }
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'sequence'; readonly set: SequenceSet }
  | { readonly kind: 'uid'; readonly set: SequenceSet };

export type SearchCharset = 'US-ASCII' | 'UTF-8';

export type SearchRequest =
  | { readonly ok: true; readonly charset: SearchCharset; readonly key: SearchKey }
  | { readonly ok: false; readonly status: ImapStatus };

/** One message as SEARCH sees it; text accessors may be lazy and are called only when needed. */
export interface SearchMessage {
  readonly seq: number;
  readonly uid: number;
  /** Flags and keywords as stored ("\Seen", "$Label"); compared case-insensitively. */
  readonly flags: ReadonlySet<string>;
  readonly recent: boolean;
  /** The internal date, epoch milliseconds, taken in UTC. */
  readonly internalDateMs: number;
  /** RFC822.SIZE: the exact size in octets. */
  readonly size: number;
  /** The decoded values (RFC 2047 words and charsets undone) of every field named so (lower case). */
  headerValues(name: string): readonly string[];
  /** Every header field, decoded, for TEXT. */
  headerText(): string;
  /** The decoded text of the body's text parts, for BODY and TEXT. */
  bodyText(): string;
}

/** What "*" and "$" stand for while a search runs. */
export interface SearchContext {
  readonly largestSeq: number;
  readonly largestUid: number;
  /** RFC 5182: the UIDs the last SEARCH RETURN (SAVE) kept, or null when none was saved. */
  readonly savedUids: ReadonlySet<number> | null;
}

class SearchSyntaxError extends Error {}

const FLAG_KEYS: Record<string, { flag: string; set: boolean }> = {
  ANSWERED: { flag: '\\Answered', set: true },
  DELETED: { flag: '\\Deleted', set: true },
  DRAFT: { flag: '\\Draft', set: true },
  FLAGGED: { flag: '\\Flagged', set: true },
  SEEN: { flag: '\\Seen', set: true },
  UNANSWERED: { flag: '\\Answered', set: false },
  UNDELETED: { flag: '\\Deleted', set: false },
  UNDRAFT: { flag: '\\Draft', set: false },
  UNFLAGGED: { flag: '\\Flagged', set: false },
  UNSEEN: { flag: '\\Seen', set: false },
};
const ADDRESS_KEYS: Record<string, string> = { BCC: 'bcc', CC: 'cc', FROM: 'from', SUBJECT: 'subject', TO: 'to' };
const DATE_KEYS: Record<string, { kind: 'internal-date' | 'sent-date'; op: DateOp }> = {
  BEFORE: { kind: 'internal-date', op: 'before' },
  ON: { kind: 'internal-date', op: 'on' },
  SINCE: { kind: 'internal-date', op: 'since' },
  SENTBEFORE: { kind: 'sent-date', op: 'before' },
  SENTON: { kind: 'sent-date', op: 'on' },
  SENTSINCE: { kind: 'sent-date', op: 'since' },
};

/** RFC 3501 §9: date = date-text / DQUOTE date-text DQUOTE; date-text = 1*2DIGIT "-" month "-" 4DIGIT. */
export function parseSearchDate(text: string): number | null {
  const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(text);
  if (!m) return null;
  const month = monthNumber(m[2]);
  const day = Number(m[1]);
  const year = Number(m[3]);
  if (month === null || day < 1 || day > daysInMonth(year, month)) return null;
  return daysFromCivil(year, month, day);
}

function daysInMonth(year: number, month: number): number {
  return daysFromCivil(month === 12 ? year + 1 : year, month === 12 ? 1 : month + 1, 1) - daysFromCivil(year, month, 1);
}

/** Reads keys from the argument list, one at a time. */
class KeyReader {
  readonly #args: readonly ImapValue[];
  readonly #decode: (v: ImapValue) => string | null;
  #i = 0;

  constructor(args: readonly ImapValue[], decode: (v: ImapValue) => string | null) {
    this.#args = args;
    this.#decode = decode;
  }

  get done(): boolean {
    return this.#i >= this.#args.length;
  }

  #take(what: string, after: string): ImapValue {
    const v = this.#args[this.#i++];
    if (v === undefined) throw new SearchSyntaxError(`${after} needs ${what}`);
    return v;
  }

  #string(after: string): string {
    const text = this.#decode(this.#take('a string', after));
    if (text === null) throw new SearchSyntaxError(`${after} needs a string`);
    return text;
  }

  #atom(what: string, after: string): string {
    const v = this.#take(what, after);
    if (v.kind !== 'atom') throw new SearchSyntaxError(`${after} needs ${what}`);
    return v.value;
  }

  /** RFC 3501 §9 search-key. */
  key(depth: number): SearchKey {
    if (depth > 100) throw new SearchSyntaxError('search keys nested too deeply');
    const v = this.#take('a search key', 'SEARCH');
    if (v.kind === 'list') {
      if (v.items.length === 0) throw new SearchSyntaxError('an empty parenthesised list of keys');
      const inner = new KeyReader(v.items, this.#decode);
      const keys: SearchKey[] = [];
      while (!inner.done) keys.push(inner.key(depth + 1));
      return keys.length === 1 ? keys[0] : { kind: 'and', keys };
    }
    if (v.kind !== 'atom') throw new SearchSyntaxError('a search key is an atom or a parenthesised list');
    const name = v.value.toUpperCase();
    const flag = FLAG_KEYS[name];
    if (flag) return { kind: 'flag', flag: flag.flag, set: flag.set };
    const field = ADDRESS_KEYS[name];
    if (field) return { kind: 'header', field, text: this.#string(name) };
    const date = DATE_KEYS[name];
    if (date) {
      const arg = this.#take('a date', name);
      const text = arg.kind === 'atom' ? arg.value : arg.kind === 'string' && !arg.literal ? this.#decode(arg) : null;
      const day = text === null ? null : parseSearchDate(text);
      if (day === null) throw new SearchSyntaxError(`${name} needs a date like 1-Feb-1994`);
      return { kind: date.kind, op: date.op, day };
    }
    switch (name) {
      case 'ALL':
        return { kind: 'all' };
      case 'NEW':
        // RFC 3501 §6.4.4: NEW is RECENT UNSEEN.
        return { kind: 'and', keys: [{ kind: 'recent', set: true }, { kind: 'flag', flag: '\\Seen', set: false }] };
      case 'OLD':
        return { kind: 'recent', set: false };
      case 'RECENT':
        return { kind: 'recent', set: true };
      case 'KEYWORD':
      case 'UNKEYWORD': {
        const keyword = this.#atom('a keyword', name);
        if (keyword.startsWith('\\') || /[\]*%]/.test(keyword)) throw new SearchSyntaxError(`${name} needs a keyword, not "${keyword}"`);
        return { kind: 'flag', flag: keyword, set: name === 'KEYWORD' };
      }
      case 'LARGER':
      case 'SMALLER': {
        const octets = parseNumber(this.#atom('a number', name));
        if (octets === null) throw new SearchSyntaxError(`${name} needs a number`);
        return { kind: 'size', op: name === 'LARGER' ? 'larger' : 'smaller', octets };
      }
      case 'HEADER': {
        const fieldName = this.#string(name);
        if (!/^[\x21-\x39\x3b-\x7e]+$/.test(fieldName)) throw new SearchSyntaxError('HEADER needs a field name');
        return { kind: 'header', field: fieldName.toLowerCase(), text: this.#string(name) };
      }
      case 'BODY':
        return { kind: 'body', text: this.#string(name) };
      case 'TEXT':
        return { kind: 'text', text: this.#string(name) };
      case 'NOT':
        return { kind: 'not', key: this.key(depth + 1) };
      case 'OR': {
        const left = this.key(depth + 1);
        return { kind: 'or', left, right: this.key(depth + 1) };
      }
      case 'UID': {
        const set = parseSequenceSet(this.#atom('a sequence set', name));
        if (set === null) throw new SearchSyntaxError('UID needs a sequence set');
        return { kind: 'uid', set };
      }
      default: {
        const set = parseSequenceSet(v.value);
        if (set === null) throw new SearchSyntaxError(`"${v.value}" is not a search key`);
        return { kind: 'sequence', set };
      }
    }
  }
}

/**
 * Reads the arguments of SEARCH (RFC 3501 §6.4.4): ["CHARSET" SP astring SP] 1*search-key,
 * several keys meaning all of them.
 */
export function parseSearch(args: readonly ImapValue[]): SearchRequest {
  let rest = args;
  let charset: SearchCharset = 'US-ASCII';
  const first = args[0];
  if (first?.kind === 'atom' && first.value.toUpperCase() === 'CHARSET') {
    const name = astringText(args[1])?.toUpperCase();
    if (name === undefined) return { ok: false, status: imapResponses.badSyntax('CHARSET needs a charset name') };
    // RFC 3501 §6.4.4: US-ASCII must be supported; RFC 6855 §3 and RFC 9051 add UTF-8.
    if (name !== 'US-ASCII' && name !== 'UTF-8') return { ok: false, status: imapResponses.badCharset() };
    charset = name;
    rest = args.slice(2);
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const decode = (v: ImapValue): string | null => {
    if (v.kind === 'atom') return v.value;
    if (v.kind !== 'string') return null;
    if (charset === 'US-ASCII' && v.bytes.some((b) => b > 127)) throw new SearchSyntaxError('8-bit text needs CHARSET UTF-8');
    try {
      return decoder.decode(v.bytes);
    } catch {
      throw new SearchSyntaxError('a string is not valid UTF-8');
    }
  };
  try {
    if (rest.length === 0) throw new SearchSyntaxError('SEARCH needs at least one key');
    const reader = new KeyReader(rest, decode);
    const keys: SearchKey[] = [];
    while (!reader.done) keys.push(reader.key(0));
    return { ok: true, charset, key: keys.length === 1 ? keys[0] : { kind: 'and', keys } };
  } catch (error) {
    if (error instanceof SearchSyntaxError) return { ok: false, status: imapResponses.badSyntax(error.message) };
    throw error;
  }
}

/** Case-insensitive substring match (RFC 3501 §6.4.4), with Unicode case folding. */
function contains(haystack: string, needle: string): boolean {
  if (needle === '') return true;
  return haystack.toLowerCase().includes(needle.toLowerCase());
}

function hasFlag(flags: ReadonlySet<string>, flag: string): boolean {
  if (flags.has(flag)) return true;
  const lower = flag.toLowerCase();
  for (const f of flags) if (f.toLowerCase() === lower) return true;
  return false;
}

function compareDay(day: number, op: DateOp, key: number): boolean {
  if (op === 'before') return day < key;
  if (op === 'on') return day === key;
  return day >= key;
}

/**
 * The day of an RFC 5322 §3.3 Date field as written in it ("Tue, 1 Dec 2026 10:00:00 +0100" is
 * 1 Dec 2026 whatever its zone), or null when the field cannot be read.
 */
export function sentDay(value: string): number | null {
  const m = /(?:^|[\s,])(\d{1,2})\s+([A-Za-z]{3})[a-z]*\s+(\d{2,4})\b/.exec(value);
  if (!m) return null;
  const month = monthNumber(m[2]);
  if (month === null) return null;
  let year = Number(m[3]);
  // RFC 5322 §4.3: a two-digit year is 19xx from 50, else 20xx; three digits add 1900.
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[3].length === 3) year += 1900;
  const day = Number(m[1]);
  if (day < 1 || day > daysInMonth(year, month)) return null;
  return daysFromCivil(year, month, day);
}

/** RFC 3501 §6.4.4: whether one message matches the key. */
export function matchesSearch(key: SearchKey, msg: SearchMessage, ctx: SearchContext): boolean {
  switch (key.kind) {
    case 'all':
      return true;
    case 'and':
      return key.keys.every((k) => matchesSearch(k, msg, ctx));
    case 'or':
      return matchesSearch(key.left, msg, ctx) || matchesSearch(key.right, msg, ctx);
    case 'not':
      return !matchesSearch(key.key, msg, ctx);
    case 'flag':
      return hasFlag(msg.flags, key.flag) === key.set;
    case 'recent':
      return msg.recent === key.set;
    case 'internal-date':
      return compareDay(Math.floor(msg.internalDateMs / 86_400_000), key.op, key.day);
    case 'sent-date': {
      const value = msg.headerValues('date')[0];
      const day = value === undefined ? null : sentDay(value);
      return day !== null && compareDay(day, key.op, key.day);
    }
    case 'size':
      return key.op === 'larger' ? msg.size > key.octets : msg.size < key.octets;
    case 'header': {
      // RFC 3501 §6.4.4: HEADER with an empty string matches every message that has the field.
      const values = msg.headerValues(key.field);
      return values.some((v) => contains(v, key.text));
    }
    case 'body':
      return contains(msg.bodyText(), key.text);
    case 'text':
      return contains(msg.headerText(), key.text) || contains(msg.bodyText(), key.text);
    case 'sequence':
      // RFC 5182 §2.1: "$" is the saved result, kept as UIDs, whichever form refers to it.
      if (key.set.kind === 'saved') return ctx.savedUids?.has(msg.uid) ?? false;
      return sequenceSetHas(key.set, msg.seq, ctx.largestSeq);
    case 'uid':
      if (key.set.kind === 'saved') return ctx.savedUids?.has(msg.uid) ?? false;
      return sequenceSetHas(key.set, msg.uid, ctx.largestUid);
    default: {
      const never: never = key;
      return never;
    }
  }
}

/** What a search will read, so the store loads only that: header text, body text, or neither. */
export function searchNeeds(key: SearchKey): { headers: boolean; body: boolean } {
  switch (key.kind) {
    case 'and':
      return key.keys.map(searchNeeds).reduce((a, b) => ({ headers: a.headers || b.headers, body: a.body || b.body }), { headers: false, body: false });
    case 'or': {
      const a = searchNeeds(key.left);
      const b = searchNeeds(key.right);
      return { headers: a.headers || b.headers, body: a.body || b.body };
    }
    case 'not':
      return searchNeeds(key.key);
    case 'header':
    case 'sent-date':
      return { headers: true, body: false };
    case 'body':
      return { headers: false, body: true };
    case 'text':
      return { headers: true, body: true };
    default:
      return { headers: false, body: false };
  }
}
