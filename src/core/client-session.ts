/**
 * @module Client session: the SMTP client as a pure state machine, greeting → EHLO (HELO) →
 * STARTTLS → MAIL/RCPT…/DATA → message → QUIT, fed with bytes and returning what to write.
 * Rule 1: no I/O and no clock. The adapter writes `out`, feeds what it reads to receive(), and
 *         reports the world through tlsStarted(), tlsFailed(), timeout() and peerClosed().
 * Rule 2: every reply is matched to the command it answers through one queue (#awaiting), so a
 *         pipelined group (RFC 2920) and a lock-step dialogue run through the same handlers.
 * Rule 3: every transaction given to send() gets exactly one `outcome` event.
 * Rule 4: secrets (AUTH responses) go to `out` only; transcript entries carry "<redacted>".
 * Rule 5: a probe (probe()) asks MAIL and RCPT and never reaches DATA; it gets one `probed` event.
 * Rule 6: with PIPELINING, the next queued transaction's MAIL, RCPT… and DATA go out with the end
 *         of the message before it (RFC 2920 §3.1), so a session of many messages costs one round
 *         trip per message.
 */
import { formatMailbox, formatPath, needsSmtpUtf8, type Mailbox } from './address.ts';
import { dotUnstuff } from './data.ts';
import { clientReplies } from './client-replies.ts';
import { ClientFailure, type ClientStage } from './errors.ts';
import { parseEhloLines, type PeerExtensions } from './extensions.ts';
import { prepareOutgoing, type DsnOptions, type OutgoingPolicy, type OutgoingRecipient } from './outgoing.ts';
import { isPositive, type Reply } from './reply.ts';
import { ReplyReader } from './reply-reader.ts';
import { challengeResponse, chooseMechanism, initialResponse, type ClientAuth, type HmacMd5, type SaslMechanism } from './sasl.ts';
import type { TranscriptEntry } from './transcript.ts';

export { SASL_MECHANISMS, type ClientAuth, type HmacMd5, type SaslMechanism } from './sasl.ts';

/** 'opportunistic' upgrades when STARTTLS is offered; 'required' fails the session without it. */
export type StartTlsPolicy = 'never' | 'opportunistic' | 'required';

/** Where `--quit-after` ends the session with QUIT (for testing servers, as swaks does). */
export type QuitAfter = 'connect' | 'ehlo' | 'tls' | 'auth' | 'mail' | 'rcpt';
export const QUIT_AFTER: readonly QuitAfter[] = ['connect', 'ehlo', 'tls', 'auth', 'mail', 'rcpt'];

export interface ClientOptions {
  /** The name given in EHLO/HELO (RFC 5321 §4.1.1.1: the client's FQDN or an address literal). */
  readonly ehloName: string;
  readonly startTls?: StartTlsPolicy;
  /** The connection is TLS from the first byte (RFC 8314 implicit TLS); STARTTLS is not tried. */
  readonly tls?: boolean;
  /** Authenticate after EHLO (and STARTTLS) with these credentials (RFC 4954). */
  readonly auth?: ClientAuth;
  readonly hmacMd5?: HmacMd5;
  /** Send messages with BDAT when the server offers CHUNKING (RFC 3030); default true. */
  readonly chunking?: boolean;
  readonly quitAfter?: QuitAfter;
  /** What to do with what the server does not offer (core/outgoing.ts); default 'refuse'. */
  readonly outgoing?: OutgoingPolicy;
}

export type { DsnOptions, NotifyCondition, OutgoingPolicy, OutgoingRecipient, RecipientParams } from './outgoing.ts';

/**
 * One message to send: the envelope and the message bytes, either as they are (any line endings)
 * or already in their wire form, as the spool keeps them.
 */
export type OutgoingTransaction<R extends Mailbox | OutgoingRecipient = Mailbox> = TransactionEnvelope<R> & (
  | {
      /** Converted to CRLF and dot-stuffed by the session (RFC 5321 §4.5.2); ".\r\n" is added. */
      readonly message: Uint8Array;
      readonly stuffed?: undefined;
    }
  | {
      /**
       * Already CRLF lines and dot-stuffed, without the final ".\r\n" (a spool record's body):
       * sent as it is, with no copy. A line of a single "." inside it is refused.
       */
      readonly stuffed: Uint8Array;
      readonly message?: undefined;
    }
);

/** Any transaction send() takes: recipients as bare mailboxes or with parameters of their own. */
export type AnyTransaction = OutgoingTransaction<Mailbox | OutgoingRecipient>;

export interface TransactionEnvelope<R extends Mailbox | OutgoingRecipient = Mailbox> {
  readonly sender: Mailbox | null;
  /** A bare Mailbox, or a recipient with its own NOTIFY and ORCPT (RFC 3461 §4). */
  readonly recipients: readonly R[];
  /** RET and ENVID, and the NOTIFY of recipients that give none of their own. */
  readonly dsn?: DsnOptions;
  /**
   * The message came with SMTPUTF8 (a spool record's envelope): its header fields may be UTF-8
   * (RFC 6532), and then it goes only with SMTPUTF8.
   */
  readonly smtpUtf8?: boolean;
}

/**
 * A probe, as `mailbox verify` sends it: VRFY for `vrfy` first (lock-step: RFC 2920 §3.1 lets
 * VRFY only end a group), then MAIL, every RCPT and RSET (one group when the server offers
 * PIPELINING), so the server answers for each recipient and no message is ever sent.
 */
export interface ProbeTransaction {
  readonly sender: Mailbox | null;
  readonly recipients: readonly Mailbox[];
  readonly vrfy?: readonly Mailbox[];
}

