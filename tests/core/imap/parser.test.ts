// Table tests of the IMAP command reader (RFC 3501 §2.2, §7.5, §9; RFC 7888), each input fed
// whole, line by line and byte by byte, plus a seeded fuzz test that the reader never throws.
import { describe, expect, test } from 'bun:test';
import { CommandReader, DEFAULT_MAX_LINE_BYTES, astringText, parseSequenceSet, sequenceSetHas, type ImapValue, type ReaderItem } from '../../../src/core/imap/parser.ts';
import { formatStatus } from '../../../src/core/imap/responses.ts';
import { parseSearch } from '../../../src/core/imap/search.ts';
import { parseFetchItems } from '../../../src/core/imap/fetch.ts';
import { parseAddressList } from '../../../src/core/imap/envelope.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const LIMITS = { maxLineBytes: DEFAULT_MAX_LINE_BYTES, maxLiteralBytes: 1000 };

function show(v: ImapValue): string {
  switch (v.kind) {
    case 'atom':
      return v.value;
    case 'string':
      return `${v.literal ? 'L' : 'Q'}${JSON.stringify(dec.decode(v.bytes))}`;
    case 'list':
      return `(${v.items.map(show).join(' ')})`;
    case 'section':
      return `${v.name}[${v.items.map(show).join(' ')}]${v.partial}`;
  }
}

function describeItem(item: ReaderItem): string {
  switch (item.kind) {
    case 'command':
      return `${item.command.tag} ${item.command.uid ? 'UID ' : ''}${item.command.name}${item.command.args.map((a) => ` ${show(a)}`).join('')}`;
    case 'continue':
      return `+${item.size}`;
    case 'reject':
      return formatStatus(item.tag, item.status).trimEnd();
    case 'line':
      return `line ${item.text}`;
  }
}

type Mode = 'whole' | 'line' | 'byte';

function run(input: string | Uint8Array, mode: Mode, limits = LIMITS): string[] {
  const bytes = typeof input === 'string' ? enc.encode(input) : input;
  const reader = new CommandReader(limits);
  const out: string[] = [];
  const drain = () => {
    for (let item = reader.next(); item !== null; item = reader.next()) out.push(describeItem(item));
  };
  if (mode === 'whole') {
    reader.feed(bytes);
    drain();
  } else if (mode === 'byte') {
    for (let i = 0; i < bytes.length; i++) {
      reader.feed(bytes.subarray(i, i + 1));
      drain();
    }
  } else {
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 10) {
        reader.feed(bytes.subarray(start, i + 1));
        drain();
        start = i + 1;
      }
    }
    reader.feed(bytes.subarray(start));
    drain();
  }
  return out;
}

