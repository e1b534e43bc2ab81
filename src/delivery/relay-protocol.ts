/**
 * @module What the relay's main thread and its delivery Workers say to each other (STYLE
 * convention 8: typed messages across the boundary). The main thread sends a task per destination
 * of a leased message (its id, and where its bytes are in the segment); the worker sends back
 * what each recipient's server said. Everything here is plain JSON data, and crosses as JSON text
 * (encodeMessage): a string is posted without the structured clone of an object tree, which cost
 * the main thread 8 µs per task against 3.5-4 µs for JSON.stringify and a string (batches of 20).
 */
import type { Mailbox } from '../core/address.ts';
import type { ClientStage, FailureKind } from '../core/errors.ts';
import type { DsnOptions, OutgoingRecipient } from '../core/outgoing.ts';
import type { Reply } from '../core/reply.ts';
import type { DnsServer } from '../dns/resolver.ts';
import type { RelayRoute, TlsRequirement } from './relay-settings.ts';

/** What every worker needs to know, sent once at start and again on SIGHUP. */
export interface WorkerSettings {
  /** The name given in EHLO. */
  readonly ehloName: string;
  /** Names and addresses this host is known by: an MX naming one is this host (RFC 5321 §5.1). */
  readonly selfNames: readonly string[];
  readonly dns: DnsServer | null;
  readonly ca: string | null;
  /** Connections per destination at most. */
  readonly concurrency: number;
  /** Caps every client timeout (--relay-timeout), or null for RFC 5321's. */
  readonly timeoutMs: number | null;
  /** The port of mail hosts (25). */
  readonly mxPort: number;
}

/** One leased message's recipients that share a destination. */
export interface TransferTask {
  readonly taskId: number;
  readonly messageId: string;
  readonly segmentPath: string;
  readonly bodyOffset: number;
  readonly bodyLength: number;
  readonly sender: Mailbox | null;
  readonly recipients: readonly { readonly rcptIndex: number; readonly recipient: OutgoingRecipient }[];
  readonly dsn?: DsnOptions;
  /** The message came with SMTPUTF8 (its header fields may be UTF-8). */
  readonly smtpUtf8: boolean;
  /** The destination key (relay-settings.ts destinationKey): connections are capped per key. */
  readonly destination: string;
  /** The recipient domain (for MX routes, the one domain of every recipient). */
  readonly domain: string;
  readonly route: RelayRoute;
  readonly tlsPolicy: TlsRequirement | null;
}

export interface TransferRecipient {
  readonly rcptIndex: number;
  /** The server's reply to this recipient (RCPT, or the end of data), or the failure's status. */
  readonly reply: Reply;
  readonly accepted: boolean;
  /**
   * The reply is the server's own, not one mailbox concluded (no answer, a lost connection, or a
   * refusal to send 8-bit or UTF-8 to a server without the extension): only then does a bounce
   * name the server as the Remote-MTA (RFC 3464 §2.3.5).
   */
  readonly fromServer: boolean;
}

export interface TransferResult {
  readonly taskId: number;
  /** "host[address]:port" of the server that answered last, or the domain when none did. */
  readonly relay: string;
  readonly recipients: readonly TransferRecipient[];
  /** Why the transaction did not complete, when it did not. */
  readonly failure: { readonly kind: FailureKind; readonly stage: ClientStage; readonly message: string } | null;
  /**
   * The destination could not be reached at all (no host answered, or each said "later" before a
   * transaction): the main thread then leaves it alone for the cool-off.
   */
  readonly unreachable: boolean;
  /** DNS said the domain publishes a null MX (RFC 7505): RCPT may refuse it while this is known. */
  readonly nullMx: boolean;
  /** Recipients whose NOTIFY=SUCCESS the next hop could not take (no DSN): a "relayed" report is owed. */
  readonly relayedWithoutDsn: readonly number[];
  /** "TLSv1.3 TLS_AES_256_GCM_SHA384", or null in clear. */
  readonly tls: string | null;
}

/** What became of one task: its result, or a failure to run it (a bug: the lease is given back). */
export type TaskOutcome =
  | { readonly kind: 'result'; readonly result: TransferResult }
  | { readonly kind: 'failed'; readonly taskId: number; readonly error: string };

/**
 * Tasks go out, and their outcomes come back, in batches: those of one turn of the sender's event
 * loop in one message, so a busy relay wakes the other thread once per turn, not once per message.
 */
export type MainToWorker =
  | { readonly kind: 'settings'; readonly settings: WorkerSettings }
  | { readonly kind: 'tasks'; readonly tasks: readonly TransferTask[] }
  | { readonly kind: 'close' };

export type WorkerToMain =
  | { readonly kind: 'outcomes'; readonly outcomes: readonly TaskOutcome[] }
  | { readonly kind: 'closed' };

/** One message as the other thread receives it. */
export function encodeMessage(message: MainToWorker | WorkerToMain): string {
  return JSON.stringify(message);
}

export function decodeToWorker(text: string): MainToWorker {
  return JSON.parse(text) as MainToWorker;
}

export function decodeToMain(text: string): WorkerToMain {
  return JSON.parse(text) as WorkerToMain;
}
