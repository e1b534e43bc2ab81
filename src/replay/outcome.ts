/**
 * @module What became of one replayed transaction, in terms a report and an exit code need:
 * sent, sent to some recipients only, temporarily or permanently failed; the recipients that
 * did not get it; and the replies that differ from --expect.
 * Rule: pure; a ReplayResult is a value built once, when the transaction's outcome is known.
 */
import { formatPath, type Mailbox } from '../core/address.ts';
import type { TransactionOutcome } from '../core/client-session.ts';
import type { Recipient } from '../core/envelope.ts';
import type { ClientFailure } from '../core/errors.ts';
import { describeReply, type Reply } from '../core/reply.ts';
import type { ReplayItem } from './sources.ts';

export type Verdict = 'sent' | 'partial' | 'temp' | 'perm';

/** "250", "2xx", "25x": a reply code, digits or x (any digit) after the first. */
export interface ExpectedCode {
  readonly text: string;
  readonly pattern: RegExp;
}

export interface RecipientResult {
  readonly recipient: Recipient;
  /** The reply to its RCPT; null when RCPT was never answered (the session failed first). */
  readonly reply: Reply | null;
  readonly accepted: boolean;
}

export interface ReplayResult {
  readonly item: ReplayItem;
  /** The envelope as sent (after --filter, --rewrite-domain, --from and --to). */
  readonly sender: Mailbox | null;
  readonly recipients: readonly RecipientResult[];
  readonly verdict: Verdict;
  /** The reply that decided: to the end of data, or the one that ended the transaction. */
  readonly reply: Reply | null;
  readonly failure: ClientFailure | null;
  /** Which connection carried it (1-based); 0: none could be opened. */
  readonly connection: number;
  /** Replies that differ from --expect, each described in one line; empty without --expect. */
  readonly mismatches: readonly string[];
}

/** Parses --expect: "250", "2xx", "55x". */
export function parseExpectedCode(text: string): ExpectedCode | null {
  if (!/^[2-5][0-9xX]{2}$/.test(text)) return null;
  return { text: text.toLowerCase(), pattern: new RegExp(`^${text.toLowerCase().replace(/x/g, '\\d')}$`) };
}

/** The failure's status decides (ClientFailure.permanent: the server's reply, or the client catalogue's). */
function isTransient(failure: ClientFailure): boolean {
  return !failure.permanent;
}

/** Builds the result of a transaction from the client's outcome. */
export function resultOf(
  item: ReplayItem,
  sender: Mailbox | null,
  recipients: readonly Recipient[],
  outcome: TransactionOutcome,
  connection: number,
  expect: ExpectedCode | null,
): ReplayResult {
  const answered = outcome.recipients;
  const perRecipient: RecipientResult[] = recipients.map((recipient, i) => {
    const r = answered[i];
    return { recipient, reply: r?.reply ?? null, accepted: outcome.ok && r !== undefined && r.accepted };
  });
  const failure = outcome.ok ? null : outcome.failure;
  const reply = outcome.ok ? outcome.reply : outcome.failure.reply ?? null;
  let verdict: Verdict;
  if (outcome.ok) verdict = perRecipient.every((r) => r.accepted) ? 'sent' : 'partial';
  else verdict = isTransient(outcome.failure) ? 'temp' : 'perm';
  const mismatches = expect === null ? [] : findMismatches(perRecipient, reply, failure, expect);
  return { item, sender, recipients: perRecipient, verdict, reply, failure, connection, mismatches };
}

/** A transaction that was never sent (no connection could be opened for it). */
export function unsentResult(item: ReplayItem, sender: Mailbox | null, recipients: readonly Recipient[], failure: ClientFailure, expect: ExpectedCode | null): ReplayResult {
  const perRecipient = recipients.map((recipient) => ({ recipient, reply: null, accepted: false }));
  const mismatches = expect === null ? [] : findMismatches(perRecipient, null, failure, expect);
  return { item, sender, recipients: perRecipient, verdict: isTransient(failure) ? 'temp' : 'perm', reply: failure.reply ?? null, failure, connection: 0, mismatches };
}

function findMismatches(recipients: readonly RecipientResult[], reply: Reply | null, failure: ClientFailure | null, expect: ExpectedCode): string[] {
  const out: string[] = [];
  const seen = new Set<Reply>();
  for (const r of recipients) {
    if (r.reply === null) continue;
    seen.add(r.reply);
    if (!expect.pattern.test(String(r.reply.code))) out.push(`RCPT TO:${formatPath(r.recipient.mailbox)}: ${describeReply(r.reply)}`);
  }
  if (reply !== null && !seen.has(reply) && !expect.pattern.test(String(reply.code))) {
    out.push(`${failure === null ? 'end of data' : stageName(failure)}: ${describeReply(reply)}`);
  }
  if (reply === null && failure !== null) out.push(`no reply: ${failure.message}`);
  return out;
}

function stageName(failure: ClientFailure): string {
  return failure.stage === 'message' ? 'end of data' : failure.stage.toUpperCase();
}

/** The recipients that did not get the message: every one unless it was sent. */
export function refusedRecipients(result: ReplayResult): Recipient[] {
  return result.recipients.filter((r) => !r.accepted).map((r) => r.recipient);
}

/** Counts for the summary. */
export interface ReplayTotals {
  transactions: number;
  sent: number;
  partial: number;
  temp: number;
  perm: number;
  /** Transactions whose replies differed from --expect. */
  mismatched: number;
  /** Left out by --filter. */
  filtered: number;
  /** Damaged or unusable stretches of the sources. */
  problems: number;
}

export function emptyTotals(): ReplayTotals {
  return { transactions: 0, sent: 0, partial: 0, temp: 0, perm: 0, mismatched: 0, filtered: 0, problems: 0 };
}

export function countResult(totals: ReplayTotals, result: ReplayResult): void {
  totals.transactions++;
  totals[result.verdict]++;
  if (result.mismatches.length > 0) totals.mismatched++;
}
