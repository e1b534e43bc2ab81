/**
 * @module `mailbox verify` as a whole: syntax, then the DNS route of each domain (asked once per
 * batch), then the SMTP probe per domain; one result per input, handed out in input order as
 * soon as every earlier one is known.
 * Rule 1: a result carries its evidence: the syntax reason, every DNS answer, every SMTP line.
 * Rule 2: only hosts from DNS, or the domain literal the user wrote, are ever contacted.
 */
import { formatMailbox, type Mailbox } from '../core/address.ts';
import type { MailHost, MailRoute } from '../dns/mail-route.ts';
import { routeDomain } from '../delivery/route.ts';
import { DnsResolver, formatServer, type DnsServer, type Lookup } from '../dns/resolver.ts';
import { DomainProber, type ProbeDeps, type ProbeItem, type ProbeSettings, type ProbeStats, type SmtpEvidence } from './domain-prober.ts';
import { hintsFor, type Hint } from './hints.ts';
import { Semaphore } from './semaphore.ts';
import { checkAddress, type AddressCheck } from './syntax.ts';
import { judgement, judgeRoute, PASSING_REASONS, type Judgement, type ReasonCode, type Verdict } from './verdict.ts';

export type Level = 'syntax' | 'dns' | 'smtp';
export const LEVELS: readonly Level[] = ['syntax', 'dns', 'smtp'];

export interface VerifyOptions extends ProbeSettings {
  readonly level: Level;
  readonly dns: DnsServer;
  /** Per-try DNS timeout; two tries are made. */
  readonly dnsTimeoutMs: number;
  /** Simultaneous SMTP connections across all domains. */
  readonly maxConnections: number;
}

export interface DnsEvidence {
  readonly server: string;
  /** "mx", "implicit-mx", "literal", "null-mx", "nxdomain", "no-mail-host", "mx-unresolvable", "temporary". */
  readonly route: string;
  readonly hosts: readonly MailHost[];
  readonly lookups: readonly { readonly query: string; readonly status: string; readonly detail: string; readonly answers: readonly string[] }[];
  /** MX hosts that had no address. */
  readonly skipped: readonly string[];
}

/** One line of `--json`: the verdict and all the evidence behind it. */
export interface VerifyResult {
  readonly input: string;
  /** The address as it was asked about on the wire (IDNA domain), or null when the syntax is bad. */
  readonly address: string | null;
  readonly verdict: Verdict;
  readonly reason: ReasonCode;
  readonly detail: string;
  /** Passed every check of the chosen --level (for the exit code). */
  readonly passed: boolean;
  readonly hints: readonly Hint[];
  readonly syntax: { readonly valid: true; readonly smtpUtf8: boolean; readonly unicodeDomain: string } | { readonly valid: false; readonly why: string };
  readonly dns?: DnsEvidence;
  readonly smtp?: SmtpEvidence;
}

export interface VerifyStats {
  readonly addresses: number;
  readonly domains: number;
  readonly dnsQueries: number;
  readonly connections: number;
  readonly probes: number;
  /** SMTP connection attempts, and how many reached a server that answered. */
  readonly attempts: number;
  readonly answered: number;
}

export interface VerifyHooks {
  /** Called once per input, in input order. */
  readonly onResult: (result: VerifyResult) => void;
  /** Called whenever another result is known (in any order): for a progress bar. */
  readonly onProgress?: (done: number, total: number) => void;
}

type Valid = Extract<AddressCheck, { ok: true }>;

const ROUTE_NAMES: Record<MailRoute['kind'], string> = {
  hosts: 'mx',
  'null-mx': 'null-mx',
  nxdomain: 'nxdomain',
  'no-mail-host': 'no-mail-host',
  'mx-unresolvable': 'mx-unresolvable',
  temporary: 'temporary',
};

function lookupEvidence(lookup: Lookup) {
  return { query: `${lookup.name} ${lookup.type}`, status: lookup.status, detail: lookup.detail, answers: lookup.answers };
}

