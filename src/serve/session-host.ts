/**
 * @module The session host of `mailbox serve`: what the listeners ask of the server. It opens a
 * ServerSession per connection with that connection's policy, commits messages to the spool,
 * checks credentials, and writes one log line per accepted message, rejection and refusal.
 * Rule: policy per connection (TLS offered, AUTH offered, trusted, the --faults rules asked) is
 * decided once, when the session is opened, from the listener kind and the client address.
 */
import { formatMailbox, mailboxKey, normalizeDomain, type Mailbox } from '../core/address.ts';
import { relayRecipientAllowed } from '../delivery/relay-settings.ts';
import type { RelayService } from './relay-service.ts';
import { ServerSession, type ServerConfig, type SessionEvent, type TlsInfo } from '../core/server-session.ts';
import { SmtpError } from '../core/errors.ts';
import { replies } from '../core/replies.ts';
import { describeReply, formatReply } from '../core/reply.ts';
import type { ServeConfig } from '../config.ts';
import { createIdGenerator } from '../ids.ts';
import { printable, type Logger } from '../log.ts';
import type { Spool } from '../spool/spool.ts';
import type { ClientInfo, Connection, SessionHost } from '../transport/tcp-server.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import { Networks } from '../auth/networks.ts';
import type { FaultRules } from './fault-rules.ts';

type SmtpConnection = Connection<ServerSession>;

export function createSessionHost(
  config: ServeConfig,
  spool: Spool,
  log: Logger,
  now: () => number,
  authenticator: Authenticator | null,
  faults: FaultRules | null = null,
  relay: RelayService | null = null,
): SessionHost<ServerSession> & { trusted(address: string): boolean } {
  const newId = createIdGenerator(now);
  const localDomains = config.domains ? new Set(config.domains) : null;
  const networks = new Networks(config.trust.networks);
  const trusted = (address: string) => (address === 'unix' ? config.trust.unixClients : networks.contains(address));
  const auth = authenticator ? { mechanisms: ['PLAIN', 'LOGIN'] as const, allowInsecure: config.allowInsecureAuth } : null;
  // A Unix-domain socket never crosses a network: no TLS there, and AUTH needs none.
  const localAuth = auth ? { ...auth, allowInsecure: true } : null;

  const relayDomains = new Set(config.relay.relayDomains);
  const refuseRelay = (mailbox: Mailbox) => {
    const domain = normalizeDomain(mailbox.domain);
    if (relayDomains.has(domain) && !relayRecipientAllowed(config.relay, mailbox.local, domain)) return replies.unknownRelayRecipient(formatMailbox(mailbox));
    // RFC 7505 §4.2: 556 for a null MX, when DNS has said so lately; RCPT never waits on DNS.
    if (relay?.knownNullMx(domain)) return replies.nullMxRecipient(domain);
    return null;
  };

  function sessionConfig(client: ClientInfo): ServerConfig {
    const unix = client.transport === 'unix';
    return {
      hostname: config.hostname,
      postmaster: config.postmaster,
      limits: config.limits,
      localDomains,
      // Without a relay every non-local recipient is refused (550 5.7.1), trusted or not.
      relay: relay !== null && (config.relay.route !== null || config.relay.routes.size > 0),
      relayDomain: relay === null ? undefined : (domain) => relayDomains.has(normalizeDomain(domain)),
      refuseRelay: relay === null ? undefined : refuseRelay,
      maxHops: relay === null ? null : config.relay.maxHops,
      trusted: trusted(client.address),
      clientAddress: client.address,
      tls: client.transport === 'tls' ? 'implicit' : client.transport === 'tcp' && config.starttls ? 'starttls' : 'none',
      requireTls: config.requireTls && !unix,
      auth: unix ? localAuth : auth,
      newId,
      faults: faults ? faults.forClient(client.address) : undefined,
    };
  }

  return {
    trusted,
    openSession(client, at, tls: TlsInfo | null) {
      return new ServerSession(sessionConfig(client), at, tls ? { tls } : {});
    },
    handleEvents(conn, events) {
      for (const event of events) handleEvent(conn, event);
    },
    formatRefusal: formatReply,
    formatInternalError: () => formatReply(replies.internalError()),
    internalError(conn, error) {
      log.error('internal-error', { client: conn.client.address, error: error instanceof Error ? error.stack ?? error.message : String(error) });
    },
    refused(client, reply) {
      log.warn('refused', { client: client.address, listener: client.listener, reply: describeReply(reply) });
    },
    tlsFailed(client, error) {
      log.warn('tls-failed', { client: client.address, listener: client.listener, error: printable(error.message) });
    },
  };

  function handleEvent(conn: SmtpConnection, event: SessionEvent): void {
    switch (event.kind) {
      case 'message': {
        const { envelope } = event;
        spool
          .commit({
            id: event.id,
            timeMs: now(),
            envelope,
            stuffed: event.stuffed,
            localRecipients: envelope.recipients.map((r) => r.local),
            size: event.size,
            session: { clientAddress: conn.client.address, heloName: event.heloName, tls: conn.tls?.protocol ?? null },
          })
          .then(
            () => {
              log.info('accepted', {
                id: event.id,
                from: mailboxKey(envelope.sender),
                to: envelope.recipients.map((r) => mailboxKey(r.mailbox)),
                size: event.size,
                client: conn.client.address,
                user: envelope.authUser === null ? undefined : printable(envelope.authUser),
                tls: conn.tls?.protocol,
              });
              conn.answer((session, at) => session.resolve(event.requestId, { ok: true }, at));
            },
            (error: unknown) => {
              const reply = error instanceof SmtpError ? error.reply : replies.spoolUnavailable('the spool could not store it');
              log.error('not-stored', {
                id: event.id,
                from: mailboxKey(envelope.sender),
                client: conn.client.address,
                reply: describeReply(reply),
                error: error instanceof Error ? error.message : String(error),
              });
              conn.answer((session, at) => session.resolve(event.requestId, { ok: false, reply }, at));
            },
          );
        return;
      }
      case 'rejected':
        // blame=limit or blame=server marks a refusal that was not counted against the client.
        log.warn('rejected', { client: conn.client.address, command: event.command, reply: describeReply(event.reply), blame: event.reply.blame });
        return;
      case 'auth': {
        if (!authenticator) {
          conn.answer((session, at) => session.resolveAuth(event.requestId, { ok: false, reply: replies.authTemporary() }, at));
          return;
        }
        const request = { client: conn.client.address, mechanism: event.mechanism, authzid: event.authzid, username: event.username, password: event.password };
        authenticator.check(request).then(
          (verdict) => {
            if (!verdict.outcome.ok) {
              // Every failure is logged, never the password (RFC 4954 §9).
              log.warn('auth-failed', {
                user: printable(event.username),
                client: conn.client.address,
                mechanism: event.mechanism,
                reason: verdict.reason,
                locked: verdict.locked ? true : undefined,
              });
            }
            conn.answer((session, at) => session.resolveAuth(event.requestId, verdict.outcome, at));
          },
          (error: unknown) => {
            log.error('auth-error', { client: conn.client.address, error: error instanceof Error ? error.message : String(error) });
            conn.answer((session, at) => session.resolveAuth(event.requestId, { ok: false, reply: replies.authTemporary() }, at));
          },
        );
        return;
      }
      case 'authenticated':
        log.info('authenticated', { user: printable(event.username), client: conn.client.address, tls: conn.tls?.protocol ?? 'none' });
        return;
      case 'transition':
        return;
      default: {
        const never: never = event;
        return never;
      }
    }
  }
}
