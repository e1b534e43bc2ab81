/**
 * @module The relay's settings (`serve --relay`, `--route`, `--tls-policy`…): parsed from their
 * texts into one frozen RelaySettings, and the one function that says where a domain's mail goes.
 * Rule 1: a password never comes from the command line (where `ps` shows it): a smarthost URL
 *         given as a flag may name a user; its password comes from the config file's URL or from
 *         --relay-password-file. Passwords never appear in a URL shown in a log line.
 * Rule 2: pure but for reading the files the settings name (CA, password, recipients).
 */
import { readFileSync } from 'node:fs';
import { normalizeDomain } from '../core/address.ts';
import { SetupError, UsageError } from '../exit-status.ts';
import type { DnsServer } from '../dns/resolver.ts';

/** A smarthost, from `smtp://`, `smtp+starttls://` or `smtps://` URLs. */
export interface Smarthost {
  /** The URL without its password, for logs. */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** smtp: STARTTLS when offered; smtp+starttls: STARTTLS or defer; smtps: implicit TLS. */
  readonly tls: 'opportunistic' | 'starttls' | 'implicit';
  /** The certificate is checked against `host` (system CAs plus --relay-ca); off with ?tls=insecure. */
  readonly verify: boolean;
  readonly user: string | null;
  readonly password: string | null;
}

/** Where one domain's mail goes: its MX hosts, or smarthosts tried in order (fallbacks). */
export type RelayRoute = { readonly kind: 'mx' } | { readonly kind: 'smarthost'; readonly hosts: readonly Smarthost[] };

export type TlsRequirement = 'require' | 'verify';

export interface RelaySettings {
  /** --relay: the route of every domain without a --route; null without --relay. */
  readonly route: RelayRoute | null;
  /** --route DOMAIN=URL|mx. */
  readonly routes: ReadonlyMap<string, RelayRoute>;
  /** --tls-policy DOMAIN=require|verify, for MX delivery. */
  readonly tlsPolicy: ReadonlyMap<string, TlsRequirement>;
  /** --relay-domain: accepted from anyone and forwarded (backup MX). */
  readonly relayDomains: readonly string[];
  /** --relay-recipients: the local parts ("user", or "user@domain") a backup MX accepts; null: any. */
  readonly relayRecipients: ReadonlySet<string> | null;
  /** --relay-password-file's password, for smarthost URLs that name a user. */
  readonly password: string | null;
  /** --relay-ca: PEM trusted besides the system's, for smarthosts and verify policies. */
  readonly ca: string | null;
  readonly dns: DnsServer | null;
  readonly workers: number;
  /** Connections per destination at most. */
  readonly concurrency: number;
  /** How long a destination that failed is left alone. */
  readonly coolOffMs: number;
  /** Caps every client timeout (RFC 5321 §4.5.3.2 gives the defaults). */
  readonly timeoutMs: number | null;
  readonly retryAfterMs: number;
  readonly retryMaxMs: number;
  readonly lifetimeMs: number;
  readonly maxHops: number;
  /** --delay-warning: a sender whose NOTIFY allows it hears once of a recipient deferred this long; null: off. */
  readonly delayWarningMs: number | null;
}

export const RELAY_DEFAULTS = Object.freeze({
  concurrency: 10,
  coolOffMs: 5 * 60_000,
  retryAfterMs: 5 * 60_000,
  retryMaxMs: 60 * 60_000,
  lifetimeMs: 5 * 86_400_000,
  // RFC 5321 §6.3: a count of 100 Received fields is a loop.
  maxHops: 100,
});

const SCHEMES: Record<string, { tls: Smarthost['tls']; port: number }> = {
  'smtp:': { tls: 'opportunistic', port: 25 },
  'smtp+starttls:': { tls: 'starttls', port: 587 },
  'smtps:': { tls: 'implicit', port: 465 },
};

/**
 * A smarthost URL. `fromFile` allows a password in it (the config file is the place for one);
 * `password` is --relay-password-file's, used when the URL names a user and no password.
 */
