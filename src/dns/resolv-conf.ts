/**
 * @module Which DNS server to ask: `--dns HOST[:PORT]`, or the first `nameserver` of
 * /etc/resolv.conf (resolv.conf(5)), or 127.0.0.1:53 as the C library assumes when it has none.
 * Rule: parsing is pure; reading the file is the caller's, so tests give the text.
 */
import { isIP } from 'node:net';
import { parseHostPort } from '../transport/host-port.ts';
import type { DnsServer } from './resolver.ts';

export const DNS_PORT = 53;
/** resolv.conf(5): with no nameserver line, the resolver uses the name server on the local machine. */
export const FALLBACK_SERVER: DnsServer = { host: '127.0.0.1', port: DNS_PORT };

/** The first usable `nameserver` address in resolv.conf text, or null. */
export function parseResolvConf(text: string): DnsServer | null {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (!m) continue;
    // A link-local IPv6 server carries a zone ("fe80::1%eth0"); node:dgram takes it as written.
    const host = m[1];
    if (isIP(host.replace(/%.*$/, '')) !== 0) return { host, port: DNS_PORT };
  }
  return null;
}

/** "HOST", "HOST:PORT", "[V6]:PORT" or a bare IPv6 address; HOST must be an IP address. */
export function parseDnsServer(text: string): DnsServer | { readonly error: string } {
  const parsed = parseHostPort(text, { defaultPort: DNS_PORT, ipOnly: true, bareIpv6: true });
  if ('error' in parsed && / is not an IP address$/.test(parsed.error)) return { error: `${parsed.error} (the DNS server is named by address, as in resolv.conf)` };
  return parsed;
}
