// --http off loopback: HTTPS with serve's certificate and credentials from --users, or it does not start.
import { expect, test } from 'bun:test';
import { buildServeConfig } from '../../src/config.ts';
import { SetupError } from '../../src/exit-status.ts';
import { httpServesTls, startHttp } from '../../src/serve/http-host.ts';

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
