/**
 * End-to-end harness: runs the compiled `dist/mailbox serve` on an ephemeral loopback port with a
 * temporary data directory, and talks to it with raw sockets, Python and swaks.
 * Rules: every process started here is awaited (`proc.exited`) when stopped, so none is left a
 * zombie (BUN.md §7); every temporary directory lives under os.tmpdir() and is removed by cleanup().
 */
import { afterAll, expect } from 'bun:test';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Subprocess } from 'bun';
import { findFreePort, isCompleteReply, openSocket, waitForGreeting } from '../helpers/ports.ts';

export const REPO_ROOT = resolve(import.meta.dir, '../..');
/** The binary under test; MAILBOX_BIN overrides it (e.g. to test an installed copy). */
export const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(REPO_ROOT, 'dist/mailbox');
export const SYSTEM_PYTHON = process.env.SYSTEM_PYTHON ?? '/usr/bin/python3';

export interface ExitStatus {
  exitCode: number | null;
  signalCode: string | null;
}

export interface TempDir {
  path: string;
  remove(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A fresh directory under os.tmpdir(); remove() deletes it with its contents. Mode 0755, so peers
 * that drop privileges (smtp-sink as nobody, Postfix as postfix) can reach files inside it.
 */
export async function makeTempDir(prefix = 'mailbox-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  await chmod(path, 0o755);
  const remove = () => rm(path, { recursive: true, force: true });
  return { path, remove, [Symbol.asyncDispose]: remove };
}

export interface StartServeOptions {
  /** Extra arguments after `serve --listen 127.0.0.1:PORT --data DIR`. */
  args?: string[];
  /** Use this data directory (kept afterwards: the caller owns it); default: a fresh temp dir. */
  dataDir?: string;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string;
  /** Extra environment variables for the server. */
  env?: Record<string, string>;
  /** How long to wait for the 220 greeting (default 15 s). */
  greetingTimeoutMs?: number;
  /** A command the server runs under, e.g. setpriv to drop privileges; default none. */
  wrapper?: string[];
  /** The binary to run instead of MAILBOX_BIN (e.g. a copy an unprivileged user can reach). */
  bin?: string;
  /** The server's working directory (default this process's). */
  cwd?: string;
}

export interface ServeHandle {
  host: string;
  port: number;
  dataDir: string;
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Sends `signal` (default SIGTERM), SIGKILLs after `graceMs` (default 5 s), awaits the exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitStatus>;
  /** SIGKILL and await the exit; the data directory is kept for a restart. */
  kill9(): Promise<ExitStatus>;
  /** stdout and stderr so far, interleaved in arrival order. */
  logs(): string;
  /** Stops the server if it still runs and removes the data directory if the harness made it. */
  cleanup(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Servers started by this module and not yet cleaned up; the exit hook kills any left. */
const live = new Set<ServeHandle>();

process.on('exit', () => {
  for (const handle of live) handle.proc.kill('SIGKILL');
});

/**
 * Starts `dist/mailbox serve` on a free port and resolves once it greets with 220.
 * Registers an afterAll hook in the calling test file that cleans it up, so a test that fails
 * half-way still leaves no process or directory behind.
 */
export async function startServe(options: StartServeOptions = {}): Promise<ServeHandle> {
  const bin = options.bin ?? MAILBOX_BIN;
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run npm run build (bash scripts/bun scripts/build.ts) first`);
  }
  const host = options.host ?? '127.0.0.1';
  const ownedDir = options.dataDir === undefined ? await makeTempDir('mailbox-e2e-') : undefined;
  const dataDir = options.dataDir ?? ownedDir!.path;
  let lastError: unknown;
  // The port is free when picked but may be taken before the server binds it; retry that race.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await findFreePort(host);
    const handle = spawnServe(host, port, dataDir, options, ownedDir);
    try {
      await waitForGreeting(host, port, {
        timeoutMs: options.greetingTimeoutMs ?? 15_000,
        abort: () => (handle.proc.exitCode !== null || handle.proc.signalCode !== null
          ? `mailbox serve exited (${handle.proc.exitCode ?? handle.proc.signalCode})`
          : undefined),
      });
      return handle;
    } catch (err) {
      lastError = err;
      await handle.stop('SIGKILL');
      live.delete(handle);
      if (!/EADDRINUSE|address already in use/i.test(handle.logs())) break;
    }
  }
  await ownedDir?.remove();
  const message = lastError instanceof Error ? lastError.message : String(lastError);
  throw new Error(`mailbox serve did not start: ${message}`);
}

function spawnServe(host: string, port: number, dataDir: string, options: StartServeOptions, ownedDir?: TempDir): ServeHandle {
  // POP3, IMAP and HTTP are on by default at 127.0.0.1:1110, :1143 and :8025, which servers run at once would share: off unless asked for.
  const pop3 = (options.args ?? []).includes('--pop3') ? [] : ['--pop3', 'off'];
  const imap = (options.args ?? []).includes('--imap') ? [] : ['--imap', 'off'];
  const http = (options.args ?? []).includes('--http') ? [] : ['--http', 'off'];
  const argv = [...(options.wrapper ?? []), options.bin ?? MAILBOX_BIN, 'serve', '--listen', `${host}:${port}`, '--data', dataDir, ...pop3, ...imap, ...http, ...(options.args ?? [])];
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, ...options.env },
  });
  const chunks: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) chunks.push(decoder.decode(chunk, { stream: true }));
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]).catch(() => {});
  const status = (): ExitStatus => ({ exitCode: proc.exitCode, signalCode: proc.signalCode === null ? null : String(proc.signalCode) });
  const waitExit = async () => {
    await proc.exited;
    await drained;
    return status();
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<ExitStatus> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      try {
        await proc.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return waitExit();
  };
  const handle: ServeHandle = {
    host,
    port,
    dataDir,
    proc,
    stop,
    kill9: () => stop('SIGKILL'),
    logs: () => chunks.join(''),
    cleanup: async () => {
      await stop();
      live.delete(handle);
      await ownedDir?.remove();
    },
    [Symbol.asyncDispose]: () => handle.cleanup(),
  };
  live.add(handle);
  return handle;
}

/** Cleans up every server this module started and has not cleaned yet. */
export async function stopAllServes(): Promise<void> {
  await Promise.all([...live].map((handle) => handle.cleanup()));
}

/** Registers `afterAll(stopAllServes)` in the calling test file. */
export function cleanupServesAfterAll(): void {
  afterAll(stopAllServes);
}

/**
 * Waits until the server's log matches `pattern` (or `timeoutMs` passes) and returns the log.
 * serve writes its log lines once per event-loop turn, often after the reply that caused them is
 * on the wire, and this process reads the pipe in its own time: a line can trail the reply a
 * client has already seen, so a test that checks the log right after a dialogue waits for it.
 */
export async function waitForLog(server: ServeHandle, pattern: string | RegExp, timeoutMs = 30_000): Promise<string> {
  const found = () => (typeof pattern === 'string' ? server.logs().includes(pattern) : pattern.test(server.logs()));
  const deadline = Date.now() + timeoutMs;
  while (!found() && Date.now() < deadline) await Bun.sleep(10);
  return server.logs();
}

/** What a serve started with `--log json` bound, by protocol (smtp, smtps, pop3, pop3s, imap, imaps): its listening line. */
export async function listeningAddresses(server: ServeHandle): Promise<Record<string, string[]>> {
  const line = (await waitForLog(server, '"event":"listening"')).split('\n').find((l) => l.includes('"event":"listening"'));
  if (line === undefined) throw new Error('serve logged no listening line');
  return JSON.parse(line) as Record<string, string[]>;
}

/** The port of a "host:port" address from the listening line. */
export function portOf(address: string): number {
  return Number(address.split(':').at(-1));
}

/** Sends `message` to `server` over SMTP with Python's smtplib; every recipient must be accepted. */
export async function sendWithSmtplib(server: ServeHandle, sender: string, recipients: string[], message: string): Promise<void> {
  const r = await runPython(
    `import smtplib, sys, json
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    print(json.dumps(s.sendmail(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4].encode())))`,
    [String(server.port), sender, JSON.stringify(recipients), message],
  );
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('{}');
}

/** One step of a raw dialogue: bytes sent verbatim, then `replies` complete replies read (default 1). */
export type DialogueStep = string | Uint8Array | { send: string | Uint8Array; replies?: number };

export interface DialogueResult {
  greeting: string;
  /** One entry per step: the replies read after it, joined; null if none came before the timeout or close. */
  replies: (string | null)[];
  /** `S: ` / `C: ` transcript, for failure messages. */
  transcript: string;
  /** True if the server closed the connection during the dialogue. */
  closed: boolean;
}

/**
 * Connects, reads the greeting, then sends each step's bytes exactly as given (add CRLF
 * yourself) and collects replies. It never adds, strips or re-encodes bytes, so tests can send
 * bare LF, bare CR, pipelined commands or a half-written line.
 */
export async function smtpDialogue(
  host: string,
  port: number,
  steps: DialogueStep[],
  options: { replyTimeoutMs?: number } = {},
): Promise<DialogueResult> {
  // Generous: a reply that comes is read at once, and a loaded machine can be slow to send one.
  const replyTimeoutMs = options.replyTimeoutMs ?? 15_000;
  const socket = await openSocket(host, port);
  let buffer = '';
  let closed = false;
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    wake?.();
  });
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  socket.on('error', () => {});
  const transcript: string[] = [];

  const takeReply = (): string | undefined => {
    let end = 0;
    while (end < buffer.length) {
      const eol = buffer.indexOf('\r\n', end);
      if (eol < 0) return undefined;
      const candidate = buffer.slice(0, eol + 2);
      end = eol + 2;
      if (isCompleteReply(candidate)) {
        buffer = buffer.slice(end);
        return candidate;
      }
    }
    return undefined;
  };
  const readReply = async (): Promise<string | null> => {
    const deadline = Date.now() + replyTimeoutMs;
    for (;;) {
      const reply = takeReply();
      if (reply !== undefined) {
        for (const line of reply.slice(0, -2).split('\r\n')) transcript.push(`S: ${line}`);
        return reply;
      }
      const left = deadline - Date.now();
      if (closed || left <= 0) return null;
      await new Promise<void>((wakeUp) => {
        const timer = setTimeout(wakeUp, left);
        wake = () => {
          clearTimeout(timer);
          wakeUp();
        };
      });
      wake = undefined;
    }
  };

  try {
    const greeting = (await readReply()) ?? '';
    const replies: (string | null)[] = [];
    for (const step of steps) {
      const { send, replies: count = 1 } = typeof step === 'object' && !(step instanceof Uint8Array) ? step : { send: step };
      const bytes = typeof send === 'string' ? Buffer.from(send, 'latin1') : send;
      transcript.push(`C: ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}`);
      if (!closed) socket.write(bytes);
      const got: string[] = [];
      for (let i = 0; i < count; i++) {
        const reply = await readReply();
        if (reply === null) break;
        got.push(reply);
      }
      replies.push(count === 0 ? '' : got.length === 0 ? null : got.join(''));
    }
    return { greeting, replies, transcript: transcript.join('\n'), closed };
  } finally {
    socket.destroy();
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the process after this long (default 30 s); the result then has code 124. */
  timeoutMs?: number;
  stdin?: string | Uint8Array;
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs a command to completion and collects its output; never throws for a non-zero exit. */
export async function runCommand(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const proc = Bun.spawn(argv, {
    stdin: options.stdin === undefined
      ? 'ignore'
      : typeof options.stdin === 'string' ? new TextEncoder().encode(options.stdin) : options.stdin,
    stdout: 'pipe',
    stderr: 'pipe',
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, options.timeoutMs ?? 30_000);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  clearTimeout(timer);
  return { code: timedOut ? 124 : code, stdout, stderr };
}

/** Runs `code` with Debian's python3 (it has smtplib and aiosmtpd); `args` become sys.argv[1:]. */
export function runPython(code: string, args: string[] = [], options: RunOptions = {}): Promise<RunResult> {
  return runCommand([SYSTEM_PYTHON, '-c', code, ...args], options);
}

/** Runs swaks with `args` (e.g. ['--server', '127.0.0.1:2525', '--to', 'a@b.test']). */
export function runSwaks(args: string[], options: RunOptions = {}): Promise<RunResult> {
  return runCommand(['swaks', ...args], options);
}

/**
 * fetchmail fetching every message of `user` (any password: catch-all mode) over POP3 or IMAP
 * into an MDA that appends to a file; resolves to that file's text. fetchmail adds its own
 * Received line and hands the MDA LF line ends.
 */
export async function fetchmailAll(protocol: 'pop3' | 'imap', port: number, user: string): Promise<string> {
  await using home = await makeTempDir();
  const mbox = join(home.path, 'mbox');
  const rc = join(home.path, 'fetchmailrc');
  await writeFile(
    rc,
    [
      'set no syslog',
      `poll 127.0.0.1 protocol ${protocol} port ${port} no dns auth password`,
      `  user "${user}" there with password "x" is "${process.env.USER ?? 'root'}" here`,
      "  options fetchall sslproto ''",
      `  mda "/bin/sh -c 'cat >> ${mbox}'"`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const r = await runCommand(['fetchmail', '-f', rc, '--nodetach', '--nosyslog'], { env: { HOME: home.path, FETCHMAILHOME: home.path }, timeoutMs: 60_000 });
  expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 });
  // Read before the directory goes (await using removes it as the function returns).
  return await readFile(mbox, 'utf8');
}
