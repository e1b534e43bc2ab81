/**
 * @module The server side of a POP3 session (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH
 * RFC 5034) as a pure state machine.
 * Rule 1: bytes and the time come in, text and message bytes go out with events; the maildrop
 *         is reached through events answered by the adapter (pop3-maildrop.ts), never directly.
 * Rule 2: every verb is a row of COMMANDS with the states it is allowed in; "not allowed now"
 *         comes from the table, never from the handlers.
 * Rule 3: every state change goes through enter(); the deletion marks live on the locked
 *         maildrop and reach the store only in the UPDATE state (RFC 1939 §6).
 */
import { decodeBase64 } from './base-encoding.ts';
import { concat, dotStuff } from './data.ts';
import type { LockOutcome, Pop3Maildrop, ReadOutcome, UpdateOutcome } from './pop3-maildrop.ts';
import { formatPop3Response, pop3Replies, type Pop3Response } from './pop3-replies.ts';
import type { ProtocolSession, ProtocolStep, TlsInfo } from './protocol-session.ts';

export interface Pop3Limits {
  /** Longest command line accepted, CRLF included. */
  readonly commandLineBytes: number;
  /** Longest line of a SASL exchange, CRLF included. */
  readonly saslLineBytes: number;
  /** The autologout timer (RFC 1939 §3). */
  readonly idleTimeoutMs: number;
  /** Failed commands tolerated per session before the connection is closed. */
  readonly maxErrors: number;
}

export const DEFAULT_POP3_LIMITS: Pop3Limits = Object.freeze({
  // RFC 2449 §4: a client sends at most 255 octets; a password with spaces may need more.
  commandLineBytes: 1024,
  // RFC 5034 §4: a server must take the longest response of its mechanisms; PLAIN carries three
  // strings of up to 255 octets (RFC 4616), and RFC 4954 §4's 12288 is kept as the SMTP side does.
  saslLineBytes: 12288,
  // RFC 1939 §3: the autologout timer must be at least 10 minutes.
  idleTimeoutMs: 10 * 60_000,
  maxErrors: 20,
});

/** What one POP3 session needs to know; built once per connection by the adapter. */
export interface Pop3Config {
  readonly hostname: string;
  readonly limits: Pop3Limits;
  /** 'starttls': STLS is offered; 'implicit': the connection is TLS from its first byte. */
  readonly tls: 'none' | 'starttls' | 'implicit';
  /**
   * USER/PASS and SASL PLAIN may be used before TLS: catch-all mode on loopback, or
   * --allow-insecure-auth. When false, CAPA leaves them out and they answer -ERR [AUTH].
   */
  readonly allowInsecureAuth: boolean;
}

export type Pop3Mechanism = 'USER' | 'PLAIN';

export type Pop3Event =
  /** Credentials to check; answer with resolveAuth(requestId, …). */
  | {
      readonly kind: 'auth';
      readonly requestId: number;
      readonly mechanism: Pop3Mechanism;
      /** The authorization identity (RFC 4616): empty when the client acts as itself. */
      readonly authzid: string;
      readonly username: string;
      readonly password: string;
    }
  /** The login succeeded: lock its maildrop and answer with resolveLock(requestId, …). */
  | { readonly kind: 'lock'; readonly requestId: number; readonly user: string }
  /** Message bytes for RETR or TOP; answer with resolveRead(requestId, …). */
  | { readonly kind: 'read'; readonly requestId: number; readonly user: string; readonly uid: string }
  /** The login is complete and the maildrop locked: one log line per login. */
  | { readonly kind: 'logged-in'; readonly user: string; readonly mechanism: Pop3Mechanism }
  /** RFC 1939 §6: QUIT in TRANSACTION; remove these, then answer with resolveUpdate(requestId, …). */
  | { readonly kind: 'update'; readonly requestId: number; readonly user: string; readonly deletedUids: readonly string[] }
  /**
   * The session no longer holds the maildrop lock; the adapter gives it back once any update
   * this session asked for has finished.
   */
  | { readonly kind: 'release'; readonly user: string }
  /** A command answered with -ERR, for the log. */
  | { readonly kind: 'rejected'; readonly command: string; readonly response: Pop3Response }
  | { readonly kind: 'transition'; readonly from: Pop3StateKind; readonly to: Pop3StateKind };

