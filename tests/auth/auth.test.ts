// The AUTH policy pieces: users file, throttle, trusted networks and the authenticator.
import { describe, expect, test } from 'bun:test';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { Networks, isLoopbackHost, parseCidr } from '../../src/auth/networks.ts';
import { AuthThrottle } from '../../src/auth/throttle.ts';
import { addressesOf, checkUserName, formatUsers, LoginDirectory, parseUsers } from '../../src/auth/users.ts';
import { SetupError } from '../../src/cli/exit-codes.ts';

const HASH = '$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g';

describe('users file', () => {
  test('name:hash lines, comments and blank lines; round trip', () => {
    const users = parseUsers(`# users\n\nalice:${HASH}\r\nbob:$2b$10$abcdefghijklmnopqrstuu\n`, 'users');
    expect([...users.keys()]).toEqual(['alice', 'bob']);
    expect(parseUsers(formatUsers(users), 'again')).toEqual(users);
  });

  test('a line may list more addresses after the hash; they survive a round trip', () => {
    const users = parseUsers(`team:${HASH} Sales@Example.com support@example.com\nalice@example.com:${HASH}\nbob:${HASH}\n`, 'users');
    expect(users.get('team')).toEqual({ hash: HASH, addresses: ['Sales@Example.com', 'support@example.com'] });
    expect(parseUsers(formatUsers(users), 'again')).toEqual(users);
  });

  test('what a name reads: an address itself; a bare name at each local domain, or as itself in catch-all; plus listed addresses', () => {
    const users = parseUsers(`team:${HASH} Sales@Example.com\nAlice@Example.com:${HASH}\nbob:${HASH}\n`, 'users');
    expect(addressesOf('bob', users.get('bob'), ['example.com', 'Other.test'])).toEqual(['bob@example.com', 'bob@other.test']);
    expect(addressesOf('bob', users.get('bob'), null)).toEqual(['bob']);
    expect(addressesOf('team', users.get('team'), ['example.com'])).toEqual(['team@example.com', 'sales@example.com']);
    expect(addressesOf('<Alice@Example.com>', undefined, ['example.com'])).toEqual(['alice@example.com']);
    const withDomains = new LoginDirectory(users, ['example.com'], false);
    expect(withDomains.addressesOf('Alice@Example.com')).toEqual(['alice@example.com']);
    expect(withDomains.readersOf('SALES@example.com')).toEqual(['team']);
    expect(withDomains.readersOf('alice@example.com')).toEqual(['alice@example.com']);
    expect(withDomains.readersOf('nobody@example.com')).toEqual([]);
    // Catch-all: every address logs in as itself too.
    const catchAll = new LoginDirectory(users, null, true);
    expect(catchAll.readersOf('sales@example.com')).toEqual(['sales@example.com', 'team']);
  });

  test.each([
    ['alice', 'users:1: expected "name:hash"'],
    [`alice:${HASH} not-an-address`, 'users:1: "not-an-address" is not an address'],
    ['alice:plaintext', 'users:1: the hash of alice is not an argon2 or bcrypt hash'],
    [`a b:${HASH}`, 'users:1: a user name cannot contain spaces'],
    [`alice:${HASH}\nalice:${HASH}`, 'users:2: alice is listed twice'],
  ])('%p is refused: %s', (text, message) => {
    expect(() => parseUsers(text, 'users')).toThrow(SetupError);
    expect(() => parseUsers(text, 'users')).toThrow(message);
  });

  test('user names', () => {
    expect(checkUserName('jörg@example.test')).toBeNull();
    expect(checkUserName('')).not.toBeNull();
    expect(checkUserName('a:b')).not.toBeNull();
    expect(checkUserName('a\u0000')).not.toBeNull();
  });
});

