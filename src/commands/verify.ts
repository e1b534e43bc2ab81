/**
 * @module `mailbox verify ADDRESS...`: flags → VerifyCommandOptions (src/verify/options.ts) →
 * src/verify/run.ts, which checks syntax, DNS and an SMTP probe and prints the verdicts.
 * Rule: no protocol logic here. The runner returns the exit code (0 when every address passed,
 * 1 when any did not) and usage mistakes are thrown (64).
 */
import type { CAC } from 'cac';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { VERIFY_DEFAULTS, parseVerifyFlags } from './verify/options.ts';
import { runVerify, type VerifyDeps } from './verify/run.ts';

export type { VerifyDeps } from './verify/run.ts';
export type { VerifyCommandOptions } from './verify/options.ts';
export { parseVerifyFlags } from './verify/options.ts';
export { parseAddressList, runVerify } from './verify/run.ts';

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
    .option('--port <port>', `SMTP port of the mail hosts (default ${VERIFY_DEFAULTS.port})`)
    .option('--timeout <seconds>', `Connect timeout and longest wait for each reply (default ${VERIFY_DEFAULTS.timeoutSeconds}; DNS waits at most 5 s a try)`)
    .option('--retry-greylist <seconds>', 'Wait this long and ask again for addresses that got a 4xx (default: no retry)')
    .option('--per-domain <n>', `Connections at once to one domain's mail hosts (default ${VERIFY_DEFAULTS.perDomain})`)
    .option('--max-connections <n>', `SMTP connections at once in all (default ${VERIFY_DEFAULTS.maxConnections})`)
    .option('--rate <n>', `Probes per second to one domain, 0 for no limit (default ${VERIFY_DEFAULTS.rate})`)
    .example('mailbox verify alice@example.org')
    .example('mailbox verify --json --file addresses.txt > verdicts.ndjson')
    .example('mailbox verify --level dns bob@example.net carol@example.com')
    .action(async (addresses: string[], flags: Record<string, unknown>) => runVerify(addresses, parseVerifyFlags(flags), deps));
}
