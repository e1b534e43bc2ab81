/**
 * @module Server-side STARTTLS (RFC 3207) on a Bun.listen socket.
 * Rule 1: Bun's socket.upgradeTLS() does not work on the server side (BUN.md §1: the ClientHello
 *         reaches the plaintext handler), so the ciphertext is bridged instead: every raw chunk
 *         from the Bun socket is pushed into a node:stream Duplex carrying a node:tls
 *         TLSSocket({isServer: true}), and what TLS writes goes back out through the Outbox.
 *         Plain listeners thus stay on Bun.listen; only STARTTLS'd connections pay for the bridge.
 * Rule 2: this is the only file that knows how; the listener sees receive, write, end, close.
 * Rule 3: Bun's write returns the bytes it took. While the Outbox holds a backlog, the Duplex's
 *         write callbacks wait for drain, so TLS stops producing and writes queue in the stream.
 * Rule 4: once closed (by the peer, by an error or by us) the bridge drops everything it is given.
 */
import { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { TlsInfo } from '../core/server-session.ts';
import { Outbox, type WritableSocket } from './outbox.ts';

/** The raw (Bun) socket as the bridge needs it. */
export interface RawSocket extends WritableSocket {
  end(): void;
}

export interface TlsBridgeEvents {
  /** The handshake is done. */
  secure(info: TlsInfo): void;
  /** Decrypted bytes from the client. */
  data(plaintext: Uint8Array): void;
  /** TLS failed (a bad handshake, a bad record) or the peer ended it; the raw socket is being closed. */
  ended(error: Error | null): void;
}

export class TlsBridge {
  readonly #raw: RawSocket;
  readonly #outbox: Outbox;
  readonly #duplex: Duplex;
  readonly #tls: TLSSocket;
  readonly #events: TlsBridgeEvents;
  /** Write callbacks of the Duplex held until the Outbox drains. */
  #waiting: (() => void)[] = [];
  /** TLS has finished writing (close_notify sent): end the raw socket once the Outbox is empty. */
  #rawEnding = false;
  #secure = false;
  /** The raw socket is gone; nothing more goes out. */
  #rawGone = false;
  #closed = false;

  /**
   * Starts the server side of a TLS handshake over `raw`. Call it right after the 220 reply to
   * STARTTLS was handed to `outbox`; any bytes received before that belong to plaintext and are
   * not passed in (RFC 3207 §4.2).
   */
  constructor(raw: RawSocket, outbox: Outbox, context: SecureContext, events: TlsBridgeEvents) {
    this.#raw = raw;
    this.#outbox = outbox;
    this.#events = events;
    this.#duplex = new Duplex({
      read() {},
      write: (chunk: Buffer, _encoding, done) => this.#send(chunk, done),
      final: (done) => {
        this.#rawEnding = true;
        this.#endRawIfFlushed();
        done();
      },
    });
    this.#tls = new TLSSocket(this.#duplex as never, { isServer: true, secureContext: context });
    this.#tls.on('secure', () => {
      if (this.#closed) return;
      this.#secure = true;
      this.#events.secure({ protocol: this.#tls.getProtocol() ?? 'TLS', cipher: this.#tls.getCipher()?.name ?? 'unknown' });
    });
    this.#tls.on('data', (chunk: Buffer) => {
      if (!this.#closed) this.#events.data(chunk);
    });
    this.#tls.on('error', (error: Error) => this.#finish(error));
    // The client's close_notify or EOF inside TLS: the session is over.
    this.#tls.on('end', () => this.#finish(null));
    this.#tls.on('close', () => this.#finish(null));
  }

  /** True once the handshake has completed. */
  get secure(): boolean {
    return this.#secure;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Ciphertext from the raw socket. */
  receive(bytes: Uint8Array): void {
    if (this.#closed || this.#rawGone) return;
    // A copy: the stream may hold it past the callback that lent it.
    this.#duplex.push(Buffer.from(bytes));
  }

  /** Plaintext for the client, encrypted and sent in order. */
  write(data: string | Uint8Array): void {
    if (this.#closed || data.length === 0) return;
    this.#tls.write(data);
  }

  /** Sends close_notify after what was written, then ends the raw socket. */
  end(): void {
    if (this.#closed) return;
    this.#tls.end();
  }

  /** The raw socket can take more: flush the Outbox, then let TLS write again. */
  drain(): void {
    this.#outbox.flush(this.#raw);
    if (this.#outbox.backlogged) return;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const done of waiting) done();
    this.#endRawIfFlushed();
  }

  /** The raw socket is gone: the streams are torn down without writing anything. */
  rawClosed(): void {
    if (this.#closed || this.#rawGone) return;
    this.#rawGone = true;
    this.#waiting = [];
    this.#duplex.push(null);
    // After a bad record TLS sends its alert, ends the stream (so the raw socket closes) and
    // only then, a tick later, reports the error: wait for it, so that it reaches ended().
    setImmediate(() => this.#finish(null));
  }

  #send(chunk: Buffer, done: () => void): void {
    if (this.#closed || this.#rawGone) return done();
    this.#outbox.send(this.#raw, chunk);
    if (this.#outbox.backlogged) this.#waiting.push(done);
    else done();
  }

  #endRawIfFlushed(): void {
    if (this.#rawEnding && !this.#outbox.backlogged) this.#raw.end();
  }

  #finish(error: Error | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiting = [];
    this.#tls.destroy();
    this.#duplex.destroy();
    // A failed handshake or record: nothing more can be said in TLS, so the raw socket ends now;
    // a clean end waits for what is still queued (our close_notify) to go out.
    this.#rawEnding = true;
    if (!this.#rawGone) {
      if (error) this.#raw.end();
      else this.#endRawIfFlushed();
    }
    this.#events.ended(error);
  }
}
