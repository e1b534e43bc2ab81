/**
 * @module The server side of an SMTP session as a pure state machine.
 * Rule 1: bytes and the time come in, reply text and events go out; nothing here touches a
 *         socket, a file or a clock (STYLE.md convention 1).
 * Rule 2: every verb is a row of COMMANDS: the states it is allowed in, then its handler.
 *         Sequence errors (503) come from the table, never from the handlers.
 * Rule 3: every state change goes through enter(); a transaction is an Envelope value that
 *         MAIL creates and RSET, HELO/EHLO and the end of DATA drop.
 */
import { formatMailbox, normalizeDomain, parsePath, type Mailbox } from './address.ts';
import { parseCommand, parseParameters, parsePathArgument, type Parameter, type Verb } from './command.ts';
import { DataReceiver, type DataViolation } from './data.ts';
import { formatReceived, withRecipient, type Envelope } from './envelope.ts';
import { buildEhloKeywords } from './extensions.ts';
import type { Limits } from './limits.ts';
import { replies } from './replies.ts';
import { formatReply, type Reply } from './reply.ts';

/** What one server session needs to know; built once per connection by the adapter. */
export interface ServerConfig {
  readonly hostname: string;
  readonly limits: Limits;
  /** Domains whose mail is kept here; null accepts every domain (the development catch-all). */
  readonly localDomains: ReadonlySet<string> | null;
  /** This client may relay to non-local domains (trusted network or authenticated). */
  readonly relayAllowed: boolean;
  readonly clientAddress: string;
  /** Message ids; given so that tests are deterministic. */
  readonly newId: () => string;
}

export type SessionEvent =
  /** A complete message to make durable; answer with resolve(requestId, …). */
  | {
      readonly kind: 'message';
      readonly requestId: number;
      readonly id: string;
      readonly envelope: Envelope;
      /** Received header plus the message, dot-stuffed, CRLF lines, without the final ".". */
      readonly stuffed: Uint8Array;
      readonly size: number;
    }
  /** A command answered with 4xx or 5xx, for the log. */
  | { readonly kind: 'rejected'; readonly command: string; readonly reply: Reply }
  | { readonly kind: 'transition'; readonly from: StateKind; readonly to: StateKind };

/** What the adapter must do after a call: write `out`, handle `events`, then close if asked. */
export interface Step {
  readonly out: string;
  readonly events: readonly SessionEvent[];
  readonly close: boolean;
}

export type CommitOutcome = { readonly ok: true } | { readonly ok: false; readonly reply: Reply };

type State =
  | { readonly kind: 'connected' }
  | { readonly kind: 'ready' }
  | { readonly kind: 'mail'; readonly tx: Envelope }
  | { readonly kind: 'data'; readonly tx: Envelope; readonly receiver: DataReceiver }
  | { readonly kind: 'committing'; readonly requestId: number; readonly id: string }
  | { readonly kind: 'closed' };

export type StateKind = State['kind'];

/** The session as the command handlers see it. */
interface Turn {
  readonly config: ServerConfig;
  readonly state: State;
  readonly now: number;
  heloName: string;
  esmtp: boolean;
  enter(next: State): void;
  reply(r: Reply, command?: string): void;
  close(): void;
}

interface CommandSpec {
  /** States in which the verb may be used; elsewhere the table answers 503 with `hint`. */
  readonly allowed: readonly StateKind[];
  readonly hint: string;
  readonly apply: (turn: Turn, args: string, line: string) => void;
}

const ANY: readonly StateKind[] = ['connected', 'ready', 'mail'];
const UTF8 = new TextDecoder('utf-8');
const ENCODER = new TextEncoder();
const LF = 10;
const CR = 13;

function heloCommand(verb: 'HELO' | 'EHLO'): CommandSpec {
  return {
    allowed: ANY,
    hint: '',
    apply(turn, args) {
      const name = args.trim();
      // RFC 5321 §4.1.1.1: the argument is a domain or an address literal.
      if (name === '' || /\s/.test(name)) return turn.reply(replies.heloNeedsDomain(verb), verb);
      turn.heloName = name;
      turn.esmtp = verb === 'EHLO';
      turn.enter({ kind: 'ready' });
      const host = turn.config.hostname;
      if (verb === 'HELO') return turn.reply(replies.helo(host, name));
      const keywords = buildEhloKeywords({
        maxMessageBytes: turn.config.limits.maxMessageBytes,
        startTls: false,
        authMechanisms: [],
      });
      turn.reply(replies.ehlo(host, name, keywords));
    },
  };
}

