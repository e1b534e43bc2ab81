/**
 * @module Connection caps shared by every listener of one server: overall and per client address.
 * Rule 1: admit() and release() come in pairs per accepted connection; a refused one holds nothing.
 * Rule 2: exempt addresses (trusted networks, like Postfix's smtpd_client_event_limit_exceptions)
 *         skip the per-address cap, never the overall one.
 */
import { replies } from '../core/replies.ts';
import type { Reply } from '../core/reply.ts';

export interface ConnectionLimitsOptions {
  readonly maxConnections: number;
  readonly maxPerAddress: number;
  /** Addresses the per-address cap does not apply to. */
  readonly exempt: (address: string) => boolean;
}

export class ConnectionLimits {
  readonly #options: ConnectionLimitsOptions;
  readonly #perAddress = new Map<string, number>();
  #total = 0;

  constructor(options: ConnectionLimitsOptions) {
    this.#options = options;
  }

  get total(): number {
    return this.#total;
  }

  /** Counts the connection in and returns null, or returns the 421 that refuses it. */
  admit(address: string): Reply | null {
    if (this.#total >= this.#options.maxConnections) return replies.tooManyConnections();
    const count = this.#perAddress.get(address) ?? 0;
    if (count >= this.#options.maxPerAddress && !this.#options.exempt(address)) return replies.tooManyFromYou();
    this.#total++;
    this.#perAddress.set(address, count + 1);
    return null;
  }

  /** Counts out a connection that admit() let in. */
  release(address: string): void {
    const count = this.#perAddress.get(address);
    if (count === undefined) return;
    this.#total--;
    if (count <= 1) this.#perAddress.delete(address);
    else this.#perAddress.set(address, count - 1);
  }
}
