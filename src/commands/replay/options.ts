/**
 * @module `mailbox replay` options: cac's parsed flags → a typed ReplayOptions.
 * Rule: pure. Every mistake is a UsageError that names the flag; nothing is read or opened here.
 */
import { parseConnectionFlags, parseServerFlag, type ConnectionFlags, type ServerAddress } from '../../cli/connection-options.ts';
import { UsageError } from '../../exit-status.ts';
import { list, single } from '../../flag-values.ts';
import { parseEnvelopeRules, type EnvelopeRules } from '../../replay/envelope-rules.ts';
import { parseExpectedCode, type ExpectedCode } from '../../replay/outcome.ts';

export interface ReplayOptions extends ConnectionFlags {
  readonly paths: readonly string[];
  readonly dataDir: string | null;
  readonly ids: readonly string[];
  readonly server: ServerAddress;
  readonly chunking: boolean;
  readonly rules: EnvelopeRules;
  readonly concurrency: number;
  readonly ratePerSecond: number | null;
  readonly verbose: boolean;
  readonly transcriptFile: string | null;
  readonly json: boolean;
  readonly expect: ExpectedCode | null;
  readonly failedOut: string | null;
}

const RATE_UNITS: Record<string, number> = { s: 1, sec: 1, m: 60, min: 60, h: 3600 };

/** "200", "200/s", "6000/m", "50/h" → transactions per second. */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(?:\/(s|sec|m|min|h))?$/.exec(text.trim());
  const rate = m ? Number(m[1]) / RATE_UNITS[m[2] ?? 's'] : NaN;
  if (!(rate > 0)) throw new UsageError(`--rate ${text}: expected a number of transactions per second, e.g. 200 or 200/s (also /m, /h)`);
  return rate;
}

/** Turns cac's parsed flags into ReplayOptions; every mistake is a UsageError. */
export function parseReplayFlags(paths: readonly string[], flags: Record<string, unknown>, env: Record<string, string | undefined> = {}): ReplayOptions {
  const connection = parseConnectionFlags(flags);
  const concurrencyText = single(flags.concurrency, '--concurrency');
  const concurrency = concurrencyText === null ? 1 : Number(concurrencyText);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) throw new UsageError(`--concurrency ${concurrencyText}: expected a whole number from 1 to 10000`);
  const rateText = single(flags.rate, '--rate');
  const expectText = single(flags.expect, '--expect');
  const expect = expectText === null ? null : parseExpectedCode(expectText);
  if (expectText !== null && expect === null) throw new UsageError(`--expect ${expectText}: expected a reply code such as 250, or 2xx`);
  const ids = list(flags.id)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  return {
    paths,
    dataDir: single(flags.data, '--data'),
    ids,
    server: parseServerFlag(single(flags.server, '--server'), connection.tls, env),
    ...connection,
    chunking: flags.chunking !== false,
    rules: parseEnvelopeRules(flags),
    concurrency,
    ratePerSecond: rateText === null ? null : parseRate(rateText),
    verbose: flags.verbose === true,
    transcriptFile: single(flags.transcript, '--transcript'),
    json: flags.json === true,
    expect,
    failedOut: single(flags.failedOut, '--failed-out'),
  };
}
