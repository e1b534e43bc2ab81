/**
 * @module The server side of an SMTP session as a pure state machine.
 * Rule 1: bytes and the time come in, reply text and events go out; nothing here touches a
 *         socket, a file or a clock (STYLE.md convention 1).
 * Rule 2: every verb is a row of COMMANDS: the states it is allowed in, then its handler.
 *         Sequence errors (503) come from the table, never from the handlers.
 * Rule 3: every state change goes through enter(); a transaction is an Envelope value that
 *         MAIL creates and RSET, HELO/EHLO and the end of DATA drop.
 */
import { MAX_DOMAIN_OCTETS, formatMailbox, normalizeDomain, parseMailbox, parsePath, type Mailbox } from './address.ts';
import { decodeXtext, parseCommand, parseParameters, parsePathArgument, type Parameter, type Verb } from './command.ts';
import { DataReceiver, checkText, concat, dotStuff, type DataViolation } from './data.ts';
import { formatReceived, withRecipient, type Envelope } from './envelope.ts';
import { buildEhloKeywords, type AuthMechanism } from './extensions.ts';
import type { FaultAction, FaultStage } from './faults.ts';
import type { Limits } from './limits.ts';
import type { ProtocolSession, ProtocolStep, TlsInfo } from './protocol-session.ts';
import { replies } from './replies.ts';
import { LOGIN_PROMPTS, decodeSaslText, parsePlainMessage } from './sasl.ts';
import { blameOf, formatReply, type Reply } from './reply.ts';

export type { TlsInfo } from './protocol-session.ts';

/** What one server session needs to know; built once per connection by the adapter. */
export interface ServerConfig {
  readonly hostname: string;
  readonly limits: Limits;
  /** Domains whose mail is kept here; null accepts every domain (the development catch-all). */
  readonly localDomains: ReadonlySet<string> | null;
  /** A relay (MX or smarthost) is configured, so non-local recipients can be accepted at all. */
  readonly relay: boolean;
  /** The client is in a trusted network and may relay without authenticating. */
  readonly trusted: boolean;
  /** --relay-domain: a domain whose mail is accepted from anyone and forwarded (backup MX). */
  readonly relayDomain?: (domain: string) => boolean;
  /**
   * Asked for a recipient that would be relayed: a refusal known now without waiting (a null MX
   * already in the resolver's cache, a local part a backup MX does not accept), or null.
   */
  readonly refuseRelay?: (mailbox: Mailbox) => Reply | null;
  /** RFC 5321 §6.3: more Received fields than this is a loop (554 5.4.6); null: no check. */
  readonly maxHops?: number | null;
  readonly clientAddress: string;
  /** 'starttls': STARTTLS is offered; 'implicit': the connection is TLS from its first byte. */
  readonly tls: 'none' | 'starttls' | 'implicit';
  /** MAIL is refused until TLS is in force (RFC 3207 §4). */
  readonly requireTls: boolean;
  /** AUTH mechanisms offered, and whether they may be used without TLS. */
  readonly auth: { readonly mechanisms: readonly AuthMechanism[]; readonly allowInsecure: boolean } | null;
  /**
   * Where "RCPT TO:<Postmaster>" (no domain) is delivered: always a local mailbox, never
   * relayed (RFC 5321 §4.5.1), and recorded as this address so that it is an inbox.
   */
  readonly postmaster: Mailbox;
  /** Message ids; given so that tests are deterministic. */
  readonly newId: () => string;
  /**
   * serve --faults: asked at each stage (with the address for mail and rcpt: "local@domain", or
   * "" for the null sender) whether a scripted fault replaces the normal handling.
   */
  readonly faults?: (stage: FaultStage, address: string | null) => FaultAction | null;
}

/** The fault stage of each verb the fault rules name; end-of-data is asked at the end of a message. */
const FAULT_STAGE_OF: Partial<Record<Verb, FaultStage>> = {
  HELO: 'ehlo',
  EHLO: 'ehlo',
  STARTTLS: 'starttls',
  AUTH: 'auth',
  MAIL: 'mail',
  RCPT: 'rcpt',
  DATA: 'data',
  QUIT: 'quit',
};

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
      /** The name the client gave in HELO or EHLO. */
      readonly heloName: string;
    }
  /** Credentials to check; answer with resolveAuth(requestId, …). */
  | {
      readonly kind: 'auth';
      readonly requestId: number;
      readonly mechanism: AuthMechanism;
      /** The authorization identity (RFC 4616): empty when the client acts as itself. */
      readonly authzid: string;
      readonly username: string;
      readonly password: string;
    }
  | { readonly kind: 'authenticated'; readonly username: string }
  /** A command answered with 4xx or 5xx, for the log. */
  | { readonly kind: 'rejected'; readonly command: string; readonly reply: Reply }
  | { readonly kind: 'transition'; readonly from: StateKind; readonly to: StateKind };

/** A step of the SMTP session: its output is always text (replies). */
export interface Step extends ProtocolStep<SessionEvent> {
  readonly out: string;
}

export type CommitOutcome = { readonly ok: true } | { readonly ok: false; readonly reply: Reply };
export type AuthOutcome = { readonly ok: true; readonly user: string } | { readonly ok: false; readonly reply: Reply };

