/**
 * Soak: mixed SMTP load against `dist/mailbox serve` for --minutes, while serve is SIGKILLed every
 * ~--kill-every seconds (seeded jitter: 0.5 to 1.5 times that) and restarted on the same data
 * directory. Then serve is stopped and the spool is read back:
 *   - every acknowledged message (a 250 to its end of data) is present, byte for byte;
 *   - no damaged record, and nothing from a client that vanished mid-DATA or was refused;
 *   - a message is in the spool twice only when its 250 was lost to a kill and it was sent again
 *     (as a real client retries); those duplicates are counted.
 * The load, from --clients concurrent loops: a new connection per message (lock-step), reused
 * connections (several messages, some with RSET between), pipelined groups (RFC 2920, the next
 * MAIL/RCPT/DATA with the end of the message before), BDAT in several chunks (RFC 3030), STARTTLS
 * (RFC 3207) then DATA or BDAT, and clients that vanish mid-DATA or mid-BDAT. Messages are 1 KB to
 * 5 MB; each carries its tag and size, and its bytes follow from those, so they are checked whole.
 * Reported: kills, RSS after each restart, peak RSS (VmHWM) of each serve, RSS at the end.
 * Then the fuzz tests run long: the server core (FUZZ_CASES=--fuzz-cases, default 1,000,000) and
 * the client core (CLIENT_FUZZ_CASES=--client-fuzz-cases).
 *
 * usage: npm run soak -- [--minutes N] [--kill-every SECS] [--clients N] [--fuzz-cases N]
 *                        [--client-fuzz-cases N] [--keep]
 * SOAK_SEED=n replays the choices of a run (scenarios, sizes, kill delays); the timing is the
 * machine's. The last line is `soak-result {json}`; the exit status is 0 only when every check held.
 */
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import type { Subprocess } from 'bun';
import { openSpool } from '../src/spool/spool.ts';
import { chooser, seededRandom, seedFromEnv } from '../tests/helpers/seeded-random.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const HOST = '127.0.0.1';
/** A reply slower than this is a failure of the server, not of the load. */
const REPLY_TIMEOUT_MS = 120_000;

const { values: args } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    minutes: { type: 'string', default: '1' },
    'kill-every': { type: 'string', default: '30' },
    clients: { type: 'string', default: '4' },
    'fuzz-cases': { type: 'string', default: '1000000' },
    'client-fuzz-cases': { type: 'string', default: '100000' },
    keep: { type: 'boolean', default: false },
  },
});
const MINUTES = Number(args.minutes);
const KILL_EVERY_S = Number(args['kill-every']);
const CLIENTS = Number(args.clients);
const FUZZ_CASES = Number(args['fuzz-cases']);
const CLIENT_FUZZ_CASES = Number(args['client-fuzz-cases']);
for (const [name, value] of Object.entries({ minutes: MINUTES, 'kill-every': KILL_EVERY_S, clients: CLIENTS, 'fuzz-cases': FUZZ_CASES, 'client-fuzz-cases': CLIENT_FUZZ_CASES })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: not a number`);
}

const SEED = seedFromEnv('SOAK_SEED', 'soak');
const say = (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

// ---- messages: every byte follows from the tag and the size ----

const FILL = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+';

/** The message for `tag` of about `size` bytes: CRLF lines, some starting with "." (transparency). */
function messageFor(tag: string, size: number): Buffer {
  const head = `Message-ID: <${tag}@soak.test>\r\nX-Soak: ${tag} ${size}\r\nSubject: soak ${tag}\r\n\r\n`;
  const lines: string[] = [head];
  let length = head.length;
  for (let i = 0; length < size; i++) {
    const start = `${i % 9 === 4 ? '.' : ''}${tag} ${i} `;
    const line = `${start}${FILL.slice(0, Math.max(0, 76 - start.length))}\r\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join(''), 'latin1');
}

/** RFC 5321 §4.5.2: a line that starts with "." gets one more. */
function dotStuffed(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/^\./gm, '..'), 'latin1');
}

