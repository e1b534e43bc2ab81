/**
 * Peers for the `mailbox verify` tests and benchmark: dnsmasq as the DNS server (BUN.md §4), a
 * UDP "DNS server" that never answers, and aiosmtpd receivers (tests/fixtures/verify/receiver.py)
 * on their own loopback addresses, port 25, each counting the connections it gets.
 * Rules: loopback only; every process is awaited when stopped; ports are picked free, except 25,
 * which is the point (each receiver has an address of its own under 127.0.6.0/24).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { findFreePort } from './ports.ts';
import { startBackground } from './background.ts';

const DNSMASQ = '/usr/sbin/dnsmasq';
const PYTHON = process.env.SYSTEM_PYTHON ?? '/usr/bin/python3';
const RECEIVER = resolve(import.meta.dir, '../fixtures/verify/receiver.py');

/** Why these peers cannot run here, or undefined when they can. */
export function verifyPeersUnavailableReason(): string | undefined {
  if (!existsSync(DNSMASQ)) return `${DNSMASQ} is missing (run scripts/install-peers)`;
  if (process.getuid?.() !== 0) return 'receivers on port 25 need root';
  const probe = Bun.spawnSync([PYTHON, '-c', 'import aiosmtpd']);
  if (probe.exitCode !== 0) return 'python3-aiosmtpd is missing (run scripts/install-peers)';
  return undefined;
}

async function waitFor(what: string, ready: () => boolean, failed: () => string | undefined, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    const why = failed();
    if (why !== undefined) throw new Error(`${what} did not start: ${why}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

export interface DnsmasqHandle {
  readonly port: number;
  /** "127.0.0.1:PORT", for --dns. */
  readonly server: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * dnsmasq answering only from its command line (`--no-resolv`, `--local=/test/`: any other name
 * under .test is NXDOMAIN). `records` are dnsmasq options without the dashes, e.g.
 * "mx-host=a.test,mx.a.test,10", "host-record=mx.a.test,127.0.6.2", "dns-rr=n.test,15,000000",
 * "server=/slow.test/127.0.0.1#PORT".
 */
export async function startDnsmasq(records: readonly string[]): Promise<DnsmasqHandle> {
  const port = await findFreePort('127.0.0.1');
  const running = startBackground([
    DNSMASQ, '--conf-file=/dev/null', '--no-daemon', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    '--no-resolv', '--no-hosts', '--local=/test/', '--log-queries', ...records.map((r) => `--${r}`),
  ]);
  await waitFor('dnsmasq', () => running.output().includes('started'), () => (running.proc.exitCode !== null ? running.output() : undefined));
  return { port, server: `127.0.0.1:${port}`, output: running.output, stop: running.stop };
}

export interface SilentDnsHandle {
  readonly port: number;
  /** Datagrams received (and never answered). */
  received(): number;
  stop(): Promise<void>;
}

/** A UDP port that takes DNS queries and never answers: the timeout case. */
export async function startSilentDns(): Promise<SilentDnsHandle> {
  const socket: UdpSocket = createSocket('udp4');
  let count = 0;
  socket.on('message', () => {
    count++;
  });
  await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
  return {
    port: socket.address().port,
    received: () => count,
    stop: () => new Promise<void>((done) => socket.close(() => done())),
  };
}

export type ReceiverMode = 'users' | 'catch-all' | 'greylist' | 'full';

export interface ReceiverOptions {
  /** A loopback address of its own, e.g. 127.0.6.2; the receiver listens there on port 25. */
  readonly host: string;
  readonly mode: ReceiverMode;
  readonly users?: readonly string[];
  /** Local parts answered 552 5.2.2 (mailbox full). */
  readonly full?: readonly string[];
  /** Answer VRFY with 250/550 instead of 252. */
  readonly vrfy?: boolean;
  readonly smtpUtf8?: boolean;
}

export interface ReceiverHandle {
  readonly host: string;
  /** Connections accepted since start, and the most that were open at once. */
  connections(): { total: number; maxOpen: number };
  /** True if any client ever reached DATA. */
  sawData(): boolean;
  output(): string;
  stop(): Promise<void>;
}

/** Starts tests/fixtures/verify/receiver.py on HOST:25 and resolves once it greets. */
export async function startReceiver(options: ReceiverOptions): Promise<ReceiverHandle> {
  const argv = [PYTHON, RECEIVER, '--host', options.host, '--port', '25', '--mode', options.mode];
  if (options.users) argv.push('--users', options.users.join(','));
  if (options.full) argv.push('--full', options.full.join(','));
  if (options.vrfy) argv.push('--vrfy');
  if (options.smtpUtf8) argv.push('--smtputf8');
  const running = startBackground(argv);
  try {
    await waitFor(`receiver on ${options.host}:25`, () => /^ready$/m.test(running.output()), () => (running.proc.exitCode !== null ? running.output() : undefined));
  } catch (error) {
    await running.stop();
    throw error;
  }
  return {
    host: options.host,
    connections: () => {
      const opens = [...running.output().matchAll(/^connect total=(\d+) open=(\d+)$/gm)];
      return { total: opens.length, maxOpen: Math.max(0, ...opens.map((m) => Number(m[2]))) };
    },
    sawData: () => running.output().includes('DATA received'),
    output: running.output,
    stop: running.stop,
  };
}

