// --http off loopback: HTTPS with serve's certificate and credentials from --users, or it does not start.
import { expect, test } from 'bun:test';
import { buildServeConfig } from '../../src/config.ts';
import { SetupError } from '../../src/exit-status.ts';
import { dotStuff } from '../../src/core/data.ts';
import { formatReceived } from '../../src/core/envelope.ts';
import { httpServesTls, sessionOf, startHttp } from '../../src/serve/http-host.ts';
import { spoolsPerTest } from '../spool/fixtures/spools.ts';
import { envelope } from '../spool/fixtures/messages.ts';

const quiet = { info() {}, warn() {}, error() {}, reopen() {}, close() {} };

test('a non-loopback --http needs --users (exit 78), and TLS unless --http-insecure', () => {
  const config = buildServeConfig({ http: '192.0.2.10:8025', data: '/tmp/nowhere', listen: '127.0.0.1:0' }, {});
  expect(httpServesTls(config)).toBe(true);
  expect(httpServesTls(buildServeConfig({ http: '192.0.2.10:8025', httpInsecure: true, data: '/tmp/nowhere' }, {}))).toBe(false);
  expect(httpServesTls(buildServeConfig({ http: '127.0.0.1:0', data: '/tmp/nowhere' }, {}))).toBe(false);
  let error: unknown;
  try {
    startHttp(config, { log: quiet, now: Date.now, certificate: null, auth: null, trusted: () => false, spool: null as never, mailIndex: null, faults: null as never, relay: null });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SetupError);
  expect((error as SetupError).message).toContain('needs credentials: give --users FILE');
  expect((error as SetupError).code).toBe(78);
});

test('--http off, and off with an address, as the other listeners', () => {
  expect(buildServeConfig({ http: 'off', data: '/tmp/nowhere' }, {}).http).toEqual([]);
  expect(buildServeConfig({ data: '/tmp/nowhere' }, {}).http).toEqual([{ host: '127.0.0.1', port: 8025 }]);
  expect(() => buildServeConfig({ http: ['off', '127.0.0.1:1'], data: '/tmp/nowhere' }, {})).toThrow('--http off cannot be combined');
});

const spools = spoolsPerTest(() => 1_764_547_200_000);

test('the session route reads the spool record: client, HELO, TLS version and AUTH user from its NOOP fields, old records from our Received header', async () => {
  const spool = await spools.open(spools.newDir());
  const env = { ...envelope('a@client.test', ['b@mx.test']), authUser: 'alice' };
  // The first field is someone else's Received header, as a message passed on by another relay starts: the record alone knows the session.
  const relayed = Buffer.from('Received: from other.example ([198.51.100.9]) by far.example (mailbox) with ESMTP id x;\r\n\tTue, 1 Dec 2026 00:00:00 +0000\r\nSubject: s\r\n\r\nbody\r\n');
  await spool.commit({ id: 'withfacts', timeMs: 1, envelope: env, stuffed: dotStuff(relayed), session: { clientAddress: '192.0.2.7', heloName: 'client.test', tls: 'TLSv1.3' } });
  const record = (await sessionOf(spool, 'withfacts'))!;
  expect({ client: record.clientAddress, helo: record.helo, tls: record.tls, auth: record.authUser, from: record.mailFrom, to: record.recipients }).toEqual({
    client: '192.0.2.7',
    helo: 'client.test',
    tls: 'TLSv1.3',
    auth: 'alice',
    from: 'a@client.test',
    to: ['b@mx.test'],
  });
  const replay = Buffer.from(record.replayable).toString('latin1');
  expect(replay.startsWith('EHLO client.test\r\nNOOP "mailbox id=withfacts ')).toBe(true);
  expect(replay.endsWith('body\r\n.\r\n')).toBe(true);

  // A record written before the NOOP fields existed: our Received header is what there is.
  const oldEnvelope = envelope('a@client.test', ['b@mx.test']);
  const received = formatReceived({ heloName: 'old.test', clientAddress: '203.0.113.5', serverName: 'mx.test', protocol: 'ESMTPS', id: 'oldrecord', timeMs: 1, tls: 'TLSv1.3 TLS_AES_256_GCM_SHA384' }, oldEnvelope);
  await spool.commit({ id: 'oldrecord', timeMs: 2, envelope: oldEnvelope, stuffed: dotStuff(Buffer.from(`${received}Subject: s\r\n\r\nbody\r\n`)) });
  const old = (await sessionOf(spool, 'oldrecord'))!;
  expect({ client: old.clientAddress, helo: old.helo, tls: old.tls, auth: old.authUser }).toEqual({ client: '203.0.113.5', helo: 'old.test', tls: 'TLSv1.3', auth: null });
  expect(await sessionOf(spool, 'nosuchmessage')).toBeNull();
});
