/**
 * @module Errors that carry an SMTP reply, from the core outward.
 * Rule: a thrown SmtpError is a policy or I/O verdict with its reply; any other Error is a bug.
 */
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

/** A client-side failure: what kind, at which stage, and the server's reply when there was one. */
export class ClientFailure extends Error {
  readonly kind: FailureKind;
  readonly stage: ClientStage;
  readonly reply?: Reply;
  constructor(kind: FailureKind, stage: ClientStage, message: string, reply?: Reply, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientFailure';
    this.kind = kind;
    this.stage = stage;
    this.reply = reply;
  }

  /** RFC 5321 §4.2.1: a 5yz reply is permanent; everything else may succeed later. */
  get permanent(): boolean {
    return this.reply !== undefined && this.reply.code >= 500;
  }
}
