/**
 * @module The one TLS policy for connections to mail hosts (MX delivery, `verify`, the relay):
 * opportunistic TLS (RFC 7435). STARTTLS when offered, SNI with the MX name, no certificate check
 * unless a policy asks for one; after a failed handshake, clear text on a new connection, then
 * the next host. And the one rule for when a failure passes the turn to the next host.
 * Rule: pure. Nothing here looks at whether an address is loopback: that exemption is a hint
 * for a server the user names (`--server`), never for a mail host.
 */
import { ClientFailure, type ClientStage } from '../core/errors.ts';
import type { TlsMode, TlsSettings } from '../transport/tcp-client.ts';
import { parseAddressLiteral, type MxTarget } from './route.ts';

export interface MxPolicy {
  /** 'opportunistic' (the default): STARTTLS when offered. 'starttls' and 'implicit' require TLS; 'none' never tries it. */
  readonly tls: TlsMode;
  /**
   * Certificate checks, only when a policy asks for them (the user, DANE or MTA-STS): the
   * certificate must be valid for the MX name, with these CAs trusted besides the system's.
   * A policy that checks never falls back to clear text.
   */
  readonly verify: { readonly ca?: string | readonly string[] } | null;
}

/** RFC 7435: encrypt when the peer can, check nothing, and never fail for want of TLS. */
export const OPPORTUNISTIC: MxPolicy = Object.freeze({ tls: 'opportunistic', verify: null });

/** One way to connect to a target. */
export interface MxAttemptPlan {
  readonly tls: TlsMode;
  readonly tlsSettings: TlsSettings;
}

/** The name SNI and a certificate check use: the MX name, never an address. */
function serverName(target: MxTarget): string | undefined {
  if (parseAddressLiteral(target.host) !== null || /^[\d.]+$|:/.test(target.host)) return undefined;
  return target.host.replace(/\.$/, '');
}

/** The connections to try for one target, in order; a later one only after a TLS failure. */
export function planAttempts(policy: MxPolicy, target: MxTarget): MxAttemptPlan[] {
  const tlsSettings: TlsSettings = { rejectUnauthorized: policy.verify !== null, ca: policy.verify?.ca, servername: serverName(target) };
  const first = { tls: policy.tls, tlsSettings };
  // RFC 7435 §6 and RFC 3207 §4.1: a failed handshake leaves the connection unusable; MTAs then
  // deliver in clear on a new one, since the peer would have taken the message in clear anyway.
  if (policy.tls === 'opportunistic' && policy.verify === null) return [first, { tls: 'none', tlsSettings }];
  return [first];
}

/** True when a failure may be followed by the next attempt at the same target (clear text). */
export function retriesInClear(failure: ClientFailure): boolean {
  return failure.kind === 'tls';
}

const SETUP_STAGES: ReadonlySet<ClientStage> = new Set(['connect', 'greeting', 'ehlo', 'starttls']);

/**
 * RFC 5321 §5.1: a host that cannot be reached, or that says "try later" before the transaction
 * starts, passes the turn to the next. A permanent refusal, or one during the transaction, is the
 * domain's verdict.
 */
export function passesTurn(failure: ClientFailure): boolean {
  return !failure.permanent && SETUP_STAGES.has(failure.stage);
}
