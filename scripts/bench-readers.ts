/**
 * Readers benchmark, ingest part: how fast `dist/mailbox serve` accepts mail while its mail index
 * follows (src/store/mail-index.ts), against the same build with indexing switched off and
 * against MailDev (the npm devDependency, run by Node), all in one run, each on its own loopback
 * ports, driven by Postfix's smtp-source with 1 KB messages.
 *
 * Servers:
 *   mailbox        dist/mailbox serve, indexing on (as shipped)
 *   mailbox-noidx  the same binary with MAILBOX_BENCH_INDEX=off in its environment: serve then
 *                  starts no mail index (a switch for this benchmark only; nothing else reads it)
 *   maildev        MailDev, storing mail in a temp directory (--mail-directory), web on loopback
 * Cells: 1k-s10-ka (10 sessions, each reused for all its messages: smtp-source -d) and 1k-s10
 * (10 sessions, a new connection per message). Each cell is sized by pilot runs to last about
 * --duration seconds per server; reps are interleaved across servers; rows show the median
 * (min–max) messages/s. Before each run mailbox's index is waited for until it holds every
 * message sent so far, their full text indexed too (the catch-up time is printed), before any
 * server's run, so no run pays for another.
 * Ratios printed: at 1k-s10-ka indexing on ÷ off (target ≥ 0.8) and ÷ MailDev (≥ 1.5); at 1k-s10
 * mailbox ÷ MailDev (≥ 10).
 *
 * The query part (scripts/bench-readers-queries.ts) follows: p50 of list, searches and wait at
 * 100,000 stored messages, MailDev beside.
 *
 * usage: npm run bench:readers -- [--part ingest,queries] [--reps N] [--duration SECS] [--cells 1k-s10-ka,1k-s10]
 *                                  [--servers mailbox,mailbox-noidx,maildev] [--messages N] [--maildev-messages N] [--query-reps N]
 *                                  [--query-data DIR]   (the query part's spool and index, kept and reused: its --data)
 * Needs dist/mailbox (npm run build), smtp-source (Debian postfix) and node.
 */
import { Database } from 'bun:sqlite';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';
import { runQueryBench } from './bench-readers-queries.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const MAILDEV = join(ROOT, 'node_modules/maildev/dist/bin/maildev.js');
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const SERVER_NAMES = ['mailbox', 'mailbox-noidx', 'maildev'] as const;
type ServerName = (typeof SERVER_NAMES)[number];

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    cells: { type: 'string', default: '1k-s10-ka,1k-s10' },
    servers: { type: 'string', default: SERVER_NAMES.join(',') },
    part: { type: 'string', default: 'ingest,queries' },
    messages: { type: 'string', default: '100000' },
    'maildev-messages': { type: 'string', default: '10000' },
    'query-reps': { type: 'string', default: '30' },
    'query-data': { type: 'string' },
  },
});
const reps = Number(args.reps);
const durationS = Number(args.duration);

interface Cell {
  readonly name: string;
  readonly sessions: number;
  readonly reuse: boolean;
}

function parseCell(name: string): Cell {
  const m = /^1k-s(\d+)(-ka)?$/.exec(name);
  if (m === null) throw new Error(`bad cell "${name}": 1k-sN or 1k-sN-ka`);
  return { name, sessions: Number(m[1]), reuse: m[2] !== undefined };
}

interface Server {
  readonly name: ServerName;
  readonly port: number;
  readonly proc: ReturnType<typeof Bun.spawn>;
  /** Messages accepted so far (smtp-source's counts). */
  sent: number;
  /** Waits until the server has done the work of what it accepted (mailbox: indexed it). */
  settle(): Promise<number>;
  stop(): Promise<void>;
}

