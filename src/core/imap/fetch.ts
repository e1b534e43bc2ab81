/**
 * @module FETCH data items (RFC 3501 §6.4.5): what a FETCH asks for, read from the command's
 * arguments, and the section cuts that need only the message bytes (HEADER, HEADER.FIELDS
 * (.NOT), TEXT of the whole message, and <partial>).
 * Rule: the macros ALL, FAST and FULL stand alone (RFC 3501 §9 fetch); a body section without
 * PEEK, RFC822 and RFC822.TEXT set \Seen, RFC822.HEADER and BODY.PEEK never do (§6.4.5).
 */
import type { ImapValue } from './parser.ts';

/** RFC 3501 §6.4.5 section-spec: part numbers, then what of that part. */
export interface Section {
  /** "1.2" is [1, 2]; empty for the whole message. */
  readonly part: readonly number[];
  readonly text: null | 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';
  /** Field names of HEADER.FIELDS (.NOT), upper-cased as they are compared case-insensitively. */
  readonly fields: readonly string[];
}

export interface PartialRange {
  readonly offset: number;
  readonly length: number;
}

export type FetchItem =
  | { readonly kind: 'FLAGS' | 'UID' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY' }
  | { readonly kind: 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' }
  | { readonly kind: 'BODY[]'; readonly peek: boolean; readonly section: Section; readonly partial: PartialRange | null };

export type FetchRequest = { readonly ok: true; readonly items: readonly FetchItem[] } | { readonly ok: false; readonly why: string };

const SIMPLE = ['FLAGS', 'UID', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT'] as const;
type SimpleKind = (typeof SIMPLE)[number];

// RFC 3501 §6.4.5: the macros.
const MACROS: Record<string, readonly SimpleKind[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};

class FetchSyntaxError extends Error {}

function isSimple(name: string): name is SimpleKind {
  return (SIMPLE as readonly string[]).includes(name);
}

/** RFC 3501 §9: header-fld-name = astring; RFC 5322 §3.6.8 field names are printable ASCII but ":". */
function fieldName(v: ImapValue): string {
  const text = v.kind === 'atom' ? v.value : v.kind === 'string' ? new TextDecoder().decode(v.bytes) : '';
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(text)) throw new FetchSyntaxError('a header field name is printable ASCII without ":"');
  return text.toUpperCase();
}

/** RFC 3501 §9: section-spec inside "[ ]". */
function readSection(items: readonly ImapValue[]): Section {
  if (items.length === 0) return { part: [], text: null, fields: [] };
  const first = items[0];
  if (first.kind !== 'atom') throw new FetchSyntaxError('a section is part numbers and HEADER, HEADER.FIELDS, TEXT or MIME');
  const words = first.value.toUpperCase().split('.');
  const part: number[] = [];
  while (words.length > 0 && /^[1-9][0-9]{0,8}$/.test(words[0])) part.push(Number(words.shift()));
  const rest = words.join('.');
  let text: Section['text'];
  switch (rest) {
    case '':
      text = null;
      break;
    case 'HEADER':
    case 'HEADER.FIELDS':
    case 'HEADER.FIELDS.NOT':
    case 'TEXT':
    case 'MIME':
      text = rest;
      break;
    default:
      throw new FetchSyntaxError(`"${first.value}" is not a section`);
  }
  // RFC 3501 §6.4.5: MIME needs a part number; "1." with nothing after it is not a section.
  if (text === 'MIME' && part.length === 0) throw new FetchSyntaxError('MIME needs a part number, as in 1.MIME');
  if (first.value.endsWith('.')) throw new FetchSyntaxError(`"${first.value}" is not a section`);
  if (text === 'HEADER.FIELDS' || text === 'HEADER.FIELDS.NOT') {
    const list = items[1];
    if (items.length !== 2 || list.kind !== 'list' || list.items.length === 0) throw new FetchSyntaxError(`${text} needs a list of field names`);
    return { part, text, fields: list.items.map(fieldName) };
  }
  if (items.length !== 1) throw new FetchSyntaxError('unexpected words in a section');
  return { part, text, fields: [] };
}

/** RFC 3501 §9: "<" number "." nz-number ">". */
function readPartial(text: string): PartialRange | null {
  if (text === '') return null;
  const m = /^<(0|[1-9][0-9]{0,9})\.([1-9][0-9]{0,9})>$/.exec(text);
  if (!m || Number(m[1]) > 0xffffffff || Number(m[2]) > 0xffffffff) throw new FetchSyntaxError(`"${text}" is not a partial <offset.length>`);
  return { offset: Number(m[1]), length: Number(m[2]) };
}

function readItem(v: ImapValue): FetchItem {
  if (v.kind === 'atom') {
    const name = v.value.toUpperCase();
    if (isSimple(name)) return { kind: name } as FetchItem;
    throw new FetchSyntaxError(`"${v.value}" is not a FETCH data item`);
  }
  if (v.kind === 'section') {
    const name = v.name.toUpperCase();
    if (name !== 'BODY' && name !== 'BODY.PEEK') throw new FetchSyntaxError(`"${v.name}[" is not a FETCH data item`);
    return { kind: 'BODY[]', peek: name === 'BODY.PEEK', section: readSection(v.items), partial: readPartial(v.partial) };
  }
  throw new FetchSyntaxError('a FETCH data item is an atom or BODY[section]');
}

/**
 * Reads the data items of FETCH (the arguments after the sequence set): one item, a macro, or a
 * parenthesised list of items. RFC 3501 §6.4.8: for UID FETCH the UID item is always included.
 */
export function parseFetchItems(args: readonly ImapValue[], uid: boolean): FetchRequest {
  try {
    if (args.length !== 1) throw new FetchSyntaxError('FETCH takes a sequence set and one item or a list of items');
    const arg = args[0];
    let items: FetchItem[];
    if (arg.kind === 'atom' && Object.hasOwn(MACROS, arg.value.toUpperCase())) {
      items = MACROS[arg.value.toUpperCase()].map((kind) => ({ kind }) as FetchItem);
    } else if (arg.kind === 'list') {
      if (arg.items.length === 0) throw new FetchSyntaxError('an empty list of FETCH items');
      items = arg.items.map(readItem);
    } else {
      items = [readItem(arg)];
    }
    if (uid && !items.some((i) => i.kind === 'UID')) items.unshift({ kind: 'UID' });
    return { ok: true, items };
  } catch (error) {
    if (error instanceof FetchSyntaxError) return { ok: false, why: error.message };
    throw error;
  }
}

/** RFC 3501 §6.4.5: whether answering this item sets \Seen. */
export function setsSeen(item: FetchItem): boolean {
  return (item.kind === 'BODY[]' && !item.peek) || item.kind === 'RFC822' || item.kind === 'RFC822.TEXT';
}

/**
 * The item's name in the FETCH response (RFC 3501 §7.4.2): BODY.PEEK answers as BODY, field
 * names as asked, and a partial shows only its origin octet ("BODY[]<0>").
 */
export function fetchResponseName(item: FetchItem): string {
  if (item.kind !== 'BODY[]') return item.kind;
  const s = item.section;
  const parts = [...s.part.map(String), ...(s.text ? [s.text] : [])].join('.');
  const fields = s.fields.length > 0 ? ` (${s.fields.join(' ')})` : '';
  return `BODY[${parts}${fields}]${item.partial ? `<${item.partial.offset}>` : ''}`;
}

const LF = 10;
const CR = 13;

/** Where the header ends: the offset just past the empty line, or the message length if none. */
export function headerLength(message: Uint8Array): number {
  let i = 0;
  while (i < message.length) {
    if (message[i] === LF) return i + 1;
    if (message[i] === CR && message[i + 1] === LF) return i + 2;
    const lf = message.indexOf(LF, i);
    if (lf < 0) return message.length;
    i = lf + 1;
  }
  return message.length;
}

/**
 * RFC 3501 §6.4.5 HEADER.FIELDS (.NOT): the fields named (or all others), each with its folded
 * continuation lines, then the blank line that ends a header.
 */
export function filterHeaderFields(header: Uint8Array, names: readonly string[], not: boolean): Uint8Array {
  const wanted = new Set(names.map((n) => n.toUpperCase()));
  const out: number[] = [];
  let i = 0;
  let keep = false;
  while (i < header.length) {
    const lf = header.indexOf(LF, i);
    const end = lf < 0 ? header.length : lf + 1;
    const first = header[i];
    if (first === CR || first === LF) break;
    if (first !== 32 && first !== 9) {
      const colon = header.indexOf(58, i);
      const name = colon < 0 || colon > end ? '' : new TextDecoder().decode(header.subarray(i, colon)).trim().toUpperCase();
      keep = wanted.has(name) !== not && name !== '';
    }
    if (keep) for (let k = i; k < end; k++) out.push(header[k]);
    i = end;
  }
  out.push(CR, LF);
  return new Uint8Array(out);
}

/** RFC 3501 §6.4.5 <partial>: the octets from `offset`, at most `length`; empty past the end. */
export function applyPartial(bytes: Uint8Array, partial: PartialRange | null): Uint8Array {
  if (partial === null) return bytes;
  if (partial.offset >= bytes.length) return new Uint8Array(0);
  return bytes.subarray(partial.offset, Math.min(bytes.length, partial.offset + partial.length));
}

/**
 * The octets of a section of the top-level message (no part numbers): [] is the whole message,
 * HEADER the header with its blank line, TEXT the body, HEADER.FIELDS (.NOT) the chosen fields.
 * Sections with part numbers need the MIME structure and are cut by the caller; null here.
 */
export function topLevelSection(message: Uint8Array, section: Section): Uint8Array | null {
  if (section.part.length > 0) return null;
  const h = headerLength(message);
  switch (section.text) {
    case null:
      return message;
    case 'HEADER':
      return message.subarray(0, h);
    case 'TEXT':
      return message.subarray(h);
    case 'HEADER.FIELDS':
    case 'HEADER.FIELDS.NOT':
      return filterHeaderFields(message.subarray(0, h), section.fields, section.text === 'HEADER.FIELDS.NOT');
    case 'MIME':
      return null;
    default: {
      const never: never = section.text;
      return never;
    }
  }
}
