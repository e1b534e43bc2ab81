/**
 * SMTP receive benchmark: `dist/mailbox serve`, Postfix's smtp-sink (stores nothing), a private
 * Postfix (smtpd -> cleanup -> fsync'd queue -> discard) and, for the TLS cells, bun-floor
 * (scripts/tls-floor.ts: fixed replies on Bun's own TLS) run side by side in one run, each on its
 * own loopback port, driven by Postfix's smtp-source; TLS cells by scripts/tls-load.ts (the client
 * core), since smtp-source speaks no TLS. mailbox and Postfix share one certificate (ECDSA P-256,
 * as mailbox's self-signed one); Postfix also runs an implicit-TLS smtpd (wrappermode). Then the
 * memory mailbox holds for 2,000 idle connections. Method (after ../shared/bench): escalating
 * pilot runs size each cell to last about --duration seconds, a run shorter than 80% of that is
 * redone, reps are interleaved across servers, and the table shows median (min–max) messages/s.
 * Each run also records the CPU time of the server's processes and of the load tool.
 *
 * Cells (1 KB messages unless SIZEk says otherwise; sN = N sessions at once; the default runs
 * 1k-s1/s10/s50 with and without -ka, then clear, tls and tlsi at s10 and s50):
 *   1k-sN      smtp-source, a new connection per message       1k-sN-ka  the same, sessions reused (-d)
 *   clear-sN   tls-load in clear: the baseline of the TLS cells (the same client, the same steps)
 *   tls-sN     tls-load with STARTTLS (RFC 3207)               tlsi-sN   tls-load with implicit TLS (RFC 8314)
 * tls-load (scripts/tls-load.ts) opens a new connection per message and makes a full handshake each
 * time (no resumption); smtp-sink runs only the cells without TLS. "TLS cost" per server: TLS ÷ clear
 * in msgs/s and in server CPU per message, then mailbox's cost ÷ Postfix's and ÷ bun-floor's (what
 * TLS costs a Bun server that does no work, so the part of mailbox's cost Bun sets). Postfix's implicit-TLS
 * smtpd holds its greeting ~40 ms after each handshake (Nagle against the client's delayed ACK of
 * the TLS 1.3 session tickets; Python's ssl sees the same), which bounds its tlsi rows at few sessions.
 *
 * usage: npm run bench -- [--quick] [--cells 1k-s1,1k-s10-ka,tls-s10,...] [--servers mailbox,smtp-sink,postfix,bun-floor]
 *                         [--reps N] [--duration SECS] [--idle-conns N] [--out DIR]
 */
import { Database } from 'bun:sqlite';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  descendantsOf,
  postfixUnavailableReason,
  smtpSinkUnavailableReason,
  startPostfix,
  startSmtpSink,
  type PostfixHandle,
  type SmtpSinkHandle,
} from '../tests/helpers/postfix.ts';
import { findFreePort, waitForGreeting } from '../tests/helpers/ports.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const TLS_LOAD = join(ROOT, 'scripts/tls-load.ts');
const TLS_FLOOR = join(ROOT, 'scripts/tls-floor.ts');
const SERVER_NAMES = ['mailbox', 'smtp-sink', 'postfix', 'bun-floor'] as const;
type ServerName = (typeof SERVER_NAMES)[number];
const DEFAULT_CELLS = [
  '1k-s1', '1k-s10', '1k-s50', '1k-s1-ka', '1k-s10-ka', '1k-s50-ka',
  'clear-s10', 'tls-s10', 'tlsi-s10', 'clear-s50', 'tls-s50', 'tlsi-s50',
];
/** Clock ticks per second in /proc/PID/stat (USER_HZ). */
const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK'], { stdout: 'pipe', stderr: 'ignore' }).stdout.toString().trim()) || 100;

/** 'none' is plain SMTP; the other two are how TLS starts. */
type CellTls = 'none' | 'starttls' | 'implicit';
/** tls-load's cells by name prefix. */
const TLS_CELL_KINDS: Record<string, CellTls> = { clear: 'none', tls: 'starttls', tlsi: 'implicit' };