/** A message arriving in BDAT chunks (RFC 3030). */
interface ChunkedBody {
  readonly chunks: Uint8Array[];
  size: number;
  tooBig: boolean;
}

type State =
  | { readonly kind: 'connected' }
  | { readonly kind: 'ready' }
  | { readonly kind: 'mail'; readonly tx: Envelope; readonly chunked: ChunkedBody | null }
  | { readonly kind: 'data'; readonly tx: Envelope; readonly receiver: DataReceiver }
  | { readonly kind: 'bdat'; readonly tx: Envelope; readonly chunked: ChunkedBody; remaining: number; readonly last: boolean }
  /** A BDAT chunk that cannot be used is still read, then answered with `reply` (RFC 3030 §3). */
  | { readonly kind: 'bdat-discard'; remaining: number; readonly reply: Reply; readonly after: State }
  | { readonly kind: 'committing'; readonly requestId: number; readonly id: string }
  | { readonly kind: 'auth'; readonly mechanism: AuthMechanism; readonly step: 'plain' | 'username' | 'password'; readonly username: string }
  | { readonly kind: 'authenticating'; readonly requestId: number }
  | { readonly kind: 'tls-handshake' }
  /** A scripted fault: nothing is answered until the client leaves or the idle timeout. */
  | { readonly kind: 'silent' }
  | { readonly kind: 'closed' };

export type StateKind = State['kind'];

