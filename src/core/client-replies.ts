/**
 * @module The catalogue of replies the client side stands for: what mailbox itself concludes
 * when no server reply decides (DNS, connection, TLS, what a server does not offer). Beside
 * replies.ts, which holds what mailbox says on the wire; these never go on the wire from here,
 * but a relay's bounces and a report carry them, so each code is chosen from RFC 3463 (and the
 * RFC that adds it) once, here. Permanent or temporary follows from the code, nowhere else.
 */
import { reply, type Reply } from './reply.ts';

export const clientReplies = {
  // RFC 7505 §4.2: a domain that publishes a null MX accepts no mail.
  nullMx: (domain: string) => reply(556, '5.1.10', `${domain} accepts no mail (null MX, RFC 7505)`),
  // RFC 3463 X.1.2: the destination domain does not exist or cannot take mail.
  noSuchDomain: (domain: string) => reply(550, '5.1.2', `${domain} does not exist (NXDOMAIN)`),
  noMailHost: (domain: string) => reply(550, '5.1.2', `${domain} has no MX and no address`),
  // RFC 3463 X.4.4: a route exists in DNS, but it leads nowhere.
  mxUnresolvable: (domain: string) => reply(550, '5.4.4', `no MX host of ${domain} has an address`),
  // RFC 3463 X.4.3: a directory server failure; trying later may succeed.
  dnsTemporary: (domain: string, why: string) => reply(451, '4.4.3', `cannot look up ${domain} now: ${why}`),
  // RFC 3463 X.4.1: no answer from the host (refused, unreachable, timed out).
  noAnswer: (what: string) => reply(421, '4.4.1', what),
  // RFC 3463 X.4.2: the connection broke after it was made.
  connectionLost: (what: string) => reply(421, '4.4.2', what),
  // RFC 3463 X.5.0: the server broke the protocol; another attempt may find it mended.
  protocolViolation: (what: string) => reply(451, '4.5.0', what),

  // RFC 1870 §6.1: a message over the server's SIZE is not sent.
  tooBig: (size: number, max: number) => reply(552, '5.3.4', `the message is ${size} bytes, over the server's SIZE limit of ${max} bytes (RFC 1870)`),
  // RFC 6152 §3 and RFC 3463 X.6.3: 8-bit data needs 8BITMIME, and converting it is not allowed here.
  eightBitNotAllowed: () => reply(554, '5.6.3', 'the message has 8-bit bytes and the server does not offer 8BITMIME (RFC 6152)'),
  // RFC 6152 §3 and RFC 3463 X.6.3: the relay could not convert the message to 7-bit.
  eightBitNotConvertible: (why: string) => reply(554, '5.6.3', `the server does not offer 8BITMIME and the message cannot be converted to 7-bit: ${why}`),
  // RFC 6531 §3.2 and §3.6.5: a non-ASCII address needs SMTPUTF8.
  smtpUtf8Needed: () => reply(553, '5.6.7', 'the addresses are not ASCII and the server does not offer SMTPUTF8 (RFC 6531)'),
  // RFC 6532 §3 and RFC 6533 §3 (X.6.9): UTF-8 header fields need SMTPUTF8 on every hop.
  utf8HeaderNeedsSmtpUtf8: () => reply(554, '5.6.9', 'the message has UTF-8 header fields (SMTPUTF8) and the server does not offer SMTPUTF8 (RFC 6532)'),
  // RFC 3461 §4 and RFC 3463 X.3.3: a feature that was asked for is not offered.
  dsnNotOffered: () => reply(554, '5.3.3', 'delivery status notifications were asked for and the server does not offer DSN (RFC 3461)'),

  // RFC 3463 X.7.5 (cryptographic failure) and RFC 5248's X.7.10 (encryption needed).
  tlsFailed: (what: string) => reply(454, '4.7.5', what),
  tlsNeeded: (what: string) => reply(451, '4.7.10', what),
  // RFC 4954 §6: authentication was asked for and cannot take place.
  authImpossible: (what: string) => reply(554, '5.7.0', what),

  // RFC 5321 §5.1 and RFC 3463 X.4.6: this host is the best MX left for the domain, a loop.
  mxLoop: (domain: string) => reply(554, '5.4.6', `mail for ${domain} loops back to this host (it is the best MX left)`),
  // RFC 4954 §4: credentials go only over TLS; without it the relay tries later (X.7.0).
  credentialsInClear: (what: string) => reply(451, '4.7.0', `no TLS with the smarthost, and credentials are never sent in clear: ${what}`),
  // RFC 3463 X.3.0: the relay's own storage failed it; another attempt may succeed.
  spoolUnreadable: (what: string) => reply(451, '4.3.0', `cannot read the message from the spool: ${what}`),
  // RFC 3463 X.4.7: the queue lifetime passed; the last reply says what kept it.
  expired: (last: Reply) => reply(last.code, '4.4.7', `delivery time expired; last reply: ${last.code}${last.enhanced ? ` ${last.enhanced}` : ''} ${last.lines.join(' ')}`),

  // What the caller asked cannot be done (no recipients, a malformed message, stopped as asked).
  notSendable: (what: string) => reply(554, '5.3.0', what),
  // RFC 3463 X.0.0: an operator gave up on the delivery (`mailbox queue bounce`).
  operatorBounced: (last: string | null) => reply(550, '5.0.0', last === null ? 'delivery given up by the operator' : `delivery given up by the operator; the last attempt got: ${last}`),
} as const satisfies Record<string, (...args: never[]) => Reply>;

export type ClientReplyName = keyof typeof clientReplies;
