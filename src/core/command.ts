/**
 * @module Command lines: line → verb and arguments; MAIL and RCPT parameters.
 * Rule: parsing never decides policy; it returns what the client said or why it cannot be read.
 */

export const VERBS = [
  'HELO', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP',
  'STARTTLS', 'AUTH', 'BDAT',
] as const;
export type Verb = (typeof VERBS)[number];

const VERB_SET: ReadonlySet<string> = new Set(VERBS);

export type ParsedCommand =
  | { readonly kind: 'command'; readonly verb: Verb; readonly args: string }
  | { readonly kind: 'unknown'; readonly word: string }
  | { readonly kind: 'http' };

/** Splits a command line (without CRLF) into its verb and the rest. Verbs are case-insensitive (RFC 5321 §2.4). */
export function parseCommand(line: string): ParsedCommand {
  const space = line.indexOf(' ');
  const word = (space < 0 ? line : line.slice(0, space)).toUpperCase();
  const args = space < 0 ? '' : line.slice(space + 1);
  if (VERB_SET.has(word)) return { kind: 'command', verb: word as Verb, args };
  if (/^(GET|POST|HEAD|PUT|CONNECT|OPTIONS|DELETE) \S+ HTTP\/\d/.test(line) || /^[A-Z-]+: /.test(line)) {
    return { kind: 'http' };
  }
  return { kind: 'unknown', word: word.slice(0, 32) };
}

/**
 * "MAIL FROM:<path> params" and "RCPT TO:<path> params". RFC 5321 §4.1.1.2 forbids a space after
 * the colon, yet many clients send one; it is accepted, as Postfix and aiosmtpd do.
 */
export function parsePathArgument(args: string, keyword: 'FROM' | 'TO'): { ok: true; path: string } | { ok: false } {
  const prefix = `${keyword}:`;
  if (args.length < prefix.length || args.slice(0, prefix.length).toUpperCase() !== prefix) return { ok: false };
  return { ok: true, path: args.slice(prefix.length).replace(/^ +/, '') };
}

/** An esmtp-param (RFC 5321 §4.1.2): keyword with an optional value. Keywords are upper-cased. */
export interface Parameter {
  readonly name: string;
  readonly value: string | null;
}

const ESMTP_KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

/** Parses the parameters after a path; returns the bad token when one does not parse. */
export function parseParameters(text: string): { ok: true; params: Parameter[] } | { ok: false; bad: string } {
  const params: Parameter[] = [];
  for (const token of text.split(' ')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const name = eq < 0 ? token : token.slice(0, eq);
    const value = eq < 0 ? null : token.slice(eq + 1);
    if (!ESMTP_KEYWORD.test(name) || value === '') return { ok: false, bad: token };
    params.push({ name: name.toUpperCase(), value });
  }
  return { ok: true, params };
}

/** The inverse of parseParameters: " NAME=value NAME2" (with the leading space), or "" for none. */
export function formatParameters(params: readonly Parameter[]): string {
  let out = '';
  for (const p of params) out += p.value === null ? ` ${p.name}` : ` ${p.name}=${p.value}`;
  return out;
}

/** RFC 3461 §4 xtext: "+" followed by two upper-case hex digits encodes one octet. */
export function decodeXtext(text: string): string | null {
  if (!/^(?:[!-*,-<>-~]|\+[0-9A-F]{2})*$/.test(text)) return null;
  return text.replace(/\+([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export function encodeXtext(text: string): string {
  return text.replace(/[^!-*,-<>-~]|\+|=/g, (c) => `+${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}