/**
 * What the listener does after a call (protocol-session.ts): wait `delayMs`, write `out` (text,
 * or bytes once a step carries message octets), hand over `events`, then close or start TLS.
 */
export type Pop3Step = ProtocolStep<Pop3Event>;

export type Pop3AuthOutcome = { readonly ok: true; readonly user: string } | { readonly ok: false; readonly response: Pop3Response };

/** The maildrop while this session holds its lock. */
interface Locked {
  readonly user: string;
  readonly maildrop: Pop3Maildrop;
  /** deleted[n - 1] is true once message n is marked by DELE. */
  readonly deleted: boolean[];
}

type ReadPurpose = { readonly verb: 'RETR' } | { readonly verb: 'TOP'; readonly lines: number };

type State =
  | { readonly kind: 'authorization'; readonly user: string | null }
  | { readonly kind: 'sasl' }
  | { readonly kind: 'authenticating'; readonly requestId: number; readonly mechanism: Pop3Mechanism }
  | { readonly kind: 'locking'; readonly requestId: number; readonly user: string; readonly mechanism: Pop3Mechanism }
  | { readonly kind: 'transaction' }
  | { readonly kind: 'reading'; readonly requestId: number; readonly n: number; readonly purpose: ReadPurpose }
  | { readonly kind: 'updating'; readonly requestId: number; readonly count: number }
  | { readonly kind: 'tls-handshake' }
  | { readonly kind: 'closed' };

export type Pop3StateKind = State['kind'];

/** The session as the command handlers see it. */
interface Turn {
  readonly config: Pop3Config;
  readonly state: State;
  readonly tls: boolean;
  readonly locked: Locked | null;
  enter(next: State): void;
  ok(r: Pop3Response, lines?: readonly string[]): void;
  fail(r: Pop3Response, command: string): void;
  close(): void;
  startTls(): void;
  authenticate(mechanism: Pop3Mechanism, authzid: string, username: string, password: string): void;
  /** RFC 5034 §4: an empty server challenge, "+ ". */
  challenge(): void;
  read(n: number, purpose: ReadPurpose): void;
  update(): void;
}

interface CommandSpec {
  readonly allowed: readonly Pop3StateKind[];
  readonly hint: string;
  readonly apply: (turn: Turn, args: string) => void;
}

const UTF8 = new TextDecoder('utf-8');
const LF = 10;
const CR = 13;
const TERMINATOR = '.\r\n';
const AUTHORIZATION: readonly Pop3StateKind[] = ['authorization'];
const TRANSACTION: readonly Pop3StateKind[] = ['transaction'];
// Errors after which every further error reply is delayed, and the step and cap of that delay.
const DELAY_AFTER_ERRORS = 3;
const DELAY_STEP_MS = 250;
const DELAY_MAX_MS = 5000;

/** Whether cleartext passwords may be sent on this connection now. */
function cleartextAllowed(config: Pop3Config, tls: boolean): boolean {
  return tls || config.allowInsecureAuth;
}

/** RFC 2449 §5: the capabilities of the current state. */
function capabilities(turn: Turn): string[] {
  const before = turn.state.kind === 'authorization';
  const caps = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];
  if (before && cleartextAllowed(turn.config, turn.tls)) caps.push('USER', 'SASL PLAIN');
  if (before && turn.config.tls === 'starttls' && !turn.tls) caps.push('STLS');
  caps.push('IMPLEMENTATION mailbox');
  return caps;
}

/** RFC 1939 §3: a message-number argument; null when it names no message of this maildrop. */
function messageNumber(turn: Turn, arg: string): number | null {
  const locked = turn.locked;
  if (!locked || !/^[1-9][0-9]{0,9}$/.test(arg)) return null;
  const n = Number(arg);
  return n <= locked.maildrop.messages.length ? n : null;
}

