/**
 * @module Handing a message to each recipient domain's mail hosts (`send --mx`, and the relay's
 * path): recipients grouped by domain, each group routed (route.ts), its hosts walked under the
 * MX policy (mx-client.ts), one transaction per domain.
 * Rule: one session carries several transactions. A session left open by one domain carries the
 * next domain's transaction when that domain's walk reaches the same address, as replay's Lane
 * reuses its connection; every session is closed with QUIT at the end.
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

/** Each domain's recipients go to its mail hosts, best first, one address after another. */
export async function handOffToMx(message: OutboundMessage, plan: SessionPlan, mx: MxPlan): Promise<Handoff[]> {
  const handoffs: Handoff[] = [];
  const open = new Map<string, SmtpClient>();
  try {
    for (const [domain, recipients] of groupByDomain(message.recipients)) {
      handoffs.push(await handOffDomain(domain, recipients, message, plan, mx, open));
    }
  } finally {
    await Promise.all([...open.values()].map((client) => client.quit()));
  }
  return handoffs;
}

async function handOffDomain(
  domain: string,
  recipients: readonly Mailbox[],
  message: OutboundMessage,
  plan: SessionPlan,
  mx: MxPlan,
  open: Map<string, SmtpClient>,
): Promise<Handoff> {
  const place = `${domain}:${mx.port}`;
  const route = await routeDomain(domain, mx.resolver);
  if (route.kind === 'refused') {
    const { status } = route;
    const failure = new ClientFailure(status.code >= 500 ? 'rejected' : 'connect', 'connect', status.lines.join(' '), undefined, { status });
    return failedHandoff(place, domain, recipients, failure);
  }
  const walk = await walkMx(targetsOf(route.hosts), connectOptions(plan, mx.port), mx.policy, {
    reuse: (target) => {
      const client = open.get(target.address);
      return client !== undefined && !client.closed ? client : null;
    },
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
  if (plan.quitAfter === null && !walk.client.closed) open.set(walk.target.address, walk.client);
  else {
    open.delete(walk.target.address);
    await walk.client.quit();
  }
  return handoff;
}
