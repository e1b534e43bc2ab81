/**
 * @module `mailbox verify` options: cac's parsed flags → a typed VerifyCommandOptions.
 * Rule: pure. Every mistake is a UsageError that names the flag; nothing is read or opened here.
 */
import { UsageError } from '../../exit-status.ts';
import { single } from '../../flag-values.ts';
import type { Mailbox } from '../../core/address.ts';
import { parseDnsServer } from '../../dns/resolv-conf.ts';
import type { DnsServer } from '../../dns/resolver.ts';
import { checkAddress } from '../../verify/syntax.ts';
import { LEVELS, type Level, type VerifyOptions } from '../../verify/verifier.ts';

export interface VerifyCommandOptions extends Omit<VerifyOptions, 'dns' | 'ehloName'> {
  readonly dns: DnsServer | null;
  readonly ehloName: string | null;
  readonly file: string | null;
  readonly json: boolean;
  readonly verbose: boolean;
}

export const VERIFY_DEFAULTS = {
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
  const timeoutSeconds = number(flags.timeout, '--timeout', VERIFY_DEFAULTS.timeoutSeconds, (n) => n > 0, 'a number of seconds above 0');
  const isCount = (n: number) => Number.isInteger(n) && n >= 1;
  return {
    level: level as Level,
    dns,
    dnsTimeoutMs: Math.min(VERIFY_DEFAULTS.dnsTimeoutMs, timeoutSeconds * 1000),
    port: number(flags.port, '--port', VERIFY_DEFAULTS.port, (n) => Number.isInteger(n) && n >= 1 && n <= 65535, 'a port 1-65535'),
    ehloName: single(flags.ehlo, '--ehlo'),
    timeoutMs: timeoutSeconds * 1000,
    sender,
    vrfy: flags.vrfy === true,
    perDomain: number(flags.perDomain, '--per-domain', VERIFY_DEFAULTS.perDomain, isCount, 'a whole number of at least 1'),
    maxConnections: number(flags.maxConnections, '--max-connections', VERIFY_DEFAULTS.maxConnections, isCount, 'a whole number of at least 1'),
    ratePerSecond: number(flags.rate, '--rate', VERIFY_DEFAULTS.rate, (n) => n >= 0, 'probes per second (0: no limit)'),
    retryGreylistMs: number(flags.retryGreylist, '--retry-greylist', 0, (n) => n >= 0, 'a number of seconds') * 1000,
    // cac reads "--file -" as a flag without its value: both mean standard input.
    file: flags.file === true ? '-' : single(flags.file, '--file'),
    json: flags.json === true,
    verbose: flags.verbose === true,
  };
}
