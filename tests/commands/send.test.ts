import { describe, expect, test } from 'bun:test';
import { cac } from 'cac';
import { UsageError } from '../../src/cli/exit-codes.ts';
import { parseSendFlags, parseServer, register, type SendDeps } from '../../src/commands/send.ts';
import { normalizeSendmailArgs, parseFileSpec } from '../../src/commands/send/options.ts';

describe('parseServer: --tls auto follows the scheme, then the port', () => {
  test.each([
    ['127.0.0.1:1025', 'auto', { host: '127.0.0.1', port: 1025, tls: 'opportunistic' }],
    ['mx.example.net', 'auto', { host: 'mx.example.net', port: 25, tls: 'opportunistic' }],
    ['mail.example.net:465', 'auto', { host: 'mail.example.net', port: 465, tls: 'implicit' }],
    ['[::1]:2525', 'off', { host: '::1', port: 2525, tls: 'none' }],
    ['smtp://mail.example.net', 'auto', { host: 'mail.example.net', port: 25, tls: 'opportunistic' }],
    ['smtp+starttls://mail.example.net', 'auto', { host: 'mail.example.net', port: 587, tls: 'starttls' }],
    ['smtps://mail.example.net/', 'auto', { host: 'mail.example.net', port: 465, tls: 'implicit' }],
    ['SMTPS://[2001:db8::1]:4650', 'auto', { host: '2001:db8::1', port: 4650, tls: 'implicit' }],
    ['smtps://mail.example.net', 'starttls', { host: 'mail.example.net', port: 465, tls: 'starttls' }],
    ['mail.example.net:2525', 'implicit', { host: 'mail.example.net', port: 2525, tls: 'implicit' }],
  ] as const)('%s with --tls %s', (text, choice, address) => {
    expect(parseServer(text, choice)).toEqual(address);
  });

  test.each(['http://x.example', 'host:0', 'host:70000', 'host:port', '::1:25', ''])('%s is a usage error', (text) => {
    expect(() => parseServer(text)).toThrow(UsageError);
  });
});

