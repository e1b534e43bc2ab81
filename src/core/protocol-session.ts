/**
 * @module The contract between a pure server session (SMTP today, POP3 and IMAP next) and the
 * listener that drives it (transport/tcp-server.ts).
 * Rule 1: the session owns its framing. The listener hands over bytes as they arrive and writes
 *         what a step gives back, text or bytes (an IMAP literal, a POP3 RETR body), unchanged.
 * Rule 2: the session never waits. Whatever needs the world is an event in a step; the host
 *         answers it later through a call on the session, whose step the listener carries out.
 */

/** The TLS session in force on a connection. */
export interface TlsInfo {
  readonly protocol: string;
  readonly cipher: string;
}

/**
 * What the listener must do after a call: wait `delayMs` if set, write `out`, hand `events` to
 * the host, then close if asked, or start the TLS handshake if asked (and call tlsStarted()).
 */
export interface ProtocolStep<Event> {
  /** Text is written as UTF-8; bytes as they are. */
  readonly out: string | Uint8Array;
  readonly events: readonly Event[];
  readonly close: boolean;
  readonly startTls: boolean;
  /** A pause before `out` is written: the growing delay after repeated errors. */
  readonly delayMs: number;
}

/** One server session of a line-and-literal protocol, driven by a listener. */
export interface ProtocolSession<Event> {
  /** The time at which tick() will time the session out, or Infinity while the host is busy. */
  readonly deadline: number;
  /** The server speaks first (a greeting), after the handshake on an implicit-TLS listener. */
  greet(now: number): ProtocolStep<Event>;
  /** Bytes from the client, split anywhere; the session frames them. */
  receive(bytes: Uint8Array, now: number): ProtocolStep<Event>;
  /** Called once `now` has reached `deadline`, and then at every tick until it moves. */
  tick(now: number): ProtocolStep<Event>;
  /** The handshake that a step's `startTls` asked for is done. */
  tlsStarted(info: TlsInfo, now: number): ProtocolStep<Event>;
  /** The server is stopping: end now if idle, else after the exchange under way. */
  shutdown(): ProtocolStep<Event>;
  /**
   * The connection is gone (the client left, or the server closed it). Only the events of this
   * step are used (POP3 gives its maildrop lock back, RFC 1939 §6); nothing can be written.
   */
  peerClosed?(): ProtocolStep<Event>;
}