export interface RecipientOutcome {
  readonly mailbox: Mailbox;
  readonly reply: Reply;
  readonly accepted: boolean;
}

/** What became of one transaction. `recipients` holds a reply for every RCPT that was sent. */
export type TransactionOutcome =
  | {
      readonly ok: true;
      readonly transaction: AnyTransaction;
      /** The reply to the end of data: the server took responsibility for the message. */
      readonly reply: Reply;
      readonly recipients: readonly RecipientOutcome[];
    }
  | {
      readonly ok: false;
      readonly transaction: AnyTransaction;
      readonly failure: ClientFailure;
      readonly recipients: readonly RecipientOutcome[];
      /**
       * Set when `quitAfter` 'mail' or 'rcpt' ended the transaction there, as asked: MAIL (and
       * the RCPTs) were answered as `recipients` says, and no message was sent.
       */
      readonly stoppedAfter?: 'mail' | 'rcpt';
    };

/** What the server said to one probe; `failure` is set when the session broke off before RSET. */
export interface ProbeOutcome {
  readonly probe: ProbeTransaction;
  readonly vrfy: readonly RecipientOutcome[];
  readonly mail: Reply | null;
  readonly recipients: readonly RecipientOutcome[];
  readonly failure: ClientFailure | null;
}

export type ClientEvent =
  | { readonly kind: 'transcript'; readonly entry: TranscriptEntry }
  /** A complete reply, with the stage it answers (for timings and reports). */
  | { readonly kind: 'reply'; readonly stage: ClientStage; readonly reply: Reply }
  /** AUTH succeeded with this mechanism. */
  | { readonly kind: 'authenticated'; readonly mechanism: SaslMechanism }
  /** `quitAfter` was reached: QUIT follows. */
  | { readonly kind: 'stopped'; readonly stage: QuitAfter }
  /** EHLO/HELO succeeded (after STARTTLS when there was one); transactions can run. */
  | { readonly kind: 'ready'; readonly extensions: PeerExtensions; readonly tls: boolean }
  /** The server said 220 to STARTTLS: start the TLS handshake, then call tlsStarted(). */
  | { readonly kind: 'starttls' }
  | { readonly kind: 'outcome'; readonly outcome: TransactionOutcome }
  | { readonly kind: 'probed'; readonly outcome: ProbeOutcome }
  /** The session cannot go on; every pending transaction already has its outcome. */
  | { readonly kind: 'failed'; readonly failure: ClientFailure }
  /** The dialogue is over; the adapter closes the connection once `out` is written. */
  | { readonly kind: 'closed' };

export interface ClientStep {
  /** Chunks to write, in order; commands are strings (UTF-8 on the wire), message bytes are not. */
  readonly out: readonly (string | Uint8Array)[];
  readonly events: readonly ClientEvent[];
  readonly close: boolean;
}

/** What one outstanding reply answers. */
type Awaited =
  | { readonly verb: 'greeting' | 'EHLO' | 'HELO' | 'STARTTLS' | 'AUTH' | 'MAIL' | 'DATA' | '.' | 'BDAT' | 'RSET' | 'QUIT' }
  | { readonly verb: 'RCPT' | 'VRFY'; readonly index: number };

const STAGE_OF: Record<Awaited['verb'], ClientStage> = {
  greeting: 'greeting',
  EHLO: 'ehlo',
  HELO: 'ehlo',
  STARTTLS: 'starttls',
  AUTH: 'auth',
  MAIL: 'mail',
  RCPT: 'rcpt',
  // VRFY asks about a recipient; a failure there is reported where RCPT failures are.
  VRFY: 'rcpt',
  DATA: 'data',
  '.': 'message',
  BDAT: 'message',
  RSET: 'mail',
  QUIT: 'quit',
};

/** One transaction on the wire: the replies so far, and the failure once one is certain. */
interface Flight {
  readonly tx: AnyTransaction;
  readonly stuffed: Uint8Array;
  readonly pipelined: boolean;
  /** BDAT instead of DATA (RFC 3030): the RCPT replies are awaited before the message goes. */
  readonly chunked: boolean;
  readonly mailParams: string;
  /** The recipients with their parameters, and each one's RCPT parameters as sent. */
  readonly rcpts: readonly OutgoingRecipient[];
  readonly rcptParams: readonly string[];
  readonly mail: Reply | null;
  readonly recipients: readonly RecipientOutcome[];
  readonly failure: ClientFailure | null;
}

/** One probe on the wire, with the replies so far. */
interface ProbeFlight {
  readonly probe: ProbeTransaction;
  readonly pipelined: boolean;
  readonly mailParams: string;
  readonly vrfy: readonly RecipientOutcome[];
  readonly mail: Reply | null;
  readonly recipients: readonly RecipientOutcome[];
}

/** A queued job: a message to send, or a probe. */
type Job = AnyTransaction | ProbeTransaction;

const isProbe = (job: Job): job is ProbeTransaction => !('message' in job) && !('stuffed' in job);

type State =
  | { readonly kind: 'greeting' }
  | { readonly kind: 'hello' }
  | { readonly kind: 'starttls' }
  | { readonly kind: 'handshake' }
  | { readonly kind: 'auth'; readonly mechanism: SaslMechanism; readonly step: number }
  | { readonly kind: 'ready' }
  /** `ahead`: the next transaction, whose MAIL, RCPT… and DATA went out with this one's ".". */
  | { readonly kind: 'transaction'; readonly flight: Flight; readonly ahead: Flight | null }
  | { readonly kind: 'probe'; readonly flight: ProbeFlight }
  | { readonly kind: 'resetting' }
  | { readonly kind: 'quitting' }
  | { readonly kind: 'closed' };

