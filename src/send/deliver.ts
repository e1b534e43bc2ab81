/**
 * @module Handing a submission to SMTP servers: one server (`--server`), or each recipient
 * domain's mail hosts (`--mx`: MX in preference order, implicit MX, null MX; RFC 5321 §5.1).
 * Rule: every outcome is a DeliveryResult value; nothing here prints or exits. A failure to
 * reach one mail host moves on to the next; any other failure is that domain's verdict.
 */
import { formatMailbox, type Mailbox } from '../core/address.ts';
import type { ClientAuth, DsnOptions, QuitAfter, RecipientOutcome } from '../core/client-session.ts';
import { clientReplies } from '../core/client-replies.ts';
import { ClientFailure } from '../core/errors.ts';
import type { Reply } from '../core/reply.ts';
import type { TranscriptEntry } from '../core/transcript.ts';
import { resolveMailRoute } from '../dns/mail-route.ts';
import type { DnsResolver } from '../dns/resolver.ts';
import { formatPeer, openSmtpClient, type StageTimings, type TlsInfo, type TlsMode, type TlsSettings } from '../transport/tcp-client.ts';
import { tlsSettingsFor } from '../cli/connection-options.ts';
import type { ServerAddress } from './options.ts';
import type { Submission } from './submission.ts';

/** How to talk to every server of one run. */
export interface SessionPlan {
  readonly ehloName: string;
  readonly timeoutMs: number;
  readonly tlsSettings: TlsSettings;
  readonly auth?: ClientAuth;
  readonly chunking: boolean;
  readonly quitAfter: QuitAfter | null;
  readonly dsn?: DsnOptions;
  /** Called before each connection attempt, then with every transcript entry of it. */
  readonly onConnect?: (peer: string) => void;
  readonly onTranscript?: (entry: TranscriptEntry) => void;
}

export interface DeliveryResult {
  readonly peer: string;
  /** The recipient domain, with --mx. */
  readonly domain: string | null;
  readonly recipients: readonly Mailbox[];
  /** Per-recipient replies, for every RCPT that was sent. */
  readonly replies: readonly RecipientOutcome[];
  /** The reply to the end of the message, when it was accepted. */
  readonly reply: Reply | null;
  readonly failure: ClientFailure | null;
  /** Where --quit-after ended the session, when it did. */
  readonly stoppedAfter: QuitAfter | null;
  readonly tls: TlsInfo | null;
  readonly mechanism: string | null;
  readonly capabilities: Readonly<Record<string, readonly string[]>>;
  readonly timings: StageTimings;
}

function failed(peer: string, domain: string | null, recipients: readonly Mailbox[], failure: ClientFailure): DeliveryResult {
  return { peer, domain, recipients, replies: [], reply: null, failure, stoppedAfter: null, tls: null, mechanism: null, capabilities: {}, timings: {} };
}

/** One connection, one transaction (or up to --quit-after), QUIT. */
export async function deliverTo(
  server: ServerAddress,
  submission: Submission,
  recipients: readonly Mailbox[],
  plan: SessionPlan,
  domain: string | null = null,
): Promise<DeliveryResult> {
  const peer = formatPeer(server.host, server.port);
  plan.onConnect?.(peer);
  let client;
  try {
    client = await openSmtpClient({
      host: server.host,
      port: server.port,
      ehloName: plan.ehloName,
      timeoutMs: plan.timeoutMs,
      tls: server.tls,
      tlsSettings: tlsSettingsFor(server, plan.tlsSettings),
      onTranscript: plan.onTranscript,
      auth: plan.auth,
      chunking: plan.chunking,
      quitAfter: plan.quitAfter ?? undefined,
    });
  } catch (error) {
    if (error instanceof ClientFailure) return failed(peer, domain, recipients, error);
    throw error;
  }
  const info = () => ({
    tls: client.tlsInfo,
    mechanism: client.mechanism,
    capabilities: Object.fromEntries(client.extensions),
    timings: client.timings,
  });
  if (client.stoppedAt !== null) {
    const done = info();
    await client.quit();
    return { peer, domain, recipients, replies: [], reply: null, failure: null, stoppedAfter: client.stoppedAt, ...done, timings: client.timings };
  }
  const message = submission.render(client.extensions.has('8BITMIME'));
  const outcome = await client.send({ sender: submission.sender, recipients, message, dsn: plan.dsn });
  const done = info();
  await client.quit();
  const base = { peer, domain, recipients, replies: outcome.recipients, ...done, timings: client.timings };
  if (outcome.ok) return { ...base, reply: outcome.reply, failure: null, stoppedAfter: null };
  if (outcome.stoppedAfter !== undefined) return { ...base, reply: null, failure: null, stoppedAfter: outcome.stoppedAfter };
  return { ...base, reply: null, failure: outcome.failure, stoppedAfter: null };
}

