/**
 * @module The mail APIs on one HTTP server: Mailpit's API v1 with its websocket, and ours under
 * /api/mailbox/v1/, over one MailSource. serve installs them (serve/http-host.ts); the tests
 * install them over an index of their own.
 */
import type { HttpServer } from './http-server.ts';
import type { MailSource } from './mail-source.ts';
import { WaitRegistry } from './mail-wait.ts';
import { mailboxRoutes, type FaultControl, type MailboxApiDeps, type SessionRecord } from './mailbox-api.ts';
import { mailpitRoutes, type MailpitApiDeps } from './mailpit-api.ts';
import { MailpitEvents } from './mailpit-events.ts';

/** Open waits and SSE streams at once; more are answered 503. */
export const DEFAULT_MAX_WAITERS = 1000;
/** Websocket clients of /api/events at once. */
export const DEFAULT_MAX_WEBSOCKETS = 1000;

export interface MailApiDeps extends MailpitApiDeps {
  readonly session: (id: string) => Promise<SessionRecord | null>;
  readonly deliveries?: MailboxApiDeps['deliveries'];
  readonly faults: FaultControl;
  readonly maxWaiters?: number;
  readonly maxWebSockets?: number;
}

/** What install hands back: the live parts, to count and to stop. */
export interface MailApi {
  readonly waits: WaitRegistry;
  readonly events: MailpitEvents;
  close(): void;
}

export function installMailApi(http: HttpServer, mail: MailSource, deps: Omit<MailApiDeps, 'mail'>): MailApi {
  const waits = new WaitRegistry(mail, deps.maxWaiters ?? DEFAULT_MAX_WAITERS);
  const events = new MailpitEvents(mail, deps.version, deps.maxWebSockets ?? DEFAULT_MAX_WEBSOCKETS);
  const routes = [
    ...mailpitRoutes({ ...deps, mail }),
    ...events.routes(),
    ...mailboxRoutes({ mail, now: deps.now, waits, session: deps.session, deliveries: deps.deliveries, faults: deps.faults, version: deps.version }),
  ];
  // Every route reads the index as of the request: what was committed before it is in it.
  http.addRoutes(
    routes.map((route) => ({
      ...route,
      handler: async (context) => {
        await mail.current();
        return route.handler(context);
      },
    })),
  );
  return {
    waits,
    events,
    close: () => {
      waits.stop();
      events.close();
    },
  };
}