/** Verifies `inputs`; resolves with counters once every result has been handed to onResult. */
export async function verifyAddresses(inputs: readonly string[], options: VerifyOptions, deps: ProbeDeps, hooks: VerifyHooks): Promise<VerifyStats> {
  const total = inputs.length;
  const results: (VerifyResult | undefined)[] = new Array(total);
  let emitted = 0;
  let done = 0;
  const settle = (index: number, result: VerifyResult) => {
    results[index] = result;
    done++;
    hooks.onProgress?.(done, total);
    while (emitted < total && results[emitted] !== undefined) {
      hooks.onResult(results[emitted]!);
      results[emitted] = undefined;
      emitted++;
    }
  };

  const checks = inputs.map((input) => checkAddress(input));
  const base = (index: number, check: Valid) => ({
    input: inputs[index],
    address: formatMailbox(check.mailbox),
    hints: hintsFor(check.mailbox),
    syntax: { valid: true as const, smtpUtf8: check.smtpUtf8, unicodeDomain: check.unicodeDomain },
  });
  const settleWith = (index: number, check: Valid, j: Judgement, extra: { dns?: DnsEvidence; smtp?: SmtpEvidence }) => {
    const { input, address, hints, syntax } = base(index, check);
    settle(index, { input, address, ...j, passed: PASSING_REASONS.has(j.reason), hints, syntax, ...extra });
  };

  // Domains in first-seen order; each is resolved and probed once for all its addresses.
  const byDomain = new Map<string, { index: number; check: Valid }[]>();
  checks.forEach((check, index) => {
    if (!check.ok) {
      const j = judgement('invalid-syntax', check.why);
      settle(index, { input: inputs[index], address: null, ...j, passed: false, hints: [], syntax: { valid: false, why: check.why } });
      return;
    }
    if (options.level === 'syntax') {
      settleWith(index, check, judgement('syntax-valid'), {});
      return;
    }
    const key = check.mailbox.domain.toLowerCase();
    const list = byDomain.get(key) ?? [];
    list.push({ index, check });
    byDomain.set(key, list);
  });

  const resolver = new DnsResolver({ server: options.dns, timeoutMs: options.dnsTimeoutMs, attempts: 2 });
  const shared = { connections: new Semaphore(options.maxConnections), stats: { connections: 0, probes: 0, attempts: 0, answered: 0 } satisfies ProbeStats };

  const verifyDomain = async (domain: string, entries: { index: number; check: Valid }[]): Promise<void> => {
    const literal = entries[0].check.literal;
    let route: MailRoute;
    let dns: DnsEvidence;
    if (literal !== null) {
      // The user named the host: no DNS, and the literal is the only place to ask (RFC 5321 §4.1.3).
      route = { kind: 'hosts', implicit: false, hosts: [{ name: domain, preference: null, addresses: [literal] }], skipped: [] };
      dns = { server: formatServer(options.dns), route: 'literal', hosts: route.hosts, lookups: [], skipped: [] };
    } else {
      const resolved = await routeDomain(domain, resolver);
      // The syntax check gave an A-label domain, so DNS was asked (an invalid name counts as none).
      route = resolved.route ?? { kind: 'nxdomain' };
      const name = route.kind === 'hosts' && route.implicit ? 'implicit-mx' : ROUTE_NAMES[route.kind];
      dns = {
        server: formatServer(options.dns),
        route: name,
        hosts: route.kind === 'hosts' ? route.hosts : [],
        lookups: resolved.lookups.map(lookupEvidence),
        skipped: route.kind === 'hosts' ? route.skipped : [],
      };
    }
    const decided = judgeRoute(route);
    if (decided !== null || route.kind !== 'hosts') {
      for (const { index, check } of entries) settleWith(index, check, decided ?? judgement('dns-failure'), { dns });
      return;
    }
    if (options.level === 'dns') {
      const names = route.hosts.map((h) => h.name).join(', ');
      for (const { index, check } of entries) settleWith(index, check, judgement('mail-host-found', `mail host: ${names}`), { dns });
      return;
    }
    const targets = route.hosts.flatMap((h) => h.addresses.map((address) => ({ host: h.name, address })));
    const items: ProbeItem[] = entries.map(({ index, check }) => ({ index, mailbox: check.mailbox as Mailbox, smtpUtf8: check.smtpUtf8 }));
    const checkOf = new Map(entries.map((e) => [e.index, e.check]));
    const prober = new DomainProber(domain, targets, items, options, deps, shared, (index, j, smtp) => {
      settleWith(index, checkOf.get(index)!, j, { dns, smtp });
    });
    await prober.run();
  };

  await Promise.all([...byDomain].map(([domain, entries]) => verifyDomain(domain, entries)));
  return {
    addresses: total,
    domains: byDomain.size,
    dnsQueries: resolver.queriesSent,
    connections: shared.stats.connections,
    probes: shared.stats.probes,
    attempts: shared.stats.attempts,
    answered: shared.stats.answered,
  };
}
