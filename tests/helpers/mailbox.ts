/** Test and benchmark shorthand: a mailbox from text that is known to be valid. */
import { parseMailbox, type Mailbox } from '../../src/core/address.ts';

/** Parses `text` as an RFC 5321 mailbox (SMTPUTF8 allowed); throws when it is not one. */
export function mailbox(text: string): Mailbox {
  const parsed = parseMailbox(text, true);
  if (!parsed.ok) throw new Error(`${text}: ${parsed.why}`);
  return parsed.mailbox;
}
