/**
 * @module `mailbox verify ADDRESS...`: flags, arguments, --file or stdin → verifyAddresses() →
 * one line (or one JSON object) per address, in input order; a progress bar on a terminal.
 * Rule: no protocol logic here. The exit code is returned: 0 when every address passed, 1 when
 * any did not (as grep), and usage mistakes are thrown (64).
 */
import type { CAC } from 'cac';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { EXIT, InputError, UsageError } from '../cli/exit-codes.ts';
import { colorsFor } from '../cli/render.ts';
import { formatBlockedWarning, formatProgress, formatResultDetails, formatResultJson, formatResultLine, formatStats } from '../cli/verify-render.ts';
import type { Mailbox } from '../core/address.ts';
import { FALLBACK_SERVER, parseDnsServer, parseResolvConf } from '../dns/resolv-conf.ts';
import type { DnsServer } from '../dns/resolver.ts';
import { checkAddress } from '../verify/syntax.ts';
import { LEVELS, verifyAddresses, type Level, type VerifyOptions } from '../verify/verifier.ts';
import { single } from '../cli/flags.ts';

type Writable = { write(text: string): unknown; readonly isTTY?: boolean };

export interface VerifyDeps {
  readonly env: Record<string, string | undefined>;
  readonly stdin: { readonly isTTY?: boolean } & AsyncIterable<Uint8Array | string>;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** This machine's name: the default EHLO name. */
  readonly hostname: () => string;
  /** A random local part for the catch-all test. */
  readonly randomLocalPart: () => string;
  /** The text of /etc/resolv.conf, or null when it cannot be read. */
  readonly readResolvConf: () => Promise<string | null>;
}

/** The real world: process streams, the clock, /etc/resolv.conf, random bytes. */
export function systemDeps(env: Record<string, string | undefined>, now: () => number): VerifyDeps {
  return {
    env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    hostname,
    // Twelve random bytes in hex: no real mailbox is named like this.
    randomLocalPart: () => `mbx-probe-${randomBytes(12).toString('hex')}`,
    readResolvConf: () => readFile('/etc/resolv.conf', 'utf8').catch(() => null),
  };
}

export interface VerifyCommandOptions extends Omit<VerifyOptions, 'dns' | 'ehloName'> {
  readonly dns: DnsServer | null;
  readonly ehloName: string | null;
  readonly file: string | null;
  readonly json: boolean;
  readonly verbose: boolean;
}

const DEFAULTS = {
  port: 25,
  timeoutSeconds: 30,
  // resolv.conf(5)'s default is 5 s a try; two tries, as its "attempts".
  dnsTimeoutMs: 5000,
  perDomain: 2,
  maxConnections: 20,
  rate: 10,
} as const;


function number(value: unknown, flag: string, fallback: number, check: (n: number) => boolean, expected: string): number {
  const text = single(value, flag);
  if (text === null) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`${flag} ${text}: expected ${expected}`);
  return n;
}

/** Turns cac's flags into options; every mistake is a UsageError. */
export function parseVerifyFlags(flags: Record<string, unknown>): VerifyCommandOptions {
  const level = single(flags.level, '--level') ?? 'smtp';
  if (!LEVELS.includes(level as Level)) throw new UsageError(`--level ${level}: expected ${LEVELS.join(', ')}`);
  const dnsText = single(flags.dns, '--dns');
  let dns: DnsServer | null = null;
  if (dnsText !== null) {
    const parsed = parseDnsServer(dnsText);
    if ('error' in parsed) throw new UsageError(`--dns ${dnsText}: ${parsed.error}`);
    dns = parsed;
  }
  const fromText = single(flags.from, '--from');
  let sender: Mailbox | null = null;
  if (fromText !== null && fromText !== '' && fromText !== '<>') {
    const checked = checkAddress(fromText);
    if (!checked.ok) throw new UsageError(`--from ${fromText}: ${checked.why}`);
    sender = checked.mailbox;
  }
  const timeoutSeconds = number(flags.timeout, '--timeout', DEFAULTS.timeoutSeconds, (n) => n > 0, 'a number of seconds above 0');
  const isCount = (n: number) => Number.isInteger(n) && n >= 1;
  return {
    level: level as Level,
    dns,
    dnsTimeoutMs: Math.min(DEFAULTS.dnsTimeoutMs, timeoutSeconds * 1000),
    port: number(flags.port, '--port', DEFAULTS.port, (n) => Number.isInteger(n) && n >= 1 && n <= 65535, 'a port 1-65535'),
    ehloName: single(flags.ehlo, '--ehlo'),
    timeoutMs: timeoutSeconds * 1000,
    sender,
    vrfy: flags.vrfy === true,
    perDomain: number(flags.perDomain, '--per-domain', DEFAULTS.perDomain, isCount, 'a whole number of at least 1'),
    maxConnections: number(flags.maxConnections, '--max-connections', DEFAULTS.maxConnections, isCount, 'a whole number of at least 1'),
    ratePerSecond: number(flags.rate, '--rate', DEFAULTS.rate, (n) => n >= 0, 'probes per second (0: no limit)'),
    retryGreylistMs: number(flags.retryGreylist, '--retry-greylist', 0, (n) => n >= 0, 'a number of seconds') * 1000,
    // cac reads "--file -" as a flag without its value: both mean standard input.
    file: flags.file === true ? '-' : single(flags.file, '--file'),
    json: flags.json === true,
    verbose: flags.verbose === true,
  };
}