describe('parseSendFlags', () => {
  const ok = { from: 'a@example.org', to: ['b@example.net'] };

  test('defaults: the local serve in clear, 30 s, body from stdin, BDAT allowed', () => {
    const o = parseSendFlags(ok);
    expect(o.server).toEqual({ host: '127.0.0.1', port: 1025, tls: 'none' });
    expect([o.timeoutMs, o.body, o.chunking, o.auth, o.dsn, o.quitAfter, o.mx, o.tls]).toEqual([30_000, null, true, null, undefined, null, false, 'auto']);
  });

  test('MAILBOX_SERVER sets the default server', () => {
    expect(parseSendFlags(ok, [], { MAILBOX_SERVER: 'smtps://relay.example' }).server).toEqual({ host: 'relay.example', port: 465, tls: 'implicit' });
  });

  test('AUTH, DSN and --quit-after', () => {
    const o = parseSendFlags({ ...ok, user: 'me', passwordFile: '/p', auth: 'cram-md5', notify: 'success,failure', ret: 'hdrs', envid: 'x1', quitAfter: 'rcpt' });
    expect(o.auth).toEqual({ user: 'me', password: null, passwordFile: '/p', token: null, tokenFile: null, mechanism: 'CRAM-MD5' });
    expect(o.dsn).toEqual({ notify: ['SUCCESS', 'FAILURE'], ret: 'HDRS', envid: 'x1' });
    expect(o.quitAfter).toBe('rcpt');
  });

  test.each([
    [{ to: ['b@example.net'] }, /--from is required/],
    [{ from: 'a@example.org' }, /at least one recipient/],
    [{ ...ok, timeout: 'soon' }, /--timeout/],
    [{ ...ok, timeout: '-1' }, /--timeout/],
    [{ ...ok, subject: ['a', 'b'] }, /--subject may be given once/],
    [{ ...ok, server: true }, /--server needs a value/],
    [{ ...ok, tls: 'maybe' }, /--tls maybe: expected one of auto, starttls, implicit, off/],
    [{ ...ok, mx: true, server: 'x:25' }, /--server or --mx/],
    [{ ...ok, password: 'x' }, /need --user/],
    [{ ...ok, user: 'u', password: 'x', token: 'y' }, /give one of/],
    [{ ...ok, auth: 'NTLM', user: 'u' }, /--auth NTLM/],
    [{ ...ok, notify: 'NEVER,SUCCESS' }, /NEVER cannot be combined/],
    [{ ...ok, quitAfter: 'data' }, /--quit-after data/],
    [{ ...ok, eml: 'm.eml', subject: 'x' }, /--eml sends a message as it is; --subject/],
    [{ ...ok, body: 'x', bodyFile: 'y' }, /--body or --body-file/],
    [{ ...ok, port: '2525' }, /--port is for --mx/],
    [{ ...ok, mx: true, dns: 'dns.example' }, /not an IP address/],
    [{ sendmail: true }, /no recipients/],
  ] as [Record<string, unknown>, RegExp][])('%j is refused', (flags, why) => {
    expect(() => parseSendFlags(flags)).toThrow(why);
  });

  test('-t, --eml and sendmail need no --from or --to', () => {
    expect(parseSendFlags({ t: true }).readRecipients).toBe(true);
    expect(parseSendFlags({ eml: 'm.eml' }).eml).toBe('m.eml');
    expect(parseSendFlags({ sendmail: true, t: true, i: true, f: 'a@b.example' }).from).toBe('a@b.example');
  });

  test('--attach FILE;type=...;name=...', () => {
    expect(parseFileSpec('a.bin;type=image/png;name=b.png', '--attach')).toEqual({ path: 'a.bin', type: 'image/png', name: 'b.png', cid: null });
    expect(() => parseFileSpec('a.bin;size=3', '--attach')).toThrow(/expected FILE;type=/);
  });

  test('cac: repeated flags become lists, -v is --verbose, --timeout accepts fractions, arguments are recipients', () => {
    let captured: Record<string, unknown> = {};
    let positional: string[] = [];
    const deps = {} as SendDeps;
    const cli = cac('mailbox');
    register(cli, deps);
    cli.version('0.0.0');
    cli.help();
    const command = cli.commands.find((c) => c.name === 'send')!;
    command.action((recipients: string[], flags: Record<string, unknown>) => {
      positional = recipients;
      captured = flags;
    });
    cli.parse(['bun', 'mailbox', 'send', '--from', 'a@x.example', '--to', 'b@x.example', '--to', 'c@x.example', '--header', 'X-A: 1', '-v', '--timeout', '0.5', 'd@x.example', '--no-chunking'], { run: false });
    cli.runMatchedCommand();
    const options = parseSendFlags(captured, positional);
    expect(options.to).toEqual(['b@x.example', 'c@x.example', 'd@x.example']);
    expect(options.headers).toEqual(['X-A: 1']);
    expect(options.verbose).toBe(true);
    expect(options.timeoutMs).toBe(500);
    expect(options.chunking).toBe(false);
  });
});

describe('sendmail spellings', () => {
  test.each([
    [['-t', '-oi', '-fops@example.org', '-FOps Team'], ['-t', '-i', '-f', 'ops@example.org', '-F', 'Ops Team']],
    [['-odi', '-oem', '-i', '-r', 'a@b.example', 'x@y.example'], ['-i', '-f', 'a@b.example', 'x@y.example']],
    [['-N', 'success,delay', '-RHDRS', '-V', 'id1'], ['--notify', 'success,delay', '--ret', 'HDRS', '--envid', 'id1']],
    [['--from', 'a@b.example', '-v', '--', '-oi'], ['--from', 'a@b.example', '-v', '--', '-oi']],
  ])('%j', (input, output) => {
    expect(normalizeSendmailArgs(input)).toEqual(output);
  });
});
