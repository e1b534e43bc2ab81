/**
 * The peers the test suite relies on, each a capability with its check and the Debian package
 * that provides it. scripts/check-peers.ts checks every one before `npm test` runs its tests, and
 * a test that needs one calls requirePeers() first: a missing peer fails that test with the line
 * that installs it, never skips it. A new peer (chromium, fetchmail, mutt) is one more entry here
 * and its package one more word in scripts/install-peers (a test keeps the two in step).
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';

export interface Capability {
  /** What the suite uses it for, shown when it is missing. */
  readonly use: string;
  /** The Debian packages that give it; empty when no package can. */
  readonly packages: readonly string[];
  /** Why it is missing here, or undefined when it works. */
  missing(): string | undefined;
}

const PYTHON = process.env.SYSTEM_PYTHON ?? '/usr/bin/python3';
/** Debian's chromium; playwright-core downloads no browser of its own here. */
export const CHROMIUM = '/usr/bin/chromium';

function file(path: string): () => string | undefined {
  return () => (existsSync(path) ? undefined : `${path} is missing`);
}

function run(argv: string[]): { ok: boolean; text: string } {
  try {
    const r = Bun.spawnSync(argv, { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
    return { ok: r.exitCode === 0, text: `${r.stdout.toString()}${r.stderr.toString()}` };
  } catch (error) {
    return { ok: false, text: (error as Error).message };
  }
}

function userExists(name: string): boolean {
  return run(['getent', 'passwd', name]).ok;
}

/** `swaks --support` (Debian's swaks takes no argument to it) must list each of `features`. */
function swaksSupports(features: string[]): () => string | undefined {
  return () => {
    const r = run(['swaks', '--support']);
    if (r.text.includes('No such file') || r.text.includes('ENOENT')) return 'swaks is missing';
    const lacking = features.filter((f) => !r.text.includes(`=== ${f} supported`));
    if (lacking.length === 0) return undefined;
    const why = lacking.map((f) => new RegExp(`\\*\\*\\* ${f} not available: ([^\\n]*)`).exec(r.text)?.[1] ?? 'not listed');
    return `swaks --support lacks ${lacking.map((f, i) => `"${f} supported" (${why[i]})`).join(', ')}`;
  };
}

export const CAPABILITIES = {
  root: {
    use: 'private Postfix instances and receivers on port 25',
    packages: [],
    missing: () => (process.getuid?.() === 0 ? undefined : `running as ${userInfo().username}, not root: run the tests as root (CI does)`),
  },
  postfix: {
    use: 'private Postfix instances (postfix -c DIR)',
    packages: ['postfix'],
    missing: () => file('/usr/sbin/postfix')() ?? file('/usr/sbin/postconf')() ?? (userExists('postfix') ? undefined : 'the postfix user does not exist'),
  },
  'smtp-sink': { use: 'a sink that stores nothing', packages: ['postfix'], missing: file('/usr/sbin/smtp-sink') },
  'smtp-source': { use: 'the load generator of the benchmark and tests', packages: ['postfix'], missing: file('/usr/sbin/smtp-source') },
  saslpasswd2: { use: 'a private sasldb for Postfix AUTH', packages: ['sasl2-bin'], missing: file('/usr/sbin/saslpasswd2') },
  'sasl-plain-login': {
    use: 'Cyrus SASL PLAIN and LOGIN for Postfix AUTH',
    packages: ['libsasl2-modules'],
    missing: () => {
      const found = run(['sh', '-c', 'ls /usr/lib/*/sasl2/libplain.so* /usr/lib/*/sasl2/liblogin.so* 2>/dev/null']).text;
      return found.includes('libplain.so') && found.includes('liblogin.so') ? undefined : 'the Cyrus SASL PLAIN and LOGIN modules are missing';
    },
  },
  swaks: {
    use: 'swaks as a client, with TLS and AUTH',
    packages: ['swaks', 'libnet-ssleay-perl'],
    missing: swaksSupports(['TLS', 'Basic AUTH']),
  },
  python3: {
    use: "Python's smtplib and email package as independent clients and readers",
    packages: ['python3'],
    missing: () => (run([PYTHON, '-c', 'import smtplib, poplib, ssl, email, json']).ok && run(['python3', '-c', 'import email']).ok ? undefined : `${PYTHON} (and python3 on PATH) cannot import smtplib, poplib, ssl and email`),
  },
  aiosmtpd: {
    use: 'Python receivers (aiosmtpd)',
    packages: ['python3-aiosmtpd'],
    missing: () => (run([PYTHON, '-c', 'import aiosmtpd']).ok ? undefined : `${PYTHON} cannot import aiosmtpd`),
  },
  dnsmasq: { use: 'the DNS server of the verify and MX tests', packages: ['dnsmasq-base'], missing: file('/usr/sbin/dnsmasq') },
  openssl: { use: 'certificates and TLS clients', packages: ['openssl'], missing: () => (run(['openssl', 'version']).ok ? undefined : 'openssl is missing') },
  tmux: { use: 'a terminal for send --interactive', packages: ['tmux'], missing: file('/usr/bin/tmux') },
  msmtp: { use: 'the C client the send benchmark compares with', packages: ['msmtp'], missing: () => (run(['msmtp', '--version']).ok ? undefined : 'msmtp is missing') },
  fetchmail: { use: 'a POP3 and IMAP client that retrieves into a local MDA', packages: ['fetchmail'], missing: () => (run(['fetchmail', '--version']).ok ? undefined : 'fetchmail is missing') },
  mutt: {
    use: 'a terminal IMAP client, driven in tmux',
    packages: ['mutt'],
    missing: () => (/\+USE_IMAP\b/.test(run(['mutt', '-v']).text) ? undefined : 'mutt -v does not list +USE_IMAP'),
  },
  chromium: {
    use: 'the browser the web UI tests drive with playwright-core (executablePath /usr/bin/chromium)',
    packages: ['chromium'],
    missing: () => (/\bChromium \d+/.test(run([CHROMIUM, '--version']).text) ? undefined : `${CHROMIUM} --version does not name Chromium`),
  },
  curl: {
    use: 'curl pop3:// and pop3s:// as clients',
    packages: ['curl'],
    missing: () => {
      const r = run(['curl', '--version']);
      if (!r.ok) return 'curl is missing';
      return /\bpop3\b/.test(r.text) && /\bpop3s\b/.test(r.text) ? undefined : 'curl --version lists no pop3 and pop3s protocols';
    },
  },
} as const satisfies Record<string, Capability>;

export type CapabilityName = keyof typeof CAPABILITIES;

const checked = new Map<CapabilityName, string | undefined>();

/** One line saying what is missing and how to install it, or undefined when `name` works. */
export function missingLine(name: CapabilityName): string | undefined {
  if (!checked.has(name)) checked.set(name, CAPABILITIES[name].missing());
  const why = checked.get(name);
  if (why === undefined) return undefined;
  const { packages, use } = CAPABILITIES[name] as Capability;
  const fix = packages.length > 0 ? `: run scripts/install-peers as root (apt-get install ${packages.join(' ')})` : '';
  return `missing peer ${name} (${use}): ${why}${fix}`;
}

/** Throws one line per missing capability; call it first in a test or its beforeAll. */
export function requirePeers(...names: CapabilityName[]): void {
  const lines = names.map(missingLine).filter((l) => l !== undefined);
  if (lines.length > 0) throw new Error(lines.join('\n'));
}
