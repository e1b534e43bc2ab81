/**
 * @module How a run ends besides SMTP: the sysexits table (as sendmail and msmtp use it) and the
 * errors that carry one of its codes (a wrong command line, bad input, a broken setup). Outside
 * cli/ so that config, spool, auth, TLS and delivery code throw them without loading the CLI;
 * cli/exit-codes.ts maps every error to a code and a line.
 */
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
