/**
 * @module Checks AUTH credentials (RFC 4954) for the server: the users file, or --auth-any.
 * Rule 1: verification is asynchronous (Bun.password.verify runs off the main thread), and at
 *         most `maxConcurrent` run at once; beyond `maxQueued` waiting, the answer is 454.
 * Rule 2: an unknown user costs a verification too (against a decoy hash), so response time
 *         does not tell which names exist.
 * Rule 3: the verdict carries a reason for the log; passwords never leave this file.
 */
import type { AuthOutcome } from '../core/server-session.ts';
import { replies } from '../core/replies.ts';
import type { AuthThrottle } from './throttle.ts';
import { checkUserName, type UserTable } from './users.ts';

export interface AuthRequest {
  readonly client: string;
  readonly mechanism: string;
  readonly authzid: string;
  readonly username: string;
  readonly password: string;
}

export type AuthReason = 'ok' | 'any' | 'throttled' | 'unknown-user' | 'bad-password' | 'authzid' | 'busy' | 'bad-name';

export interface AuthVerdict {
  readonly outcome: AuthOutcome;
  readonly reason: AuthReason;
  /** This failure locked the client out (the throttle tripped). */
  readonly locked: boolean;
}

export interface AuthenticatorOptions {
  /** The users in force (re-read on SIGHUP), or null with --auth-any. */
  readonly users: () => UserTable | null;
  readonly throttle: AuthThrottle;
  readonly now: () => number;
  readonly verify?: (password: string, hash: string) => Promise<boolean>;
  readonly hash?: (password: string) => Promise<string>;
  readonly maxConcurrent?: number;
  readonly maxQueued?: number;
}

export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #verify: (password: string, hash: string) => Promise<boolean>;
  readonly #hash: (password: string) => Promise<string>;
  #decoy: Promise<string> | null = null;
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
    this.#verify = options.verify ?? ((password, hash) => Bun.password.verify(password, hash));
    this.#hash = options.hash ?? ((password) => Bun.password.hash(password));
  }

  async check(req: AuthRequest): Promise<AuthVerdict> {
    const { throttle, now } = this.#options;
    if (throttle.locked(req.client, now())) return { outcome: { ok: false, reply: replies.authThrottled() }, reason: 'throttled', locked: false };
    const users = this.#options.users();
    // --auth-any takes any name that could be in a users file, so that the spool can keep it.
    if (users === null) return checkUserName(req.username) === null ? { outcome: { ok: true, user: req.username }, reason: 'any', locked: false } : this.#failure(req, 'bad-name');
    // RFC 4616 §2: acting for another identity is not supported, so only authzid = authcid passes.
    if (req.authzid !== '' && req.authzid !== req.username) return this.#failure(req, 'authzid');
    const hash = users.get(req.username)?.hash;
    const slot = await this.#acquire();
    if (!slot) return { outcome: { ok: false, reply: replies.authTemporary() }, reason: 'busy', locked: false };
    let good: boolean;
    try {
      good = hash === undefined ? (await this.#verify(req.password, await this.#decoyHash()), false) : await this.#verify(req.password, hash);
    } catch {
      good = false;
    } finally {
      this.#releaseSlot();
    }
    if (good) return { outcome: { ok: true, user: req.username }, reason: 'ok', locked: false };
    return this.#failure(req, hash === undefined ? 'unknown-user' : 'bad-password');
  }

  #failure(req: AuthRequest, reason: AuthReason): AuthVerdict {
    const locked = this.#options.throttle.failed(req.client, this.#options.now());
    return { outcome: { ok: false, reply: replies.authFailed() }, reason, locked };
  }

  #decoyHash(): Promise<string> {
    this.#decoy ??= this.#hash(`decoy-${Math.random()}`);
    return this.#decoy;
  }

  async #acquire(): Promise<boolean> {
    const max = this.#options.maxConcurrent ?? 4;
    if (this.#running < max) {
      this.#running++;
      return true;
    }
    if (this.#queue.length >= (this.#options.maxQueued ?? 64)) return false;
    await new Promise<void>((resolve) => this.#queue.push(resolve));
    return true;
  }

  #releaseSlot(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#running--;
  }
}
