/**
 * @module Hints about a syntactically valid address that are not verdicts: a role account
 * (RFC 2142 mailbox names and their usual kin), a well-known disposable-mail domain from a small
 * bundled list, and a likely typo of a big provider's domain. Pure and table-driven.
 * Rule: a hint never changes a verdict; it is shown beside it.
 */
import type { Mailbox } from '../core/address.ts';

export type HintCode = 'role-account' | 'disposable-domain' | 'possible-typo';

export interface Hint {
  readonly code: HintCode;
  readonly text: string;
  /** For 'possible-typo': the address as it probably should be. */
  readonly suggestion?: string;
}

// RFC 2142 §3-§5 (business, network and service mailboxes), plus common role names.
const ROLE_ACCOUNTS: ReadonlySet<string> = new Set([
  'abuse', 'admin', 'administrator', 'billing', 'careers', 'contact', 'enquiries', 'ftp', 'help', 'hostmaster',
  'info', 'jobs', 'mailer-daemon', 'marketing', 'news', 'noc', 'no-reply', 'noreply', 'office', 'postmaster',
  'press', 'root', 'sales', 'security', 'support', 'usenet', 'uucp', 'webmaster', 'www',
]);

// Well-known disposable-mail services; small on purpose (the hint is a nudge, not a blocklist).
const DISPOSABLE_DOMAINS: ReadonlySet<string> = new Set([
  '10minutemail.com', '20minutemail.com', '33mail.com', 'burnermail.io', 'discard.email', 'dispostable.com',
  'emailondeck.com', 'fakeinbox.com', 'getairmail.com', 'getnada.com', 'guerrillamail.biz', 'guerrillamail.com',
  'guerrillamail.de', 'guerrillamail.net', 'guerrillamail.org', 'guerrillamailblock.com', 'harakirimail.com',
  'incognitomail.org', 'mailcatch.com', 'maildrop.cc', 'mailinator.com', 'mailinator.net', 'mailnesia.com',
  'mintemail.com', 'moakt.com', 'mohmal.com', 'mytemp.email', 'sharklasers.com', 'spam4.me', 'spamgourmet.com',
  'temp-mail.org', 'tempail.com', 'tempmail.com', 'tempmailo.com', 'tempr.email', 'throwawaymail.com',
  'trashmail.com', 'trashmail.de', 'wegwerfmail.de', 'yopmail.com', 'yopmail.fr',
]);

// Large providers whose domains people mistype.
const PROVIDER_DOMAINS: readonly string[] = [
  'gmail.com', 'googlemail.com', 'yahoo.com', 'yahoo.co.uk', 'yahoo.fr', 'ymail.com', 'hotmail.com', 'hotmail.co.uk',
  'hotmail.fr', 'outlook.com', 'live.com', 'msn.com', 'icloud.com', 'me.com', 'mac.com', 'aol.com', 'protonmail.com',
  'proton.me', 'gmx.com', 'gmx.de', 'gmx.net', 'web.de', 't-online.de', 'orange.fr', 'free.fr', 'laposte.net',
  'yandex.ru', 'mail.ru', 'qq.com', '163.com', 'comcast.net', 'verizon.net', 'att.net', 'zoho.com', 'fastmail.com',
];

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions), capped at `max + 1`. */
export function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i].push(d);
    }
  }
  return Math.min(rows[a.length][b.length], max + 1);
}

/** The provider domain `domain` is one edit away from (two for long names), or null. */
export function likelyTypo(domain: string): string | null {
  if (PROVIDER_DOMAINS.includes(domain)) return null;
  let best: { domain: string; distance: number } | null = null;
  for (const candidate of PROVIDER_DOMAINS) {
    const max = candidate.length >= 10 ? 2 : 1;
    const distance = editDistance(domain, candidate, max);
    if (distance <= max && (best === null || distance < best.distance)) best = { domain: candidate, distance };
  }
  return best?.domain ?? null;
}

/** Hints for a valid mailbox whose domain is lower-case A-labels. */
export function hintsFor(mailbox: Mailbox): Hint[] {
  const hints: Hint[] = [];
  const local = mailbox.local.toLowerCase().replace(/\+.*$/, '');
  if (ROLE_ACCOUNTS.has(local)) hints.push({ code: 'role-account', text: `"${mailbox.local}" is a role account, usually read by several people or none` });
  if (DISPOSABLE_DOMAINS.has(mailbox.domain)) hints.push({ code: 'disposable-domain', text: `${mailbox.domain} hands out disposable addresses` });
  const typo = mailbox.domain.startsWith('[') ? null : likelyTypo(mailbox.domain);
  if (typo !== null) {
    hints.push({ code: 'possible-typo', text: `did you mean ${mailbox.local}@${typo}?`, suggestion: `${mailbox.local}@${typo}` });
  }
  return hints;
}
