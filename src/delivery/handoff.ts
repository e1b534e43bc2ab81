/**
 * @module Handing one message to one SMTP server: a Handoff is what became of a group of
 * recipients given to one server in one transaction (STYLE convention 2: a hand-off of many
 * recipients, not one delivery). Used for a named server (`send --server`) and, per domain, for
 * mail hosts (mx-delivery.ts).
 * Rule: every outcome is a Handoff value; nothing here prints or exits.
 */
import { formatMailbox, type Mailbox } from '../core/address.ts';
import type { ClientAuth, DsnOptions, QuitAfter, RecipientOutcome } from '../core/client-session.ts';
import { ClientFailure } from '../core/errors.ts';
import type { Reply } from '../core/reply.ts';
import type { TranscriptEntry } from '../core/transcript.ts';
import { formatPeer, openSmtpClient, type SmtpClient, type StageTimings, type TlsInfo, type TlsMode, type TlsSettings } from '../transport/tcp-client.ts';

/** The message to hand off: its envelope, and its bytes as the server's 8BITMIME allows. */
export interface OutboundMessage {
  readonly sender: Mailbox | null;
  readonly recipients: readonly Mailbox[];
  render(eightBitMime: boolean): Uint8Array;
}

/** How to talk to every server of one run. */
export interface SessionPlan {
  readonly ehloName: string;
  readonly timeoutMs: number;
  /** Certificate checks for a named server; mail hosts follow the MX policy instead. */
  readonly tlsSettings: TlsSettings;
  readonly auth?: ClientAuth;
  readonly chunking: boolean;
  readonly quitAfter: QuitAfter | null;
  readonly dsn?: DsnOptions;
  /** Called before each connection attempt, then with every transcript entry of it. */
  readonly onConnect?: (peer: string) => void;
  readonly onTranscript?: (entry: TranscriptEntry) => void;
}

/** A server to connect to, as the user named it. */
export interface ServerTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
}

export interface Handoff {
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

export function failedHandoff(peer: string, domain: string | null, recipients: readonly Mailbox[], failure: ClientFailure): Handoff {
  return { peer, domain, recipients, replies: [], reply: null, failure, stoppedAfter: null, tls: null, mechanism: null, capabilities: {}, timings: {} };
}

/** One transaction on an open session (which stays open, unless --quit-after ended it). */
export async function handOffOn(client: SmtpClient, message: OutboundMessage, recipients: readonly Mailbox[], plan: SessionPlan, domain: string | null): Promise<Handoff> {
  const peer = client.peer;
  const info = () => ({ tls: client.tlsInfo, mechanism: client.mechanism, capabilities: Object.fromEntries(client.extensions), timings: client.timings });
  if (client.stoppedAt !== null) {
    return { peer, domain, recipients, replies: [], reply: null, failure: null, stoppedAfter: client.stoppedAt, ...info() };
  }
  const bytes = message.render(client.extensions.has('8BITMIME'));
  const outcome = await client.send({ sender: message.sender, recipients, message: bytes, dsn: plan.dsn });
  const base = { peer, domain, recipients, replies: outcome.recipients, ...info() };
  if (outcome.ok) return { ...base, reply: outcome.reply, failure: null, stoppedAfter: null };
  if (outcome.stoppedAfter !== undefined) return { ...base, reply: null, failure: null, stoppedAfter: outcome.stoppedAfter };
  return { ...base, reply: null, failure: outcome.failure, stoppedAfter: null };
}

/** The client options a plan gives every connection. */
export function connectOptions(plan: SessionPlan, port: number) {
  return {
    port,
    ehloName: plan.ehloName,
    timeoutMs: plan.timeoutMs,
    auth: plan.auth,
    chunking: plan.chunking,
    quitAfter: plan.quitAfter ?? undefined,
  };
}

/** A named server: one connection, one transaction (or up to --quit-after), QUIT. */
export async function handOffToServer(server: ServerTarget, message: OutboundMessage, recipients: readonly Mailbox[], plan: SessionPlan): Promise<Handoff> {
  const peer = formatPeer(server.host, server.port);
  plan.onConnect?.(peer);
  let client: SmtpClient;
  try {
    client = await openSmtpClient({ ...connectOptions(plan, server.port), host: server.host, tls: server.tls, tlsSettings: plan.tlsSettings, onTranscript: plan.onTranscript });
  } catch (error) {
    if (error instanceof ClientFailure) return failedHandoff(peer, null, recipients, error);
    throw error;
  }
  const handoff = await handOffOn(client, message, recipients, plan, null);
  await client.quit();
  return { ...handoff, timings: client.timings };
}

/** "a@x, b@y" for messages. */
export function formatRecipients(recipients: readonly Mailbox[]): string {
  return recipients.map(formatMailbox).join(', ');
}
