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
} as const;