// RFC 5321 §4.1.4: a server that does not know EHLO answers 500 or 502; HELO follows.
const EHLO_UNKNOWN = new Set([500, 502]);
const SETUP_STAGES: ReadonlySet<ClientStage> = new Set(['connect', 'greeting', 'ehlo', 'starttls', 'auth']);

const NO_EXTENSIONS: PeerExtensions = new Map();
const REDACTED = '<redacted>';

/**
 * The client state machine. Queue transactions with send(), feed bytes with receive(); each call
 * returns the chunks to write and the events that happened. Several transactions run one after
 * another on one session; quit() ends it once the queue is empty.
 */
export class ClientSession {
  readonly #options: ClientOptions;
  #state: State = { kind: 'greeting' };
  #awaiting: Awaited[] = [{ verb: 'greeting' }];
  #queue: Job[] = [];
  #extensions: PeerExtensions = NO_EXTENSIONS;
  #tls: boolean;
  #triedStartTls = false;
  #quitRequested = false;
  readonly #reader = new ReplyReader();
  #out: (string | Uint8Array)[] = [];
  #events: ClientEvent[] = [];
  #close = false;

  constructor(options: ClientOptions) {
    this.#options = options;
    this.#tls = options.tls === true;
  }

  /** The peer's EHLO keywords (empty before EHLO, and after HELO). */
  get extensions(): PeerExtensions {
    return this.#extensions;
  }

  /** True once the connection is TLS (implicit, or after a finished STARTTLS handshake). */
  get tls(): boolean {
    return this.#tls;
  }

  /** The stage whose reply the session waits for, or null: the adapter runs its timer meanwhile. */
  get awaitingStage(): ClientStage | null {
    if (this.#state.kind === 'handshake') return 'starttls';
    const head = this.#awaiting[0];
    return head ? STAGE_OF[head.verb] : null;
  }

  get closed(): boolean {
    return this.#state.kind === 'closed';
  }

  /** Queues a transaction; it starts at once when the session is ready and idle. */
  send(tx: AnyTransaction): ClientStep {
    if (this.#state.kind === 'closed' || this.#state.kind === 'quitting') {
      this.#emitOutcome({
        ok: false,
        transaction: tx,
        failure: new ClientFailure('connect', 'mail', 'the session is already closed'),
        recipients: [],
      });
      return this.#step();
    }
    this.#queue.push(tx);
    if (this.#state.kind === 'ready') this.#next();
    return this.#step();
  }

