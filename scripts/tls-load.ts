/**
 * TLS load driver for `npm run bench`: smtp-source's load (one new connection per message, 1 KB
 * messages, N sessions at once) over STARTTLS (RFC 3207) or implicit TLS (RFC 8314), which
 * smtp-source cannot speak. Each session loops connect → [TLS] → EHLO → MAIL, RCPT, DATA → QUIT
 * until M messages have been sent. It drives the client core through src/transport/tcp-client.ts,
 * as `mailbox send` does, with DATA rather than BDAT (as smtp-source) and the certificate
 * unchecked. Every connection makes a full handshake: no TLS session is resumed.
 * Prints one JSON line: messages sent and failed, seconds from the first connect to the last
 * close, this process's CPU time, and the TLS version and cipher negotiated.
 *
 * usage: bash scripts/bun scripts/tls-load.ts --tls starttls|implicit|none -s SESSIONS -m MESSAGES
 *                                              [-l BODY_BYTES] [--timeout SECS] HOST:PORT
 */
import { parseArgs } from 'node:util';
import { openSmtpClient, type TlsInfo, type TlsMode } from '../src/transport/tcp-client.ts';
import { mailbox } from '../tests/helpers/mailbox.ts';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: Extract<TlsMode, 'none' | 'starttls' | 'implicit'>;
  readonly sessions: number;
  readonly messages: number;
  readonly bodyBytes: number;
  readonly timeoutMs: number;
}

export interface LoadResult {
  readonly messages: number;
  readonly failed: number;
  readonly seconds: number;
  /** CPU time of this process over the run (user + system), in ms. */
  readonly cpuMs: number;
  readonly tls: TlsInfo | null;
  /** The first failure, for the report. */
  readonly error?: string;
}

/** A message shaped as smtp-source's: From, To, Date, Message-Id, then the body in 80-octet lines. */
function formatMessage(bodyBytes: number): Uint8Array {
  const head = 'From: <foo@bench.local>\r\nTo: <foo@bench.local>\r\nDate: Fri, 27 Nov 2026 02:12:17 +0000\r\n' +
    'Message-Id: <tls-load@bench.local>\r\n\r\n';
  let body = '';
  for (let line = 1; body.length < bodyBytes; line++) {
    const text = `${line}${'X'.repeat(78)}`.slice(0, Math.max(0, Math.min(78, bodyBytes - body.length - 2)));
    body += `${text}\r\n`;
  }
  return new TextEncoder().encode(head + body);
}

/** Runs the load; never throws for a failed message (it is counted, the first reason kept). */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const message = formatMessage(options.bodyBytes);
  const sender = mailbox('foo@bench.local');
  const recipients = [mailbox('foo@bench.local')];
  let next = 0;
  let sent = 0;
  let failed = 0;
  let error: string | undefined;
  let tls: TlsInfo | null = null;
  const fail = (reason: string) => {
    failed++;
    error ??= reason;
  };

  const session = async () => {
    while (next < options.messages) {
      next++;
      try {
        const client = await openSmtpClient({
          host: options.host,
          port: options.port,
          ehloName: 'bench.local',
          timeoutMs: options.timeoutMs,
          tls: options.tls,
          tlsSettings: { rejectUnauthorized: false },
          chunking: false,
        });
        tls ??= client.tlsInfo;
        const outcome = await client.send({ sender, recipients, message });
        await client.quit();
        if (outcome.ok) sent++;
        else fail(outcome.failure.message);
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    }
  };

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: options.sessions }, session));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { messages: sent, failed, seconds, cpuMs: (cpu.user + cpu.system) / 1000, tls, error };
}

function parseTarget(text: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  if (match === null) throw new Error(`bad target "${text}": use HOST:PORT`);
  return { host: match[1]!, port: Number(match[2]) };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      tls: { type: 'string', default: 'starttls' },
      sessions: { type: 'string', short: 's', default: '1' },
      messages: { type: 'string', short: 'm', default: '100' },
      length: { type: 'string', short: 'l', default: '1024' },
      timeout: { type: 'string', default: '30' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.log('usage: bash scripts/bun scripts/tls-load.ts --tls starttls|implicit|none -s SESSIONS -m MESSAGES [-l BODY_BYTES] [--timeout SECS] HOST:PORT');
    process.exit(values.help ? 0 : 64);
  }
  const tls = values.tls;
  if (tls !== 'none' && tls !== 'starttls' && tls !== 'implicit') throw new Error(`--tls ${tls}: use starttls, implicit or none`);
  const result = await runLoad({
    ...parseTarget(positionals[0]!),
    tls,
    sessions: Number(values.sessions),
    messages: Number(values.messages),
    bodyBytes: Number(values.length),
    timeoutMs: Number(values.timeout) * 1000,
  });
  console.log(JSON.stringify(result));
  process.exitCode = result.failed === 0 ? 0 : 1;
}
