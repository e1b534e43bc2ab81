/**
 * @module Configuration of `mailbox serve`: defaults, the config file, validation.
 * Rule: every flag can come from the config file and the command line wins; the result is a
 * frozen Config that is passed down, never read from a global. Which settings exist, and which
 * of them repeat, is the table in serve/settings.ts.
 *
 * Config file format: one setting per line, `name value`, where name is a long flag of
 * `mailbox serve` without its dashes; `#` starts a comment; a flag that can repeat may repeat.
 *
 *     # /etc/mailbox.conf
 *     listen 127.0.0.1:1025
 *     listen [::1]:1025
 *     data /var/spool/mailbox
 *     domain example.test
 *     max-size 25M
 *     max-age 7d
 *     listen-tls 0.0.0.0:465
 *     pop3 127.0.0.1:1110
 *     imap 127.0.0.1:1143
 *     tls-cert /etc/mailbox/cert.pem
 *     tls-key /etc/mailbox/key.pem
 *     require-tls yes
 *     trust 10.0.0.0/8
 *
 * On/off settings (require-tls, starttls, allow-insecure-auth, auth-any) take yes or no.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { checkDomain, normalizeDomain, parseMailbox, type Mailbox } from './core/address.ts';
import { DEFAULT_LIMITS, type Limits } from './core/limits.ts';
import { DEFAULT_RETURN_LIMIT_BYTES } from './delivery/bounce.ts';
import { SetupError, UsageError } from './exit-status.ts';
import { LOOPBACK_NETWORKS, isLoopbackHost, parseCidr, type Cidr } from './auth/networks.ts';
import { parseHostPort } from './transport/host-port.ts';
import { fileSetting, optionKey, settingNamed, type SettingName } from './serve/settings.ts';
import { parseRelaySettings, relayEnabled, type RelaySettings } from './delivery/relay-settings.ts';
import { parseDnsServer } from './dns/resolv-conf.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Who is trusted: may relay without AUTH, and is exempt from the per-address connection cap. */
export interface TrustConfig {
  readonly networks: readonly Cidr[];
  /** Clients of --listen unix:/path listeners (local programs; the socket's mode guards it). */
  readonly unixClients: boolean;
}

export interface ServeConfig {
  /** Plain SMTP listeners (STARTTLS offered unless --no-starttls). */
  readonly listen: readonly ListenAddress[];
  /** Implicit-TLS listeners (RFC 8314). */
  readonly listenTls: readonly ListenAddress[];
  /** Unix-domain socket listeners. */
  readonly listenUnix: readonly string[];
  /** POP3 listeners, STLS offered (empty with --pop3 off). */
  readonly pop3: readonly ListenAddress[];
  /** Implicit-TLS POP3 listeners (RFC 8314). */
  readonly pop3Tls: readonly ListenAddress[];
  /** IMAP listeners, STARTTLS offered (empty with --imap off). */
  readonly imap: readonly ListenAddress[];
  /** Implicit-TLS IMAP listeners (RFC 8314). */
  readonly imapTls: readonly ListenAddress[];
  /** HTTP listeners (empty with --http off). */
  readonly http: readonly ListenAddress[];
  /** --http-insecure: clear HTTP allowed on a non-loopback --http address. */
  readonly httpInsecure: boolean;
  /** --tls-cert and --tls-key; null means the self-signed certificate in <data>/tls. */
  readonly tlsFiles: { readonly cert: string; readonly key: string } | null;
  readonly starttls: boolean;
  readonly requireTls: boolean;
  /** The users file in force, or null when AUTH is not offered (unless authAny). */
  readonly usersFile: string | null;
  readonly allowInsecureAuth: boolean;
  readonly authAny: boolean;
  readonly trust: TrustConfig;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly dataDir: string;
  readonly hostname: string;
  /** Local domains; null means every domain (catch-all development mode). */
  readonly domains: readonly string[] | null;
  /**
   * Where "RCPT TO:<Postmaster>" is delivered (RFC 5321 §4.5.1): --postmaster, else postmaster@
   * the first --domain, else postmaster@ the host name. Always a local mailbox.
   */
  readonly postmaster: Mailbox;
  readonly limits: Limits;
  readonly maxMessages: number | null;
  readonly maxAgeMs: number | null;
  /** --bounce-size-limit: a bounce returns the message whole (RET=FULL) up to this size, its header above it. */
  readonly bounceSizeLimitBytes: number;
  readonly log: 'text' | 'json';
  readonly logFile: string | null;
  readonly shutdownTimeoutMs: number;
  /** --faults: the JSON file of scripted faults (core/faults.ts), or null for none. */
  readonly faultsFile: string | null;
  /** --relay, --relay-domain, --route and their settings (relayEnabled() says whether anything is relayed). */
  readonly relay: RelaySettings;
}

