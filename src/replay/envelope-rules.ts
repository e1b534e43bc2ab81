/**
 * @module Envelope control for replay: which transactions go (--filter), and to whom and from
 * whom (--rewrite-domain, --to, --from). The message itself is never changed.
 * Rule 1: pure; parseEnvelopeRules() throws UsageErrors that name the flag.
 * Rule 2: the order is fixed: filter on the recorded envelope, then rewrite domains, then
 *         replace the sender (--from) and the recipients (--to).
 */
import { UsageError } from '../exit-status.ts';
import { formatMailbox, normalizeDomain, parseMailbox, type Mailbox } from '../core/address.ts';
import type { Recipient } from '../core/envelope.ts';
import type { ReplayItem } from './sources.ts';
import { list } from '../flag-values.ts';
import { addressPattern, globPattern } from '../core/address-pattern.ts';

export interface Filter {
  /** Keep only recipients matching one of these (the others are not replayed to). */
  readonly to: readonly RegExp[];
  readonly from: readonly RegExp[];
  /** Spool ids, or Message-IDs of message files. */
  readonly ids: readonly RegExp[];
  /** Received (spool) or dated (message files) at or after this time. */
  readonly sinceMs: number | null;
  /** …and before this time. */
  readonly untilMs: number | null;
}

export interface EnvelopeRules {
  /** undefined: keep the recorded sender; null: the null sender <>. */
  readonly from: Mailbox | null | undefined;
  /** null: keep the recorded recipients. */
  readonly to: readonly Mailbox[] | null;
  /** Domain → domain, lower case. */
  readonly rewrites: ReadonlyMap<string, string>;
  readonly filter: Filter;
}

/** What to do with one item. */
export type Decision =
  | { readonly kind: 'send'; readonly sender: Mailbox | null; readonly recipients: readonly Recipient[] }
  | { readonly kind: 'skip' }
  | { readonly kind: 'problem'; readonly reason: string };

const FILTER_KEYS: Record<string, keyof Filter> = {
  to: 'to',
  rcpt: 'to',
  from: 'from',
  sender: 'from',
  id: 'ids',
  since: 'sinceMs',
  after: 'sinceMs',
  until: 'untilMs',
  before: 'untilMs',
};

function parseTime(text: string, flag: string): number {
  const ms = /^\d{10,}$/.test(text) ? Number(text) * (text.length <= 10 ? 1000 : 1) : Date.parse(text);
  if (!Number.isFinite(ms)) throw new UsageError(`${flag}: "${text}" is not a date (use ISO 8601, e.g. 2026-11-27 or 2026-11-27T10:00:00Z)`);
  return ms;
}

function parseAddressFlag(text: string, flag: string): Mailbox {
  const trimmed = text.trim().replace(/^<(.*)>$/, '$1');
  const parsed = parseMailbox(trimmed, true);
  if (!parsed.ok) throw new UsageError(`${flag} ${text}: ${parsed.why}`);
  return parsed.mailbox;
}


/** --from, --to, --rewrite-domain and --filter, from cac's flags. */
export function parseEnvelopeRules(flags: Record<string, unknown>): EnvelopeRules {
  const fromText = list(flags.from);
  if (fromText.length > 1) throw new UsageError('--from may be given once');
  const from = fromText.length === 0 ? undefined : fromText[0].trim() === '' || fromText[0].trim() === '<>' ? null : parseAddressFlag(fromText[0], '--from');
  const toTexts = list(flags.to).flatMap((t) => t.split(',')).map((t) => t.trim()).filter((t) => t !== '');
  const to = toTexts.length === 0 ? null : toTexts.map((t) => parseAddressFlag(t, '--to'));

  const rewrites = new Map<string, string>();
  for (const text of list(flags.rewriteDomain)) {
    const m = /^([^=\s]+)=([^=\s]+)$/.exec(text.trim());
    if (!m) throw new UsageError(`--rewrite-domain ${text}: expected OLD=NEW, e.g. example.com=staging.example.com`);
    const probe = parseMailbox(`x@${m[2]}`, true);
    if (!probe.ok) throw new UsageError(`--rewrite-domain ${text}: ${probe.why}`);
    rewrites.set(normalizeDomain(m[1]), m[2]);
  }

  const filter = { to: [] as RegExp[], from: [] as RegExp[], ids: [] as RegExp[], sinceMs: null as number | null, untilMs: null as number | null };
  for (const text of list(flags.filter)) {
    const eq = text.indexOf('=');
    const key = FILTER_KEYS[text.slice(0, Math.max(eq, 0)).trim().toLowerCase()];
    const value = text.slice(eq + 1).trim();
    if (eq < 0 || key === undefined || value === '') {
      throw new UsageError(`--filter ${text}: expected to=PATTERN, from=PATTERN, id=PATTERN, since=DATE or until=DATE`);
    }
    if (key === 'sinceMs' || key === 'untilMs') filter[key] = parseTime(value, `--filter ${text}`);
    else if (key === 'ids') filter.ids.push(globPattern(value));
    else filter[key].push(addressPattern(value));
  }
  return { from, to, rewrites, filter };
}

function matchesAny(patterns: readonly RegExp[], text: string): boolean {
  for (const p of patterns) if (p.test(text)) return true;
  return false;
}

function rewrite(mailbox: Mailbox, rewrites: ReadonlyMap<string, string>): Mailbox {
  const to = rewrites.get(normalizeDomain(mailbox.domain));
  return to === undefined ? mailbox : { local: mailbox.local, domain: to };
}

/** Applies the rules to one item: the envelope to send, a reason to skip it, or a problem. */
export function decide(item: ReplayItem, rules: EnvelopeRules): Decision {
  const { filter } = rules;
  if (filter.ids.length > 0) {
    const ids = [item.id, item.messageId].filter((x): x is string => x !== null);
    if (!ids.some((id) => matchesAny(filter.ids, id))) return { kind: 'skip' };
  }
  if (filter.sinceMs !== null || filter.untilMs !== null) {
    if (item.timeMs === null) return { kind: 'skip' };
    if (filter.sinceMs !== null && item.timeMs < filter.sinceMs) return { kind: 'skip' };
    if (filter.untilMs !== null && item.timeMs >= filter.untilMs) return { kind: 'skip' };
  }
  if (filter.from.length > 0) {
    if (item.sender === undefined) return { kind: 'skip' };
    if (!matchesAny(filter.from, item.sender === null ? '' : formatMailbox(item.sender))) return { kind: 'skip' };
  }
  let recipients = item.recipients;
  if (filter.to.length > 0) {
    recipients = recipients.filter((r) => matchesAny(filter.to, formatMailbox(r.mailbox)));
    if (recipients.length === 0) return { kind: 'skip' };
  }

  let sender = item.sender;
  if (rules.rewrites.size > 0) {
    if (sender !== null && sender !== undefined) sender = rewrite(sender, rules.rewrites);
    recipients = recipients.map((r) => ({ ...r, mailbox: rewrite(r.mailbox, rules.rewrites) }));
  }
  if (rules.from !== undefined) sender = rules.from;
  if (rules.to !== null) recipients = rules.to.map((mailbox) => ({ mailbox, local: false, params: [] }));

  if (sender === undefined) return { kind: 'problem', reason: 'no sender: the header has no Return-Path or From (give --from)' };
  if (recipients.length === 0) return { kind: 'problem', reason: `no recipients: ${item.recipientsProblem ?? 'the record has none'} (give --to)` };
  return { kind: 'send', sender, recipients };
}