/** MAIL parameters this server understands (RFC 1870, RFC 6152, RFC 6531). */
function readMailParams(
  turn: Turn,
  params: readonly Parameter[],
): { ok: true; size: number | null; body: Envelope['body']; utf8: boolean } | { ok: false; reply: Reply } {
  let size: number | null = null;
  let body: Envelope['body'] = '7BIT';
  let utf8 = false;
  for (const p of params) {
    if (!turn.esmtp) return { ok: false, reply: replies.unknownParameter(p.name) };
    switch (p.name) {
      case 'SIZE':
        if (p.value === null || !/^\d{1,20}$/.test(p.value)) return { ok: false, reply: replies.badParameter('SIZE needs a number of octets') };
        size = Number(p.value);
        // RFC 1870 §6.2: a declared size above the fixed maximum is refused at MAIL.
        if (size > turn.config.limits.maxMessageBytes) return { ok: false, reply: replies.sizeExceeded(turn.config.limits.maxMessageBytes) };
        break;
      case 'BODY': {
        const value = (p.value ?? '').toUpperCase();
        if (value !== '7BIT' && value !== '8BITMIME') return { ok: false, reply: replies.badParameter('BODY must be 7BIT or 8BITMIME') };
        body = value;
        break;
      }
      case 'SMTPUTF8':
        if (p.value !== null) return { ok: false, reply: replies.badParameter('SMTPUTF8 takes no value') };
        utf8 = true;
        break;
      default:
        return { ok: false, reply: replies.unknownParameter(p.name) };
    }
  }
  return { ok: true, size, body, utf8 };
}

function isLocalDomain(config: ServerConfig, domain: string): boolean {
  return config.localDomains === null || config.localDomains.has(normalizeDomain(domain));
}

/** RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted. */
function postmaster(path: string, hostname: string): Mailbox | null {
  return /^<postmaster>$/i.test(path.split(' ')[0]) ? { local: 'postmaster', domain: hostname } : null;
}

