/**
 * @module Handing a message to each recipient domain's mail hosts (`send --mx`, and the relay's
 * path): recipients grouped by domain, each group routed (route.ts), its hosts walked under the
 * MX policy (mx-client.ts), one transaction per domain.
 * Rule: one session carries several transactions. A session left open by one domain carries the
 * next domain's transaction when that domain's walk reaches the same address, as replay's Lane
 * reuses its connection; a caller's SessionPool carries them across messages too (the relay).
 * Sessions are closed with QUIT by whoever made the pool.
 */
import type { Mailbox } from '../core/address.ts';
import { ClientFailure } from '../core/errors.ts';
import type { MailRouteResolver } from '../dns/mail-route.ts';
import { formatPeer, type SmtpClient } from '../transport/tcp-client.ts';
import { connectOptions, failedHandoff, handOffOn, type Handoff, type OutboundMessage, type SessionPlan } from './handoff.ts';
import { walkMx } from './mx-client.ts';
import type { MxPolicy } from './mx-policy.ts';
import { routeDomain, targetsOf } from './route.ts';

export interface MxPlan {
  readonly resolver: MailRouteResolver;
  readonly port: number;
  readonly policy: MxPolicy;
}

/** Recipients grouped by domain (case-insensitive), in the order they were given. */
export function groupByDomain(recipients: readonly Mailbox[]): Map<string, Mailbox[]> {
  const groups = new Map<string, Mailbox[]>();
  for (const r of recipients) {
    const key = r.domain.toLowerCase();
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return groups;
}

/**
 * Sessions left open for the next transaction, one per address and port. A session carries its
 * transactions one after another; the client core pipelines those queued together (RFC 2920).
 */
export class SessionPool {
  readonly #open = new Map<string, SmtpClient>();

  /** A usable session to this address, or null. */
  take(address: string, port: number): SmtpClient | null {
    const client = this.#open.get(formatPeer(address, port));
    return client !== undefined && !client.closed ? client : null;
  }

  /** Keeps a session for later transactions (a closed one is forgotten). */
  keep(address: string, port: number, client: SmtpClient): void {
    if (client.closed) this.#open.delete(formatPeer(address, port));
    else this.#open.set(formatPeer(address, port), client);
  }

  /** QUIT on every session kept. */
  async closeAll(): Promise<void> {
    const clients = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(clients.map((client) => client.quit()));
  }
}

/** Each domain's recipients go to its mail hosts, best first, one address after another. */
export async function handOffToMx(message: OutboundMessage, plan: SessionPlan, mx: MxPlan, pool: SessionPool | null = null): Promise<Handoff[]> {
  const sessions = pool ?? new SessionPool();
  const handoffs: Handoff[] = [];
  try {
    for (const [domain, recipients] of groupByDomain(message.recipients)) {
      handoffs.push(await handOffDomain(domain, recipients, message, plan, mx, sessions));
    }
  } finally {
    // A pool given by the caller outlives this message; one made here does not.
    if (pool === null) await sessions.closeAll();
  }
  return handoffs;
}

async function handOffDomain(
  domain: string,
  recipients: readonly Mailbox[],
  message: OutboundMessage,
  plan: SessionPlan,
  mx: MxPlan,
  pool: SessionPool,
): Promise<Handoff> {
  const place = `${domain}:${mx.port}`;
  const route = await routeDomain(domain, mx.resolver);
  if (route.kind === 'refused') {
    const { status } = route;
    const failure = new ClientFailure(status.code >= 500 ? 'rejected' : 'connect', 'connect', status.lines.join(' '), undefined, { status });
    return failedHandoff(place, domain, recipients, failure);
  }
  const walk = await walkMx(targetsOf(route.hosts), connectOptions(plan, mx.port), mx.policy, {
    reuse: (target) => pool.take(target.address, mx.port),
    begin: (target) => {
      plan.onConnect?.(formatPeer(target.address, mx.port));
      return plan.onTranscript;
    },
  });
  if (!walk.ok) {
    const peer = walk.target === null ? place : formatPeer(walk.target.address, mx.port);
    const failure = walk.target === null ? new ClientFailure('connect', 'connect', `no mail host of ${domain} could be tried`) : walk.failure;
    return failedHandoff(peer, domain, recipients, failure);
  }
  const handoff = await handOffOn(walk.client, message, recipients, plan, domain);
  if (plan.quitAfter === null) pool.keep(walk.target.address, mx.port, walk.client);
  else await walk.client.quit();
  return handoff;
}
