/**
 * @module SMTP listener adapter: sockets in, ServerSession steps out.
 * Rule 1: this file owns the sockets and the session timers; the core owns the protocol.
 * Rule 2: plain listeners use Bun.listen (measured faster and half the memory per connection
 *         of node:net, BUN.md §2); STARTTLS needs node:net and lives in starttls.ts alone.
 */
import type { CommitOutcome, ServerSession, SessionEvent, Step } from '../core/server-session.ts';
import { Outbox } from './outbox.ts';

export interface ClientInfo {
  readonly address: string;
  readonly port: number;
  /** The listener that accepted the connection, as "host:port". */
  readonly listener: string;
}

/** One accepted connection as the host sees it. */
export interface Connection {
  readonly id: number;
  readonly client: ClientInfo;
  /** Hands the spool's verdict on a 'message' event back to the session. */
  resolve(requestId: number, outcome: CommitOutcome): void;
}

/** What the serve command supplies: sessions for new clients and a home for their events. */
export interface SessionHost {
  openSession(client: ClientInfo, now: number): ServerSession;
  handleEvents(conn: Connection, events: readonly SessionEvent[]): void;
  /** A bug inside the session or the host; the connection gets 421 and is closed. */
  internalError(conn: Connection, error: unknown): void;
  closed?(conn: Connection): void;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  /** Stops accepting; open sessions go on until they end or shutdown() closes them. */
  stopAccepting(): void;
  /** Asks every session to end: idle ones at once, others after their transaction. */
  shutdown(): void;
  /** Closes every connection now. */
  closeAll(): void;
  readonly connections: number;
}

interface SocketData {
  conn: ConnectionState | null;
}

interface ConnectionState extends Connection {
  readonly session: ServerSession;
  readonly outbox: Outbox;
  closing: boolean;
}

const INTERNAL_ERROR = '421 4.3.0 Internal error, closing connection; try again later\r\n';

/** Starts an SMTP listener on host:port with Bun.listen. Port 0 picks a free port. */
export function listenSmtp(
  host: string,
  port: number,
  sessions: SessionHost,
  options: { now: () => number; tickMs?: number },
): Listener {
  const live = new Set<Bun.Socket<SocketData>>();
  let nextId = 1;
  let stopped = false;
  const label = () => `${host}:${server.port}`;

  function apply(socket: Bun.Socket<SocketData>, state: ConnectionState, step: Step): void {
    if (step.out.length > 0) state.outbox.send(socket, step.out);
    if (step.events.length > 0) {
      try {
        sessions.handleEvents(state, step.events);
      } catch (error) {
        fail(socket, state, error);
        return;
      }
    }
    if (step.close && !state.closing) {
      state.closing = true;
      if (!state.outbox.backlogged) socket.end();
    }
  }

  function fail(socket: Bun.Socket<SocketData>, state: ConnectionState, error: unknown): void {
    sessions.internalError(state, error);
    if (state.closing) return;
    state.closing = true;
    state.outbox.send(socket, INTERNAL_ERROR);
    if (!state.outbox.backlogged) socket.end();
  }

  function guarded(socket: Bun.Socket<SocketData>, run: (state: ConnectionState) => Step): void {
    const state = socket.data.conn;
    if (!state || state.closing) return;
    let step: Step;
    try {
      step = run(state);
    } catch (error) {
      fail(socket, state, error);
      return;
    }
    apply(socket, state, step);
  }

  const server = Bun.listen<SocketData>({
    hostname: host,
    port,
    data: { conn: null },
    socket: {
      open(socket) {
        socket.data = { conn: null };
        if (stopped) {
          socket.end();
          return;
        }
        live.add(socket);
        const client: ClientInfo = { address: socket.remoteAddress, port: socket.remotePort ?? 0, listener: label() };
        const id = nextId++;
        let session: ServerSession;
        try {
          session = sessions.openSession(client, options.now());
        } catch (error) {
          sessions.internalError({ id, client, resolve() {} }, error);
          socket.write(INTERNAL_ERROR);
          socket.end();
          return;
        }
        const state: ConnectionState = {
          id,
          client,
          session,
          outbox: new Outbox(),
          closing: false,
          resolve(requestId, outcome) {
            guarded(socket, (s) => s.session.resolve(requestId, outcome, options.now()));
          },
        };
        socket.data.conn = state;
        guarded(socket, (s) => s.session.greet(options.now()));
      },
      data(socket, bytes) {
        guarded(socket, (s) => s.session.receive(bytes, options.now()));
      },
      drain(socket) {
        const state = socket.data.conn;
        if (!state) return;
        state.outbox.flush(socket);
        if (state.closing && !state.outbox.backlogged) socket.end();
      },
      close(socket) {
        live.delete(socket);
        const state = socket.data.conn;
        if (state) {
          state.closing = true;
          sessions.closed?.(state);
        }
      },
      error(socket) {
        live.delete(socket);
      },
    },
  });

  // One coarse timer for every session's idle and data timeouts.
  const timer = setInterval(() => {
    const now = options.now();
    for (const socket of live) {
      const state = socket.data.conn;
      if (state && !state.closing && now >= state.session.deadline) guarded(socket, (s) => s.session.tick(now));
    }
  }, options.tickMs ?? 1000);
  timer.unref?.();

  return {
    host,
    get port() {
      return server.port;
    },
    get connections() {
      return live.size;
    },
    stopAccepting() {
      if (stopped) return;
      stopped = true;
      server.stop(false);
    },
    shutdown() {
      for (const socket of live) guarded(socket, (s) => s.session.shutdown());
    },
    closeAll() {
      clearInterval(timer);
      for (const socket of live) socket.end();
      live.clear();
      server.stop(true);
    },
  };
}

/** Parses "host:port", "[v6]:port" or ":port"; returns null when it is not one. */
export function parseHostPort(text: string, defaultHost = '127.0.0.1'): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] || defaultHost), port };
}
