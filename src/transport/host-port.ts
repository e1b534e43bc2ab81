/**
 * @module The one "host:port" parser: listen addresses, --server, --dns and the like all read
 * through it, with their own default port and rules.
 * Rule: pure; a mistake is returned as a one-line reason for the caller to put beside its flag.
 */
import { isIP } from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface HostPortRules {
  /** The port when the text names none; without it the port is required. */
  readonly defaultPort?: number;
  /** The host for ":PORT"; without it a host is required. */
  readonly defaultHost?: string;
  /** Port 0 (an ephemeral port, for listeners) is allowed. */
  readonly portZero?: boolean;
  /** The host must be an IP address (a DNS server is named as in resolv.conf). */
  readonly ipOnly?: boolean;
  /**
   * A bare IPv6 address ("2001:db8::53") is the host, with the default port. Off by default:
   * "::1:25" would read as one address where the user meant a port.
   */
  readonly bareIpv6?: boolean;
}

const FORM = /^(?:\[([^\]\s]+)\]|([^:\s/[\]]*))(?::(\d+))?$/;

/**
 * "HOST", "HOST:PORT", "[IPv6]", "[IPv6]:PORT", ":PORT" (with a default host), or, where the
 * rules allow it, a bare IPv6 address (which takes the default port).
 */
export function parseHostPort(text: string, rules: HostPortRules = {}): HostPort | { readonly error: string } {
  const trimmed = text.trim();
  const bare = rules.bareIpv6 && isIP(trimmed.replace(/%.*$/, '')) === 6 ? trimmed : null;
  const m = bare === null ? FORM.exec(trimmed) : null;
  if (bare === null && m === null) return { error: 'expected HOST:PORT' };
  const host = bare ?? m![1] ?? (m![2] || rules.defaultHost);
  if (host === undefined || host === '') return { error: 'expected HOST:PORT (the host is missing)' };
  if (m?.[1] !== undefined && isIP(m[1].replace(/%.*$/, '')) !== 6) return { error: `"[${m[1]}]" is not an IPv6 address` };
  if (rules.ipOnly && isIP(host.replace(/%.*$/, '')) === 0) return { error: `"${host}" is not an IP address` };
  const portText = m?.[3];
  if (portText === undefined) {
    if (rules.defaultPort === undefined) return { error: 'expected HOST:PORT (the port is missing)' };
    return { host, port: rules.defaultPort };
  }
  const port = Number(portText);
  const lowest = rules.portZero ? 0 : 1;
  if (!(port >= lowest && port <= 65535)) return { error: `the port must be ${lowest}-65535, got "${portText}"` };
  return { host, port };
}

/** "host:port", with an IPv6 address in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
