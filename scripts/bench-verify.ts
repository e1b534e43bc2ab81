/**
 * Benchmark of `mailbox verify`: addresses verified per second in one 10,000-address batch over
 * 10 domains, and SMTP connections opened per address (target ≤ 0.05, thanks to reuse).
 * Peers, all on loopback: dnsmasq with one MX per domain, and per domain one receiver on
 * 127.0.6.(40+i):25: aiosmtpd (tests/fixtures/verify/receiver.py, half the users exist; it counts
 * the connections it gets) or Postfix's smtp-sink (C, takes every address, offers PIPELINING;
 * connections are then counted by mailbox itself, from its -v summary).
 * Usage (root, after npm run build): bash scripts/bun scripts/bench-verify.ts [--addresses N]
 *   [--runs N] [--per-domain N] [--receiver aiosmtpd|smtp-sink|both]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startSmtpSink, type SmtpSinkHandle } from '../tests/helpers/postfix.ts';
import { startDnsmasq, startReceiver, verifyPeersUnavailableReason, type ReceiverHandle } from '../tests/helpers/verify-peers.ts';

const { values } = parseArgs({
  options: {
    addresses: { type: 'string', default: '10000' },
    domains: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    'per-domain': { type: 'string', default: '2' },
    receiver: { type: 'string', default: 'both' },
  },
});
const ADDRESSES = Number(values.addresses);
const DOMAINS = Number(values.domains);
const RUNS = Number(values.runs);
const PER_DOMAIN = Number(values['per-domain']);
const BIN = process.env.MAILBOX_BIN ?? resolve(import.meta.dir, '../dist/mailbox');
const host = (i: number) => `127.0.6.${40 + i}`;

const why = verifyPeersUnavailableReason();
if (why !== undefined) {
  console.error(`bench-verify: ${why}`);
  process.exit(1);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Run {
  seconds: number;
  results: number;
  connections: number;
  maxOpen: number;
}

async function runOnce(listFile: string, dnsServer: string, count: () => { total: number; maxOpen: number } | null): Promise<Run> {
  const before = count();
  const started = performance.now();
  const proc = Bun.spawn([BIN, 'verify', '--json', '-v', '--rate', '0', '--per-domain', String(PER_DOMAIN), '--dns', dnsServer, '--ehlo', 'bench.test', '--file', listFile], {
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const seconds = (performance.now() - started) / 1000;
  const results = stdout.split('\n').filter(Boolean).length;
  if (results !== ADDRESSES) throw new Error(`expected ${ADDRESSES} results, got ${results}: ${stderr.slice(0, 500)}`);
  const after = count();
  const own = /(\d+) SMTP connections/.exec(stderr);
  return {
    seconds,
    results,
    connections: before !== null && after !== null ? after.total - before.total : Number(own?.[1] ?? NaN),
    maxOpen: after?.maxOpen ?? NaN,
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mailbox-bench-verify-'));
  const records = Array.from({ length: DOMAINS }, (_, i) => [`mx-host=bench${i}.test,mx.bench${i}.test,10`, `host-record=mx.bench${i}.test,${host(i)}`]).flat();
  const dns = await startDnsmasq(records);
  const lines: string[] = [];
  for (let k = 0; k < ADDRESSES; k++) lines.push(`u${Math.floor(k / DOMAINS)}@bench${k % DOMAINS}.test`);
  const listFile = join(dir, 'addresses.txt');
  await writeFile(listFile, `${lines.join('\n')}\n`);
  const users = Array.from({ length: Math.ceil(ADDRESSES / DOMAINS / 2) }, (_, u) => `u${u}`);
  const kinds = values.receiver === 'both' ? ['aiosmtpd', 'smtp-sink'] : [values.receiver!];
  console.log(`mailbox verify: ${ADDRESSES} addresses over ${DOMAINS} domains, --per-domain ${PER_DOMAIN}, --rate 0, ${RUNS} runs each`);
  try {
    for (const kind of kinds) {
      let receivers: ReceiverHandle[] = [];
      let sinks: SmtpSinkHandle[] = [];
      if (kind === 'aiosmtpd') receivers = await Promise.all(Array.from({ length: DOMAINS }, (_, i) => startReceiver({ host: host(i), mode: 'users', users })));
      else sinks = await Promise.all(Array.from({ length: DOMAINS }, (_, i) => startSmtpSink({ address: host(i), port: 25 })));
      const count = () => {
        if (receivers.length === 0) return null;
        const each = receivers.map((r) => r.connections());
        return { total: each.reduce((n, c) => n + c.total, 0), maxOpen: Math.max(...each.map((c) => c.maxOpen)) };
      };
      try {
        const runs: Run[] = [];
        for (let i = 0; i < RUNS; i++) runs.push(await runOnce(listFile, dns.server, count));
        const rates = runs.map((r) => ADDRESSES / r.seconds);
        const perAddress = runs.map((r) => r.connections / ADDRESSES);
        console.log(`${kind.padEnd(9)} addresses/s median ${median(rates).toFixed(0)} (runs: ${rates.map((r) => r.toFixed(0)).join(', ')}); `
          + `connections ${runs.map((r) => r.connections).join(', ')} = ${median(perAddress).toFixed(4)} per address`
          + (receivers.length > 0 ? ` (counted by the receivers; most open at once at one receiver: ${Math.max(...runs.map((r) => r.maxOpen))})` : ' (counted by mailbox)'));
      } finally {
        await Promise.all([...receivers.map((r) => r.stop()), ...sinks.map((s) => s.stop())]);
      }
    }
  } finally {
    await dns.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