/** The message a command names, or the reason it names none (already answered). */
function liveMessage(turn: Turn, verb: string, arg: string): number | null {
  const n = messageNumber(turn, arg);
  if (n === null) {
    turn.fail(pop3Replies.noSuchMessage(arg), verb);
    return null;
  }
  // RFC 1939 §5: a message marked as deleted may not be referred to.
  if (turn.locked!.deleted[n - 1]) {
    turn.fail(pop3Replies.alreadyDeleted(n), verb);
    return null;
  }
  return n;
}

function totals(locked: Locked): { count: number; octets: number } {
  let count = 0;
  let octets = 0;
  locked.maildrop.messages.forEach((m, i) => {
    if (locked.deleted[i]) return;
    count++;
    octets += m.size;
  });
  return { count, octets };
}

/** A SASL response (RFC 5034 §4): strict base64 of UTF-8 text, where "=" alone is empty. */
function readBase64Text(text: string): string | null {
  const t = text.trim();
  if (t === '=') return '';
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0 || t.length === 0) return null;
  const bytes = decodeBase64(t);
  return bytes === null ? null : UTF8.decode(bytes);
}

/** RFC 4616: message = [authzid] NUL authcid NUL passwd. */
function readPlain(turn: Turn, response: string): void {
  const decoded = readBase64Text(response);
  if (decoded === null) return turn.fail(pop3Replies.saslBadBase64(), 'AUTH PLAIN');
  const parts = decoded.split('\u0000');
  if (parts.length !== 3 || parts[1] === '') return turn.fail(pop3Replies.authFailed(), 'AUTH PLAIN');
  turn.authenticate('PLAIN', parts[0], parts[1], parts[2]);
}

