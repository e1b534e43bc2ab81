/**
 * @module Messages that reach serve other than over SMTP, committed to the spool as an SMTP
 * session would commit them: a Received line, the envelope, one spool commit that resolves once
 * the message is fsynced. They come from Mailpit's POST /api/v1/send and release (HTTP), and from
 * the sendmail link: over serve's control socket, or straight into the spool under its lock
 * while serve is stopped (as Postfix's maildrop).
 * Rule 1: local recipients (every domain in catch-all mode, else a --domain) are kept here; the
 *         others are queued for the relay when serve relays, and refused when it does not, as
 *         SMTP refuses them (550 5.7.1). A release queues every recipient for the relay.
 * Rule 2: what is wrong with the message is an InputError carrying its sysexits code.
 */
import { mailboxKey, needsSmtpUtf8, normalizeDomain, parseMailbox, type Mailbox } from '../core/address.ts';
import { encodeXtext, type Parameter } from '../core/command.ts';
import { dotStuff } from '../core/data.ts';
import { formatDate, formatReceived, type Envelope } from '../core/envelope.ts';
import { hasEightBit, unstuffedSize, type DsnOptions } from '../core/outgoing.ts';
import { EXIT, InputError } from '../exit-status.ts';
import { printable, type Logger } from '../log.ts';
import type { Spool } from '../spool/spool.ts';

/** Where mail goes on this serve: which domains are local, whether anything is relayed. */
export interface Destinations {
  readonly hostname: string;
  /** Local domains; null means every domain is local (catch-all mode). */
  readonly domains: readonly string[] | null;
  /** Whether serve relays mail for non-local domains. */
  readonly relays: boolean;
  readonly maxMessageBytes: number;
}

/** True when mail for `mailbox` is kept in a local mailbox here. */
export function isLocalAddress(dest: Pick<Destinations, 'domains'>, mailbox: Mailbox): boolean {
  return dest.domains === null || dest.domains.includes(normalizeDomain(mailbox.domain));
}

/** Who handed a message in, as its Received line names them. */
export type LocalOrigin =
  /** A user of this machine, through the sendmail link: RFC 5321 §4.4's "by" clause only. */
  | { readonly kind: 'login'; readonly user: string }
  /** A client of serve's HTTP API, with its login (null without one). */
  | { readonly kind: 'client'; readonly client: string; readonly protocol: string; readonly user: string | null };

export interface LocalMessage {
  /** "local@domain" (or "<local@domain>"); null for the null reverse-path. */
  readonly sender: string | null;
  readonly recipients: readonly string[];
  /** The message, without our Received line. */
  readonly bytes: Uint8Array;
  readonly origin: LocalOrigin;
  readonly dsn?: DsnOptions;
  /** Relay to every recipient, local or not (Mailpit's release). */
  readonly relayAll?: boolean;
}

/** What was committed. */
export interface LocalCommit {
  readonly id: string;
  readonly envelope: Envelope;
  /** The stored size: our Received line and the message. */
  readonly size: number;
  /** The recipients queued for the relay. */
  readonly relayed: readonly Mailbox[];
}

function address(text: string, what: string): Mailbox {
  const parsed = parseMailbox(text.trim().replace(/^<(.*)>$/, '$1'), true);
  if (!parsed.ok) throw new InputError(`${what} ${text} is not an address: ${parsed.why}`, EXIT.dataErr);
  return parsed.mailbox;
}

function receivedLine(origin: LocalOrigin, hostname: string, id: string, timeMs: number, envelope: Envelope): string {
  if (origin.kind === 'client') {
    return formatReceived({ heloName: 'api', clientAddress: origin.client, serverName: hostname, protocol: origin.protocol, id, timeMs }, envelope);
  }
  // RFC 5321 §4.4: mail that did not arrive over SMTP gets a "by" clause only.
  return `Received: by ${hostname} (mailbox, from user ${origin.user.replace(/[^\x21-\x7e]/g, '?')})\r\n\tid ${id}; ${formatDate(timeMs)}\r\n`;
}

