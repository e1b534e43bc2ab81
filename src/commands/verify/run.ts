/**
 * @module `mailbox verify` from options to exit code: the addresses (arguments, --file or standard
 * input) → verifyAddresses() → one line (or one JSON object) per address, in input order, with a
 * progress bar on a terminal. The exit code is returned: 0 when every address passed, 1 when any
 * did not (as grep).
 * Rule: the world (files, standard input, streams, the clock, resolv.conf) comes in through VerifyDeps.
 */
import { readFile } from 'node:fs/promises';
import { EXIT, InputError, UsageError } from '../../exit-status.ts';
import { colorsFor } from '../../cli/render.ts';
import { formatBlockedWarning, formatProgress, formatResultDetails, formatResultJson, formatResultLine, formatStats } from '../../cli/verify-render.ts';
import { FALLBACK_SERVER, parseResolvConf } from '../../dns/resolv-conf.ts';
import type { VerifyCommandOptions } from './options.ts';
import { verifyAddresses } from '../../verify/verifier.ts';

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
