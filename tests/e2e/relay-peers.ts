/**
 * Mail hosts for the relay's end-to-end tests: a loopback /24 of its own per run, and
 * `mailbox serve --faults` listening on port 25 of one of its addresses.
 * Rule: a host on port 25 gets a random 127.x.y.z address, so concurrent runs never share one.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackground, type Background } from '../helpers/background.ts';
import { MAILBOX_BIN } from './harness.ts';

/** "127.x.y": the first three octets of a /24 picked at random for this run. */
export function randomLoopbackNet(): string {
  return `127.${2 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
}

/** `mailbox serve --faults` as a mail host on HOST:25, its data and rules under `dir`; a null domain: catch-all. */
export async function startFaultyHost(dir: string, host: string, domain: string | null, rules: unknown[], extraArgs: string[] = []): Promise<Background> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'faults.json'), JSON.stringify({ rules }));
  const proc = startBackground([MAILBOX_BIN, 'serve', '--listen', `${host}:25`, '--data', join(dir, 'data'), ...(domain === null ? [] : ['--domain', domain]), '--pop3', 'off', '--imap', 'off', '--http', 'off', '--faults', join(dir, 'faults.json'), '--log', 'json', ...extraArgs]);
  // Not a greeting check: that would use up a connect fault.
  const deadline = Date.now() + 15_000;
  while (!proc.output().includes('"event":"listening"')) {
    if (proc.proc.exitCode !== null || Date.now() > deadline) {
      await proc.stop();
      throw new Error(`mailbox serve --faults on ${host}:25 did not start: ${proc.output()}`);
    }
    await Bun.sleep(20);
  }
  return proc;
}

/**
 * The "accepted" log lines of a `mailbox serve --log json`, once there are `atLeast` of them (or
 * after 10 s): the host's log can trail the reply the relay has already logged.
 */
export async function waitForAccepted(host: Background, atLeast: number): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 10_000;
  while (acceptedLines(host).length < atLeast && Date.now() < deadline) await Bun.sleep(50);
  return acceptedLines(host);
}

/** The "accepted" log lines of a `mailbox serve --log json`. */
export function acceptedLines(host: Background): Record<string, unknown>[] {
  return host.output().split('\n').filter((l) => l.includes('"event":"accepted"')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
}