const COMMANDS = {
  // RFC 2449 §5: CAPA is allowed in every state.
  CAPA: {
    allowed: ['authorization', 'transaction'],
    hint: '',
    apply(turn) {
      turn.ok(pop3Replies.capabilities(), capabilities(turn));
    },
  },
  // RFC 2595 §4: STLS only in the AUTHORIZATION state.
  STLS: {
    allowed: AUTHORIZATION,
    hint: 'STLS is only allowed before login',
    apply(turn, args) {
      if (turn.tls) return turn.fail(pop3Replies.tlsAlreadyActive(), 'STLS');
      if (turn.config.tls !== 'starttls') return turn.fail(pop3Replies.tlsNotOffered(), 'STLS');
      if (args !== '') return turn.fail(pop3Replies.syntax('STLS'), 'STLS');
      turn.ok(pop3Replies.beginTls());
      turn.startTls();
    },
  },
  USER: {
    allowed: AUTHORIZATION,
    hint: 'already logged in',
    apply(turn, args) {
      if (!cleartextAllowed(turn.config, turn.tls)) return turn.fail(pop3Replies.cleartextNeedsTls(), 'USER');
      if (args === '') return turn.fail(pop3Replies.syntax('USER name'), 'USER');
      turn.enter({ kind: 'authorization', user: args });
      turn.ok(pop3Replies.userAccepted());
    },
  },
  PASS: {
    allowed: AUTHORIZATION,
    hint: 'already logged in',
    apply(turn, args) {
      const state = turn.state;
      // RFC 1939 §7: PASS only immediately after a successful USER.
      if (state.kind !== 'authorization' || state.user === null) return turn.fail(pop3Replies.passNeedsUser(), 'PASS');
      turn.enter({ kind: 'authorization', user: null });
      if (!cleartextAllowed(turn.config, turn.tls)) return turn.fail(pop3Replies.cleartextNeedsTls(), 'PASS');
      // RFC 1939 §7: the argument is the whole rest of the line, spaces included.
      turn.authenticate('USER', '', state.user, args);
    },
  },
  APOP: {
    allowed: AUTHORIZATION,
    hint: 'already logged in',
    apply(turn) {
      turn.fail(pop3Replies.apopNotOffered(), 'APOP');
    },
  },
  AUTH: {
    allowed: AUTHORIZATION,
    hint: 'already logged in',
    apply(turn, args) {
      turn.enter({ kind: 'authorization', user: null });
      const [name = '', initial, extra] = args.split(' ');
      if (name === '') return turn.ok(pop3Replies.saslMechanisms(), cleartextAllowed(turn.config, turn.tls) ? ['PLAIN'] : []);
      if (name.toUpperCase() !== 'PLAIN' || extra !== undefined) return turn.fail(pop3Replies.saslUnknownMechanism(name), 'AUTH');
      if (!cleartextAllowed(turn.config, turn.tls)) return turn.fail(pop3Replies.cleartextNeedsTls(), 'AUTH');
      if (initial === '*') return turn.fail(pop3Replies.saslCancelled(), 'AUTH');
      if (initial !== undefined) return readPlain(turn, initial);
      turn.enter({ kind: 'sasl' });
      turn.challenge();
    },
  },
  STAT: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn, args) {
      if (args !== '') return turn.fail(pop3Replies.syntax('STAT'), 'STAT');
      const { count, octets } = totals(turn.locked!);
      turn.ok(pop3Replies.stat(count, octets));
    },
  },
  LIST: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn, args) {
      const locked = turn.locked!;
      if (args !== '') {
        const n = liveMessage(turn, 'LIST', args);
        if (n !== null) turn.ok(pop3Replies.scanListing(n, locked.maildrop.messages[n - 1].size));
        return;
      }
      const lines: string[] = [];
      locked.maildrop.messages.forEach((m, i) => {
        if (!locked.deleted[i]) lines.push(`${i + 1} ${m.size}`);
      });
      const { count, octets } = totals(locked);
      turn.ok(pop3Replies.scanList(count, octets), lines);
    },
  },
  UIDL: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn, args) {
      const locked = turn.locked!;
      if (args !== '') {
        const n = liveMessage(turn, 'UIDL', args);
        if (n !== null) turn.ok(pop3Replies.uidListing(n, locked.maildrop.messages[n - 1].uid));
        return;
      }
      const lines: string[] = [];
      locked.maildrop.messages.forEach((m, i) => {
        if (!locked.deleted[i]) lines.push(`${i + 1} ${m.uid}`);
      });
      turn.ok(pop3Replies.uidList(), lines);
    },
  },
  RETR: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn, args) {
      const n = liveMessage(turn, 'RETR', args);
      if (n !== null) turn.read(n, { verb: 'RETR' });
    },
  },
  TOP: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn, args) {
      const m = /^(\S+) ([0-9]{1,9})$/.exec(args);
      if (!m) return turn.fail(pop3Replies.syntax('TOP msg n'), 'TOP');
      const n = liveMessage(turn, 'TOP', m[1]);
      if (n !== null) turn.read(n, { verb: 'TOP', lines: Number(m[2]) });
    },
  },
  DELE: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn, args) {
      const n = liveMessage(turn, 'DELE', args);
      if (n === null) return;
      turn.locked!.deleted[n - 1] = true;
      turn.ok(pop3Replies.deleted(n));
    },
  },
  NOOP: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn) {
      turn.ok(pop3Replies.noop());
    },
  },
  RSET: {
    allowed: TRANSACTION,
    hint: 'log in first',
    apply(turn) {
      const locked = turn.locked!;
      locked.deleted.fill(false);
      const { count, octets } = totals(locked);
      turn.ok(pop3Replies.reset(count, octets));
    },
  },
  QUIT: {
    allowed: ['authorization', 'transaction'],
    hint: '',
    apply(turn) {
      // RFC 1939 §6: QUIT from AUTHORIZATION ends the session without UPDATE.
      if (turn.state.kind === 'transaction') return turn.update();
      turn.ok(pop3Replies.bye(turn.config.hostname));
      turn.close();
    },
  },
} as const satisfies Record<string, CommandSpec>;

type Verb = keyof typeof COMMANDS;

function isVerb(word: string): word is Verb {
  return Object.hasOwn(COMMANDS, word);
}

