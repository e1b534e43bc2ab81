/**
 * `serve --relay` drain benchmark (issue 10): 10,000 1 KB messages are queued with smtp-source
 * while the next hop (Postfix's smtp-sink) is down; the relay's first failed connection starts
 * its cool-off, so every message is deferred to the cool-off's end (the first, which failed, by
 * --retry-after, set to the same), when all fall due at once.
 * The sink is started before that; the drain is timed from the cool-off's end (the `until` of
 * the relay-cool-off log line) to the sink's 10,000th message (smtp-sink -c counts). While it
 * drains, smtp-source sends 2,000 more messages for a local mailbox: the accept rate meanwhile.
 * Beside it: smtp-source with the same flags straight into the same sink (target: the relay at
 * ≥ 0.5× its rate), and a private Postfix relaying the same 10,000 queued while the sink was
 * down, then `postqueue -f` (target: ≥ 3× Postfix). Exits 1 when a target is missed.
 *
 * usage: bash scripts/bun scripts/bench-relay.ts [--messages N]   (npm run bench:relay)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startBackground, type Background } from '../tests/helpers/background.ts';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';
import { postfixUnavailableReason, smtpSinkUnavailableReason, startPostfix } from '../tests/helpers/postfix.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const SMTP_SINK = '/usr/sbin/smtp-sink';
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const { values } = parseArgs({ options: { messages: { type: 'string', default: '10000' } } });
const COUNT = Number(values.messages);
const ACCEPT_COUNT = Math.max(100, Math.floor(COUNT / 5));
const COOL_OFF_S = 60;

/** smtp-sink -c prints a running count of completed DATA commands. */
async function startSink(port: number): Promise<Background & { count(): number }> {
  const args = [SMTP_SINK, '-c'];
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  const sink = startBackground([...args, `127.0.0.1:${port}`, '4096']);
  await waitForGreeting('127.0.0.1', port, { timeoutMs: 10_000 });
  return {
    ...sink,
    count: () => {
      const all = sink.output().match(/\d+/g);
      return all ? Number(all.at(-1)) : 0;
    },
  };
}

function source(port: number, count: number, to: string): Promise<number> {
  const start = performance.now();
  const proc = Bun.spawn([SMTP_SOURCE, '-s', '20', '-d', '-l', '1024', '-m', String(count), '-f', 'bench@example.org', '-t', to, `127.0.0.1:${port}`], { stdout: 'pipe', stderr: 'pipe' });
  return proc.exited.then(async (code) => {
    if (code !== 0) throw new Error(`smtp-source exited ${code}: ${await new Response(proc.stderr).text()}`);
    return performance.now() - start;
  });
}

async function waitUntil(what: string, done: () => boolean, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${timeoutMs / 1000} s`);
    await Bun.sleep(5);
  }
  return Date.now();
}

const rate = (n: number, ms: number) => `${Math.round((n * 1000) / ms).toLocaleString('en')} msg/s (${(ms / 1000).toFixed(2)} s)`;

/** The relay: queue while the sink is down, drain after the cool-off. */
async function relayDrain(dir: string): Promise<{ drainMs: number; acceptMs: number }> {
  const sinkPort = await findFreePort();
  const port = await findFreePort();
  const serve = startBackground([
    MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'relay'), '--pop3', 'off', '--imap', 'off', '--http', 'off',
    '--hostname', 'relay.bench', '--relay', `smtp://127.0.0.1:${sinkPort}`, '--relay-cool-off', `${COOL_OFF_S}s`, '--retry-after', `${COOL_OFF_S}s`,
    '--log', 'json', '--log-file', join(dir, 'relay.log'),
  ]);
  try {
    await waitForGreeting('127.0.0.1', port, { timeoutMs: 15_000 });
    const fillMs = await source(port, COUNT, 'user@example.net');
    console.log(`queued ${COUNT} for the relay while the sink is down: ${rate(COUNT, fillMs)}`);
    const line = (await Bun.file(join(dir, 'relay.log')).text()).split('\n').find((l) => l.includes('"event":"relay-cool-off"'));
    if (!line) throw new Error('the relay logged no cool-off');
    const until = Date.parse(JSON.parse(line).until);
    if (Date.now() > until - 1000) throw new Error(`queueing took longer than the ${COOL_OFF_S} s cool-off; run with fewer --messages`);
    const sink = await startSink(sinkPort);
    try {
      await Bun.sleep(Math.max(0, until - Date.now()));
      // While it drains, local mail still comes in: the accept rate meanwhile.
      const accepting = source(port, ACCEPT_COUNT, 'postmaster@relay.bench');
      const end = await waitUntil('the drain', () => sink.count() >= COUNT, 600_000);
      const acceptMs = await accepting;
      return { drainMs: end - until, acceptMs };
    } finally {
      await sink.stop();
    }
  } finally {
    await serve.stop();
  }
}

