/**
 * @module The catalogue of IMAP status responses mailbox sends (RFC 3501 §7.1), and their format.
 * Rule: every OK/NO/BAD/BYE text on the wire is written here, once, with the RFC section that
 *       chooses it; response codes are those of RFC 3501 §7.1 and RFC 5530.
 */

export type ImapCondition = 'OK' | 'NO' | 'BAD' | 'BYE' | 'PREAUTH';

/** One status response: its condition, an optional response code (text inside "[ ]"), and text. */
export interface ImapStatus {
  readonly condition: ImapCondition;
  readonly code?: string;
  readonly text: string;
}

const status = (condition: ImapCondition, text: string, code?: string): ImapStatus => ({ condition, code, text });

/** RFC 3501 §7.1: "tag SP cond SP [resp-text-code SP] text CRLF", or "*" for untagged. */
export function formatStatus(tag: string | null, s: ImapStatus): string {
  const text = s.text.replace(/[\r\n]/g, ' ');
  return `${tag ?? '*'} ${s.condition} ${s.code ? `[${s.code}] ` : ''}${text}\r\n`;
}

export const imapResponses = {
  // RFC 3501 §9: the grammar; RFC 3501 §7.1.3 BAD
  badSyntax: (why: string) => status('BAD', `Syntax error: ${why}`),
  lineTooLong: () => status('BAD', 'Command line too long', 'TOOBIG'),
  // RFC 3501 §7.5 and RFC 7888 §4: a literal over the size limit is refused ([TOOBIG], RFC 4469 §5)
  literalTooBig: (max: number) => status('NO', `Literal larger than the ${max} octets accepted`, 'TOOBIG'),
  // RFC 3501 §6.4.4 and §7.1: the charsets SEARCH takes are listed in the response code
  badCharset: () => status('NO', 'Only US-ASCII and UTF-8 are supported', 'BADCHARSET (US-ASCII UTF-8)'),
  // RFC 3501 §7.5: the command continuation request for a synchronising literal
  literalContinue: () => '+ Ready for literal data\r\n',
  // RFC 3501 §7.1.1: the greeting, with the capabilities so the client need not ask (§7.2.1)
  greeting: (hostname: string, capabilities: string) => status('OK', `${hostname} mailbox IMAP4rev1 ready`, `CAPABILITY ${capabilities}`),
  done: (command: string) => status('OK', `${command} completed`),
  // RFC 3501 §6.3.1: the code says whether the mailbox is read-write or read-only
  selected: (readOnly: boolean) => status('OK', `${readOnly ? 'EXAMINE' : 'SELECT'} completed`, readOnly ? 'READ-ONLY' : 'READ-WRITE'),
  loggedIn: (capabilities: string) => status('OK', 'Logged in', `CAPABILITY ${capabilities}`),
  // RFC 3501 §6.1.3: the untagged BYE before the tagged OK of LOGOUT
  bye: (hostname: string) => status('BYE', `${hostname} logging out`),
  autologout: () => status('BYE', 'Autologout; idle for too long'),
  shuttingDown: () => status('BYE', 'Server shutting down', 'UNAVAILABLE'),
  tooManyErrors: () => status('BYE', 'Too many errors; closing the connection'),
  tooMuchPipelined: () => status('BYE', 'Too much input sent ahead of the answers; closing the connection', 'LIMIT'),
  // RFC 3501 §6.2.1
  beginTls: () => status('OK', 'Begin TLS negotiation now'),
  tlsNotOffered: () => status('BAD', 'STARTTLS is not offered on this listener'),
  tlsAlreadyActive: () => status('BAD', 'TLS is already active'),
  // RFC 3501 §7.1.3: a command not known, or not allowed in the current state
  unknownCommand: (name: string) => status('BAD', `Unknown command ${name}`),
  wrongState: (name: string, why: string) => status('BAD', `${name} is not allowed now: ${why}`),
  // RFC 3501 §6.2.3 and RFC 5530: LOGINDISABLED means cleartext passwords need TLS first
  cleartextNeedsTls: () => status('NO', 'Log in after STARTTLS; cleartext passwords are refused without TLS', 'PRIVACYREQUIRED'),
  authFailed: () => status('NO', 'Authentication failed', 'AUTHENTICATIONFAILED'),
  // RFC 3501 §6.2.2: AUTHENTICATE names a mechanism the server does not support
  noMechanism: (name: string) => status('NO', `Unsupported authentication mechanism ${name}; PLAIN is offered`, 'CANNOT'),
  saslCancelled: () => status('BAD', 'AUTHENTICATE cancelled'),
  saslBadBase64: () => status('BAD', 'The AUTHENTICATE response is not base64'),
  // RFC 3501 §2.3 and issue 13: one mailbox, the INBOX; RFC 5530 [NONEXISTENT]
  noSuchMailbox: (name: string) => status('NO', `No mailbox "${name}"; only INBOX exists`, 'NONEXISTENT'),
  // RFC 5530 [CANNOT]: the mailbox operations that come with folders
  cannot: (command: string) => status('NO', `${command} is not supported: mailbox serves the INBOX only, with no folders, APPEND, COPY or MOVE`, 'CANNOT'),
  readOnly: (command: string) => status('NO', `${command} is not allowed: the mailbox was opened with EXAMINE`, 'READ-ONLY'),
  // RFC 2180 §4.1.2 and RFC 5530 [EXPUNGEISSUED]: some of the messages named were expunged elsewhere
  expungeIssued: (command: string) => status('NO', `${command} completed in part: some messages were expunged`, 'EXPUNGEISSUED'),
  badSequence: (why: string) => status('BAD', `Invalid message set: ${why}`),
  // RFC 2177 §3: IDLE ends only with DONE
  idleNotDone: () => status('BAD', 'Expected DONE to end IDLE'),
  // RFC 3501 §6.3.1 and §7.1: the untagged OK responses a SELECT must send
  unseen: (seq: number) => status('OK', `Message ${seq} is the first unseen`, `UNSEEN ${seq}`),
  uidValidity: (n: number) => status('OK', 'UIDs valid', `UIDVALIDITY ${n}`),
  uidNext: (n: number) => status('OK', 'Predicted next UID', `UIDNEXT ${n}`),
  permanentFlags: (flags: string) => status('OK', 'Flags permitted', `PERMANENTFLAGS (${flags})`),
  idleContinue: () => '+ idling\r\n',
  saslContinue: () => '+ \r\n',

  // RFC 5530 codes for the host's failures.
  refused: (why: string) => status('BYE', why, 'UNAVAILABLE'),
  internalError: () => status('BYE', 'Internal server error; closing the connection', 'SERVERBUG'),
  authTemporary: () => status('NO', 'Authentication is unavailable for now; try again later', 'UNAVAILABLE'),
  mailboxUnavailable: (why: string) => status('NO', `The mailbox is unavailable: ${why}`, 'UNAVAILABLE'),
} as const;
