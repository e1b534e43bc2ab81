/**
 * @module What `mailbox send` tells the user: one line per delivery (or the stages `--quit-after`
 * reached), and `--json`'s machine-readable result; and a failure made into one line that says
 * what to do when the cause is a common mistake (a TLS mode that does not fit the port).
 * Rule: pure. Text in, text out.
 */
import { formatMailbox } from '../../core/address.ts';
import type { ClientFailure } from '../../core/errors.ts';
import { describeReply, type Reply } from '../../core/reply.ts';
import type { Handoff } from '../../delivery/handoff.ts';

export interface ReportLines {
  readonly stdout: string[];
  readonly stderr: string[];
}

const STOPPED_NAMES: Record<string, string> = { connect: 'the greeting', ehlo: 'EHLO', tls: 'TLS', auth: 'AUTH', mail: 'MAIL', rcpt: 'RCPT' };

/** Human lines for every delivery that did not fail (failures are thrown and printed by main). */
export function formatReport(messageId: string, results: readonly Handoff[]): ReportLines {
  const stdout: string[] = [];
  const stderr: string[] = [];
  for (const r of results) {
    if (r.failure !== null) continue;
    if (r.stoppedAfter !== null) {
      const tls = r.tls ? ` (${r.tls.version})` : '';
      stdout.push(`stopped after ${STOPPED_NAMES[r.stoppedAfter]} as asked, at ${r.peer}${tls}`);
      for (const o of r.replies) stdout.push(`  RCPT <${formatMailbox(o.mailbox)}>: ${describeReply(o.reply)}`);
      continue;
    }
    for (const o of r.replies) {
      if (!o.accepted) stderr.push(`mailbox: recipient <${formatMailbox(o.mailbox)}> rejected: ${describeReply(o.reply)}`);
    }
    const accepted = r.replies.filter((o) => o.accepted).length;
    const total = r.replies.length;
    const count = accepted === total ? `${total} recipient${total === 1 ? '' : 's'}` : `${accepted} of ${total} recipients`;
    stdout.push(`sent ${messageId} to ${count} via ${r.peer}: ${describeReply(r.reply!)}`);
  }
  return { stdout, stderr };
}

function replyJson(reply: Reply | null | undefined) {
  return reply ? { code: reply.code, enhanced: reply.enhanced ?? null, text: reply.lines.join('\n') } : null;
}

/** `--json`: one object for the whole run. */
export function formatJson(messageId: string, sender: string | null, results: readonly Handoff[], explain: (f: ClientFailure) => string): string {
  const deliveries = results.map((r) => ({
    server: r.peer,
    domain: r.domain,
    ok: r.failure === null,
    stoppedAfter: r.stoppedAfter,
    reply: replyJson(r.reply),
    recipients: r.recipients.map((mailbox) => {
      const o = r.replies.find((x) => x.mailbox === mailbox);
      return { address: formatMailbox(mailbox), accepted: o?.accepted ?? false, reply: replyJson(o?.reply) };
    }),
    error: r.failure ? { stage: r.failure.stage, kind: r.failure.kind, message: explain(r.failure), reply: replyJson(r.failure.reply) } : null,
    tls: r.tls,
    auth: r.mechanism,
    capabilities: r.capabilities,
    timingsMs: r.timings,
  }));
  return JSON.stringify({ ok: results.every((r) => r.failure === null), messageId, sender, deliveries }, null, 2);
}

// Shared with `mailbox replay`.
export { explainFailure } from '../../cli/connection-options.ts';
