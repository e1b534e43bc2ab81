// The relay's pure parts: smarthost URLs and the password rule, routes and TLS policies, the retry
// schedule (--retry-after doubling to --retry-max, until --queue-lifetime), RFC 5321 §5.1's "skip
// this host and every MX at its preference or worse", and §6.3's Received count.
import { expect, test } from 'bun:test';
import { reply } from '../../src/core/reply.ts';
import { countReceived } from '../../src/core/server-session.ts';
import { destinationKey, parseRelaySettings, parseSmarthost, routeFor } from '../../src/delivery/relay-settings.ts';
import { withoutSelf } from '../../src/delivery/relay-transfer.ts';
import { afterAttempt, afterCoolOff, retryDelayMs } from '../../src/delivery/retry.ts';
import { UsageError } from '../../src/exit-status.ts';

const parsers = { duration: (t: string) => Number(t.replace(/s$/, '')) * 1000, count: (t: string) => Number(t) };
const texts = (over: Partial<Parameters<typeof parseRelaySettings>[0]> = {}) => ({ relay: [], routes: [], tlsPolicy: [], relayDomains: [], dns: null, ...over });

test('smarthost URLs: scheme → TLS mode and port, user, ?tls=insecure, a label without the password', () => {
  expect(parseSmarthost('smtp://relay.example', '--relay', false, null)).toMatchObject({ host: 'relay.example', port: 25, tls: 'opportunistic', verify: true, user: null });
  expect(parseSmarthost('smtp+starttls://me@relay.example', '--relay', false, 'pw')).toMatchObject({ port: 587, tls: 'starttls', user: 'me', password: 'pw' });
  const s = parseSmarthost('smtps://me:p%40ss@[::1]:2465?tls=insecure', '--relay', true, null);
  expect(s).toMatchObject({ host: '::1', port: 2465, tls: 'implicit', verify: false, password: 'p@ss' });
  expect(s.label).toBe('smtps://me@[::1]:2465?tls=insecure');
  // A password on the command line is visible in ps: refused; a user without one has nowhere to get it.
  expect(() => parseSmarthost('smtps://me:secret@relay.example', '--relay', false, null)).toThrow(UsageError);
  expect(() => parseSmarthost('smtps://me@relay.example', '--relay', false, null)).toThrow('needs a password');
  expect(() => parseSmarthost('http://relay.example', '--relay', false, null)).toThrow(UsageError);
});

test('routes: --route wins over --relay, repeats add fallbacks, mx alone or URLs alone', () => {
  const settings = parseRelaySettings(
    texts({
      relay: [{ text: 'smtp://a.example', fromFile: false }, { text: 'smtp://b.example', fromFile: false }],
      routes: [{ text: 'Direct.Example=mx', fromFile: false }, { text: 'slow.example=smtp://c.example:2525', fromFile: false }, { text: 'slow.example=smtp://d.example', fromFile: false }],
      tlsPolicy: ['bank.example=verify'],
    }),
    parsers,
    2,
  );
  expect(routeFor(settings, 'direct.example')).toEqual({ kind: 'mx' });
  const slow = routeFor(settings, 'SLOW.example');
  expect(slow.kind === 'smarthost' && slow.hosts.map((h) => h.label)).toEqual(['smtp://c.example:2525', 'smtp://d.example']);
  const other = routeFor(settings, 'elsewhere.example');
  expect(destinationKey(other, 'elsewhere.example')).toBe(destinationKey(other, 'another.example'));
  expect(destinationKey({ kind: 'mx' }, 'A.example')).not.toBe(destinationKey({ kind: 'mx' }, 'b.example'));
  expect(settings.tlsPolicy.get('bank.example')).toBe('verify');
  expect(() => parseRelaySettings(texts({ relay: [{ text: 'mx', fromFile: false }, { text: 'smtp://a.example', fromFile: false }] }), parsers, 1)).toThrow(UsageError);
  expect(() => parseRelaySettings(texts({ tlsPolicy: ['bank.example=maybe'] }), parsers, 1)).toThrow(UsageError);
});

test('retry schedule: 5m doubling to 1h; 5xx bounces; past the lifetime 4.4.7 with the last reply', () => {
  const schedule = { retryAfterMs: 300_000, retryMaxMs: 3_600_000, lifetimeMs: 5 * 86_400_000 };
  expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(schedule, n) / 60_000)).toEqual([5, 10, 20, 40, 60, 60]);
  const greylisted = reply(450, '4.2.0', 'try later');
  const first = afterAttempt({ kind: 'pending' }, { reply: greylisted, accepted: false }, 0, 1000, schedule);
  expect(first).toEqual({ kind: 'deferred', attempts: 1, nextAttemptMs: 301_000, lastReply: greylisted });
  expect(afterAttempt(first, { reply: reply(250, '2.0.0', 'ok'), accepted: true }, 0, 2000, schedule).kind).toBe('delivered');
  expect(afterAttempt(first, { reply: reply(550, '5.1.1', 'no'), accepted: false }, 0, 2000, schedule)).toMatchObject({ kind: 'bounced', reply: { code: 550 } });
  const expired = afterAttempt(first, { reply: greylisted, accepted: false }, 0, 5 * 86_400_000, schedule);
  expect(expired.kind === 'bounced' && expired.reply.enhanced).toBe('4.4.7');
  expect(expired.kind === 'bounced' && expired.reply.lines.join(' ')).toContain('450 4.2.0 try later');
  // A cool-off defers without counting an attempt.
  expect(afterCoolOff(first, greylisted, 900_000, 0, 1000, schedule)).toEqual({ kind: 'deferred', attempts: 1, nextAttemptMs: 900_000, lastReply: greylisted });
});

test('RFC 5321 §5.1: an MX naming this host drops it and every MX at its preference or worse', () => {
  const hosts = [
    { name: 'mx1.example', preference: 10, addresses: ['192.0.2.1'] },
    { name: 'mx2.example', preference: 20, addresses: ['192.0.2.2'] },
    { name: 'mx3.example', preference: 30, addresses: ['192.0.2.3'] },
  ];
  expect(withoutSelf(hosts, ['mx2.example.']).map((h) => h.name)).toEqual(['mx1.example']);
  expect(withoutSelf(hosts, ['192.0.2.3']).map((h) => h.name)).toEqual(['mx1.example', 'mx2.example']);
  expect(withoutSelf(hosts, ['MX1.example'])).toEqual([]);
  expect(withoutSelf(hosts, ['elsewhere.example'])).toEqual(hosts);
});

test('RFC 5321 §6.3: Received fields are counted in the header section only', () => {
  const enc = (t: string) => new TextEncoder().encode(t);
  expect(countReceived(enc('Received: a\r\n\tb\r\nRECEIVED: c\r\nSubject: x\r\n\r\nReceived: in the body\r\n'), 100)).toBe(2);
  expect(countReceived(enc('Received: a\r\nReceived: b\r\nReceived: c\r\n\r\n'), 2)).toBe(2);
  expect(countReceived(enc('Subject: Received: no\r\n\r\n'), 100)).toBe(0);
});
