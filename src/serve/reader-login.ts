/**
 * @module The readers' login policy, one for the POP3 and IMAP hosts (DESIGN.md, issue 13): in
 * catch-all mode (no --domain, no relay) on a loopback listener any password is accepted and may
 * be sent in clear; otherwise passwords are checked against the users file with SMTP AUTH's
 * authenticator and throttle, and cleartext login needs TLS or --allow-insecure-auth.
 */
import type { Authenticator } from '../auth/authenticator.ts';
import { isLoopbackHost } from '../auth/networks.ts';
import type { ServeConfig } from '../config.ts';
import { printable, type Logger } from '../log.ts';
import type { ListenTarget } from '../transport/tcp-server.ts';

/** Catch-all mode on a loopback listener: the web UI already shows everyone everything there. */
export function readerAcceptsAnyPassword(config: ServeConfig, target: ListenTarget): boolean {
  return config.domains === null && target.kind !== 'unix' && isLoopbackHost(target.host);
}

export interface PasswordCheck {
  readonly log: Logger;
  readonly authenticator: Authenticator | null;
  readonly anyPassword: boolean;
  /** Names the log line: "pop3-login-failed", "imap-login-failed". */
  readonly protocol: 'pop3' | 'imap';
}

export interface PasswordRequest {
  readonly client: string;
  readonly mechanism: string;
  readonly authzid: string;
  readonly username: string;
  readonly password: string;
}

export type PasswordVerdict = { readonly ok: true; readonly user: string } | { readonly ok: false; readonly reason: string; readonly temporary: boolean };

/** The login policy shared by the POP3 and IMAP hosts; every failure is logged, never the password. */
export function checkPassword(check: PasswordCheck, request: PasswordRequest): Promise<PasswordVerdict> {
  const { log, authenticator, anyPassword, protocol } = check;
  if (anyPassword) return Promise.resolve({ ok: true, user: request.username });
  const failed = (reason: string, temporary: boolean): PasswordVerdict => {
    log.warn(`${protocol}-login-failed`, { user: printable(request.username), client: request.client, mechanism: request.mechanism, reason });
    return { ok: false, reason, temporary };
  };
  if (!authenticator) return Promise.resolve(failed('no-users-file', false));
  return authenticator.check(request).then(
    (verdict): PasswordVerdict => {
      if (verdict.outcome.ok) return { ok: true, user: verdict.outcome.user };
      if (verdict.reason === 'throttled') return failed('throttled', true);
      if (verdict.reason === 'busy') return failed('busy', true);
      return failed(verdict.locked ? `${verdict.reason} (locked out)` : verdict.reason, false);
    },
    (error: unknown) => failed(`error: ${error instanceof Error ? error.message : String(error)}`, true),
  );
}
