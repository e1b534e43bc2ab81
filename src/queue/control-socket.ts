/**
 * @module serve's control socket: how `mailbox queue` and the sendmail link reach a running serve.
 * A Unix socket in the data directory (owner-only, as the directory is), or, when that path is too
 * long for a socket address, in a private directory of the runtime directory (controlSocketPath).
 * Rule 1: one request per connection: a JSON line in, a JSON line out, then the server closes.
 * Rule 2: no answer at the path (no file, or nobody listening) means serve is not running; the
 *         caller then works on the spool under its lock, never both at once.
 */
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EXIT, SetupError } from '../exit-status.ts';
import type { Logger } from '../log.ts';
import { removeStaleUnixSocket } from '../transport/tcp-server.ts';

/** sun_path holds 108 bytes on Linux, the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES = 107;
/** A request larger than this is refused (a submitted message is base64 in it). */
const MAX_REQUEST_BYTES = 256 * 1024 * 1024;

/**
 * DATA_DIR/control.sock; when that does not fit a socket address,
 * $XDG_RUNTIME_DIR (else the temporary directory)/mailbox-UID/control-HASH.sock, HASH naming the
 * data directory.
 */
export function controlSocketPath(dataDir: string, env: Record<string, string | undefined>): string {
  const inData = join(resolve(dataDir), 'control.sock');
  if (Buffer.byteLength(inData) <= MAX_SOCKET_PATH_BYTES) return inData;
  const hash = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16);
  return join(privateRunDir(env), `control-${hash}.sock`);
}

function privateRunDir(env: Record<string, string | undefined>): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(env.XDG_RUNTIME_DIR || tmpdir(), `mailbox-${uid}`);
}

/** Creates the private directory of a socket outside the data directory, or checks that it is ours alone. */
function preparePrivateDir(path: string, dataDir: string): void {
  const dir = resolve(path, '..');
  if (dir === resolve(dataDir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new SetupError(`${dir} must be a directory of this user with no access for others (for the control socket)`, EXIT.noPerm);
  }
}

export type ControlResponse =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: string; readonly exit: number };

export type ControlHandler = (request: Record<string, unknown>) => Promise<ControlResponse>;

/** The serve side: a Service (drain, close) that answers requests with `handle`. */
export interface ControlSocket {
  readonly path: string;
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** Listens at `path` (a stale socket file left by a crash is removed first). */
export async function listenControlSocket(path: string, dataDir: string, handle: ControlHandler, log: Pick<Logger, 'warn' | 'error'>): Promise<ControlSocket> {
  preparePrivateDir(path, dataDir);
  await removeStaleUnixSocket(path);
  const open = new Set<Socket>();
  let busy = 0;
  let idle: (() => void) | null = null;
  const server: NetServer = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    const chunks: Buffer[] = [];
    let size = 0;
    socket.on('data', (chunk: Buffer) => {
      const nl = chunk.indexOf(10);
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        socket.end(`${JSON.stringify({ ok: false, error: 'the request is too large', exit: EXIT.dataErr })}\n`);
        return;
      }
      if (nl < 0) {
        chunks.push(chunk);
        return;
      }
      chunks.push(chunk.subarray(0, nl));
      socket.removeAllListeners('data');
      let request: Record<string, unknown>;
      try {
        request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'the request is not JSON', exit: EXIT.usage })}\n`);
        return;
      }
      busy++;
      handle(request)
        .catch((error: unknown): ControlResponse => {
          log.error('control-request-failed', { op: String(request.op), error: (error as Error).message });
          return { ok: false, error: (error as Error).message, exit: EXIT.software };
        })
        .then((response) => socket.end(`${JSON.stringify(response)}\n`))
        .finally(() => {
          busy--;
          if (busy === 0) idle?.();
        });
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  // The data directory is the owner's alone already; the socket says so itself too.
  chmodSync(path, 0o600);
  server.on('error', (error) => log.warn('control-socket-error', { error: error.message }));
  return {
    path,
    async drain() {
      server.close();
      if (busy > 0) await new Promise<void>((r) => (idle = r));
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The client side: sends one request and reads the answer; null when no serve listens at `path`.
 * A socket this user may not open is a SetupError (exit 77).
 */
export function requestControl(path: string, request: Record<string, unknown>, timeoutMs = 60_000): Promise<ControlResponse | null> {
  return new Promise((resolveRequest, reject) => {
    const socket = createConnection({ path });
    const chunks: Buffer[] = [];
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SetupError(`serve did not answer on its control socket ${path} within ${Math.round(timeoutMs / 1000)} s`, EXIT.tempFail));
    }, timeoutMs);
    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (error.code === 'ENOENT' || error.code === 'ECONNREFUSED' || error.code === 'ENOTDIR')) resolveRequest(null);
      else if (error.code === 'EACCES' || error.code === 'EPERM') reject(new SetupError(`cannot open serve's control socket ${path}: permission denied (run as the user serve runs as)`, EXIT.noPerm));
      else reject(new SetupError(`serve's control socket ${path}: ${error.message}`, EXIT.tempFail));
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (!connected) return;
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        resolveRequest(JSON.parse(text) as ControlResponse);
      } catch {
        reject(new SetupError(`serve closed its control socket ${path} without an answer`, EXIT.tempFail));
      }
    });
  });
}