const TABLE: [string, string, string[]][] = [
  ['RFC 3501 §6.1.2: a bare command', 'a1 NOOP\r\n', ['a1 NOOP']],
  ['RFC 3501 §2.2: a bare LF ends a line too', 'a1 noop\n', ['a1 NOOP']],
  ['RFC 3501 §6.2.3: atoms and quoted strings', 'a LOGIN alice "p a\\"s\\\\s"\r\n', ['a LOGIN alice Q"p a\\"s\\\\s"']],
  ['RFC 3501 §4.3: a synchronising literal asks for a continuation', 'a LOGIN {5}\r\nalice {3}\r\nabc\r\n', ['+5', '+3', 'a LOGIN L"alice" L"abc"']],
  ['RFC 7888 §3: LITERAL+ needs no continuation', 'a LOGIN {5+}\r\nalice {3+}\r\nabc\r\n', ['a LOGIN L"alice" L"abc"']],
  ['RFC 3501 §4.3: a literal may hold CRLF, quotes and parentheses', 'a X {8+}\r\n(")\r\n{1}\r\n', ['a X L"(\\")\\r\\n{1}"']],
  ['RFC 3501 §4.3: a zero-length literal', 'a X {0}\r\n\r\n', ['+0', 'a X L""']],
  ['RFC 3501 §9: nested lists', 'a FETCH 1 (FLAGS (X (Y Z)) ())\r\n', ['a FETCH 1 (FLAGS (X (Y Z)) ())']],
  ['RFC 3501 §6.4.5: sections and partials', 'a FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From "To")]<0.100> BODY[])\r\n', ['a FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From Q"To")]<0.100> BODY[])']],
  ['RFC 3501 §6.4.5: a top-level section', 'a FETCH 2 BODY[1.2.MIME]\r\n', ['a FETCH 2 BODY[1.2.MIME]']],
  ['RFC 3501 §6.4.8: UID commands', 'a uid fetch 1:* FLAGS\r\n', ['a UID FETCH 1:* FLAGS']],
  ['RFC 3501 §6.4.6: flags', 'a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted $Forwarded)\r\n', ['a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted $Forwarded)']],
  ['RFC 3501 §6.3.8: list wildcards are atoms', 'a LIST "" *\r\nb LIST "" %\r\n', ['a LIST Q"" *', 'b LIST Q"" %']],
  ['RFC 3501 §9: 8-bit text in a quoted string is kept', 'a SEARCH CHARSET UTF-8 SUBJECT "grüße"\r\n', ['a SEARCH CHARSET UTF-8 SUBJECT Q"grüße"']],
  ['RFC 3501 §5.5: pipelined commands come out in order', 'a NOOP\r\nb CHECK\r\nc LOGOUT\r\n', ['a NOOP', 'b CHECK', 'c LOGOUT']],
  ['RFC 3501 §7.1.3: an unterminated string is BAD, tagged', 'a LOGIN "alice\r\n', ['a BAD Syntax error: unterminated quoted string']],
  ['RFC 3501 §9: an unbalanced list is BAD', 'a FETCH 1 (FLAGS\r\nb FETCH 1 FLAGS)\r\n', ['a BAD Syntax error: missing ")"', 'b BAD Syntax error: unexpected ")" at octet 15']],
  ['RFC 3501 §9: a line without a tag is BAD, untagged', '* NOOP\r\n\r\n+ x\r\n', ['* BAD Syntax error: a command starts with a tag', '* BAD Syntax error: a command starts with a tag', '* BAD Syntax error: a command starts with a tag']],
  ['RFC 3501 §9: two spaces and a trailing space are BAD', 'a  NOOP\r\nb NOOP \r\n', ['a BAD Syntax error: two spaces at octet 2', 'b BAD Syntax error: trailing space']],
  ['RFC 3501 §9: only \\\\ and \\" are escaped in a quoted string', 'a LOGIN "a\\nb" x\r\n', ['a BAD Syntax error: only \\\\ and \\" may be escaped in a quoted string']],
  ['RFC 3501 §9: a literal must end its line', 'a X {3} y\r\n', ['a BAD Syntax error: a literal may only end a line ("{" at octet 4)']],
  ['RFC 3501 §9: an atom right before a list is BAD', 'a X abc(d)\r\n', ['a BAD Syntax error: unexpected "(" at octet 7']],
  ['RFC 3501 §7.5: a synchronising literal over the cap is refused without a continuation; the next line is a command', 'a APPEND INBOX {1001}\r\nb NOOP\r\n', ['a NO [TOOBIG] Literal larger than the 1000 octets accepted', 'b NOOP']],
  ['RFC 7888 §4: the data of a LITERAL+ literal over the cap is skipped, not run', `a APPEND INBOX {1001+}\r\n${'x'.repeat(989)}\r\nc LOGOUT\r\n and more\r\nb NOOP\r\n`, ['a NO [TOOBIG] Literal larger than the 1000 octets accepted', 'b NOOP']],
  ['RFC 3501 §9: a literal announced inside a refused command is skipped as well', 'a X "unterminated {4+}\r\nc LO\r\nb NOOP\r\n', ['a BAD Syntax error: unterminated quoted string', 'b NOOP']],
];

describe('CommandReader table (fed whole, per line, per byte)', () => {
  for (const [name, input, want] of TABLE) {
    for (const mode of ['whole', 'line', 'byte'] as const) {
      test(`${name} (${mode})`, () => expect(run(input, mode)).toEqual(want));
    }
  }
});

describe('line and literal caps', () => {
  test('a line over 64 KB is BAD with its tag, and the next command is read', () => {
    for (const mode of ['whole', 'byte'] as const) {
      expect(run(`t1 X ${'y'.repeat(70_000)}\r\nt2 NOOP\r\n`, mode)).toEqual(['t1 BAD [TOOBIG] Command line too long', 't2 NOOP']);
    }
  });
  test('a too-long line that announces a LITERAL+ literal has the literal skipped too', () => {
    expect(run(`t1 X ${'y'.repeat(70_000)} {5+}\r\nt9 NO\r\nt2 NOOP\r\n`, 'whole')).toEqual(['t1 BAD [TOOBIG] Command line too long', 't2 NOOP']);
  });
  test('the line cap counts each line between literals', () => {
    const limits = { maxLineBytes: 40, maxLiteralBytes: 100 };
    expect(run(`a X {30+}\r\n${'z'.repeat(30)} {30+}\r\n${'z'.repeat(30)}\r\n`, 'whole', limits)).toEqual([`a X L"${'z'.repeat(30)}" L"${'z'.repeat(30)}"`]);
  });
  test('a literal of exactly the cap is accepted, with binary octets intact', () => {
    const data = new Uint8Array(1000).map((_, i) => i % 256);
    const input = new Uint8Array([...enc.encode('a APPEND INBOX {1000+}\r\n'), ...data, 13, 10]);
    const reader = new CommandReader(LIMITS);
    reader.feed(input);
    const item = reader.next();
    expect(item?.kind).toBe('command');
    const arg = item?.kind === 'command' ? item.command.args[1] : undefined;
    expect(arg?.kind === 'string' && Buffer.from(arg.bytes).equals(Buffer.from(data))).toBe(true);
  });
});