interface Cell {
  name: string;
  sizeBytes: number;
  sessions: number;
  /** Sessions keep their connection for all their messages (smtp-source -d). */
  reuse: boolean;
  /** smtp-source for plain SMTP; scripts/tls-load.ts for the clear baseline and the TLS cells. */
  tool: 'smtp-source' | 'tls-load';
  tls: CellTls;
}

interface Server {
  name: ServerName;
  host: string;
  port: number;
  /** The implicit-TLS listener; undefined when the server has none. */
  implicitTlsPort?: number;
  /** STARTTLS is offered on `port`. */
  starttls: boolean;
  pid: number;
  /** Waits until the server has no backlog of its own (Postfix: queue drained). */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

interface Run {
  server: ServerName;
  cell: string;
  rep: number;
  messages: number;
  seconds: number;
  rate: number;
  /** CPU time over the run: the server's processes, and the load tool, in ms. */
  serverCpuMs: number;
  clientCpuMs: number;
  /** TLS version and cipher negotiated (tls-load cells). */
  tls?: string;
  ok: boolean;
  error?: string;
}

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    cells: { type: 'string' },
    servers: { type: 'string' },
    reps: { type: 'string' },
    duration: { type: 'string' },
    'idle-conns': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  const header = readFileSync(import.meta.path, 'utf8').split('*/')[0] ?? '';
  console.log(header.replace(/^\/\*\*|^ \* ?/gm, '').trim());
  process.exit(0);
}

const quick = flags.quick ?? false;
const reps = Number(flags.reps ?? (quick ? 1 : 3));
const durationS = Number(flags.duration ?? (quick ? 1.5 : 5));
const pilotMinS = quick ? 0.3 : 1;
const runLimitS = quick ? 30 : 120;
const idleConns = Number(flags['idle-conns'] ?? 2000);
const cells = (flags.cells?.split(',') ?? DEFAULT_CELLS).map(parseCell);
const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
const outDir = resolve(flags.out ?? join(ROOT, 'bench-results', stamp));
mkdirSync(outDir, { recursive: true });
const rawFile = join(outDir, 'raw.jsonl');

function parseCell(text: string): Cell {
  const name = text.trim();
  const plain = /^(\d+)k-s(\d+)(-ka)?$/.exec(name);
  if (plain !== null) {
    return { name, sizeBytes: Number(plain[1]) * 1024, sessions: Number(plain[2]), reuse: plain[3] !== undefined, tool: 'smtp-source', tls: 'none' };
  }
  const tls = /^(clear|tls|tlsi)-s(\d+)$/.exec(name);
  if (tls !== null) return { name, sizeBytes: 1024, sessions: Number(tls[2]), reuse: false, tool: 'tls-load', tls: TLS_CELL_KINDS[tls[1]!]! };
  throw new Error(`bad cell "${name}": use SIZEk-sN[-ka] (smtp-source) or clear-sN, tls-sN, tlsi-sN (tls-load), e.g. 1k-s10-ka or tls-s10`);
}

/** The port a cell talks to on `server`, or undefined when the server cannot serve the cell. */
function cellPort(server: Server, cell: Cell): number | undefined {
  // The floor is a reference for the TLS cells only.
  if (server.name === 'bun-floor' && cell.tool !== 'tls-load') return undefined;
  switch (cell.tls) {
    case 'none':
      return server.port;
    case 'starttls':
      return server.starttls ? server.port : undefined;
    case 'implicit':
      return server.implicitTlsPort;
    default: {
      const never: never = cell.tls;
      throw new Error(`unknown TLS kind ${String(never)}`);
    }
  }
}

function log(line = ''): void {
  console.log(line);
}

function chooseServers(): ServerName[] {
  const explicit = flags.servers !== undefined;
  const wanted = (flags.servers?.split(',').map((s) => s.trim()) ?? [...SERVER_NAMES]) as ServerName[];
  const chosen: ServerName[] = [];
  for (const name of wanted) {
    if (!SERVER_NAMES.includes(name)) throw new Error(`unknown server "${name}" (know: ${SERVER_NAMES.join(', ')})`);
    const missing = name === 'mailbox'
      ? (existsSync(MAILBOX_BIN) ? undefined : `${MAILBOX_BIN} is missing: run npm run build`)
      : name === 'smtp-sink' ? smtpSinkUnavailableReason()
      : name === 'postfix' ? postfixUnavailableReason() : undefined;
    if (missing === undefined) chosen.push(name);
    else if (explicit) throw new Error(`cannot bench ${name}: ${missing}`);
    else log(`note: skipping ${name}: ${missing}`);
  }
  return chosen;
}

