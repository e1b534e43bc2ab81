// Table tests of the structural MIME splitter (RFC 2045/2046 and RFC 3501 §6.4.5 part numbers),
// a cross-check against Python's email package on the same messages, and a seeded fuzz test:
// well-formed trees must come back exactly, and mutated ones must never throw or leave bounds.
import { expect, test } from 'bun:test';
import {
  findMimePart,
  listMimeEntities,
  MAX_MIME_DEPTH,
  parseContentType,
  parseHeaderFields,
  parseMimeStructure,
  type MimeEntity,
} from '../../src/core/mime-structure.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const crlf = (s: string) => enc.encode(s.replace(/\r?\n/g, '\r\n'));
const lf = (s: string) => enc.encode(s.replace(/\r\n/g, '\n'));
const body = (bytes: Uint8Array, e: MimeEntity) => dec.decode(bytes.subarray(e.bodyStart, e.bodyEnd));
const header = (bytes: Uint8Array, e: MimeEntity) => dec.decode(bytes.subarray(e.headerStart, e.headerEnd));
const shape = (e: MimeEntity): unknown => ({
  path: e.path,
  type: `${e.type}/${e.subtype}`,
  ...(e.children.length > 0 ? { children: e.children.map(shape) } : {}),
  ...(e.message !== null ? { message: shape(e.message) } : {}),
});

const NESTED = `From: a@x.test
To: b@x.test
Subject: nested
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is the preamble.
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

plain text
--inner
Content-Type: text/html

<p>html</p>
--inner--
--outer
Content-Type: application/pdf; name="a.pdf"
Content-Disposition: attachment; filename="a.pdf"
Content-Transfer-Encoding: base64
Content-ID: <pdf@x>

JVBERi0=
--outer
Content-Type: message/rfc822

From: c@x.test
Subject: inner message
Content-Type: multipart/mixed; boundary=m3

--m3

first
--m3
Content-Type: image/png

PNG
--m3--
--outer--
This is the epilogue.
`;

test('a message without MIME headers is one text/plain part; part 1 is its body', () => {
  const bytes = crlf('Subject: hi\nFrom: a@x.test\n\nline one\nline two\n');
  const root = parseMimeStructure(bytes);
  expect(root).toMatchObject({ path: '', type: 'text', subtype: 'plain', params: { charset: 'us-ascii' }, transferEncoding: '7bit', defects: [] });
  expect(header(bytes, root)).toBe('Subject: hi\r\nFrom: a@x.test\r\n');
  expect(body(bytes, root)).toBe('line one\r\nline two\r\n');
  expect([root.bodyBytes, root.bodyLines, root.bodyBareLfs]).toEqual([20, 2, 0]);
  expect(findMimePart(root, '1')).toBe(root);
  expect(findMimePart(root, '2')).toBeNull();
  expect(findMimePart(root, '1.1')).toBeNull();
});

test('nested multiparts and message/rfc822 get IMAP part numbers and exact ranges', () => {
  const bytes = crlf(NESTED);
  const root = parseMimeStructure(bytes);
  expect(shape(root)).toEqual({
    path: '', type: 'multipart/mixed', children: [
      { path: '1', type: 'multipart/alternative', children: [{ path: '1.1', type: 'text/plain' }, { path: '1.2', type: 'text/html' }] },
      { path: '2', type: 'application/pdf' },
      { path: '3', type: 'message/rfc822', message: { path: '3', type: 'multipart/mixed', children: [{ path: '3.1', type: 'text/plain' }, { path: '3.2', type: 'image/png' }] } },
    ],
  });
  const all = listMimeEntities(root);
  expect(all.every((e) => e.defects.length === 0)).toBe(true);
  expect(body(bytes, findMimePart(root, '1.1')!)).toBe('plain text');
  expect(body(bytes, findMimePart(root, '1.2')!)).toBe('<p>html</p>');
  const pdf = findMimePart(root, '2')!;
  expect(pdf).toMatchObject({ params: { name: 'a.pdf' }, disposition: { type: 'attachment', params: { filename: 'a.pdf' } }, contentId: '<pdf@x>', transferEncoding: 'base64', bodyBytes: 8, bodyLines: 1 });
  expect(header(bytes, pdf)).toStartWith('Content-Type: application/pdf');
  const rfc822 = findMimePart(root, '3')!;
  expect(body(bytes, rfc822)).toStartWith('From: c@x.test\r\n');
  expect(header(bytes, rfc822.message!)).toBe('From: c@x.test\r\nSubject: inner message\r\nContent-Type: multipart/mixed; boundary=m3\r\n');
  expect(body(bytes, findMimePart(root, '3.1')!)).toBe('first');
  expect(findMimePart(root, '3.1')!.headerEnd).toBe(findMimePart(root, '3.1')!.headerStart);
  expect(body(bytes, findMimePart(root, '3.2')!)).toBe('PNG');
  expect(findMimePart(root, '3.3')).toBeNull();
  expect(findMimePart(root, '4')).toBeNull();
  expect(findMimePart(root, '0')).toBeNull();
  expect(findMimePart(root, '1.x')).toBeNull();
  for (const e of all) if (e.message === null || e.type !== 'multipart') expect(e.path === '' || findMimePart(root, e.path) !== null).toBe(true);
});

