/**
 * `serve --relay` drain benchmark (issue 10): 10,000 1 KB messages are queued with smtp-source
 * while the next hop (Postfix's smtp-sink) is down, so the relay tries once, cools the
 * destination off and defers every message (default --retry-after and --relay-cool-off: none
 * falls due by itself during the run). Then the sink is started and `mailbox queue retry --all`
 * run; the drain is timed from that command's start to the sink's 10,000th message (smtp-sink -c
 * counts), and serve's CPU time over it is given per message, also per thread (main thread,
 * delivery Workers, JIT and GC threads), with smtp-sink's and this script's own.
 * Beside it: smtp-source with the same flags straight into the same sink (target: the relay at
 * ≥ 0.5× its rate), and a private Postfix relaying the same 10,000 queued while the sink was
 * down, then `postqueue -f` (target: ≥ 3× Postfix). Exits 1 when a target is missed.
 * Then a second relay drain of as many messages, on a new spool, during which smtp-source sends
 * --accept more messages (default a fifth) for a local mailbox: the accept rate while the relay
 * drains, and the drain's rate under that load. Both are reported, neither is a target: the
 * timed drain above runs alone, as the smtp-source and Postfix runs it is compared with do.
 *
 * usage: bash scripts/bun scripts/bench-relay.ts [--messages N] [--accept N] [--only relay,direct,postfix,accept]
 *        (npm run bench:relay)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Subprocess } from 'bun';
import { startBackground } from '../tests/helpers/background.ts';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';
import { postfixUnavailableReason, smtpSinkUnavailableReason, startPostfix } from '../tests/helpers/postfix.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const SMTP_SINK = '/usr/sbin/smtp-sink';
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const { values } = parseArgs({ options: { messages: { type: 'string', default: '10000' }, accept: { type: 'string' }, only: { type: 'string', default: 'relay,direct,postfix,accept' } } });
const COUNT = Number(values.messages);
const ACCEPT_COUNT = values.accept === undefined ? Math.max(100, Math.floor(COUNT / 5)) : Number(values.accept);
const ONLY = new Set(values.only.split(','));
/** Linux reports a process's CPU time in clock ticks of 1/100 s (USER_HZ). */
const TICK_MS = 10;

/**
 * smtp-sink -c prints a running count of completed DATA commands ("sess=1 quit=0 mesg=42\r"). The
 * count is taken from each chunk as it arrives: polling the whole output (300 KB at 10,000
 * messages) every few milliseconds cost this process 0.09 ms of CPU per message, taken from the
 * two cores the relay and the sink share.
 */
