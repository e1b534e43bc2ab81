import { expect, test } from 'bun:test';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { createSelfSigned } from '../../src/tls/self-signed.ts';

test('a v3 certificate that node:crypto and node:tls accept, for the host name and loopback', () => {
  const now = Date.UTC(2026, 10, 27, 12, 0, 0);
  const { cert, key } = createSelfSigned({ hostname: 'MX.Example.TEST', nowMs: now });
  const x = new X509Certificate(cert);
  expect(x.subject).toBe('CN=mx.example.test');
  expect(x.issuer).toBe(x.subject);
  expect(x.subjectAltName).toBe('DNS:mx.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  expect(Date.parse(x.validFrom)).toBe(now - 3_600_000);
  expect(Date.parse(x.validTo)).toBe(now + 365 * 86_400_000);
  expect(x.ca).toBe(false);
  expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  expect(x.verify(x.publicKey)).toBe(true);
  expect(x.checkPrivateKey(createPrivateKey(key))).toBe(true);
  expect(x.checkHost('mx.example.test')).toBe('mx.example.test');
  expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
  expect(() => createSecureContext({ cert, key })).not.toThrow();
});

test('validity past 2049 is a GeneralizedTime; an unusable host name falls back to localhost', () => {
  const { cert } = createSelfSigned({ hostname: 'bad name!', nowMs: Date.UTC(2049, 11, 1), days: 60 });
  const x = new X509Certificate(cert);
  expect(x.subject).toBe('CN=localhost');
  expect(new Date(x.validTo).getUTCFullYear()).toBe(2050);
});

test('two certificates never share a serial number or a key', () => {
  const a = new X509Certificate(createSelfSigned({ hostname: 'a.test', nowMs: Date.now() }).cert);
  const b = new X509Certificate(createSelfSigned({ hostname: 'a.test', nowMs: Date.now() }).cert);
  expect(a.serialNumber).not.toBe(b.serialNumber);
  expect(a.fingerprint256).not.toBe(b.fingerprint256);
});