/** The raw options as cac hands them over (strings, numbers, arrays, or undefined). */
export type RawOptions = Record<string, unknown>;

/** Defaults of the connection caps: overall, and per client address outside trusted networks. */
export const DEFAULT_MAX_CONNECTIONS = 4096;
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 50;

/** XDG_DATA_HOME/mailbox, else ~/.local/share/mailbox (root too: a per-user default). */
export function defaultDataDir(env: Record<string, string | undefined>): string {
  const base = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'mailbox');
}

/** Reads a config file into setting name → values. Unknown names are errors, with the line. */
export function readConfigFile(path: string): Map<SettingName, string[]> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SetupError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  const settings = new Map<SettingName, string[]>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const space = line.search(/\s/);
    const name = (space < 0 ? line : line.slice(0, space)).replace(/^--/, '');
    const value = space < 0 ? '' : line.slice(space + 1).trim();
    const setting = fileSetting(name);
    if (!setting) throw new SetupError(`${path}:${index + 1}: unknown setting "${name}"`);
    if (value === '') throw new SetupError(`${path}:${index + 1}: "${name}" needs a value`);
    const list = settings.get(setting.name) ?? [];
    if (!setting.repeats && list.length > 0) throw new SetupError(`${path}:${index + 1}: "${name}" is set twice`);
    if (setting.value === null && parseSwitch(value) === null) throw new SetupError(`${path}:${index + 1}: "${name}" takes yes or no`);
    list.push(value);
    settings.set(setting.name, list);
  });
  return settings;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "50M", "1024", "2G" → bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new UsageError(`${what}: "${text}" is not a size (examples: 1048576, 512K, 50M, 1G)`);
  return Math.floor(Number(m[1]) * unit);
}

