// The one host:port parser, as each caller's rules shape it.
import { expect, test } from 'bun:test';
import { formatHostPort, parseHostPort } from '../../src/transport/host-port.ts';

test('forms: HOST, HOST:PORT, [IPv6]:PORT, :PORT', () => {
  expect(parseHostPort('mail.example.org', { defaultPort: 25 })).toEqual({ host: 'mail.example.org', port: 25 });
  expect(parseHostPort(' 127.0.0.1:1025 ')).toEqual({ host: '127.0.0.1', port: 1025 });
  expect(parseHostPort('[::1]:2525')).toEqual({ host: '::1', port: 2525 });
  expect(parseHostPort('[::1]', { defaultPort: 53 })).toEqual({ host: '::1', port: 53 });
  expect(parseHostPort(':1025', { defaultHost: '127.0.0.1' })).toEqual({ host: '127.0.0.1', port: 1025 });
});

test('rules: a required port, port 0, IP-only hosts, bare IPv6', () => {
  expect(parseHostPort('127.0.0.1')).toEqual({ error: 'expected HOST:PORT (the port is missing)' });
  expect(parseHostPort(':25')).toEqual({ error: 'expected HOST:PORT (the host is missing)' });
  expect(parseHostPort('127.0.0.1:0')).toEqual({ error: 'the port must be 1-65535, got "0"' });
  expect(parseHostPort('127.0.0.1:0', { portZero: true })).toEqual({ host: '127.0.0.1', port: 0 });
  expect(parseHostPort('127.0.0.1:65536', { portZero: true })).toHaveProperty('error');
  expect(parseHostPort('dns.example:53', { ipOnly: true })).toEqual({ error: '"dns.example" is not an IP address' });
  expect(parseHostPort('::1:25', { defaultPort: 25 })).toHaveProperty('error');
  expect(parseHostPort('2001:db8::53', { defaultPort: 53, bareIpv6: true })).toEqual({ host: '2001:db8::53', port: 53 });
  expect(parseHostPort('[mail.example]:25')).toHaveProperty('error');
  expect(parseHostPort('a b:25')).toHaveProperty('error');
});

test('format', () => {
  expect([formatHostPort('127.0.0.1', 25), formatHostPort('::1', 25)]).toEqual(['127.0.0.1:25', '[::1]:25']);
});
