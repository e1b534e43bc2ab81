/**
 * @module The POP3 session host of `mailbox serve`: what a POP3 listener asks of the server. It
 * opens a Pop3Session per connection with that listener's login policy, answers the session's
 * events from the authenticator and the maildrops (pop3-maildrops.ts), and writes one log line
 * per login and per failure.
 * Rule 1: the login policy is the readers' one (reader-login.ts), decided per listener.
 * Rule 2: an answer that finds its connection gone gives back what it took (a maildrop lock).
 */
import type { Authenticator } from '../auth/authenticator.ts';
import type { ServeConfig } from '../config.ts';
import { pop3Replies, describePop3Response, formatPop3Response } from '../core/pop3-replies.ts';
import { DEFAULT_POP3_LIMITS, Pop3Session, type Pop3AuthOutcome, type Pop3Event } from '../core/pop3-session.ts';
import type { Reply } from '../core/reply.ts';
import { printable, type Logger } from '../log.ts';
import type { Connection, ListenTarget, SessionHost } from '../transport/tcp-server.ts';
import type { StoreMaildrops } from './pop3-maildrops.ts';
import { checkPassword, readerAcceptsAnyPassword } from './reader-login.ts';

type Pop3Connection = Connection<Pop3Session>;

export interface Pop3HostDeps {
  readonly config: ServeConfig;
  readonly log: Logger;
  readonly authenticator: Authenticator | null;
  readonly maildrops: StoreMaildrops;
  /** STLS is offered only with a certificate to start it with. */
  readonly starttls: boolean;
}

/** The session host for one POP3 listener. */
export function createPop3Host(target: ListenTarget, deps: Pop3HostDeps): SessionHost<Pop3Session> {
  const { config, log, authenticator, maildrops } = deps;
  const anyPassword = readerAcceptsAnyPassword(config, target);
  const limits = { ...DEFAULT_POP3_LIMITS, maxErrors: config.limits.maxErrors };

  return {
    openSession(client, at, tls) {
      return new Pop3Session(
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
    formatRefusal: (reply: Reply) => formatPop3Response(pop3Replies.refused(reply.lines.join(' '))),
    formatInternalError: () => formatPop3Response(pop3Replies.internalError()),
    internalError(conn, error) {
      log.error('internal-error', { protocol: 'pop3', client: conn.client.address, error: error instanceof Error ? error.stack ?? error.message : String(error) });
    },
    refused(client, reply) {
      log.warn('refused', { protocol: 'pop3', client: client.address, listener: client.listener, reply: reply.lines.join(' ') });
    },
    tlsFailed(client, error) {
      log.warn('tls-failed', { protocol: 'pop3', client: client.address, listener: client.listener, error: printable(error.message) });
    },
  };

  function handleEvent(conn: Pop3Connection, event: Pop3Event): void {
    switch (event.kind) {
      case 'auth':
        void checkPassword({ log, authenticator, anyPassword, protocol: 'pop3' }, { client: conn.client.address, mechanism: event.mechanism, authzid: event.authzid, username: event.username, password: event.password }).then(
          (verdict) => {
            const outcome: Pop3AuthOutcome = verdict.ok
              ? verdict
              : { ok: false, response: verdict.reason === 'throttled' ? pop3Replies.authThrottled() : verdict.temporary ? pop3Replies.authTemporary() : pop3Replies.authFailed() };
            conn.answer((session, at) => session.resolveAuth(event.requestId, outcome, at));
          },
        );
        return;
      case 'lock':
        void maildrops.lock(event.user).then((outcome) => {
          if (!outcome.ok) log.warn('pop3-login-failed', { user: printable(event.user), client: conn.client.address, response: describePop3Response(outcome.response) });
          let answered = false;
          conn.answer((session, at) => {
            answered = true;
            return session.resolveLock(event.requestId, outcome, at);
          });
          // The connection closed while the lock was taken: nobody will give it back but us.
          if (!answered && outcome.ok) maildrops.release(event.user);
        });
        return;
      case 'read':
        void maildrops.read(event.user, event.uid).then((outcome) => {
          if (!outcome.ok) log.error('pop3-read-failed', { user: printable(event.user), id: event.uid, response: describePop3Response(outcome.response) });
          conn.answer((session, at) => session.resolveRead(event.requestId, outcome, at));
        });
        return;
      case 'update':
        void maildrops.update(event.user, event.deletedUids).then((outcome) => {
          if (event.deletedUids.length > 0) {
            const fields = { user: printable(event.user), client: conn.client.address, ids: event.deletedUids };
            if (outcome.ok) log.info('pop3-expunged', fields);
            else log.error('pop3-expunge-failed', { ...fields, response: describePop3Response(outcome.response) });
          }
          conn.answer((session, at) => session.resolveUpdate(event.requestId, outcome, at));
        });
        return;
      case 'release':
        maildrops.release(event.user);
        return;
      case 'logged-in':
        log.info('pop3-login', { user: printable(event.user), client: conn.client.address, mechanism: event.mechanism, tls: conn.tls?.protocol ?? 'none' });
        return;
      case 'rejected':
        // Login failures were logged where they were decided.
        if (event.command !== 'login') log.warn('pop3-rejected', { client: conn.client.address, command: printable(event.command), response: describePop3Response(event.response) });
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
