/**
 * @module The catalogue of replies mailbox sends. Every reply text on the wire is written here,
 * once, with the RFC section that chooses its code. Functions take what varies.
 * Rule: a refusal that is not the client's mistake says so here (blame 'limit' or 'server'), so
 * that the session's error count and delay never charge a client for it.
 */
import { reply, type Reply } from './reply.ts';

export const replies = {
  // RFC 5321 §4.2.2 / §3.1: greeting and closing
  greeting: (host: string) => reply(220, undefined, `${host} ESMTP mailbox ready`),
  closing: (host: string) => reply(221, '2.0.0', `${host} closing connection`),
  serviceUnavailable: (host: string) => reply(421, '4.3.2', `${host} service shutting down, try again later`, 'server'),
  internalError: () => reply(421, '4.3.0', 'Internal error, closing connection; try again later', 'server'),

  // RFC 5321 §4.1.1.1: HELO and EHLO
  helo: (host: string, client: string) => reply(250, undefined, `${host} greets ${client}`),
  ehlo: (host: string, client: string, keywords: readonly string[]) =>
    reply(250, undefined, [`${host} greets ${client}`, ...keywords].join('\n')),
  heloNeedsDomain: (verb: string) => reply(501, '5.5.4', `Syntax: ${verb} domain-or-address-literal`),

  ok: () => reply(250, '2.0.0', 'OK'),
  senderOk: () => reply(250, '2.1.0', 'Sender OK'),
  recipientOk: () => reply(250, '2.1.5', 'Recipient OK'),
  resetOk: () => reply(250, '2.0.0', 'Reset OK'),
  noopOk: () => reply(250, '2.0.0', 'OK'),
  startData: () => reply(354, undefined, 'Start mail input; end with <CRLF>.<CRLF>'),
  queued: (id: string) => reply(250, '2.0.0', `OK queued as ${id}`),

  // RFC 5321 §3.5.3: VRFY that neither confirms nor denies
  cannotVerify: () => reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery'),
  // RFC 5321 §3.5.2: EXPN is optional; not offered, so answered as not implemented
  expnNotImplemented: () => reply(502, '5.5.1', 'EXPN not implemented'),
  help: () =>
    reply(214, '2.0.0', 'Commands: HELO EHLO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\nSee RFC 5321; mailbox answers per command'),

  // RFC 5321 §4.2.4, §4.3.2: syntax and sequence
  unknownCommand: () => reply(500, '5.5.2', 'Command not recognized'),
  lineTooLong: () => reply(500, '5.5.6', 'Command line too long (RFC 5321 §4.5.3.1.4)'),
  syntax: (usage: string) => reply(501, '5.5.4', `Syntax: ${usage}`),
  badSequence: (hint: string) => reply(503, '5.5.1', `Bad sequence of commands: ${hint}`),
  notImplemented: (verb: string) => reply(502, '5.5.1', `${verb} not implemented`),
  unknownParameter: (name: string) => reply(555, '5.5.4', `MAIL/RCPT parameter ${name} not recognized`),
  authLineTooLong: () => reply(500, '5.5.6', 'Authentication exchange line too long (RFC 4954 §4)'),
  badParameter: (text: string) => reply(501, '5.5.4', text),
  tooManyErrors: () => reply(421, '4.7.0', 'Too many errors, closing connection'),
  idleTimeout: () => reply(421, '4.4.2', 'Idle timeout, closing connection'),
  dataTimeout: () => reply(421, '4.4.2', 'Timeout waiting for message data, closing connection'),
  earlyTalker: () => reply(554, '5.5.0', 'Command sent before the greeting'),
  httpOnSmtp: () => reply(554, '5.5.0', 'This is an SMTP server, not HTTP'),

  // RFC 5321 §4.1.1.2-3 and RFC 3463: addresses
  badSenderSyntax: (why: string) => reply(501, '5.1.7', `Bad sender address syntax: ${why}`),
  badRecipientSyntax: (why: string) => reply(501, '5.1.3', `Bad recipient address syntax: ${why}`),
  noSuchDomain: (domain: string) => reply(550, '5.1.2', `Domain ${domain} is not handled here`),
  relayDenied: (domain: string) => reply(550, '5.7.1', `Relaying to ${domain} denied: not a local domain, and you are not authenticated or trusted`),
  // RFC 5321 §6.3 and RFC 3463 X.4.6: a routing loop.
  mailLoop: (max: number) => reply(554, '5.4.6', `Too many hops: more than ${max} Received: fields, a mail loop (RFC 5321 §6.3)`),
  // A backup MX accepts only the recipients its primary would (--relay-recipients).
  unknownRelayRecipient: (address: string) => reply(550, '5.1.1', `${address}: no such recipient here`),
  // RFC 7505 §4.2: a domain that publishes a null MX accepts no mail.
  nullMxRecipient: (domain: string) => reply(556, '5.1.10', `${domain} accepts no mail (null MX, RFC 7505)`),
  relayNotConfigured: (domain: string) => reply(550, '5.7.1', `Relaying to ${domain} denied: ${domain} is not a local domain and no relay is configured`),
  // RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted. §4.5.3.1.10: beyond our cap
  // each further RCPT gets 452 and the client sends the rest in a later transaction, so it is a
  // limit reached, not a mistake (the session forgives a bounded number per transaction).
  tooManyRecipients: () => reply(452, '4.5.3', 'Too many recipients', 'limit'),
  needsSmtpUtf8: () => reply(553, '5.6.7', 'Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)'),
  mailNeedsRecipient: () => reply(554, '5.5.1', 'No valid recipients'),

  // RFC 1870: SIZE
  sizeExceeded: (max: number) => reply(552, '5.3.4', `Message size exceeds fixed maximum of ${max} bytes`),

  // RFC 5321 §2.3.8 and §4.5.3.1.6: message content framing
  bareLineEnding: () =>
    reply(554, '5.6.0', 'Message rejected: bare CR or LF in message data (RFC 5321 §2.3.8); lines must end with CRLF'),
  textLineTooLong: () =>
    reply(554, '5.6.0', 'Message rejected: a line is longer than 1000 octets (RFC 5321 §4.5.3.1.6)'),

  // RFC 3207: STARTTLS
  readyToStartTls: () => reply(220, '2.0.0', 'Ready to start TLS'),
  tlsAlreadyActive: () => reply(503, '5.5.1', 'TLS is already active'),
  tlsNotAvailable: () => reply(454, '4.7.0', 'TLS not available', 'server'),
  // RFC 3207 §4: a server may refuse MAIL until TLS is in force.
  tlsRequired: () => reply(530, '5.7.0', 'Must issue a STARTTLS command first'),

  // RFC 4954: AUTH
  authChallenge: (base64: string) => reply(334, undefined, base64),
  authSucceeded: () => reply(235, '2.7.0', 'Authentication successful'),
  authFailed: () => reply(535, '5.7.8', 'Authentication credentials invalid'),
  authCancelled: () => reply(501, '5.7.0', 'Authentication cancelled'),
  authBadBase64: () => reply(501, '5.5.2', 'Cannot decode the base64 response'),
  authAlready: () => reply(503, '5.5.1', 'Already authenticated'),
  authInTransaction: () => reply(503, '5.5.1', 'AUTH is not allowed during a mail transaction'),
  authUnknownMechanism: (name: string) => reply(504, '5.5.4', `Unrecognized authentication mechanism ${name}`),
  // RFC 4954 §6: 538 when the mechanism needs an encrypted connection.
  authNeedsTls: () => reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  authNotOffered: () => reply(503, '5.5.1', 'AUTH is not offered here'),
  authTemporary: () => reply(454, '4.7.0', 'Temporary authentication failure, try again later', 'server'),
  authThrottled: () => reply(454, '4.7.0', 'Too many failed authentications from your address, try again later'),

  // RFC 3030: CHUNKING
  chunkReceived: (octets: number) => reply(250, '2.0.0', `${octets} octets received`),
  bdatSyntax: () => reply(501, '5.5.4', 'Syntax: BDAT chunk-size [LAST]; closing, the chunk cannot be framed'),
  dataAfterBdat: () => reply(503, '5.5.1', 'Bad sequence of commands: DATA cannot follow BDAT in one transaction'),

  // Connection limits
  tooManyConnections: () => reply(421, '4.7.0', 'Too many connections, try again later', 'limit'),
  tooManyFromYou: () => reply(421, '4.7.0', 'Too many connections from your address, try again later', 'limit'),

  // Storage outcomes (DESIGN.md: disk full, permission errors → 4xx, nothing lost)
  spoolUnavailable: (why: string) => reply(451, '4.3.0', `Message not accepted, try again later: ${why}`, 'server'),
  spoolFull: () => reply(452, '4.3.1', 'Insufficient system storage, try again later', 'server'),

  // serve --faults: replies a rule scripts (its own text, or these), never charged to the client
  scripted: (code: number, enhanced: string | undefined, text: string) => reply(code, enhanced, text, 'server'),
  faultDefault: (code: number) => reply(code, `${Math.floor(code / 100)}.0.0`, 'Scripted fault (serve --faults)', 'server'),
  faultRateLimited: (code: 421 | 451) => reply(code, '4.7.0', 'Rate limit exceeded, try again later (serve --faults)', 'server'),
} as const satisfies Record<string, (...args: never[]) => Reply>;

export type ReplyName = keyof typeof replies;
