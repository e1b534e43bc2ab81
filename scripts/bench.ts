/**
 * SMTP receive benchmark: `dist/mailbox serve`, Postfix's smtp-sink (stores nothing) and a private
 * Postfix (smtpd -> cleanup -> fsync'd queue -> discard) run side by side in one run, each on its
 * own loopback port, all driven by Postfix's smtp-source. Then the memory mailbox holds for 2,000
 * idle connections. Method (after ../shared/bench): escalating pilot runs size each cell to last
 * about --duration seconds, a run shorter than 80% of that is redone, reps are interleaved across
 * servers, and the table shows median (min–max) messages/s.
 *
 * usage: npm run bench -- [--quick] [--cells 1k-s1,1k-s10-ka,...] [--servers mailbox,smtp-sink,postfix]
 *                         [--reps N] [--duration SECS] [--idle-conns N] [--out DIR]
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
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
const SERVER_NAMES = ['mailbox', 'smtp-sink', 'postfix'] as const;
type ServerName = (typeof SERVER_NAMES)[number];
const DEFAULT_CELLS = ['1k-s1', '1k-s10', '1k-s50', '1k-s1-ka', '1k-s10-ka', '1k-s50-ka'];

interface Cell {
  name: string;
  sizeBytes: number;
  sessions: number;
  /** Sessions keep their connection for all their messages (smtp-source -d). */
  reuse: boolean;
}

interface Server {
  name: ServerName;
  host: string;
  port: number;
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

function parseCell(name: string): Cell {
  const match = /^(\d+)k-s(\d+)(-ka)?$/.exec(name.trim());
  if (match === null) throw new Error(`bad cell "${name}": use SIZEk-sSESSIONS[-ka], e.g. 1k-s10 or 1k-s10-ka`);
  return { name: name.trim(), sizeBytes: Number(match[1]) * 1024, sessions: Number(match[2]), reuse: match[3] !== undefined };
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
      : name === 'smtp-sink' ? smtpSinkUnavailableReason() : postfixUnavailableReason();
    if (missing === undefined) chosen.push(name);
    else if (explicit) throw new Error(`cannot bench ${name}: ${missing}`);
    else log(`note: skipping ${name}: ${missing}`);
  }
  return chosen;
}

