// `mailbox verify` as a command, without the network (--level syntax): flags, inputs, output
// forms, the exit code, and the progress bar that only a terminal gets.
import { describe, expect, test } from 'bun:test';
import { UsageError } from '../../src/cli/exit-codes.ts';
import { parseAddressList, parseVerifyFlags, runVerify, type VerifyDeps } from '../../src/commands/verify.ts';

function fakeDeps(options: { stdin?: string; stderrTTY?: boolean } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  let clock = 0;
  const deps: VerifyDeps = {
    env: {},
    stdin: {
      isTTY: options.stdin === undefined,
      async *[Symbol.asyncIterator]() {
        if (options.stdin !== undefined) yield options.stdin;
      },
    },
    stdout: { write: (t: string) => out.push(t), isTTY: false },
    stderr: { write: (t: string) => err.push(t), isTTY: options.stderrTTY ?? false },
    now: () => (clock += 1000),
    sleep: async () => {},
    hostname: () => 'client.test',
    randomLocalPart: () => 'random',
    readResolvConf: async () => 'nameserver 127.0.0.1\n',
  };
  return { deps, out, err };
}

const syntaxOnly = (extra: Record<string, unknown> = {}) => parseVerifyFlags({ level: 'syntax', ...extra });

describe('flags', () => {
  test('defaults', () => {
    const o = parseVerifyFlags({});
    expect(o).toMatchObject({ level: 'smtp', port: 25, perDomain: 2, ratePerSecond: 10, retryGreylistMs: 0, sender: null, vrfy: false, timeoutMs: 30_000, dnsTimeoutMs: 5000 });
  });
  test('values', () => {
    const o = parseVerifyFlags({ dns: '127.0.0.1:5353', port: '2525', from: 'probe@client.test', retryGreylist: '2', perDomain: '4', rate: '0', timeout: '1' });
    expect(o).toMatchObject({ dns: { host: '127.0.0.1', port: 5353 }, port: 2525, sender: { local: 'probe', domain: 'client.test' }, retryGreylistMs: 2000, perDomain: 4, ratePerSecond: 0, dnsTimeoutMs: 1000 });
    expect(parseVerifyFlags({ from: '<>' }).sender).toBeNull();
    expect(parseVerifyFlags({ file: true }).file).toBe('-');
  });
  test('mistakes are usage errors', () => {
    for (const flags of [{ level: 'deep' }, { port: '0' }, { perDomain: '0' }, { rate: '-1' }, { dns: 'dns.example' }, { from: 'not an address' }, { timeout: 'x' }, { port: ['25', '26'] }]) {
      expect(() => parseVerifyFlags(flags)).toThrow(UsageError);
    }
  });
});

test('address lists skip blank lines and comments', () => {
  expect(parseAddressList('a@b.test\r\n\n  # a comment\n c@d.test \n')).toEqual(['a@b.test', 'c@d.test']);
});

describe('runVerify (--level syntax)', () => {
  test('one line per address in input order; exit 1 when one fails', async () => {
    const { deps, out } = fakeDeps();
    const code = await runVerify(['a@b.test', 'bad@', 'c@d.test'], syntaxOnly(), deps);
    expect(code).toBe(1);
    expect(out.join('').split('\n').filter(Boolean).map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      'unknown a@b.test', 'undeliverable bad@', 'unknown c@d.test',
    ]);
  });
  test('exit 0 when every address passes the level asked for', async () => {
    const { deps } = fakeDeps();
    expect(await runVerify(['a@b.test'], syntaxOnly(), deps)).toBe(0);
  });
  test('--json: one object per line, with the reason and the evidence', async () => {
    const { deps, out } = fakeDeps({ stdin: 'a@b.test\nx..y@b.test\n' });
    await runVerify([], syntaxOnly({ json: true }), deps);
    const lines = out.join('').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.input, l.verdict, l.reason])).toEqual([
      ['a@b.test', 'unknown', 'syntax-valid'],
      ['x..y@b.test', 'undeliverable', 'invalid-syntax'],
    ]);
    expect(lines[1].syntax).toEqual({ valid: false, why: 'the local part has an empty dot-separated part' });
  });
  test('a progress bar on a terminal only, cleared at the end', async () => {
    const piped = fakeDeps();
    await runVerify(['a@b.test', 'c@d.test'], syntaxOnly(), piped.deps);
    expect(piped.err).toEqual([]);
    const tty = fakeDeps({ stderrTTY: true });
    await runVerify(['a@b.test', 'c@d.test'], syntaxOnly(), tty.deps);
    expect(tty.err.join('')).toContain('2/2 100%');
    expect(tty.err.at(-1)).toBe('\r\x1b[K');
  });
  test('no addresses at all is a usage error', async () => {
    const { deps } = fakeDeps();
    await expect(runVerify([], syntaxOnly(), deps)).rejects.toThrow(UsageError);
  });
});
