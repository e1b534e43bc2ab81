/**
 * @module A message handed in on this machine (the sendmail link), committed to the spool as SMTP
 * would have committed it: a Received line, the envelope, local recipients kept locally and the
 * others queued for the relay. serve does it for a request on its control socket; the sendmail
 * link does it itself, under the spool's lock, while serve is stopped (as Postfix's maildrop).
 * Rule: the spool decides durability: this resolves once the message is fsynced.
 */
import { needsSmtpUtf8, normalizeDomain, parseMailbox, type Mailbox } from '../core/address.ts';
import { encodeXtext, type Parameter } from '../core/command.ts';
import { dotStuff } from '../core/data.ts';
import { formatDate, type Envelope } from '../core/envelope.ts';
import { hasEightBit, unstuffedSize, type DsnOptions } from '../core/outgoing.ts';
import { EXIT, InputError } from '../exit-status.ts';
import type { Spool } from '../spool/spool.ts';

/** What the sendmail link hands in: JSON-safe, so it also travels over the control socket. */
export interface LocalSubmission {
  /** "local@domain", or "" for the null sender. */
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The message, base64 (line endings as given; they become CRLF). */
  readonly message: string;
  /** The login name of the user who handed it in (the Received line names it). */
  readonly user: string;
  readonly dsn?: DsnOptions;
}

/** Where mail goes on this serve: which domains are local, whether anything is relayed. */
export interface Destinations {
  readonly hostname: string;
  /** Local domains; null means every domain is local (catch-all mode). */
  readonly domains: readonly string[] | null;
  /** Whether serve relays mail for non-local domains (--relay). */
  readonly relays: boolean;
  readonly maxMessageBytes: number;
}

/** True when mail for `mailbox` is kept in a local mailbox here. */
export function isLocalAddress(dest: Pick<Destinations, 'domains'>, mailbox: Mailbox): boolean {
  return dest.domains === null || dest.domains.includes(normalizeDomain(mailbox.domain));
}

function address(text: string, what: string): Mailbox {
  const parsed = parseMailbox(text, true);
  if (!parsed.ok) throw new InputError(`${what} ${text} is not an address: ${parsed.why}`, EXIT.dataErr);
  return parsed.mailbox;
}

/** Commits the submission; resolves with its spool id once it is durable. */
export async function commitLocalSubmission(spool: Spool, dest: Destinations, sub: LocalSubmission, ids: { readonly now: () => number; readonly newId: () => string }): Promise<string> {
  const sender = sub.sender === '' ? null : address(sub.sender, 'the sender');
  if (sub.recipients.length === 0) throw new InputError('no recipients', EXIT.usage);
  const recipients = sub.recipients.map((r) => address(r, 'the recipient'));
  for (const r of recipients) {
    if (!isLocalAddress(dest, r) && !dest.relays) {
      throw new InputError(`${r.local}@${r.domain} is not in a local domain (${dest.domains?.join(', ')}) and serve relays nothing (no --relay)`, EXIT.noUser);
    }
  }
  const body = Buffer.from(sub.message, 'base64');
  const id = ids.newId();
  const timeMs = ids.now();
  const user = sub.user.replace(/[^\x21-\x7e]/g, '?');
  // RFC 5321 §4.4: mail that did not arrive over SMTP gets a "by" clause only.
  const received = Buffer.from(`Received: by ${dest.hostname} (mailbox, from user ${user})\r\n\tid ${id}; ${formatDate(timeMs)}\r\n`);
  const stuffed = dotStuff(Buffer.concat([received, body]));
  const size = unstuffedSize(stuffed);
  if (size > dest.maxMessageBytes) throw new InputError(`the message is ${size} bytes, more than serve's --max-size of ${dest.maxMessageBytes}`, EXIT.dataErr);
  const eightBit = hasEightBit(stuffed);
  const utf8 = needsSmtpUtf8(sender) || recipients.some(needsSmtpUtf8);
  const mailParams: Parameter[] = [];
  if (eightBit) mailParams.push({ name: 'BODY', value: '8BITMIME' });
  if (utf8) mailParams.push({ name: 'SMTPUTF8', value: null });
  if (sub.dsn?.ret) mailParams.push({ name: 'RET', value: sub.dsn.ret });
  if (sub.dsn?.envid) mailParams.push({ name: 'ENVID', value: encodeXtext(sub.dsn.envid) });
  const notify = sub.dsn?.notify?.length ? [{ name: 'NOTIFY', value: sub.dsn.notify.join(',') }] : [];
  const envelope: Envelope = {
    sender,
    mailParams,
    recipients: recipients.map((mailbox) => ({ mailbox, local: isLocalAddress(dest, mailbox), params: notify })),
    utf8,
    body: eightBit ? '8BITMIME' : '7BIT',
    declaredSize: null,
    authUser: null,
  };
  await spool.commit({ id, timeMs, envelope, stuffed, size });
  return id;
}
