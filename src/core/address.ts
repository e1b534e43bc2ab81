/**
 * @module RFC 5321 paths and mailboxes: parse and format.
 * Rule 1: non-ASCII is accepted only when the caller says SMTPUTF8 is in force (RFC 6531 §3.3).
 * Rule 2: a parse failure is a reason in words, never an exception.
 */

/** A mailbox as RFC 5321 §4.1.2 defines it; `local` keeps its quotes when it was quoted. */
export interface Mailbox {
  readonly local: string;
  readonly domain: string;
}

export type ParsedPath =
  | { readonly ok: true; readonly mailbox: Mailbox | null; readonly rest: string; readonly utf8: boolean }
  | { readonly ok: false; readonly why: string };

// RFC 5321 §4.5.3.1: size limits
export const MAX_LOCAL_PART_OCTETS = 64;
export const MAX_DOMAIN_OCTETS = 255;
export const MAX_PATH_OCTETS = 256;

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const ATEXT_UTF8 = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]|[^\x00-\x7f])+$/u;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const LABEL_UTF8 = /^(?:[A-Za-z0-9]|[^\x00-\x7f])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f]){0,61}(?:[A-Za-z0-9]|[^\x00-\x7f]))?$/u;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX4 = /^[0-9A-Fa-f]{1,4}$/;

const hasNonAscii = (s: string): boolean => /[^\x00-\x7f]/.test(s);
const ENCODER = new TextEncoder();
const utf8Length = (s: string): number => (hasNonAscii(s) ? ENCODER.encode(s).length : s.length);

/** RFC 5321 §4.1.3: IPv6 address literal body, full or compressed, with an optional IPv4 tail. */
function isIpv6(text: string): boolean {
  let body = text;
  let groupsWanted = 8;
  const lastColon = body.lastIndexOf(':');
  if (body.slice(lastColon + 1).includes('.')) {
    if (!IPV4.test(body.slice(lastColon + 1))) return false;
    body = body.slice(0, lastColon + 1) + '0';
    groupsWanted = 7;
  }
  const halves = body.split('::');
  if (halves.length > 2) return false;
  const groups = halves.map((h) => (h === '' ? [] : h.split(':')));
  if (!groups.every((g) => g.every((x) => HEX4.test(x)))) return false;
  const count = groups.reduce((n, g) => n + g.length, 0);
  return halves.length === 2 ? count < groupsWanted : count === groupsWanted;
}

/** Checks a domain or address literal; returns a reason when it is not valid. */
export function checkDomain(domain: string, utf8: boolean): string | null {
  if (domain === '') return 'the domain is empty';
  if (domain.startsWith('[')) {
    if (!domain.endsWith(']')) return 'the address literal is not closed with "]"';
    const inner = domain.slice(1, -1);
    if (IPV4.test(inner)) return null;
    if (/^IPv6:/i.test(inner) && isIpv6(inner.slice(5))) return null;
    return `"${domain}" is not a valid address literal`;
  }
  if (utf8Length(domain) > MAX_DOMAIN_OCTETS) return `the domain is longer than ${MAX_DOMAIN_OCTETS} octets`;
  if (!utf8 && hasNonAscii(domain)) return 'non-ASCII domain without SMTPUTF8';
  const labels = domain.split('.');
  for (const label of labels) {
    if (label === '') return `"${domain}" has an empty label`;
    if (!(utf8 ? LABEL_UTF8 : LABEL).test(label)) return `"${label}" is not a valid domain label`;
  }
  return null;
}

/** Checks a local part (dot-string or quoted-string); returns a reason when it is not valid. */
export function checkLocalPart(local: string, utf8: boolean): string | null {
  if (local === '') return 'the local part is empty';
  if (utf8Length(local) > MAX_LOCAL_PART_OCTETS) return `the local part is longer than ${MAX_LOCAL_PART_OCTETS} octets`;
  if (!utf8 && hasNonAscii(local)) return 'non-ASCII local part without SMTPUTF8';
  if (local.startsWith('"')) {
    if (local.length < 2 || !local.endsWith('"')) return 'the quoted local part is not closed';
    const inner = local.slice(1, -1);
    // RFC 5321 §4.1.2: qtextSMTP is %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP is "\" %d32-126
    for (let i = 0; i < inner.length; i++) {
      const c = inner.charCodeAt(i);
      if (c === 0x5c) {
        const next = inner.charCodeAt(i + 1);
        if (!(next >= 32 && next <= 126)) return 'a backslash in the quoted local part escapes nothing';
        i++;
      } else if (c === 0x22) {
        return 'an unescaped quote inside the quoted local part';
      } else if (c < 32 || c === 127) {
        return 'a control character inside the quoted local part';
      }
    }
    return null;
  }
  const atoms = local.split('.');
  for (const atom of atoms) {
    if (atom === '') return 'the local part has an empty dot-separated part';
    if (!(utf8 ? ATEXT_UTF8 : ATEXT).test(atom)) return `"${local}" has characters that need quoting`;
  }
  return null;
}

