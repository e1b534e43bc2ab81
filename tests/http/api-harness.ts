// The mail APIs on a real HTTP listener (127.0.0.1, port 0) over a TestMail index.
import type { Fields, Logger } from '../../src/log.ts';
import { HttpServer, type HttpContext } from '../../src/http/http-server.ts';
import { installMailApi, type MailApi, type MailApiDeps } from '../../src/http/mail-api.ts';
import type { Submission } from '../../src/http/mailpit-api.ts';
import { TestMail } from './test-mail.ts';

export interface Logged {
  readonly level: 'info' | 'warn' | 'error';
  readonly event: string;
  readonly fields: Fields;
}

export interface ApiUnderTest {
  readonly base: string;
  readonly port: number;
  readonly mail: TestMail;
  readonly http: HttpServer;
  readonly api: MailApi;
  readonly log: Logged[];
  readonly submitted: Submission[];
  close(): Promise<void>;
}

export function startApi(options: Partial<Omit<MailApiDeps, 'mail'>> & { mayRelay?: (c: HttpContext) => boolean } = {}): ApiUnderTest {
  const log: Logged[] = [];
  const logger: Logger = {
    info: (event, fields = {}) => log.push({ level: 'info', event, fields }),
    warn: (event, fields = {}) => log.push({ level: 'warn', event, fields }),
    error: (event, fields = {}) => log.push({ level: 'error', event, fields }),
    reopen() {},
    close() {},
  };
  const mail = new TestMail();
  const http = HttpServer.listen({ addresses: [{ host: '127.0.0.1', port: 0 }], log: logger, tls: null, auth: null, needsAuth: () => false, maxBodyBytes: 64 * 1024 * 1024 });
  const submitted: Submission[] = [];
  let faultSource: unknown = { rules: [] };
  const api = installMailApi(http, mail, {
    version: 'test',
    now: Date.now,
    hostname: 'mx.test',
    databasePath: '/tmp/index.sqlite',
    databaseBytes: () => 0,
    runtime: () => ({ startedMs: Date.now(), smtpAccepted: 0, smtpAcceptedBytes: 0, smtpRejected: 0, deleted: 0 }),
    mayRelay: () => true,
    submit: async (s) => {
      submitted.push(s);
      return mail.add(new TextDecoder().decode(s.bytes), { from: s.from, to: s.recipients, authUser: s.user });
    },
    relay: null,
    session: async () => null,
    faults: {
      get source() {
        return faultSource;
      },
      replace(json) {
        if (typeof json !== 'object' || json === null || !Array.isArray((json as { rules?: unknown }).rules)) return 'expected {"rules": [...]}';
        faultSource = json;
        return null;
      },
    },
    ...options,
  });
  const address = http.addresses[0];
  const port = Number(address.split(':')[1]);
  return {
    base: `http://${address}`,
    port,
    mail,
    http,
    api,
    log,
    submitted,
    async close() {
      api.close();
      await http.close();
      mail.close();
    },
  };
}

/** A small message with the headers most tests look at. */
export function sampleMessage(options: { subject?: string; to?: string; from?: string; body?: string; html?: string; extraHeaders?: string } = {}): string {
  const to = options.to ?? 'user@x.test';
  const head = `From: Sender <${options.from ?? 'sender@x.test'}>\nTo: ${to}\nSubject: ${options.subject ?? 'Hello'}\nMessage-ID: <${Math.random().toString(36).slice(2)}@x.test>\nDate: Wed, 02 Dec 2026 01:02:03 +0000\nX-Priority: 1\n${options.extraHeaders ?? ''}MIME-Version: 1.0\n`;
  if (options.html === undefined) return `${head}Content-Type: text/plain; charset=utf-8\n\n${options.body ?? 'Hello there'}\n`;
  return `${head}Content-Type: multipart/alternative; boundary="b1"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\n${options.body ?? 'Hello there'}\n--b1\nContent-Type: text/html; charset=utf-8\n\n${options.html}\n--b1--\n`;
}