describe('throttle', () => {
  test('locks after 5 failures in the window, for the lock time after the last one', () => {
    const t = new AuthThrottle({ maxFailures: 5, windowMs: 1000, lockMs: 5000, maxTracked: 100 });
    for (let i = 0; i < 4; i++) expect(t.failed('192.0.2.1', i * 100)).toBe(false);
    expect(t.locked('192.0.2.1', 400)).toBe(false);
    expect(t.failed('192.0.2.1', 500)).toBe(true);
    expect(t.locked('192.0.2.1', 5499)).toBe(true);
    expect(t.locked('192.0.2.1', 5500)).toBe(false);
    expect(t.locked('192.0.2.2', 500)).toBe(false);
  });

  test('failures older than the window do not count; memory is bounded', () => {
    const t = new AuthThrottle({ maxFailures: 3, windowMs: 1000, lockMs: 5000, maxTracked: 2 });
    t.failed('a', 0);
    t.failed('a', 100);
    expect(t.failed('a', 2000)).toBe(false);
    t.failed('b', 2000);
    t.failed('c', 2000);
    expect(t.tracked).toBe(2);
  });

  test('a failure moves its address to the back: the least recently failing address is forgotten first', () => {
    const t = new AuthThrottle({ maxFailures: 2, windowMs: 1000, lockMs: 5000, maxTracked: 3 });
    t.failed('a', 0);
    t.failed('b', 1);
    t.failed('c', 2);
    expect(t.failed('a', 3)).toBe(true);
    // d pushes one out: b, whose last failure is the oldest, not a, which was tracked first.
    t.failed('d', 4);
    expect(t.tracked).toBe(3);
    expect(t.locked('a', 5)).toBe(true);
    expect(t.failed('c', 6)).toBe(true);
    // b starts again from nothing: its failure at 1 was forgotten, so this one alone does not lock.
    expect(t.failed('b', 7)).toBe(false);
  });

  test('many distinct clients: memory stays at maxTracked, and a lock holds until that many others fail after it', () => {
    const maxTracked = 100;
    const t = new AuthThrottle({ maxFailures: 3, windowMs: 60_000, lockMs: 60_000, maxTracked });
    for (let i = 0; i < 3; i++) t.failed('203.0.113.9', i);
    let most = 0;
    for (let i = 0; i < 5_000; i++) {
      t.failed(`2001:db8::${i.toString(16)}`, 10 + i / 100);
      most = Math.max(most, t.tracked);
      if (i === maxTracked - 2) expect(t.locked('203.0.113.9', 20)).toBe(true);
    }
    expect(most).toBe(maxTracked);
    expect(t.tracked).toBe(maxTracked);
    expect(t.locked('203.0.113.9', 1_000)).toBe(false);
  });
});

describe('networks', () => {
  test('CIDRs, bare addresses and IPv4-mapped clients', () => {
    const n = new Networks([parseCidr('10.0.0.0/8')!, parseCidr('2001:db8::/32')!, parseCidr('192.0.2.7')!]);
    expect(n.contains('10.1.2.3')).toBe(true);
    expect(n.contains('::ffff:10.1.2.3')).toBe(true);
    expect(n.contains('2001:db8::1')).toBe(true);
    expect(n.contains('192.0.2.7')).toBe(true);
    expect(n.contains('192.0.2.8')).toBe(false);
    expect(n.contains('unix')).toBe(false);
    expect(parseCidr('10.0.0.0/33')).toBeNull();
    expect(parseCidr('example.test')).toBeNull();
  });

  test('loopback listener hosts', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '::', '192.0.2.1'].some(isLoopbackHost)).toBe(false);
  });
});

describe('authenticator', () => {
  const fake = (hashes: Map<string, string> | null, now = () => 0) => {
    const verified: string[] = [];
    const users = hashes && new Map([...hashes].map(([name, hash]) => [name, { hash, addresses: [] }]));
    const auth = new Authenticator({
      users: () => users,
      throttle: new AuthThrottle({ maxFailures: 2, windowMs: 60_000, lockMs: 60_000, maxTracked: 10 }),
      now,
      verify: async (password, hash) => {
        verified.push(hash);
        return hash === `hash-of-${password}`;
      },
      hash: async (password) => `decoy:${password.length}`,
    });
    return { auth, verified };
  };
  const req = (username: string, password: string, authzid = '') => ({ client: '192.0.2.1', mechanism: 'PLAIN', authzid, username, password });

  test('good and bad passwords; an unknown user costs a verification too', async () => {
    const { auth, verified } = fake(new Map([['alice', 'hash-of-pw']]));
    expect((await auth.check(req('alice', 'pw'))).outcome).toEqual({ ok: true, user: 'alice' });
    const bad = await auth.check(req('alice', 'nope'));
    expect(bad.reason).toBe('bad-password');
    const unknown = await auth.check(req('mallory', 'pw'));
    expect(unknown.reason).toBe('unknown-user');
    expect(unknown.locked).toBe(true);
    expect(verified.length).toBe(3);
    const throttled = await auth.check(req('alice', 'pw'));
    expect(throttled.reason).toBe('throttled');
    expect(throttled.outcome.ok ? '' : throttled.outcome.reply.code).toBe(454);
    expect(verified.length).toBe(3);
  });

  test('an authzid other than the user is refused; --auth-any takes any name', async () => {
    const { auth } = fake(new Map([['alice', 'hash-of-pw']]));
    expect((await auth.check(req('alice', 'pw', 'bob'))).reason).toBe('authzid');
    expect((await auth.check(req('alice', 'pw', 'alice'))).outcome.ok).toBe(true);
    const any = fake(null).auth;
    expect((await any.check(req('whoever', 'x'))).outcome).toEqual({ ok: true, user: 'whoever' });
    // A name the spool could not keep (more than 255 octets) is refused, as in a users file.
    expect((await any.check(req('用'.repeat(85), 'x'))).outcome.ok).toBe(true);
    expect((await any.check(req('用'.repeat(86), 'x'))).reason).toBe('bad-name');
    expect((await any.check(req('a'.repeat(2000), 'x'))).reason).toBe('bad-name');
  });
});