describe('raw lines for AUTHENTICATE and IDLE (RFC 3501 §6.2.2, RFC 2177)', () => {
  test('nextLine returns the text without CRLF and leaves the rest for next()', () => {
    const reader = new CommandReader(LIMITS);
    reader.feed(enc.encode('AGFsaWNl\r\nDONE\r\na NOOP\r\n'));
    expect([reader.nextLine(), reader.nextLine(), reader.next()].map((i) => (i ? describeItem(i) : null))).toEqual(['line AGFsaWNl', 'line DONE', 'a NOOP']);
  });
  test('bytes pipelined behind STARTTLS can be dropped (RFC 3501 §6.2.1)', () => {
    const reader = new CommandReader(LIMITS);
    reader.feed(enc.encode('a STARTTLS\r\nb LOGIN x y\r\n'));
    expect(describeItem(reader.next()!)).toBe('a STARTTLS');
    reader.discardBuffered();
    expect(reader.next()).toBeNull();
  });
});

describe('sequence sets (RFC 3501 §9)', () => {
  test.each([
    ['1', [1], [2]],
    ['1:3,7', [1, 2, 3, 7], [4, 8]],
    ['4:2', [2, 3, 4], [1, 5]],
    ['*', [10], [9]],
    ['5:*', [5, 10], [4]],
    ['*:8', [8, 9, 10], [7]],
  ])('%s', (text, inside, outside) => {
    const set = parseSequenceSet(text as string);
    if (set?.kind !== 'ranges') throw new Error('not parsed');
    for (const n of inside as number[]) expect(sequenceSetHas(set, n, 10)).toBe(true);
    for (const n of outside as number[]) expect(sequenceSetHas(set, n, 10)).toBe(false);
  });
  test('$ is the saved result (RFC 5182 §2); junk is refused', () => {
    expect(parseSequenceSet('$')).toEqual({ kind: 'saved' });
    for (const bad of ['', '0', '1:', ':2', '1,,2', '1:2:3', 'a', '4294967296', '-1']) expect(parseSequenceSet(bad)).toBeNull();
  });
  test('astringText reads atoms, quoted strings and literals alike', () => {
    expect([astringText({ kind: 'atom', value: 'INBOX' }), astringText({ kind: 'string', bytes: enc.encode('ü'), literal: true }), astringText({ kind: 'list', items: [] })]).toEqual(['INBOX', 'ü', null]);
  });
});

const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261202);

test(`the reader, and the SEARCH, FETCH and address parsers behind it, never throw: ${CASES} cases (seed ${SEED})`, () => {
  const pieces = ['a ', 'FETCH ', 'SEARCH ', '1:* ', '(', ')', '[', ']', '<0.5>', '"', '\\', '{3}\r\n', '{2+}\r\n', '{99999}\r\n', 'abc', ' ', '\r\n', '\n', '\r', 'BODY[HEADER.FIELDS (To)]', '\x00', 'ü', '*', '%', '+', 'OR ', 'NOT ', 'SINCE 1-Feb-2026 ', 'CHARSET UTF-8 ', 'HEADER ', 'UID ', '$', 'BODY.PEEK[1.MIME]', '<', '>', '@', ',', ':', ';'];
  const failures: string[] = [];
  for (let k = 0; k < CASES && failures.length < 5; k++) {
    const r = seededRandom(SEED + k);
    const parts: string[] = [];
    for (let i = Math.floor(r() * 40); i > 0; i--) parts.push(r() < 0.9 ? pieces[Math.floor(r() * pieces.length)] : String.fromCharCode(Math.floor(r() * 256)));
    const bytes = enc.encode(`${parts.join('')}\r\nz9 NOOP\r\n`);
    const limits = { maxLineBytes: 20 + Math.floor(r() * 200), maxLiteralBytes: Math.floor(r() * 50) };
    try {
      const reader = new CommandReader(limits);
      let at = 0;
      let items = 0;
      while (at < bytes.length) {
        const size = 1 + Math.floor(r() * 30);
        reader.feed(bytes.subarray(at, at + size));
        at += size;
        for (let item = reader.next(); item !== null; item = reader.next()) {
          items++;
          if (item.kind === 'command') {
            parseSearch(item.command.args);
            parseFetchItems(item.command.args.slice(1), item.command.uid);
            for (const arg of item.command.args) if (arg.kind === 'string') parseAddressList(dec.decode(arg.bytes));
          }
          if (item.kind === 'reject' && !['BAD', 'NO'].includes(item.status.condition)) failures.push(`seed ${SEED + k}: odd rejection`);
        }
      }
      if (items === 0 && reader.buffered === 0) failures.push(`seed ${SEED + k}: input vanished without an item`);
    } catch (error) {
      failures.push(`seed ${SEED + k}: ${(error as Error).stack}`);
    }
  }
  expect(failures).toEqual([]);
}, 120_000);