export function parseSmarthost(text: string, what: string, fromFile: boolean, password: string | null): Smarthost {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${what}: "${text}" is not "mx" or a URL (examples: smtp://relay.example:25, smtp+starttls://user@relay.example:587, smtps://user@relay.example)`);
  }
  const scheme = SCHEMES[url.protocol];
  if (!scheme) throw new UsageError(`${what}: "${url.protocol}" is not smtp:, smtp+starttls: or smtps:`);
  if (url.hostname === '') throw new UsageError(`${what}: "${text}" names no host`);
  if (url.password !== '' && !fromFile) {
    throw new UsageError(`${what}: a password on the command line is visible to every user (ps); put the URL in the config file or use --relay-password-file`);
  }
  const tlsParam = url.searchParams.get('tls');
  if (tlsParam !== null && tlsParam !== 'insecure') throw new UsageError(`${what}: ?tls= takes only "insecure"`);
  const user = url.username === '' ? null : decodeURIComponent(url.username);
  const port = url.port === '' ? scheme.port : Number(url.port);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const secret = url.password !== '' ? decodeURIComponent(url.password) : user !== null ? password : null;
  if (user !== null && secret === null) throw new UsageError(`${what}: ${url.protocol}//${url.username}@… needs a password: in the config file's URL or in --relay-password-file`);
  const label = `${url.protocol}//${user === null ? '' : `${url.username}@`}${url.host}${tlsParam ? '?tls=insecure' : ''}`;
  return Object.freeze({ label, host, port, tls: scheme.tls, verify: tlsParam !== 'insecure', user, password: secret });
}

/** The texts of the relay settings, as the config file and the command line give them. */
export interface RelayTexts {
  /** Each --relay value, and whether it came from the config file. */
  readonly relay: readonly { readonly text: string; readonly fromFile: boolean }[];
  readonly routes: readonly { readonly text: string; readonly fromFile: boolean }[];
  readonly tlsPolicy: readonly string[];
  readonly relayDomains: readonly string[];
  readonly relayRecipients?: string;
  readonly relayCa?: string;
  readonly passwordFile?: string;
  readonly dns: DnsServer | null;
  readonly workers?: string;
  readonly concurrency?: string;
  readonly coolOff?: string;
  readonly timeout?: string;
  readonly retryAfter?: string;
  readonly retryMax?: string;
  readonly lifetime?: string;
  readonly maxHops?: string;
  readonly delayWarning?: string;
}

export interface Parsers {
  duration(text: string, what: string): number;
  count(text: string, what: string, min: number): number;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new SetupError(`${what}: cannot read ${path}: ${(error as Error).message}`);
  }
}

function parseRoute(text: string, what: string, fromFile: boolean, password: string | null): RelayRoute {
  return text.trim().toLowerCase() === 'mx' ? { kind: 'mx' } : { kind: 'smarthost', hosts: [parseSmarthost(text.trim(), what, fromFile, password)] };
}

