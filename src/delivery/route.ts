/**
 * @module Where mail for one recipient domain goes, for every outbound path (`send --mx`,
 * `verify`, the relay): the one routing function. A domain goes to DNS as an A-label (IDNA,
 * RFC 5890 §2.3.2.1); an address literal is the host itself (RFC 5321 §4.1.3); MX, implicit MX
 * and null MX come from dns/mail-route.ts; and a route that leads nowhere becomes a status Reply
 * from the client catalogue here, in one place.
 * Rule: pure but for the resolver it is given; every lookup is kept as evidence.
 */
import { domainToASCII } from 'node:url';
import { clientReplies } from '../core/client-replies.ts';
import type { Reply } from '../core/reply.ts';
import { resolveMailRoute, type MailHost, type MailRoute, type MailRouteResolver } from '../dns/mail-route.ts';
import type { Lookup } from '../dns/resolver.ts';

/** One address of one mail host: the MX name (for SNI and certificates) and where to connect. */
export interface MxTarget {
  /** The MX exchange, the domain itself (implicit MX), or the address literal as written. */
  readonly host: string;
  readonly address: string;
}

export type DeliveryRoute =
  | { readonly kind: 'hosts'; readonly hosts: readonly MailHost[]; readonly route: MailRoute | null; readonly lookups: readonly Lookup[] }
  /** No host to try: the status says why, and whether trying later may help (its code). */
  | { readonly kind: 'refused'; readonly status: Reply; readonly route: MailRoute | null; readonly lookups: readonly Lookup[] };

const LITERAL = /^\[(?:IPv6:)?([^\]]+)\]$/i;
const NON_ASCII = /[^\x00-\x7f]/;

/** The address inside an address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"), or null. */
export function parseAddressLiteral(domain: string): string | null {
  const m = LITERAL.exec(domain);
  return m ? m[1].toLowerCase() : null;
}

/** RFC 5890 §2.3.2.1: the A-label form DNS is asked with; null when the name is not valid IDNA. */
export function toALabels(domain: string): string | null {
  const lower = domain.toLowerCase().replace(/\.$/, '');
  if (!NON_ASCII.test(lower) && !/(^|\.)xn--/.test(lower)) return lower;
  const ascii = domainToASCII(lower);
  return ascii === '' ? null : ascii;
}

/** The status of a route with no host to try (RFC 7505 null MX, NXDOMAIN, DNS trouble…). */
export function routeStatus(domain: string, route: Exclude<MailRoute, { kind: 'hosts' }>): Reply {
  switch (route.kind) {
    case 'null-mx':
      return clientReplies.nullMx(domain);
    case 'nxdomain':
      return clientReplies.noSuchDomain(domain);
    case 'no-mail-host':
      return clientReplies.noMailHost(domain);
    case 'mx-unresolvable':
      return clientReplies.mxUnresolvable(domain);
    case 'temporary':
      return clientReplies.dnsTemporary(domain, route.why);
    default:
      route satisfies never;
      return clientReplies.noSuchDomain(domain);
  }
}

/** Where mail for `domain` goes: hosts in the order to try them, or the reason there are none. */
export async function routeDomain(domain: string, resolver: MailRouteResolver): Promise<DeliveryRoute> {
  const literal = parseAddressLiteral(domain);
  if (literal !== null) return { kind: 'hosts', hosts: [{ name: domain, preference: null, addresses: [literal] }], route: null, lookups: [] };
  const ascii = toALabels(domain);
  if (ascii === null) return { kind: 'refused', status: clientReplies.noSuchDomain(domain), route: null, lookups: [] };
  const { route, lookups } = await resolveMailRoute(ascii, resolver);
  if (route.kind === 'hosts') return { kind: 'hosts', hosts: route.hosts, route, lookups };
  return { kind: 'refused', status: routeStatus(domain, route), route, lookups };
}

/** Each address of each host, best host first (RFC 5321 §5.1). */
export function targetsOf(hosts: readonly MailHost[]): MxTarget[] {
  return hosts.flatMap((h) => h.addresses.map((address) => ({ host: h.name, address })));
}