/** "30s", "5m", "7d", "300" (seconds) → milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what}: "${text}" is not a duration (examples: 30s, 5m, 2h, 7d)`);
  return Math.floor(Number(m[1]) * TIME_UNITS[m[2].toLowerCase()]);
}

function parseCount(text: string, what: string, min: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) throw new UsageError(`${what}: "${text}" must be a whole number of at least ${min}`);
  return Number(text);
}

function parseSwitch(text: string): boolean | null {
  const t = text.trim().toLowerCase();
  if (t === 'yes' || t === 'true' || t === 'on') return true;
  if (t === 'no' || t === 'false' || t === 'off') return false;
  return null;
}

const asList = (value: unknown): string[] =>
  value === undefined || value === null ? [] : (Array.isArray(value) ? value : [value]).map((v) => String(v));

/** Builds the frozen serve configuration: defaults < config file < command line. */
export function buildServeConfig(options: RawOptions, env: Record<string, string | undefined>): ServeConfig {
  const file = options.config ? readConfigFile(String(options.config)) : new Map<SettingName, string[]>();
  const pick = (name: SettingName): string[] => {
    const cli = asList(options[optionKey(name)]);
    return cli.length > 0 ? cli : (file.get(name) ?? []);
  };
  const one = (name: SettingName): string | undefined => pick(name).at(-1);
  /** The values and whether they came from the config file (where a password may be written). */
  const sourced = (name: SettingName) => {
    const cli = asList(options[optionKey(name)]);
    return cli.length > 0 ? cli.map((text) => ({ text, fromFile: false })) : (file.get(name) ?? []).map((text) => ({ text, fromFile: true }));
  };

  /** A switch: the command line says only "on" (--flag) or, for --no-flag, "off". */
  const toggle = (name: SettingName): boolean => {
    const fallback = settingNamed(name).onByDefault;
    const cli = options[optionKey(name)];
    if (cli === true || cli === false) return cli === !fallback ? cli : (file.has(name) ? parseSwitch(file.get(name)![0])! : fallback);
    return file.has(name) ? parseSwitch(file.get(name)![0])! : fallback;
  };

  const listenTexts = pick('listen');
  const tlsTexts = pick('listen-tls');
  const hostPort = (flag: string, example: string) => (text: string) => {
    const parsed = parseHostPort(text, { defaultHost: '127.0.0.1', portZero: true });
    if ('error' in parsed) throw new UsageError(`${flag}: "${text}" is not HOST:PORT (example: ${example})`);
    return Object.freeze(parsed);
  };
  const unixTexts = listenTexts.filter((t) => t.startsWith('unix:'));
  for (const t of unixTexts) if (t.length <= 'unix:'.length) throw new UsageError(`--listen: "${t}" needs a path (example: unix:/run/mailbox/smtp.sock)`);
  const tcpTexts = listenTexts.filter((t) => !t.startsWith('unix:'));
  const listen = (listenTexts.length === 0 && tlsTexts.length === 0 ? ['127.0.0.1:1025'] : tcpTexts).map(hostPort('--listen', '127.0.0.1:1025'));
  const listenTls = tlsTexts.map(hostPort('--listen-tls', '127.0.0.1:1465'));
  const pop3Texts = pick('pop3');
  if (pop3Texts.includes('off') && pop3Texts.length > 1) throw new UsageError('--pop3 off cannot be combined with addresses');
  const pop3 = (pop3Texts.length === 0 ? ['127.0.0.1:1110'] : pop3Texts.filter((t) => t !== 'off')).map(hostPort('--pop3', '127.0.0.1:1110'));
  const pop3Tls = pick('pop3-tls').map(hostPort('--pop3-tls', '127.0.0.1:1995'));
  const imapTexts = pick('imap');
  if (imapTexts.includes('off') && imapTexts.length > 1) throw new UsageError('--imap off cannot be combined with addresses');
  const imap = (imapTexts.length === 0 ? ['127.0.0.1:1143'] : imapTexts.filter((t) => t !== 'off')).map(hostPort('--imap', '127.0.0.1:1143'));
  const imapTls = pick('imap-tls').map(hostPort('--imap-tls', '127.0.0.1:1993'));

  const httpTexts = pick('http');
  if (httpTexts.includes('off') && httpTexts.length > 1) throw new UsageError('--http off cannot be combined with addresses');
  const http = (httpTexts.length === 0 ? ['127.0.0.1:8025'] : httpTexts.filter((t) => t !== 'off')).map(hostPort('--http', '127.0.0.1:8025'));

  const certFile = one('tls-cert');
  const keyFile = one('tls-key');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');

  const trustTexts = pick('trust').flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  let trust: TrustConfig;
  if (trustTexts.includes('none')) {
    if (trustTexts.length > 1) throw new UsageError('--trust none cannot be combined with networks');
    trust = { networks: [], unixClients: false };
  } else if (trustTexts.length > 0) {
    const networks = trustTexts.map((t) => {
      const cidr = parseCidr(t);
      if (!cidr) throw new UsageError(`--trust: "${t}" is not a network (examples: 10.0.0.0/8, 2001:db8::/32, 192.0.2.7, none)`);
      return Object.freeze(cidr);
    });
    trust = { networks, unixClients: true };
  } else {
    // DESIGN.md: never an open relay. Loopback is trusted only while no listener faces a network.
    const allLoopback = [...listen, ...listenTls].every((a) => isLoopbackHost(a.host));
    trust = { networks: allLoopback ? LOOPBACK_NETWORKS : [], unixClients: true };
  }

  const dataDir = one('data') ?? defaultDataDir(env);
  const usersGiven = one('users');
  const usersDefault = join(dataDir, 'users');
  const usersFile = usersGiven ?? (existsSync(usersDefault) ? usersDefault : null);

  const domainTexts = pick('domain').flatMap((d) => d.split(',')).map((d) => d.trim()).filter(Boolean);
  for (const d of domainTexts) {
    const why = checkDomain(d, true);
    if (why) throw new UsageError(`--domain: ${why}`);
  }

  const hostname = one('hostname') ?? osHostname();
  const relay = buildRelaySettings(sourced, pick, one);
  // With a relay and no --domain, the local domains are the host name and localhost (issue 10).
  const domains = domainTexts.length > 0 ? domainTexts.map(normalizeDomain) : relayEnabled(relay) ? [...new Set([normalizeDomain(hostname), 'localhost'])] : null;
  const postmaster = resolvePostmaster(one('postmaster'), domains, hostname);

  const get = {
    maxSize: one('max-size'),
    maxRecipients: one('max-recipients'),
    maxErrors: one('max-errors'),
    commandTimeout: one('command-timeout'),
    dataTimeout: one('data-timeout'),
    maxMessages: one('max-messages'),
    maxAge: one('max-age'),
    bounceSizeLimit: one('bounce-size-limit'),
    log: one('log'),
    shutdownTimeout: one('shutdown-timeout'),
    maxConnections: one('max-connections'),
    maxConnectionsPerIp: one('max-connections-per-ip'),
  };
  const limits: Limits = Object.freeze({
    ...DEFAULT_LIMITS,
    maxMessageBytes: get.maxSize ? parseSize(get.maxSize, '--max-size') : DEFAULT_LIMITS.maxMessageBytes,
    // RFC 5321 §4.5.3.1.8: at least 100.
    maxRecipients: get.maxRecipients ? parseCount(get.maxRecipients, '--max-recipients', 100) : DEFAULT_LIMITS.maxRecipients,
    maxErrors: get.maxErrors ? parseCount(get.maxErrors, '--max-errors', 1) : DEFAULT_LIMITS.maxErrors,
    commandTimeoutMs: get.commandTimeout ? parseDuration(get.commandTimeout, '--command-timeout') : DEFAULT_LIMITS.commandTimeoutMs,
    dataTimeoutMs: get.dataTimeout ? parseDuration(get.dataTimeout, '--data-timeout') : DEFAULT_LIMITS.dataTimeoutMs,
  });
  const log = get.log ?? 'text';
  if (log !== 'text' && log !== 'json') throw new UsageError(`--log: "${log}" must be text or json`);

  return Object.freeze({
    listen: Object.freeze(listen),
    listenTls: Object.freeze(listenTls),
    listenUnix: Object.freeze(unixTexts.map((t) => t.slice('unix:'.length))),
    pop3: Object.freeze(pop3),
    pop3Tls: Object.freeze(pop3Tls),
    imap: Object.freeze(imap),
    imapTls: Object.freeze(imapTls),
    http: Object.freeze(http),
    httpInsecure: toggle('http-insecure'),
    tlsFiles: certFile !== undefined && keyFile !== undefined ? Object.freeze({ cert: certFile, key: keyFile }) : null,
    starttls: toggle('starttls'),
    requireTls: toggle('require-tls'),
    usersFile,
    allowInsecureAuth: toggle('allow-insecure-auth'),
    authAny: toggle('auth-any'),
    trust: Object.freeze({ networks: Object.freeze(trust.networks), unixClients: trust.unixClients }),
    maxConnections: get.maxConnections ? parseCount(get.maxConnections, '--max-connections', 1) : DEFAULT_MAX_CONNECTIONS,
    maxConnectionsPerIp: get.maxConnectionsPerIp ? parseCount(get.maxConnectionsPerIp, '--max-connections-per-ip', 1) : DEFAULT_MAX_CONNECTIONS_PER_IP,
    dataDir,
    hostname,
    domains: domains ? Object.freeze(domains) : null,
    postmaster: Object.freeze(postmaster),
    limits,
    maxMessages: get.maxMessages ? parseCount(get.maxMessages, '--max-messages', 1) : null,
    maxAgeMs: get.maxAge ? parseDuration(get.maxAge, '--max-age') : null,
    bounceSizeLimitBytes: get.bounceSizeLimit ? parseSize(get.bounceSizeLimit, '--bounce-size-limit') : DEFAULT_RETURN_LIMIT_BYTES,
    log,
    logFile: one('log-file') ?? null,
    shutdownTimeoutMs: get.shutdownTimeout ? parseDuration(get.shutdownTimeout, '--shutdown-timeout') : 30_000,
    faultsFile: one('faults') ?? null,
    relay,
  });
}

