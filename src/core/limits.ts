/**
 * @module Default limits, each beside the RFC text that sets its floor.
 */

export interface Limits {
  /** Longest command line accepted, CRLF included. */
  readonly commandLineBytes: number;
  /** Longest text line inside DATA, CRLF included. */
  readonly textLineBytes: number;
  /** Largest message accepted (advertised in SIZE, RFC 1870). */
  readonly maxMessageBytes: number;
  /** Recipients per transaction. */
  readonly maxRecipients: number;
  /**
   * RCPTs past maxRecipients, per transaction, whose 452 is not counted as the client's error
   * nor delayed; past these they count.
   */
  readonly recipientOvershoot: number;
  /** Failed commands tolerated per session before 421. */
  readonly maxErrors: number;
  /** Unknown commands tolerated per session before 421. */
  readonly maxUnknownCommands: number;
  /** Waiting for the next command. */
  readonly commandTimeoutMs: number;
  /** Waiting for the next chunk of DATA. */
  readonly dataTimeoutMs: number;
}

// RFC 5321 §4.5.3.1.4: a command line is at least 512 octets, CRLF included, and each
// extension in use adds its own allowance: SIZE=<20 digits> (RFC 1870), BODY=8BITMIME
// (RFC 6152), SMTPUTF8 (RFC 6531 §3.4), and the DSN parameters (RFC 3461 §4: ORCPT and
// ENVID each up to 100 xtext-encoded characters, NOTIFY, RET). 4096 stays above their sum
// even when every path is 256 octets of UTF-8.
const COMMAND_LINE_BYTES = 512 + 26 + 14 + 10 + 3 * 100 + 3 * 256 + 2048;

export const DEFAULT_LIMITS: Limits = Object.freeze({
  commandLineBytes: Math.max(4096, COMMAND_LINE_BYTES),
  // RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets, CRLF included.
  textLineBytes: 1000,
  maxMessageBytes: 50 * 1024 * 1024,
  // RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
  maxRecipients: 1000,
  // RFC 5321 §4.5.3.1.10: a client pipelining RCPTs past the limit gets 452 for each and sends
  // the rest later; Postfix forgives 1000 such (smtpd_recipient_overshoot_limit).
  recipientOvershoot: 1000,
  maxErrors: 20,
  maxUnknownCommands: 10,
  // RFC 5321 §4.5.3.2.7: the server timeout should be at least 5 minutes.
  commandTimeoutMs: 5 * 60_000,
  // RFC 5321 §4.5.3.2.5: the client waits 3 minutes per data block; a server waits at least as long.
  dataTimeoutMs: 5 * 60_000,
});
