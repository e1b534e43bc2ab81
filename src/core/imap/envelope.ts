/**
 * @module The FETCH ENVELOPE structure (RFC 3501 §7.4.2) from a message's header fields.
 * Rule 1: field values are sent as they stand in the header, unfolded; RFC 2047 encoded-words
 *         stay encoded (RFC 3501 §7.4.2 leaves decoding to the client).
 * Rule 2: address lists are read leniently (RFC 5322 §3.4 with the obsolete forms of §4.4):
 *         a list that cannot be read whole keeps the addresses read before the fault.
 */
import { ResponseBuilder } from './format.ts';

/** The header fields of one message, by case-insensitive name. */
export interface HeaderFields {
  /** The unfolded value of the first field with this name (lower case), or null. */
  first(name: string): string | null;
}

/** One RFC 3501 §7.4.2 address: name, source route, mailbox, host; a group start or end when host is null. */
export interface EnvelopeAddress {
  readonly name: string | null;
  readonly adl: string | null;
  readonly mailbox: string | null;
  readonly host: string | null;
}

// UW-IMAP's and Dovecot's host for an address without a domain; NIL would mean a group marker.
const MISSING_HOST = '.MISSING-HOST-NAME.';

type Token =
  | { readonly kind: 'word'; readonly text: string; readonly quoted: boolean }
  | { readonly kind: 'special'; readonly ch: string }
  | { readonly kind: 'literal'; readonly text: string };

/** RFC 5322 §3.2: atoms, quoted strings, domain literals and specials; comments are dropped. */
function tokenize(value: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '(') {
      let depth = 0;
      for (; i < value.length; i++) {
        if (value[i] === '\\') i++;
        else if (value[i] === '(') depth++;
        else if (value[i] === ')' && --depth === 0) break;
      }
      i++;
    } else if (c === '"') {
      let text = '';
      for (i++; i < value.length && value[i] !== '"'; i++) {
        if (value[i] === '\\' && i + 1 < value.length) i++;
        text += value[i];
      }
      i++;
      tokens.push({ kind: 'word', text, quoted: true });
    } else if (c === '[') {
      const end = value.indexOf(']', i);
      const stop = end < 0 ? value.length : end + 1;
      tokens.push({ kind: 'literal', text: value.slice(i, stop) });
      i = stop;
    } else if (c === ')') {
      // A stray ")" outside any comment is skipped.
      i++;
    } else if ('<>,:;@.'.includes(c)) {
      tokens.push({ kind: 'special', ch: c });
      i++;
    } else {
      let j = i;
      while (j < value.length && !' \t\r\n()"[<>,:;@.'.includes(value[j])) j++;
      tokens.push({ kind: 'word', text: value.slice(i, j), quoted: false });
      i = j;
    }
  }
  return tokens;
}

/** Reads RFC 5322 address lists, groups included, into RFC 3501 envelope addresses. */
class AddressReader {
  readonly #tokens: Token[];
  #i = 0;

  constructor(value: string) {
    this.#tokens = tokenize(value);
  }