test('bare LF input splits exactly as CRLF input does, and counts its bare LFs', () => {
  const a = parseMimeStructure(crlf(NESTED));
  const bytes = lf(NESTED);
  const b = parseMimeStructure(bytes);
  expect(shape(b)).toEqual(shape(a));
  expect(body(bytes, findMimePart(b, '1.2')!)).toBe('<p>html</p>');
  const pdf = findMimePart(b, '2')!;
  expect([pdf.bodyBytes, pdf.bodyLines, pdf.bodyBareLfs]).toEqual([8, 1, 0]);
  expect([b.bodyLines, b.bodyBareLfs]).toEqual([a.bodyLines, b.bodyLines]);
  expect(b.bodyBytes + b.bodyBareLfs).toBe(a.bodyBytes);
});

test.each([
  ['missing close delimiter: the last part runs to the end', 'Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n', ['one', 'two\r\n'], ['no-close-delimiter']],
  ['no delimiter at all: no parts', 'Content-Type: multipart/mixed; boundary=b\n\njust text\n', [], ['no-delimiter']],
  ['transport padding after delimiters', 'Content-Type: multipart/mixed; boundary=b\n\n--b  \n\none\n--b\t\n\ntwo\n--b-- \nepi\n', ['one', 'two'], []],
  ['a line that only starts like a delimiter is body', 'Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx\n --b\n--b--\n', ['--bx\r\n --b'], []],
  ['empty parts', 'Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\n--b--\n', ['', ''], []],
  ['duplicate close delimiter: the rest is epilogue', 'Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b--\n--b\n\nafter\n--b--\n', ['one'], []],
  ['quoted boundary with specials and a comment', 'Content-Type: multipart/mixed; (c) boundary="a b:c?" (d)\n\n--a b:c?\n\none\n--a b:c?--\n', ['one'], []],
  ['boundary whose prefix is the outer boundary', 'Content-Type: multipart/mixed; boundary=abc\n\n--abc\nContent-Type: multipart/mixed; boundary=abcdef\n\n--abcdef\n\nin\n--abcdef--\n--abc--\n', ['--abcdef\r\n\r\nin\r\n--abcdef--'], []],
])('%s', (_name, text, bodies, defects) => {
  const bytes = crlf(text);
  const root = parseMimeStructure(bytes);
  expect(root.type).toBe('multipart');
  expect(root.children.map((c) => body(bytes, c))).toEqual(bodies);
  expect(root.defects as readonly string[]).toEqual(defects);
});

test('a multipart without a boundary is read as text/plain (RFC 2046 §5.1.1 requires one)', () => {
  const root = parseMimeStructure(crlf('Content-Type: multipart/mixed\n\n--b\n\nx\n'));
  expect(root).toMatchObject({ type: 'text', subtype: 'plain', children: [], defects: ['multipart-without-boundary'] });
});

test('an unparsable Content-Type falls back to text/plain; the first of duplicates wins', () => {
  expect(parseMimeStructure(crlf('Content-Type: garbage\n\nx')).defects).toEqual(['bad-content-type']);
  expect(parseMimeStructure(crlf('Content-Type: garbage\n\nx')).type).toBe('text');
  const dup = parseMimeStructure(crlf('Content-Type: text/html\nContent-Type: image/png\n\nx'));
  expect(`${dup.type}/${dup.subtype}`).toBe('text/html');
});

