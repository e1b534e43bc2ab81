/**
 * @module Errors that carry an SMTP reply, from the core outward.
 * Rule: a thrown SmtpError is a policy or I/O verdict with its reply; any other Error is a bug.
 */
import { clientReplies } from './client-replies.ts';
import { describeReply, type Reply } from './reply.ts';

/** Thrown when policy or I/O fails with a reply that belongs on the wire (spool full → 452 4.3.1). */
export class SmtpError extends Error {
  readonly reply: Reply;
  constructor(reply: Reply, options?: { cause?: unknown }) {
    super(describeReply(reply), options);
    this.name = 'SmtpError';
    this.reply = reply;
  }
}

/** Client-side failure kinds (after OpenSMTPD's FAIL_CONN/PROTO/IMPL/RESP). */
export type FailureKind = 'connect' | 'tls' | 'protocol' | 'rejected' | 'internal';

/** Stages of a client transaction, named in errors so the user knows where it failed. */
export type ClientStage =
  | 'connect'
  | 'greeting'
  | 'ehlo'
  | 'starttls'
  | 'auth'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'message'
  | 'quit';

/** The reply that stands for a failure no server reply decided, by its kind (client-replies.ts). */
function statusOf(kind: FailureKind, stage: ClientStage, message: string): Reply {
  switch (kind) {
    case 'connect':
      return stage === 'connect' ? clientReplies.noAnswer(message) : clientReplies.connectionLost(message);
    case 'tls':
      return clientReplies.tlsFailed(message);
    case 'protocol':
      return clientReplies.protocolViolation(message);
    case 'rejected':
    case 'internal':
      return clientReplies.notSendable(message);
    default:
      kind satisfies never;
      return clientReplies.notSendable(message);
  }
}

/**
 * A client-side failure: what kind, at which stage, the server's reply when there was one, and
 * the status that stands for it: the server's reply, else one from the client catalogue.
 */
export class ClientFailure extends Error {
  readonly kind: FailureKind;
  readonly stage: ClientStage;
  /** What the server said, when it said something. */
  readonly reply?: Reply;
  /** The server's reply, or what mailbox concludes (client-replies.ts): never missing. */
  readonly status: Reply;
  constructor(kind: FailureKind, stage: ClientStage, message: string, reply?: Reply, options?: { cause?: unknown; status?: Reply }) {
    super(message, options);
    this.name = 'ClientFailure';
    this.kind = kind;
    this.stage = stage;
    this.reply = reply;
    this.status = options?.status ?? reply ?? statusOf(kind, stage, message);
  }

  /** RFC 5321 §4.2.1 and RFC 3463 §3.1: permanent when the status is 5yz; the one place that decides. */
  get permanent(): boolean {
    return this.status.code >= 500;
  }

  /** The same failure told differently (naming the server, adding a hint); the status stays. */
  withMessage(message: string, stage: ClientStage = this.stage): ClientFailure {
    return new ClientFailure(this.kind, stage, message, this.reply, { cause: this, status: this.status });
  }
}