/** The text for logs: passwords and SASL responses never appear. */
function summarize(verb: string, line: string): string {
  if (verb === 'PASS') return 'PASS <redacted>';
  if (verb === 'AUTH') return line.split(' ').slice(0, 2).join(' ');
  return line.length > 80 ? `${line.slice(0, 80)}...` : line;
}

/**
 * RFC 1939 §7 (TOP): the header, the blank line, then the first `lines` lines of the body;
 * the whole message when the body is shorter.
 */
export function topOfMessage(message: Uint8Array, lines: number): Uint8Array {
  let i = 0;
  // The header ends at the first empty line; a message without one is all header.
  while (i < message.length) {
    const lf = message.indexOf(LF, i);
    if (lf < 0) return message;
    const empty = lf === i || (lf === i + 1 && message[i] === CR);
    i = lf + 1;
    if (empty) break;
  }
  for (let k = 0; k < lines && i < message.length; k++) {
    const lf = message.indexOf(LF, i);
    i = lf < 0 ? message.length : lf + 1;
  }
  return message.subarray(0, i);
}

/** Builds the multi-line body of a response: RFC 1939 §3 byte-stuffs a leading ".". */
function textBlock(lines: readonly string[]): string {
  let out = '';
  for (const line of lines) out += `${line.startsWith('.') ? '.' : ''}${line}\r\n`;
  return out + TERMINATOR;
}

const ENCODER = new TextEncoder();

export class Pop3Session implements ProtocolSession<Pop3Event> {
  readonly #config: Pop3Config;
  #state: State = { kind: 'authorization', user: null };
  #tls: boolean;
  #locked: Locked | null = null;
  #out: (string | Uint8Array)[] = [];
  #events: Pop3Event[] = [];
  #close = false;
  #startTls = false;
  #delayMs = 0;
  #errors = 0;
  #draining = false;
  #nextRequest = 1;
  #lastActivity: number;
  #pending: Uint8Array | null = null;
  #discardingLongLine = false;
  #abandonedLock: { readonly requestId: number; readonly user: string } | null = null;
  readonly #trace: boolean;
  readonly #turn: Turn = this.#createTurn();

  /** `tls` is given on an implicit-TLS listener (RFC 8314): the session starts encrypted. */
  constructor(config: Pop3Config, now: number, options: { trace?: boolean; tls?: TlsInfo | null } = {}) {
    this.#config = config;
    this.#lastActivity = now;
    this.#trace = options.trace ?? false;
    this.#tls = (options.tls ?? null) !== null || config.tls === 'implicit';
  }

  get state(): Pop3StateKind {
    return this.#state.kind;
  }

  /** The time at which tick() ends the session, or Infinity while the host is answering. */
  get deadline(): number {
    switch (this.#state.kind) {
      case 'authenticating':
      case 'locking':
      case 'reading':
      case 'updating':
      case 'closed':
        return Infinity;
      case 'authorization':
      case 'sasl':
      case 'transaction':
      case 'tls-handshake':
        return this.#lastActivity + this.#config.limits.idleTimeoutMs;
      default: {
        const never: never = this.#state;
        return never;
      }
    }
  }

  /** RFC 1939 §4: the greeting, once the connection is open (after the handshake for implicit TLS). */
  greet(now: number): Pop3Step {
    this.#lastActivity = now;
    this.#status(pop3Replies.greeting(this.#config.hostname));
    return this.#flush();
  }

