/**
 * @module Where mail for a domain goes (RFC 5321 §5.1): MX hosts in preference order with their
 * addresses; the implicit MX (the domain's own A/AAAA) when it has no MX; null MX (RFC 7505);
 * no such domain; or a temporary DNS failure, which is never a verdict about the domain.
 * Rule: every lookup made is returned as evidence, in the order it was asked.
 */
import type { DnsResolver, Lookup, LookupStatus } from './resolver.ts';

/** What this module needs of a resolver (tests give a table). */
export type MailRouteResolver = Pick<DnsResolver, 'lookup'>;

export interface MailHost {
  /** The MX exchange, or the domain itself for an implicit MX. */
  readonly name: string;
  /** null for an implicit MX. */
  readonly preference: number | null;
  /** IPv4 addresses first, then IPv6, each in the order DNS gave them. */
  readonly addresses: readonly string[];
}

export type MailRoute =
  | { readonly kind: 'hosts'; readonly implicit: boolean; readonly hosts: readonly MailHost[]; readonly skipped: readonly string[] }
  /** RFC 7505 §3: a single MX of "." says the domain accepts no mail. */
  | { readonly kind: 'null-mx' }
  | { readonly kind: 'nxdomain' }
  /** The domain exists but has neither MX nor an address to use as an implicit MX. */
  | { readonly kind: 'no-mail-host' }
  /** MX records exist, but no exchange has an address (each is NXDOMAIN or NODATA). */
  | { readonly kind: 'mx-unresolvable' }
  | { readonly kind: 'temporary'; readonly status: LookupStatus; readonly why: string };

export interface MailRouteResult {
  readonly route: MailRoute;
  readonly lookups: readonly Lookup[];
}

const TEMPORARY: ReadonlySet<LookupStatus> = new Set(['servfail', 'refused', 'timeout', 'error']);

function temporary(lookup: Lookup): MailRoute {
  return { kind: 'temporary', status: lookup.status, why: `${lookup.name} ${lookup.type}: ${lookup.detail}` };
}

/** A and AAAA of one name, asked together; the addresses and both lookups. */
async function addressesOf(name: string, resolver: MailRouteResolver): Promise<{ addresses: string[]; lookups: [Lookup, Lookup] }> {
  const [a, aaaa] = await Promise.all([resolver.lookup(name, 'A'), resolver.lookup(name, 'AAAA')]);
  const addresses = [...a.records, ...aaaa.records].flatMap((r) => (r.data.type === 'A' || r.data.type === 'AAAA' ? [r.data.address] : []));
  return { addresses, lookups: [a, aaaa] };
}

/** Resolves the mail route of an ASCII (A-label) domain. */
export async function resolveMailRoute(domain: string, resolver: MailRouteResolver): Promise<MailRouteResult> {
  const mx = await resolver.lookup(domain, 'MX');
  const lookups: Lookup[] = [mx];
  if (mx.status === 'nxdomain') return { route: { kind: 'nxdomain' }, lookups };
  if (TEMPORARY.has(mx.status)) return { route: temporary(mx), lookups };

  if (mx.status === 'nodata') {
    // RFC 5321 §5.1: no MX, so the domain itself is the mail host (an implicit MX of preference 0).
    const own = await addressesOf(domain, resolver);
    lookups.push(...own.lookups);
    if (own.addresses.length > 0) {
      return { route: { kind: 'hosts', implicit: true, hosts: [{ name: domain, preference: null, addresses: own.addresses }], skipped: [] }, lookups };
    }
    const failed = own.lookups.find((l) => TEMPORARY.has(l.status));
    return { route: failed ? temporary(failed) : { kind: 'no-mail-host' }, lookups };
  }

  const records = mx.records.flatMap((r) => (r.data.type === 'MX' ? [r.data] : []));
  // RFC 7505 §3: "." as exchange is the null MX; a domain must not publish it beside other MX.
  if (records.some((r) => r.exchange === '')) return { route: { kind: 'null-mx' }, lookups };
  // RFC 5321 §5.1: lowest preference first; equal ones keep the server's order (a stable sort).
  const ordered = [...records].sort((x, y) => x.preference - y.preference);
  const seen = new Set<string>();
  const unique = ordered.filter((r) => !seen.has(r.exchange.toLowerCase()) && seen.add(r.exchange.toLowerCase()));
  const resolved = await Promise.all(unique.map((r) => addressesOf(r.exchange, resolver)));
  const hosts: MailHost[] = [];
  const skipped: string[] = [];
  let failure: Lookup | undefined;
  unique.forEach((r, i) => {
    const { addresses, lookups: pair } = resolved[i];
    lookups.push(...pair);
    if (addresses.length > 0) hosts.push({ name: r.exchange, preference: r.preference, addresses });
    else {
      failure ??= pair.find((l) => TEMPORARY.has(l.status));
      skipped.push(`${r.exchange}: no address (${pair.map((l) => `${l.type} ${l.detail}`).join('; ')})`);
    }
  });
  if (hosts.length > 0) return { route: { kind: 'hosts', implicit: false, hosts, skipped }, lookups };
  return { route: failure ? temporary(failure) : { kind: 'mx-unresolvable' }, lookups };
}
