/**
 * @module Trusted networks (--trust CIDR): which client addresses may relay without
 * authenticating and are exempt from the per-address connection cap.
 * Rule: loopback is trusted by default only while every TCP listener is on loopback, so a
 *       server put on a public address never trusts a proxy or a NAT by accident.
 */
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 4 | 6;
}

export const LOOPBACK_NETWORKS: readonly Cidr[] = Object.freeze([
  { address: '127.0.0.0', prefix: 8, family: 4 },
  { address: '::1', prefix: 128, family: 6 },
]);

/** "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128); null when it is neither. */
export function parseCidr(text: string): Cidr | null {
  const m = /^\[?([^\]/]+)\]?(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return null;
  const family = isIP(m[1]);
  if (family !== 4 && family !== 6) return null;
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return null;
  return { address: m[1], prefix, family };
}

/** True for a listener host that only local clients can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return /^::ffff:127\./.test(h);
}

/** A set of networks; contains() also matches IPv4 clients seen as IPv4-mapped IPv6 addresses. */
export class Networks {
  readonly #list = new BlockList();
  readonly cidrs: readonly Cidr[];

  constructor(cidrs: readonly Cidr[]) {
    this.cidrs = cidrs;
    for (const c of cidrs) this.#list.addSubnet(c.address, c.prefix, c.family === 4 ? 'ipv4' : 'ipv6');
  }

  contains(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    return this.#list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}
