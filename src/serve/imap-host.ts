/**
 * @module The IMAP session host of `mailbox serve`: what an IMAP listener asks of the server. It
 * opens an ImapSession per connection with that listener's login policy, answers the session's
 * events from the authenticator and the login mailboxes (login-mailboxes.ts), and writes one log line
 * per login and per failure.
 * Rule 1: the login policy is the readers' one (reader-login.ts):
 *         catch-all mode on a loopback listener accepts any password in clear; otherwise the
 *         users file with SMTP AUTH's throttle, and cleartext needs TLS or --allow-insecure-auth
 *         (the core then advertises LOGINDISABLED, RFC 3501 §6.2.3).
 * Rule 2: a session that has selected its INBOX watches it: changes made by other sessions of
 *         the login and new mail reach it through notify() until it unselects or closes.
 */
import type { Authenticator } from '../auth/authenticator.ts';
import type { ServeConfig } from '../config.ts';
import { formatStatus, imapResponses, type ImapStatus } from '../core/imap/responses.ts';
import { DEFAULT_IMAP_LIMITS, ImapSession, type ImapAuthOutcome, type ImapEvent } from '../core/imap/session.ts';
import type { MailboxChange } from '../core/imap/selected-mailbox.ts';
import type { Reply } from '../core/reply.ts';
import { printable, type Logger } from '../log.ts';
import type { Connection, ListenTarget, SessionHost } from '../transport/tcp-server.ts';
import type { LoginMailboxes } from './login-mailboxes.ts';
import { checkPassword, readerAcceptsAnyPassword } from './reader-login.ts';

type ImapConnection = Connection<ImapSession>;

export interface ImapHostDeps {
  readonly config: ServeConfig;
  readonly log: Logger;
  readonly authenticator: Authenticator | null;
  readonly mailboxes: LoginMailboxes;
  /** STARTTLS is offered only with a certificate to start it with. */
  readonly starttls: boolean;
}

function describe(s: ImapStatus): string {
  return formatStatus(null, s).slice(2).trimEnd();
}

/** The session host for one IMAP listener. */
export function createImapHost(target: ListenTarget, deps: ImapHostDeps): SessionHost<ImapSession> {
  const { config, log, authenticator, mailboxes } = deps;
  const anyPassword = readerAcceptsAnyPassword(config, target);
  const limits = { ...DEFAULT_IMAP_LIMITS, maxLiteralBytes: config.limits.maxMessageBytes, maxErrors: config.limits.maxErrors };
  /** The watch each connection holds on its INBOX, and the watcher it was given. */
  const watches = new Map<ImapConnection, { readonly watcher: (changes: readonly MailboxChange[]) => void; readonly stop: () => void }>();

  return {
    openSession(client, at, tls) {
      return new ImapSession(
        {
          hostname: config.hostname,
          limits,
          tls: client.transport === 'tls' ? 'implicit' : deps.starttls ? 'starttls' : 'none',
          allowInsecureAuth: anyPassword || config.allowInsecureAuth,
        },
        at,
        { tls },
      );
    },
    handleEvents(conn, events) {
      for (const event of events) handleEvent(conn, event);
    },
    formatRefusal: (reply: Reply) => formatStatus(null, imapResponses.refused(reply.lines.join(' '))),
    formatInternalError: () => formatStatus(null, imapResponses.internalError()),
    internalError(conn, error) {
      log.error('internal-error', { protocol: 'imap', client: conn.client.address, error: error instanceof Error ? error.stack ?? error.message : String(error) });
    },
    refused(client, reply) {
      log.warn('refused', { protocol: 'imap', client: client.address, listener: client.listener, reply: reply.lines.join(' ') });
    },
    tlsFailed(client, error) {
      log.warn('tls-failed', { protocol: 'imap', client: client.address, listener: client.listener, error: printable(error.message) });
    },
    closed(conn) {
      unwatch(conn);
    },
  };

  function unwatch(conn: ImapConnection): void {
    watches.get(conn)?.stop();
    watches.delete(conn);
  }

  function handleEvent(conn: ImapConnection, event: ImapEvent): void {
    const from = watches.get(conn)?.watcher ?? null;
    switch (event.kind) {
      case 'auth': {
        const request = { client: conn.client.address, mechanism: event.mechanism, authzid: event.authzid, username: event.username, password: event.password };
        void checkPassword({ log, authenticator, anyPassword, protocol: 'imap' }, request).then((verdict) => {
          const outcome: ImapAuthOutcome = verdict.ok
            ? { ok: true, user: verdict.user }
            : { ok: false, status: verdict.temporary ? imapResponses.authTemporary() : imapResponses.authFailed() };
          conn.answer((session, at) => session.resolveAuth(event.requestId, outcome, at));
        });
        return;
      }
      case 'logged-in':
        log.info('imap-login', { user: printable(event.user), client: conn.client.address, mechanism: event.mechanism, tls: conn.tls?.protocol ?? 'none' });
        return;
      case 'open':
        void mailboxes.open(event.user, event.claimRecent).then((outcome) => {
          if (!outcome.ok) log.error('imap-open-failed', { user: printable(event.user), response: describe(outcome.status) });
          conn.answer((session, at) => session.resolveOpen(event.requestId, outcome, at));
        });
        return;
      case 'selected': {
        unwatch(conn);
        const watcher = (changes: readonly MailboxChange[]) => conn.answer((session, at) => session.notify(changes, at));
        watches.set(conn, { watcher, stop: mailboxes.watch(event.user, watcher) });
        return;
      }
      case 'unselected':
        unwatch(conn);
        return;
      case 'load':
        void mailboxes.load(event.user, event.uids, event.reads).then((outcome) => {
          if (!outcome.ok) log.error('imap-read-failed', { user: printable(event.user), response: describe(outcome.status) });
          conn.answer((session, at) => session.resolveLoad(event.requestId, outcome, at));
        });
        return;
      case 'store-flags':
        void mailboxes.storeFlags(event.user, event.changes, from).then((outcome) => {
          if (!outcome.ok) log.error('imap-store-failed', { user: printable(event.user), response: describe(outcome.status) });
          conn.answer((session, at) => session.resolveChange(event.requestId, outcome, at));
        });
        return;
      case 'expunge':
        void mailboxes.expunge(event.user, event.uids, from).then((outcome) => {
          const fields = { user: printable(event.user), client: conn.client.address, uids: event.uids };
          if (outcome.ok) log.info('imap-expunged', fields);
          else log.error('imap-expunge-failed', { ...fields, response: describe(outcome.status) });
          conn.answer((session, at) => session.resolveChange(event.requestId, outcome, at));
        });
        return;
      case 'rejected':
        // Login failures were logged where they were decided.
        if (event.command !== 'LOGIN' && event.command !== 'AUTHENTICATE') log.warn('imap-rejected', { client: conn.client.address, command: printable(event.command), response: describe(event.status) });
        return;
      default: {
        const never: never = event;
        return never;
      }
    }
  }
}
