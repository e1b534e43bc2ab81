// Serve configuration: the TLS, AUTH, trust and connection-cap settings.
import { expect, test } from 'bun:test';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServeConfig, DEFAULT_MAX_CONNECTIONS } from '../src/config.ts';
import { SetupError, UsageError } from '../src/cli/exit-codes.ts';

const env = { HOME: '/home/test' };
const build = (options: Record<string, unknown>) => buildServeConfig({ starttls: true, ...options }, env);

test('defaults: plain loopback listener, STARTTLS offered, loopback trusted, no AUTH', () => {
  const c = build({});
  expect(c.listen).toEqual([{ host: '127.0.0.1', port: 1025 }]);
  expect(c.listenTls).toEqual([]);
  expect(c.starttls).toBe(true);
  expect(c.requireTls).toBe(false);
  expect(c.tlsFiles).toBeNull();
  expect(c.usersFile).toBeNull();
  expect(c.trust.networks.map((n) => `${n.address}/${n.prefix}`)).toEqual(['127.0.0.0/8', '::1/128']);
  expect(c.maxConnections).toBe(DEFAULT_MAX_CONNECTIONS);
});

test('listeners: unix:/path, --listen-tls alone replaces the default, a public listener drops loopback trust', () => {
  expect(build({ listen: ['unix:/run/m.sock', '127.0.0.1:2525'] }).listenUnix).toEqual(['/run/m.sock']);
  const tlsOnly = build({ listenTls: '127.0.0.1:465' });
  expect(tlsOnly.listen).toEqual([]);
  expect(tlsOnly.listenTls).toEqual([{ host: '127.0.0.1', port: 465 }]);
  expect(build({ listen: '0.0.0.0:25' }).trust.networks).toEqual([]);
  expect(build({ listen: '0.0.0.0:25', trust: ['10.0.0.0/8', '192.0.2.1'] }).trust.networks.length).toBe(2);
  expect(build({ trust: 'none' }).trust).toEqual({ networks: [], unixClients: false });
});

test('mistakes are usage errors', () => {
  expect(() => build({ tlsCert: 'c.pem' })).toThrow(UsageError);
  expect(() => build({ trust: ['none', '10.0.0.0/8'] })).toThrow(UsageError);
  expect(() => build({ trust: 'example.test' })).toThrow(UsageError);
  expect(() => build({ listen: 'unix:' })).toThrow(UsageError);
  expect(() => build({ maxConnectionsPerIp: '0' })).toThrow(UsageError);
});

test('switches in the config file take yes/no; --no-starttls and --require-tls on the command line win', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbox-config-'));
  try {
    const file = join(dir, 'mailbox.conf');
    writeFileSync(file, 'require-tls yes\nstarttls no\nauth-any on\nmax-connections 10\n');
    const c = build({ config: file });
    expect([c.requireTls, c.starttls, c.authAny, c.maxConnections]).toEqual([true, false, true, 10]);
    writeFileSync(file, 'starttls yes\n');
    expect(buildServeConfig({ config: file, starttls: false }, env).starttls).toBe(false);
    writeFileSync(file, 'require-tls maybe\n');
    expect(() => build({ config: file })).toThrow(SetupError);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('--postmaster: RFC 5321 §4.5.1 mail to the bare <Postmaster> goes to a local mailbox', () => {
  expect(build({ hostname: 'mx.example' }).postmaster).toEqual({ local: 'postmaster', domain: 'mx.example' });
  expect(build({ hostname: 'mx.example', domain: ['Mail.Example', 'other.example'] }).postmaster).toEqual({ local: 'postmaster', domain: 'mail.example' });
  expect(build({ domain: ['mail.example', 'other.example'], postmaster: 'hostmaster@OTHER.example' }).postmaster).toEqual({ local: 'hostmaster', domain: 'OTHER.example' });
  expect(build({ postmaster: '<admin@anywhere.example>' }).postmaster).toEqual({ local: 'admin', domain: 'anywhere.example' });
  // Never relayed: an address outside every --domain would need relaying.
  expect(() => build({ domain: 'mail.example', postmaster: 'admin@elsewhere.example' })).toThrow(UsageError);
  expect(() => build({ postmaster: 'no-domain' })).toThrow(UsageError);
  const dir = mkdtempSync(join(tmpdir(), 'mailbox-config-'));
  try {
    const file = join(dir, 'mailbox.conf');
    writeFileSync(file, 'domain mail.example\npostmaster abuse@mail.example\n');
    expect(build({ config: file }).postmaster).toEqual({ local: 'abuse', domain: 'mail.example' });
    expect(build({ config: file, postmaster: 'root@mail.example' }).postmaster).toEqual({ local: 'root', domain: 'mail.example' });
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('POP3 listeners: on at 127.0.0.1:1110 by default, off, port 0, repeatable; --pop3-tls off by default', () => {
  expect(build({}).pop3).toEqual([{ host: '127.0.0.1', port: 1110 }]);
  expect(build({}).pop3Tls).toEqual([]);
  expect(build({ pop3: 'off' }).pop3).toEqual([]);
  expect(build({ pop3: ['127.0.0.1:0', '[::1]:1110'] }).pop3).toEqual([{ host: '127.0.0.1', port: 0 }, { host: '::1', port: 1110 }]);
  expect(build({ 'pop3-tls': '127.0.0.1:995' }).pop3Tls).toEqual([{ host: '127.0.0.1', port: 995 }]);
  expect(() => build({ pop3: ['off', '127.0.0.1:1110'] })).toThrow(UsageError);
  expect(() => build({ pop3: 'nonsense:port' })).toThrow('--pop3: "nonsense:port" is not HOST:PORT');
});

test('IMAP listeners: on at 127.0.0.1:1143 by default, off, port 0, repeatable; --imap-tls off by default', () => {
  expect(build({}).imap).toEqual([{ host: '127.0.0.1', port: 1143 }]);
  expect(build({}).imapTls).toEqual([]);
  expect(build({ imap: 'off' }).imap).toEqual([]);
  expect(build({ imap: ['127.0.0.1:0', '[::1]:1143'] }).imap).toEqual([{ host: '127.0.0.1', port: 0 }, { host: '::1', port: 1143 }]);
  expect(build({ imapTls: '127.0.0.1:993' }).imapTls).toEqual([{ host: '127.0.0.1', port: 993 }]);
  expect(() => build({ imap: ['off', '127.0.0.1:1143'] })).toThrow(UsageError);
  expect(() => build({ imap: 'nonsense:port' })).toThrow('--imap: "nonsense:port" is not HOST:PORT');
});
