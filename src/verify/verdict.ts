/**
 * @module Verdicts: the one table of reason codes, each with its verdict, and the pure functions
 * that turn DNS routes and SMTP replies into a reason. After Haraka's verdict/reply split: the
 * evidence is gathered elsewhere; this file only judges it.
 * Rule 1: a refusal is undeliverable, a temporary answer is never invalid, and "unknown" is kept
 *         for cases where the evidence really is missing or says nothing about the mailbox.
 * Rule 2: an acceptance counts as deliverable only when a random address at the same domain was
 *         refused on the same connection (otherwise the server may accept everything).
 */
import type { MailRoute } from '../dns/mail-route.ts';
import type { Reply } from '../core/reply.ts';

export type Verdict = 'deliverable' | 'undeliverable' | 'risky' | 'unknown';
export const VERDICTS: readonly Verdict[] = ['deliverable', 'undeliverable', 'risky', 'unknown'];

export const REASONS = {
  accepted: { verdict: 'deliverable', text: 'the server accepted the address and refused a random one at the same domain' },
  'vrfy-confirmed': { verdict: 'deliverable', text: 'the server accepts any address, and VRFY confirmed this one' },
  'invalid-syntax': { verdict: 'undeliverable', text: 'the address is not valid' },
  'no-such-domain': { verdict: 'undeliverable', text: 'the domain does not exist (NXDOMAIN)' },
  'null-mx': { verdict: 'undeliverable', text: 'the domain publishes a null MX: it accepts no mail (RFC 7505)' },
  'no-mail-host': { verdict: 'undeliverable', text: 'the domain has neither an MX record nor an address (RFC 5321 §5.1)' },
  'mx-unresolvable': { verdict: 'undeliverable', text: 'none of the MX hosts has an address' },
  rejected: { verdict: 'undeliverable', text: 'the server refused the address' },
  'mailbox-disabled': { verdict: 'undeliverable', text: 'the server says the mailbox is disabled' },
  'vrfy-rejected': { verdict: 'undeliverable', text: 'the server accepts any address at RCPT, but VRFY refused this one' },
  'smtputf8-unsupported': { verdict: 'undeliverable', text: 'the address needs SMTPUTF8 and the server does not offer it (RFC 6531)' },
  'catch-all': { verdict: 'risky', text: 'the server accepts any address at this domain, so the acceptance proves nothing' },
  'catch-all-unknown': { verdict: 'risky', text: 'the server accepted the address; whether it accepts any address could not be told' },
  greylisted: { verdict: 'risky', text: 'the server deferred the address (4xx), as greylisting does' },
  'mailbox-full': { verdict: 'risky', text: 'the server says the mailbox is full' },
  'dns-timeout': { verdict: 'unknown', text: 'the DNS server did not answer' },
  'dns-failure': { verdict: 'unknown', text: 'DNS failed temporarily (SERVFAIL, REFUSED or an error)' },
  'smtp-unreachable': { verdict: 'unknown', text: 'no mail host could be reached on the SMTP port; outbound SMTP may be blocked from this machine' },
  'session-refused': { verdict: 'unknown', text: 'the mail hosts refused the SMTP session' },
  'sender-rejected': { verdict: 'unknown', text: 'the server refused the probe sender, so the address was never asked about' },
  'policy-block': { verdict: 'unknown', text: 'the server refused for a policy reason (5.7.x), which says nothing about the mailbox' },
  'smtp-error': { verdict: 'unknown', text: 'the SMTP dialogue failed before the server answered for the address' },
  'syntax-valid': { verdict: 'unknown', text: 'the syntax is valid (not checked further: --level syntax)' },
  'mail-host-found': { verdict: 'unknown', text: 'the domain has a mail host (not probed: --level dns)' },
} as const satisfies Record<string, { verdict: Verdict; text: string }>;

export type ReasonCode = keyof typeof REASONS;

/** A verdict with its reason code and a one-line detail (usually the deciding reply or answer). */
export interface Judgement {
  readonly verdict: Verdict;
  readonly reason: ReasonCode;
  readonly detail: string;
}

export function judgement(reason: ReasonCode, detail: string = REASONS[reason].text): Judgement {
  return { verdict: REASONS[reason].verdict, reason, detail };
}

