// The one routing function (delivery/route.ts): A-labels to DNS (RFC 5890), address literals
// without DNS (RFC 5321 §4.1.3), and every route with no host as a status Reply from the client
// catalogue (RFC 7505 null MX 5.1.10, NXDOMAIN 5.1.2, DNS trouble 4.4.3).
import { expect, test } from 'bun:test';
import type { MailRouteResolver } from '../../src/dns/mail-route.ts';
import type { Lookup, LookupStatus, LookupType } from '../../src/dns/resolver.ts';
import { parseAddressLiteral, routeDomain, targetsOf, toALabels } from '../../src/delivery/route.ts';

type Zone = Record<string, { status: LookupStatus; mx?: [number, string][]; a?: string[] }>;

function resolverFor(zone: Zone, asked: string[] = []): MailRouteResolver {
  return {
    lookup: async (name: string, type: LookupType): Promise<Lookup> => {
      asked.push(`${name} ${type}`);
      const entry = zone[`${name} ${type}`] ?? { status: 'nodata' };
      const records = type === 'MX'
        ? (entry.mx ?? []).map(([preference, exchange]) => ({ name, ttl: 60, data: { type: 'MX' as const, preference, exchange } }))
        : (entry.a ?? []).map((address) => ({ name, ttl: 60, data: type === 'A' ? { type: 'A' as const, address } : { type: 'AAAA' as const, address } }));
      return { name, type, status: entry.status, records, answers: [], detail: entry.status };
    },
  };
}

test('an internationalised domain is asked as its A-label', async () => {
  const asked: string[] = [];
  const route = await routeDomain('Bücher.Test', resolverFor({
    'xn--bcher-kva.test MX': { status: 'answer', mx: [[10, 'mx.xn--bcher-kva.test']] },
    'mx.xn--bcher-kva.test A': { status: 'answer', a: ['192.0.2.7'] },
  }, asked));
  expect(asked[0]).toBe('xn--bcher-kva.test MX');
  expect(route.kind === 'hosts' && targetsOf(route.hosts)).toEqual([{ host: 'mx.xn--bcher-kva.test', address: '192.0.2.7' }]);
  expect([toALabels('example.ORG.'), toALabels('xn--a.test')]).toEqual(['example.org', null]);
});

test('an address literal is the host itself, and DNS is not asked', async () => {
  const asked: string[] = [];
  const v4 = await routeDomain('[192.0.2.1]', resolverFor({}, asked));
  const v6 = await routeDomain('[IPv6:2001:DB8::1]', resolverFor({}, asked));
  expect(asked).toEqual([]);
  expect(v4.kind === 'hosts' && targetsOf(v4.hosts)).toEqual([{ host: '[192.0.2.1]', address: '192.0.2.1' }]);
  expect(v6.kind === 'hosts' && targetsOf(v6.hosts)).toEqual([{ host: '[IPv6:2001:DB8::1]', address: '2001:db8::1' }]);
  expect(parseAddressLiteral('example.org')).toBeNull();
});

test('routes without a host carry their status, permanent or not by the code', async () => {
  const statuses = await Promise.all([
    routeDomain('n.test', resolverFor({ 'n.test MX': { status: 'answer', mx: [[0, '']] } })),
    routeDomain('gone.test', resolverFor({ 'gone.test MX': { status: 'nxdomain' } })),
    routeDomain('bare.test', resolverFor({})),
    routeDomain('lame.test', resolverFor({ 'lame.test MX': { status: 'answer', mx: [[10, 'x.lame.test']] }, 'x.lame.test A': { status: 'nxdomain' }, 'x.lame.test AAAA': { status: 'nxdomain' } })),
    routeDomain('slow.test', resolverFor({ 'slow.test MX': { status: 'servfail' } })),
  ]);
  expect(statuses.map((r) => (r.kind === 'refused' ? [r.status.code, r.status.enhanced] : r.kind))).toEqual([
    [556, '5.1.10'],
    [550, '5.1.2'],
    [550, '5.1.2'],
    [550, '5.4.4'],
    [451, '4.4.3'],
  ]);
});
