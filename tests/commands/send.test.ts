import { describe, expect, test } from 'bun:test';
import { cac } from 'cac';
import { UsageError } from '../../src/cli/exit-codes.ts';
import { parseSendFlags, parseServer, register, type SendDeps } from '../../src/commands/send.ts';

describe('parseServer', () => {
  test.each([
    ['127.0.0.1:1025', { host: '127.0.0.1', port: 1025, tls: 'none' }],
    ['mx.example.net', { host: 'mx.example.net', port: 25, tls: 'none' }],
    ['[::1]:2525', { host: '::1', port: 2525, tls: 'none' }],
    ['smtp://mail.example.net', { host: 'mail.example.net', port: 25, tls: 'opportunistic' }],
    ['smtp+starttls://mail.example.net', { host: 'mail.example.net', port: 587, tls: 'starttls' }],
    ['smtps://mail.example.net/', { host: 'mail.example.net', port: 465, tls: 'implicit' }],
    ['SMTPS://[2001:db8::1]:4650', { host: '2001:db8::1', port: 4650, tls: 'implicit' }],
  ])('%s', (text, address) => {
    expect(parseServer(text)).toEqual(address as ReturnType<typeof parseServer>);
  });

  test.each(['http://x.example', 'host:0', 'host:70000', 'host:port', '::1:25', ''])('%s is a usage error', (text) => {
    expect(() => parseServer(text)).toThrow(UsageError);
  });
});

describe('parseSendFlags', () => {
  const ok = { from: 'a@example.org', to: ['b@example.net'] };

  test('defaults: the local serve, 30 s, body from stdin', () => {
    expect(parseSendFlags(ok)).toEqual({
      from: 'a@example.org',
      to: ['b@example.net'],
      cc: [],
      bcc: [],
      subject: '',
      body: null,
      headers: [],
      server: { host: '127.0.0.1', port: 1025, tls: 'none' },
      ehloName: null,
      timeoutMs: 30_000,
      verbose: false,
    });
  });

  test.each([
    [{ to: ['b@example.net'] }, /--from is required/],
    [{ from: 'a@example.org' }, /at least one recipient/],
    [{ ...ok, timeout: 'soon' }, /--timeout/],
    [{ ...ok, timeout: '-1' }, /--timeout/],
    [{ ...ok, subject: ['a', 'b'] }, /--subject may be given once/],
    [{ ...ok, server: true }, /--server needs a value/],
  ] as [Record<string, unknown>, RegExp][])('%j is refused', (flags, why) => {
    expect(() => parseSendFlags(flags)).toThrow(why);
  });

  test('cac: repeated flags become lists, -v is --verbose, --timeout accepts fractions', () => {
    let captured: Record<string, unknown> = {};
    const deps = {} as SendDeps;
    const cli = cac('mailbox');
    register(cli, deps);
    cli.version('0.0.0');
    cli.help();
    const command = cli.commands.find((c) => c.name === 'send')!;
    command.action((flags: Record<string, unknown>) => {
      captured = flags;
    });
    cli.parse(['bun', 'mailbox', 'send', '--from', 'a@x.example', '--to', 'b@x.example', '--to', 'c@x.example', '--header', 'X-A: 1', '-v', '--timeout', '0.5'], { run: false });
    cli.runMatchedCommand();
    const options = parseSendFlags(captured);
    expect(options.to).toEqual(['b@x.example', 'c@x.example']);
    expect(options.headers).toEqual(['X-A: 1']);
    expect(options.verbose).toBe(true);
    expect(options.timeoutMs).toBe(500);
  });
});