const COMMANDS = {
  HELO: heloCommand('HELO'),
  EHLO: heloCommand('EHLO'),
  MAIL: {
    allowed: ['ready'],
    hint: 'send EHLO or HELO first, and only one MAIL per transaction',
    apply(turn, args) {
      const arg = parsePathArgument(args, 'FROM');
      if (!arg.ok) return turn.reply(replies.syntax('MAIL FROM:<address> [parameters]'), 'MAIL');
      const path = parsePath(arg.path, { allowNull: true, utf8: true });
      if (!path.ok) return turn.reply(replies.badSenderSyntax(path.why), `MAIL ${args}`);
      const parsed = parseParameters(path.rest);
      if (!parsed.ok) return turn.reply(replies.badParameter(`Cannot read parameter "${parsed.bad}"`), `MAIL ${args}`);
      const params = readMailParams(turn, parsed.params);
      if (!params.ok) return turn.reply(params.reply, `MAIL ${args}`);
      if (path.utf8 && !params.utf8) return turn.reply(replies.needsSmtpUtf8(), `MAIL ${args}`);
      const tx: Envelope = {
        sender: path.mailbox,
        mailParams: parsed.params,
        recipients: [],
        utf8: params.utf8,
        body: params.body,
        declaredSize: params.size,
      };
      turn.enter({ kind: 'mail', tx });
      turn.reply(replies.senderOk());
    },
  },
  RCPT: {
    allowed: ['mail'],
    hint: 'send MAIL first',
    apply(turn, args) {
      if (turn.state.kind !== 'mail') return;
      const tx = turn.state.tx;
      const arg = parsePathArgument(args, 'TO');
      if (!arg.ok) return turn.reply(replies.syntax('RCPT TO:<address> [parameters]'), 'RCPT');
      let mailbox = postmaster(arg.path, turn.config.hostname);
      let rest = arg.path.slice(arg.path.indexOf('>') + 1).trim();
      if (mailbox === null) {
        const path = parsePath(arg.path, { allowNull: false, utf8: true });
        if (!path.ok) return turn.reply(replies.badRecipientSyntax(path.why), `RCPT ${args}`);
        if (path.utf8 && !tx.utf8) return turn.reply(replies.needsSmtpUtf8(), `RCPT ${args}`);
        mailbox = path.mailbox;
        rest = path.rest;
      }
      if (mailbox === null) return;
      const parsed = parseParameters(rest);
      if (!parsed.ok) return turn.reply(replies.badParameter(`Cannot read parameter "${parsed.bad}"`), `RCPT ${args}`);
      if (parsed.params.length > 0) return turn.reply(replies.unknownParameter(parsed.params[0].name), `RCPT ${args}`);
      if (tx.recipients.length >= turn.config.limits.maxRecipients) return turn.reply(replies.tooManyRecipients(), `RCPT ${args}`);
      const local = isLocalDomain(turn.config, mailbox.domain);
      // RFC 5321 §3.6.2: no relaying for clients that are neither trusted nor authenticated.
      if (!local && !turn.config.relayAllowed) return turn.reply(replies.relayDenied(mailbox.domain), `RCPT ${args}`);
      turn.enter({ kind: 'mail', tx: withRecipient(tx, { mailbox, params: parsed.params, local }) });
      turn.reply(replies.recipientOk());
    },
  },
  DATA: {
    allowed: ['mail'],
    hint: 'send MAIL and RCPT first',
    apply(turn, args) {
      if (turn.state.kind !== 'mail') return;
      if (args.trim() !== '') return turn.reply(replies.syntax('DATA (no arguments)'), 'DATA');
      // RFC 5321 §3.3: DATA without an accepted recipient is a bad sequence.
      if (turn.state.tx.recipients.length === 0) return turn.reply(replies.badSequence('no valid recipients'), 'DATA');
      const { maxMessageBytes, textLineBytes } = turn.config.limits;
      turn.enter({ kind: 'data', tx: turn.state.tx, receiver: new DataReceiver(maxMessageBytes, textLineBytes) });
      turn.reply(replies.startData());
    },
  },
  RSET: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      // RFC 5321 §4.1.1.5: RSET drops the transaction but keeps the greeting.
      turn.enter({ kind: turn.state.kind === 'connected' ? 'connected' : 'ready' });
      turn.reply(replies.resetOk());
    },
  },
  NOOP: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      turn.reply(replies.noopOk());
    },
  },
  QUIT: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      turn.reply(replies.closing(turn.config.hostname));
      turn.close();
    },
  },
  VRFY: {
    allowed: ANY,
    hint: '',
    apply(turn, args) {
      if (args.trim() === '') return turn.reply(replies.syntax('VRFY user-or-address'), 'VRFY');
      // RFC 5321 §3.5.3: 252 neither confirms nor denies, and does not help harvest addresses.
      turn.reply(replies.cannotVerify());
    },
  },
  EXPN: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      // RFC 5321 §3.5.2: EXPN is not offered, so it is not advertised either.
      turn.reply(replies.expnNotImplemented(), 'EXPN');
    },
  },
  HELP: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      turn.reply(replies.help());
    },
  },
  STARTTLS: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      turn.reply(replies.notImplemented('STARTTLS'), 'STARTTLS');
    },
  },
  AUTH: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      turn.reply(replies.notImplemented('AUTH'), 'AUTH');
    },
  },
  BDAT: {
    allowed: ANY,
    hint: '',
    apply(turn) {
      turn.reply(replies.notImplemented('BDAT'), 'BDAT');
    },
  },
} as const satisfies Record<Verb, CommandSpec>;

function violationReply(v: DataViolation, limits: Limits): Reply {
  switch (v) {
    case 'bare-line-ending':
      return replies.bareLineEnding();
    case 'line-too-long':
      return replies.textLineTooLong();
    case 'too-big':
      return replies.sizeExceeded(limits.maxMessageBytes);
    default: {
      const never: never = v;
      return never;
    }
  }
}