/** 1 KB to 5 MB, log-uniform in three bands so most are small and some are large. */
function pickSize(r: ReturnType<typeof chooser>): number {
  const band = r.random();
  const [low, high] = band < 0.9 ? [1024, 64 * 1024] : band < 0.99 ? [64 * 1024, 1024 * 1024] : [1024 * 1024, 5 * 1024 * 1024];
  return Math.round(low * Math.exp(r.random() * Math.log(high / low)));
}

// ---- what happened to each message ----

interface Fate {
  readonly size: number;
  /** Spool ids from 250 replies. */
  readonly acked: string[];
  /** Times the end of data was written and no reply came (the server was killed). */
  unknown: number;
  /** 4xx/5xx replies to the end of data. */
  refused: number;
  /** Times a client vanished mid-DATA or mid-BDAT with it. */
  abandoned: number;
}

const fates = new Map<string, Fate>();
/** Messages whose end of data got no reply: sent again, as a real client would. */
const retries: string[] = [];
const counts = { connections: 0, sessions: 0, scenario: {} as Record<string, number>, unexpected: [] as string[], refusedReplies: [] as string[] };

function fate(tag: string, size: number): Fate {
  let f = fates.get(tag);
  if (!f) {
    f = { size, acked: [], unknown: 0, refused: 0, abandoned: 0 };
    fates.set(tag, f);
  }
  return f;
}

// ---- serve: start, kill, restart ----

interface Server {
  readonly proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  readonly port: number;
  readonly generation: number;
  readonly log: string[];
}

let generation = 0;
let current: Server | null = null;
let serverReady: { promise: Promise<void>; resolve: () => void } = Promise.withResolvers<void>();
const restarts: { generation: number; rssMb: number; tornBytes: number; recovered: number; damaged: number }[] = [];
const peaks: number[] = [];

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
const mb = (kb: number) => Math.round(kb / 102.4) / 10;

/** Starts serve on port 0 (then the same port again) and resolves once it logs `listening`. */
async function startServe(dataDir: string, port: number): Promise<Server> {
  const gen = ++generation;
  const proc = Bun.spawn([MAILBOX_BIN, 'serve', '--pop3', 'off', '--imap', 'off', '--http', 'off', '--listen', `${HOST}:${port}`, '--data', dataDir], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const log: string[] = [];
  const listening = Promise.withResolvers<number>();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let rest = '';
    for await (const chunk of stream) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (log.length < 2000) log.push(line);
        const m = / listening smtp=[^ ]*:(\d+) /.exec(line);
        if (m) listening.resolve(Number(m[1]));
      }
    }
  };
  void Promise.all([read(proc.stdout), read(proc.stderr)]).then(() => listening.reject(new Error(`serve exited before listening (${proc.exitCode ?? proc.signalCode}): ${log.slice(-5).join(' | ')}`)));
  const bound = await listening.promise;
  const opened = log.find((l) => l.includes(' spool-opened '));
  const field = (name: string) => Number(new RegExp(` ${name}=(\\d+)`).exec(opened ?? '')?.[1] ?? 0);
  restarts.push({ generation: gen, rssMb: mb(statusKb(proc.pid, 'VmRSS')), tornBytes: field('torn_bytes'), recovered: field('recovered'), damaged: field('damaged') });
  return { proc, port: bound, generation: gen, log };
}

async function killAndRestart(dataDir: string): Promise<void> {
  const old = current!;
  peaks.push(statusKb(old.proc.pid, 'VmHWM'));
  serverReady = Promise.withResolvers<void>();
  current = null;
  old.proc.kill('SIGKILL');
  await old.proc.exited;
  // The same port, so clients that retry find it; a moment's TIME_WAIT is no obstacle to a listener.
  for (let attempt = 1; ; attempt++) {
    try {
      current = await startServe(dataDir, old.port);
      break;
    } catch (error) {
      if (attempt === 5) throw error;
      say(`restart attempt ${attempt} failed: ${(error as Error).message}`);
    }
  }
  serverReady.resolve();
  const last = restarts.at(-1)!;
  say(`kill ${old.generation}: restarted, RSS ${last.rssMb} MB, torn bytes cut ${last.tornBytes}, damaged ${last.damaged}; ${ackedCount()} acknowledged so far`);
}

