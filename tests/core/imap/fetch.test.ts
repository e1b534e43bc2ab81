// RFC 3501 §6.4.5 and §7.4.2: FETCH data items, macros, sections and partials, and the section
// cuts that need only the message bytes.
import { describe, expect, test } from 'bun:test';
import { CommandReader, type ImapValue } from '../../../src/core/imap/parser.ts';
import { applyPartial, fetchResponseName, filterHeaderFields, headerLength, parseFetchItems, setsSeen, topLevelSection, type FetchItem } from '../../../src/core/imap/fetch.ts';

function args(line: string): readonly ImapValue[] {
  const reader = new CommandReader({ maxLineBytes: 65536, maxLiteralBytes: 1000 });
  reader.feed(new TextEncoder().encode(`a FETCH 1 ${line}\r\n`));
  const item = reader.next();
  if (item?.kind !== 'command') throw new Error(`not a command: ${JSON.stringify(item)}`);
  return item.command.args.slice(1);
}

const names = (line: string, uid = false) => {
  const r = parseFetchItems(args(line), uid);
  return r.ok ? r.items.map(fetchResponseName) : r.why;
};

describe('parseFetchItems (RFC 3501 §6.4.5)', () => {
  test.each([
    ['FLAGS', ['FLAGS']],
    ['(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)', ['UID', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE']],
    ['(bodystructure body)', ['BODYSTRUCTURE', 'BODY']],
    ['(RFC822 RFC822.HEADER RFC822.TEXT)', ['RFC822', 'RFC822.HEADER', 'RFC822.TEXT']],
    ['ALL', ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE']],
    ['fast', ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE']],
    ['FULL', ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY']],
    ['BODY[]', ['BODY[]']],
    ['BODY.PEEK[]', ['BODY[]']],
    ['(BODY[HEADER] BODY[TEXT] BODY.PEEK[1.2.MIME] BODY[2.1] BODY[3.HEADER])', ['BODY[HEADER]', 'BODY[TEXT]', 'BODY[1.2.MIME]', 'BODY[2.1]', 'BODY[3.HEADER]']],
    ['BODY[HEADER.FIELDS (From To "Message-ID")]', ['BODY[HEADER.FIELDS (FROM TO MESSAGE-ID)]']],
    ['BODY.PEEK[header.fields.not (Received)]', ['BODY[HEADER.FIELDS.NOT (RECEIVED)]']],
    ['BODY[]<0.100>', ['BODY[]<0>']],
    ['BODY.PEEK[TEXT]<50.10>', ['BODY[TEXT]<50>']],
  ])('%s', (line, want) => expect(names(line)).toEqual(want));

  test('RFC 3501 §6.4.8: UID FETCH always includes UID, once', () => {
    expect(names('FLAGS', true)).toEqual(['UID', 'FLAGS']);
    expect(names('(FLAGS UID)', true)).toEqual(['FLAGS', 'UID']);
  });

  test.each([
    ['(ALL)', '"ALL" is not a FETCH data item'],
    ['(FLAGS FAST)', '"FAST" is not a FETCH data item'],
    ['FOO', '"FOO" is not a FETCH data item'],
    ['()', 'an empty list of FETCH items'],
    ['BODY[MIME]', 'MIME needs a part number, as in 1.MIME'],
    ['BODY[1.]', '"1." is not a section'],
    ['BODY[0]', '"0" is not a section'],
    ['BODY[HEADERS]', '"HEADERS" is not a section'],
    ['BODY[HEADER.FIELDS]', 'HEADER.FIELDS needs a list of field names'],
    ['BODY[HEADER.FIELDS ()]', 'HEADER.FIELDS needs a list of field names'],
    ['BODY[TEXT (x)]', 'unexpected words in a section'],
    ['BODY[]<0>', '"<0>" is not a partial <offset.length>'],
    ['BODY[]<1.0>', '"<1.0>" is not a partial <offset.length>'],
    ['BINARY[1]', '"BINARY[" is not a FETCH data item'],
    ['FLAGS UID', 'FETCH takes a sequence set and one item or a list of items'],
  ])('BAD for %s', (line, why) => expect(names(line)).toBe(why));

  test('RFC 3501 §6.4.5: which items set \\Seen', () => {
    const seen = (line: string) => {
      const r = parseFetchItems(args(line), false);
      return r.ok ? r.items.map(setsSeen) : null;
    };
    expect(seen('(BODY[] BODY.PEEK[] RFC822 RFC822.HEADER RFC822.TEXT BODY[HEADER] FLAGS BODY)')).toEqual([true, false, true, false, true, true, false, false]);
  });
});

const enc = new TextEncoder();
const dec = new TextDecoder();
const MESSAGE = enc.encode('From: a@b.example\r\nTo: c@d.example,\r\n e@f.example\r\nSubject: hi\r\nX-Tag: 1\r\n\r\nbody line\r\n\r\nmore\r\n');

describe('top-level sections (RFC 3501 §6.4.5)', () => {
  const section = (line: string) => {
    const r = parseFetchItems(args(line), false);
    const item = r.ok ? (r.items[0] as Extract<FetchItem, { kind: 'BODY[]' }>) : null;
    if (!item) throw new Error('not parsed');
    const bytes = topLevelSection(MESSAGE, item.section);
    return bytes === null ? null : dec.decode(applyPartial(bytes, item.partial));
  };
  test('BODY[] is the whole message, HEADER ends with the blank line, TEXT is the rest', () => {
    expect(section('BODY[]')).toBe(dec.decode(MESSAGE));
    expect(section('BODY[HEADER]')).toBe('From: a@b.example\r\nTo: c@d.example,\r\n e@f.example\r\nSubject: hi\r\nX-Tag: 1\r\n\r\n');
    expect(section('BODY[TEXT]')).toBe('body line\r\n\r\nmore\r\n');
  });
  test('HEADER.FIELDS keeps folded lines and ends with a blank line; .NOT keeps the others', () => {
    expect(section('BODY[HEADER.FIELDS (to SUBJECT)]')).toBe('To: c@d.example,\r\n e@f.example\r\nSubject: hi\r\n\r\n');
    expect(section('BODY[HEADER.FIELDS.NOT (To X-Tag)]')).toBe('From: a@b.example\r\nSubject: hi\r\n\r\n');
    expect(section('BODY[HEADER.FIELDS (Nothing)]')).toBe('\r\n');
  });
  test('partials cut octets and run short at the end', () => {
    expect(section('BODY[]<0.4>')).toBe('From');
    expect(section('BODY[TEXT]<5.100>')).toBe('line\r\n\r\nmore\r\n');
    expect(section('BODY[]<9999.1>')).toBe('');
  });
  test('parts and MIME headers need the structure: null here', () => {
    expect(section('BODY[1]')).toBeNull();
    expect(section('BODY[1.MIME]')).toBeNull();
  });
  test('headerLength finds the blank line, or takes all of a header-only message', () => {
    expect(headerLength(enc.encode('A: 1\r\n\r\nb'))).toBe(8);
    expect(headerLength(enc.encode('A: 1\r\n'))).toBe(6);
    expect(headerLength(enc.encode('\r\nbody'))).toBe(2);
    expect(dec.decode(filterHeaderFields(enc.encode('a: 1\r\nB: 2\r\n'), ['b'], false))).toBe('B: 2\r\n\r\n');
  });
});
