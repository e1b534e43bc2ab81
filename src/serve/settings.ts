/**
 * @module The settings of `mailbox serve`, one row each: the one table from which the cac options,
 * the config-file keys (and which of them repeat) and the --help text are generated.
 * Rule 1: a setting's name is its config-file key and its long flag without the dashes; a switch
 *         that is on by default is turned off with --no-NAME on the command line, NAME no in the file.
 * Rule 2: a new serve setting is a new row here, a field of ServeConfig (config.ts) and a README row.
 */

export interface Setting<N extends string = string> {
  readonly name: N;
  /** The value's placeholder in --help ("host:port"); null for a switch. */
  readonly value: string | null;
  /** May be given more than once, on the command line and in the file. */
  readonly repeats: boolean;
  /** A switch that is on unless turned off (its flag is --no-NAME). */
  readonly onByDefault: boolean;
  /** The config file may set it (every setting but --config itself). */
  readonly inFile: boolean;
  readonly help: string;
}

function valued<const N extends string>(name: N, value: string, help: string, options: { repeats?: boolean; inFile?: boolean } = {}): Setting<N> {
  return { name, value, repeats: options.repeats ?? false, onByDefault: false, inFile: options.inFile ?? true, help };
}

function toggle<const N extends string>(name: N, onByDefault: boolean, help: string): Setting<N> {
  return { name, value: null, repeats: false, onByDefault, inFile: true, help };
}