export function register(cli: CAC, deps: VerifyDeps): void {
  cli
    .command('verify [...addresses]', 'Check whether addresses can receive mail: syntax, DNS, and an SMTP probe (RCPT, never DATA)')
    .option('--file [path]', 'Read addresses from a file, one per line ("-" or no path: standard input)')
    .option('--level <level>', 'How far to check: syntax, dns or smtp (default smtp)')
    .option('--json', 'One JSON object per address (NDJSON), with every DNS answer and SMTP reply')
    .option('-v, --verbose', 'Show the evidence under each address, and a summary on standard error')
    .option('--from <address>', 'MAIL FROM for the probe (default: the null sender <>)')
    .option('--ehlo <name>', 'Name to give in EHLO (default: this host name)')
    .option('--vrfy', 'Ask VRFY before RCPT (most servers answer 252: cannot tell)')
    .option('--dns <server>', 'DNS server as IP[:PORT] (default: the first nameserver in /etc/resolv.conf)')
    .option('--port <port>', `SMTP port of the mail hosts (default ${DEFAULTS.port})`)
    .option('--timeout <seconds>', `Connect timeout and longest wait for each reply (default ${DEFAULTS.timeoutSeconds}; DNS waits at most 5 s a try)`)
    .option('--retry-greylist <seconds>', 'Wait this long and ask again for addresses that got a 4xx (default: no retry)')
    .option('--per-domain <n>', `Connections at once to one domain's mail hosts (default ${DEFAULTS.perDomain})`)
    .option('--max-connections <n>', `SMTP connections at once in all (default ${DEFAULTS.maxConnections})`)
    .option('--rate <n>', `Probes per second to one domain, 0 for no limit (default ${DEFAULTS.rate})`)
    .example('mailbox verify alice@example.org')
    .example('mailbox verify --json --file addresses.txt > verdicts.ndjson')
    .example('mailbox verify --level dns bob@example.net carol@example.com')
    .action(async (addresses: string[], flags: Record<string, unknown>) => runVerify(addresses, parseVerifyFlags(flags), deps));
}

async function readAll(stdin: VerifyDeps['stdin']): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of stdin) text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/** One address per line; blank lines and "#" comments are skipped. */
export function parseAddressList(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

async function readInputs(addresses: readonly string[], options: VerifyCommandOptions, deps: VerifyDeps): Promise<string[]> {
  const inputs = [...addresses];
  if (options.file === '-') inputs.push(...parseAddressList(await readAll(deps.stdin)));
  else if (options.file !== null) {
    const text = await readFile(options.file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      const why = error.code === 'ENOENT' ? 'no such file' : error.code === 'EACCES' ? 'permission denied' : error.message;
      throw new InputError(`--file ${options.file}: ${why}`, error.code === 'EACCES' ? EXIT.noPerm : EXIT.noInput);
    });
    inputs.push(...parseAddressList(text));
  } else if (inputs.length === 0 && !deps.stdin.isTTY) {
    inputs.push(...parseAddressList(await readAll(deps.stdin)));
  }
  if (inputs.length === 0) throw new UsageError('give addresses as arguments, with --file, or on standard input');
  return inputs;
}

/** Runs the verification and prints the results; returns the exit code. */
export async function runVerify(addresses: readonly string[], options: VerifyCommandOptions, deps: VerifyDeps): Promise<number> {
  const inputs = await readInputs(addresses, options, deps);
  const dns = options.dns ?? parseResolvConf((await deps.readResolvConf()) ?? '') ?? FALLBACK_SERVER;
  const paint = colorsFor(deps.stdout, deps.env);
  const progressShown = Boolean(deps.stderr.isTTY) && inputs.length > 1 && deps.env.TERM !== 'dumb';
  let progressLine = false;
  let lastDrawMs = 0;
  const clearProgress = () => {
    if (progressLine) deps.stderr.write('\r\x1b[K');
    progressLine = false;
  };
  let allPassed = true;
  const started = deps.now();
  const stats = await verifyAddresses(
    inputs,
    { ...options, dns, ehloName: options.ehloName ?? deps.hostname() },
    { now: deps.now, sleep: deps.sleep, randomLocalPart: deps.randomLocalPart },
    {
      onResult: (result) => {
        if (!result.passed) allPassed = false;
        clearProgress();
        if (options.json) {
          deps.stdout.write(`${formatResultJson(result)}\n`);
          return;
        }
        const lines = [formatResultLine(paint, result)];
        if (options.verbose) lines.push(...formatResultDetails(paint, result));
        deps.stdout.write(`${lines.join('\n')}\n`);
      },
      onProgress: (done, total) => {
        if (!progressShown) return;
        const now = deps.now();
        // A redraw ten times a second is smooth enough and costs nothing.
        if (done < total && now - lastDrawMs < 100) return;
        lastDrawMs = now;
        deps.stderr.write(`\r\x1b[K${formatProgress(done, total)}`);
        progressLine = done < total;
        if (done === total) deps.stderr.write('\r\x1b[K');
      },
    },
  );
  clearProgress();
  if (options.verbose) deps.stderr.write(`${formatStats(stats, deps.now() - started)}\n`);
  const blocked = formatBlockedWarning(stats, options.port);
  if (blocked !== null) deps.stderr.write(`${blocked}\n`);
  return allPassed ? EXIT.ok : EXIT.notAll;
}