/** Finds the "@" that separates local part and domain, skipping a quoted local part. */
function splitMailbox(text: string): [string, string] | null {
  let at = -1;
  if (text.startsWith('"')) {
    let i = 1;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    at = text.indexOf('@', i + 1);
    if (at !== i + 1) return null;
  } else {
    at = text.lastIndexOf('@');
  }
  if (at < 0) return null;
  return [text.slice(0, at), text.slice(at + 1)];
}

/** Parses "local@domain" without angle brackets. */
export function parseMailbox(text: string, utf8: boolean): { ok: true; mailbox: Mailbox } | { ok: false; why: string } {
  const parts = splitMailbox(text);
  if (!parts) return { ok: false, why: `"${text}" has no "@domain"` };
  const [local, domain] = parts;
  const whyLocal = checkLocalPart(local, utf8);
  if (whyLocal) return { ok: false, why: whyLocal };
  const whyDomain = checkDomain(domain, utf8);
  if (whyDomain) return { ok: false, why: whyDomain };
  return { ok: true, mailbox: { local, domain } };
}

/**
 * Parses a reverse- or forward-path at the start of `text` ("<a@b> SIZE=10" → mailbox and rest).
 * RFC 5321 §4.1.1.3 and Appendix C: a source route ("<@x,@y:a@b>") is accepted and ignored.
 * `allowNull` permits "<>" (the reverse-path of a bounce).
 */
export function parsePath(text: string, opts: { allowNull: boolean; utf8: boolean }): ParsedPath {
  if (!text.startsWith('<')) return { ok: false, why: 'the address must be enclosed in <>' };
  let end = 1;
  let quoted = false;
  for (; end < text.length; end++) {
    const c = text[end];
    if (quoted) {
      if (c === '\\') end++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '>') break;
  }
  if (end >= text.length) return { ok: false, why: 'the address is missing its closing ">"' };
  let inner = text.slice(1, end);
  const rest = text.slice(end + 1).replace(/^ +/, '');
  if (end + 1 < text.length && text[end + 1] !== ' ') return { ok: false, why: 'text follows ">" without a space' };
  if (utf8Length(inner) + 2 > MAX_PATH_OCTETS) return { ok: false, why: `the path is longer than ${MAX_PATH_OCTETS} octets` };
  const utf8Used = hasNonAscii(inner);
  if (inner === '') {
    return opts.allowNull ? { ok: true, mailbox: null, rest, utf8: false } : { ok: false, why: 'the null path <> is not allowed here' };
  }
  if (inner.startsWith('@')) {
    const colon = inner.indexOf(':');
    if (colon < 0) return { ok: false, why: 'the source route has no ":"' };
    inner = inner.slice(colon + 1);
  }
  const parsed = parseMailbox(inner, opts.utf8);
  if (!parsed.ok) return parsed;
  return { ok: true, mailbox: parsed.mailbox, rest, utf8: utf8Used };
}

/** Formats a mailbox for the wire; null is the null path. */
export function formatPath(mailbox: Mailbox | null): string {
  return mailbox ? `<${mailbox.local}@${mailbox.domain}>` : '<>';
}

export function formatMailbox(mailbox: Mailbox): string {
  return `${mailbox.local}@${mailbox.domain}`;
}

/** The address the log and the spool index use for a mailbox (or "<>" for the null sender). */
export function mailboxKey(mailbox: Mailbox | null): string {
  return mailbox ? formatMailbox(mailbox) : '<>';
}

/** True when the address needs SMTPUTF8 to travel (RFC 6531 §3.4). */
export function needsSmtpUtf8(mailbox: Mailbox | null): boolean {
  return mailbox !== null && (hasNonAscii(mailbox.local) || hasNonAscii(mailbox.domain));
}

/** Domains compare without regard to case (RFC 5321 §2.4); a trailing dot is not significant. */
export function normalizeDomain(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}