async function startSink(port: number): Promise<{ proc: Subprocess; count(): number; stop(): Promise<void> }> {
  const args = [SMTP_SINK, '-c'];
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  const proc = Bun.spawn([...args, `127.0.0.1:${port}`, '4096'], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  let count = 0;
  let tail = '';
  const decoder = new TextDecoder();
  const read = (async () => {
    for await (const chunk of proc.stdout) {
      const text = tail + decoder.decode(chunk, { stream: true });
      const at = text.lastIndexOf('mesg=');
      const end = text.indexOf('\r', at);
      if (at >= 0 && end > at) count = Number(text.slice(at + 5, end));
      tail = text.slice(-40);
    }
  })().catch(() => {});
  const stderr = new Response(proc.stderr).text();
  try {
    await waitForGreeting('127.0.0.1', port, { timeoutMs: 10_000 });
  } catch (error) {
    proc.kill('SIGKILL');
    throw new Error(`smtp-sink did not start: ${await stderr}`, { cause: error });
  }
  return {
    proc,
    count: () => count,
    stop: async () => {
      proc.kill('SIGTERM');
      await proc.exited;
      await read;
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

async function waitUntil(what: string, done: () => boolean, timeoutMs: number, everyMs = 5): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${timeoutMs / 1000} s`);
    await Bun.sleep(everyMs);
  }
  return performance.now();
}

const rate = (n: number, ms: number) => `${Math.round((n * 1000) / ms).toLocaleString('en')} msg/s (${(ms / 1000).toFixed(2)} s)`;

/** A process's user + system CPU time so far, all its threads (/proc/PID/stat fields 14 and 15). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Each thread's user + system CPU time so far, by thread id, with its name (/proc/PID/task/TID/stat). */
function threadCpuMs(pid: number): Map<number, { name: string; ms: number }> {
  const threads = new Map<number, { name: string; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      threads.set(Number(tid), { name, ms: (Number(fields[11]) + Number(fields[12])) * TICK_MS });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return threads;
}

/** CPU per message of each thread that used any between two snapshots: "mailbox 0.21, Worker 0.08, ...". */
function perThread(before: Map<number, { name: string; ms: number }>, after: Map<number, { name: string; ms: number }>, count: number): string {
  const used: string[] = [];
  for (const [tid, { name, ms }] of after) {
    const delta = ms - (before.get(tid)?.ms ?? 0);
    if (delta > 0) used.push(`${name}[${tid}] ${(delta / count).toFixed(3)}`);
  }
  return used.join(', ');
}

/** How many log lines of one event the relay has written. */
function logged(path: string, event: string): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return 0;
  }
  return text.split(`"event":"${event}"`).length - 1;
}

/** The relay: queue while the sink is down, start the sink, `mailbox queue retry --all`. */
async function relayDrain(dir: string, acceptCount: number): Promise<{ drainMs: number; firstMs: number; acceptMs: number | null; cpuMsPerMessage: number; retryMs: number; threads: string; sinkCpuMsPerMessage: number; benchCpuMsPerMessage: number }> {
  const sinkPort = await findFreePort();
  const port = await findFreePort();
  const data = join(dir, `relay-${acceptCount}`);
  const logFile = join(dir, `relay-${acceptCount}.log`);
  const serve = startBackground([
    MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--pop3', 'off', '--imap', 'off', '--http', 'off',
    '--hostname', 'relay.bench', '--relay', `smtp://127.0.0.1:${sinkPort}`, '--log', 'json', '--log-file', logFile,
  ]);
  try {
    await waitForGreeting('127.0.0.1', port, { timeoutMs: 15_000 });
    const fillMs = await source(port, COUNT, 'user@example.net');
    console.log(`queued ${COUNT} for the relay while the sink is down: ${rate(COUNT, fillMs)}`);
    // Every message has been tried once (or deferred by the cool-off, without a connection).
    await waitUntil('the relay deferring', () => logged(logFile, 'deferred') >= COUNT, 600_000, 250);
    const sink = await startSink(sinkPort);
    try {
      const cpuBefore = cpuMs(serve.proc.pid);
      const threadsBefore = threadCpuMs(serve.proc.pid);
      const sinkBefore = cpuMs(sink.proc.pid);
      const benchBefore = process.cpuUsage();
      const start = performance.now();
      const retry = Bun.spawn([MAILBOX_BIN, 'queue', 'retry', '--all', '--data', data], { stdout: 'pipe', stderr: 'pipe' });
      // While it drains, local mail still comes in: the accept rate meanwhile.
      const accepting = acceptCount > 0 ? source(port, acceptCount, 'postmaster@relay.bench') : null;
      const retried = retry.exited.then(async (code) => {
        if (code !== 0) throw new Error(`mailbox queue retry --all exited ${code}: ${await new Response(retry.stderr).text()}`);
        return performance.now() - start;
      });
      const first = await waitUntil('the first message', () => sink.count() >= 1, 600_000);
      const end = await waitUntil('the drain', () => sink.count() >= COUNT, 600_000);
      const cpuAfter = cpuMs(serve.proc.pid);
      const threads = perThread(threadsBefore, threadCpuMs(serve.proc.pid), COUNT);
      const sinkCpuMsPerMessage = (cpuMs(sink.proc.pid) - sinkBefore) / COUNT;
      const bench = process.cpuUsage(benchBefore);
      const retryMs = await retried;
      const acceptMs = accepting === null ? null : await accepting;
      return { drainMs: end - start, firstMs: first - start, acceptMs, cpuMsPerMessage: (cpuAfter - cpuBefore) / COUNT, retryMs, threads, sinkCpuMsPerMessage, benchCpuMsPerMessage: (bench.user + bench.system) / 1000 / COUNT };
    } finally {
      await sink.stop();
    }
  } finally {
    await serve.stop();
  }
}

function reportDrain(what: string, relay: Awaited<ReturnType<typeof relayDrain>>): void {
  console.log(`${what}: ${rate(COUNT, relay.drainMs)}; the first message at the sink after ${(relay.firstMs / 1000).toFixed(2)} s, the command answered after ${(relay.retryMs / 1000).toFixed(2)} s`);
  console.log(`  serve's CPU time while it drained: ${relay.cpuMsPerMessage.toFixed(2)} ms per relayed message${relay.acceptMs === null ? '' : ' (accepting included)'}`);
  console.log(`  by thread (ms per message): ${relay.threads}; smtp-sink ${relay.sinkCpuMsPerMessage.toFixed(3)}; this bench ${relay.benchCpuMsPerMessage.toFixed(3)}`);
}

/** smtp-source straight into the sink: the rate the relay is measured against. */
async function direct(): Promise<{ ms: number; sinkCpuMsPerMessage: number }> {
  const port = await findFreePort();
  const sink = await startSink(port);
  try {
    const sinkBefore = cpuMs(sink.proc.pid);
    const start = performance.now();
    await source(port, COUNT, 'user@example.net');
    const end = await waitUntil('smtp-source into the sink', () => sink.count() >= COUNT, 600_000);
    return { ms: end - start, sinkCpuMsPerMessage: (cpuMs(sink.proc.pid) - sinkBefore) / COUNT };
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
      const start = performance.now();
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
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`${COUNT} messages of 1 KB; load average ${load}`);
  const dir = await mkdtemp(join(tmpdir(), 'mailbox-bench-relay-'));
  try {
    let relayMs: number | null = null;
    if (ONLY.has('relay')) {
      const relay = await relayDrain(dir, 0);
      relayMs = relay.drainMs;
      reportDrain('relay drain (mailbox queue retry --all)', relay);
    }
    let directMs: number | null = null;
    if (ONLY.has('direct')) {
      const straight = await direct();
      directMs = straight.ms;
      console.log(`smtp-source -s 20 -d straight into the sink: ${rate(COUNT, directMs)}; smtp-sink's CPU time ${straight.sinkCpuMsPerMessage.toFixed(3)} ms per message`);
    }
    let postfixMs: number | null = null;
    if (ONLY.has('postfix')) {
      postfixMs = await postfixDrain();
      console.log(`Postfix drain (postqueue -f): ${rate(COUNT, postfixMs)}`);
    }
    if (ONLY.has('accept') && ACCEPT_COUNT > 0) {
      const loaded = await relayDrain(dir, ACCEPT_COUNT);
      reportDrain(`relay drain again, while smtp-source -s 20 -d sends ${ACCEPT_COUNT} messages for a local mailbox`, loaded);
      if (loaded.acceptMs !== null) console.log(`accepted while the relay drained: ${rate(ACCEPT_COUNT, loaded.acceptMs)}`);
    }
    if (relayMs === null || directMs === null || postfixMs === null) return 0;
    const vsDirect = directMs / relayMs;
    const vsPostfix = postfixMs / relayMs;
    console.log(`relay / smtp-source: ${vsDirect.toFixed(2)}× (target ≥ 0.5×)`);
    console.log(`relay / Postfix: ${vsPostfix.toFixed(2)}× (target ≥ 3×)`);
    return vsDirect >= 0.5 && vsPostfix >= 3 ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
