// RFC 3501 §7.4.2 (BODY, BODYSTRUCTURE) and §6.4.5 (sections with part numbers), over the MIME
// tree of core/mime-structure.ts.
import { describe, expect, test } from 'bun:test';
import { parseMimeStructure } from '../../../src/core/mime-structure.ts';
import { partSection, writeBodyStructure } from '../../../src/core/imap/bodystructure.ts';
import { ResponseBuilder } from '../../../src/core/imap/format.ts';
import { seededRandom } from '../../helpers/seeded-random.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const crlf = (lines: string[]) => enc.encode(lines.map((l) => `${l}\r\n`).join(''));

function structure(message: Uint8Array, extensible = true): string {
  const b = new ResponseBuilder();
  writeBodyStructure(b, message, parseMimeStructure(message), extensible);
  return b.build().map((c) => (typeof c === 'string' ? c : dec.decode(c))).join('');
}

const PLAIN = crlf(['From: a@x.example', 'Subject: hi', '', 'Hello,', 'world.']);

const ALTERNATIVE = crlf([
  'From: a@x.example',
  'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="b1"',
  '',
  'preamble',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Gr=C3=BC=C3=9Fe',
  '--b1',
  'Content-Type: text/html; charset=utf-8',
  'Content-Language: de, en',
  '',
  '<p>Hi</p>',
  '--b1--',
]);

const FORWARD = crlf([
  'From: a@x.example',
  'Content-Type: multipart/mixed; boundary=outer',
  '',
  '--outer',
  'Content-Type: text/plain',
  '',
  'See below.',
  '--outer',
  'Content-Type: message/rfc822',
  'Content-Disposition: attachment; filename="fwd.eml"',
  'Content-ID: <part2@x.example>',
  '',
  'From: "B Person" <b@y.example>',
  'To: c@z.example',
  'Subject: inner',
  'Message-ID: <inner@y.example>',
  '',
  'Inner body.',
  '--outer',
  'Content-Type: application/pdf; name=doc.pdf',
  'Content-Transfer-Encoding: base64',
  'Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==',
  '',
  'JVBERi0xLjQK',
  '--outer--',
]);

describe('BODYSTRUCTURE and BODY (RFC 3501 §7.4.2)', () => {
  test('a message that is not MIME is one text/plain part with a us-ascii charset', () => {
    expect(structure(PLAIN)).toBe('("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 16 2 NIL NIL NIL NIL)');
    expect(structure(PLAIN, false)).toBe('("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 16 2)');
  });

  test('multipart/alternative: the parts, the subtype, then params, disposition, languages and location', () => {
    expect(structure(ALTERNATIVE)).toBe(
      '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 15 1 NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 9 1 NIL NIL ("de" "en") NIL) "ALTERNATIVE" ("BOUNDARY" "b1") NIL NIL NIL)',
    );
    expect(structure(ALTERNATIVE, false)).toBe(
      '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 15 1)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 9 1) "ALTERNATIVE")',
    );
  });

  test('message/rfc822 carries the envelope, the inner structure and its line count; MD5 and disposition are extension data', () => {
    expect(structure(FORWARD)).toBe(
      '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)' +
        '("MESSAGE" "RFC822" NIL "<part2@x.example>" NIL "7BIT" 109 ' +
        '(NIL "inner" (("B Person" NIL "b" "y.example")) (("B Person" NIL "b" "y.example")) (("B Person" NIL "b" "y.example")) ((NIL NIL "c" "z.example")) NIL NIL NIL "<inner@y.example>") ' +
        '("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1 NIL NIL NIL NIL) 6 NIL ("ATTACHMENT" ("FILENAME" "fwd.eml")) NIL NIL)' +
        '("APPLICATION" "PDF" ("NAME" "doc.pdf") NIL NIL "BASE64" 12 "Q2hlY2sgSW50ZWdyaXR5IQ==" NIL NIL NIL) "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)',
    );
  });

  test('a multipart without a boundary is read as text/plain (RFC 2045 §5.2); one without delimiters is a well-formed leaf', () => {
    expect(structure(crlf(['Content-Type: multipart/mixed', '', 'x']), false)).toBe('("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1)');
    expect(structure(crlf(['Content-Type: multipart/mixed; boundary=zz', '', 'x']), false)).toBe('("MULTIPART" "MIXED" ("BOUNDARY" "zz") NIL NIL "7BIT" 3)');
  });
});

