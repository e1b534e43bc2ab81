/**
 * @module The one mapping from an error to an exit code (the sysexits table: exit-status.ts) and a
 * one-line message. Every command throws; only main exits.
 */
import { ClientFailure, SmtpError } from '../core/errors.ts';
import { describeReply } from '../core/reply.ts';
import { EXIT, InputError, SetupError, UsageError, type ExitCode } from '../exit-status.ts';

export { EXIT, InputError, SetupError, UsageError, type ExitCode } from '../exit-status.ts';

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