export const SERVE_SETTINGS = Object.freeze([
  valued('listen', 'host:port', 'SMTP listener address, or unix:/path; repeat for several; port 0 picks a free one (default 127.0.0.1:1025)', { repeats: true }),
  valued('data', 'dir', 'Spool directory (default $XDG_DATA_HOME/mailbox or ~/.local/share/mailbox)'),
  valued('hostname', 'name', 'Name used in the greeting and Received headers (default: the host name)'),
  valued('domain', 'domain', 'Accept mail only for this domain; repeat or comma-separate (default: every domain)', { repeats: true }),
  valued('postmaster', 'address', 'Mailbox that gets RCPT TO:<Postmaster> (default postmaster@ the first --domain, or @ the host name)'),
  valued('max-size', 'size', 'Largest message accepted, advertised in SIZE (default 50M)'),
  valued('max-recipients', 'n', 'Recipients per message, at least 100 (default 1000)'),
  valued('max-errors', 'n', 'Failed commands per session before it is closed (default 20)'),
  valued('command-timeout', 'duration', 'Idle time allowed between commands (default 5m)'),
  valued('data-timeout', 'duration', 'Idle time allowed inside DATA (default 5m)'),
  valued('max-messages', 'n', 'Keep at most this many local messages; the oldest are deleted, checked every minute (mail queued for relay is never deleted)'),
  valued('max-age', 'duration', 'Delete local messages older than this, e.g. 7d, checked every minute'),
  valued('bounce-size-limit', 'size', 'A bounce returns the message whole when the sender asked (RET=FULL) up to this size, and only its header above it (default 1M)'),
  valued('delay-warning', 'duration', 'Tell a sender once that a message has been deferred this long (NOTIFY=DELAY, RFC 3461); off by default'),
  valued('log', 'format', 'Log format: text (one readable line per event) or json (default text)'),
  valued('log-file', 'file', 'Append the log to this file instead of standard error; reopened on SIGHUP'),
  valued('shutdown-timeout', 'duration', 'How long SIGTERM waits for open transactions (default 30s)'),
  valued('listen-tls', 'host:port', 'Implicit-TLS listener (RFC 8314, like port 465); repeat for several; port 0 picks a free one', { repeats: true }),
  valued('pop3', 'host:port', 'POP3 listener (RFC 1939, STLS offered); repeat for several; port 0 picks a free one; off for none (default 127.0.0.1:1110)', { repeats: true }),
  valued('pop3-tls', 'host:port', 'Implicit-TLS POP3 listener (RFC 8314, like port 995); repeat for several; port 0 picks a free one (default none)', { repeats: true }),
  valued('imap', 'host:port', 'IMAP listener (RFC 3501, STARTTLS offered); repeat for several; port 0 picks a free one; off for none (default 127.0.0.1:1143)', { repeats: true }),
  valued('imap-tls', 'host:port', 'Implicit-TLS IMAP listener (RFC 8314, like port 993); repeat for several; port 0 picks a free one (default none)', { repeats: true }),
  valued('http', 'host:port', 'HTTP listener: the Mailpit-compatible API, our API and the web UI; repeat for several; port 0 picks a free one; off for none (default 127.0.0.1:8025). Off loopback it serves HTTPS with the TLS certificate and needs --users', { repeats: true }),
  toggle('http-insecure', false, 'Allow clear HTTP (not HTTPS) on a non-loopback --http address; credentials then cross the network in clear'),
  valued('tls-cert', 'file', 'PEM certificate chain (default: a self-signed one kept in <data>/tls); reread on SIGHUP'),
  valued('tls-key', 'file', 'PEM private key for --tls-cert'),
  toggle('starttls', true, 'Do not offer STARTTLS on --listen and --imap listeners, nor STLS on --pop3 ones'),
  toggle('require-tls', false, 'Refuse MAIL with 530 5.7.0 until the session is encrypted'),
  valued('users', 'file', 'Users allowed to AUTH and to log in over POP3 and IMAP, "name:hash" per line (default <data>/users if it exists)'),
  toggle('allow-insecure-auth', false, 'Offer AUTH, POP3 USER/PASS and IMAP LOGIN before TLS too (passwords then cross the network in clear)'),
  toggle('auth-any', false, 'Development: accept any AUTH credentials and record the user name'),
  valued('trust', 'cidr', 'Trusted network (repeat); "none" trusts nobody (default: loopback if every listener is on loopback)', { repeats: true }),
  valued('max-connections', 'n', 'Concurrent connections in all (default 4096); more get 421 4.7.0'),
  valued('max-connections-per-ip', 'n', 'Concurrent connections per client address outside trusted networks (default 50)'),
  valued('relay', 'mx|url', 'Relay mail for non-local domains: "mx" (each domain\'s MX hosts) or a smarthost smtp://host:port, smtp+starttls://user@host:587, smtps://user@host:465 (?tls=insecure skips the certificate check); repeat URLs for fallbacks; passwords only in the config file or --relay-password-file', { repeats: true }),
  valued('relay-domain', 'domain', 'Accept mail for this domain from anyone and forward it to its other MX hosts (backup MX); repeat for several', { repeats: true }),
  valued('relay-recipients', 'file', 'Local parts (or addresses) a --relay-domain accepts, one per line, so a backup MX refuses what its primary would (default: any)'),
  valued('route', 'domain=url|mx', 'Send one domain elsewhere: DOMAIN=smtp://host:port or DOMAIN=mx; repeat for several', { repeats: true }),
  valued('tls-policy', 'domain=require|verify', 'TLS towards a domain\'s MX hosts: require (STARTTLS or defer) or verify (also a certificate valid for the MX name); default opportunistic', { repeats: true }),
  valued('relay-ca', 'file', 'PEM CA certificates trusted besides the system\'s for smarthosts and --tls-policy verify'),
  valued('relay-password-file', 'file', 'The smarthost password (first line), for --relay URLs that name a user'),
  valued('dns', 'host[:port]', 'DNS server the relay asks for MX records (default: the first nameserver in /etc/resolv.conf)'),
  valued('workers', 'n', 'Delivery Worker threads (default: the number of cores less one for the main thread, 1 to 4)'),
  valued('relay-concurrency', 'n', 'Connections per destination (a domain\'s MX hosts, or a smarthost) at most (default 10)'),
  valued('relay-cool-off', 'duration', 'How long a destination that cannot be reached is left alone; its mail is deferred without a connection (default 5m)'),
  valued('relay-timeout', 'duration', 'Caps every relay client timeout (RFC 5321 §4.5.3.2: 5m greeting, MAIL, RCPT; 2m DATA; 3m per block; 10m after the dot; 30s connect)'),
  valued('retry-after', 'duration', 'First retry of a deferred recipient; the wait doubles each time (default 5m)'),
  valued('retry-max', 'duration', 'Longest wait between retries (default 1h)'),
  valued('queue-lifetime', 'duration', 'Give up on a deferred recipient after this long and bounce it with 4.4.7 (default 5d)'),
  valued('max-hops', 'n', 'More Received: fields than this is a mail loop, refused with 554 5.4.6 (default 100, RFC 5321 §6.3)'),
  valued('faults', 'file', 'Scripted faults for testing senders: JSON rules per stage (see the example below and the README); reread on SIGHUP'),
  valued('config', 'file', 'Read settings from a file: one "name value" per line, names as the flags', { inFile: false }),
] as const);

export type SettingName = (typeof SERVE_SETTINGS)[number]['name'];

const BY_NAME: ReadonlyMap<string, Setting<SettingName>> = new Map(SERVE_SETTINGS.map((s) => [s.name, s]));

export function settingNamed(name: SettingName): Setting<SettingName> {
  return BY_NAME.get(name)!;
}

/** The setting the config file calls `name`, or undefined when it has none of that name. */
export function fileSetting(name: string): Setting<SettingName> | undefined {
  const setting = BY_NAME.get(name);
  return setting?.inFile ? setting : undefined;
}

/** The flag as cac declares it and --help shows it: "--listen <host:port>", "--no-starttls". */
export function formatFlag(setting: Setting): string {
  if (setting.value === null) return setting.onByDefault ? `--no-${setting.name}` : `--${setting.name}`;
  return `--${setting.name} <${setting.value}>`;
}

/**
 * The key under which cac hands the setting's value over: "listen-tls" → "listenTls". As cac
 * camel-cases only a dash between two letters, "pop3-tls" stays "pop3-tls".
 */
export function optionKey(name: string): string {
  return name.replace(/([a-z])-([a-z])/g, (_, a: string, b: string) => a + b.toUpperCase());
}
