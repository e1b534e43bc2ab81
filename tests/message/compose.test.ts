import { describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import {
  ComposeError,
  composeMessage,
  formatAddress,
  parseAddress,
  parseAddressList,
  type ComposeInput,
} from '../../src/message/compose.ts';
import { encodeQuotedPrintable, encodeWords, foldHeader } from '../../src/core/mime-encoding.ts';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const TIME = Date.UTC(2026, 10, 27, 1, 28, 21);

const base: ComposeInput = {
  from: 'Alice <alice@example.org>',
  to: ['bob@example.net'],
  subject: 'Hello',
  body: 'Hi Bob.\n',
  timeMs: TIME,
  uniqueId: 'mhx3k2a9c00q4f7z',
  hostname: 'host.example',
};

const compose = (over: Partial<ComposeInput> = {}) => composeMessage({ ...base, ...over });
const text = (over: Partial<ComposeInput> = {}) => DECODER.decode(compose(over).bytes);
const headerOf = (message: string) => message.slice(0, message.indexOf('\r\n\r\n') + 2);
const bodyOf = (message: string) => message.slice(message.indexOf('\r\n\r\n') + 4);

/** Python's email package as an independent reader of what we write. */
function parseWithPython(bytes: Uint8Array): Record<string, unknown> {
  requirePeers('python3');
  const script = `
import sys, json, email
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
print(json.dumps({
  "subject": str(msg["subject"]),
  "from_name": msg["from"].addresses[0].display_name,
  "from_addr": msg["from"].addresses[0].addr_spec,
  "to": [a.addr_spec for a in msg["to"].addresses] if msg["to"] else [],
  "to_names": [a.display_name for a in msg["to"].addresses] if msg["to"] else [],
  "message_id": msg["message-id"],
  "date": str(msg["date"].datetime),
  "content_type": msg.get_content_type(),
  "cte": msg["content-transfer-encoding"],
  "body": msg.get_content().replace("\\r\\n", "\\n"),
  "defects": [type(d).__name__ for d in msg.defects] + [type(d).__name__ for h in msg.keys() for d in msg[h].defects],
}))
`;
  const run = Bun.spawnSync(['python3', '-c', script], { stdin: bytes, stdout: 'pipe', stderr: 'pipe' });
  if (run.exitCode !== 0) throw new Error(run.stderr.toString());
  return JSON.parse(run.stdout.toString());
}

describe('composeMessage: structure', () => {
  test('an ASCII message: headers in order, CRLF, 7bit', () => {
    expect(text()).toBe(
      'Date: Fri, 27 Nov 2026 01:28:21 +0000\r\n' +
        'From: Alice <alice@example.org>\r\n' +
        'To: bob@example.net\r\n' +
        'Subject: Hello\r\n' +
        'Message-ID: <mhx3k2a9c00q4f7z@example.org>\r\n' +
        'MIME-Version: 1.0\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        'Content-Transfer-Encoding: 7bit\r\n' +
        '\r\n' +
        'Hi Bob.\r\n',
    );
  });

  test('every line ends in CRLF and no line passes 78 characters', () => {
    const message = text({
      subject: 'Ünïcödé '.repeat(20),
      to: Array.from({ length: 12 }, (_, i) => `Recipient Number ${i} <r${i}@example.net>`),
      body: 'x '.repeat(30) + '\n' + 'é'.repeat(200),
    });
    expect(message.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    for (const line of message.split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
  });

  test('the envelope: sender, and To + Cc + Bcc once each; Bcc appears in no header', () => {
    const m = compose({ to: ['a@x.example, b@x.example'], cc: ['a@x.example', 'c@x.example'], bcc: ['secret@x.example'] });
    expect(m.sender).toEqual({ local: 'alice', domain: 'example.org' });
    expect(m.recipients.map((r) => r.local)).toEqual(['a', 'b', 'c', 'secret']);
    expect(DECODER.decode(m.bytes)).not.toContain('secret');
  });

  test('only Bcc: the To header is the empty group', () => {
    expect(headerOf(text({ to: [], bcc: ['b@x.example'] }))).toContain('To: undisclosed-recipients:;\r\n');
  });

  test('no recipient at all is refused', () => {
    expect(() => compose({ to: [] })).toThrow(ComposeError);
  });

  test('Message-ID uses the sender domain, or the host name when that cannot serve', () => {
    expect(compose().messageId).toBe('<mhx3k2a9c00q4f7z@example.org>');
    expect(compose({ from: 'a@[192.0.2.1]' }).messageId).toBe('<mhx3k2a9c00q4f7z@host.example>');
    expect(compose({ from: 'a@bücher.example' }).messageId).toBe('<mhx3k2a9c00q4f7z@host.example>');
    expect(compose({ from: 'a@[192.0.2.1]', hostname: 'bad_host' }).messageId).toBe('<mhx3k2a9c00q4f7z@mailbox.invalid>');
    expect(() => compose({ uniqueId: 'has space' })).toThrow(ComposeError);
  });

  test('Date, Message-ID and Subject given as headers replace the generated ones', () => {
    const m = compose({ headers: ['Date: Mon, 1 Jan 2024 00:00:00 +0000', 'Message-ID: <given@x.example>', 'Subject: Other'] });
    const head = headerOf(DECODER.decode(m.bytes));
    expect(m.messageId).toBe('<given@x.example>');
    expect(head).toContain('Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n');
    expect(head).toContain('Subject: Other\r\n');
    expect(head.match(/^(Date|Message-ID|Subject):/gm)).toHaveLength(3);
    expect(() => compose({ headers: ['Message-ID: nope'] })).toThrow(/Message-ID/);
  });

  test('extra headers go before the MIME fields; non-ASCII values are encoded', () => {
    const head = headerOf(text({ headers: ['X-Mailer: mailbox', 'Reply-To: r@example.org', 'X-Note: café'] }));
    expect(head).toContain('X-Mailer: mailbox\r\nReply-To: r@example.org\r\nX-Note: =?UTF-8?Q?caf=C3=A9?=\r\nMIME-Version');
  });

  test.each([
    ['From: x@y.example', /built from the sender/],
    ['Content-Type: text/html', /built from the body/],
    ['Bcc: x@y.example', /never appear/],
    ['Bad Name: x', /not a valid header field name/],
    ['NoColon', /not "Name: value"/],
  ])('the header %s is refused', (header, why) => {
    expect(() => compose({ headers: [header] })).toThrow(why);
  });
});

describe('header injection is refused', () => {
  test.each([
    ['subject', { subject: 'Hi\r\nBcc: victim@example.net' }],
    ['subject with a bare LF', { subject: 'Hi\nX-Evil: 1' }],
    ['subject with a bare CR', { subject: 'Hi\rX-Evil: 1' }],
    ['an extra header', { headers: ['X-Ok: fine\r\nBcc: victim@example.net'] }],
    ['a display name', { from: 'Alice\r\nBcc: v@example.net <alice@example.org>' }],
    ['a recipient', { to: ['bob@example.net\nBcc: v@example.net'] }],
    ['a NUL', { subject: 'a\0b' }],
  ] as [string, Partial<ComposeInput>][])('in %s', (_, over) => {
    expect(() => compose(over)).toThrow(ComposeError);
    expect(() => compose(over)).toThrow(/line break|NUL/);
  });
});

describe('addresses', () => {
  test.each([
    ['alice@example.org', null, 'alice@example.org'],
    ['Alice <alice@example.org>', 'Alice', 'Alice <alice@example.org>'],
    ['  Alice Liddell   <alice@example.org> ', 'Alice Liddell', 'Alice Liddell <alice@example.org>'],
    ['"Doe, John" <j@example.org>', 'Doe, John', '"Doe, John" <j@example.org>'],
    ['J. R. Doe <j@example.org>', 'J. R. Doe', '"J. R. Doe" <j@example.org>'],
    ['"Say \\"hi\\"" <s@example.org>', 'Say "hi"', '"Say \\"hi\\"" <s@example.org>'],
    ['José Núñez <jose@example.org>', 'José Núñez', '=?UTF-8?Q?Jos=C3=A9_N=C3=BA=C3=B1ez?= <jose@example.org>'],
    ['<bare@example.org>', null, 'bare@example.org'],
  ])('%s', (input, name, formatted) => {
    const parsed = parseAddress(input);
    expect(parsed.name).toBe(name);
    expect(formatAddress(parsed)).toBe(formatted);
  });

  test('internationalised addresses are kept as UTF-8 (RFC 6532)', () => {
    expect(formatAddress(parseAddress('ünïcode@bücher.example'))).toBe('ünïcode@bücher.example');
  });

  test.each(['not-an-address', 'a@', 'Name <a@>', 'x>'])('%s is refused', (input) => {
    expect(() => parseAddress(input)).toThrow(ComposeError);
  });

  test('lists split at commas outside quotes and angle brackets', () => {
    const list = parseAddressList('a@x.example, "Doe, J." <j@x.example>,Bob <b@x.example>,');
    expect(list.map((a) => [a.name, a.mailbox.local])).toEqual([
      [null, 'a'],
      ['Doe, J.', 'j'],
      ['Bob', 'b'],
    ]);
  });

  test('a long To list folds between addresses', () => {
    const head = headerOf(text({ to: Array.from({ length: 6 }, (_, i) => `Person ${i} <person${i}@example.net>`) }));
    expect(head).toContain('To: Person 0 <person0@example.net>, Person 1 <person1@example.net>,\r\n Person 2 <person2@example.net>,');
  });
});

describe('RFC 2047 encoded words', () => {
  test('Q when mostly ASCII, B when mostly not', () => {
    expect(encodeWords('Réunion de lundi')).toEqual(['=?UTF-8?Q?R=C3=A9union_de_lundi?=']);
    expect(encodeWords('日本語のテキスト')).toEqual(['=?UTF-8?B?5pel5pys6Kqe44Gu44OG44Kt44K544OI?=']);
  });

  test('words stay within 75 characters and never split a character (RFC 2047 §2, §5)', () => {
    const source = 'Grüße aus Köln, Zürich und Genève — 日本語 ✓ '.repeat(4);
    const words = encodeWords(source);
    expect(words.length).toBeGreaterThan(1);
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let joined = '';
    for (const w of words) {
      expect(w.length).toBeLessThanOrEqual(75);
      const m = /^=\?UTF-8\?([QB])\?(.*)\?=$/.exec(w)!;
      const bytes =
        m[1] === 'B'
          ? Uint8Array.from(atob(m[2]), (c) => c.charCodeAt(0))
          : Uint8Array.from(m[2].replace(/_/g, ' ').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), (c) => c.charCodeAt(0));
      joined += decoder.decode(bytes);
    }
    expect(joined).toBe(source);
  });

  test('"=", "?", "_", "(" and ")" are encoded in Q words (RFC 2047 §4.2, §5(3))', () => {
    expect(encodeWords('a=b?c_d(e) é')).toEqual(['=?UTF-8?Q?a=3Db=3Fc=5Fd=28e=29_=C3=A9?=']);
  });

  test('a long non-ASCII subject folds into several encoded words', () => {
    const head = headerOf(text({ subject: 'Überraschung! '.repeat(10) }));
    const lines = head.split('\r\n').filter((l) => l.startsWith('Subject:') || l.startsWith(' '));
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[0]).toStartWith('Subject: =?UTF-8?Q?');
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(78);
  });

  test('ASCII text that looks like an encoded word is encoded, so it reads back as written', () => {
    const message = compose({ subject: 'about =?UTF-8?Q?x?= words' }).bytes;
    expect(headerOf(DECODER.decode(message))).toMatch(/^Subject: =\?UTF-8\?[QB]\?/m);
    const parsed = parseWithPython(message);
    expect(parsed.subject).toBe('about =?UTF-8?Q?x?= words');
  });

  test('foldHeader keeps a token longer than a line whole', () => {
    expect(foldHeader('X', ['a', 'b'.repeat(100)])).toBe(`X: a\r\n ${'b'.repeat(100)}\r\n`);
  });
});

describe('body encodings', () => {
  test('ASCII is 7bit, with line endings made CRLF and a final CRLF added', () => {
    const m = compose({ body: 'one\rtwo\r\nthree\nfour' });
    expect(m.transferEncoding).toBe('7bit');
    expect(bodyOf(DECODER.decode(m.bytes))).toBe('one\r\ntwo\r\nthree\r\nfour\r\n');
  });

  test('an empty body stays empty', () => {
    expect(bodyOf(text({ body: '' }))).toBe('');
  });

  test('non-ASCII is 8bit when the server offers 8BITMIME', () => {
    const m = compose({ body: 'Grüße\n', eightBitMime: true });
    expect(m.transferEncoding).toBe('8bit');
    expect(bodyOf(DECODER.decode(m.bytes))).toBe('Grüße\r\n');
  });

  test('non-ASCII is quoted-printable otherwise', () => {
    const m = compose({ body: 'Grüße\n' });
    expect(m.transferEncoding).toBe('quoted-printable');
    expect(bodyOf(DECODER.decode(m.bytes))).toBe('Gr=C3=BC=C3=9Fe\r\n');
  });

  test('ASCII with a line over 998 octets is quoted-printable, even with 8BITMIME', () => {
    expect(compose({ body: 'x'.repeat(1200), eightBitMime: true }).transferEncoding).toBe('quoted-printable');
  });
});

describe('quoted-printable (RFC 2045 §6.7)', () => {
  const qp = (s: string) => encodeQuotedPrintable(ENCODER.encode(s));

  test.each([
    ['plain\r\n', 'plain\r\n'],
    ['a=b\r\n', 'a=3Db\r\n'],
    ['trailing space \r\n', 'trailing space=20\r\n'],
    ['trailing tab\t\r\n', 'trailing tab=09\r\n'],
    ['inner  spaces\r\n', 'inner  spaces\r\n'],
    ['é\r\n', '=C3=A9\r\n'],
    ['\r\n\r\n', '\r\n\r\n'],
    ['no final break', 'no final break'],
  ])('%j', (input, output) => {
    expect(qp(input)).toBe(output);
  });

  test('lines are at most 76 characters, soft breaks never split an escape', () => {
    const source = `${'é'.repeat(60)} ${'a'.repeat(150)}\r\n`;
    const encoded = qp(source);
    for (const line of encoded.split('\r\n')) {
      expect(line.length).toBeLessThanOrEqual(76);
      expect(line).not.toMatch(/=[0-9A-F]?$(?<!=)/);
    }
    const decoded = encoded.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
    expect(new TextDecoder().decode(Uint8Array.from(decoded, (c) => c.charCodeAt(0)))).toBe(source);
  });

  test('a line of exactly 76 characters needs no soft break', () => {
    expect(qp(`${'a'.repeat(76)}\r\n`)).toBe(`${'a'.repeat(76)}\r\n`);
    expect(qp(`${'a'.repeat(77)}\r\n`)).toBe(`${'a'.repeat(75)}=\r\naa\r\n`);
  });
});

describe("Python's email package reads what we write", () => {
  test('names, subject, ids, date and a quoted-printable body', () => {
    const m = compose({
      from: 'José Núñez <jose@example.org>',
      to: ['"Doe, John" <john@example.net>', 'Zoë <zoe@example.net>'],
      subject: 'Réunion — ordre du jour, très long sujet qui doit être plié sur plusieurs lignes',
      body: 'Bonjour,\n\nÀ demain. \n.\nFin\n',
    });
    const parsed = parseWithPython(m.bytes);
    expect(parsed).toEqual({
      subject: 'Réunion — ordre du jour, très long sujet qui doit être plié sur plusieurs lignes',
      from_name: 'José Núñez',
      from_addr: 'jose@example.org',
      to: ['john@example.net', 'zoe@example.net'],
      to_names: ['Doe, John', 'Zoë'],
      message_id: m.messageId,
      date: '2026-11-27 01:28:21+00:00',
      content_type: 'text/plain',
      cte: 'quoted-printable',
      body: 'Bonjour,\n\nÀ demain. \n.\nFin\n',
      defects: [],
    });
  });

  test('an 8bit body', () => {
    const parsed = parseWithPython(compose({ body: 'Grüße\n', eightBitMime: true }).bytes);
    expect([parsed.cte, parsed.body, parsed.defects]).toEqual(['8bit', 'Grüße\n', []]);
  });
});
