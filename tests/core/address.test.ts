import { describe, expect, test } from 'bun:test';
import { parsePath } from '../../src/core/address.ts';

// [path, utf8 allowed, expected local@domain or the start of the reason]
const CASES: [string, boolean, string][] = [
  ['<a@b.example>', false, 'a@b.example'],
  ['<first.last+tag@sub.b.example>', false, 'first.last+tag@sub.b.example'],
  ['<"john smith"@b.example>', false, '"john smith"@b.example'],
  ['<"a\\"b"@b.example>', false, '"a\\"b"@b.example'],
  ['<@r1.example,@r2.example:a@b.example>', false, 'a@b.example'],
  ['<a@[192.0.2.1]>', false, 'a@[192.0.2.1]'],
  ['<a@[IPv6:2001:db8::1]>', false, 'a@[IPv6:2001:db8::1]'],
  ['<a@[IPv6:::ffff:192.0.2.1]>', false, 'a@[IPv6:::ffff:192.0.2.1]'],
  ['<jörg@exämple.test>', true, 'jörg@exämple.test'],
  ['<jörg@example.test>', false, 'non-ASCII local part'],
  ['<a@exämple.test>', false, 'non-ASCII domain'],
  ['<a..b@b.example>', false, 'the local part has an empty'],
  ['<.a@b.example>', false, 'the local part has an empty'],
  ['<a b@b.example>', false, '"a b" has characters'],
  ['<a@b..example>', false, '"b..example" has an empty label'],
  ['<a@-b.example>', false, '"-b" is not a valid domain label'],
  ['<a@[300.1.1.1]>', false, '"[300.1.1.1]" is not a valid address literal'],
  ['<a@>', false, 'the domain is empty'],
  ['<@b.example>', false, 'the source route has no ":"'],
  ['<ab.example>', false, '"ab.example" has no "@domain"'],
  [`<${'x'.repeat(65)}@b.example>`, false, 'the local part is longer than 64'],
  ['a@b.example', false, 'the address must be enclosed'],
  ['<a@b.example', false, 'the address is missing its closing'],
];

describe('parsePath', () => {
  for (const [path, utf8, expected] of CASES) {
    test(path.length > 40 ? `${path.slice(0, 40)}…` : path, () => {
      const r = parsePath(path, { allowNull: false, utf8 });
      const got = r.ok ? `${r.mailbox!.local}@${r.mailbox!.domain}` : r.why;
      expect(got.startsWith(expected)).toBe(true);
    });
  }
  test('<> only where the null path is allowed', () => {
    expect(parsePath('<>', { allowNull: true, utf8: false })).toMatchObject({ ok: true, mailbox: null });
    expect(parsePath('<>', { allowNull: false, utf8: false }).ok).toBe(false);
  });
  test('parameters after the path are returned as the rest', () => {
    expect(parsePath('<a@b.example> SIZE=10 BODY=8BITMIME', { allowNull: true, utf8: false })).toMatchObject({ ok: true, rest: 'SIZE=10 BODY=8BITMIME' });
  });
});
