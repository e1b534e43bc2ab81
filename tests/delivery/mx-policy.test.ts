// The MX policy (delivery/mx-policy.ts): RFC 7435 opportunistic TLS with the MX name as SNI and no
// certificate check, clear text after a failed handshake, no loopback exemption; and RFC 5321
// §5.1's rule for passing the turn to the next host.
import { expect, test } from 'bun:test';
import { ClientFailure } from '../../src/core/errors.ts';
import { reply } from '../../src/core/reply.ts';
import { OPPORTUNISTIC, passesTurn, planAttempts } from '../../src/delivery/mx-policy.ts';

test('opportunistic: STARTTLS with SNI and no check, then clear text; the same on loopback', () => {
  for (const address of ['192.0.2.1', '127.0.0.1']) {
    expect(planAttempts(OPPORTUNISTIC, { host: 'mx.example.net.', address })).toEqual([
      { tls: 'opportunistic', tlsSettings: { rejectUnauthorized: false, ca: undefined, servername: 'mx.example.net' } },
      { tls: 'none', tlsSettings: { rejectUnauthorized: false, ca: undefined, servername: 'mx.example.net' } },
    ]);
  }
});

test('an address literal sends no SNI', () => {
  expect(planAttempts(OPPORTUNISTIC, { host: '[192.0.2.1]', address: '192.0.2.1' })[0].tlsSettings.servername).toBeUndefined();
});

test('a policy that checks certificates checks them against the MX name and never falls back to clear text', () => {
  expect(planAttempts({ tls: 'starttls', verify: { ca: 'PEM' } }, { host: 'mx.example.net', address: '192.0.2.1' })).toEqual([
    { tls: 'starttls', tlsSettings: { rejectUnauthorized: true, ca: 'PEM', servername: 'mx.example.net' } },
  ]);
  expect(planAttempts({ tls: 'opportunistic', verify: {} }, { host: 'mx.example.net', address: '192.0.2.1' })).toHaveLength(1);
});

test('temporary trouble before the transaction passes the turn; a refusal or trouble later does not', () => {
  expect(passesTurn(new ClientFailure('connect', 'connect', 'refused'))).toBe(true);
  expect(passesTurn(new ClientFailure('rejected', 'greeting', 'busy', reply(421, '4.3.2', 'busy')))).toBe(true);
  expect(passesTurn(new ClientFailure('tls', 'starttls', 'handshake failed'))).toBe(true);
  expect(passesTurn(new ClientFailure('rejected', 'greeting', 'no', reply(554, '5.7.1', 'go away')))).toBe(false);
  expect(passesTurn(new ClientFailure('rejected', 'mail', 'later', reply(451, '4.3.0', 'later')))).toBe(false);
});