async function startMailbox(): Promise<Server> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mailbox-bench-data-'));
  const port = await findFreePort();
  const logFile = join(outDir, 'mailbox.log');
  const proc = Bun.spawn([MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir], {
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
    pid: proc.pid,
    settle: async () => {},
    stop: async () => {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await proc.exited;
      clearTimeout(timer);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function sinkServer(sink: SmtpSinkHandle): Server {
  return { name: 'smtp-sink', host: sink.address, port: sink.port, pid: sink.proc.pid, settle: async () => {}, stop: sink.stop };
}

function postfixServer(postfix: PostfixHandle): Server {
  return {
    name: 'postfix',
    host: postfix.address,
    port: postfix.port,
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

async function startServer(name: ServerName): Promise<Server> {
  switch (name) {
    case 'mailbox':
      return startMailbox();
    case 'smtp-sink':
      return sinkServer(await startSmtpSink({ maxConnections: 8192, backlog: 4096 }));
    case 'postfix':
      return postfixServer(await startPostfix({ mode: 'discard' }));
    default: {
      const never: never = name;
      throw new Error(`unknown server ${String(never)}`);
    }
  }
}

/** One smtp-source run of `messages` messages; the rate is messages over its wall time. */
async function runSource(server: Server, cell: Cell, messages: number, limitS: number) {
  const args = [SMTP_SOURCE, '-s', String(cell.sessions), '-l', String(cell.sizeBytes), '-m', String(messages), '-M', 'bench.local'];
  if (cell.reuse) args.push('-d');
  args.push(`inet:${server.host}:${server.port}`);
  const started = Bun.nanoseconds();
  const proc = Bun.spawn(args, { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), limitS * 1000);
  const stderr = await new Response(proc.stderr).text();
  const code = await proc.exited;
  const seconds = (Bun.nanoseconds() - started) / 1e9;
  clearTimeout(timer);
  const ok = code === 0;
  return { seconds, ok, error: ok ? undefined : `smtp-source exit ${code}: ${stderr.trim().split('\n').slice(-2).join(' | ')}` };
}

function roundUp(value: number, unit: number): number {
  return Math.max(unit, Math.ceil(value / unit) * unit);
}

/** Escalating pilot runs (they double as warm-up) until one lasts pilotMinS; returns msgs/s. */
async function pilot(server: Server, cell: Cell): Promise<number> {
  let messages = roundUp(Math.max(cell.sessions * 2, 20), cell.sessions);
  for (let i = 0; i < 8; i++) {
    const run = await runSource(server, cell, messages, 30);
    if (!run.ok) throw new Error(`pilot against ${server.name} failed: ${run.error}`);
    const rate = messages / run.seconds;
    if (run.seconds >= pilotMinS || messages >= 300_000) return rate;
    messages = roundUp(Math.min(messages * 4, Math.ceil(rate * pilotMinS * 1.5)) || messages * 4, cell.sessions);
  }
  throw new Error(`pilot against ${server.name} never lasted ${pilotMinS} s`);
}

async function measure(server: Server, cell: Cell, rep: number, sized: Map<string, number>): Promise<Run> {
  const key = `${server.name}/${cell.name}`;
  let messages = sized.get(key)!;
  for (let attempt = 0; ; attempt++) {
    await server.settle();
    const run = await runSource(server, cell, messages, runLimitS);
    const rate = messages / run.seconds;
    const result: Run = { server: server.name, cell: cell.name, rep, messages, seconds: run.seconds, rate, ok: run.ok, error: run.error };
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
      `${reps} rep(s) of ~${durationS} s per cell, smtp-source on the same machine; msgs/s median (min–max).`,
    `cells: ${cells.map((c) => c.name).join(' ')} (Nk = body size, sN = sessions, -ka = sessions reused, else one connection per message)`,
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
  try {
    for (const name of names) {
      const server = await startServer(name);
      servers.push(server);
      log(`started ${name} on ${server.host}:${server.port} (pid ${server.pid})`);
    }

    const mailbox = servers.find((s) => s.name === 'mailbox');
    const idleRows: string[] = [];
    if (idleConns > 0) {
      // Measured first, on fresh processes, so VmHWM is the peak with idle connections only.
      for (const server of servers.filter((s) => s.name !== 'postfix')) {
        const r = await idleRss(server, idleConns);
        const line = `| ${server.name} | ${r.greeted}/${idleConns} | ${mb(r.baseKb)} | ${mb(r.heldKb)} | ${mb(r.peakKb)} | ${r.perConnKb.toFixed(1)} KB | ${r.openS.toFixed(1)} s |`;
        idleRows.push(line);
        await appendFile(rawFile, `${JSON.stringify({ idle: server.name, conns: idleConns, ...r })}\n`);
        log(`idle ${server.name}: ${r.greeted} greeted, ${r.alive} alive, RSS ${mb(r.baseKb)} -> ${mb(r.heldKb)}, VmHWM ${mb(r.peakKb)}`);
      }
    }

    const sized = new Map<string, number>();
    for (const cell of cells) {
      for (const server of servers) {
        await server.settle();
        const rate = await pilot(server, cell);
        sized.set(`${server.name}/${cell.name}`, Math.min(roundUp(rate * durationS, cell.sessions), 300_000));
      }
      for (let rep = 1; rep <= reps; rep++) {
        for (const server of servers) {
          const run = await measure(server, cell, rep, sized);
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
    if (idleRows.length > 0) {
      report.push(`## Memory with ${idleConns} idle connections (VmRSS; VmHWM = peak so far)`, '',
        '| server | greeted | RSS before | RSS held | VmHWM | per connection | open time |', '|---|---:|---:|---:|---:|---:|---:|', ...idleRows, '');
    }
    if (mailbox !== undefined) report.push(`mailbox VmHWM after the throughput runs: ${mb(readStatusKb(mailbox.pid, 'VmHWM'))}`, '');
    if (runs.some((r) => !r.ok)) report.push('`!` = some runs failed (see raw.jsonl); the figure is over the runs that completed.', '');
  } finally {
    for (const server of servers.reverse()) await server.stop().catch((err) => log(`stopping ${server.name}: ${err}`));
  }
  await writeFile(join(outDir, 'results.md'), `${report.join('\n')}\n`);
  log('');
  for (const line of report.slice(header.length + 1)) log(line);
  log(`results: ${join(outDir, 'results.md')} (raw runs: ${rawFile})`);
  if (runs.some((r) => !r.ok)) process.exitCode = 1;
}

await main();