/** The relay's settings from the config file and the command line (delivery/relay-settings.ts). */
function buildRelaySettings(
  sourced: (name: SettingName) => { text: string; fromFile: boolean }[],
  pick: (name: SettingName) => string[],
  one: (name: SettingName) => string | undefined,
): RelaySettings {
  const dnsText = one('dns');
  const dns = dnsText === undefined ? null : parseDnsServer(dnsText);
  if (dns !== null && 'error' in dns) throw new UsageError(`--dns ${dnsText}: ${dns.error}`);
  const split = (name: SettingName) => pick(name).flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  for (const d of split('relay-domain')) {
    const why = checkDomain(d, true);
    if (why) throw new UsageError(`--relay-domain: ${why}`);
  }
  const cores = typeof navigator === 'undefined' ? 1 : navigator.hardwareConcurrency;
  return parseRelaySettings(
    {
      relay: sourced('relay'),
      routes: sourced('route'),
      tlsPolicy: split('tls-policy'),
      relayDomains: split('relay-domain'),
      relayRecipients: one('relay-recipients'),
      relayCa: one('relay-ca'),
      passwordFile: one('relay-password-file'),
      dns,
      workers: one('workers'),
      concurrency: one('relay-concurrency'),
      coolOff: one('relay-cool-off'),
      timeout: one('relay-timeout'),
      retryAfter: one('retry-after'),
      retryMax: one('retry-max'),
      lifetime: one('queue-lifetime'),
      maxHops: one('max-hops'),
      delayWarning: one('delay-warning'),
    },
    { duration: parseDuration, count: parseCount },
    // The main thread is busy too (listeners, spool, journal): one core is left to it. On 2 cores,
    // bench:relay's drain used 0.38 ms of serve's CPU per message with one Worker, 0.46 with two.
    Math.max(1, Math.min(4, cores - 1)),
  );
}

/**
 * RFC 5321 §4.5.1: mail to the bare "<Postmaster>" is delivered locally, never relayed, so an
 * address given for it must be in a local domain (any domain in catch-all mode).
 */
function resolvePostmaster(text: string | undefined, domains: readonly string[] | null, hostname: string): Mailbox {
  if (text === undefined) return { local: 'postmaster', domain: domains ? domains[0] : hostname };
  const parsed = parseMailbox(text.trim().replace(/^<(.*)>$/, '$1'), true);
  if (!parsed.ok) throw new UsageError(`--postmaster: "${text}" is not an address: ${parsed.why}`);
  if (domains && !domains.includes(normalizeDomain(parsed.mailbox.domain))) {
    throw new UsageError(`--postmaster: ${text} is not in a --domain (${domains.join(', ')}); mail for <Postmaster> is delivered locally, never relayed`);
  }
  return parsed.mailbox;
}