/** Commits the message; resolves once it is durable. */
export async function commitLocalMessage(spool: Spool, dest: Destinations, message: LocalMessage, ids: { readonly now: () => number; readonly newId: () => string }): Promise<LocalCommit> {
  const sender = message.sender === null ? null : address(message.sender, 'the sender');
  const recipients = [...new Set(message.recipients.map((r) => r.trim()))].map((r) => address(r, 'the recipient'));
  if (recipients.length === 0) throw new InputError('no recipients', EXIT.usage);
  const local = recipients.map((r) => message.relayAll !== true && isLocalAddress(dest, r));
  const relayed = recipients.filter((_, i) => !local[i]);
  if (relayed.length > 0 && !dest.relays) {
    const domains = dest.domains === null ? '' : ` (${dest.domains.join(', ')})`;
    throw new InputError(`${mailboxKey(relayed[0])} is not in a local domain${domains} and serve relays nothing (no --relay)`, EXIT.noUser);
  }
  const dsn = message.dsn;
  const notify = dsn?.notify?.length ? [{ name: 'NOTIFY', value: dsn.notify.join(',') }] : [];
  const utf8 = needsSmtpUtf8(sender) || recipients.some(needsSmtpUtf8);
  const eightBit = hasEightBit(message.bytes);
  const mailParams: Parameter[] = [];
  if (eightBit) mailParams.push({ name: 'BODY', value: '8BITMIME' });
  if (utf8) mailParams.push({ name: 'SMTPUTF8', value: null });
  if (dsn?.ret) mailParams.push({ name: 'RET', value: dsn.ret });
  if (dsn?.envid) mailParams.push({ name: 'ENVID', value: encodeXtext(dsn.envid) });
  const envelope: Envelope = {
    sender,
    mailParams,
    recipients: recipients.map((mailbox, i) => ({ mailbox, local: local[i], params: notify })),
    utf8,
    body: eightBit ? '8BITMIME' : '7BIT',
    declaredSize: null,
    authUser: message.origin.kind === 'client' ? message.origin.user : null,
  };
  const id = ids.newId();
  const timeMs = ids.now();
  const received = new TextEncoder().encode(receivedLine(message.origin, dest.hostname, id, timeMs, envelope));
  const stuffed = dotStuff(Buffer.concat([received, message.bytes]));
  const size = unstuffedSize(stuffed);
  if (size > dest.maxMessageBytes) throw new InputError(`the message is ${size} bytes, more than serve's --max-size of ${dest.maxMessageBytes}`, EXIT.dataErr);
  await spool.commit({ id, timeMs, envelope, stuffed, size });
  return { id, envelope, size, relayed };
}

export interface LocalSubmitDeps {
  readonly dest: Destinations;
  readonly spool: Spool;
  readonly log: Logger;
  readonly now: () => number;
  readonly newId: () => string;
  /** Told that mail for the relay was queued; null when serve relays nothing. */
  readonly relay: { kick(): void } | null;
}

/** serve's way in for its HTTP API: commits, wakes the relay for what it queued, logs `accepted`. */
export function localSubmitter(deps: LocalSubmitDeps): (message: LocalMessage) => Promise<string> {
  return async (message) => {
    const done = await commitLocalMessage(deps.spool, deps.dest, message, deps);
    if (done.relayed.length > 0) deps.relay?.kick();
    const { origin } = message;
    deps.log.info('accepted', {
      id: done.id,
      from: mailboxKey(done.envelope.sender),
      to: done.envelope.recipients.map((r) => mailboxKey(r.mailbox)),
      size: done.size,
      client: origin.kind === 'client' ? origin.client : undefined,
      user: origin.user === null ? undefined : printable(origin.user),
      via: origin.kind === 'client' ? origin.protocol : 'sendmail',
      relay: done.relayed.length > 0 ? done.relayed.map(mailboxKey) : undefined,
    });
    return done.id;
  };
}