async function startServer(name: ServerName, dir: string): Promise<Server> {
  const port = await findFreePort();
  let argv: string[];
  const env: Record<string, string | undefined> = { ...process.env };
  const data = join(dir, name);
  if (name === 'maildev') {
    const web = await findFreePort();
    argv = ['node', MAILDEV, '--smtp', String(port), '--ip', '127.0.0.1', '--web', String(web), '--web-ip', '127.0.0.1', '--mail-directory', data, '--silent'];
  } else {
    argv = [MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--pop3', 'off', '--imap', 'off', '--http', 'off', '--log-file', join(dir, `${name}.log`)];
    if (name === 'mailbox-noidx') env.MAILBOX_BENCH_INDEX = 'off';
  }
  const proc = Bun.spawn(argv, { env, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  await waitForGreeting('127.0.0.1', port, { timeoutMs: 60_000, abort: () => (proc.exitCode !== null ? `${name} exited (${proc.exitCode})` : undefined) });
  const server: Server = {
    name,
    port,
    proc,
    sent: 0,
    async settle() {
      if (name !== 'mailbox') return 0;
      const started = performance.now();
      const path = join(data, 'index.db');
      for (;;) {
        let n = 0;
        let waiting = 0;
        try {
          const db = new Database(path, { readonly: true });
          n = (db.query('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
          // Full-text indexing waits for a quiet spell (mail-index.ts Rule 5): a run must not pay for it either.
          waiting = (db.query('SELECT count(*) AS n FROM backlog').get() as { n: number }).n;
          db.close();
        } catch {
          // serve opens the index just after its listeners: not there yet, or being created
        }
        if (n >= server.sent && waiting === 0) return (performance.now() - started) / 1000;
        if (performance.now() - started > 600_000) throw new Error(`mailbox indexed ${n} of ${server.sent} messages in 10 minutes`);
        await Bun.sleep(100);
      }
    },
    async stop() {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
  return server;
}

/** One smtp-source run; messages/s over its wall time. */
async function run(server: Server, cell: Cell, messages: number): Promise<number> {
  const argv = [SMTP_SOURCE, '-s', String(cell.sessions), '-l', '1024', '-m', String(messages), '-M', 'bench.local', ...(cell.reuse ? ['-d'] : []), `inet:127.0.0.1:${server.port}`];
  const started = Bun.nanoseconds();
  const proc = Bun.spawn(argv, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 300_000);
  const [, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  clearTimeout(timer);
  const seconds = (Bun.nanoseconds() - started) / 1e9;
  if (code !== 0) throw new Error(`smtp-source against ${server.name} exited ${code}: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
  server.sent += messages;
  return messages / seconds;
}

/** Escalating pilot runs (warm-up too) until one lasts a second; returns the count for durationS. */
async function size(server: Server, cell: Cell): Promise<number> {
  let messages = cell.sessions * 20;
  for (;;) {
    await server.settle();
    const started = performance.now();
    const rate = await run(server, cell, messages);
    if ((performance.now() - started) / 1000 >= 1 || messages >= 200_000) return Math.max(cell.sessions, Math.min(200_000, Math.round((rate * durationS) / cell.sessions) * cell.sessions));
    messages *= 4;
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  for (const [what, path] of [['dist/mailbox (npm run build)', MAILBOX_BIN], ['smtp-source (apt-get install postfix)', SMTP_SOURCE], ['MailDev (npm install)', MAILDEV]] as const) {
    if (!existsSync(path)) throw new Error(`${what} is missing: ${path}`);
  }
  const cells = args.cells!.split(',').map(parseCell);
  const names = args.servers!.split(',') as ServerName[];
  for (const n of names) if (!SERVER_NAMES.includes(n)) throw new Error(`unknown server ${n}: ${SERVER_NAMES.join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-readers-'));
  const servers: Server[] = [];
  const rates = new Map<string, number[]>();
  const catchUp: number[] = [];
  try {
    for (const n of names) servers.push(await startServer(n, dir));
    for (const cell of cells) {
      const sized = new Map<ServerName, number>();
      for (const s of servers) {
        for (const o of servers) await o.settle();
        sized.set(s.name, await size(s, cell));
      }
      let previous: Server | null = null;
      for (let rep = 0; rep < reps; rep++) {
        for (const s of servers) {
          // Every server has finished with the run before (mailbox's index, its deferred full text
          // too, goes on in the background): no run shares the CPUs with another's leftovers.
          for (const o of servers) {
            const waited = await o.settle();
            if (o === previous && o.name === 'mailbox') catchUp.push(waited);
          }
          const rate = await run(s, cell, sized.get(s.name)!);
          previous = s;
          const key = `${s.name}/${cell.name}`;
          rates.set(key, [...(rates.get(key) ?? []), rate]);
          console.log(`${cell.name.padEnd(10)} ${s.name.padEnd(14)} rep ${rep + 1}: ${Math.round(rate).toLocaleString('en-US')} msg/s (${sized.get(s.name)} messages)`);
        }
      }
    }
    const last = servers.find((s) => s.name === 'mailbox');
    if (last !== undefined) catchUp.push(await last.settle());
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }

  console.log('\ningest: messages/s accepted, median (min–max) of', reps, 'runs, 1 KB messages, smtp-source');
  console.log(`| cell | ${names.join(' | ')} |`);
  console.log(`|---|${names.map(() => '---:').join('|')}|`);
  for (const cell of cells) {
    const row = names.map((n) => {
      const r = rates.get(`${n}/${cell.name}`) ?? [];
      return `${Math.round(median(r)).toLocaleString('en-US')} (${Math.round(Math.min(...r)).toLocaleString('en-US')}–${Math.round(Math.max(...r)).toLocaleString('en-US')})`;
    });
    console.log(`| ${cell.name} | ${row.join(' | ')} |`);
  }
  const m = (server: ServerName, cell: string) => median(rates.get(`${server}/${cell}`) ?? [NaN]);
  const ratio = (label: string, value: number, target: number) =>
    console.log(`${label}: ${Number.isFinite(value) ? value.toFixed(2) : 'n/a'} (target ≥ ${target}: ${Number.isFinite(value) ? (value >= target ? 'met' : 'NOT met') : 'not measured'})`);
  console.log('');
  ratio('1k-s10-ka indexing on ÷ off', m('mailbox', '1k-s10-ka') / m('mailbox-noidx', '1k-s10-ka'), 0.8);
  ratio('1k-s10-ka mailbox ÷ MailDev', m('mailbox', '1k-s10-ka') / m('maildev', '1k-s10-ka'), 1.5);
  ratio('1k-s10 mailbox ÷ MailDev', m('mailbox', '1k-s10') / m('maildev', '1k-s10'), 10);
  if (catchUp.length > 0) console.log(`mailbox's index caught up with the spool ${median(catchUp).toFixed(1)} s (median; max ${Math.max(...catchUp).toFixed(1)} s) after a run ended`);
}

async function parts(): Promise<void> {
  const chosen = args.part!.split(',');
  if (chosen.includes('ingest')) await main();
  if (chosen.includes('queries')) await runQueryBench({ messages: Number(args.messages), maildevMessages: Number(args['maildev-messages']), reps: Number(args['query-reps']), data: args['query-data'] });
}

parts().catch((error: unknown) => {
  console.error(`bench:readers: ${(error as Error).message}`);
  process.exit(1);
});
