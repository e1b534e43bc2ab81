/**
 * @module Messages that reach serve other than over SMTP (Mailpit's POST /api/v1/send): stored
 * as an SMTP session would store them: a Received header, the envelope, one spool commit whose
 * promise resolves once it is durable, and the same `accepted` log line.
 * Rule: local recipients (every domain in catch-all mode, else a --domain) are delivered here;
 *       others are queued for the relay when serve has one, and refused without it, as SMTP
 *       refuses them (550 5.7.1). A release queues every recipient for the relay.
 */
import { mailboxKey, parseMailbox, type Mailbox } from '../core/address.ts';
import { concat, dotStuff } from '../core/data.ts';
import { formatReceived, type Envelope } from '../core/envelope.ts';
import type { ServeConfig } from '../config.ts';
import { printable, type Logger } from '../log.ts';
import type { Spool } from '../spool/spool.ts';

export interface LocalMessage {
  readonly from: string;
  readonly recipients: readonly string[];
  /** The message, CRLF lines. */
  readonly bytes: Uint8Array;
  readonly user: string | null;
  readonly client: string;
  /** Names the way it came in the Received header ("HTTP"). */
  readonly protocol: string;
  /** Relay to every recipient, local or not (Mailpit's release). */
  readonly relayAll?: boolean;
}

export interface LocalSubmitDeps {
  readonly config: ServeConfig;
  readonly spool: Spool;
  readonly log: Logger;
  readonly now: () => number;
  readonly newId: () => string;
  /** Told that mail for the relay was queued; null when serve has no relay. */
  readonly relay: { kick(): void } | null;
}

/** Returns the function that stores a message and resolves with its id once it is durable. */
export function localSubmitter(deps: LocalSubmitDeps): (message: LocalMessage) => Promise<string> {
  const { config, spool, log, now } = deps;
  const local = (m: Mailbox) => config.domains === null || config.domains.includes(m.domain.toLowerCase());
  return async (message) => {
    const sender = parseAddress(message.from, 'From');
    const recipients = [...new Set(message.recipients.map((r) => r.trim()))].map((r) => parseAddress(r, 'recipient'));
    if (recipients.length === 0) throw new Error('no recipients');
    const isLocal = recipients.map((r) => message.relayAll !== true && local(r));
    const foreign = recipients.filter((_, i) => !isLocal[i]);
    if (foreign.length > 0 && deps.relay === null) throw new Error(`${mailboxKey(foreign[0])} is not in a local domain and no relay is configured`);
    const utf8 = [sender, ...recipients].some((m) => /[^\x00-\x7f]/.test(m.local + m.domain));
    const envelope: Envelope = {
      sender,
      mailParams: [],
      recipients: recipients.map((mailbox, i) => ({ mailbox, local: isLocal[i], params: [] })),
      utf8,
      body: '8BITMIME',
      declaredSize: null,
      authUser: message.user,
    };
    const id = deps.newId();
    const timeMs = now();
    const received = formatReceived(
      { heloName: 'api', clientAddress: message.client, serverName: config.hostname, protocol: message.protocol, id, timeMs },
      envelope,
    );
    const whole = concat([new TextEncoder().encode(received), message.bytes]);
    await spool.commit({ id, timeMs, envelope, stuffed: dotStuff(whole), localRecipients: isLocal });
    if (foreign.length > 0) deps.relay?.kick();
    log.info('accepted', {
      id,
      from: mailboxKey(sender),
      to: recipients.map(mailboxKey),
      size: whole.length,
      client: message.client,
      user: message.user === null ? undefined : printable(message.user),
      via: message.protocol,
      relay: foreign.length > 0 ? foreign.map(mailboxKey) : undefined,
    });
    return id;
  };
}

function parseAddress(text: string, what: string): Mailbox {
  const parsed = parseMailbox(text.trim().replace(/^<(.*)>$/, '$1'), true);
  if (!parsed.ok) throw new Error(`${what} ${JSON.stringify(text)} is not an address: ${parsed.why}`);
  return parsed.mailbox;
}
