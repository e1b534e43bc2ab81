/**
 * @module HTTP Basic (RFC 7617) against the one users file, through SMTP AUTH's authenticator and
 * throttle. A verified name and password are remembered for 5 minutes, so a client polling every
 * 500 ms does not pay an argon2 check (about 120 ms here) each time.
 * Rule 1: the cache key is an HMAC-SHA256 of name and password under a key drawn at random when
 *         the process starts; neither the password nor a plain hash of it is kept in memory.
 * Rule 2: only successes are cached; a failure always goes through the authenticator (and its
 *         throttle). Re-reading the users file (SIGHUP) empties the cache.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Authenticator } from '../auth/authenticator.ts';
import { printable, type Logger } from '../log.ts';

/** How long a verified credential is trusted without checking it again. */
export const CREDENTIAL_CACHE_MS = 5 * 60_000;
/** Entries kept at most; the oldest go first. */
const MAX_CACHED = 1024;

export class BasicAuth {
  readonly #authenticator: Authenticator;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #key = randomBytes(32);
  readonly #cache = new Map<string, { user: string; expiresMs: number }>();

  constructor(authenticator: Authenticator, now: () => number, log: Logger) {
    this.#authenticator = authenticator;
    this.#now = now;
    this.#log = log;
  }

  /** The user an Authorization header proves, or null. */
  async check(header: string | null, client: string): Promise<string | null> {
    const credentials = parseBasic(header);
    if (credentials === null) return null;
    const key = createHmac('sha256', this.#key).update(credentials.user).update('\u0000').update(credentials.password).digest('base64');
    const cached = this.#cache.get(key);
    if (cached !== undefined && cached.expiresMs > this.#now()) return cached.user;
    if (cached !== undefined) this.#cache.delete(key);
    const verdict = await this.#authenticator.check({ client, mechanism: 'BASIC', authzid: '', username: credentials.user, password: credentials.password });
    if (!verdict.outcome.ok) {
      this.#log.warn('http-auth-failed', { user: printable(credentials.user), client, reason: verdict.reason, locked: verdict.locked ? true : undefined });
      return null;
    }
    if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, { user: verdict.outcome.user, expiresMs: this.#now() + CREDENTIAL_CACHE_MS });
    return verdict.outcome.user;
  }

  /** The users file changed: every credential is checked again. */
  forget(): void {
    this.#cache.clear();
  }

  get cached(): number {
    return this.#cache.size;
  }
}

/** RFC 7617 §2: "Basic " base64(user ":" password), UTF-8; null when absent or malformed. */
export function parseBasic(header: string | null): { user: string; password: string } | null {
  if (header === null) return null;
  const m = /^basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header);
  if (m === null) return null;
  let decoded: string;
  try {
    decoded = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(m[1], 'base64'));
  } catch {
    return null;
  }
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