test('multipart/digest parts default to message/rfc822 (RFC 2046 §5.1.5)', () => {
  const bytes = crlf('Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody one\n--d\nContent-Type: text/plain\n\nnot a message\n--d--\n');
  const root = parseMimeStructure(bytes);
  expect(shape(root)).toEqual({ path: '', type: 'multipart/digest', children: [{ path: '1', type: 'message/rfc822', message: { path: '1', type: 'text/plain' } }, { path: '2', type: 'text/plain' }] });
  expect(body(bytes, findMimePart(root, '1.1')!)).toBe('body one');
});

test('an encoded message/rfc822 stays opaque (RFC 2046 §5.2.1)', () => {
  const root = parseMimeStructure(crlf('Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA==\n'));
  expect(root.message).toBeNull();
  expect(root.defects).toEqual(['encoded-message']);
});

test('a top-level message/rfc822 numbers the inner parts 1.1, 1.2', () => {
  const bytes = crlf('Content-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nA\n--q\n\nB\n--q--\n');
  const root = parseMimeStructure(bytes);
  expect(shape(root.message!)).toEqual({ path: '1', type: 'multipart/mixed', children: [{ path: '1.1', type: 'text/plain' }, { path: '1.2', type: 'text/plain' }] });
  expect(body(bytes, findMimePart(root, '1.2')!)).toBe('B');
});

test('header edge cases: no blank line, no header, a body line where the header should be, folding', () => {
  const noBlank = crlf('Subject: x\nFrom: y');
  expect(parseMimeStructure(noBlank)).toMatchObject({ headerEnd: noBlank.length, bodyStart: noBlank.length, bodyBytes: 0, bodyLines: 0, defects: ['header-not-terminated'] });
  const noHeader = crlf('\nbody');
  expect(parseMimeStructure(noHeader)).toMatchObject({ headerStart: 0, headerEnd: 0, bodyStart: 2, bodyBytes: 4, bodyLines: 1 });
  const garbage = crlf('Subject: x\nthis is not a header\n\nrest');
  expect(parseMimeStructure(garbage)).toMatchObject({ headerEnd: 12, bodyStart: 12, defects: ['bad-header-line'] });
  expect(parseMimeStructure(new Uint8Array(0))).toMatchObject({ headerEnd: 0, bodyStart: 0, bodyEnd: 0, defects: [] });
  const unclosedQuote = crlf('Content-Type: multipart/mixed;\n\tboundary="f\n\n--f\n\nx\n--f--\n');
  expect(parseMimeStructure(unclosedQuote)).toMatchObject({ params: { boundary: 'f' }, defects: [] });
  const nestedRfc822 = crlf('Content-Type: multipart/mixed; boundary=o\n\n--o\n\nA\n--o\nContent-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: deepest\n\nZ\n--o--\n');
  const deep = parseMimeStructure(nestedRfc822);
  expect([deep.children[1].message!.path, deep.children[1].message!.message!.path]).toEqual(['2', '2.1']);
  expect(body(nestedRfc822, findMimePart(deep, '2.1.1')!)).toBe('Z');
  const folded2 = crlf('Content-Type: multipart/mixed;\n\tboundary="f"\nSubject : spaced\n\n--f\n\nx\n--f--\n');
  expect(parseMimeStructure(folded2).children.length).toBe(1);
  expect(parseHeaderFields(folded2, 0, folded2.length).slice(0, 2)).toEqual([
    { name: 'Content-Type', value: 'multipart/mixed;\tboundary="f"' },
    { name: 'Subject', value: 'spaced' },
  ]);
});

test('parameters: RFC 2231 continuations and charsets, quoting, case, duplicates', () => {
  expect(parseContentType('Application/PDF; NAME*0*=utf-8\'\'%C3%A9t%C3%A9; name*1=".pdf"; x="a\\"b"; x=second')).toEqual({
    type: 'application', subtype: 'pdf', params: { name: 'été.pdf', x: 'a"b' },
  });
  expect(parseContentType('text/plain; title*=iso-8859-1\'en\'%E9t%E9; title=fallback')!.params).toEqual({ title: 'été' });
  expect(parseContentType('text/plain; charset="utf-8" (comment); format=flowed')!.params).toEqual({ charset: 'utf-8', format: 'flowed' });
  expect(parseContentType('text')).toBeNull();
  expect(parseContentType('te xt/plain')).toBeNull();
  expect(parseContentType('text/plain; ; =x; y')!.params).toEqual({});
});