interface Certificate {
  cert: string;
  key: string;
}

/** One certificate for every server, so the handshakes cost the same key operations. */
function makeCertificate(dir: string): Certificate {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const made = Bun.spawnSync([
    'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdout: 'ignore', stderr: 'pipe' });
  if (made.exitCode !== 0) throw new Error(`openssl req failed: ${made.stderr.toString()}`);
  return { cert, key };
}

async function startMailbox(certificate: Certificate): Promise<Server> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mailbox-bench-data-'));
  const port = await findFreePort();
  const implicitTlsPort = await findFreePort();
  const logFile = join(outDir, 'mailbox.log');
  const proc = Bun.spawn([
    MAILBOX_BIN, 'serve', '--pop3', 'off', '--imap', 'off', '--http', 'off', '--listen', `127.0.0.1:${port}`, '--listen-tls', `127.0.0.1:${implicitTlsPort}`, '--data', dataDir,
    '--tls-cert', certificate.cert, '--tls-key', certificate.key,
  ], {
    stdin: 'ignore',
    stdout: Bun.file(logFile),
    stderr: Bun.file(logFile),
  });
  try {
    await waitForGreeting('127.0.0.1', port, {
      abort: () => (proc.exitCode !== null ? `exited with ${proc.exitCode}` : undefined),
    });
  } catch (err) {
    proc.kill('SIGKILL');
    await proc.exited;
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    name: 'mailbox',
    host: '127.0.0.1',
    port,
    implicitTlsPort,
    starttls: true,
    pid: proc.pid,
    settle: () => indexSettled(join(dataDir, 'index.db')),
    stop: async () => {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await proc.exited;
      clearTimeout(timer);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Resolves once mailbox's mail index has caught up with what it was sent: its message count has
 * not moved for 300 ms and nothing waits for full-text indexing (its backlog, which it works off
 * once the mail stops: src/store/mail-index.ts Rule 5). No index file (MAILBOX_BENCH_INDEX=off):
 * at once.
 */
async function indexSettled(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const started = performance.now();
  let last = -1;
  for (;;) {
    let counts = { n: -1, waiting: -1 };
    try {
      const db = new Database(path, { readonly: true });
      counts = db.query('SELECT (SELECT count(*) FROM messages) AS n, (SELECT count(*) FROM backlog) AS waiting').get() as typeof counts;
      db.close();
    } catch {
      // being created, or busy: asked again
    }
    if (counts.waiting === 0 && counts.n === last) return;
    last = counts.n;
    if (performance.now() - started > 300_000) throw new Error(`mailbox's index did not settle in 5 minutes (${counts.n} messages, ${counts.waiting} waiting)`);
    await Bun.sleep(300);
  }
}

/** scripts/tls-floor.ts: a do-nothing SMTP responder on Bun, in clear and with implicit TLS. */
async function startFloor(certificate: Certificate): Promise<Server> {
  const port = await findFreePort();
  const implicitTlsPort = await findFreePort();
  const proc = Bun.spawn([process.execPath, TLS_FLOOR, '--cert', certificate.cert, '--key', certificate.key, '--port', String(port),
    '--tls-port', String(implicitTlsPort)], { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });
  const stop = async () => {
    proc.kill('SIGTERM');
    await proc.exited;
  };
  try {
    await waitForGreeting('127.0.0.1', port, { abort: () => (proc.exitCode !== null ? `exited with ${proc.exitCode}` : undefined) });
  } catch (err) {
    await stop();
    throw err;
  }
  return { name: 'bun-floor', host: '127.0.0.1', port, implicitTlsPort, starttls: false, pid: proc.pid, settle: async () => {}, stop };
}

function sinkServer(sink: SmtpSinkHandle): Server {
  return { name: 'smtp-sink', host: sink.address, port: sink.port, starttls: false, pid: sink.proc.pid, settle: async () => {}, stop: sink.stop };
}

function postfixServer(postfix: PostfixHandle): Server {
  return {
    name: 'postfix',
    host: postfix.address,
    port: postfix.port,
    implicitTlsPort: postfix.implicitTlsPort,
    starttls: true,
    pid: postfix.masterPid() ?? 0,
    settle: async () => {
      // discard(8) runs behind smtpd; let the queue drain so the next run does not pay for it.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const backlog = (await postfix.messages('incoming')).length + (await postfix.messages('active')).length;
        if (backlog === 0) return;
        await Bun.sleep(200);
      }
    },
    stop: postfix.stop,
  };
}

async function startServer(name: ServerName, certificate: Certificate): Promise<Server> {
  switch (name) {
    case 'mailbox':
      return startMailbox(certificate);
    case 'bun-floor':
      return startFloor(certificate);
    case 'smtp-sink':
      return sinkServer(await startSmtpSink({ maxConnections: 8192, backlog: 4096 }));
    case 'postfix':
      return postfixServer(await startPostfix({
        mode: 'discard',
        implicitTlsPort: 0,
        mainCf: { smtpd_tls_security_level: 'may', smtpd_tls_cert_file: certificate.cert, smtpd_tls_key_file: certificate.key },
      }));
    default: {
      const never: never = name;
      throw new Error(`unknown server ${String(never)}`);
    }
  }
}

/** CPU time (user + system) of `pid` and its descendants, reaped children included, in ms. */
function readTreeCpuMs(pid: number): number {
  let ticks = 0;
  for (const each of [pid, ...descendantsOf(pid)]) {
    try {
      const stat = readFileSync(`/proc/${each}/stat`, 'utf8');
      // After "(comm) ": state is field 3, utime..cstime are fields 14-17.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // gone between the listing and the read: its time is now in its parent's cutime
    }
  }
  return (ticks * 1000) / CLOCK_TICKS;
}

/**
 * One run of `messages` messages by the cell's tool. The rate is messages over the wall time:
 * smtp-source's from spawn to exit, tls-load's as it reports it (Bun's start-up left out).
 */
async function runLoad(server: Server, cell: Cell, messages: number, limitS: number) {
  const port = cellPort(server, cell)!;
  const args = cell.tool === 'smtp-source'
    ? [SMTP_SOURCE, '-s', String(cell.sessions), '-l', String(cell.sizeBytes), '-m', String(messages), '-M', 'bench.local',
      ...(cell.reuse ? ['-d'] : []), `inet:${server.host}:${port}`]
    : [process.execPath, TLS_LOAD, '--tls', cell.tls, '-s', String(cell.sessions), '-l', String(cell.sizeBytes), '-m', String(messages),
      `${server.host}:${port}`];
  const serverCpuBefore = readTreeCpuMs(server.pid);
  const started = Bun.nanoseconds();
  const proc = Bun.spawn(args, { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), limitS * 1000);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  let seconds = (Bun.nanoseconds() - started) / 1e9;
  clearTimeout(timer);
  const serverCpuMs = readTreeCpuMs(server.pid) - serverCpuBefore;
  const usage = proc.resourceUsage()?.cpuTime;
  const clientCpuMs = usage === undefined ? 0 : Number(usage.user + usage.system) / 1000;
  let tls: string | undefined;
  const report = cell.tool === 'tls-load' ? parseTlsLoadReport(stdout) : undefined;
  if (report !== undefined) {
    seconds = report.seconds;
    if (report.tls !== null) tls = `${report.tls.version} ${report.tls.cipher}`;
    if (report.failed > 0) {
      return { seconds, serverCpuMs, clientCpuMs, tls, ok: false, error: `tls-load: ${report.failed} of ${messages} failed, first: ${report.error}` };
    }
  }
  const ok = code === 0;
  const tail = `${stderr}${stdout}`.trim().split('\n').slice(-2).join(' | ');
  return { seconds, serverCpuMs, clientCpuMs, tls, ok, error: ok ? undefined : `${cell.tool} exit ${code}: ${tail}` };
}

/** The JSON line scripts/tls-load.ts prints (its LoadResult). */
interface TlsLoadReport {
  messages: number;
  failed: number;
  seconds: number;
  tls: { version: string; cipher: string } | null;
  error?: string;
}

/** tls-load's report, or undefined when it died before printing one. */
function parseTlsLoadReport(stdout: string): TlsLoadReport | undefined {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  if (!last.startsWith('{')) return undefined;
  try {
    return JSON.parse(last) as TlsLoadReport;
  } catch {
    return undefined;
  }
}

function roundUp(value: number, unit: number): number {
  return Math.max(unit, Math.ceil(value / unit) * unit);
}

/** Escalating pilot runs (they double as warm-up) until one lasts pilotMinS; returns msgs/s. */
async function pilot(server: Server, cell: Cell): Promise<number> {
  let messages = roundUp(Math.max(cell.sessions * 2, 20), cell.sessions);
  for (let i = 0; i < 8; i++) {
    const run = await runLoad(server, cell, messages, 30);
    if (!run.ok) throw new Error(`pilot against ${server.name} failed: ${run.error}`);
    const rate = messages / run.seconds;
    if (run.seconds >= pilotMinS || messages >= 300_000) return rate;
    messages = roundUp(Math.min(messages * 4, Math.ceil(rate * pilotMinS * 1.5)) || messages * 4, cell.sessions);
  }
  throw new Error(`pilot against ${server.name} never lasted ${pilotMinS} s`);
}

async function measure(server: Server, cell: Cell, rep: number, sized: Map<string, number>, servers: readonly Server[]): Promise<Run> {
  const key = `${server.name}/${cell.name}`;
  let messages = sized.get(key)!;
  for (let attempt = 0; ; attempt++) {
    // Every server has done the work the last run left it (Postfix's queue, mailbox's index), so
    // none of it shares the CPUs with this run.
    for (const s of servers) await s.settle();
    const run = await runLoad(server, cell, messages, runLimitS);
    const rate = messages / run.seconds;
    const result: Run = {
      server: server.name, cell: cell.name, rep, messages, seconds: run.seconds, rate,
      serverCpuMs: run.serverCpuMs, clientCpuMs: run.clientCpuMs, tls: run.tls, ok: run.ok, error: run.error,
    };
    await appendFile(rawFile, `${JSON.stringify({ ...result, attempt })}\n`);
    if (!run.ok) return result;
    // Re-size from the rate just measured; redo a run shorter than 80% of the target (<= 2x).
    const next = Math.min(roundUp(rate * durationS, cell.sessions), 300_000);
    sized.set(key, next);
    if (run.seconds < 0.8 * durationS && attempt < 2 && next > messages) {
      messages = next;
      continue;
    }
    return result;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function formatRate(runs: Run[]): string {
  const ok = runs.filter((r) => r.ok).map((r) => r.rate);
  if (ok.length === 0) return runs.length === 0 ? '–' : 'failed';
  const med = Math.round(median(ok)).toLocaleString('en-US');
  if (ok.length === 1) return `${med}${ok.length < runs.length ? ' !' : ''}`;
  const lo = Math.round(Math.min(...ok)).toLocaleString('en-US');
  const hi = Math.round(Math.max(...ok)).toLocaleString('en-US');
  return `${med} (${lo}–${hi})${ok.length < runs.length ? ' !' : ''}`;
}

function ratio(runs: Run[], a: ServerName, b: ServerName, cell: string): string {
  const rates = (name: ServerName) => runs.filter((r) => r.server === name && r.cell === cell && r.ok).map((r) => r.rate);
  const ra = rates(a);
  const rb = rates(b);
  if (ra.length === 0 || rb.length === 0) return '–';
  return `${(median(ra) / median(rb)).toFixed(2)}×`;
}

/** Median of a per-message quantity over the runs that completed, or undefined. */
function medianPer(runs: Run[], value: (run: Run) => number): number | undefined {
  const ok = runs.filter((r) => r.ok);
  return ok.length === 0 ? undefined : median(ok.map(value));
}

/** "server / tool (tool busy %)": CPU ms per message, and the tool's CPU time over its wall time. */
function formatCpu(runs: Run[]): string {
  const server = medianPer(runs, (r) => r.serverCpuMs / r.messages);
  const client = medianPer(runs, (r) => r.clientCpuMs / r.messages);
  const busy = medianPer(runs, (r) => r.clientCpuMs / (r.seconds * 1000));
  if (server === undefined || client === undefined || busy === undefined) return '–';
  return `${server.toFixed(2)} / ${client.toFixed(2)} (${Math.round(busy * 100)}%)`;
}

/**
 * TLS cost per server and session count, each TLS cell against the clear cell of the same client
 * (tls-load), so that only TLS differs: msgs/s kept, server CPU per message TLS ÷ clear, and the
 * CPU TLS adds per message. Then mailbox's figures ÷ Postfix's.
 */
function tlsCostReport(runs: Run[], names: ServerName[]): string[] {
  const sessions = [...new Set(cells.filter((c) => c.tool === 'tls-load' && c.tls !== 'none').map((c) => c.sessions))]
    .filter((n) => cells.some((c) => c.name === `clear-s${n}`));
  const servers = names.filter((name) => name !== 'smtp-sink');
  if (sessions.length === 0 || servers.length === 0) return [];
  const of = (name: ServerName, cell: string) => runs.filter((r) => r.server === name && r.cell === cell);
  const rate = (name: ServerName, cell: string) => medianPer(of(name, cell), (r) => r.rate);
  const cpu = (name: ServerName, cell: string) => medianPer(of(name, cell), (r) => r.serverCpuMs / r.messages);
  const quotient = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);
  const difference = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a - b);
  const kinds = ['tls', 'tlsi'] as const;
  /** [STARTTLS rate, implicit rate, STARTTLS CPU, implicit CPU, STARTTLS adds, implicit adds] */
  const costs = (name: ServerName, n: number) => [
    ...kinds.map((kind) => quotient(rate(name, `${kind}-s${n}`), rate(name, `clear-s${n}`))),
    ...kinds.map((kind) => quotient(cpu(name, `${kind}-s${n}`), cpu(name, `clear-s${n}`))),
    ...kinds.map((kind) => difference(cpu(name, `${kind}-s${n}`), cpu(name, `clear-s${n}`))),
  ];
  const times = (x: number | undefined) => (x === undefined ? '–' : `${x.toFixed(2)}×`);
  const ms = (x: number | undefined) => (x === undefined ? '–' : `${x >= 0 ? '+' : ''}${x.toFixed(2)} ms`);
  const rows: string[] = [];
  for (const n of sessions) {
    const byServer = new Map(servers.map((name) => [name, costs(name, n)]));
    for (const [name, values] of byServer) {
      rows.push(`| ${n} | ${name} | ${values.slice(0, 4).map(times).join(' | ')} | ${values.slice(4).map(ms).join(' | ')} |`);
    }
    const mailbox = byServer.get('mailbox');
    const postfix = byServer.get('postfix');
    if (mailbox !== undefined && postfix !== undefined) {
      rows.push(`| ${n} | mailbox ÷ postfix | ${mailbox.map((m, i) => times(quotient(m, postfix[i]))).join(' | ')} |`);
    }
    const floor = byServer.get('bun-floor');
    if (mailbox !== undefined && floor !== undefined) {
      rows.push(`| ${n} | mailbox ÷ bun-floor | ${mailbox.map((m, i) => times(quotient(m, floor[i]))).join(' | ')} |`);
    }
  }
  return [
    '## TLS cost (TLS against clear, both by tls-load)', '',
    '| sessions | server | STARTTLS msgs/s | implicit msgs/s | STARTTLS CPU/msg | implicit CPU/msg | STARTTLS adds | implicit adds |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
    ...rows, '',
    'msgs/s: the share of the clear rate kept under TLS (mailbox ÷ postfix ≥ 1.00: TLS costs mailbox relatively no more than',
    'Postfix). CPU/msg: server CPU per message under TLS ÷ in clear; adds: the difference in ms (mailbox ÷ postfix ≤ 1.00: the',
    'same). The load tool shares the CPUs, so msgs/s also pays for its own TLS work (see above); server CPU does not.',
    'bun-floor (scripts/tls-floor.ts) answers every command with a fixed reply and keeps nothing, on Bun\'s native TLS',
    '(implicit only): what TLS costs any server on Bun here, the floor under mailbox\'s own figures.', '',
  ];
}

function readStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) : 0;
}

/** Opens `count` connections (`batch` connecting at a time), reads each 220, holds them, reads RSS. */
async function idleRss(server: Server, count: number, batch = 100, holdMs = 3000) {
  const baseKb = readStatusKb(server.pid, 'VmRSS');
  const sockets: Socket[] = [];
  let failed = 0;
  const openOne = () => new Promise<void>((done) => {
    const socket = connect({ host: server.host, port: server.port });
    let text = '';
    const timer = setTimeout(() => finish(false), 15_000);
    function finish(greeted: boolean) {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      if (greeted) sockets.push(socket);
      else {
        failed++;
        socket.destroy();
      }
      done();
    }
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n')) finish(text.startsWith('220'));
    });
    socket.on('error', () => finish(false));
  });
  const started = performance.now();
  for (let opened = 0; opened < count; opened += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - opened) }, openOne));
  }
  const openS = (performance.now() - started) / 1000;
  let heldKb = 0;
  for (let t = 0; t < holdMs; t += 500) {
    await Bun.sleep(500);
    heldKb = Math.max(heldKb, readStatusKb(server.pid, 'VmRSS'));
  }
  const alive = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  const peakKb = readStatusKb(server.pid, 'VmHWM');
  for (const socket of sockets) socket.destroy();
  await Bun.sleep(500);
  return { greeted: sockets.length, alive, failed, openS, baseKb, heldKb, peakKb, perConnKb: (heldKb - baseKb) / Math.max(sockets.length, 1) };
}