  /** Queues a probe (see ProbeTransaction); its `probed` event carries every reply. */
  probe(probe: ProbeTransaction): ClientStep {
    if (this.#state.kind === 'closed' || this.#state.kind === 'quitting') {
      this.#emitQueued(probe, new ClientFailure('connect', 'mail', 'the session is already closed'));
      return this.#step();
    }
    this.#queue.push(probe);
    if (this.#state.kind === 'ready') this.#next();
    return this.#step();
  }

  /** Asks for QUIT once every queued transaction is done. */
  quit(): ClientStep {
    if (this.#quitRequested || this.#state.kind === 'closed') return this.#step();
    this.#quitRequested = true;
    if (this.#state.kind === 'ready') this.#next();
    return this.#step();
  }

  /** Bytes read from the server, split anywhere. */
  receive(bytes: Uint8Array): ClientStep {
    // After 220 to STARTTLS the plaintext stream is over; whatever arrives belongs to TLS.
    if (this.#state.kind === 'closed' || this.#state.kind === 'handshake') return this.#step();
    this.#reader.push(bytes);
    this.#readReplies();
    return this.#step();
  }

  /** The TLS handshake the `starttls` event asked for has finished. */
  tlsStarted(): ClientStep {
    if (this.#state.kind !== 'handshake') throw new Error(`tlsStarted() in state ${this.#state.kind}`);
    this.#tls = true;
    this.#trace({ kind: 'event', name: 'tls' });
    // RFC 3207 §4.2: the client must discard what it learnt before TLS and say EHLO again.
    this.#extensions = NO_EXTENSIONS;
    this.#hello('EHLO');
    return this.#step();
  }

  /** The TLS handshake failed; the connection cannot be used any more. */
  tlsFailed(reason: string): ClientStep {
    if (this.#state.kind === 'closed') return this.#step();
    this.#failSession(new ClientFailure('tls', 'starttls', `TLS handshake failed: ${reason}`), false);
    return this.#step();
  }

  /** The adapter's timer ran out while a reply was awaited. */
  timeout(message = 'no reply from the server in time'): ClientStep {
    if (this.#state.kind === 'closed') return this.#step();
    this.#trace({ kind: 'event', name: 'idle' });
    const stage = this.awaitingStage;
    // A server slow to answer QUIT has already done everything that mattered.
    if (stage === null || this.#state.kind === 'quitting') {
      this.#enter({ kind: 'closed' });
      return this.#step();
    }
    this.#failSession(new ClientFailure('connect', stage, message, undefined, { status: clientReplies.noAnswer(message) }), false);
    return this.#step();
  }

  /** The server closed the connection (or it broke). */
  peerClosed(message = 'connection closed by the server'): ClientStep {
    if (this.#state.kind === 'closed') return this.#step();
    this.#trace({ kind: 'event', name: 'peer-closes' });
    const stage = this.awaitingStage;
    const idle = this.#state.kind === 'quitting' || (stage === null && this.#queue.length === 0);
    if (idle) {
      this.#enter({ kind: 'closed' });
      return this.#step();
    }
    this.#failSession(new ClientFailure('connect', stage ?? 'mail', message), false);
    return this.#step();
  }

  // ---- reading replies ----

  #readReplies(): void {
    while (this.#state.kind !== 'closed' && this.#state.kind !== 'handshake') {
      const reading = this.#reader.next();
      if (reading === null) break;
      if (reading.kind === 'line') this.#trace({ kind: 'line', dir: 'S', text: reading.text });
      else if (reading.kind === 'reply') this.#onReply(reading.reply);
      else this.#protocolFailure(reading.what);
    }
    if (this.#state.kind === 'handshake') {
      const discarded = this.#reader.discard();
      // RFC 3207 §4.2 and §6: bytes after the 220 came before TLS and must not be trusted.
      if (discarded > 0) this.#trace({ kind: 'note', text: `discarded ${discarded} bytes sent before the TLS handshake` });
    }
    if (this.#state.kind === 'closed') this.#reader.discard();
  }

  #onReply(reply: Reply): void {
    const awaited = this.#awaiting.shift();
    if (awaited === undefined) {
      // RFC 5321 §3.8: a server may send 421 at any time before closing, an idle session too.
      if (reply.code !== 421) this.#protocolFailure('a reply with no command outstanding');
      else if (this.#queue.length === 0) this.#enter({ kind: 'closed' });
      else this.#failSession(new ClientFailure('rejected', 'mail', 'the server closed the session', reply), false);
      return;
    }
    this.#events.push({ kind: 'reply', stage: STAGE_OF[awaited.verb], reply });
    if (reply.code === 421 && awaited.verb !== 'QUIT') {
      this.#failSession(new ClientFailure('rejected', STAGE_OF[awaited.verb], 'the server closed the session', reply), false);
      return;
    }
    if (this.#state.kind === 'probe') return this.#onProbeReply(this.#state.flight, awaited, reply);
    switch (awaited.verb) {
      case 'greeting':
        return this.#onGreeting(reply);
      case 'EHLO':
        return this.#onEhlo(reply);
      case 'HELO':
        return this.#onHelo(reply);
      case 'STARTTLS':
        return this.#onStartTls(reply);
      case 'AUTH':
        return this.#onAuth(reply);
      case 'MAIL':
        return this.#onMail(reply);
      case 'RCPT':
        return this.#onRcpt(reply, awaited.index);
      case 'VRFY':
        throw new Error(`a VRFY reply in state ${this.#state.kind}`);
      case 'DATA':
        return this.#onData(reply);
      case '.':
      case 'BDAT':
        return this.#onEndOfData(reply);
      case 'RSET':
        return this.#onRset();
      case 'QUIT':
        return this.#onQuit();
      default:
        awaited satisfies never;
    }
  }

  // ---- session setup ----

  #onGreeting(reply: Reply): void {
    if (reply.code === 220) {
      if (this.#stopAt('connect')) return;
      this.#hello('EHLO');
      return;
    }
    // RFC 5321 §3.1: after a 554 greeting the client should send QUIT.
    this.#failSession(new ClientFailure('rejected', 'greeting', 'the server refused the session', reply), true);
  }

  #hello(verb: 'EHLO' | 'HELO'): void {
    this.#enter({ kind: 'hello' });
    this.#write([`${verb} ${this.#options.ehloName}`], [{ verb }]);
  }

  #onEhlo(reply: Reply): void {
    if (isPositive(reply)) {
      this.#extensions = parseEhloLines(reply.lines);
      this.#afterHello();
    } else if (EHLO_UNKNOWN.has(reply.code)) {
      this.#hello('HELO');
    } else {
      this.#failSession(new ClientFailure('rejected', 'ehlo', 'EHLO rejected', reply), true);
    }
  }

  #onHelo(reply: Reply): void {
    if (!isPositive(reply)) {
      this.#failSession(new ClientFailure('rejected', 'ehlo', 'HELO rejected', reply), true);
      return;
    }
    this.#extensions = NO_EXTENSIONS;
    this.#afterHello();
  }

  #afterHello(): void {
    // The first EHLO is the one 'ehlo' means; after STARTTLS the second one is 'tls'.
    if (!this.#triedStartTls && this.#stopAt('ehlo')) return;
    const policy = this.#options.startTls ?? 'never';
    if (!this.#tls && policy !== 'never') {
      if (this.#extensions.has('STARTTLS') && !this.#triedStartTls) {
        this.#triedStartTls = true;
        this.#enter({ kind: 'starttls' });
        this.#write(['STARTTLS'], [{ verb: 'STARTTLS' }]);
        return;
      }
      if (policy === 'required') {
        const message = 'the server does not offer STARTTLS, and TLS is required';
        this.#failSession(new ClientFailure('tls', 'starttls', message, undefined, { status: clientReplies.tlsNeeded(message) }), true);
        return;
      }
    }
    this.#afterTls();
  }

  #afterTls(): void {
    if (this.#stopAt('tls')) return;
    if (this.#options.auth !== undefined) {
      this.#startAuth(this.#options.auth);
      return;
    }
    this.#afterAuth();
  }

  #afterAuth(): void {
    if (this.#stopAt('auth')) return;
    this.#ready();
  }

  #onStartTls(reply: Reply): void {
    if (reply.code === 220) {
      this.#enter({ kind: 'handshake' });
      this.#events.push({ kind: 'starttls' });
      return;
    }
    // RFC 3207 §4: 454 means TLS is not available now; going on in clear is the client's choice.
    if (this.#options.startTls === 'required') {
      this.#failSession(new ClientFailure('tls', 'starttls', 'STARTTLS refused, and TLS is required', reply), true);
      return;
    }
    this.#afterTls();
  }

  // ---- AUTH (RFC 4954) ----

  #startAuth(auth: ClientAuth): void {
    const chosen = chooseMechanism(auth, {
      offered: this.#extensions.get('AUTH') ?? [],
      tls: this.#tls,
      startTlsOffered: this.#extensions.has('STARTTLS'),
      cramMd5: this.#options.hmacMd5 !== undefined,
    });
    if ('why' in chosen) {
      this.#failSession(new ClientFailure('rejected', 'auth', chosen.why, undefined, { status: clientReplies.authImpossible(chosen.why) }), true);
      return;
    }
    const { mechanism } = chosen;
    // CRAM-MD5 sends only a keyed digest; every other mechanism sends the secret itself.
    if (!this.#tls && mechanism !== 'CRAM-MD5' && auth.allowCleartext !== true) {
      const message = `refusing to send the ${auth.secretKind} for AUTH ${mechanism} without TLS`
        + ' (use --tls starttls or --tls implicit; --tls off allows it)';
      this.#failSession(new ClientFailure('tls', 'auth', message, undefined, { status: clientReplies.tlsNeeded(message) }), true);
      return;
    }
    if (mechanism === 'CRAM-MD5' && this.#options.hmacMd5 === undefined) {
      this.#failSession(new ClientFailure('internal', 'auth', 'CRAM-MD5 needs an HMAC-MD5 function'), true);
      return;
    }
    this.#enter({ kind: 'auth', mechanism, step: 0 });
    const initial = initialResponse(auth, mechanism);
    const command = initial === null ? `AUTH ${mechanism}` : `AUTH ${mechanism} ${initial}`;
    this.#writeSecret(command, initial === null ? command : `AUTH ${mechanism} ${REDACTED}`, { verb: 'AUTH' });
  }

  #onAuth(reply: Reply): void {
    if (this.#state.kind !== 'auth') throw new Error(`an AUTH reply in state ${this.#state.kind}`);
    const { mechanism, step } = this.#state;
    const auth = this.#options.auth!;
    if (reply.code === 235) {
      this.#events.push({ kind: 'authenticated', mechanism });
      this.#afterAuth();
      return;
    }
    if (reply.code !== 334) {
      this.#failSession(new ClientFailure('rejected', 'auth', `authentication failed (${mechanism})`, reply), true);
      return;
    }
    this.#enter({ kind: 'auth', mechanism, step: step + 1 });
    const challenge = reply.lines.join('');
    const { response, note } = challengeResponse(auth, mechanism, step, challenge, this.#options.hmacMd5);
    if (note !== undefined) this.#trace({ kind: 'note', text: note });
    if (response === null) {
      // RFC 4954 §4: "*" cancels the exchange; the server answers 501.
      this.#writeSecret('*', '*', { verb: 'AUTH' });
      return;
    }
    this.#writeSecret(response, REDACTED, { verb: 'AUTH' });
  }

  #ready(): void {
    this.#enter({ kind: 'ready' });
    this.#events.push({ kind: 'ready', extensions: this.#extensions, tls: this.#tls });
    this.#next();
  }

  // ---- transactions ----

  /** In state ready: starts the next queued transaction, or says QUIT when asked and idle. */
  #next(): void {
    for (let tx = this.#queue.shift(); tx !== undefined; tx = this.#queue.shift()) {
      if (isProbe(tx)) {
        if (this.#startProbe(tx)) return;
        continue;
      }
      const flight = this.#prepare(tx);
      if (flight === null) continue;
      this.#startFlight(flight);
      return;
    }
    if (this.#quitRequested) {
      this.#enter({ kind: 'quitting' });
      this.#write(['QUIT'], [{ verb: 'QUIT' }]);
    }
  }

  /** Checks what can be checked before a byte is sent (core/outgoing.ts); a transaction that cannot go gets its outcome here. */
  #prepare(tx: AnyTransaction): Flight | null {
    const ext = this.#extensions;
    const preparation = prepareOutgoing(tx, ext, this.#options.outgoing ?? 'refuse');
    if (!preparation.ok) {
      const { kind, stage, status } = preparation;
      const failure = new ClientFailure(kind, stage, status.lines.join(' '), undefined, { status });
      this.#emitOutcome({ ok: false, transaction: tx, failure, recipients: [] });
      return null;
    }
    const { stuffed, mailParams, recipients: rcpts, rcptParams } = preparation.prepared;
    const chunked = ext.has('CHUNKING') && this.#options.chunking !== false;
    return { tx, stuffed, pipelined: ext.has('PIPELINING'), chunked, mailParams, rcpts, rcptParams, mail: null, recipients: [], failure: null };
  }

  #rcptLine(flight: Flight, index: number): string {
    return `RCPT TO:${formatPath(flight.rcpts[index].mailbox)}${flight.rcptParams[index]}`;
  }

  #startFlight(flight: Flight): void {
    this.#enter({ kind: 'transaction', flight, ahead: null });
    const { lines, awaited } = this.#openingGroup(flight);
    this.#write(lines, awaited);
  }

  /** The commands that open a transaction: MAIL alone in lock-step, else the whole group. */
  #openingGroup(flight: Flight): { lines: string[]; awaited: Awaited[] } {
    const mail = `MAIL FROM:${formatPath(flight.tx.sender)}${flight.mailParams}`;
    const quitAfter = this.#options.quitAfter;
    if (!flight.pipelined || quitAfter === 'mail') return { lines: [mail], awaited: [{ verb: 'MAIL' }] };
    // RFC 2920 §3.1: MAIL, every RCPT and DATA go as one group; DATA ends the group. BDAT waits
    // for the RCPT replies instead, so that a message nobody takes is not sent at all.
    const withData = !flight.chunked && quitAfter !== 'rcpt';
    const lines = [mail];
    const awaited: Awaited[] = [{ verb: 'MAIL' }];
    for (let index = 0; index < flight.tx.recipients.length; index++) {
      lines.push(this.#rcptLine(flight, index));
      awaited.push({ verb: 'RCPT', index });
    }
    if (withData) {
      lines.push('DATA');
      awaited.push({ verb: 'DATA' });
    }
    return { lines, awaited };
  }

  /**
   * RFC 2920 §3.1: message content may open a group, so the next queued transaction (when it is
   * ready to go) is prepared now and its opening group follows the ".". Not with quitAfter, which
   * tests a server one step at a time.
   */
  #takeAhead(flight: Flight): Flight | null {
    if (!flight.pipelined || this.#options.quitAfter !== undefined) return null;
    while (this.#queue.length > 0 && !isProbe(this.#queue[0])) {
      const ahead = this.#prepare(this.#queue.shift() as AnyTransaction);
      if (ahead !== null) return ahead;
    }
    return null;
  }

  #flight(): Flight {
    if (this.#state.kind !== 'transaction') throw new Error(`a transaction reply in state ${this.#state.kind}`);
    return this.#state.flight;
  }

  #update(flight: Flight): void {
    const ahead = this.#state.kind === 'transaction' ? this.#state.ahead : null;
    this.#state = { kind: 'transaction', flight, ahead };
  }

  #onMail(reply: Reply): void {
    const flight = this.#flight();
    if (isPositive(reply)) {
      this.#update({ ...flight, mail: reply });
      if (this.#options.quitAfter === 'mail') {
        this.#stopFlight({ ...flight, mail: reply }, 'mail');
        return;
      }
      if (!flight.pipelined) this.#write([this.#rcptLine(flight, 0)], [{ verb: 'RCPT', index: 0 }]);
      return;
    }
    const failure = new ClientFailure('rejected', 'mail', 'sender rejected', reply);
    if (!flight.pipelined) {
      this.#endFlight({ ...flight, mail: reply, failure }, null, false);
      return;
    }
    // The RCPTs and DATA already sent will be answered (503, most likely); wait for them.
    this.#update({ ...flight, mail: reply, failure });
  }

