/**
 * @module The catalogue of POP3 status lines mailbox sends, and their wire format.
 * Rule: every "+OK"/"-ERR" text on the wire is written here, once, with the RFC section that
 *       chooses it; response codes are those of RFC 2449 §8 and RFC 3206.
 */

/** RFC 2449 §8.1 ([IN-USE], [LOGIN-DELAY]) and RFC 3206 §4 ([SYS/TEMP], [SYS/PERM], [AUTH]). */
export type Pop3ResponseCode = 'IN-USE' | 'LOGIN-DELAY' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH';

/** One status line: "+OK text" or "-ERR [CODE] text". */
export interface Pop3Response {
  readonly ok: boolean;
  readonly code?: Pop3ResponseCode;
  readonly text: string;
}

const ok = (text: string): Pop3Response => ({ ok: true, text });
const err = (text: string, code?: Pop3ResponseCode): Pop3Response => ({ ok: false, code, text });

// RFC 2449 §4: a response line is at most 512 octets, CRLF included.
const MAX_STATUS_OCTETS = 512;
const ENCODER = new TextEncoder();

/** The status line with its CRLF; text echoed from a client is cut to fit. */
export function formatPop3Response(r: Pop3Response): string {
  const head = r.ok ? '+OK' : r.code ? `-ERR [${r.code}]` : '-ERR';
  const text = r.text.replace(/[\r\n]/g, ' ');
  const room = MAX_STATUS_OCTETS - 2 - head.length - 1;
  if (text.length * 3 <= room || ENCODER.encode(text).length <= room) return `${head} ${text}\r\n`;
  let cut = text.slice(0, room - 3);
  while (ENCODER.encode(cut).length > room - 3) cut = cut.slice(0, -1);
  return `${head} ${cut.replace(/[\ud800-\udbff]$/, '')}...\r\n`;
}

/** One line for logs: "-ERR [AUTH] Invalid credentials". */
export function describePop3Response(r: Pop3Response): string {
  return formatPop3Response(r).slice(0, -2);
}

export const pop3Replies = {
  // RFC 1939 §4: the greeting (no APOP timestamp: APOP is not offered)
  greeting: (host: string) => ok(`${host} POP3 mailbox ready`),
  // RFC 2449 §5: CAPA answers with a multi-line list
  capabilities: () => ok('Capability list follows'),
  // RFC 1939 §6, §7 QUIT
  bye: (host: string) => ok(`${host} signing off`),
  byeDeleted: (host: string, deleted: number) => ok(`${host} signing off (${deleted} message${deleted === 1 ? '' : 's'} deleted)`),
  updateFailed: () => err('Some deleted messages were not removed; they remain in the maildrop', 'SYS/TEMP'),

  // RFC 1939 §7: USER, PASS; RFC 5034 §4: AUTH
  userAccepted: () => ok('Send PASS'),
  passNeedsUser: () => err('PASS must follow USER'),
  loggedIn: (count: number, octets: number) => ok(`Maildrop locked and ready, ${count} message${count === 1 ? '' : 's'} (${octets} octets)`),
  authFailed: () => err('Invalid credentials', 'AUTH'),
  authThrottled: () => err('Too many failed logins from your address, try again later', 'AUTH'),
  authTemporary: () => err('Temporary authentication failure, try again later', 'SYS/TEMP'),
  // DESIGN.md security defaults: cleartext passwords need TLS unless the policy allows them
  cleartextNeedsTls: () => err('Cleartext login needs TLS first: use STLS or the implicit TLS port', 'AUTH'),
  saslChallenge: () => '+ \r\n',
  saslCancelled: () => err('Authentication cancelled'),
  saslBadBase64: () => err('Cannot decode the base64 response'),
  saslUnknownMechanism: (name: string) => err(`Unrecognized authentication mechanism ${name}`),
  saslMechanisms: () => ok('Supported SASL mechanisms follow'),
  apopNotOffered: () => err('APOP is not offered here; use USER/PASS or AUTH PLAIN'),
  // RFC 1939 §4 and RFC 2449 §8.1.1: the maildrop lock
  maildropInUse: () => err('Maildrop is in use by another session', 'IN-USE'),
  maildropUnavailable: (why: string) => err(`Maildrop unavailable, try again later: ${why}`, 'SYS/TEMP'),

  // RFC 1939 §5: the TRANSACTION state
  stat: (count: number, octets: number) => ok(`${count} ${octets}`),
  scanListing: (n: number, size: number) => ok(`${n} ${size}`),
  scanList: (count: number, octets: number) => ok(`${count} message${count === 1 ? '' : 's'} (${octets} octets)`),
  uidListing: (n: number, uid: string) => ok(`${n} ${uid}`),
  uidList: () => ok('Unique-id listing follows'),
  message: (octets: number) => ok(`${octets} octets`),
  top: () => ok('Top of message follows'),
  deleted: (n: number) => ok(`Message ${n} deleted`),
  noop: () => ok('OK'),
  reset: (count: number, octets: number) => ok(`Maildrop has ${count} message${count === 1 ? '' : 's'} (${octets} octets)`),
  noSuchMessage: (n: string) => err(`No such message: ${n}`),
  alreadyDeleted: (n: number) => err(`Message ${n} is already deleted`),
  readFailed: (why: string) => err(`Cannot read the message now, try again later: ${why}`, 'SYS/TEMP'),

  // RFC 2595 §4: STLS
  beginTls: () => ok('Begin TLS negotiation'),
  tlsAlreadyActive: () => err('TLS is already active'),
  tlsNotOffered: () => err('STLS is not offered here'),
  tlsAfterLogin: () => err('STLS is only allowed before login'),

  // RFC 1939 §3: syntax and sequence
  unknownCommand: () => err('Command not recognized'),
  syntax: (usage: string) => err(`Syntax: ${usage}`),
  wrongState: (verb: string, hint: string) => err(`${verb} is not allowed now: ${hint}`),
  lineTooLong: () => err('Command line too long (RFC 2449 §4)'),
  tooManyErrors: () => err('Too many errors, closing connection'),
  // RFC 3206 §4: refusals by the server, not the client's mistake
  refused: (text: string) => err(text, 'SYS/TEMP'),
  internalError: () => err('Internal error, closing connection; try again later', 'SYS/TEMP'),
  shuttingDown: (host: string) => err(`${host} is shutting down, try again later`, 'SYS/TEMP'),
} as const;