  #peek(): Token | undefined {
    return this.#tokens[this.#i];
  }

  #isSpecial(ch: string): boolean {
    const t = this.#peek();
    return t !== undefined && t.kind === 'special' && t.ch === ch;
  }

  read(): EnvelopeAddress[] {
    const out: EnvelopeAddress[] = [];
    while (this.#i < this.#tokens.length) {
      if (this.#isSpecial(',')) {
        this.#i++;
        continue;
      }
      const before = this.#i;
      this.#readOne(out);
      if (this.#i === before) this.#i++;
    }
    return out;
  }

  /** One mailbox or group (RFC 5322 §3.4: address = mailbox / group). */
  #readOne(out: EnvelopeAddress[]): void {
    const phrase = this.#phrase();
    if (this.#isSpecial(':')) {
      // RFC 3501 §7.4.2: a group is a start marker with its name, its members, and an end marker.
      this.#i++;
      out.push({ name: null, adl: null, mailbox: joinPhrase(phrase), host: null });
      while (this.#i < this.#tokens.length && !this.#isSpecial(';')) {
        if (this.#isSpecial(',')) {
          this.#i++;
          continue;
        }
        const before = this.#i;
        const member = this.#mailbox(this.#phrase());
        if (member) out.push(member);
        if (this.#i === before) this.#i++;
      }
      if (this.#isSpecial(';')) this.#i++;
      out.push({ name: null, adl: null, mailbox: null, host: null });
      return;
    }
    const mailbox = this.#mailbox(phrase);
    if (mailbox) out.push(mailbox);
  }

  /** The words and dots before "<", ":" or "@"; for an addr-spec they are its local part. */
  #phrase(): Token[] {
    const words: Token[] = [];
    for (let t = this.#peek(); t !== undefined; t = this.#peek()) {
      if (t.kind !== 'word' && !(t.kind === 'special' && t.ch === '.')) break;
      words.push(t);
      this.#i++;
    }
    return words;
  }

  /** name-addr ("Name <a@b>", with an obsolete route "<@x,@y:a@b>") or addr-spec ("a@b"). */
  #mailbox(phrase: Token[]): EnvelopeAddress | null {
    if (this.#isSpecial('<')) {
      this.#i++;
      let adl: string | null = null;
      if (this.#isSpecial('@')) {
        const route: string[] = [];
        while (this.#i < this.#tokens.length && !this.#isSpecial(':') && !this.#isSpecial('>')) {
          const t = this.#tokens[this.#i++];
          route.push(t.kind === 'special' ? t.ch : t.text);
        }
        if (this.#isSpecial(':')) this.#i++;
        adl = route.join('');
      }
      const spec = this.#addrSpec(this.#phrase());
      while (this.#i < this.#tokens.length && !this.#isSpecial('>')) this.#i++;
      if (this.#isSpecial('>')) this.#i++;
      // "<>" and "Name <>" name no mailbox that RFC 3501 §7.4.2 could show.
      if (spec.local === '' && spec.host === null) return null;
      const name = phrase.length > 0 ? joinPhrase(phrase) : null;
      return { name, adl, mailbox: spec.local, host: spec.host ?? MISSING_HOST };
    }
    if (phrase.length === 0) return null;
    const spec = this.#addrSpec(phrase);
    return { name: null, adl: null, mailbox: spec.local, host: spec.host ?? MISSING_HOST };
  }

  /** RFC 5322 §3.4.1: local-part "@" domain, from the words already read; a quoted local part stays quoted. */
  #addrSpec(local: Token[]): { local: string; host: string | null } {
    const localText = local.map((t) => (t.kind === 'word' ? (t.quoted ? `"${t.text.replace(/(["\\])/g, '\\$1')}"` : t.text) : '.')).join('');
    if (!this.#isSpecial('@')) return { local: localText, host: null };
    this.#i++;
    let host = '';
    for (let t = this.#peek(); t !== undefined; t = this.#peek()) {
      if (t.kind === 'word' && !t.quoted) host += t.text;
      else if (t.kind === 'literal') host += t.text;
      else if (t.kind === 'special' && t.ch === '.') host += '.';
      else break;
      this.#i++;
    }
    return { local: localText, host: host === '' ? null : host };
  }
}

/** A display name: words joined by one space, with no space before the dot of "J. Doe". */
function joinPhrase(words: readonly Token[]): string {
  let out = '';
  for (const t of words) {
    if (t.kind === 'special') out += t.ch;
    else if (t.kind === 'word') out += `${out === '' ? '' : ' '}${t.text}`;
  }
  return out;
}

/** RFC 5322 §3.4 address list → RFC 3501 §7.4.2 addresses; empty when none can be read. */
export function parseAddressList(value: string): EnvelopeAddress[] {
  return new AddressReader(value).read();
}

function addressList(b: ResponseBuilder, value: string | null): void {
  const addresses = value === null ? [] : parseAddressList(value);
  if (addresses.length === 0) {
    b.raw('NIL');
    return;
  }
  b.raw('(');
  for (const a of addresses) {
    b.raw('(').nstring(a.name).raw(' ').nstring(a.adl).raw(' ').nstring(a.mailbox).raw(' ').nstring(a.host).raw(')');
  }
  b.raw(')');
}

/** A field that is absent or only white space counts as absent (RFC 3501 §7.4.2, Sender and Reply-To). */
function present(value: string | null): string | null {
  return value !== null && value.trim() !== '' ? value : null;
}

/**
 * Writes the ENVELOPE structure: "(" date SP subject SP from SP sender SP reply-to SP to SP cc
 * SP bcc SP in-reply-to SP message-id ")". RFC 3501 §7.4.2: an absent or empty Sender or
 * Reply-To takes the value of From.
 */
export function writeEnvelope(b: ResponseBuilder, fields: HeaderFields): void {
  const from = present(fields.first('from'));
  const text = (name: string) => {
    const v = fields.first(name);
    return v === null ? null : v.trim();
  };
  b.raw('(').nstring(text('date')).raw(' ').nstring(text('subject')).raw(' ');
  addressList(b, from);
  b.raw(' ');
  addressList(b, present(fields.first('sender')) ?? from);
  b.raw(' ');
  addressList(b, present(fields.first('reply-to')) ?? from);
  for (const name of ['to', 'cc', 'bcc']) {
    b.raw(' ');
    addressList(b, fields.first(name));
  }
  b.raw(' ').nstring(text('in-reply-to')).raw(' ').nstring(text('message-id')).raw(')');
}
