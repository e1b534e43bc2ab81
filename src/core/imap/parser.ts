/**
 * @module The IMAP command reader: bytes in, whole tagged commands out (RFC 3501 §2.2, §9).
 * Rule 1: bytes may arrive in any pieces; next() returns an item only when it is whole, and says
 *         when the client waits for a continuation ("+") before it sends a synchronising literal
 *         (RFC 3501 §7.5). LITERAL+ literals "{n+}" need none (RFC 7888 §3).
 * Rule 2: a command line is capped (64 KB by default) and so is each literal (--max-size); input
 *         that breaks either, or the grammar, becomes a BAD item and the stream stays in step:
 *         the literal data a client sends anyway is skipped, never read as commands.
 * Rule 3: the reader knows the generic grammar (atoms, strings, literals, lists, sections); what
 *         each command's arguments mean is read by the command's own parser.
 */
import { imapResponses, type ImapStatus } from './responses.ts';

/** One argument of a command, as the generic grammar reads it. */
export type ImapValue =
  /** An atom, a number, NIL, a flag ("\Seen"), or a sequence set ("1:*"). */
  | { readonly kind: 'atom'; readonly value: string }
  /** A quoted string or a literal; bytes, since a literal may carry 8-bit data. */
  | { readonly kind: 'string'; readonly bytes: Uint8Array; readonly literal: boolean }
  | { readonly kind: 'list'; readonly items: readonly ImapValue[] }
  /** "BODY[HEADER.FIELDS (To)]<0.100>": the name, what the brackets hold, and what follows them. */
  | { readonly kind: 'section'; readonly name: string; readonly items: readonly ImapValue[]; readonly partial: string };

export interface ImapCommand {
  readonly tag: string;
  /** The command name in upper case; for "UID FETCH" it is "FETCH" with uid set (RFC 3501 §6.4.8). */
  readonly name: string;
  readonly uid: boolean;
  readonly args: readonly ImapValue[];
}

export type ReaderItem =
  | { readonly kind: 'command'; readonly command: ImapCommand }
  /** The client waits for "+" before it sends a synchronising literal of `size` octets. */
  | { readonly kind: 'continue'; readonly size: number }
  /** A tagged (or, when no tag could be read, untagged) BAD or NO; the command is dropped. */
  | { readonly kind: 'reject'; readonly tag: string | null; readonly status: ImapStatus }
  /** A raw line, for the modes that read lines rather than commands (AUTHENTICATE, IDLE). */
  | { readonly kind: 'line'; readonly text: string };

export interface ReaderLimits {
  /** Longest command line between literals, CRLF included. */
  readonly maxLineBytes: number;
  /** Largest literal accepted (--max-size). */
  readonly maxLiteralBytes: number;
}

// RFC 7162 §4 asks servers to take lines of at least 8192 octets; long UID sets need more.
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

const LF = 10;
const CR = 13;
const SP = 32;
const DQUOTE = 34;
const LPAREN = 40;
const RPAREN = 41;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;
const BACKSLASH = 92;
const UTF8 = new TextDecoder('utf-8');
// A literal announcement at the end of a line: "{123}" or "{123+}" (RFC 7888 §3).
const LITERAL_MARK = /\{(\d{1,20})(\+?)\}$/;

/** RFC 3501 §9: ATOM-CHAR is any CHAR except atom-specials; "*", "%" and "]" are let in here. */
function isAtomByte(b: number): boolean {
  return b > SP && b < 127 && b !== LPAREN && b !== RPAREN && b !== LBRACE && b !== DQUOTE && b !== BACKSLASH && b !== LBRACKET && b !== RBRACKET;
}

class GrammarError extends Error {}

/** A command being assembled: its text pieces and the literals between them. */
interface Assembly {
  /** The text of every line so far, CRLFs removed, literal data left out. */
  text: number[];
  /** Literals by the offset in `text` of the "{" that announced them. */
  readonly literals: Map<number, Uint8Array>;
  /** Octets of the command so far, for the overall cap. */
  size: number;
}

