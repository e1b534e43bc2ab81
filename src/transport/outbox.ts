/**
 * @module Outbox: what one turn of a session writes, as few writes as possible.
 * Rule: Bun's sockets do not buffer; `write` returns the bytes taken. What was not taken
 * waits here, in order, and goes out on `drain`.
 */

export interface WritableSocket {
  write(data: string | Uint8Array): number;
}

const ENCODER = new TextEncoder();
const NON_ASCII = /[^\x00-\x7f]/;

export class Outbox {
  #queue: Uint8Array[] = [];

  /** True while earlier bytes still wait for drain. */
  get backlogged(): boolean {
    return this.#queue.length > 0;
  }

  /** Writes now what the socket takes, queues the rest. */
  send(socket: WritableSocket, data: string | Uint8Array): void {
    if (data.length === 0) return;
    if (this.#queue.length > 0) {
      this.#queue.push(typeof data === 'string' ? ENCODER.encode(data) : data);
      return;
    }
    const written = socket.write(data);
    // Replies are nearly always ASCII, so string length equals byte length and nothing is left.
    if (written === data.length && (typeof data !== 'string' || !NON_ASCII.test(data))) return;
    const bytes = typeof data === 'string' ? ENCODER.encode(data) : data;
    if (written < bytes.length) this.#queue.push(bytes.subarray(Math.max(0, written)));
  }

  /** Called on drain: writes queued bytes until the socket stops taking them. */
  flush(socket: WritableSocket): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0];
      const written = socket.write(head);
      if (written >= head.length) {
        this.#queue.shift();
        continue;
      }
      this.#queue[0] = head.subarray(Math.max(0, written));
      return;
    }
  }
}