const ackedCount = () => [...fates.values()].reduce((n, f) => n + f.acked.length, 0);

// ---- a small SMTP client on a raw socket ----

class Closed extends Error {}

class Conn {
  #socket: Socket;
  #text = '';
  #waiter: { resolve: (reply: string) => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> } | null = null;
  #closed: Error | null = null;
  readonly generation: number;

  private constructor(socket: Socket, gen: number) {
    this.#socket = socket;
    this.generation = gen;
    this.#attach(socket);
    socket.on('close', () => this.#fail(new Closed('connection closed')));
  }

  static open(port: number, gen: number): Promise<Conn> {
    return new Promise((resolveConn, reject) => {
      const socket = netConnect({ host: HOST, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        counts.connections++;
        resolveConn(new Conn(socket, gen));
      });
    });
  }

  #attach(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.#text += chunk.toString('latin1');
      this.#deliver();
    });
    socket.on('error', (error) => this.#fail(new Closed(error.message)));
  }

  #fail(error: Error): void {
    this.#closed ??= error;
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      clearTimeout(w.timer);
      w.reject(error);
    }
  }

  /** Hands out one complete reply (RFC 5321 §4.2.1: the last line has a space after the code). */
  #deliver(): void {
    const w = this.#waiter;
    if (!w) return;
    const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.#text);
    if (!m) return;
    this.#text = this.#text.slice(m[0].length);
    this.#waiter = null;
    clearTimeout(w.timer);
    w.resolve(m[0]);
  }

  reply(): Promise<string> {
    if (this.#closed && !/\r\n/.test(this.#text)) return Promise.reject(this.#closed);
    return new Promise((resolveReply, reject) => {
      const timer = setTimeout(() => this.#fail(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
      this.#waiter = { resolve: resolveReply, reject, timer };
      this.#deliver();
      if (this.#waiter && this.#closed) this.#fail(this.#closed);
    });
  }

  /** The next reply, which must start with `code`. */
  async expect(code: string, what: string): Promise<string> {
    const r = await this.reply();
    if (!r.startsWith(code)) throw new Error(`${what}: expected ${code}, got ${JSON.stringify(r.slice(0, 200))}`);
    return r;
  }

  write(data: string | Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolveWrite, reject) => {
      this.#socket.write(data, (error) => (error ? reject(new Closed(error.message)) : resolveWrite()));
    });
  }

  /** After 220 to STARTTLS: the TLS handshake over the same socket (RFC 3207 §4). */
  async startTls(): Promise<void> {
    const raw = this.#socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('error');
    raw.on('error', () => {});
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((ok, reject) => {
      secure.once('secureConnect', () => ok());
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#attach(secure);
    secure.on('close', () => this.#fail(new Closed('connection closed')));
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

// ---- the scenarios ----

interface Outgoing {
  readonly tag: string;
  readonly size: number;
  readonly recipients: number;
}

/** Reads the reply to an end of data and records the message's fate. */
async function endOfData(conn: Conn, m: Outgoing): Promise<void> {
  let r: string;
  try {
    r = await conn.reply();
  } catch (error) {
    fate(m.tag, m.size).unknown++;
    retries.push(m.tag);
    throw error;
  }
  const id = /^250 [\d.]+ OK queued as (\S+)/.exec(r)?.[1];
  if (id) fate(m.tag, m.size).acked.push(id);
  else {
    fate(m.tag, m.size).refused++;
    if (counts.refusedReplies.length < 20) counts.refusedReplies.push(`${m.tag}: ${r.trim()}`);
    throw new Error(`end of data refused: ${r.trim()}`);
  }
}

function envelope(m: Outgoing): string {
  let s = `MAIL FROM:<soak-${m.tag}@client.test>\r\n`;
  for (let i = 0; i < m.recipients; i++) s += `RCPT TO:<box${i}@soak.test>\r\n`;
  return s;
}

/** Lock-step: MAIL, each RCPT, DATA, the message; one reply at a time. */
async function lockStepData(conn: Conn, m: Outgoing): Promise<void> {
  await conn.write(`MAIL FROM:<soak-${m.tag}@client.test>\r\n`);
  await conn.expect('250', 'MAIL');
  for (let i = 0; i < m.recipients; i++) {
    await conn.write(`RCPT TO:<box${i}@soak.test>\r\n`);
    await conn.expect('250', 'RCPT');
  }
  await conn.write('DATA\r\n');
  await conn.expect('354', 'DATA');
  await conn.write(Buffer.concat([dotStuffed(messageFor(m.tag, m.size)), Buffer.from('.\r\n')]));
  await endOfData(conn, m);
}

/** MAIL, RCPTs and BDAT chunks in one pipelined write; the last chunk says LAST. */
async function bdat(conn: Conn, m: Outgoing, r: ReturnType<typeof chooser>): Promise<void> {
  const message = messageFor(m.tag, m.size);
  const chunks = r.int(1, 4);
  const parts: (string | Buffer)[] = [envelope(m)];
  let at = 0;
  for (let c = 0; c < chunks; c++) {
    const end = c === chunks - 1 ? message.length : Math.min(message.length, at + Math.floor(message.length / chunks));
    parts.push(`BDAT ${end - at}${c === chunks - 1 ? ' LAST' : ''}\r\n`, message.subarray(at, end));
    at = end;
  }
  await conn.write(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
  await conn.expect('250', 'MAIL');
  for (let i = 0; i < m.recipients; i++) await conn.expect('250', 'RCPT');
  for (let c = 0; c < chunks - 1; c++) await conn.expect('250', 'BDAT');
  await endOfData(conn, m);
}

async function hello(conn: Conn): Promise<string> {
  await conn.expect('220', 'greeting');
  await conn.write('EHLO soak.client.test\r\n');
  return conn.expect('250', 'EHLO');
}

type Scenario = 'new-connection' | 'reused' | 'pipelined' | 'bdat' | 'starttls' | 'vanish';
const SCENARIOS: [Scenario, number][] = [['new-connection', 25], ['reused', 20], ['pipelined', 20], ['bdat', 15], ['starttls', 14], ['vanish', 6]];

function pickScenario(r: ReturnType<typeof chooser>): Scenario {
  let x = r.random() * 100;
  for (const [name, weight] of SCENARIOS) {
    if (x < weight) return name;
    x -= weight;
  }
  return 'new-connection';
}

async function runScenario(conn: Conn, scenario: Scenario, batch: Outgoing[], r: ReturnType<typeof chooser>): Promise<void> {
  await hello(conn);
  switch (scenario) {
    case 'new-connection':
      await lockStepData(conn, batch[0]);
      break;
    case 'reused':
      for (const m of batch) {
        if (r.chance(0.3)) {
          await conn.write('RSET\r\n');
          await conn.expect('250', 'RSET');
        }
        await lockStepData(conn, m);
      }
      break;
    case 'pipelined': {
      // RFC 2920 §3.1: the next MAIL, RCPTs and DATA go out with the end of the message before.
      await conn.write(`${envelope(batch[0])}DATA\r\n`);
      for (let k = 0; k < batch.length; k++) {
        const m = batch[k];
        await conn.expect('250', 'MAIL');
        for (let i = 0; i < m.recipients; i++) await conn.expect('250', 'RCPT');
        await conn.expect('354', 'DATA');
        const next = batch[k + 1];
        await conn.write(Buffer.concat([dotStuffed(messageFor(m.tag, m.size)), Buffer.from(`.\r\n${next ? `${envelope(next)}DATA\r\n` : ''}`)]));
        await endOfData(conn, m);
      }
      break;
    }
    case 'bdat':
      for (const m of batch) await bdat(conn, m, r);
      break;
    case 'starttls':
      await conn.write('STARTTLS\r\n');
      await conn.expect('220', 'STARTTLS');
      await conn.startTls();
      await conn.write('EHLO soak.client.test\r\n');
      await conn.expect('250', 'EHLO after STARTTLS');
      for (const m of batch) {
        if (r.chance(0.5)) await bdat(conn, m, r);
        else await lockStepData(conn, m);
      }
      break;
    case 'vanish': {
      const m = batch[0];
      fate(m.tag, m.size).abandoned++;
      const message = messageFor(m.tag, m.size);
      const cut = r.int(0, message.length - 1);
      if (r.chance(0.5)) {
        await conn.write(`${envelope(m)}DATA\r\n`);
        for (let i = 0; i <= m.recipients; i++) await conn.reply();
        await conn.write(await conn.expect('354', 'DATA').then(() => dotStuffed(message.subarray(0, cut))));
      } else {
        await conn.write(Buffer.concat([Buffer.from(`${envelope(m)}BDAT ${message.length} LAST\r\n`), message.subarray(0, cut)]));
      }
      conn.destroy();
      return;
    }
  }
  await conn.write('QUIT\r\n');
  await conn.reply().catch(() => {});
  conn.destroy();
}

/** One client loop: scenario after scenario until `stop`, waiting out the server's restarts. */
async function client(index: number, stop: () => boolean): Promise<void> {
  const r = chooser(seededRandom(SEED ^ Math.imul(index + 1, 0x9e3779b1)));
  for (let n = 0; !stop(); n++) {
    const scenario = pickScenario(r);
    const count = scenario === 'new-connection' || scenario === 'vanish' ? 1 : r.int(2, 5);
    const batch: Outgoing[] = [];
    for (let k = 0; k < count; k++) {
      const again = scenario === 'vanish' ? undefined : retries.shift();
      if (again !== undefined) batch.push({ tag: again, size: fates.get(again)!.size, recipients: r.int(1, 3) });
      else batch.push({ tag: `c${index}-n${n}-${k}`, size: pickSize(r), recipients: r.int(1, 3) });
    }
    const server = current;
    if (server === null) {
      retries.unshift(...batch.filter((m) => fates.has(m.tag) && scenario !== 'vanish').map((m) => m.tag));
      await serverReady.promise;
      continue;
    }
    counts.scenario[scenario] = (counts.scenario[scenario] ?? 0) + 1;
    let conn: Conn | null = null;
    try {
      conn = await Conn.open(server.port, server.generation);
      await runScenario(conn, scenario, batch, r);
      counts.sessions++;
    } catch (error) {
      conn?.destroy();
      // Messages of this batch never finished (no 250, no refusal, no lost reply): send them again.
      for (const m of batch) {
        const f = fates.get(m.tag);
        if (scenario !== 'vanish' && (f === undefined || (f.acked.length === 0 && !retries.includes(m.tag)))) {
          fate(m.tag, m.size);
          retries.push(m.tag);
        }
      }
      const killed = current === null || current.generation !== server.generation;
      if (!killed && !(error instanceof Closed && scenario === 'vanish')) {
        counts.unexpected.push(`${scenario} ${batch.map((m) => m.tag).join(',')}: ${(error as Error).message}`);
        say(`unexpected: ${counts.unexpected.at(-1)}`);
      }
      if (current === null || killed) await serverReady.promise;
    }
  }
}

// ---- the check of the spool ----

interface Verdict {
  acknowledged: number;
  stored: number;
  lost: string[];
  damaged: string[];
  phantom: string[];
  duplicates: number;
  unexplainedDuplicates: string[];
  unknownReplies: number;
}

async function checkSpool(dataDir: string): Promise<Verdict> {
  const spool = await openSpool({ dir: dataDir, hostname: 'soak.check', now: Date.now, log: { info() {}, warn() {}, error() {} } });
  const v: Verdict = { acknowledged: 0, stored: 0, lost: [], damaged: spool.recovery.damaged.map((d) => `${d.file} at byte ${d.offset}: ${d.reason}`), phantom: [], duplicates: 0, unexplainedDuplicates: [], unknownReplies: 0 };
  try {
    const copies = new Map<string, string[]>();
    for (const info of spool.list()) {
      v.stored++;
      const bytes = Buffer.from(await spool.readMessage(info.id));
      const head = bytes.subarray(0, 8192).toString('latin1');
      const m = /\r\nX-Soak: (\S+) (\d+)\r\n/.exec(head);
      if (!m) {
        v.damaged.push(`${info.id}: no X-Soak header`);
        continue;
      }
      const expected = messageFor(m[1], Number(m[2]));
      const prefix = bytes.subarray(0, bytes.length - expected.length).toString('latin1');
      if (bytes.length < expected.length || !bytes.subarray(bytes.length - expected.length).equals(expected) || !prefix.startsWith('Received: ')) {
        v.damaged.push(`${info.id} (${m[1]}): the bytes differ from what was sent`);
      }
      copies.set(m[1], [...(copies.get(m[1]) ?? []), info.id]);
    }
    for (const [tag, f] of fates) {
      v.acknowledged += f.acked.length > 0 ? 1 : 0;
      v.unknownReplies += f.unknown;
      const ids = copies.get(tag) ?? [];
      for (const id of f.acked) if (!ids.includes(id)) v.lost.push(`${tag} (${id})`);
      if (ids.length > 0 && f.acked.length === 0 && f.unknown === 0) v.phantom.push(`${tag}: stored ${ids.length}x, never completed (refused ${f.refused}, abandoned ${f.abandoned})`);
      if (ids.length > 1) {
        v.duplicates += ids.length - 1;
        if (ids.length > f.acked.length + f.unknown || f.acked.length > 1) v.unexplainedDuplicates.push(`${tag}: ${ids.length} copies, ${f.acked.length} acknowledged, ${f.unknown} replies lost`);
      }
    }
    for (const tag of copies.keys()) if (!fates.has(tag)) v.phantom.push(`${tag}: stored but never sent`);
  } finally {
    await spool.close();
  }
  return v;
}

// ---- the fuzz runs ----

async function fuzz(file: string, envVar: string, cases: number): Promise<{ file: string; cases: number; ok: boolean; seconds: number; summary: string }> {
  const started = performance.now();
  say(`fuzz: ${envVar}=${cases} bun test ${file}`);
  const proc = Bun.spawn([process.execPath, 'test', file], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, [envVar]: String(cases) } });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  const text = `${out}\n${err}`;
  const summary = text.split('\n').filter((l) => /\(pass\)|\(fail\)|^\s*\d+ (pass|fail)|seed|case seed/.test(l)).slice(0, 12).join('\n');
  const result = { file, cases, ok: code === 0, seconds: Math.round((performance.now() - started) / 1000), summary };
  say(`fuzz ${file}: ${result.ok ? 'passed' : 'FAILED'} in ${result.seconds} s\n${summary}`);
  return result;
}

// ---- the run ----

const data = await mkdtemp(join(tmpdir(), 'mailbox-soak-'));
// Whatever ends this process (an error, a signal, the test runner giving up) ends serve too, and
// a run that did not reach its verdict leaves no data directory behind.
let finished = false;
process.on('exit', () => {
  current?.proc.kill('SIGKILL');
  if (!finished && !args.keep) rmSync(data, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(1));
say(`soak: ${MINUTES} min, ${CLIENTS} clients, SIGKILL every ~${KILL_EVERY_S} s, data ${data}`);
current = await startServe(data, 0);
serverReady.resolve();
say(`serve listening on ${HOST}:${current.port}, RSS ${restarts[0].rssMb} MB`);

const kr = chooser(seededRandom(SEED ^ 0x5eed));
const endAt = performance.now() + MINUTES * 60_000;
let stopping = false;
const loops = Array.from({ length: CLIENTS }, (_, i) => client(i, () => stopping));
let killCount = 0;
const rssSamples: number[] = [];
const sampler = setInterval(() => {
  if (current) rssSamples.push(statusKb(current.proc.pid, 'VmRSS'));
}, 1000);
while (KILL_EVERY_S > 0) {
  const delay = KILL_EVERY_S * 1000 * (0.5 + kr.random());
  if (performance.now() + delay >= endAt) break;
  await new Promise((wake) => setTimeout(wake, delay));
  await killAndRestart(data);
  killCount++;
}
await new Promise((wake) => setTimeout(wake, Math.max(0, endAt - performance.now())));
stopping = true;
say('load stopping: waiting for the sessions in flight');
await Promise.all(loops);
clearInterval(sampler);
const final = current!;
const endRssKb = statusKb(final.proc.pid, 'VmRSS');
peaks.push(statusKb(final.proc.pid, 'VmHWM'));
final.proc.kill('SIGTERM');
const exitCode = await final.proc.exited;

const verdict = await checkSpool(data);
const fuzzRuns: Awaited<ReturnType<typeof fuzz>>[] = [];
if (FUZZ_CASES > 0) fuzzRuns.push(await fuzz('tests/core/server-fuzz.test.ts', 'FUZZ_CASES', FUZZ_CASES));
if (CLIENT_FUZZ_CASES > 0) fuzzRuns.push(await fuzz('tests/core/client-fuzz.test.ts', 'CLIENT_FUZZ_CASES', CLIENT_FUZZ_CASES));
if (!args.keep) await rm(data, { recursive: true, force: true });
finished = true;

const result = {
  seed: SEED,
  minutes: MINUTES,
  kills: killCount,
  sessions: counts.sessions,
  connections: counts.connections,
  scenarios: counts.scenario,
  messages: fates.size,
  acknowledged: verdict.acknowledged,
  stored: verdict.stored,
  lost: verdict.lost.length,
  damaged: verdict.damaged.length + restarts.reduce((n, r) => n + r.damaged, 0),
  phantom: verdict.phantom.length,
  duplicates: verdict.duplicates,
  unexplainedDuplicates: verdict.unexplainedDuplicates.length,
  repliesLostToKills: verdict.unknownReplies,
  abandonedMidData: [...fates.values()].reduce((n, f) => n + f.abandoned, 0),
  refused: [...fates.values()].reduce((n, f) => n + f.refused, 0),
  unexpected: counts.unexpected.length,
  tornBytesCut: restarts.reduce((n, r) => n + r.tornBytes, 0),
  rssAfterRestartMb: restarts.map((r) => r.rssMb),
  peakRssMb: Math.max(...peaks.map(mb), ...rssSamples.map(mb)),
  endRssMb: mb(endRssKb),
  serveExit: exitCode,
  fuzz: fuzzRuns.map(({ summary: _, ...f }) => f),
};
for (const [label, list] of [['lost', verdict.lost], ['damaged', verdict.damaged], ['phantom', verdict.phantom], ['unexplained duplicate', verdict.unexplainedDuplicates], ['unexpected', counts.unexpected], ['refused', counts.refusedReplies]] as const) {
  for (const line of list.slice(0, 20)) say(`${label}: ${line}`);
}
const ok = result.lost === 0 && result.damaged === 0 && result.phantom === 0 && result.unexplainedDuplicates === 0 && result.unexpected === 0 && result.refused === 0 && exitCode === 0 && fuzzRuns.every((f) => f.ok);
say(`soak ${ok ? 'passed' : 'FAILED'}: ${killCount} kills, ${result.messages} messages, ${result.acknowledged} acknowledged, ${result.lost} lost, ${result.duplicates} duplicates (${result.repliesLostToKills} replies lost to kills), ${result.damaged} damaged, ${result.abandonedMidData} abandoned mid-DATA, largest RSS ${result.peakRssMb} MB, RSS at the end ${result.endRssMb} MB`);
console.log(`soak-result ${JSON.stringify(result)}`);
process.exit(ok ? 0 : 1);
