/**
 * `serve --relay` at scale (issue 10, part 9): 100,000 messages for a dead destination.
 * 1. The spool is filled through the spool writer (no SMTP) with 100,000 1 KB messages, each for
 *    one recipient to relay, all pending: due at once when serve starts.
 * 2. serve starts with --relay pointing at a host that answers every connection with 421 at the
 *    greeting. Reported: the connections that host saw until every message was deferred (target:
 *    at most the per-destination cap, 10; the rest deferred without one), the time and serve's CPU
 *    for it, and serve's RSS at the greeting (the spool opened), while the relay works, and its
 *    peak (VmHWM; target: ≤ 250 MB).
 * 3. With all 100,000 deferred and none due, serve's CPU over an idle while, and then, on the
 *    same spool opened here, the CPU of a relay tick (target: ≤ 1 ms): Relay.tick() over the
 *    spool's own DeliveryQueue, many times, with a Transfers that fails if anything is handed out.
 *
 * usage: bash scripts/bun scripts/bench-relay-scale.ts [--messages N] [--dir DIR]
 */
import * as fs from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { dotStuff } from '../src/core/data.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { Relay, type Transfers } from '../src/delivery/relay.ts';
import { parseRelaySettings } from '../src/delivery/relay-settings.ts';
import { createIdGenerator } from '../src/ids.ts';
import { openSpool } from '../src/spool/spool.ts';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '100000' }, dir: { type: 'string' } } });
const COUNT = Number(values.messages);
const IN_FLIGHT = 2000;
const TICKS = 10_000;
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? path.join(import.meta.dir, '../dist/mailbox');
/** Linux reports CPU time in clock ticks of 1/100 s (USER_HZ). */
const TICK_MS = 10;

const quiet = { info() {}, warn() {}, error: (m: string, f?: unknown) => console.error(m, f) };
const envelope: Envelope = {
  sender: { local: 'load', domain: 'relay.bench' },
  mailParams: [],
  recipients: [{ mailbox: { local: 'user', domain: 'dead.example' }, params: [], local: false }],
  utf8: false,
  body: '7BIT',
  declaredSize: null,
  authUser: null,
};
const body = dotStuff(Buffer.from(`From: load@relay.bench\r\nTo: user@dead.example\r\nSubject: scale\r\n\r\n${'x'.repeat(70)}\r\n`.padEnd(1024, 'y')));

function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

function memoryMb(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** Counts lines of one event in a growing log file, reading only what was added since. */
function eventCounter(file: string, event: string): () => number {
  let offset = 0;
  let count = 0;
  let carry = '';
  const needle = `"event":"${event}"`;
  return () => {
    if (!fs.existsSync(file)) return 0;
    const fd = fs.openSync(file, 'r');
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = fs.readSync(fd, buffer, 0, buffer.length, offset);
        if (n === 0) break;
        offset += n;
        const lines = (carry + buffer.subarray(0, n).toString('utf8')).split('\n');
        carry = lines.pop()!;
        for (const l of lines) if (l.includes(needle)) count++;
      }
    } finally {
      fs.closeSync(fd);
    }
    return count;
  };
}