/** Reasons that mean "passed every check that was asked for" at --level syntax and dns. */
export const PASSING_REASONS: ReadonlySet<ReasonCode> = new Set(['accepted', 'vrfy-confirmed', 'syntax-valid', 'mail-host-found']);

/** A DNS route that decides the verdict by itself, or null when there are hosts to ask. */
export function judgeRoute(route: MailRoute): Judgement | null {
  switch (route.kind) {
    case 'hosts':
      return null;
    case 'null-mx':
      return judgement('null-mx');
    case 'nxdomain':
      return judgement('no-such-domain');
    case 'no-mail-host':
      return judgement('no-mail-host');
    case 'mx-unresolvable':
      return judgement('mx-unresolvable');
    case 'temporary':
      return judgement(route.status === 'timeout' ? 'dns-timeout' : 'dns-failure', route.why);
    default:
      route satisfies never;
      return null;
  }
}

/** How one RCPT (or VRFY) reply reads for the address it names. */
export type RcptClass = 'accepted' | 'rejected' | 'disabled' | 'full' | 'deferred' | 'too-many' | 'policy';

/**
 * RFC 5321 §4.2.1 by the first digit, refined by the enhanced code (RFC 3463): X.1.x is the
 * address, X.2.1 a disabled mailbox, X.2.2 a full one, X.5.3 too many recipients, 5.7.x policy.
 * Without an enhanced code, 452 and 552 are read as "full", as many servers use them so.
 */
export function classifyRcpt(reply: Reply): RcptClass {
  const { code, enhanced } = reply;
  const detail = enhanced?.slice(2) ?? '';
  if (code >= 200 && code < 300) return 'accepted';
  if (detail === '5.3') return 'too-many';
  if (detail === '2.2' || ((code === 452 || code === 552) && (enhanced === undefined || detail.startsWith('3.')))) return 'full';
  if (code < 500) return 'deferred';
  if (detail === '2.1') return 'disabled';
  if (detail.startsWith('7.')) return 'policy';
  return 'rejected';
}

export interface ProbeFacts {
  /** The reply to MAIL FROM, or null when it was never sent or answered. */
  readonly mail: Reply | null;
  /** The reply to RCPT TO for the address, or null. */
  readonly rcpt: Reply | null;
  /** The reply to VRFY for the address, when --vrfy asked. */
  readonly vrfy: Reply | null;
  /** Whether the domain accepted a random address: true, false, or null when that is not known. */
  readonly catchAll: boolean | null;
  /** Why the dialogue broke off, when it did. */
  readonly failure: string | null;
}

function describe(reply: Reply): string {
  const text = reply.lines.join(' / ');
  return reply.enhanced ? `${reply.code} ${reply.enhanced} ${text}` : `${reply.code} ${text}`;
}

/** The verdict for one address from what its probe brought back. */
export function judgeProbe(facts: ProbeFacts): Judgement {
  const { mail, rcpt, vrfy } = facts;
  if (mail !== null && !(mail.code >= 200 && mail.code < 300)) return judgement('sender-rejected', `MAIL FROM: ${describe(mail)}`);
  if (rcpt === null) return judgement('smtp-error', facts.failure ?? REASONS['smtp-error'].text);
  const detail = `RCPT TO: ${describe(rcpt)}`;
  switch (classifyRcpt(rcpt)) {
    case 'accepted':
      break;
    case 'rejected':
      return judgement('rejected', detail);
    case 'disabled':
      return judgement('mailbox-disabled', detail);
    case 'full':
      return judgement('mailbox-full', detail);
    case 'deferred':
    case 'too-many':
      return judgement('greylisted', detail);
    case 'policy':
      return judgement('policy-block', detail);
  }
  if (facts.catchAll === false) return judgement('accepted', detail);
  if (facts.catchAll === null) return judgement('catch-all-unknown', detail);
  // The domain accepts anything at RCPT; VRFY, where the server really answers it, can still tell.
  if (vrfy !== null) {
    const vrfyClass = vrfy.code === 252 ? null : classifyRcpt(vrfy);
    if (vrfyClass === 'accepted') return judgement('vrfy-confirmed', `VRFY: ${describe(vrfy)}`);
    if (vrfyClass === 'rejected' || vrfyClass === 'disabled') return judgement('vrfy-rejected', `VRFY: ${describe(vrfy)}`);
  }
  return judgement('catch-all', `${detail}; a random address was accepted too`);
}
