/**
 * @module EHLO keywords: the list a server advertises and the parsed list of a peer's.
 */

export interface ServerExtensions {
  readonly maxMessageBytes: number;
  readonly startTls: boolean;
  readonly authMechanisms: readonly string[];
}

/** SASL mechanisms the server implements (RFC 4616 PLAIN; LOGIN as deployed clients expect). */
export type AuthMechanism = 'PLAIN' | 'LOGIN';

/** The keywords after the greeting line of a 250 EHLO reply, in a stable order. */
export function buildEhloKeywords(ext: ServerExtensions): string[] {
  const keywords = [
    'PIPELINING', // RFC 2920
    `SIZE ${ext.maxMessageBytes}`, // RFC 1870
    '8BITMIME', // RFC 6152
    'SMTPUTF8', // RFC 6531
    'ENHANCEDSTATUSCODES', // RFC 2034
    'CHUNKING', // RFC 3030
    'DSN', // RFC 3461
  ];
  if (ext.startTls) keywords.push('STARTTLS'); // RFC 3207
  if (ext.authMechanisms.length > 0) keywords.push(`AUTH ${ext.authMechanisms.join(' ')}`); // RFC 4954
  keywords.push('HELP');
  return keywords;
}

/** A peer's EHLO keywords: upper-cased keyword → its parameters. */
export type PeerExtensions = ReadonlyMap<string, readonly string[]>;

/** Parses the lines of a 250 EHLO reply (the first line is the greeting and is skipped). */
export function parseEhloLines(lines: readonly string[]): PeerExtensions {
  const map = new Map<string, readonly string[]>();
  for (const line of lines.slice(1)) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    const keyword = words[0].toUpperCase();
    // Old servers write "AUTH=LOGIN PLAIN"; treat it as AUTH.
    if (keyword.startsWith('AUTH=')) {
      map.set('AUTH', [...(map.get('AUTH') ?? []), keyword.slice(5), ...words.slice(1)]);
      continue;
    }
    map.set(keyword, words.slice(1));
  }
  return map;
}

/** The peer's SIZE limit, or null when it advertises none (or SIZE 0: no fixed limit). */
export function peerMaxSize(ext: PeerExtensions): number | null {
  const value = ext.get('SIZE')?.[0];
  const n = value === undefined ? 0 : Number(value);
  return Number.isFinite(n) && n > 0 ? n : null;
}