type Mode =
  | { readonly kind: 'line' }
  /** Reading `remaining` octets of literal data into `chunks`. */
  | { readonly kind: 'literal'; remaining: number; readonly chunks: Uint8Array[]; readonly at: number }
  /** Throwing away the rest of a refused command; `status` is answered once it is gone. */
  | { readonly kind: 'discard-line'; readonly tag: string | null; readonly status: ImapStatus; tail: number[] }
  | { readonly kind: 'discard-literal'; remaining: number; readonly tag: string | null; readonly status: ImapStatus };

/** Reads commands from a byte stream; see the module rules. */
export class CommandReader {
  readonly #limits: ReaderLimits;
  #buffer = new Uint8Array(0);
  #start = 0;
  #mode: Mode = { kind: 'line' };
  #assembly: Assembly | null = null;

  constructor(limits: ReaderLimits) {
    this.#limits = limits;
  }

  /** Appends bytes from the client. */
  feed(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const live = this.#buffer.length - this.#start;
    if (live === 0) {
      this.#buffer = bytes.slice();
      this.#start = 0;
      return;
    }
    const next = new Uint8Array(live + bytes.length);
    next.set(this.#buffer.subarray(this.#start));
    next.set(bytes, live);
    this.#buffer = next;
    this.#start = 0;
  }

  /** Octets fed and not yet consumed. */
  get buffered(): number {
    return this.#buffer.length - this.#start;
  }

  /** Drops everything buffered: RFC 3501 §6.2.1, bytes pipelined behind STARTTLS are not read. */
  discardBuffered(): void {
    this.#buffer = new Uint8Array(0);
    this.#start = 0;
  }

  /** The next whole command (or continuation request, or rejection), or null until more bytes come. */
  next(): ReaderItem | null {
    for (;;) {
      const mode = this.#mode;
      switch (mode.kind) {
        case 'literal': {
          const take = Math.min(mode.remaining, this.buffered);
          if (take === 0) return null;
          mode.chunks.push(this.#buffer.slice(this.#start, this.#start + take));
          this.#start += take;
          mode.remaining -= take;
          if (mode.remaining > 0) return null;
          const assembly = this.#assembly!;
          assembly.literals.set(mode.at, joinChunks(mode.chunks));
          this.#mode = { kind: 'line' };
          continue;
        }
        case 'discard-literal': {
          const take = Math.min(mode.remaining, this.buffered);
          this.#start += take;
          mode.remaining -= take;
          if (mode.remaining > 0) return null;
          this.#mode = { kind: 'discard-line', tag: mode.tag, status: mode.status, tail: [] };
          continue;
        }
        case 'discard-line': {
          const line = this.#takeLine(Infinity, mode.tail);
          if (line === null) return null;
          // A refused command whose line announces a LITERAL+ literal still sends its data.
          const mark = LITERAL_MARK.exec(latin1(mode.tail));
          if (mark && mark[2] === '+') {
            this.#mode = { kind: 'discard-literal', remaining: Number(mark[1]), tag: mode.tag, status: mode.status };
            continue;
          }
          this.#mode = { kind: 'line' };
          return { kind: 'reject', tag: mode.tag, status: mode.status };
        }
        case 'line':
          break;
        default: {
          const never: never = mode;
          return never;
        }
      }
      const item = this.#readLine();
      if (item !== 'more') return item;
    }
  }

  /**
   * The next raw line, without its CRLF, for the AUTHENTICATE and IDLE exchanges; null until one
   * is whole. A line over the cap is refused with a rejection item.
   */
  nextLine(): ReaderItem | null {
    if (this.#mode.kind !== 'line' || this.#assembly !== null) return this.next();
    const tail: number[] = [];
    const end = this.#findLineEnd();
    if (end < 0) {
      if (this.buffered > this.#limits.maxLineBytes) {
        this.#mode = { kind: 'discard-line', tag: null, status: imapResponses.lineTooLong(), tail };
        return this.next();
      }
      return null;
    }
    const bytes = this.#buffer.subarray(this.#start, end);
    this.#start = end + 1;
    const text = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.subarray(0, bytes.length - 1) : bytes;
    if (bytes.length + 1 > this.#limits.maxLineBytes) return { kind: 'reject', tag: null, status: imapResponses.lineTooLong() };
    return { kind: 'line', text: UTF8.decode(text) };
  }

  #findLineEnd(): number {
    return this.#buffer.indexOf(LF, this.#start);
  }

  /**
   * Takes one line (CRLF removed) into `into`, or returns null if it is not whole yet; past
   * `cap` octets the line is consumed but only its last bytes are kept.
   */
  #takeLine(cap: number, into: number[]): number[] | null {
    const end = this.#findLineEnd();
    const stop = end < 0 ? this.#buffer.length : end;
    for (let i = this.#start; i < stop; i++) into.push(this.#buffer[i]);
    if (cap === Infinity && into.length > 64) into.splice(0, into.length - 64);
    this.#start = end < 0 ? this.#buffer.length : end + 1;
    if (end < 0) return null;
    if (into.length > 0 && into[into.length - 1] === CR) into.pop();
    return into;
  }

  /** Reads one line of the command being assembled; 'more' when it ended in a LITERAL+ literal. */
  #readLine(): ReaderItem | null | 'more' {
    const end = this.#findLineEnd();
    const assembly = this.#assembly;
    const lineLength = (end < 0 ? this.#buffer.length : end + 1) - this.#start;
    if (lineLength > this.#limits.maxLineBytes) {
      const tag = readTag(assembly ? assembly.text : Array.from(this.#buffer.subarray(this.#start, Math.min(this.#buffer.length, this.#start + 100))));
      this.#assembly = null;
      this.#mode = { kind: 'discard-line', tag, status: imapResponses.lineTooLong(), tail: [] };
      return 'more';
    }
    if (end < 0) return null;
    const line = this.#buffer.subarray(this.#start, end > this.#start && this.#buffer[end - 1] === CR ? end - 1 : end);
    this.#start = end + 1;
    const current: Assembly = assembly ?? { text: [], literals: new Map(), size: 0 };
    this.#assembly = current;
    for (const b of line) current.text.push(b);
    current.size += line.length + 2;
    const mark = LITERAL_MARK.exec(latin1Tail(line, 24));
    if (mark === null) {
      this.#assembly = null;
      return this.#finish(current);
    }
    const size = Number(mark[1]);
    const nonSync = mark[2] === '+';
    const tag = readTag(current.text);
    // RFC 3501 §7.5 and RFC 7888 §4: a literal over the cap is refused; a synchronising one is
    // simply not continued, the data of a LITERAL+ one is skipped.
    if (size > this.#limits.maxLiteralBytes || current.size + size > this.#limits.maxLiteralBytes + this.#limits.maxLineBytes) {
      this.#assembly = null;
      const status = imapResponses.literalTooBig(this.#limits.maxLiteralBytes);
      if (!nonSync) return { kind: 'reject', tag, status };
      this.#mode = { kind: 'discard-literal', remaining: size, tag, status };
      return 'more';
    }
    current.size += size;
    const at = current.text.length - mark[0].length;
    if (size === 0) {
      current.literals.set(at, new Uint8Array(0));
      if (nonSync) return 'more';
      return { kind: 'continue', size };
    }
    this.#mode = { kind: 'literal', remaining: size, chunks: [], at };
    if (nonSync) return 'more';
    return { kind: 'continue', size };
  }

  #finish(assembly: Assembly): ReaderItem {
    const tag = readTag(assembly.text);
    try {
      return { kind: 'command', command: parseCommand(assembly.text, assembly.literals) };
    } catch (error) {
      if (!(error instanceof GrammarError)) throw error;
      return { kind: 'reject', tag, status: imapResponses.badSyntax(error.message) };
    }
  }
}

function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function latin1(bytes: readonly number[] | Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function latin1Tail(bytes: Uint8Array, n: number): string {
  return latin1(bytes.subarray(Math.max(0, bytes.length - n)));
}

/** RFC 3501 §9: tag = 1*<any ASTRING-CHAR except "+">; null when the line does not start with one. */
function readTag(text: readonly number[]): string | null {
  let i = 0;
  // ASTRING-CHAR takes "]" but not the list wildcards "*" and "%".
  while (i < text.length && (isAtomByte(text[i]) || text[i] === RBRACKET) && text[i] !== 43 && text[i] !== 42 && text[i] !== 37) i++;
  if (i === 0 || (i < text.length && text[i] !== SP)) return null;
  return latin1(text.slice(0, i));
}

/** A cursor over the assembled text of one command. */
class Cursor {
  readonly #text: readonly number[];
  readonly #literals: ReadonlyMap<number, Uint8Array>;
  pos = 0;

  constructor(text: readonly number[], literals: ReadonlyMap<number, Uint8Array>) {
    this.#text = text;
    this.#literals = literals;
  }

  get done(): boolean {
    return this.pos >= this.#text.length;
  }

  peek(): number {
    return this.#text[this.pos];
  }

  expectSpace(): void {
    if (this.#text[this.pos] !== SP) throw new GrammarError(this.done ? 'missing argument' : `expected a space at octet ${this.pos}`);
    this.pos++;
    if (this.#text[this.pos] === SP) throw new GrammarError(`two spaces at octet ${this.pos}`);
  }

  /** An atom; a flag ("\\Seen", "\\*") is an atom after one backslash (RFC 3501 §9 flag). */
  atom(allowBracket: boolean): string {
    const start = this.pos;
    if (this.#text[this.pos] === BACKSLASH) this.pos++;
    const first = this.pos;
    while (this.pos < this.#text.length && (isAtomByte(this.#text[this.pos]) || (allowBracket && this.#text[this.pos] === RBRACKET))) this.pos++;
    if (this.pos === first) {
      throw new GrammarError(this.done ? 'missing argument' : `unexpected "${String.fromCharCode(this.#text[this.pos])}" at octet ${this.pos}`);
    }
    return latin1(this.#text.slice(start, this.pos));
  }

  /** RFC 3501 §9: quoted = DQUOTE *QUOTED-CHAR DQUOTE, where only "\" and DQUOTE are escaped. */
  quoted(): Uint8Array {
    this.pos++;
    const out: number[] = [];
    for (;;) {
      if (this.done) throw new GrammarError('unterminated quoted string');
      const b = this.#text[this.pos++];
      if (b === DQUOTE) return new Uint8Array(out);
      if (b === BACKSLASH) {
        const e = this.#text[this.pos++];
        if (e !== DQUOTE && e !== BACKSLASH) throw new GrammarError('only \\\\ and \\" may be escaped in a quoted string');
        out.push(e);
        continue;
      }
      if (b === CR || b === LF || b === 0) throw new GrammarError('CR, LF and NUL are not allowed in a quoted string');
      out.push(b);
    }
  }

  literal(): Uint8Array {
    const data = this.#literals.get(this.pos);
    if (data === undefined) throw new GrammarError(`a literal may only end a line ("{" at octet ${this.pos})`);
    while (this.#text[this.pos] !== RBRACE) this.pos++;
    this.pos++;
    return data;
  }
}

/** Reads one value: atom, string, literal, list, or an atom with a bracketed section. */
function readValue(c: Cursor, depth: number): ImapValue {
  if (depth > 64) throw new GrammarError('lists nested too deeply');
  const b = c.peek();
  if (b === DQUOTE) return { kind: 'string', bytes: c.quoted(), literal: false };
  if (b === LBRACE) return { kind: 'string', bytes: c.literal(), literal: true };
  if (b === LPAREN) {
    c.pos++;
    const items = readValues(c, RPAREN, depth + 1);
    c.pos++;
    return { kind: 'list', items };
  }
  const name = c.atom(depth === 0);
  if (c.peek() !== LBRACKET) return { kind: 'atom', value: name };
  // RFC 3501 §9: section = "[" [section-spec] "]", then an optional partial "<" number "." nz-number ">".
  c.pos++;
  const items = readValues(c, RBRACKET, depth + 1);
  c.pos++;
  let partial = '';
  if (!c.done && c.peek() !== SP && c.peek() !== RPAREN) partial = c.atom(false);
  return { kind: 'section', name, items, partial };
}

/** Space-separated values up to (not past) `close`. */
function readValues(c: Cursor, close: number, depth: number): ImapValue[] {
  const items: ImapValue[] = [];
  if (c.done) throw new GrammarError(`missing "${String.fromCharCode(close)}"`);
  if (c.peek() === close) return items;
  for (;;) {
    items.push(readValue(c, depth));
    if (c.done) throw new GrammarError(`missing "${String.fromCharCode(close)}"`);
    if (c.peek() === close) return items;
    c.expectSpace();
  }
}

/** RFC 3501 §9: command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF. */
function parseCommand(text: readonly number[], literals: ReadonlyMap<number, Uint8Array>): ImapCommand {
  const tag = readTag(text);
  if (tag === null) throw new GrammarError('a command starts with a tag');
  const c = new Cursor(text, literals);
  c.pos = tag.length;
  c.expectSpace();
  let name = c.atom(false).toUpperCase();
  let uid = false;
  if (name === 'UID') {
    uid = true;
    c.expectSpace();
    name = c.atom(false).toUpperCase();
  }
  if (!/^[A-Z][A-Z0-9.-]*$/.test(name)) throw new GrammarError(`"${name}" is not a command name`);
  const args: ImapValue[] = [];
  while (!c.done) {
    c.expectSpace();
    if (c.done) throw new GrammarError('trailing space');
    const v = readValue(c, 0);
    if (!c.done && c.peek() !== SP) throw new GrammarError(`unexpected "${String.fromCharCode(c.peek())}" at octet ${c.pos}`);
    args.push(v);
  }
  return { tag, name, uid, args };
}

/** The text of an astring or string argument (RFC 3501 §9), UTF-8 decoded; null for lists and sections. */
export function astringText(v: ImapValue | undefined): string | null {
  if (v === undefined) return null;
  if (v.kind === 'atom') return v.value;
  if (v.kind === 'string') return UTF8.decode(v.bytes);
  return null;
}

/** RFC 3501 §9: nz-number is 1..4294967295. */
export function parseNzNumber(text: string): number | null {
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return null;
  const n = Number(text);
  return n <= 0xffffffff ? n : null;
}

/** RFC 3501 §9: number is 0..4294967295. */
export function parseNumber(text: string): number | null {
  if (text === '0') return 0;
  return parseNzNumber(text);
}

/** One element of a sequence set: a number or "*" (the largest in use), or a range of them. */
export interface SequenceRange {
  readonly from: number | '*';
  readonly to: number | '*';
}

/** RFC 3501 §9 sequence-set, or "$" for the saved search result (RFC 5182 §2). */
export type SequenceSet = { readonly kind: 'ranges'; readonly ranges: readonly SequenceRange[] } | { readonly kind: 'saved' };

/** Parses a sequence set ("1,3:5,7:*", "*", "$"); null when it is not one. */
export function parseSequenceSet(text: string): SequenceSet | null {
  if (text === '$') return { kind: 'saved' };
  if (text === '') return null;
  const ranges: SequenceRange[] = [];
  for (const part of text.split(',')) {
    const bounds = part.split(':');
    if (bounds.length > 2) return null;
    const read = (t: string): number | '*' | null => (t === '*' ? '*' : parseNzNumber(t));
    const from = read(bounds[0]);
    const to = bounds.length === 2 ? read(bounds[1]) : from;
    if (from === null || to === null) return null;
    ranges.push({ from, to });
  }
  return { kind: 'ranges', ranges };
}

/**
 * Whether `n` is in the set when `largest` is the number "*" stands for. RFC 3501 §9: a range
 * may be given in either order ("4:2" is "2:4"), and "*" in an empty mailbox matches nothing.
 */
export function sequenceSetHas(set: Extract<SequenceSet, { kind: 'ranges' }>, n: number, largest: number): boolean {
  for (const r of set.ranges) {
    const a = r.from === '*' ? largest : r.from;
    const b = r.to === '*' ? largest : r.to;
    if (n >= Math.min(a, b) && n <= Math.max(a, b)) return true;
  }
  return false;
}

export type { ImapStatus };
