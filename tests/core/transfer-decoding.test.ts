// RFC 2045 §6.7 and §6.8, read leniently as mail in the wild needs.
import { expect, test } from 'bun:test';
import { decodeBase64Body, decodeQuotedPrintable, decodeTransferEncoding } from '../../src/core/transfer-decoding.ts';
import { formatReceived, parseReceived } from '../../src/core/envelope.ts';

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

test('base64: line breaks and junk outside the alphabet are skipped; padding ends the data', () => {
  expect(text(decodeBase64Body(bytes('aGVs\r\nbG8g\r\nd29y bGQ=\r\n')))).toBe('hello world');
  expect(text(decodeBase64Body(bytes('aGk=IGlnbm9yZWQ=')))).toBe('hi');
  expect(decodeBase64Body(bytes(''))).toEqual(new Uint8Array());
});

test('quoted-printable: =XX, soft line breaks (CRLF, LF, trailing space), malformed = kept', () => {
  expect(text(decodeQuotedPrintable(bytes('caf=C3=A9 =\r\nau lait=  \r\n!')))).toBe('café au lait!');
  expect(text(decodeQuotedPrintable(bytes('a=\nb')))).toBe('ab');
  expect(text(decodeQuotedPrintable(bytes('100=ZZ percent=')))).toBe('100=ZZ percent');
  expect(text(decodeQuotedPrintable(bytes('x=4')))).toBe('x=4');
});

test('other encodings are the bytes as stored', () => {
  const raw = bytes('plain\r\n');
  expect(decodeTransferEncoding(raw, '8bit')).toBe(raw);
  expect(text(decodeTransferEncoding(bytes('Zm9v'), 'BASE64'))).toBe('foo');
});

test('parseReceived reads back what formatReceived wrote (RFC 5321 §4.4)', () => {
  const tx = { sender: null, mailParams: [], recipients: [{ mailbox: { local: 'a', domain: 'x.test' }, local: true, params: [] }], utf8: false, body: '7BIT' as const, declaredSize: null, authUser: null };
  const header = formatReceived({ heloName: 'client.test', clientAddress: '::1', serverName: 'mx.test', protocol: 'ESMTPS', id: 'abc', timeMs: 0, tls: 'TLSv1.3 TLS_AES_256_GCM_SHA384' }, tx);
  expect(parseReceived(header)).toEqual({ heloName: 'client.test', clientAddress: '::1', protocol: 'ESMTPS', tls: 'TLSv1.3 TLS_AES_256_GCM_SHA384' });
  const clear = formatReceived({ heloName: '[127.0.0.1]', clientAddress: '127.0.0.1', serverName: 'mx.test', protocol: 'ESMTP', id: 'abc', timeMs: 0 }, tx);
  expect(parseReceived(clear)).toEqual({ heloName: '[127.0.0.1]', clientAddress: '127.0.0.1', protocol: 'ESMTP', tls: null });
  expect(parseReceived('Received: from elsewhere by mx.example; Mon, 1 Jan 2024')).toBeNull();
});
