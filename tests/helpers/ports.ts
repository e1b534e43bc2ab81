/**
 * Loopback ports for tests: pick a free ephemeral one, and wait until an SMTP server greets on one.
 * Rule: no test uses a fixed port; the kernel picks one (bind to port 0), we read it and release it.
 */
import { connect, createServer, type Socket } from 'node:net';

/** Asks the kernel for a free TCP port on `host` (bind :0, read, close). */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`cannot read the port bound on ${host}`));
        return;
      }
      server.close(() => resolvePort(address.port));
    });
  });
}

/**
 * True when `text` ends with a complete SMTP reply: its last line is `NNN ` or a bare `NNN`
 * followed by CRLF (RFC 5321 §4.2.1: every line but the last has a hyphen after the code).
 */
export function isCompleteReply(text: string): boolean {
  if (!text.endsWith('\r\n')) return false;
  const lines = text.slice(0, -2).split('\r\n');
  const last = lines[lines.length - 1] ?? '';
  return /^\d{3}(?: |$)/.test(last);
}

/**
 * Opens a TCP connection, rejecting after `timeoutMs`. A loopback connect is answered at once,
 * accepted or refused; the default deadline is long only so that a loaded machine is no failure.
 */
export function openSocket(host: string, port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolveSocket, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolveSocket(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/**
 * Connects once, reads the first complete reply (the greeting), says QUIT and closes.
 * Resolves with the greeting text (CRLFs kept); rejects on refusal, early close or timeout.
 */
export async function readGreeting(host: string, port: number, timeoutMs = 2000): Promise<string> {
  const socket = await openSocket(host, port, timeoutMs);
  return new Promise((resolveGreeting, reject) => {
    let text = '';
    const finish = (err: Error | null) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      if (err) {
        socket.destroy();
        reject(err);
        return;
      }
      socket.on('error', () => {});
      socket.end('QUIT\r\n');
      setTimeout(() => socket.destroy(), 200).unref();
      resolveGreeting(text);
    };
    const timer = setTimeout(
      () => finish(new Error(`no greeting from ${host}:${port} within ${timeoutMs} ms (got ${JSON.stringify(text)})`)),
      timeoutMs,
    );
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (isCompleteReply(text)) finish(null);
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error(`${host}:${port} closed before a complete greeting (got ${JSON.stringify(text)})`)));
  });
}

export interface WaitForGreetingOptions {
  /** Overall deadline (default 15 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** Return a reason to stop waiting early, e.g. "process exited with 1". */
  abort?: () => string | undefined;
}

/**
 * Polls until `host:port` answers with a 220 greeting; resolves with that greeting.
 * A 554 greeting (RFC 5321 §3.1: "no SMTP service here") or any other code rejects at once.
 */
export async function waitForGreeting(host: string, port: number, options: WaitForGreetingOptions = {}): Promise<string> {
  const { timeoutMs = 15_000, intervalMs = 50, abort } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no attempt made';
  while (Date.now() < deadline) {
    const reason = abort?.();
    if (reason !== undefined) throw new Error(`gave up waiting for a greeting on ${host}:${port}: ${reason}`);
    try {
      const greeting = await readGreeting(host, port, Math.min(2000, Math.max(100, deadline - Date.now())));
      if (greeting.startsWith('220')) return greeting;
      throw new Error(`${host}:${port} greeted with ${JSON.stringify(greeting.trimEnd())}, not 220`);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message.includes('not 220')) throw err;
      lastError = message;
    }
    await Bun.sleep(intervalMs);
  }
  throw new Error(`no 220 greeting on ${host}:${port} within ${timeoutMs} ms (last error: ${lastError})`);
}