async function fill(dir: string): Promise<void> {
  const t0 = performance.now();
  const spool = await openSpool({ dir, hostname: 'relay.bench', now: Date.now, log: quiet });
  const newId = createIdGenerator(Date.now);
  let made = 0;
  const writer = async () => {
    while (made < COUNT) {
      made++;
      await spool.commit({ id: newId(), timeMs: Date.now(), envelope, stuffed: body });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, writer));
  await spool.close();
  console.log(`filled the spool with ${COUNT.toLocaleString('en')} messages of 1 KB to relay, all pending, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** Serve against a dead destination: every message due at once, then all deferred. */
async function storm(dir: string): Promise<void> {
  let connections = 0;
  const dead = createServer((socket) => {
    connections++;
    socket.on('error', () => {});
    socket.end('421 4.3.2 dead.example is down\r\n');
  });
  await new Promise<void>((ready) => dead.listen(0, '127.0.0.1', () => ready()));
  const deadPort = (dead.address() as { port: number }).port;
  const port = await findFreePort();
  const logFile = path.join(dir, 'serve.log');
  const t0 = performance.now();
  const serve = Bun.spawn([
    MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', path.join(dir, 'data'), '--pop3', 'off', '--imap', 'off', '--http', 'off',
    '--hostname', 'relay.bench', '--relay', `smtp://127.0.0.1:${deadPort}`, '--log', 'json', '--log-file', logFile,
  ], { stdout: 'ignore', stderr: 'inherit' });
  try {
    await waitForGreeting('127.0.0.1', port, { timeoutMs: 300_000, abort: () => (serve.exitCode === null ? undefined : `serve exited ${serve.exitCode}`) });
    const greeted = performance.now();
    const atGreeting = memoryMb(serve.pid);
    const deferred = eventCounter(logFile, 'deferred');
    let peakRss = 0;
    while (deferred() < COUNT) {
      if (serve.exitCode !== null) throw new Error(`serve exited ${serve.exitCode}`);
      if (performance.now() - greeted > 600_000) throw new Error(`only ${deferred()} of ${COUNT} deferred within 10 minutes`);
      peakRss = Math.max(peakRss, memoryMb(serve.pid).rss);
      await Bun.sleep(200);
    }
    const done = performance.now();
    const cpuStorm = cpuMs(serve.pid);
    const memory = memoryMb(serve.pid);
    console.log(`serve greeted after ${((greeted - t0) / 1000).toFixed(1)} s; all ${COUNT.toLocaleString('en')} deferred ${((done - greeted) / 1000).toFixed(1)} s later, serve's CPU so far ${(cpuStorm / 1000).toFixed(1)} s (${((cpuStorm * 1000) / COUNT).toFixed(0)} µs per message)`);
    console.log(`connections to the dead destination: ${connections} (target: at most the cap, 10)`);
    console.log(`serve's RSS (target ≤ 250 MB): at the greeting ${atGreeting.rss.toFixed(0)} MB (peak of the start ${atGreeting.peak.toFixed(0)} MB); while the relay deferred them, at most ${peakRss.toFixed(0)} MB (sampled every 200 ms); with all deferred ${memory.rss.toFixed(0)} MB; peak of the whole run ${memory.peak.toFixed(0)} MB`);
    const idleMs = 10_000;
    const before = cpuMs(serve.pid);
    await Bun.sleep(idleMs);
    console.log(`serve idle with ${COUNT.toLocaleString('en')} deferred, none due: ${cpuMs(serve.pid) - before} ms CPU in ${idleMs / 1000} s; ${connections} connections in all`);
  } finally {
    serve.kill('SIGTERM');
    await serve.exited;
    dead.close();
  }
}

/** Relay.tick() on the spool serve left: 100,000 deferred, none due. */
async function tickCost(dir: string): Promise<void> {
  const spool = await openSpool({ dir, hostname: 'relay.bench', now: Date.now, log: quiet });
  try {
    const settings = parseRelaySettings({ relay: [{ text: 'smtp://127.0.0.1:9', fromFile: false }], routes: [], tlsPolicy: [], relayDomains: [], dns: null }, { duration: () => 0, count: () => 0 }, 1);
    let handedOut = 0;
    const transfers: Transfers = {
      run: () => {
        handedOut++;
        return Promise.reject(new Error('nothing is due'));
      },
      update() {},
      close: async () => {},
    };
    const relay = new Relay(settings, { queue: spool.deliveryQueue, transfers, log: quiet, now: Date.now, hostname: 'relay.bench', newId: () => 'none', isLocal: () => false, returnLimitBytes: 0 });
    relay.tick();
    const before = process.cpuUsage();
    for (let i = 0; i < TICKS; i++) relay.tick();
    const used = process.cpuUsage(before);
    await relay.drain();
    if (handedOut > 0 || relay.inFlight > 0) throw new Error(`a tick handed out ${handedOut} tasks with nothing due`);
    console.log(`relay tick with ${spool.deliveryQueue.leased} leased and ${COUNT.toLocaleString('en')} deferred, none due: ${((used.user + used.system) / TICKS).toFixed(1)} µs CPU (mean of ${TICKS.toLocaleString('en')}; target ≤ 1 ms)`);
  } finally {
    await spool.close();
  }
}

const dir = values.dir ?? fs.mkdtempSync(path.join(tmpdir(), 'mailbox-bench-relay-scale-'));
try {
  console.log(`load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  await fill(path.join(dir, 'data'));
  await storm(dir);
  await tickCost(path.join(dir, 'data'));
} finally {
  if (values.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
}