/** RelaySettings from their texts (relaying is on when relayEnabled() says so). */
export function parseRelaySettings(texts: RelayTexts, parse: Parsers, defaultWorkers: number): RelaySettings {
  const password = texts.passwordFile ? readText(texts.passwordFile, '--relay-password-file').split(/\r?\n/)[0] : null;
  let route: RelayRoute | null = null;
  if (texts.relay.length > 0) {
    const mx = texts.relay.filter((r) => r.text.trim().toLowerCase() === 'mx');
    if (mx.length > 0 && mx.length < texts.relay.length) throw new UsageError('--relay mx cannot be combined with smarthost URLs');
    route = mx.length > 0 ? { kind: 'mx' } : { kind: 'smarthost', hosts: texts.relay.map((r) => parseSmarthost(r.text.trim(), '--relay', r.fromFile, password)) };
  }
  const routes = new Map<string, RelayRoute>();
  for (const { text, fromFile } of texts.routes) {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--route: "${text}" is not DOMAIN=URL or DOMAIN=mx`);
    const domain = normalizeDomain(text.slice(0, eq).trim());
    const next = parseRoute(text.slice(eq + 1), '--route', fromFile, password);
    const prior = routes.get(domain);
    // Repeating a domain's smarthost route adds a fallback, as repeating --relay does.
    if (prior?.kind === 'smarthost' && next.kind === 'smarthost') routes.set(domain, { kind: 'smarthost', hosts: [...prior.hosts, ...next.hosts] });
    else routes.set(domain, next);
  }
  const tlsPolicy = new Map<string, TlsRequirement>();
  for (const text of texts.tlsPolicy) {
    const m = /^([^=\s]+)=(require|verify)$/i.exec(text.trim());
    if (!m) throw new UsageError(`--tls-policy: "${text}" is not DOMAIN=require or DOMAIN=verify`);
    tlsPolicy.set(normalizeDomain(m[1]), m[2].toLowerCase() as TlsRequirement);
  }
  const recipients = texts.relayRecipients
    ? new Set(readText(texts.relayRecipients, '--relay-recipients').split(/\r?\n/).map((l) => l.replace(/#.*$/, '').trim().toLowerCase()).filter(Boolean))
    : null;
  return Object.freeze({
    route,
    routes,
    tlsPolicy,
    relayDomains: Object.freeze(texts.relayDomains.map(normalizeDomain)),
    relayRecipients: recipients,
    password,
    ca: texts.relayCa ? readText(texts.relayCa, '--relay-ca') : null,
    dns: texts.dns,
    workers: texts.workers ? parse.count(texts.workers, '--workers', 1) : defaultWorkers,
    concurrency: texts.concurrency ? parse.count(texts.concurrency, '--relay-concurrency', 1) : RELAY_DEFAULTS.concurrency,
    coolOffMs: texts.coolOff ? parse.duration(texts.coolOff, '--relay-cool-off') : RELAY_DEFAULTS.coolOffMs,
    timeoutMs: texts.timeout ? parse.duration(texts.timeout, '--relay-timeout') : null,
    retryAfterMs: texts.retryAfter ? parse.duration(texts.retryAfter, '--retry-after') : RELAY_DEFAULTS.retryAfterMs,
    retryMaxMs: texts.retryMax ? parse.duration(texts.retryMax, '--retry-max') : RELAY_DEFAULTS.retryMaxMs,
    lifetimeMs: texts.lifetime ? parse.duration(texts.lifetime, '--queue-lifetime') : RELAY_DEFAULTS.lifetimeMs,
    maxHops: texts.maxHops ? parse.count(texts.maxHops, '--max-hops', 1) : RELAY_DEFAULTS.maxHops,
    delayWarningMs: texts.delayWarning ? parse.duration(texts.delayWarning, '--delay-warning') : null,
  });
}

/** True when anything is relayed: --relay, a --route or a --relay-domain. */
export function relayEnabled(settings: RelaySettings): boolean {
  return settings.route !== null || settings.routes.size > 0 || settings.relayDomains.length > 0;
}

/** The route for a recipient domain: its --route, else --relay's, else its MX hosts (a --relay-domain). */
export function routeFor(settings: RelaySettings, domain: string): RelayRoute {
  return settings.routes.get(normalizeDomain(domain)) ?? settings.route ?? { kind: 'mx' };
}

/** A destination: what the concurrency cap and the cool-off count by (a domain's MX, or a smarthost list). */
export function destinationKey(route: RelayRoute, domain: string): string {
  return route.kind === 'mx' ? `mx:${normalizeDomain(domain)}` : `smarthost:${route.hosts.map((h) => h.label).join(',')}`;
}

/** Whether a backup MX accepts this recipient of a --relay-domain (null list: every one). */
export function relayRecipientAllowed(settings: RelaySettings, local: string, domain: string): boolean {
  const list = settings.relayRecipients;
  if (list === null) return true;
  const l = local.toLowerCase();
  return list.has(l) || list.has(`${l}@${normalizeDomain(domain)}`);
}