/** smtp-source straight into the sink: the rate the relay is measured against. */
async function direct(): Promise<number> {
  const port = await findFreePort();
  const sink = await startSink(port);
  try {
    const start = Date.now();
    await source(port, COUNT, 'user@example.net');
    const end = await waitUntil('smtp-source into the sink', () => sink.count() >= COUNT, 600_000);
    return end - start;
  } finally {
    await sink.stop();
  }
}

/** A private Postfix relaying to the sink: queued while it is down, then `postqueue -f`. */
async function postfixDrain(): Promise<number> {
  const sinkPort = await findFreePort();
  const postfix = await startPostfix({ mode: 'relay', relayTo: `127.0.0.1:${sinkPort}` });
  try {
    await source(postfix.port, COUNT, 'user@example.net');
    // Every message has been tried once and deferred (the sink refuses connections).
    await waitUntil('Postfix deferring', () => Bun.spawnSync(['find', join(postfix.queueDir, 'deferred'), '-type', 'f']).stdout.toString().trim().split('\n').filter(Boolean).length >= COUNT, 600_000);
    const sink = await startSink(sinkPort);
    try {
      const start = Date.now();
      const flush = Bun.spawnSync(['postqueue', '-c', postfix.configDir, '-f']);
      if (flush.exitCode !== 0) throw new Error(`postqueue -f: ${flush.stderr.toString()}`);
      const end = await waitUntil('the Postfix drain', () => sink.count() >= COUNT, 900_000);
      return end - start;
    } finally {
      await sink.stop();
    }
  } finally {
    await postfix.stop();
  }
}

async function main(): Promise<number> {
  const unavailable = postfixUnavailableReason() ?? smtpSinkUnavailableReason();
  if (unavailable !== undefined) throw new Error(`cannot run: ${unavailable}`);
  const dir = await mkdtemp(join(tmpdir(), 'mailbox-bench-relay-'));
  try {
    const relay = await relayDrain(dir);
    console.log(`relay drain (after the cool-off, all due at once): ${rate(COUNT, relay.drainMs)}`);
    console.log(`accepted meanwhile (local mail, smtp-source -s 20): ${rate(ACCEPT_COUNT, relay.acceptMs)}`);
    const directMs = await direct();
    console.log(`smtp-source -s 20 -d straight into the sink: ${rate(COUNT, directMs)}`);
    const postfixMs = await postfixDrain();
    console.log(`Postfix drain (postqueue -f): ${rate(COUNT, postfixMs)}`);
    const vsDirect = directMs / relay.drainMs;
    const vsPostfix = postfixMs / relay.drainMs;
    console.log(`relay / smtp-source: ${vsDirect.toFixed(2)}× (target ≥ 0.5×)`);
    console.log(`relay / Postfix: ${vsPostfix.toFixed(2)}× (target ≥ 3×)`);
    return vsDirect >= 0.5 && vsPostfix >= 3 ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
