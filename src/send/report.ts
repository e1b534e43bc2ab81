/**
 * @module What `mailbox send` tells the user: one line per delivery (or the stages `--quit-after`
 * reached), and `--json`'s machine-readable result; and a failure made into one line that says
 * what to do when the cause is a common mistake (a TLS mode that does not fit the port).
 * Rule: pure. Text in, text out.
 */
import { formatMailbox } from '../core/address.ts';
import { ClientFailure } from '../core/errors.ts';
import { describeReply, type Reply } from '../core/reply.ts';
import type { TlsMode } from '../transport/tcp-client.ts';
import type { DeliveryResult } from './deliver.ts';

export interface ReportLines {
  readonly stdout: string[];
  readonly stderr: string[];
}

const STOPPED_NAMES: Record<string, string> = { connect: 'the greeting', ehlo: 'EHLO', tls: 'TLS', auth: 'AUTH', mail: 'MAIL', rcpt: 'RCPT' };

/** Human lines for every delivery that did not fail (failures are thrown and printed by main). */
export function formatReport(messageId: string, results: readonly DeliveryResult[]): ReportLines {
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
export function formatJson(messageId: string, sender: string | null, results: readonly DeliveryResult[], explain: (f: ClientFailure) => string): string {
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

const CERTIFICATE = /certificate|self[- ]signed|issuer|CERT_|altname|hostname\/IP/i;
const NOT_TLS = /wrong version|packet length|unknown protocol|record layer|EPROTO|ECONNRESET|socket hang up|closed|handshake/i;

/**
 * Adds what to do to failures whose cause users most often get wrong: a TLS mode that does not
 * fit the port, and certificates that cannot be verified.
 */
export function explainFailure(failure: ClientFailure, port: number, tls: TlsMode): ClientFailure {
  let hint = '';
  if (failure.kind === 'tls' && CERTIFICATE.test(failure.message)) {
    hint = 'to trust this certificate give --tls-ca FILE, or skip the check with --insecure';
  } else if (failure.kind === 'tls' && failure.stage === 'connect' && NOT_TLS.test(failure.message)) {
    hint = `the server on port ${port} does not seem to speak TLS from the first byte: try --tls starttls, or --tls off`;
  } else if (failure.kind === 'tls' && failure.stage === 'starttls' && failure.reply === undefined && /does not offer STARTTLS/.test(failure.message)) {
    hint = 'use --tls implicit if this port expects TLS from the first byte (usually 465), or --tls off to send in clear';
  } else if (failure.kind === 'connect' && failure.stage === 'greeting' && failure.reply === undefined && tls !== 'implicit') {
    hint = `if port ${port} expects TLS from the first byte (usually 465), use --tls implicit`;
  } else if (failure.kind === 'connect' && failure.stage === 'connect' && tls === 'implicit' && /no answer within/.test(failure.message)) {
    hint = `if port ${port} speaks plain SMTP, use --tls starttls or --tls off`;
  }
  if (hint === '') return failure;
  return new ClientFailure(failure.kind, failure.stage, `${failure.message}; ${hint}`, failure.reply, { cause: failure });
}