/** RFC 5321 §5.1: an unreachable host, or one that says "try later" before MAIL, passes the turn. */
function tryNextHost(result: DeliveryResult): boolean {
  const f = result.failure;
  if (f === null) return false;
  return !f.permanent && (f.stage === 'connect' || f.stage === 'greeting' || f.stage === 'ehlo');
}

/** Recipients grouped by domain (case-insensitive), in the order they were given. */
export function groupByDomain(recipients: readonly Mailbox[]): Map<string, Mailbox[]> {
  const groups = new Map<string, Mailbox[]>();
  for (const r of recipients) {
    const key = r.domain.toLowerCase();
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return groups;
}

export interface MxPlan {
  readonly resolver: DnsResolver;
  readonly port: number;
  readonly tls: TlsMode;
}

/** `--mx`: each domain's recipients go to its mail hosts, best first, one address after another. */
export async function deliverDirect(submission: Submission, plan: SessionPlan, mx: MxPlan): Promise<DeliveryResult[]> {
  const results: DeliveryResult[] = [];
  for (const [domain, recipients] of groupByDomain(submission.recipients)) {
    const place = `${domain}:${mx.port}`;
    // RFC 5321 §4.1.3: an address literal is the host itself.
    const literal = /^\[(?:IPv6:)?([^\]]+)\]$/i.exec(domain);
    if (literal) {
      results.push(await deliverTo({ host: literal[1], port: mx.port, tls: mx.tls }, submission, recipients, plan, domain));
      continue;
    }
    const { route } = await resolveMailRoute(domain, mx.resolver);
    if (route.kind !== 'hosts') {
      const why = {
        'null-mx': [clientReplies.nullMx(domain), 'rejected'],
        nxdomain: [clientReplies.noSuchDomain(domain), 'rejected'],
        'no-mail-host': [clientReplies.noMailHost(domain), 'rejected'],
        'mx-unresolvable': [clientReplies.mxUnresolvable(domain), 'rejected'],
        temporary: [clientReplies.dnsTemporary(domain, route.kind === 'temporary' ? route.why : ''), 'connect'],
      } as const;
      const [status, kind] = why[route.kind];
      results.push(failed(place, domain, recipients, new ClientFailure(kind, 'connect', status.lines.join(' '), undefined, { status })));
      continue;
    }
    let last: DeliveryResult | null = null;
    hosts: for (const host of route.hosts) {
      for (const address of host.addresses) {
        last = await deliverTo({ host: address, port: mx.port, tls: mx.tls }, submission, recipients, plan, domain);
        if (!tryNextHost(last)) break hosts;
      }
    }
    results.push(last ?? failed(place, domain, recipients, new ClientFailure('connect', 'connect', `no mail host of ${domain} could be tried`)));
  }
  return results;
}

/** "a@x, b@y" for messages. */
export function formatRecipients(recipients: readonly Mailbox[]): string {
  return recipients.map(formatMailbox).join(', ');
}
