/**
 * @module Failed-authentication throttle per client address (a brute-force brake).
 * Rule 1: after `maxFailures` failures within `windowMs`, the address is refused (454 4.7.0)
 *         without checking any password until `lockMs` after its last failure.
 * Rule 2: pure: the time is passed in; memory is bounded by `maxTracked` addresses (the least
 *         recently failing are forgotten first).
 */

export interface ThrottleOptions {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly lockMs: number;
  readonly maxTracked: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = Object.freeze({
  maxFailures: 5,
  windowMs: 10 * 60_000,
  lockMs: 10 * 60_000,
  maxTracked: 10_000,
});

interface Record {
  failures: number[];
  lockedUntil: number;
}

export class AuthThrottle {
  readonly #options: ThrottleOptions;
  readonly #byAddress = new Map<string, Record>();

  constructor(options: ThrottleOptions = DEFAULT_THROTTLE) {
    this.#options = options;
  }

  /** True while the address must not try again. */
  locked(address: string, now: number): boolean {
    const r = this.#byAddress.get(address);
    return r !== undefined && now < r.lockedUntil;
  }

  /** Records a failure; returns true when it locks the address. */
  failed(address: string, now: number): boolean {
    const { maxFailures, windowMs, lockMs, maxTracked } = this.#options;
    const r = this.#byAddress.get(address) ?? { failures: [], lockedUntil: 0 };
    this.#byAddress.delete(address);
    r.failures = r.failures.filter((t) => now - t < windowMs);
    r.failures.push(now);
    const locks = r.failures.length >= maxFailures;
    if (locks) r.lockedUntil = now + lockMs;
    this.#byAddress.set(address, r);
    while (this.#byAddress.size > maxTracked) {
      const oldest = this.#byAddress.keys().next().value;
      if (oldest === undefined) break;
      this.#byAddress.delete(oldest);
    }
    return locks;
  }

  get tracked(): number {
    return this.#byAddress.size;
  }
}
