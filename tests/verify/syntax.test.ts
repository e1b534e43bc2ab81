// Table test of address syntax (RFC 5321 §4.1.2, §4.5.3.1; RFC 6531/6532; IDNA): valid and
// invalid, ASCII and internationalised, each with the exact reason.
import { describe, expect, test } from 'bun:test';
import { checkAddress } from '../../src/verify/syntax.ts';

const VALID: [input: string, wire: string, smtpUtf8: boolean][] = [
  ['alice@example.com', 'alice@example.com', false],
  ['Alice.Smith+tag@Example.COM', 'Alice.Smith+tag@example.com', false],
  ['<bob@example.org>', 'bob@example.org', false],
  ["!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~@example.org", false],
  ['"john doe"@example.com', '"john doe"@example.com', false],
  ['"a\\"b"@example.com', '"a\\"b"@example.com', false],
  ['"@"@example.com', '"@"@example.com', false],
  ['user@[192.0.2.1]', 'user@[192.0.2.1]', false],
  ['user@[IPv6:2001:db8::1]', 'user@[IPv6:2001:db8::1]', false],
  ['user@bücher.de', 'user@xn--bcher-kva.de', false],
  ['user@xn--bcher-kva.de', 'user@xn--bcher-kva.de', false],
  ['pelé@exemple.fr', 'pelé@exemple.fr', true],
  ['用户@例子.广告', '用户@xn--fsqu00a.xn--4rr70v', true],
  ['δοκιμή@παράδειγμα.δοκιμή', 'δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp', true],
  [`${'a'.repeat(64)}@example.com`, `${'a'.repeat(64)}@example.com`, false],
];

const INVALID: [input: string, why: string][] = [
  ['', 'the address is empty'],
  ['   ', 'the address is empty'],
  ['alice', 'there is no "@" between local part and domain'],
  ['@example.com', 'the local part is empty'],
  ['alice@', 'the domain is empty'],
  ['a..b@example.com', 'the local part has an empty dot-separated part'],
  ['.a@example.com', 'the local part has an empty dot-separated part'],
  ['a.@example.com', 'the local part has an empty dot-separated part'],
  ['a b@example.com', '"a b" has characters that need quoting'],
  ['a(b)@example.com', '"a(b)" has characters that need quoting'],
  ['"unclosed@example.com', 'the quoted local part is not closed, or not followed by "@"'],
  ['"a"b@example.com', 'the quoted local part is not closed, or not followed by "@"'],
  [`${'a'.repeat(65)}@example.com`, 'the local part is longer than 64 octets'],
  [`${'é'.repeat(33)}@example.com`, 'the local part is longer than 64 octets'],
  ['a@-example.com', '"-example" is not a valid domain label'],
  ['a@exa_mple.com', '"exa_mple" is not a valid domain label'],
  ['a@example..com', '"example..com" has an empty label'],
  ['a@example.com.', '"example.com." has an empty label'],
  ['a@localhost', '"localhost" is not a fully qualified domain name (RFC 5321 §2.3.5)'],
  [`a@${'b'.repeat(64)}.com`, `"${'b'.repeat(64)}" is not a valid domain label`],
  [`a@${`${'b'.repeat(63)}.`.repeat(4)}com`, 'the domain is longer than 255 octets'],
  [`${'a'.repeat(64)}@${`${'b'.repeat(62)}.`.repeat(3)}c`, 'the address is 255 octets; at most 254 fit in an SMTP path (RFC 5321 §4.5.3.1.3)'],
  ['a@[300.1.2.3]', '"[300.1.2.3]" is not a valid address literal'],
  ['a@[IPv6:2001:db8::g]', '"[IPv6:2001:db8::g]" is not a valid address literal'],
  ['a@[192.0.2.1', 'the address literal is not closed with "]"'],
  ['a@xn--zz.com', '"xn--zz.com" is not a valid internationalised domain name (IDNA)'],
  ['a\r\nRCPT TO:<x@y.z>@example.com', 'the address contains a line break or NUL'],
];

describe('valid addresses', () => {
  for (const [input, wire, smtpUtf8] of VALID) {
    test(JSON.stringify(input).slice(0, 60), () => {
      const r = checkAddress(input);
      expect(r.ok ? { wire: `${r.mailbox.local}@${r.mailbox.domain}`, smtpUtf8: r.smtpUtf8 } : r).toEqual({ wire, smtpUtf8 });
    });
  }
});

describe('invalid addresses, with the reason', () => {
  for (const [input, why] of INVALID) {
    test(JSON.stringify(input).slice(0, 60), () => {
      expect(checkAddress(input)).toEqual({ ok: false, why });
    });
  }
});

test('the Unicode form of an IDNA domain is kept for people', () => {
  const r = checkAddress('x@xn--bcher-kva.de');
  expect(r.ok && r.unicodeDomain).toBe('bücher.de');
});

test('a domain literal names the address to ask', () => {
  const r = checkAddress('x@[IPv6:2001:DB8::1]');
  expect(r.ok && r.literal).toBe('2001:db8::1');
});
