/**
 * @module The one table of exit codes (sysexits.h, as sendmail and msmtp use them) and the one
 * mapping from an error to a code and a one-line message. Every command throws; only main exits.
 */
import { ClientFailure, SmtpError } from '../core/errors.ts';
import { describeReply } from '../core/reply.ts';

export const EXIT = {
  ok: 0,
  /** Not everything passed: `mailbox verify` (an address), `mailbox replay` (a transaction, or a reply under --expect); as grep exits 1. */
  notAll: 1,
  /** The command line was wrong. */
  usage: 64,
  /** The input data was wrong (a message file, a header), or the server refused the message. */
  dataErr: 65,
  /** An input file did not exist or was not readable. */
  noInput: 66,
  /** The server refused every recipient (sendmail's "user unknown"). */
  noUser: 67,
  /** The remote service refused or could not be reached. */
  unavailable: 69,
  /** A bug in mailbox. */
  software: 70,
  /** An operating-system error (cannot create a file, bind a port). */
  osErr: 71,
  /** A temporary failure; trying again later may succeed. */
  tempFail: 75,
  /** The conversation with the server went wrong: TLS could not be set up, or it broke the protocol. */
  protocol: 76,
  /** Permission denied. */
  noPerm: 77,
  /** The configuration is wrong. */
  config: 78,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A mistake in how the command was called: shown with a pointer to --help, exit 64. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A problem with the input the user gave (a file, a header): exit 65, or 66 when it is missing. */
export class InputError extends Error {
  readonly code: ExitCode;
  constructor(message: string, code: ExitCode = EXIT.dataErr) {
    super(message);
    this.name = 'InputError';
    this.code = code;
  }
}

/** A configuration or environment problem (bad config file, port in use): exit 78 or 71. */
export class SetupError extends Error {
  readonly code: ExitCode;
  constructor(message: string, code: ExitCode = EXIT.config) {
    super(message);
    this.name = 'SetupError';
    this.code = code;
  }
}

const STAGE_NAMES: Record<ClientFailure['stage'], string> = {
  connect: 'connect',
  greeting: 'greeting',
  ehlo: 'EHLO',
  starttls: 'STARTTLS',
  auth: 'AUTH',
  mail: 'MAIL',
  rcpt: 'RCPT',
  data: 'DATA',
  message: 'end of DATA',
  quit: 'QUIT',
};

export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof InputError || error instanceof SetupError) return error.code;
  if (error instanceof SmtpError) return error.reply.code < 500 ? EXIT.tempFail : EXIT.unavailable;
  if (error instanceof ClientFailure) return clientExitCode(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'EACCES' || code === 'EPERM') return EXIT.noPerm;
  if (code === 'ENOENT') return EXIT.noInput;
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') return EXIT.osErr;
  return EXIT.software;
}

/**
 * A client failure's code, as sendmail and msmtp use sysexits: TLS and protocol trouble the
 * server did not answer for is 76; any other temporary failure (ClientFailure.permanent: a 4xx
 * reply, a server out of reach, DNS trouble) is 75; a refused AUTH is 77; refused recipients are
 * 67, a refused message 65, any other refusal 69.
 */
function clientExitCode(failure: ClientFailure): ExitCode {
  if (failure.reply === undefined && (failure.kind === 'tls' || failure.kind === 'protocol')) return EXIT.protocol;
  if (!failure.permanent) return EXIT.tempFail;
  switch (failure.kind) {
    case 'connect':
      return EXIT.tempFail;
    case 'tls':
    case 'protocol':
      return EXIT.protocol;
    case 'internal':
      return EXIT.software;
    case 'rejected':
      if (failure.stage === 'auth') return EXIT.noPerm;
      if (failure.stage === 'rcpt') return EXIT.noUser;
      if (failure.stage === 'message') return EXIT.dataErr;
      return EXIT.unavailable;
    default:
      failure.kind satisfies never;
      return EXIT.software;
  }
}

/** One line that says what failed; never a stack trace. */
export function describeError(error: unknown): string {
  if (error instanceof UsageError) return `${error.message} (see --help)`;
  if (error instanceof ClientFailure) {
    const stage = STAGE_NAMES[error.stage];
    return error.reply ? `${error.message} at ${stage}: ${describeReply(error.reply)}` : `${error.message} (at ${stage})`;
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'EADDRINUSE') return `address already in use: ${error.message}`;
    return error.message;
  }
  return String(error);
}
