// Mail routes from scripted lookups (RFC 5321 §5.1, RFC 7505): MX order, implicit MX, null MX,
// and temporary failures that never become a verdict about the domain.
import { expect, test } from 'bun:test';
import { resolveMailRoute, type MailRouteResolver } from '../../src/dns/mail-route.ts';
import type { Lookup, LookupStatus, LookupType } from '../../src/dns/resolver.ts';

type Zone = Record<string, { status: LookupStatus; mx?: [number, string][]; a?: string[] }>;

function resolverFor(zone: Zone): MailRouteResolver {
  return {
    lookup: async (name: string, type: LookupType): Promise<Lookup> => {
      const entry = zone[`${name} ${type}`] ?? { status: 'nodata' };
      const records = type === 'MX'
        ? (entry.mx ?? []).map(([preference, exchange]) => ({ name, ttl: 60, data: { type: 'MX' as const, preference, exchange } }))
        : (entry.a ?? []).map((address) => ({ name, ttl: 60, data: type === 'A' ? { type: 'A' as const, address } : { type: 'AAAA' as const, address } }));
      return { name, type, status: entry.status, records, answers: [], detail: entry.status };
    },
  };
}

test('MX hosts in preference order, each with its addresses; hosts without any are skipped', async () => {
  const { route, lookups } = await resolveMailRoute('d.test', resolverFor({
    'd.test MX': { status: 'answer', mx: [[20, 'b.d.test'], [10, 'a.d.test'], [30, 'gone.d.test']] },
    'a.d.test A': { status: 'answer', a: ['192.0.2.1'] },
    'a.d.test AAAA': { status: 'answer', a: ['2001:db8::1'] },
    'b.d.test A': { status: 'answer', a: ['192.0.2.2'] },
    'gone.d.test A': { status: 'nxdomain' },
    'gone.d.test AAAA': { status: 'nxdomain' },
  }));
  expect(route).toEqual({
    kind: 'hosts',
    implicit: false,
    hosts: [
      { name: 'a.d.test', preference: 10, addresses: ['192.0.2.1', '2001:db8::1'] },
      { name: 'b.d.test', preference: 20, addresses: ['192.0.2.2'] },
    ],
    skipped: ['gone.d.test: no address (A nxdomain; AAAA nxdomain)'],
  });
  expect(lookups.map((l) => `${l.name} ${l.type}`)).toEqual([
    'd.test MX', 'a.d.test A', 'a.d.test AAAA', 'b.d.test A', 'b.d.test AAAA', 'gone.d.test A', 'gone.d.test AAAA',
  ]);
});

test('no MX: the domain itself is the mail host (implicit MX)', async () => {
  const { route } = await resolveMailRoute('d.test', resolverFor({ 'd.test A': { status: 'answer', a: ['192.0.2.9'] } }));
  expect(route).toEqual({ kind: 'hosts', implicit: true, hosts: [{ name: 'd.test', preference: null, addresses: ['192.0.2.9'] }], skipped: [] });
});

test('routes that need no connection', async () => {
  const kind = async (zone: Zone) => (await resolveMailRoute('d.test', resolverFor(zone))).route.kind;
  expect(await kind({ 'd.test MX': { status: 'answer', mx: [[0, '']] } })).toBe('null-mx');
  expect(await kind({ 'd.test MX': { status: 'nxdomain' } })).toBe('nxdomain');
  expect(await kind({})).toBe('no-mail-host');
  expect(await kind({ 'd.test MX': { status: 'answer', mx: [[10, 'x.d.test']] }, 'x.d.test A': { status: 'nxdomain' } })).toBe('mx-unresolvable');
  expect(await kind({ 'd.test MX': { status: 'servfail' } })).toBe('temporary');
  expect(await kind({ 'd.test MX': { status: 'timeout' } })).toBe('temporary');
  // An MX host whose lookup failed for now is a temporary failure, not "no address".
  expect(await kind({ 'd.test MX': { status: 'answer', mx: [[10, 'x.d.test']] }, 'x.d.test A': { status: 'timeout' } })).toBe('temporary');
  expect(await kind({ 'd.test A': { status: 'servfail' } })).toBe('temporary');
});