test(`nesting deeper than ${MAX_MIME_DEPTH} stops splitting instead of recursing`, () => {
  const levels = 5000;
  let text = '';
  for (let i = 0; i < levels; i++) text += `Content-Type: multipart/mixed; boundary=b${i}\n\n--b${i}\n`;
  text += '\nleaf\n';
  const bytes = crlf(text);
  const root = parseMimeStructure(bytes);
  const all = listMimeEntities(root);
  expect(all.length).toBe(MAX_MIME_DEPTH + 1);
  expect(all.at(-1)!.defects).toContain('too-deep');
  expect(all.at(-1)!.path.split('.').length).toBe(MAX_MIME_DEPTH);
});

interface Expected {
  type: string;
  body?: string;
  children?: Expected[];
  message?: Expected;
}

/** A random well-formed entity and the structure the splitter must find in it. */
function generate(r: () => number, depth: number, counter: { n: number }): { text: string; expected: Expected } {
  const roll = depth >= 4 ? 1 : r();
  if (roll < 0.2 && depth > 0 && depth < 4) {
    const inner = generate(r, depth + 1, counter);
    return { text: `Content-Type: message/rfc822\n\nSubject: inner ${counter.n++}\n${inner.text}`, expected: { type: 'message/rfc822', message: inner.expected } };
  }
  if (roll < 0.55) {
    const boundary = `=_b${counter.n++}${r() < 0.5 ? ' x' : ''}`;
    const count = 1 + Math.floor(r() * 4);
    const kids = Array.from({ length: count }, () => generate(r, depth + 1, counter));
    const preamble = r() < 0.5 ? 'preamble line\n' : '';
    const epilogue = r() < 0.5 ? 'epilogue\n' : '';
    const parts = kids.map((k) => `--${boundary}${r() < 0.2 ? ' ' : ''}\n${k.text}\n`).join('');
    return {
      text: `Content-Type: multipart/${r() < 0.5 ? 'mixed' : 'alternative'}; boundary="${boundary}"\n\n${preamble}${parts}--${boundary}--\n${epilogue}`,
      expected: { type: 'multipart', children: kids.map((k) => k.expected) },
    };
  }
  const lines = Array.from({ length: Math.floor(r() * 4) }, (_, i) => `line ${i} -- ${'z'.repeat(Math.floor(r() * 20))}`);
  const text = lines.join('\n');
  const type = r() < 0.5 ? 'text/plain' : 'application/octet-stream';
  return { text: `Content-Type: ${type}\n\n${text}`, expected: { type, body: text.replace(/\n/g, '\r\n') } };
}

function check(bytes: Uint8Array, e: MimeEntity, expected: Expected): void {
  expect(expected.type === 'multipart' ? e.type : `${e.type}/${e.subtype}`).toBe(expected.type);
  if (expected.body !== undefined) expect(body(bytes, e)).toBe(expected.body);
  if (expected.children !== undefined) {
    expect(e.children.length).toBe(expected.children.length);
    expected.children.forEach((c, i) => check(bytes, e.children[i], c));
  }
  if (expected.message !== undefined) check(bytes, e.message!, expected.message);
}

function checkInvariants(bytes: Uint8Array, root: MimeEntity): void {
  const stack: [MimeEntity, number, number][] = [[root, 0, bytes.length]];
  while (stack.length > 0) {
    const [e, lo, hi] = stack.pop()!;
    const ok = lo <= e.headerStart && e.headerStart <= e.headerEnd && e.headerEnd <= e.bodyStart && e.bodyStart <= e.bodyEnd && e.bodyEnd <= hi;
    if (!ok) throw new Error(`range out of bounds at ${e.path}: ${JSON.stringify([lo, e.headerStart, e.headerEnd, e.bodyStart, e.bodyEnd, hi])}`);
    if (e.bodyBytes !== e.bodyEnd - e.bodyStart || e.bodyLines > e.bodyBytes || e.bodyBareLfs > e.bodyLines) throw new Error(`counts at ${e.path}`);
    if (e.path !== '' && !/^[1-9][0-9]*(\.[1-9][0-9]*)*$/.test(e.path)) throw new Error(`path ${e.path}`);
    if (e.path !== '' && e.type !== 'message' && findMimePart(root, e.path) !== e && findMimePart(root, e.path)?.message !== e) throw new Error(`findMimePart(${e.path})`);
    let previousEnd = e.bodyStart;
    for (const c of e.children) {
      if (c.headerStart < previousEnd) throw new Error(`overlapping parts at ${c.path}`);
      previousEnd = c.bodyEnd;
      stack.push([c, e.bodyStart, e.bodyEnd]);
    }
    if (e.message !== null) stack.push([e.message, e.bodyStart, e.bodyEnd]);
  }
}

