/**
 * @module Address syntax for `mailbox verify`: RFC 5321 §4.1.2 mailboxes (dot-atom and quoted
 * local parts, domain literals), the length limits of §4.5.3.1 (64 local, 255 domain, 254 for the
 * address inside a 256-octet path), and internationalised addresses (RFC 6531/6532: UTF-8 local
 * parts need SMTPUTF8; Unicode domains are converted to IDNA A-labels, which need nothing).
 * Rule: every rejection is a reason in words; nothing here throws for bad input.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { checkDomain, checkLocalPart, MAX_PATH_OCTETS, type Mailbox } from '../core/address.ts';

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets including "<" and ">". */
export const MAX_ADDRESS_OCTETS = MAX_PATH_OCTETS - 2;

export type AddressCheck =
  | {
      readonly ok: true;
      /** The address as it goes on the wire: local part as given, domain as lower-case A-labels. */
      readonly mailbox: Mailbox;
      /** The domain in Unicode (U-labels), for people. */
      readonly unicodeDomain: string;
      /** The local part is not ASCII: the address can only travel with SMTPUTF8 (RFC 6531 §3.2). */
      readonly smtpUtf8: boolean;
      /** For a domain literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"): the IP address it names. */
      readonly literal: string | null;
    }
  | { readonly ok: false; readonly why: string };

const ENCODER = new TextEncoder();
const octets = (s: string): number => ENCODER.encode(s).length;
const NON_ASCII = /[^\x00-\x7f]/;

/** Finds the "@" that ends the local part: the last one, unless the local part is quoted. */
function splitAt(text: string): [string, string] | null {
  if (text.startsWith('"')) {
    let i = 1;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) return null;
    return text[i + 1] === '@' ? [text.slice(0, i + 1), text.slice(i + 2)] : null;
  }
  const at = text.lastIndexOf('@');
  return at < 0 ? null : [text.slice(0, at), text.slice(at + 1)];
}

/** Checks one address as a user typed it ("<...>" around it is allowed). */
export function checkAddress(input: string): AddressCheck {
  let text = input.trim();
  if (text.startsWith('<') && text.endsWith('>')) text = text.slice(1, -1);
  if (text === '') return { ok: false, why: 'the address is empty' };
  if (/[\r\n\0]/.test(text)) return { ok: false, why: 'the address contains a line break or NUL' };
  const parts = splitAt(text);
  if (parts === null) {
    return text.startsWith('"')
      ? { ok: false, why: 'the quoted local part is not closed, or not followed by "@"' }
      : { ok: false, why: 'there is no "@" between local part and domain' };
  }
  const [local, domain] = parts;
  const whyLocal = checkLocalPart(local, true);
  if (whyLocal !== null) return { ok: false, why: whyLocal };

  if (domain === '') return { ok: false, why: 'the domain is empty' };
  if (domain.startsWith('[')) {
    const whyLiteral = checkDomain(domain, false);
    if (whyLiteral !== null) return { ok: false, why: whyLiteral };
    const inner = domain.slice(1, -1);
    const literal = /^IPv6:/i.test(inner) ? inner.slice(5).toLowerCase() : inner;
    return finish(local, domain.replace(/^\[ipv6:/i, '[IPv6:'), domain, literal);
  }
  // RFC 5890 §2.3.2.1: Unicode labels travel as A-labels ("xn--..."); the conversion validates them.
  const lower = domain.toLowerCase();
  const ascii = NON_ASCII.test(lower) || /(^|\.)xn--/.test(lower) ? domainToASCII(lower) : lower;
  if (ascii === '') return { ok: false, why: `"${domain}" is not a valid internationalised domain name (IDNA)` };
  const whyDomain = checkDomain(ascii, false);
  if (whyDomain !== null) return { ok: false, why: whyDomain.replace(`"${ascii}"`, `"${domain}"`) };
  if (!ascii.includes('.')) return { ok: false, why: `"${domain}" is not a fully qualified domain name (RFC 5321 §2.3.5)` };
  return finish(local, ascii, domainToUnicode(ascii) || domain, null);
}

function finish(local: string, domain: string, unicodeDomain: string, literal: string | null): AddressCheck {
  const length = octets(local) + 1 + octets(domain);
  if (length > MAX_ADDRESS_OCTETS) {
    return { ok: false, why: `the address is ${length} octets; at most ${MAX_ADDRESS_OCTETS} fit in an SMTP path (RFC 5321 §4.5.3.1.3)` };
  }
  return { ok: true, mailbox: { local, domain }, unicodeDomain, smtpUtf8: NON_ASCII.test(local), literal };
}
