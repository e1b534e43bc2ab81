import { describe, expect, test } from 'bun:test';
import { cac } from 'cac';
import { UsageError } from '../../src/cli/exit-codes.ts';
import { parseRate, parseReplayFlags, register, systemDeps } from '../../src/commands/replay.ts';

describe('parseReplayFlags', () => {
  test('defaults: the local serve in clear, one connection, no rate, BDAT allowed, nothing to expect', () => {
    const o = parseReplayFlags(['seg.smtp'], {});
    expect(o.server).toEqual({ host: '127.0.0.1', port: 1025, tls: 'none' });
    expect([o.concurrency, o.ratePerSecond, o.chunking, o.expect, o.failedOut, o.json, o.verbose, o.timeoutMs]).toEqual([1, null, true, null, null, false, false, 30_000]);
  });

  test('connection flags are the ones send takes', () => {
    const o = parseReplayFlags([], { server: 'smtps://mx.example.net', user: 'u', passwordFile: '/p', insecure: true, tls: 'implicit' }, {});
    expect(o.server).toEqual({ host: 'mx.example.net', port: 465, tls: 'implicit' });
    expect(o.auth).toMatchObject({ user: 'u', passwordFile: '/p' });
    expect(o.insecure).toBe(true);
  });

  test('--id may repeat and be comma-separated; --expect and --concurrency parse', () => {
    const o = parseReplayFlags([], { data: '/d', id: ['a,b', 'c'], expect: '2xx', concurrency: '10', rate: '600/m' });
    expect([o.ids, o.expect?.text, o.concurrency, o.ratePerSecond]).toEqual([['a', 'b', 'c'], '2xx', 10, 10]);
  });

  test.each([
    [{ concurrency: '0' }, /--concurrency 0/],
    [{ concurrency: 'many' }, /--concurrency many/],
    [{ expect: 'ok' }, /--expect ok/],
    [{ rate: 'fast' }, /--rate fast/],
    [{ server: 'http://x' }, /scheme/],
    [{ password: 'x' }, /need --user/],
    [{ filter: ['bogus'] }, /--filter bogus/],
  ] as const)('%j is a usage error', (flags, message) => {
    expect(() => parseReplayFlags([], flags as Record<string, unknown>)).toThrow(UsageError);
    expect(() => parseReplayFlags([], flags as Record<string, unknown>)).toThrow(message);
  });

  test.each([
    ['200', 200],
    ['200/s', 200],
    ['6000/m', 100],
    ['0.5', 0.5],
    ['36/h', 0.01],
  ])('--rate %s is %p per second', (text, rate) => expect(parseRate(text)).toBeCloseTo(rate, 10));

  test('the command registers with its flags', () => {
    const cli = cac('mailbox');
    register(cli, systemDeps({}, () => 0));
    const command = cli.commands.find((c) => c.name === 'replay')!;
    const names = command.options.map((o) => o.rawName.split(/[ ,]/)[0]);
    for (const flag of ['--data', '--id', '--server', '--tls', '--user', '--from', '--to', '--rewrite-domain', '--filter', '-c', '--rate', '--expect', '--failed-out', '-v', '--transcript', '--json']) {
      expect(names).toContain(flag);
    }
  });
});