const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;

async function main(): Promise<void> {
  const names = chooseServers();
  if (names.length === 0) throw new Error('no server to bench');
  if (!existsSync(SMTP_SOURCE)) throw new Error(`${SMTP_SOURCE} is missing: run scripts/install-peers`);
  const version = Bun.spawnSync(['postconf', '-d', '-h', 'mail_version'], { stdout: 'pipe', stderr: 'ignore' }).stdout.toString().trim();
  const header = [
    `# mailbox bench ${stamp}`,
    '',
    `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), Postfix ${version || '?'}, Bun ${Bun.version}; ` +
      `${reps} rep(s) of ~${durationS} s per cell, smtp-source and tls-load on the same machine; msgs/s median (min–max).`,
    `cells: ${cells.map((c) => c.name).join(' ')} (Nk = body size, sN = sessions, -ka = sessions reused, else one connection per message;`,
    'clear/tls/tlsi = scripts/tls-load.ts in clear, with STARTTLS, with implicit TLS; one ECDSA P-256 certificate for every server)',
  ];
  for (const line of header) log(line);

  const servers: Server[] = [];
  const runs: Run[] = [];
  // Ctrl-C or a kill: stop the peers (a daemonized Postfix master would outlive us), then leave.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping servers`);
      void Promise.allSettled(servers.map((s) => s.stop())).then(() => process.exit(130));
    });
  }
  const report: string[] = [...header, ''];
  const certDir = await mkdtemp(join(tmpdir(), 'mailbox-bench-tls-'));
  try {
    const certificate = makeCertificate(certDir);
    for (const name of names) {
      const server = await startServer(name, certificate);
      servers.push(server);
      const implicit = server.implicitTlsPort === undefined ? '' : `, implicit TLS on ${server.implicitTlsPort}`;
      log(`started ${name} on ${server.host}:${server.port}${implicit} (pid ${server.pid})`);
    }

    const mailbox = servers.find((s) => s.name === 'mailbox');
    const idleRows: string[] = [];
    if (idleConns > 0) {
      // Measured first, on fresh processes, so VmHWM is the peak with idle connections only.
      for (const server of servers.filter((s) => s.name === 'mailbox' || s.name === 'smtp-sink')) {
        const r = await idleRss(server, idleConns);
        const line = `| ${server.name} | ${r.greeted}/${idleConns} | ${mb(r.baseKb)} | ${mb(r.heldKb)} | ${mb(r.peakKb)} | ${r.perConnKb.toFixed(1)} KB | ${r.openS.toFixed(1)} s |`;
        idleRows.push(line);
        await appendFile(rawFile, `${JSON.stringify({ idle: server.name, conns: idleConns, ...r })}\n`);
        log(`idle ${server.name}: ${r.greeted} greeted, ${r.alive} alive, RSS ${mb(r.baseKb)} -> ${mb(r.heldKb)}, VmHWM ${mb(r.peakKb)}`);
      }
    }

    const sized = new Map<string, number>();
    for (const cell of cells) {
      const able = servers.filter((server) => cellPort(server, cell) !== undefined);
      for (const server of able) {
        for (const s of servers) await s.settle();
        const rate = await pilot(server, cell);
        sized.set(`${server.name}/${cell.name}`, Math.min(roundUp(rate * durationS, cell.sessions), 300_000));
      }
      for (let rep = 1; rep <= reps; rep++) {
        for (const server of able) {
          const run = await measure(server, cell, rep, sized, servers);
          runs.push(run);
          log(`${cell.name.padEnd(10)} ${server.name.padEnd(9)} rep ${rep}: ${Math.round(run.rate).toLocaleString('en-US').padStart(7)} msgs/s` +
            ` (${run.messages} msgs in ${run.seconds.toFixed(2)} s)${run.ok ? '' : ` FAILED ${run.error}`}`);
        }
      }
    }

    const has = (name: ServerName) => servers.some((s) => s.name === name);
    const ratios: [ServerName, ServerName][] = [];
    if (has('mailbox') && has('postfix')) ratios.push(['mailbox', 'postfix']);
    if (has('mailbox') && has('smtp-sink')) ratios.push(['mailbox', 'smtp-sink']);
    const table = [
      `| cell | ${servers.map((s) => s.name).join(' | ')} |${ratios.map(([a, b]) => ` ${a}/${b} |`).join('')}`,
      `|---|${servers.map(() => '---:|').join('')}${ratios.map(() => '---:|').join('')}`,
      ...cells.map((cell) => `| ${cell.name} | ${servers.map((s) => formatRate(runs.filter((r) => r.server === s.name && r.cell === cell.name))).join(' | ')} |` +
        ratios.map(([a, b]) => ` ${ratio(runs, a, b, cell.name)} |`).join('')),
    ];
    report.push('## Throughput (messages/s)', '', ...table, '');
    report.push('## CPU per message (ms, median): server / load tool (load tool busy)', '',
      `| cell | ${servers.map((s) => s.name).join(' | ')} |`, `|---|${servers.map(() => '---:|').join('')}`,
      ...cells.map((cell) => `| ${cell.name} | ${servers.map((s) => formatCpu(runs.filter((r) => r.server === s.name && r.cell === cell.name))).join(' | ')} |`),
      '', 'Server = every process of the server (Postfix: master and all its children); load tool = smtp-source or tls-load;',
      'busy = the tool\'s CPU time over its wall time (100% = one core: the tool, not the server, sets the pace).', '');
    report.push(...tlsCostReport(runs, servers.map((s) => s.name)));
    if (idleRows.length > 0) {
      report.push(`## Memory with ${idleConns} idle connections (VmRSS; VmHWM = peak so far)`, '',
        '| server | greeted | RSS before | RSS held | VmHWM | per connection | open time |', '|---|---:|---:|---:|---:|---:|---:|', ...idleRows, '');
    }
    if (mailbox !== undefined) report.push(`mailbox VmHWM after the throughput runs: ${mb(readStatusKb(mailbox.pid, 'VmHWM'))}`, '');
    const negotiated = servers.map((s) => [s.name, runs.find((r) => r.server === s.name && r.tls !== undefined)?.tls] as const)
      .filter(([, tls]) => tls !== undefined);
    if (negotiated.length > 0) report.push(`TLS negotiated: ${negotiated.map(([name, tls]) => `${name} ${tls}`).join('; ')}.`, '');
    if (runs.some((r) => !r.ok)) report.push('`!` = some runs failed (see raw.jsonl); the figure is over the runs that completed.', '');
  } finally {
    for (const server of servers.reverse()) await server.stop().catch((err) => log(`stopping ${server.name}: ${err}`));
    await rm(certDir, { recursive: true, force: true });
  }
  await writeFile(join(outDir, 'results.md'), `${report.join('\n')}\n`);
  log('');
  for (const line of report.slice(header.length + 1)) log(line);
  log(`results: ${join(outDir, 'results.md')} (raw runs: ${rawFile})`);
  if (runs.some((r) => !r.ok)) process.exitCode = 1;
}

await main();
