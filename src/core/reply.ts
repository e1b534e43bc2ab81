/**
 * @module SMTP replies: the value every layer passes outward, its wire format and its parser.
 * Rule: a Reply is data; only replies.ts writes reply text.
 */

/**
 * Who a refusal is charged to, decided where the reply is made (replies.ts): the client's own
 * mistake, a limit reached by a client that did nothing wrong, or the server's own failure.
 * RFC 5321 §4.3.2 leaves error accounting to the server; only the client's mistakes count
 * toward --max-errors and are slowed down (server-session.ts holds the rule).
 */
export type Blame = 'client' | 'limit' | 'server';

/** One SMTP reply: a three-digit code, an optional enhanced status code (RFC 3463), text lines. */
export interface Reply {
  readonly code: number;
  readonly enhanced?: string;
  readonly lines: readonly string[];
  /** Set on refusals that are not the client's mistake; absent means the client's. */
  readonly blame?: Blame;
}

export type ReplyClass = 'positive' | 'intermediate' | 'transient' | 'permanent';

/** RFC 5321 §4.2.1: the first digit says whether the command succeeded. */
export function classifyReply(reply: Reply): ReplyClass {
  const first = Math.floor(reply.code / 100);
  if (first === 2) return 'positive';
  if (first === 3) return 'intermediate';
  if (first === 4) return 'transient';
  return 'permanent';
}

export function isPositive(reply: Reply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

/**
 * Builds a reply value; text may hold several lines separated by "\n". Replies are built on
 * every command, so they are readonly by type rather than frozen (Object.freeze measured at a
 * sixth of the server's CPU under load).
 */
export function reply(code: number, enhanced: string | undefined, text: string, blame?: Blame): Reply {
  const lines = text.includes('\n') ? text.split('\n') : [text];
  return blame === undefined ? { code, enhanced, lines } : { code, enhanced, lines, blame };
}

/** Who a reply charges: null for a success or an intermediate reply (below 400). */
export function blameOf(r: Reply): Blame | null {
  return r.code < 400 ? null : (r.blame ?? 'client');
}

// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets, CRLF included.
const MAX_REPLY_LINE_OCTETS = 512;
const ENCODER = new TextEncoder();

/** Cuts a reply line that would pass the limit (text echoed from a client can be long). */
function fitLine(line: string, room: number): string {
  if (line.length * 3 <= room || ENCODER.encode(line).length <= room) return line;
  let cut = line.slice(0, room - 3);
  while (ENCODER.encode(cut).length > room - 3) cut = cut.slice(0, -1);
  return `${cut.replace(/[\ud800-\udbff]$/, '')}...`;
}

/**
 * RFC 5321 §4.2.1: every line but the last is "code-text", the last "code SP text".
 * The enhanced code, when there is one, starts every line (RFC 2034 §4).
 */
export function formatReply(r: Reply): string {
  const prefix = r.enhanced ? `${r.enhanced} ` : '';
  const room = MAX_REPLY_LINE_OCTETS - 2 - 4 - prefix.length;
  const last = r.lines.length - 1;
  let out = '';
  for (let i = 0; i <= last; i++) {
    out += `${r.code}${i === last ? ' ' : '-'}${prefix}${fitLine(r.lines[i], room)}\r\n`;
  }
  return out;
}

/** One-line human rendering for logs and error messages: "550 5.1.1 No such user". */
export function describeReply(r: Reply): string {
  const text = r.lines.join(' / ');
  return r.enhanced ? `${r.code} ${r.enhanced} ${text}` : `${r.code} ${text}`;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

export type ReplyLine =
  | { readonly kind: 'line'; readonly code: number; readonly last: boolean; readonly text: string }
  | { readonly kind: 'malformed'; readonly line: string };

/** Parses one reply line from a server: "250-SIZE 100", "250 OK", "220". */
export function parseReplyLine(line: string): ReplyLine {
  if (line.length < 3) return { kind: 'malformed', line };
  const code = Number(line.slice(0, 3));
  if (!/^[2-5][0-9][0-9]$/.test(line.slice(0, 3))) return { kind: 'malformed', line };
  const sep = line.charAt(3);
  if (sep !== '' && sep !== ' ' && sep !== '-') return { kind: 'malformed', line };
  return { kind: 'line', code, last: sep !== '-', text: line.slice(4) };
}

/**
 * Assembles parsed lines into a Reply. The enhanced code is taken from the first line when
 * its class digit matches the reply code (RFC 3463 §2), and stripped from every line.
 */
export function assembleReply(code: number, texts: readonly string[]): Reply {
  const m = ENHANCED.exec(texts[0] ?? '');
  const enhanced = m && m[1] === String(code).charAt(0) ? `${m[1]}.${m[2]}.${m[3]}` : undefined;
  if (enhanced === undefined) return { code, enhanced, lines: [...texts] };
  // Built with a loop and no regular expression: the client assembles a reply per command.
  const lines: string[] = [];
  for (const t of texts) {
    if (!t.startsWith(enhanced)) lines.push(t);
    else lines.push(t.charCodeAt(enhanced.length) === 32 ? t.slice(enhanced.length + 1) : t.slice(enhanced.length));
  }
  return { code, enhanced, lines };
}
