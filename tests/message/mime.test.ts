import { describe, expect, test } from 'bun:test';
import { composeMessage, type ComposeInput } from '../../src/message/compose.ts';
import {
  chooseAttachmentEncoding,
  encodeBase64Lines,
  formatParameter,
  guessContentType,
  multipart,
} from '../../src/message/mime.ts';
import { parseWithPython } from '../helpers/send-peers.ts';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

const base: ComposeInput = {
  from: 'Zoë Ça <zoe@example.org>',
  to: ['bob@example.net'],
  subject: 'Bilan — été',
  body: 'Voir la pièce jointe.\n',
  timeMs: Date.UTC(2026, 10, 27, 2, 0, 0),
  uniqueId: 'mime1',
  hostname: 'host.example',
};

const sha = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex');

describe('MIME structure, read back by Python', () => {
  const png = Uint8Array.from({ length: 3000 }, (_, i) => (i * 37 + 11) & 255);
  const pdf = Uint8Array.from({ length: 777 }, (_, i) => (i * 101) & 255);

  test('text + HTML + inline image + attachments: mixed(related(alternative…)) with the right encodings', () => {
    const m = composeMessage({
      ...base,
      html: '<p>Voir <img src="cid:logo@mailbox"></p>\n',
      attachments: [
        { filename: 'logo.png', contentType: 'image/png', bytes: png, contentId: 'logo@mailbox' },
        { filename: 'Übersicht März 2026 — très long nom de fichier pour les suites RFC 2231.pdf', contentType: 'application/pdf', bytes: pdf },
        { filename: 'notes.txt', contentType: 'text/plain', bytes: ENCODER.encode('line one\r\nline two\r\n') },
      ],
    });
    expect(m.contentType).toBe('multipart/mixed');
    const got = parseWithPython(m.bytes);
    expect(got.defects).toEqual([]);
    expect(got.tree).toEqual(['multipart/mixed', 'multipart/alternative', 'text/plain', 'multipart/related', 'text/html', 'image/png', 'application/pdf', 'text/plain']);
    expect(got.parts.map((p) => [p.type, p.cte, p.filename, p.disposition])).toEqual([
      ['text/plain', 'quoted-printable', null, null],
      ['text/html', '7bit', null, null],
      ['image/png', 'base64', 'logo.png', 'inline'],
      ['application/pdf', 'base64', 'Übersicht März 2026 — très long nom de fichier pour les suites RFC 2231.pdf', 'attachment'],
      ['text/plain', '7bit', 'notes.txt', 'attachment'],
    ]);
    expect(got.parts[2].cid).toBe('<logo@mailbox>');
    expect(got.parts[2].sha256).toBe(sha(png));
    expect(got.parts[3].sha256).toBe(sha(pdf));
    expect(got.parts[0].text).toBe('Voir la pièce jointe.\n');
    // RFC 5322 §2.1.1 and RFC 2045 §6.8: no line over 78 characters anywhere.
    const longest = Math.max(...DECODER.decode(m.bytes).split('\r\n').map((l) => l.length));
    expect(longest).toBeLessThanOrEqual(78);
  });

  test('inline files need an HTML body', () => {
    expect(() => composeMessage({ ...base, attachments: [{ filename: 'a.png', contentType: 'image/png', bytes: png, contentId: 'a@b' }] })).toThrow(/--html/);
  });

  test('a file name with a line break is refused (no header injection through names)', () => {
    expect(() => composeMessage({ ...base, attachments: [{ filename: 'a\r\nBcc: x@y.z', contentType: 'text/plain', bytes: png }] })).toThrow(/line break/);
  });
});

describe('building blocks', () => {
  test('base64 lines are 76 characters and end in CRLF', () => {
    const lines = DECODER.decode(encodeBase64Lines(new Uint8Array(200))).split('\r\n');
    expect(lines.slice(0, -2).every((l) => l.length === 76)).toBe(true);
    expect(lines[lines.length - 1]).toBe('');
  });

  test.each([
    ['report.PDF', 'application/pdf'],
    ['photo.jpeg', 'image/jpeg'],
    ['archive.tar.gz', 'application/gzip'],
    ['README', 'application/octet-stream'],
  ])('%s is %s', (name, type) => expect(guessContentType(name)).toBe(type));

  test.each([
    [new Uint8Array([0, 1, 2, 255]), 'text/plain', 'base64'],
    [ENCODER.encode('a\nb\n'), 'text/plain', 'base64'],
    [ENCODER.encode('a\r\nb\r\n'), 'text/plain', '7bit'],
    [ENCODER.encode('caf\u00e9 au lait, encore du texte\r\n'), 'text/plain', 'quoted-printable'],
    [ENCODER.encode('plain\r\n'), 'application/octet-stream', 'base64'],
  ] as const)('attachment encoding %#', (bytes, type, encoding) => expect(chooseAttachmentEncoding(bytes, type)).toBe(encoding));

  test('RFC 2231 parameters: token, quoted, percent-encoded, continued', () => {
    expect(formatParameter('filename', 'a.txt')).toEqual(['filename=a.txt']);
    expect(formatParameter('filename', 'my file.txt')).toEqual(['filename="my file.txt"']);
    expect(formatParameter('filename', 'é.txt')).toEqual(["filename*=utf-8''%C3%A9.txt"]);
    const long = formatParameter('filename', 'é'.repeat(40));
    expect(long.length).toBeGreaterThan(1);
    expect(long[0]).toStartWith("filename*0*=utf-8''");
    expect(long.every((p) => !/%.?$/.test(p))).toBe(true);
  });

  test('the boundary never occurs inside a part', () => {
    const evil = { headers: ['Content-Type: text/plain'], body: ENCODER.encode('--=_seed\r\n') };
    const m = multipart('mixed', [evil], 'seed');
    expect(m.headers[0]).toContain('boundary="=_seed.1"');
  });
});
