/**
 * @module Opening one SMTP session to a mail host under the MX policy (mx-policy.ts): STARTTLS
 * with SNI, then clear text on a new connection after a failed handshake; and walking the hosts
 * of a route until one gives a ready session.
 * Rule: it connects only to the addresses it is given; every attempt is reported to the caller.
 */
import { ClientFailure } from '../core/errors.ts';
import type { TranscriptEntry } from '../core/transcript.ts';
import { openSmtpClient, type SmtpClient, type SmtpClientOptions, type TlsMode } from '../transport/tcp-client.ts';
import { passesTurn, planAttempts, retriesInClear, type MxPolicy } from './mx-policy.ts';
import type { MxTarget } from './route.ts';

/** Everything a connection needs besides where it goes and how TLS is settled. */
export type MxConnectOptions = Omit<SmtpClientOptions, 'host' | 'tls' | 'tlsSettings' | 'onTranscript'>;

export interface MxAttemptHooks {
  /** Before each connection: where its transcript goes (undefined: nowhere). */
  readonly begin?: (target: MxTarget, tls: TlsMode) => ((entry: TranscriptEntry) => void) | undefined;
  /** After each connection attempt: the ready client, or why it failed. */
  readonly end?: (target: MxTarget, tls: TlsMode, result: SmtpClient | ClientFailure) => void;
}

/** One target under the policy; resolves with a ready client, rejects with the last ClientFailure. */
export async function openMxClient(target: MxTarget, connect: MxConnectOptions, policy: MxPolicy, hooks: MxAttemptHooks = {}): Promise<SmtpClient> {
  let last: ClientFailure | null = null;
  for (const attempt of planAttempts(policy, target)) {
    if (last !== null && !retriesInClear(last)) break;
    const onTranscript = hooks.begin?.(target, attempt.tls);
    try {
      const client = await openSmtpClient({ ...connect, host: target.address, tls: attempt.tls, tlsSettings: attempt.tlsSettings, onTranscript });
      hooks.end?.(target, attempt.tls, client);
      return client;
    } catch (error) {
      if (!(error instanceof ClientFailure)) throw error;
      hooks.end?.(target, attempt.tls, error);
      last = error;
    }
  }
  throw last!;
}

export type MxWalk =
  | { readonly ok: true; readonly client: SmtpClient; readonly target: MxTarget }
  | { readonly ok: false; readonly failure: ClientFailure; readonly target: MxTarget | null };

export interface MxWalkOptions extends MxAttemptHooks {
  /** A session already open to this target, to carry the next transaction too (null: connect). */
  readonly reuse?: (target: MxTarget) => SmtpClient | null;
  /** Whether a failure moves on to the next target (default: passesTurn, RFC 5321 §5.1). */
  readonly passTurn?: (failure: ClientFailure, target: MxTarget) => boolean;
  /** Targets not to try (known to be down in this run). */
  readonly skip?: (target: MxTarget) => boolean;
}

/** Tries each target in order until one gives a ready session (RFC 5321 §5.1). */
export async function walkMx(targets: readonly MxTarget[], connect: MxConnectOptions, policy: MxPolicy, options: MxWalkOptions = {}): Promise<MxWalk> {
  let last: { failure: ClientFailure; target: MxTarget } | null = null;
  for (const target of targets) {
    if (options.skip?.(target)) continue;
    const open = options.reuse?.(target) ?? null;
    if (open !== null) return { ok: true, client: open, target };
    try {
      return { ok: true, client: await openMxClient(target, connect, policy, options), target };
    } catch (error) {
      if (!(error instanceof ClientFailure)) throw error;
      last = { failure: error, target };
      if (!(options.passTurn ?? passesTurn)(error, target)) break;
    }
  }
  return last === null ? { ok: false, failure: noHostTried(), target: null } : { ok: false, ...last };
}

function noHostTried(): ClientFailure {
  return new ClientFailure('connect', 'connect', 'no mail host could be tried');
}