/** The session as the command handlers see it. */
interface Turn {
  readonly config: ServerConfig;
  readonly state: State;
  heloName: string;
  esmtp: boolean;
  readonly tls: TlsInfo | null;
  readonly user: string | null;
  enter(next: State): void;
  /** MAIL: a new transaction starts, with its own allowance of limit replies. */
  begin(tx: Envelope): void;
  reply(r: Reply, command?: string): void;
  close(): void;
  /** After this reply the adapter starts TLS; bytes already received behind it are dropped. */
  startTls(): void;
  /** Asks the host to check credentials. */
  authenticate(mechanism: AuthMechanism, authzid: string, username: string, password: string): void;
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
// RFC 4954 §4: a response in the AUTH exchange is base64 text that servers must take up to 12288
// octets long; the CRLF comes on top.
const AUTH_LINE_BYTES = 12288 + 2;
// Errors after which every further error reply is delayed, and the step and cap of that delay.
const DELAY_AFTER_ERRORS = 3;
const DELAY_STEP_MS = 250;
const DELAY_MAX_MS = 5000;

/** The AUTH mechanisms that may be used on this connection now, or why none may. */
function usableMechanisms(config: ServerConfig, tls: TlsInfo | null): readonly AuthMechanism[] {
  if (!config.auth) return [];
  if (!tls && !config.auth.allowInsecure) return [];
  return config.auth.mechanisms;
}

function heloCommand(verb: 'HELO' | 'EHLO'): CommandSpec {
  return {
    allowed: ANY,
    hint: '',
    apply(turn, args) {
      const name = args.trim();
      // RFC 5321 §4.1.1.1: the argument is a domain or an address literal, and §4.5.3.1.2: a
      // domain is at most 255 octets. A longer name would make the Received line of every
      // message it carries longer than the 998 octets of RFC 5322 §2.1.1.
      if (name === '' || /\s/.test(name) || ENCODER.encode(name).length > MAX_DOMAIN_OCTETS) return turn.reply(replies.heloNeedsDomain(verb), verb);
      turn.heloName = name;
      turn.esmtp = verb === 'EHLO';
      turn.enter({ kind: 'ready' });
      const host = turn.config.hostname;
      if (verb === 'HELO') return turn.reply(replies.helo(host, name));
      const keywords = buildEhloKeywords({
        maxMessageBytes: turn.config.limits.maxMessageBytes,
        startTls: turn.config.tls === 'starttls' && turn.tls === null,
        authMechanisms: turn.user === null ? usableMechanisms(turn.config, turn.tls) : [],
      });
      turn.reply(replies.ehlo(host, name, keywords));
    },
  };
}

type MailParams = { size: number | null; body: Envelope['body']; utf8: boolean };

/** MAIL parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID (RFC 3461), AUTH (RFC 4954 §5). */
function readMailParams(turn: Turn, params: readonly Parameter[]): { ok: true; value: MailParams } | { ok: false; reply: Reply } {
  const value: MailParams = { size: null, body: '7BIT', utf8: false };
  const seen = new Set<string>();
  for (const p of params) {
    if (!turn.esmtp) return { ok: false, reply: replies.unknownParameter(p.name) };
    if (seen.has(p.name)) return { ok: false, reply: replies.badParameter(`${p.name} given twice`) };
    seen.add(p.name);
    switch (p.name) {
      case 'SIZE':
        if (p.value === null || !/^\d{1,20}$/.test(p.value)) return { ok: false, reply: replies.badParameter('SIZE needs a number of octets') };
        value.size = Number(p.value);
        // RFC 1870 §6.2: a declared size above the fixed maximum is refused at MAIL.
        if (value.size > turn.config.limits.maxMessageBytes) return { ok: false, reply: replies.sizeExceeded(turn.config.limits.maxMessageBytes) };
        break;
      case 'BODY': {
        const body = (p.value ?? '').toUpperCase();
        if (body !== '7BIT' && body !== '8BITMIME') return { ok: false, reply: replies.badParameter('BODY must be 7BIT or 8BITMIME') };
        value.body = body;
        break;
      }
      case 'SMTPUTF8':
        if (p.value !== null) return { ok: false, reply: replies.badParameter('SMTPUTF8 takes no value') };
        value.utf8 = true;
        break;
      case 'RET':
        if (!/^(FULL|HDRS)$/i.test(p.value ?? '')) return { ok: false, reply: replies.badParameter('RET must be FULL or HDRS (RFC 3461 §4.3)') };
        break;
      case 'ENVID': {
        const decoded = p.value === null ? null : decodeXtext(p.value);
        if (decoded === null || decoded.length > 100) return { ok: false, reply: replies.badParameter('ENVID must be xtext of at most 100 characters (RFC 3461 §4.4)') };
        break;
      }
      case 'AUTH':
        // RFC 4954 §5: the submitter's identity; accepted only where AUTH is offered, and not trusted.
        if (!turn.config.auth || p.value === null || (p.value !== '<>' && decodeXtext(p.value) === null)) {
          return { ok: false, reply: replies.unknownParameter(p.name) };
        }
        break;
      default:
        return { ok: false, reply: replies.unknownParameter(p.name) };
    }
  }
  return { ok: true, value };
}

const NOTIFY = /^(NEVER|(SUCCESS|FAILURE|DELAY)(,(SUCCESS|FAILURE|DELAY))*)$/i;

/** RCPT parameters: NOTIFY and ORCPT (RFC 3461 §4.1, §4.2). */
function checkRcptParams(turn: Turn, params: readonly Parameter[]): Reply | null {
  const seen = new Set<string>();
  for (const p of params) {
    if (!turn.esmtp) return replies.unknownParameter(p.name);
    if (seen.has(p.name)) return replies.badParameter(`${p.name} given twice`);
    seen.add(p.name);
    switch (p.name) {
      case 'NOTIFY':
        if (!NOTIFY.test(p.value ?? '')) return replies.badParameter('NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1)');
        break;
      case 'ORCPT': {
        const m = /^([A-Za-z0-9-]+);(.+)$/.exec(p.value ?? '');
        if (!m || decodeXtext(m[2]) === null) return replies.badParameter('ORCPT must be addr-type;xtext (RFC 3461 §4.2)');
        break;
      }
      default:
        return replies.unknownParameter(p.name);
    }
  }
  return null;
}

function isLocalDomain(config: ServerConfig, domain: string): boolean {
  return config.localDomains === null || config.localDomains.has(normalizeDomain(domain));
}

/** RFC 5321 §4.5.1 and §4.1.1.3: "<Postmaster>" without a domain, in any letter case, must be accepted. */
function isBarePostmaster(path: string): boolean {
  return /^<postmaster>$/i.test(path.split(' ')[0]);
}

/** RFC 4616: message = [authzid] NUL authcid NUL passwd (read by core/sasl.ts). */
function readPlain(turn: Turn, response: string): void {
  const decoded = decodeSaslText(response);
  if (decoded === null) return turn.reply(replies.authBadBase64(), 'AUTH PLAIN');
  const plain = parsePlainMessage(decoded);
  if (plain === null) return turn.reply(replies.authFailed(), 'AUTH PLAIN');
  turn.authenticate('PLAIN', plain.authzid, plain.authcid, plain.password);
}

const COMMANDS = {
  HELO: heloCommand('HELO'),
  EHLO: heloCommand('EHLO'),
  STARTTLS: {
    allowed: ['connected', 'ready'],
    hint: 'STARTTLS is not allowed inside a mail transaction',
    apply(turn, args) {
      if (turn.tls !== null) return turn.reply(replies.tlsAlreadyActive(), 'STARTTLS');
      if (turn.config.tls !== 'starttls') return turn.reply(replies.notImplemented('STARTTLS'), 'STARTTLS');
      if (args.trim() !== '') return turn.reply(replies.syntax('STARTTLS (no arguments)'), 'STARTTLS');
      turn.reply(replies.readyToStartTls());
      turn.startTls();
    },
  },
  AUTH: {
    allowed: ['ready', 'mail'],
    hint: 'send EHLO first',
    apply(turn, args) {
      if (turn.state.kind === 'mail') return turn.reply(replies.authInTransaction(), 'AUTH');
      if (turn.user !== null) return turn.reply(replies.authAlready(), 'AUTH');
      if (!turn.config.auth) return turn.reply(replies.authNotOffered(), 'AUTH');
      const [name = '', initial] = args.trim().split(/ +/);
      const mechanism = name.toUpperCase();
      if (mechanism !== 'PLAIN' && mechanism !== 'LOGIN') return turn.reply(replies.authUnknownMechanism(name), 'AUTH');
      if (!turn.config.auth.mechanisms.includes(mechanism)) return turn.reply(replies.authUnknownMechanism(name), 'AUTH');
      if (usableMechanisms(turn.config, turn.tls).length === 0) return turn.reply(replies.authNeedsTls(), 'AUTH');
      if (initial === '*') return turn.reply(replies.authCancelled(), 'AUTH');
      if (mechanism === 'PLAIN') {
        if (initial === undefined) {
          turn.enter({ kind: 'auth', mechanism, step: 'plain', username: '' });
          return turn.reply(replies.authChallenge(''));
        }
        return readPlain(turn, initial);
      }
      if (initial === undefined) {
        turn.enter({ kind: 'auth', mechanism, step: 'username', username: '' });
        return turn.reply(replies.authChallenge(LOGIN_PROMPTS.username));
      }
      const username = decodeSaslText(initial);
      if (username === null) return turn.reply(replies.authBadBase64(), 'AUTH LOGIN');
      turn.enter({ kind: 'auth', mechanism, step: 'password', username });
      turn.reply(replies.authChallenge(LOGIN_PROMPTS.password));
    },
  },
  MAIL: {
    allowed: ['ready'],
    hint: 'send EHLO or HELO first, and only one MAIL per transaction',
    apply(turn, args) {
      if (turn.config.requireTls && turn.tls === null) return turn.reply(replies.tlsRequired(), 'MAIL');
      const arg = parsePathArgument(args, 'FROM');
      if (!arg.ok) return turn.reply(replies.syntax('MAIL FROM:<address> [parameters]'), 'MAIL');
      const path = parsePath(arg.path, { allowNull: true, utf8: true });
      if (!path.ok) return turn.reply(replies.badSenderSyntax(path.why), `MAIL ${args}`);
      const parsed = parseParameters(path.rest);
      if (!parsed.ok) return turn.reply(replies.badParameter(`Cannot read parameter "${parsed.bad}"`), `MAIL ${args}`);
      const params = readMailParams(turn, parsed.params);
      if (!params.ok) return turn.reply(params.reply, `MAIL ${args}`);
      if (path.utf8 && !params.value.utf8) return turn.reply(replies.needsSmtpUtf8(), `MAIL ${args}`);
      const tx: Envelope = {
        sender: path.mailbox,
        // The client's AUTH= claim is not kept; the session's own identity is (authUser).
        mailParams: parsed.params.filter((p) => p.name !== 'AUTH'),
        recipients: [],
        utf8: params.value.utf8,
        body: params.value.body,
        declaredSize: params.value.size,
        authUser: turn.user,
      };
      turn.begin(tx);
      turn.reply(replies.senderOk());
    },
  },
  RCPT: {
    allowed: ['mail'],
    hint: 'send MAIL first',
    apply(turn, args) {
      if (turn.state.kind !== 'mail') return;
      const { tx, chunked } = turn.state;
      if (chunked) return turn.reply(replies.badSequence('RCPT cannot follow BDAT'), 'RCPT');
      const arg = parsePathArgument(args, 'TO');
      if (!arg.ok) return turn.reply(replies.syntax('RCPT TO:<address> [parameters]'), 'RCPT');
      const postmaster = isBarePostmaster(arg.path);
      let mailbox: Mailbox | null = postmaster ? turn.config.postmaster : null;
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
      const bad = checkRcptParams(turn, parsed.params);
      if (bad) return turn.reply(bad, `RCPT ${args}`);
      // RFC 5321 §4.5.3.1.10: past the cap each RCPT gets 452 and the transaction goes on.
      if (tx.recipients.length >= turn.config.limits.maxRecipients) return turn.reply(replies.tooManyRecipients(), `RCPT ${args}`);
      // RFC 5321 §4.5.1: the bare Postmaster is delivered here whatever the domains are.
      const local = postmaster || isLocalDomain(turn.config, mailbox.domain);
      if (!local) {
        // RFC 5321 §3.6.2: never an open relay; only trusted or authenticated clients relay,
        // except to a domain this host is a backup MX for.
        const backup = turn.config.relayDomain?.(mailbox.domain) === true;
        if (!backup && !turn.config.relay) return turn.reply(replies.relayNotConfigured(mailbox.domain), `RCPT ${args}`);
        if (!backup && !turn.config.trusted && turn.user === null) return turn.reply(replies.relayDenied(mailbox.domain), `RCPT ${args}`);
        const refusal = turn.config.refuseRelay?.(mailbox) ?? null;
        if (refusal !== null) return turn.reply(refusal, `RCPT ${args}`);
      }
      turn.enter({ kind: 'mail', tx: withRecipient(tx, { mailbox, params: parsed.params, local }), chunked: null });
      turn.reply(replies.recipientOk());
    },
  },
  DATA: {
    allowed: ['mail'],
    hint: 'send MAIL and RCPT first',
    apply(turn, args) {
      if (turn.state.kind !== 'mail') return;
      if (turn.state.chunked) return turn.reply(replies.dataAfterBdat(), 'DATA');
      if (args.trim() !== '') return turn.reply(replies.syntax('DATA (no arguments)'), 'DATA');
      // RFC 5321 §3.3: DATA without an accepted recipient is a bad sequence.
      if (turn.state.tx.recipients.length === 0) return turn.reply(replies.badSequence('no valid recipients'), 'DATA');
      const { maxMessageBytes, textLineBytes } = turn.config.limits;
      turn.enter({ kind: 'data', tx: turn.state.tx, receiver: new DataReceiver(maxMessageBytes, textLineBytes) });
      turn.reply(replies.startData());
    },
  },
  BDAT: {
    // BDAT is framed by its size, so its chunk is read in every state before any 503 (RFC 3030 §3).
    allowed: ['connected', 'ready', 'mail'],
    hint: '',
    apply(turn, args) {
      const m = /^(\d{1,15})(?: +(LAST))? *$/i.exec(args);
      if (!m) {
        turn.reply(replies.bdatSyntax(), 'BDAT');
        return turn.close();
      }
      const size = Number(m[1]);
      const last = m[2] !== undefined;
      const state = turn.state;
      const discard = (reply: Reply, after: State) => turn.enter({ kind: 'bdat-discard', remaining: size, reply, after });
      if (state.kind !== 'mail') return discard(replies.badSequence('send MAIL and RCPT first'), state);
      if (state.tx.recipients.length === 0) return discard(replies.badSequence('no valid recipients'), state);
      const chunked = state.chunked ?? { chunks: [], size: 0, tooBig: false };
      turn.enter({ kind: 'bdat', tx: state.tx, chunked, remaining: size, last });
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

/** Printable, bounded rendering of a client's command for logs; AUTH data never reaches a log. */
function summarize(line: string): string {
  if (/^AUTH /i.test(line)) return line.split(' ').slice(0, 2).join(' ');
  const clean = line.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?');
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

/** One SMTP server session (RFC 5321), driven by an adapter that owns the socket and the clock. */
export class ServerSession implements ProtocolSession<SessionEvent> {
  readonly #config: ServerConfig;
  #state: State = { kind: 'connected' };
  #heloName = '';
  #esmtp = false;
  #tls: TlsInfo | null = null;
  #user: string | null = null;
  #out = '';
  #events: SessionEvent[] = [];
  #close = false;
  #startTls = false;
  #delayMs = 0;
  #pending: Uint8Array | null = null;
  #discardingLongLine = false;
  #errors = 0;
  /** Limit replies forgiven in the current transaction (limits.recipientOvershoot). */
  #forgiven = 0;
  #unknown = 0;
  #lastActivity: number;
  #nextRequest = 1;
  #draining = false;
  /** A scripted fault: the connection is dropped after this many more bytes of DATA. */
  #dropInData: number | null = null;
  readonly #trace: boolean;
  readonly #turn: Turn = this.#createTurn();

  constructor(config: ServerConfig, now: number, options: { trace?: boolean; tls?: TlsInfo } = {}) {
    this.#config = config;
    this.#lastActivity = now;
    this.#trace = options.trace ?? false;
    this.#tls = options.tls ?? null;
  }

  get state(): StateKind {
    return this.#state.kind;
  }

  /** The time at which tick() will time the session out, or Infinity while the host is busy. */
  get deadline(): number {
    const { commandTimeoutMs, dataTimeoutMs } = this.#config.limits;
    switch (this.#state.kind) {
      case 'committing':
      case 'authenticating':
      case 'closed':
        return Infinity;
      case 'data':
      case 'bdat':
      case 'bdat-discard':
        return this.#lastActivity + dataTimeoutMs;
      case 'connected':
      case 'ready':
      case 'mail':
      case 'auth':
      case 'tls-handshake':
      case 'silent':
        return this.#lastActivity + commandTimeoutMs;
      default: {
        const never: never = this.#state;
        return never;
      }
    }
  }

  /** RFC 5321 §3.1: the 220 greeting, sent as soon as the connection is open (after the handshake for implicit TLS). */
  greet(now: number): Step {
    this.#lastActivity = now;
    const fault = this.#config.faults?.('connect', null) ?? null;
    if (fault === null || !this.#applyFault(fault, 'CONNECT')) this.#write(replies.greeting(this.#config.hostname));
    return this.#flush();
  }

  /** Feeds bytes from the client. */
  receive(bytes: Uint8Array, now: number): Step {
    this.#lastActivity = now;
    const kind = this.#state.kind;
    // RFC 3207 §4.2 and CVE-2011-0411: nothing sent in plaintext after STARTTLS is executed.
    if (kind === 'closed' || kind === 'tls-handshake') return this.#flush();
    let input = bytes;
    if (this.#pending) {
      input = concat([this.#pending, bytes]);
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
    return this.#resume(now);
  }

  /** Answers an 'auth' event with the host's verdict on the credentials. */
  resolveAuth(requestId: number, outcome: AuthOutcome, now: number): Step {
    const state = this.#state;
    if (state.kind !== 'authenticating' || state.requestId !== requestId) return this.#flush();
    this.#lastActivity = now;
    this.#enter({ kind: 'ready' });
    if (outcome.ok) {
      this.#user = outcome.user;
      this.#events.push({ kind: 'authenticated', username: outcome.user });
      this.#write(replies.authSucceeded());
    } else {
      this.#reply(outcome.reply, 'AUTH');
    }
    return this.#resume(now);
  }

  /**
   * The TLS handshake that STARTTLS asked for is done. RFC 3207 §4.2: the server forgets
   * everything it learned before it, and the client must send EHLO again.
   */
  tlsStarted(info: TlsInfo, now: number): Step {
    this.#lastActivity = now;
    this.#tls = info;
    this.#heloName = '';
    this.#esmtp = false;
    this.#pending = null;
    this.#enter({ kind: 'connected' });
    return this.#flush();
  }

  /** Checks the idle and data timeouts (RFC 5321 §4.5.3.2). */
  tick(now: number): Step {
    if (now >= this.deadline && this.#state.kind === 'silent') this.#closeNow();
    else if (now >= this.deadline) {
      const inData = this.#state.kind === 'data' || this.#state.kind === 'bdat' || this.#state.kind === 'bdat-discard';
      this.#write(inData ? replies.dataTimeout() : replies.idleTimeout());
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

  #resume(now: number): Step {
    const pending = this.#pending;
    this.#pending = null;
    if (pending && !this.#close) this.#process(pending, now);
    else this.#closeIfDraining();
    return this.#flush();
  }

  #process(input: Uint8Array, now: number): void {
    let i = 0;
    while (i < input.length && !this.#close) {
      const state = this.#state;
      switch (state.kind) {
        case 'data': {
          if (this.#dropInData !== null) {
            if (input.length - i >= this.#dropInData) return this.#closeNow();
            this.#dropInData -= input.length - i;
          }
          const r = state.receiver.push(input, i);
          i += r.consumed;
          if (r.done) this.#endOfData(state.tx, state.receiver, now);
          continue;
        }
        case 'bdat':
        case 'bdat-discard': {
          const n = Math.min(state.remaining, input.length - i);
          if (state.kind === 'bdat') this.#appendChunk(state.chunked, input.subarray(i, i + n));
          state.remaining -= n;
          i += n;
          if (state.remaining === 0) this.#endOfChunk(now);
          continue;
        }
        case 'committing':
        case 'authenticating':
          // RFC 2920: commands pipelined behind DATA (or AUTH) wait for its reply.
          this.#pending = input.slice(i);
          return;
        case 'tls-handshake':
          // RFC 3207 §4.2: bytes pipelined after STARTTLS are discarded, never executed.
          return;
        case 'silent':
        case 'closed':
          return;
        case 'connected':
        case 'ready':
        case 'mail':
        case 'auth':
          break;
        default: {
          const never: never = state;
          return never;
        }
      }
      const limit = state.kind === 'auth' ? AUTH_LINE_BYTES : this.#config.limits.commandLineBytes;
      const lf = input.indexOf(LF, i);
      if (this.#discardingLongLine) {
        if (lf < 0) return;
        this.#discardingLongLine = false;
        this.#reply(state.kind === 'auth' ? replies.authLineTooLong() : replies.lineTooLong(), '(line too long)');
        if (state.kind === 'auth') this.#enter({ kind: 'ready' });
        i = lf + 1;
        continue;
      }
      if (lf < 0) {
        if (input.length - i > limit) this.#discardingLongLine = true;
        else this.#pending = input.slice(i);
        return;
      }
      if (lf + 1 - i > limit) {
        this.#reply(state.kind === 'auth' ? replies.authLineTooLong() : replies.lineTooLong(), '(line too long)');
        if (state.kind === 'auth') this.#enter({ kind: 'ready' });
        i = lf + 1;
        continue;
      }
      const end = lf > i && input[lf - 1] === CR ? lf - 1 : lf;
      const line = UTF8.decode(input.subarray(i, end));
      i = lf + 1;
      if (state.kind === 'auth') this.#authResponse(state, line);
      else this.#command(line);
      if (this.#startTls) return;
      const next = this.#state;
      // "BDAT 0 LAST" has no chunk to wait for (RFC 3030 §2).
      if ((next.kind === 'bdat' || next.kind === 'bdat-discard') && next.remaining === 0) this.#endOfChunk(now);
    }
    this.#closeIfDraining();
  }

  #command(line: string): void {
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
        const stage = this.#config.faults ? FAULT_STAGE_OF[parsed.verb] : undefined;
        if (stage !== undefined) {
          const fault = this.#config.faults!(stage, faultAddress(parsed.verb, parsed.args));
          if (parsed.verb === 'DATA') this.#dropInData = fault?.kind === 'drop' && fault.afterBytes > 0 ? fault.afterBytes : null;
          if (fault !== null && this.#applyFault(fault, parsed.verb)) {
            // The client is leaving whatever the reply says (RFC 5321 §4.1.1.10).
            if (parsed.verb === 'QUIT' && fault.kind === 'reply' && !this.#close) this.#closeNow();
            return;
          }
        }
        spec.apply(this.#turn, parsed.args, line);
        return;
      }
      default: {
        const never: never = parsed;
        return never;
      }
    }
  }

  /** A line of the AUTH exchange (RFC 4954 §4): base64, or "*" to cancel. */
  #authResponse(state: Extract<State, { kind: 'auth' }>, line: string): void {
    const turn = this.#turn;
    if (line.trim() === '*') {
      this.#enter({ kind: 'ready' });
      return this.#reply(replies.authCancelled(), 'AUTH');
    }
    if (state.step === 'plain') {
      this.#enter({ kind: 'ready' });
      return readPlain(turn, line);
    }
    const decoded = decodeSaslText(line);
    if (decoded === null) {
      this.#enter({ kind: 'ready' });
      return this.#reply(replies.authBadBase64(), 'AUTH LOGIN');
    }
    if (state.step === 'username') {
      this.#enter({ kind: 'auth', mechanism: 'LOGIN', step: 'password', username: decoded });
      return this.#write(replies.authChallenge(LOGIN_PROMPTS.password));
    }
    this.#enter({ kind: 'ready' });
    turn.authenticate('LOGIN', '', state.username, decoded);
  }

  #appendChunk(chunked: ChunkedBody, bytes: Uint8Array): void {
    chunked.size += bytes.length;
    if (chunked.tooBig) return;
    if (chunked.size > this.#config.limits.maxMessageBytes) {
      chunked.tooBig = true;
      chunked.chunks.length = 0;
      return;
    }
    if (bytes.length > 0) chunked.chunks.push(bytes.slice());
  }

  #endOfChunk(now: number): void {
    const state = this.#state;
    if (state.kind === 'bdat-discard') {
      this.#enter(state.after);
      return this.#reply(state.reply, 'BDAT');
    }
    if (state.kind !== 'bdat') return;
    const { tx, chunked } = state;
    const fault = this.#config.faults?.('bdat', null) ?? null;
    // A scripted reply to a chunk ends the transaction, as a refused chunk does (RFC 3030 §2).
    if (fault?.kind === 'reply') this.#enter({ kind: 'ready' });
    if (fault !== null && this.#applyFault(fault, 'BDAT')) return;
    if (chunked.tooBig) {
      // RFC 3030 §2: after a failed chunk the transaction is over; RFC 1870 gives the code.
      this.#enter({ kind: 'ready' });
      return this.#reply(replies.sizeExceeded(this.#config.limits.maxMessageBytes), 'BDAT');
    }
    if (!state.last) {
      this.#enter({ kind: 'mail', tx, chunked });
      return this.#write(replies.chunkReceived(chunked.size));
    }
    const message = concat(chunked.chunks, chunked.size);
    const violation = checkText(message, this.#config.limits.textLineBytes);
    if (violation) {
      this.#enter({ kind: 'ready' });
      return this.#reply(violationReply(violation, this.#config.limits), 'BDAT');
    }
    this.#accept(tx, dotStuff(message), message.length, now);
  }

  #endOfData(tx: Envelope, receiver: DataReceiver, now: number): void {
    const result = receiver.result();
    if (result.violation) {
      this.#enter({ kind: 'ready' });
      this.#reply(violationReply(result.violation, this.#config.limits), 'DATA');
      return;
    }
    this.#accept(tx, result.stuffed, result.size, now);
  }

  /** A whole message: stamp the trace header and ask the host to make it durable. */
  #accept(tx: Envelope, stuffedBody: Uint8Array, size: number, now: number): void {
    this.#dropInData = null;
    const fault = this.#config.faults?.('end-of-data', null) ?? null;
    if (fault?.kind === 'reply') this.#enter({ kind: 'ready' });
    if (fault !== null && this.#applyFault(fault, 'DATA')) return;
    const maxHops = this.#config.maxHops ?? null;
    // RFC 5321 §6.3: a message that has passed more relays than this is looping.
    if (maxHops !== null && countReceived(stuffedBody, maxHops + 1) > maxHops) {
      this.#enter({ kind: 'ready' });
      return this.#reply(replies.mailLoop(maxHops), 'DATA');
    }
    const id = this.#config.newId();
    // RFC 3848 and RFC 6531 §3.7.3: the protocol name says ESMTP, TLS (S), AUTH (A), SMTPUTF8.
    const base = tx.utf8 ? 'UTF8SMTP' : this.#esmtp ? 'ESMTP' : 'SMTP';
    const protocol = this.#esmtp || tx.utf8 ? `${base}${this.#tls ? 'S' : ''}${this.#user !== null ? 'A' : ''}` : base;
    const trace = formatReceived(
      {
        heloName: this.#heloName,
        clientAddress: this.#config.clientAddress,
        serverName: this.#config.hostname,
        protocol,
        id,
        timeMs: now,
        tls: this.#tls ? `${this.#tls.protocol} ${this.#tls.cipher}` : undefined,
      },
      tx,
    );
    const header = ENCODER.encode(trace);
    const stuffed = new Uint8Array(header.length + stuffedBody.length);
    stuffed.set(header);
    stuffed.set(stuffedBody, header.length);
    const requestId = this.#nextRequest++;
    this.#enter({ kind: 'committing', requestId, id });
    this.#events.push({ kind: 'message', requestId, id, envelope: tx, stuffed, size: size + header.length, heloName: this.#heloName });
  }

  /** The view the command handlers get; built once per session, not once per command. */
  #createTurn(): Turn {
    const session = this;
    return {
      get config() {
        return session.#config;
      },
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
      get tls() {
        return session.#tls;
      },
      get user() {
        return session.#user;
      },
      enter: (next) => this.#enter(next),
      begin: (tx) => {
        this.#forgiven = 0;
        this.#enter({ kind: 'mail', tx, chunked: null });
      },
      reply: (r, command) => this.#reply(r, command),
      close: () => this.#closeNow(),
      startTls: () => {
        this.#startTls = true;
        this.#pending = null;
        this.#enter({ kind: 'tls-handshake' });
      },
      authenticate: (mechanism, authzid, username, password) => {
        const requestId = this.#nextRequest++;
        this.#enter({ kind: 'authenticating', requestId });
        this.#events.push({ kind: 'auth', requestId, mechanism, authzid, username, password });
      },
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

  /**
   * The reply funnel: writes, reports rejections, counts errors (RFC 5321 §4.3.2 leaves the cap
   * to us) and slows down a client that keeps failing. Only the client's own mistakes count:
   * the server's failures never do, and a limit reached counts only past its allowance per
   * transaction (a client pipelining 1,000 RCPTs past --max-recipients keeps its session).
   */
  #reply(r: Reply, command?: string): void {
    this.#write(r);
    const blame = blameOf(r);
    if (blame === null) return;
    this.#events.push({ kind: 'rejected', command: command ?? '', reply: r });
    if (blame === 'server') return;
    if (blame === 'limit' && this.#forgiven < this.#config.limits.recipientOvershoot) {
      this.#forgiven++;
      return;
    }
    this.#errors++;
    if (this.#errors > DELAY_AFTER_ERRORS) {
      this.#delayMs = Math.min(DELAY_MAX_MS, (this.#errors - DELAY_AFTER_ERRORS) * DELAY_STEP_MS);
    }
    if (this.#errors > this.#config.limits.maxErrors && !this.#close) {
      this.#write(replies.tooManyErrors());
      this.#closeNow();
    }
  }

  /**
   * Carries out a scripted fault; true when it replaces the normal handling. A delay comes
   * before whatever this step writes; a 421 closes the connection, as RFC 5321 §3.8 has it, and
   * so does any refusal of the connection itself.
   */
  #applyFault(fault: FaultAction, command: string): boolean {
    if (fault.kind !== 'silence' && fault.delayMs > 0) this.#delayMs = Math.max(this.#delayMs, fault.delayMs);
    switch (fault.kind) {
      case 'delay':
        return false;
      case 'reply':
        this.#reply(fault.reply, command);
        if (!this.#close && (fault.reply.code === 421 || (command === 'CONNECT' && fault.reply.code >= 400))) this.#closeNow();
        return true;
      case 'drop':
        if (fault.afterBytes > 0) return false;
        this.#closeNow();
        return true;
      case 'silence':
        this.#pending = null;
        this.#enter({ kind: 'silent' });
        return true;
      default: {
        const never: never = fault;
        return never;
      }
    }
  }

  #closeNow(): void {
    this.#close = true;
    this.#pending = null;
    this.#enter({ kind: 'closed' });
  }

  #closeIfDraining(): void {
    const kind = this.#state.kind;
    if (this.#draining && !this.#close && kind === 'silent') this.#closeNow();
    else if (this.#draining && !this.#close && (kind === 'connected' || kind === 'ready')) {
      this.#write(replies.serviceUnavailable(this.#config.hostname));
      this.#closeNow();
    }
  }

  #flush(): Step {
    const step: Step = { out: this.#out, events: this.#events, close: this.#close, startTls: this.#startTls, delayMs: this.#delayMs };
    this.#out = '';
    this.#startTls = false;
    this.#delayMs = 0;
    if (this.#events.length > 0) this.#events = [];
    return step;
  }
}

/** The address a MAIL or RCPT names, as fault rules match it ("" for <>), or null if unreadable. */
function faultAddress(verb: Verb, args: string): string | null {
  if (verb !== 'MAIL' && verb !== 'RCPT') return null;
  const arg = parsePathArgument(args, verb === 'MAIL' ? 'FROM' : 'TO');
  if (!arg.ok) return null;
  if (verb === 'RCPT' && isBarePostmaster(arg.path)) return 'postmaster';
  const path = parsePath(arg.path, { allowNull: verb === 'MAIL', utf8: true });
  if (!path.ok) return null;
  return path.mailbox === null ? '' : formatMailbox(path.mailbox);
}

/** Checks "user@domain" text as the auth layer and tests need it. */
export function isMailboxText(text: string): boolean {
  return parseMailbox(text, true).ok;
}

const RECEIVED = 'received:';

/** Received: fields in the header section of a stuffed message, counted up to `stop`. */
export function countReceived(stuffed: Uint8Array, stop: number): number {
  let count = 0;
  for (let at = 0; at < stuffed.length && count < stop; ) {
    const end = stuffed.indexOf(10, at);
    const next = end < 0 ? stuffed.length : end + 1;
    // An empty line ends the header section (RFC 5322 §2.1).
    if (stuffed[at] === 13 || stuffed[at] === 10) break;
    if (next - at > RECEIVED.length) {
      let match = true;
      for (let i = 0; i < RECEIVED.length && match; i++) match = (stuffed[at + i] | 0x20) === RECEIVED.charCodeAt(i) || (RECEIVED[i] === ':' && stuffed[at + i] === 58);
      if (match) count++;
    }
    at = next;
  }
  return count;
}