/** Printable, bounded rendering of a client's command for logs. */
function summarize(line: string): string {
  const clean = line.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?');
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

/** One SMTP server session (RFC 5321), driven by an adapter that owns the socket and the clock. */
export class ServerSession {
  readonly #config: ServerConfig;
  #state: State = { kind: 'connected' };
  #heloName = '';
  #esmtp = false;
  #out = '';
  #events: SessionEvent[] = [];
  #close = false;
  #pending: Uint8Array | null = null;
  #discardingLongLine = false;
  #errors = 0;
  #unknown = 0;
  #lastActivity: number;
  #nextRequest = 1;
  #draining = false;
  readonly #trace: boolean;

  constructor(config: ServerConfig, now: number, options: { trace?: boolean } = {}) {
    this.#config = config;
    this.#lastActivity = now;
    this.#trace = options.trace ?? false;
  }

  get state(): StateKind {
    return this.#state.kind;
  }

  /** The time at which tick() will time the session out, or Infinity while a commit is pending. */
  get deadline(): number {
    const { commandTimeoutMs, dataTimeoutMs } = this.#config.limits;
    switch (this.#state.kind) {
      case 'committing':
      case 'closed':
        return Infinity;
      case 'data':
        return this.#lastActivity + dataTimeoutMs;
      case 'connected':
      case 'ready':
      case 'mail':
        return this.#lastActivity + commandTimeoutMs;
      default: {
        const never: never = this.#state;
        return never;
      }
    }
  }

  /** RFC 5321 §3.1: the 220 greeting, sent as soon as the connection is open. */
  greet(now: number): Step {
    this.#lastActivity = now;
    this.#write(replies.greeting(this.#config.hostname));
    return this.#flush();
  }

  /** Feeds bytes from the client. */
  receive(bytes: Uint8Array, now: number): Step {
    this.#lastActivity = now;
    if (this.#state.kind === 'closed') return this.#flush();
    let input = bytes;
    if (this.#pending) {
      const joined = new Uint8Array(this.#pending.length + bytes.length);
      joined.set(this.#pending);
      joined.set(bytes, this.#pending.length);
      input = joined;
      this.#pending = null;
    }
    this.#process(input, now);
    return this.#flush();
  }

  /** Answers a 'message' event once the spool has (or has not) made the message durable. */
  resolve(requestId: number, outcome: CommitOutcome, now: number): Step {
    const state = this.#state;
    if (state.kind !== 'committing' || state.requestId !== requestId) return this.#flush();
    this.#lastActivity = now;
    this.#enter({ kind: 'ready' });
    if (outcome.ok) this.#write(replies.queued(state.id));
    else this.#reply(outcome.reply, 'DATA');
    const pending = this.#pending;
    this.#pending = null;
    if (pending && !this.#close) this.#process(pending, now);
    return this.#flush();
  }

  /** Checks the idle and data timeouts (RFC 5321 §4.5.3.2). */
  tick(now: number): Step {
    if (now >= this.deadline) {
      this.#write(this.#state.kind === 'data' ? replies.dataTimeout() : replies.idleTimeout());
      this.#closeNow();
    }
    return this.#flush();
  }

  /**
   * The server is stopping: an idle session is closed with 421 now; one inside a transaction
   * may finish it, and is closed with 421 right after.
   */
  shutdown(): Step {
    this.#draining = true;
    this.#closeIfDraining();
    return this.#flush();
  }

  #process(input: Uint8Array, now: number): void {
    const limit = this.#config.limits.commandLineBytes;
    let i = 0;
    while (i < input.length && !this.#close) {
      const state = this.#state;
      if (state.kind === 'data') {
        const r = state.receiver.push(input, i);
        i += r.consumed;
        if (r.done) this.#endOfData(state.tx, state.receiver, now);
        continue;
      }
      if (state.kind === 'committing') {
        // RFC 2920: commands pipelined behind DATA wait for its reply.
        this.#pending = input.slice(i);
        return;
      }
      if (state.kind === 'closed') return;
      const lf = input.indexOf(LF, i);
      if (this.#discardingLongLine) {
        if (lf < 0) return;
        this.#discardingLongLine = false;
        this.#reply(replies.lineTooLong(), '(line too long)');
        i = lf + 1;
        continue;
      }
      if (lf < 0) {
        if (input.length - i > limit) this.#discardingLongLine = true;
        else this.#pending = input.slice(i);
        return;
      }
      if (lf + 1 - i > limit) {
        this.#reply(replies.lineTooLong(), '(line too long)');
        i = lf + 1;
        continue;
      }
      const end = lf > i && input[lf - 1] === CR ? lf - 1 : lf;
      const line = UTF8.decode(input.subarray(i, end));
      i = lf + 1;
      this.#command(line, now);
    }
    this.#closeIfDraining();
  }

  #command(line: string, now: number): void {
    const parsed = parseCommand(line);
    switch (parsed.kind) {
      case 'http':
        this.#reply(replies.httpOnSmtp(), summarize(line));
        this.#closeNow();
        return;
      case 'unknown':
        this.#unknown++;
        this.#reply(replies.unknownCommand(), summarize(line));
        if (this.#unknown > this.#config.limits.maxUnknownCommands && !this.#close) {
          this.#write(replies.tooManyErrors());
          this.#closeNow();
        }
        return;
      case 'command': {
        const spec: CommandSpec = COMMANDS[parsed.verb];
        if (!spec.allowed.includes(this.#state.kind)) {
          this.#reply(replies.badSequence(spec.hint), summarize(line));
          return;
        }
        spec.apply(this.#turn(now), parsed.args, line);
        return;
      }
      default: {
        const never: never = parsed;
        return never;
      }
    }
  }

  #endOfData(tx: Envelope, receiver: DataReceiver, now: number): void {
    const result = receiver.result();
    if (result.violation) {
      this.#enter({ kind: 'ready' });
      this.#reply(violationReply(result.violation, this.#config.limits), 'DATA');
      return;
    }
    const id = this.#config.newId();
    const protocol = tx.utf8 ? 'UTF8SMTP' : this.#esmtp ? 'ESMTP' : 'SMTP';
    const trace = formatReceived(
      {
        heloName: this.#heloName,
        clientAddress: this.#config.clientAddress,
        serverName: this.#config.hostname,
        protocol,
        id,
        timeMs: now,
      },
      tx,
    );
    const header = ENCODER.encode(trace);
    const stuffed = new Uint8Array(header.length + result.stuffed.length);
    stuffed.set(header);
    stuffed.set(result.stuffed, header.length);
    const requestId = this.#nextRequest++;
    this.#enter({ kind: 'committing', requestId, id });
    this.#events.push({ kind: 'message', requestId, id, envelope: tx, stuffed, size: result.size + header.length });
  }

  #turn(now: number): Turn {
    const session = this;
    return {
      config: this.#config,
      now,
      get state() {
        return session.#state;
      },
      get heloName() {
        return session.#heloName;
      },
      set heloName(v: string) {
        session.#heloName = v;
      },
      get esmtp() {
        return session.#esmtp;
      },
      set esmtp(v: boolean) {
        session.#esmtp = v;
      },
      enter: (next) => this.#enter(next),
      reply: (r, command) => this.#reply(r, command),
      close: () => this.#closeNow(),
    };
  }

  #enter(next: State): void {
    if (this.#trace && next.kind !== this.#state.kind) {
      this.#events.push({ kind: 'transition', from: this.#state.kind, to: next.kind });
    }
    this.#state = next;
  }

  #write(r: Reply): void {
    this.#out += formatReply(r);
  }

  /** The reply funnel: writes, counts errors (RFC 5321 §4.3.2 leaves the cap to us) and reports rejections. */
  #reply(r: Reply, command?: string): void {
    this.#write(r);
    if (r.code < 400) return;
    this.#events.push({ kind: 'rejected', command: command ?? '', reply: r });
    this.#errors++;
    if (this.#errors > this.#config.limits.maxErrors && !this.#close) {
      this.#write(replies.tooManyErrors());
      this.#closeNow();
    }
  }

  #closeNow(): void {
    this.#close = true;
    this.#pending = null;
    this.#enter({ kind: 'closed' });
  }

  #closeIfDraining(): void {
    const kind = this.#state.kind;
    if (this.#draining && !this.#close && (kind === 'connected' || kind === 'ready')) {
      this.#write(replies.serviceUnavailable(this.#config.hostname));
      this.#closeNow();
    }
  }

  #flush(): Step {
    const step: Step = { out: this.#out, events: this.#events, close: this.#close };
    this.#out = '';
    if (this.#events.length > 0) this.#events = [];
    return step;
  }
}

/** The address the log and the spool index use for a mailbox (or "<>" for the null sender). */
export function mailboxKey(mailbox: Mailbox | null): string {
  return mailbox ? formatMailbox(mailbox) : '<>';
}