describe('BODY[section] with part numbers (RFC 3501 §6.4.5)', () => {
  const cut = (message: Uint8Array, part: number[], text: 'HEADER' | 'TEXT' | 'MIME' | 'HEADER.FIELDS' | null = null, fields: string[] = []) => {
    const bytes = partSection(message, parseMimeStructure(message), { part, text, fields });
    return bytes === null ? null : dec.decode(bytes);
  };
  test('a message that is not multipart has only part 1, its body', () => {
    expect(cut(PLAIN, [1])).toBe('Hello,\r\nworld.\r\n');
    expect(cut(PLAIN, [2])).toBeNull();
  });
  test('parts, their MIME headers, and nested numbers', () => {
    expect(cut(ALTERNATIVE, [1])).toBe('Gr=C3=BC=C3=9Fe');
    expect(cut(ALTERNATIVE, [2], 'MIME')).toBe('Content-Type: text/html; charset=utf-8\r\nContent-Language: de, en\r\n\r\n');
    expect(cut(ALTERNATIVE, [3])).toBeNull();
  });
  test('HEADER, TEXT and HEADER.FIELDS after a part number address the message inside message/rfc822', () => {
    expect(cut(FORWARD, [2], 'HEADER')).toBe('From: "B Person" <b@y.example>\r\nTo: c@z.example\r\nSubject: inner\r\nMessage-ID: <inner@y.example>\r\n\r\n');
    expect(cut(FORWARD, [2], 'TEXT')).toBe('Inner body.');
    expect(cut(FORWARD, [2], 'HEADER.FIELDS', ['SUBJECT'])).toBe('Subject: inner\r\n\r\n');
    expect(cut(FORWARD, [2, 1])).toBe('Inner body.');
    expect(cut(FORWARD, [1], 'HEADER')).toBeNull();
  });
});

const CASES = Number(process.env.FUZZ_CASES ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261203);

/**
 * Checks RFC 3501 §9 response syntax loosely: one parenthesised value whose atoms are NIL or
 * numbers, whose quoted strings escape only \ and ", and whose literals are "{n}" CRLF n octets.
 * (The command reader cannot judge it: "1*body" puts lists side by side without a space.)
 */
function checkValue(bytes: Uint8Array): string | null {
  let depth = 0;
  let i = 0;
  let values = 0;
  while (i < bytes.length) {
    const c = bytes[i];
    if (c === 0x28) depth++;
    else if (c === 0x29) {
      if (--depth < 0) return `unbalanced ")" at ${i}`;
      if (depth === 0) values++;
    } else if (c === 0x20) {
      if (depth === 0) return `space outside the value at ${i}`;
    } else if (c === 0x22) {
      for (i++; bytes[i] !== 0x22; i++) {
        if (i >= bytes.length || bytes[i] === 13 || bytes[i] === 10 || bytes[i] > 127) return `bad quoted string at ${i}`;
        if (bytes[i] === 0x5c && bytes[i + 1] !== 0x22 && bytes[i + 1] !== 0x5c) return `bad escape at ${i}`;
        if (bytes[i] === 0x5c) i++;
      }
    } else if (c === 0x7b) {
      const close = bytes.indexOf(0x7d, i);
      const n = Number(dec.decode(bytes.subarray(i + 1, close)));
      if (bytes[close + 1] !== 13 || bytes[close + 2] !== 10 || !Number.isInteger(n)) return `bad literal at ${i}`;
      i = close + 2 + n;
    } else {
      let j = i;
      while (j < bytes.length && /[A-Z0-9]/.test(String.fromCharCode(bytes[j]))) j++;
      const atom = dec.decode(bytes.subarray(i, j));
      if (atom !== 'NIL' && !/^[0-9]+$/.test(atom)) return `bad atom "${atom}" at ${i}`;
      i = j - 1;
    }
    i++;
  }
  return depth === 0 && values === 1 ? null : `depth ${depth}, ${values} values`;
}

test(`BODYSTRUCTURE of random MIME is one well-formed value: ${CASES} cases (seed ${SEED})`, () => {
  const pieces = ['--b\r\n', '--b--\r\n', '--c\r\n', 'Content-Type: multipart/mixed; boundary=c\r\n', 'Content-Type: message/rfc822\r\n', 'Content-Type: text/plain; charset="x\\"y"\r\n', 'Content-Disposition: attachment; filename*=utf-8\'\'gr%C3%BC%C3%9Fe\r\n', 'Content-Language: en, fr\r\n', 'Subject: (x) "y"\r\n', 'From: A <a@b>, g: c@d;\r\n', '\r\n', 'body ü\r\n', 'x', '\n', '\r', '(', ')', '"'];
  const failures: string[] = [];
  for (let k = 0; k < CASES && failures.length < 5; k++) {
    const r = seededRandom(SEED + k);
    let text = 'Content-Type: multipart/mixed; boundary=b\r\n\r\n';
    for (let i = Math.floor(r() * 30); i > 0; i--) text += pieces[Math.floor(r() * pieces.length)];
    const message = enc.encode(text);
    try {
      for (const extensible of [true, false]) {
        const b = new ResponseBuilder();
        writeBodyStructure(b, message, parseMimeStructure(message), extensible);
        const out = Buffer.concat(b.build().map((c) => (typeof c === 'string' ? enc.encode(c) : c)));
        const problem = checkValue(new Uint8Array(out));
        if (problem !== null) failures.push(`seed ${SEED + k}: ${problem}: ${dec.decode(out).slice(0, 200)}`);
      }
    } catch (error) {
      failures.push(`seed ${SEED + k}: ${(error as Error).stack}`);
    }
  }
  expect(failures).toEqual([]);
}, 120_000);
