// RFC 3501 §7.4.2: the untagged FETCH response built from a message view, item by item.
import { describe, expect, test } from 'bun:test';
import { parseMimeStructure } from '../../../src/core/mime-structure.ts';
import { CommandReader } from '../../../src/core/imap/parser.ts';
import { parseFetchItems } from '../../../src/core/imap/fetch.ts';
import { fetchNeeds, writeFetchResponse, type FetchMessage } from '../../../src/core/imap/fetch-response.ts';
import { entityHeaderFields } from '../../../src/core/imap/bodystructure.ts';
import { ResponseBuilder } from '../../../src/core/imap/format.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const MESSAGE = enc.encode('From: a@x.example\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--b--\r\n');

function items(line: string, uid = false) {
  const reader = new CommandReader({ maxLineBytes: 65536, maxLiteralBytes: 1000 });
  reader.feed(enc.encode(`a FETCH 1 ${line}\r\n`));
  const item = reader.next();
  if (item?.kind !== 'command') throw new Error('not a command');
  const r = parseFetchItems(item.command.args.slice(1), uid);
  if (!r.ok) throw new Error(r.why);
  return r.items;
}

function view(reads: string[]): FetchMessage {
  return {
    seq: 3,
    uid: 42,
    flags: ['\\Seen', '\\Recent'],
    internalDateMs: 1_796_168_480_000,
    size: MESSAGE.length,
    bytes: () => (reads.push('bytes'), MESSAGE),
    structure: () => (reads.push('structure'), parseMimeStructure(MESSAGE)),
    headerFields: () => (reads.push('headers'), entityHeaderFields(MESSAGE, parseMimeStructure(MESSAGE))),
  };
}

function fetch(line: string, uid = false): { text: string; reads: string[]; chunks: number } {
  const reads: string[] = [];
  const b = new ResponseBuilder();
  writeFetchResponse(b, view(reads), items(line, uid));
  const chunks = b.build();
  return { text: chunks.map((c) => (typeof c === 'string' ? c : dec.decode(c))).join(''), reads, chunks: chunks.length };
}

describe('writeFetchResponse (RFC 3501 §7.4.2)', () => {
  test('FAST reads nothing but the view fields', () => {
    expect(fetch('FAST')).toEqual({ text: '* 3 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE " 1-Dec-2026 23:41:20 +0000" RFC822.SIZE 160)\r\n', reads: [], chunks: 1 });
  });
  test('UID FETCH answers UID first; ENVELOPE reads only the header fields', () => {
    const r = fetch('ENVELOPE', true);
    expect(r.text).toBe('* 3 FETCH (UID 42 ENVELOPE (NIL "hi" ((NIL NIL "a" "x.example")) ((NIL NIL "a" "x.example")) ((NIL NIL "a" "x.example")) NIL NIL NIL NIL NIL))\r\n');
    expect(r.reads).toEqual(['headers']);
  });
  test('BODY[] is the message as a literal, passed through as its own chunk', () => {
    const r = fetch('BODY.PEEK[]');
    expect(r.text).toBe(`* 3 FETCH (BODY[] {${MESSAGE.length}}\r\n${dec.decode(MESSAGE)})\r\n`);
    expect(r.chunks).toBe(3);
  });
  test('sections with part numbers, partials, a missing part as NIL, and the RFC822 items', () => {
    expect(fetch('(BODY[2] BODY[1]<1.5> BODY[3])').text).toBe('* 3 FETCH (BODY[2] {3}\r\ntwo BODY[1]<1> {2}\r\nne BODY[3] NIL)\r\n');
    expect(fetch('RFC822.HEADER').text).toBe('* 3 FETCH (RFC822.HEADER {77}\r\nFrom: a@x.example\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n)\r\n');
    expect(fetch('RFC822.TEXT').text.startsWith('* 3 FETCH (RFC822.TEXT {83}\r\n--b\r\n')).toBe(true);
  });
  test('BODY is the structure without extension data', () => {
    expect(fetch('BODY').text).toBe('* 3 FETCH (BODY (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1)("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1) "MIXED"))\r\n');
  });
  test('fetchNeeds tells the store what to load', () => {
    expect(fetchNeeds(items('FAST'))).toEqual({ bytes: false, structure: false, envelope: false });
    expect(fetchNeeds(items('(UID FLAGS ENVELOPE RFC822.SIZE)'))).toEqual({ bytes: false, structure: false, envelope: true });
    expect(fetchNeeds(items('BODY.PEEK[HEADER]'))).toEqual({ bytes: true, structure: false, envelope: false });
    expect(fetchNeeds(items('BODY[1.MIME]'))).toEqual({ bytes: true, structure: true, envelope: false });
    expect(fetchNeeds(items('BODYSTRUCTURE'))).toEqual({ bytes: true, structure: true, envelope: false });
  });
});