  /** Feeds bytes from the client. */
  receive(bytes: Uint8Array, now: number): Pop3Step {
    this.#lastActivity = now;
    const kind = this.#state.kind;
    // RFC 2595 §4 (as RFC 3207 §4.2 for SMTP): nothing sent in clear after STLS is executed.
    if (kind === 'closed' || kind === 'tls-handshake') return this.#flush();
    let input = bytes;
    if (this.#pending) {
      input = concat([this.#pending, bytes]);
      this.#pending = null;
    }
    this.#process(input);
    return this.#flush();
  }

  /** Answers an 'auth' event with the host's verdict; success goes on to lock the maildrop. */
  resolveAuth(requestId: number, outcome: Pop3AuthOutcome, now: number): Pop3Step {
    const state = this.#state;
    if (state.kind !== 'authenticating' || state.requestId !== requestId) return this.#flush();
    this.#lastActivity = now;
    if (!outcome.ok) {
      this.#enter({ kind: 'authorization', user: null });
      this.#fail(outcome.response, 'login');
      return this.#resume();
    }
    const lockId = this.#nextRequest++;
    this.#enter({ kind: 'locking', requestId: lockId, user: outcome.user, mechanism: state.mechanism });
    this.#events.push({ kind: 'lock', requestId: lockId, user: outcome.user });
    return this.#flush();
  }

  /** Answers a 'lock' event: RFC 1939 §4, the session enters TRANSACTION only with the lock. */
  resolveLock(requestId: number, outcome: LockOutcome, now: number): Pop3Step {
    const state = this.#state;
    if (state.kind !== 'locking' || state.requestId !== requestId) {
      // The session ended while the lock was being taken: the lock goes straight back.
      const abandoned = this.#abandonedLock;
      if (abandoned?.requestId === requestId) {
        this.#abandonedLock = null;
        if (outcome.ok) this.#events.push({ kind: 'release', user: abandoned.user });
      }
      return this.#flush();
    }
    this.#lastActivity = now;
    if (!outcome.ok) {
      this.#enter({ kind: 'authorization', user: null });
      this.#fail(outcome.response, 'login');
      return this.#resume();
    }
    const maildrop = outcome.maildrop;
    this.#locked = { user: state.user, maildrop, deleted: maildrop.messages.map(() => false) };
    this.#enter({ kind: 'transaction' });
    this.#events.push({ kind: 'logged-in', user: state.user, mechanism: state.mechanism });
    const { count, octets } = totals(this.#locked);
    this.#status(pop3Replies.loggedIn(count, octets));
    return this.#resume();
  }

  /** Answers a 'read' event with the message bytes (unstuffed, as stored). */
  resolveRead(requestId: number, outcome: ReadOutcome, now: number): Pop3Step {
    const state = this.#state;
    if (state.kind !== 'reading' || state.requestId !== requestId) return this.#flush();
    this.#lastActivity = now;
    this.#enter({ kind: 'transaction' });
    if (!outcome.ok) {
      this.#fail(outcome.response, state.purpose.verb);
      return this.#resume();
    }
    const size = this.#locked!.maildrop.messages[state.n - 1].size;
    const bytes = state.purpose.verb === 'TOP' ? topOfMessage(outcome.bytes, state.purpose.lines) : outcome.bytes;
    this.#status(state.purpose.verb === 'TOP' ? pop3Replies.top() : pop3Replies.message(size));
    // RFC 1939 §3: lines starting with "." are byte-stuffed, and the text ends with CRLF.
    if (bytes.length > 0) this.#out.push(dotStuff(bytes));
    this.#out.push(TERMINATOR);
    return this.#resume();
  }

  /** Answers an 'update' event: RFC 1939 §6, +OK only when every marked message is gone. */
  resolveUpdate(requestId: number, outcome: UpdateOutcome, now: number): Pop3Step {
    const state = this.#state;
    if (state.kind !== 'updating' || state.requestId !== requestId) return this.#flush();
    this.#lastActivity = now;
    if (outcome.ok) this.#status(pop3Replies.byeDeleted(this.#config.hostname, state.count));
    else this.#fail(outcome.response, 'QUIT');
    this.#closeNow();
    return this.#flush();
  }

  /**
   * The TLS handshake that STLS asked for is done. RFC 2595 §4: the session stays in the
   * AUTHORIZATION state and the client asks CAPA again; a USER given before is forgotten.
   */
  tlsStarted(_info: TlsInfo, now: number): Pop3Step {
    if (this.#state.kind !== 'tls-handshake') return this.#flush();
    this.#lastActivity = now;
    this.#tls = true;
    this.#pending = null;
    this.#enter({ kind: 'authorization', user: null });
    return this.#flush();
  }

  /**
   * RFC 1939 §3: when the autologout timer expires the session ends without UPDATE and
   * without a response.
   */
  tick(now: number): Pop3Step {
    if (now >= this.deadline) this.#closeNow();
    return this.#flush();
  }

  /** The client went away: no UPDATE (RFC 1939 §6), and the lock is given back. */
  peerClosed(): Pop3Step {
    if (!this.#close) this.#closeNow();
    return this.#flush();
  }

  /** The server is stopping: a waiting session is told -ERR [SYS/TEMP] and closed without UPDATE. */
  shutdown(): Pop3Step {
    this.#draining = true;
    this.#closeIfDraining();
    return this.#flush();
  }

  #resume(): Pop3Step {
    const pending = this.#pending;
    this.#pending = null;
    if (pending && !this.#close) this.#process(pending);
    else this.#closeIfDraining();
    return this.#flush();
  }

  #process(input: Uint8Array): void {
    let i = 0;
    while (i < input.length && !this.#close) {
      const state = this.#state;
      switch (state.kind) {
        case 'authenticating':
        case 'locking':
        case 'reading':
        case 'updating':
          // RFC 2449 §6.6 (PIPELINING): commands behind one that waits are answered after it.
          this.#pending = input.slice(i);
          return;
        case 'tls-handshake':
        case 'closed':
          return;
        case 'authorization':
        case 'sasl':
        case 'transaction':
          break;
        default: {
          const never: never = state;
          return never;
        }
      }
      const limit = state.kind === 'sasl' ? this.#config.limits.saslLineBytes : this.#config.limits.commandLineBytes;
      const lf = input.indexOf(LF, i);
      if (this.#discardingLongLine) {
        if (lf < 0) return;
        this.#discardingLongLine = false;
        this.#longLine();
        i = lf + 1;
        continue;
      }
      if (lf < 0) {
        if (input.length - i > limit) this.#discardingLongLine = true;
        else this.#pending = input.slice(i);
        return;
      }
      if (lf + 1 - i > limit) {
        this.#longLine();
        i = lf + 1;
        continue;
      }
      const end = lf > i && input[lf - 1] === CR ? lf - 1 : lf;
      const line = UTF8.decode(input.subarray(i, end));
      i = lf + 1;
      if (state.kind === 'sasl') this.#saslResponse(line);
      else this.#command(line);
      if (this.#startTls) return;
    }
    this.#closeIfDraining();
  }

  #longLine(): void {
    if (this.#state.kind === 'sasl') this.#enter({ kind: 'authorization', user: null });
    this.#fail(pop3Replies.lineTooLong(), '(line too long)');
  }

  #command(line: string): void {
    const space = line.indexOf(' ');
    const word = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const args = space < 0 ? '' : line.slice(space + 1);
    if (!isVerb(word)) return this.#fail(pop3Replies.unknownCommand(), summarize(word, line));
    const spec: CommandSpec = COMMANDS[word];
    if (!spec.allowed.includes(this.#state.kind)) return this.#fail(pop3Replies.wrongState(word, spec.hint), summarize(word, line));
    // PASS keeps its spaces (RFC 1939 §7); other arguments are single-space separated words.
    spec.apply(this.#turn, word === 'PASS' ? args : args.trim());
  }

  /** A line of the SASL exchange (RFC 5034 §4): base64, or "*" to cancel. */
  #saslResponse(line: string): void {
    this.#enter({ kind: 'authorization', user: null });
    if (line.trim() === '*') return this.#fail(pop3Replies.saslCancelled(), 'AUTH');
    readPlain(this.#turn, line);
  }

  /** The view the command handlers get; built once per session. */
  #createTurn(): Turn {
    const session = this;
    return {
      get config() {
        return session.#config;
      },
      get state() {
        return session.#state;
      },
      get tls() {
        return session.#tls;
      },
      get locked() {
        return session.#locked;
      },
      enter: (next) => this.#enter(next),
      ok: (r, lines) => {
        this.#status(r);
        if (lines !== undefined) this.#out.push(textBlock(lines));
      },
      fail: (r, command) => this.#fail(r, command),
      challenge: () => {
        this.#out.push(pop3Replies.saslChallenge());
      },
      close: () => this.#closeNow(),
      startTls: () => {
        this.#startTls = true;
        this.#pending = null;
        this.#enter({ kind: 'tls-handshake' });
      },
      authenticate: (mechanism, authzid, username, password) => {
        const requestId = this.#nextRequest++;
        this.#enter({ kind: 'authenticating', requestId, mechanism });
        this.#events.push({ kind: 'auth', requestId, mechanism, authzid, username, password });
      },
      read: (n, purpose) => {
        const locked = this.#locked!;
        const requestId = this.#nextRequest++;
        this.#enter({ kind: 'reading', requestId, n, purpose });
        this.#events.push({ kind: 'read', requestId, user: locked.user, uid: locked.maildrop.messages[n - 1].uid });
      },
      update: () => {
        const locked = this.#locked!;
        const deletedUids = locked.maildrop.messages.filter((_, i) => locked.deleted[i]).map((m) => m.uid);
        if (deletedUids.length === 0) {
          this.#status(pop3Replies.bye(this.#config.hostname));
          return this.#closeNow();
        }
        const requestId = this.#nextRequest++;
        this.#enter({ kind: 'updating', requestId, count: deletedUids.length });
        this.#events.push({ kind: 'update', requestId, user: locked.user, deletedUids });
      },
    };
  }

  #enter(next: State): void {
    if (this.#trace && next.kind !== this.#state.kind) {
      this.#events.push({ kind: 'transition', from: this.#state.kind, to: next.kind });
    }
    this.#state = next;
  }

  #status(r: Pop3Response): void {
    this.#out.push(formatPop3Response(r));
  }

  /** The error funnel: writes, reports, counts errors, and slows down a client that keeps failing. */
  #fail(r: Pop3Response, command: string): void {
    this.#status(r);
    this.#events.push({ kind: 'rejected', command, response: r });
    this.#errors++;
    if (this.#errors > DELAY_AFTER_ERRORS) {
      this.#delayMs = Math.min(DELAY_MAX_MS, (this.#errors - DELAY_AFTER_ERRORS) * DELAY_STEP_MS);
    }
    if (this.#errors > this.#config.limits.maxErrors && !this.#close) {
      this.#status(pop3Replies.tooManyErrors());
      this.#closeNow();
    }
  }

  #closeNow(): void {
    this.#close = true;
    this.#pending = null;
    const state = this.#state;
    if (state.kind === 'locking') this.#abandonedLock = { requestId: state.requestId, user: state.user };
    if (this.#locked) {
      this.#events.push({ kind: 'release', user: this.#locked.user });
      this.#locked = null;
    }
    this.#enter({ kind: 'closed' });
  }

  #closeIfDraining(): void {
    const kind = this.#state.kind;
    if (this.#draining && !this.#close && (kind === 'authorization' || kind === 'transaction' || kind === 'sasl')) {
      this.#status(pop3Replies.shuttingDown(this.#config.hostname));
      this.#closeNow();
    }
  }

  #flush(): Pop3Step {
    const step: Pop3Step = { out: joinOut(this.#out), events: this.#events, close: this.#close, startTls: this.#startTls, delayMs: this.#delayMs };
    if (this.#out.length > 0) this.#out = [];
    if (this.#events.length > 0) this.#events = [];
    this.#startTls = false;
    this.#delayMs = 0;
    return step;
  }
}

/** One step's output: text while it is all text, else the octets of every chunk in order. */
function joinOut(chunks: readonly (string | Uint8Array)[]): string | Uint8Array {
  if (chunks.length === 0) return '';
  if (chunks.every((c) => typeof c === 'string')) return chunks.join('');
  return concat(chunks.map((c) => (typeof c === 'string' ? ENCODER.encode(c) : c)));
}