  #onRcpt(reply: Reply, index: number): void {
    const flight = this.#flight();
    const mailbox = flight.rcpts[index].mailbox;
    const next = { ...flight, recipients: [...flight.recipients, { mailbox, reply, accepted: isPositive(reply) }] };
    this.#update(next);
    const last = index + 1 === flight.tx.recipients.length;
    const stopping = this.#options.quitAfter === 'rcpt';
    // Pipelined DATA was sent with the group; its reply decides (see #onData).
    if (flight.pipelined && !flight.chunked && !stopping) return;
    if (!last) {
      if (!flight.pipelined) this.#write([this.#rcptLine(flight, index + 1)], [{ verb: 'RCPT', index: index + 1 }]);
      return;
    }
    if (next.failure !== null) {
      // MAIL was refused: no transaction is open on the server.
      this.#endFlight(next, null, false);
      return;
    }
    if (stopping) {
      this.#stopFlight(next, 'rcpt');
      return;
    }
    if (!next.recipients.some((r) => r.accepted)) {
      this.#endFlight({ ...next, failure: this.#recipientsFailure(next) }, null, true);
      return;
    }
    if (!flight.chunked) {
      this.#write(['DATA'], [{ verb: 'DATA' }]);
      return;
    }
    // RFC 3030 §2: BDAT carries the message as it is (CRLF lines, no dot-stuffing) in one last chunk.
    const bytes = dotUnstuff(flight.stuffed);
    this.#write([`BDAT ${bytes.length} LAST`], [{ verb: 'BDAT' }]);
    this.#trace({ kind: 'content', bytes });
    this.#out.push(bytes);
  }

  /** RFC 5321 §3.3: with no recipient accepted there is no message to send. */
  #recipientsFailure(flight: Flight): ClientFailure {
    const rejected = flight.recipients.filter((r) => !r.accepted);
    const n = flight.tx.recipients.length;
    return new ClientFailure('rejected', 'rcpt', n === 1 ? 'recipient rejected' : `all ${n} recipients rejected`, rejected[0]?.reply);
  }

  #onData(reply: Reply): void {
    const flight = this.#flight();
    const mailOk = flight.mail !== null && isPositive(flight.mail);
    const anyAccepted = flight.recipients.some((r) => r.accepted);
    const failure = flight.failure ?? (anyAccepted ? null : this.#recipientsFailure(flight));
    if (reply.code === 354) {
      if (failure === null) {
        this.#trace({ kind: 'content', bytes: flight.stuffed });
        this.#out.push(flight.stuffed);
        const ahead = this.#takeAhead(flight);
        if (ahead === null) {
          this.#write(['.'], [{ verb: '.' }]);
          return;
        }
        const group = this.#openingGroup(ahead);
        this.#state = { kind: 'transaction', flight, ahead };
        this.#write(['.', ...group.lines], [{ verb: '.' }, ...group.awaited]);
        return;
      }
      // RFC 2920 §3.1: DATA was accepted though nothing else was; a lone "." ends it empty.
      this.#update({ ...flight, failure });
      this.#write(['.'], [{ verb: '.' }]);
      return;
    }
    this.#endFlight({ ...flight, failure: failure ?? new ClientFailure('rejected', 'data', 'DATA rejected', reply) }, null, mailOk);
  }

  #onEndOfData(reply: Reply): void {
    const flight = this.#flight();
    if (flight.failure !== null) {
      this.#endFlight(flight, null, false);
      return;
    }
    if (isPositive(reply)) {
      this.#endFlight(flight, reply, false);
      return;
    }
    this.#endFlight({ ...flight, failure: new ClientFailure('rejected', 'message', 'message rejected', reply) }, null, false);
  }

  /**
   * Reports the transaction and moves on. `reset` says a transaction may still be open on the
   * server (MAIL was accepted, the end of data was never reached): RSET closes it (RFC 5321 §4.1.1.5),
   * unless QUIT is next anyway.
   */
  #endFlight(flight: Flight, reply: Reply | null, reset: boolean): void {
    const { tx, recipients } = flight;
    if (reply !== null && flight.failure === null) this.#emitOutcome({ ok: true, transaction: tx, reply, recipients });
    else {
      const failure = flight.failure ?? new ClientFailure('internal', 'message', 'transaction ended without a verdict');
      this.#emitOutcome({ ok: false, transaction: tx, failure, recipients });
    }
    const ahead = this.#state.kind === 'transaction' ? this.#state.ahead : null;
    if (ahead !== null) {
      // Only the end of data has an ahead: the server closed the transaction itself, no RSET.
      this.#enter({ kind: 'transaction', flight: ahead, ahead: null });
      return;
    }
    if (reset && !(this.#quitRequested && this.#queue.length === 0)) {
      this.#enter({ kind: 'resetting' });
      this.#write(['RSET'], [{ verb: 'RSET' }]);
      return;
    }
    this.#enter({ kind: 'ready' });
    this.#next();
  }

  #onRset(): void {
    // Whatever RSET says, the next MAIL will tell whether the session is usable.
    this.#enter({ kind: 'ready' });
    this.#next();
  }

  #onQuit(): void {
    this.#enter({ kind: 'closed' });
  }

  // ---- probes (RCPT without DATA) ----

  /** Starts a probe; false when it cannot go (it then has its outcome already). */
  #startProbe(probe: ProbeTransaction): boolean {
    if (probe.recipients.length === 0) {
      this.#emitQueued(probe, new ClientFailure('internal', 'rcpt', 'a probe needs at least one recipient'));
      return false;
    }
    const utf8 = needsSmtpUtf8(probe.sender) || probe.recipients.some(needsSmtpUtf8) || (probe.vrfy ?? []).some(needsSmtpUtf8);
    // RFC 6531 §3.2: a non-ASCII address may only go to a server that offers SMTPUTF8.
    if (utf8 && !this.#extensions.has('SMTPUTF8')) {
      const status = clientReplies.smtpUtf8Needed();
      this.#emitQueued(probe, new ClientFailure('rejected', 'mail', status.lines.join(' '), undefined, { status }));
      return false;
    }
    const flight: ProbeFlight = {
      probe,
      pipelined: this.#extensions.has('PIPELINING'),
      mailParams: utf8 ? ' SMTPUTF8' : '',
      vrfy: [],
      mail: null,
      recipients: [],
    };
    this.#enter({ kind: 'probe', flight });
    const vrfy = probe.vrfy ?? [];
    if (vrfy.length > 0) this.#write([this.#vrfyLine(vrfy[0], flight.mailParams)], [{ verb: 'VRFY', index: 0 }]);
    else this.#probeMail(flight);
    return true;
  }

  /** RFC 5321 §3.5.1 and RFC 6531 §3.7.4.2: VRFY names the mailbox, with SMTPUTF8 when it needs it. */
  #vrfyLine(mailbox: Mailbox, params: string): string {
    return `VRFY ${formatMailbox(mailbox)}${params}`;
  }

  #probeMail(flight: ProbeFlight): void {
    const mail = `MAIL FROM:${formatPath(flight.probe.sender)}${flight.mailParams}`;
    if (!flight.pipelined) {
      this.#write([mail], [{ verb: 'MAIL' }]);
      return;
    }
    // RFC 2920 §3.1: RSET may sit inside a group, so MAIL, the RCPTs and RSET go in one write.
    const rcpts = flight.probe.recipients.map((r) => `RCPT TO:${formatPath(r)}`);
    const awaited: Awaited[] = [{ verb: 'MAIL' }, ...rcpts.map((_, index): Awaited => ({ verb: 'RCPT', index })), { verb: 'RSET' }];
    this.#write([mail, ...rcpts, 'RSET'], awaited);
  }

  #onProbeReply(flight: ProbeFlight, awaited: Awaited, reply: Reply): void {
    const { probe } = flight;
    switch (awaited.verb) {
      case 'VRFY': {
        const vrfy = [...flight.vrfy, { mailbox: probe.vrfy![awaited.index], reply, accepted: isPositive(reply) }];
        const next = { ...flight, vrfy };
        this.#enter({ kind: 'probe', flight: next });
        const more = probe.vrfy![awaited.index + 1];
        if (more !== undefined) this.#write([this.#vrfyLine(more, flight.mailParams)], [{ verb: 'VRFY', index: awaited.index + 1 }]);
        else this.#probeMail(next);
        return;
      }
      case 'MAIL': {
        const next = { ...flight, mail: reply };
        this.#enter({ kind: 'probe', flight: next });
        if (flight.pipelined) return;
        // No transaction was opened, so there is nothing to reset.
        if (!isPositive(reply)) this.#endProbe(next, null);
        else this.#write([`RCPT TO:${formatPath(probe.recipients[0])}`], [{ verb: 'RCPT', index: 0 }]);
        return;
      }
      case 'RCPT': {
        const mailbox = probe.recipients[awaited.index];
        const next = { ...flight, recipients: [...flight.recipients, { mailbox, reply, accepted: isPositive(reply) }] };
        this.#enter({ kind: 'probe', flight: next });
        if (flight.pipelined) return;
        const more = probe.recipients[awaited.index + 1];
        if (more !== undefined) this.#write([`RCPT TO:${formatPath(more)}`], [{ verb: 'RCPT', index: awaited.index + 1 }]);
        // RFC 5321 §4.1.1.5: RSET ends the transaction MAIL opened; DATA is never sent.
        else this.#write(['RSET'], [{ verb: 'RSET' }]);
        return;
      }
      case 'RSET':
        return this.#endProbe(flight, null);
      default:
        throw new Error(`a ${awaited.verb} reply during a probe`);
    }
  }

  #endProbe(flight: ProbeFlight, failure: ClientFailure | null): void {
    const { probe, vrfy, mail, recipients } = flight;
    this.#events.push({ kind: 'probed', outcome: { probe, vrfy, mail, recipients, failure } });
    if (failure !== null) return;
    this.#enter({ kind: 'ready' });
    this.#next();
  }

  // ---- stopping early (quitAfter) ----

  /** At the point `quitAfter` names: reports it and says QUIT. */
  #stopAt(stage: QuitAfter): boolean {
    if (this.#options.quitAfter !== stage) return false;
    this.#events.push({ kind: 'stopped', stage });
    const failure = new ClientFailure('internal', stage === 'connect' ? 'greeting' : stage === 'tls' ? 'starttls' : (stage as ClientStage), `the session stopped after ${stage} as asked`);
    for (const job of this.#queue) this.#emitQueued(job, failure);
    this.#queue = [];
    this.#quitRequested = true;
    this.#enter({ kind: 'quitting' });
    this.#write(['QUIT'], [{ verb: 'QUIT' }]);
    return true;
  }

  #stopFlight(flight: Flight, stage: 'mail' | 'rcpt'): void {
    const failure = new ClientFailure('internal', stage, `stopped after ${stage === 'mail' ? 'MAIL' : 'RCPT'} as asked`, flight.mail ?? undefined);
    this.#emitOutcome({ ok: false, transaction: flight.tx, failure, recipients: flight.recipients, stoppedAfter: stage });
    this.#stopAt(stage);
  }

  // ---- failure and output funnels ----

  #protocolFailure(what: string): void {
    // After QUIT every transaction has its outcome (and a failed session its one `failed` event):
    // a garbled answer to QUIT only ends the session, as silence or a close would.
    if (this.#state.kind === 'quitting') {
      this.#enter({ kind: 'closed' });
      return;
    }
    const stage = this.awaitingStage ?? 'mail';
    this.#failSession(new ClientFailure('protocol', stage, `the server sent ${what}`), false);
  }

  /**
   * Ends the session: the transaction in flight and every queued one get their outcome, then
   * QUIT is said (when the dialogue is still in step) or the connection is closed.
   */
  #failSession(failure: ClientFailure, sayQuit: boolean): void {
    if (this.#state.kind === 'transaction') {
      const { flight, ahead } = this.#state;
      this.#emitOutcome({ ok: false, transaction: flight.tx, failure, recipients: flight.recipients });
      if (ahead !== null) this.#queue.unshift(ahead.tx);
    }
    if (this.#state.kind === 'probe') this.#endProbe(this.#state.flight, failure);
    const queuedStage = SETUP_STAGES.has(failure.stage) ? failure.stage : 'mail';
    const queued = failure.withMessage(failure.message, queuedStage);
    for (const job of this.#queue) this.#emitQueued(job, queued);
    this.#queue = [];
    this.#awaiting = [];
    this.#reader.dropPartialReply();
    this.#events.push({ kind: 'failed', failure });
    if (sayQuit) {
      this.#quitRequested = true;
      this.#enter({ kind: 'quitting' });
      this.#write(['QUIT'], [{ verb: 'QUIT' }]);
      return;
    }
    this.#enter({ kind: 'closed' });
  }

  #emitOutcome(outcome: TransactionOutcome): void {
    this.#events.push({ kind: 'outcome', outcome });
  }

  /** The outcome of a job that never started. */
  #emitQueued(job: Job, failure: ClientFailure): void {
    if (isProbe(job)) this.#events.push({ kind: 'probed', outcome: { probe: job, vrfy: [], mail: null, recipients: [], failure } });
    else this.#emitOutcome({ ok: false, transaction: job, failure, recipients: [] });
  }

  /** Every state change goes through here; entering 'closed' tells the adapter to close. */
  #enter(next: State): void {
    if (next.kind === 'closed' && this.#state.kind !== 'closed') {
      this.#close = true;
      this.#awaiting = [];
      this.#events.push({ kind: 'closed' });
    }
    this.#state = next;
  }

  /** Writes a line that carries a secret; the transcript gets `shown` instead. */
  #writeSecret(line: string, shown: string, awaited: Awaited): void {
    this.#trace({ kind: 'line', dir: 'C', text: shown, secret: shown !== line });
    this.#out.push(`${line}\r\n`);
    this.#awaiting.push(awaited);
  }

  /** Writes command lines as one chunk and records which replies they wait for. */
  #write(lines: readonly string[], awaited: readonly Awaited[]): void {
    for (const text of lines) this.#trace({ kind: 'line', dir: 'C', text });
    this.#out.push(lines.map((l) => `${l}\r\n`).join(''));
    this.#awaiting.push(...awaited);
  }

  #trace(entry: TranscriptEntry): void {
    this.#events.push({ kind: 'transcript', entry });
  }

  #step(): ClientStep {
    const step: ClientStep = { out: this.#out, events: this.#events, close: this.#close };
    this.#out = [];
    this.#events = [];
    this.#close = false;
    return step;
  }
}