const CASES = Number(process.env.FUZZ_CASES ?? 1500);
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);

test(`fuzz: well-formed trees come back exactly, mutated ones never throw or leave bounds (seed ${SEED}, ${CASES} cases)`, () => {
  console.log(`mime-structure fuzz seed ${SEED} (FUZZ_SEED=n to replay), ${CASES} cases`);
  const r = seededRandom(SEED);
  for (let i = 0; i < CASES; i++) {
    const { text, expected } = generate(r, 0, { n: 0 });
    const message = `From: a@x.test\nSubject: case ${i}\nMIME-Version: 1.0\n${text}`;
    const bytes = crlf(message);
    const root = parseMimeStructure(bytes);
    check(bytes, root, expected);
    checkInvariants(bytes, root);
    const bare = lf(message);
    checkInvariants(bare, parseMimeStructure(bare));
    let mutated: Uint8Array = Uint8Array.from(r() < 0.5 ? bytes : bare);
    for (let m = 1 + Math.floor(r() * 6); m > 0; m--) mutated = mutate(mutated, r);
    try {
      checkInvariants(mutated, parseMimeStructure(mutated));
    } catch (error) {
      throw new Error(`seed ${SEED} case ${i}: ${(error as Error).message}\n${JSON.stringify(dec.decode(mutated))}`);
    }
  }
});

function mutate(bytes: Uint8Array, r: () => number): Uint8Array {
  const at = Math.floor(r() * (bytes.length + 1));
  const len = Math.floor(r() * 40);
  const pieces = ['--', '\r\n', '\n', '\r', '--=_b1--\r\n', 'Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n', 'Content-Type: message/rfc822\r\n\r\n', ':', ' ', '\0', '\xff', '"', ';', '*0*=', "utf-8''%"];
  switch (Math.floor(r() * 4)) {
    case 0:
      return concat(bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + len)));
    case 1:
      return concat(bytes.subarray(0, at), enc.encode(pieces[Math.floor(r() * pieces.length)]), bytes.subarray(at));
    case 2:
      return concat(bytes.subarray(0, at), bytes.subarray(Math.max(0, at - len), at), bytes.subarray(at));
    default: {
      const out = Uint8Array.from(bytes);
      for (let k = 0; k < len && out.length > 0; k++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('agrees with Python\'s email package on every part\'s type and undecoded body', () => {
  const r = seededRandom(SEED + 1);
  const messages: string[] = [NESTED];
  for (let i = 0; i < 40; i++) messages.push(`From: a@x.test\nSubject: py ${i}\nMIME-Version: 1.0\n${generate(r, 0, { n: 0 }).text}`);
  const script = [
    'import sys, json, email, email.policy',
    'out = []',
    'for raw in json.load(sys.stdin):',
    '    m = email.message_from_bytes(raw.encode("utf-8"), policy=email.policy.compat32)',
    '    parts = []',
    '    for p in m.walk():',
    '        parts.append([p.get_content_type(), None if p.is_multipart() else p.get_payload(decode=False)])',
    '    out.append(parts)',
    'print(json.dumps(out))',
  ].join('\n');
  const proc = Bun.spawnSync(['python3', '-c', script], { stdin: enc.encode(JSON.stringify(messages.map((m) => m.replace(/\n/g, '\r\n')))) });
  expect(dec.decode(proc.stderr)).toBe('');
  const python = JSON.parse(dec.decode(proc.stdout)) as [string, string | null][][];
  messages.forEach((m, i) => {
    const bytes = crlf(m);
    const ours: [string, string | null][] = [];
    const walk = (e: MimeEntity) => {
      ours.push([`${e.type}/${e.subtype}`, e.type === 'multipart' || e.message !== null ? null : body(bytes, e)]);
      if (e.message !== null) walk(e.message);
      e.children.forEach(walk);
    };
    walk(parseMimeStructure(bytes));
    expect(ours).toEqual(python[i]);
  });
});
