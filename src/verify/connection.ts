/**
 * @module One probing SMTP connection for `mailbox verify`: opened over the mail hosts of one
 * domain in order (RFC 5321 §5.1: each address of each MX, lowest preference first), under the
 * one MX policy of delivery/, and every line of the dialogue kept as evidence.
 * Rule 1: it connects only to the addresses it is given, which come from DNS or from the user.
 * Rule 2: it drives the client core through tcp-client; there is no second SMTP client here.
 */
import type { ProbeOutcome, ProbeTransaction } from '../core/client-session.ts';
import { ClientFailure } from '../core/errors.ts';
import { describeReply } from '../core/reply.ts';
import { renderTranscript, type TranscriptEntry } from '../core/transcript.ts';
import { openMxClient, type MxAttemptHooks } from '../delivery/mx-client.ts';
import { OPPORTUNISTIC } from '../delivery/mx-policy.ts';
import type { MxTarget } from '../delivery/route.ts';
import type { SmtpClient } from '../transport/tcp-client.ts';

export interface ConnectSettings {
  readonly port: number;
  readonly ehloName: string;
  /** Connect timeout and the longest wait for any one reply. */
  readonly timeoutMs: number;
}

/** One address of one mail host, as DNS (or the user, for a domain literal) gave it. */
export type Target = MxTarget;

/** One connection attempt: where, whether it got as far as a usable session, and why not. */
export interface Attempt {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly ok: boolean;
  /** "connected", or what went wrong ("connection refused", "greeting: 554 …"). */
  readonly detail: string;
  /** True when a server answered (a TCP connection was made), even if it then refused. */
  readonly answered: boolean;
  /** The dialogue of a failed attempt (empty for a refused connection). */
  readonly transcript: readonly string[];
}

function describeFailure(error: unknown): { detail: string; answered: boolean } {
  if (!(error instanceof ClientFailure)) return { detail: error instanceof Error ? error.message : String(error), answered: false };
  const answered = error.stage !== 'connect' || error.reply !== undefined;
  const text = error.message.replace(/^cannot connect to \S+: /, '');
  return { detail: error.reply ? `${error.stage}: ${describeReply(error.reply)}` : text, answered };
}

/** An open session, ready for probes. Made by openProbeConnection(). */
export class ProbeConnection {
  readonly target: Target;
  readonly port: number;
  /** Greeting, EHLO (and STARTTLS, the second EHLO) lines, verbatim. */
  readonly session: readonly string[];
  readonly #client: SmtpClient;
  readonly #sink: { lines: string[] };
  #usable = true;
  probesRun = 0;

  /** Internal: openProbeConnection() builds it once the session is ready. */
  constructor(target: Target, port: number, client: SmtpClient, sink: { lines: string[] }) {
    this.target = target;
    this.port = port;
    this.#client = client;
    this.#sink = sink;
    this.session = sink.lines;
  }

  get tls(): boolean {
    return this.#client.tls;
  }

  get smtpUtf8(): boolean {
    return this.#client.extensions.has('SMTPUTF8');
  }

  /** False once the session broke off (421, closed, timeout): open another. */
  get usable(): boolean {
    return this.#usable;
  }

  /** Runs one probe; resolves with the outcome and the probe's own lines of dialogue. */
  async probe(probe: ProbeTransaction): Promise<{ outcome: ProbeOutcome; transcript: string[] }> {
    const lines: string[] = [];
    this.#sink.lines = lines;
    this.probesRun++;
    const outcome = await this.#client.probe(probe);
    if (outcome.failure !== null) this.#usable = false;
    return { outcome, transcript: lines };
  }

  /** QUIT and close; lines after the last probe are not kept. */
  async quit(): Promise<void> {
    this.#usable = false;
    this.#sink.lines = [];
    await this.#client.quit();
  }
}

/**
 * Tries each target in order until one gives a ready session, under the MX policy (STARTTLS
 * when offered, no certificate check, clear text after a failed handshake: delivery/mx-policy.ts).
 * Every attempt is appended to `attempts`; targets in `down` (unreachable earlier in this run) are
 * skipped, and new ones are added. Returns null when none worked.
 */
export async function openProbeConnection(
  targets: readonly Target[],
  settings: ConnectSettings,
  attempts: Attempt[],
  down: Set<string>,
): Promise<ProbeConnection | null> {
  for (const target of targets) {
    if (down.has(target.address)) continue;
    let sink = { lines: [] as string[] };
    const hooks: MxAttemptHooks = {
      begin: () => {
        const own = { lines: [] as string[] };
        sink = own;
        return (entry: TranscriptEntry) => {
          own.lines.push(...renderTranscript([entry]));
        };
      },
      end: (_, tls, result) => {
        if (result instanceof ClientFailure) {
          const { detail, answered } = describeFailure(result);
          attempts.push({ ...target, port: settings.port, ok: false, detail, answered, transcript: sink.lines });
        } else {
          attempts.push({ ...target, port: settings.port, ok: true, detail: result.tls ? 'connected (TLS)' : 'connected', answered: true, transcript: [] });
        }
      },
    };
    try {
      const connect = { port: settings.port, ehloName: settings.ehloName, timeoutMs: settings.timeoutMs, chunking: false };
      const client = await openMxClient(target, connect, OPPORTUNISTIC, hooks);
      return new ProbeConnection(target, settings.port, client, sink);
    } catch (error) {
      const { detail, answered } = describeFailure(error);
      if (!(error instanceof ClientFailure)) attempts.push({ ...target, port: settings.port, ok: false, detail, answered, transcript: sink.lines });
      // Only a host that did not answer at all is skipped by later connections of this run; one
      // that answered (421 "too busy", say) may take the next one.
      if (!answered) down.add(target.address);
    }
  }
  return null;
}
