/**
 * @module The server side of an IMAP4rev1 session (RFC 3501) on one login's INBOX, with LITERAL+
 * (RFC 7888), SASL-IR (RFC 4959), ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342),
 * UIDPLUS's UID EXPUNGE (RFC 4315), IDLE (RFC 2177) and UNSELECT (RFC 3691), as a pure state machine.
 * Rule 1: bytes and the time come in, responses and events go out; the mailbox is reached through
 *         events answered by the adapter (mailbox-port.ts), never directly.
 * Rule 2: every command is a row of COMMANDS with the states it is allowed in; "not allowed now"
 *         comes from the table, never from the handlers.
 * Rule 3: while the host answers an event no further command is read; the bytes wait in the
 *         reader, so pipelined commands are answered in order (RFC 3501 §5.5).
 * Rule 4: untagged EXPUNGE goes out only where selected-mailbox.ts allows it (RFC 3501 §7.4.1):
 *         at the end of a command other than FETCH, STORE and SEARCH, or during IDLE.
 */
import { concat } from '../data.ts';
import { decodeSaslText, parsePlainMessage } from '../sasl.ts';
import type { ProtocolSession, ProtocolStep, TlsInfo } from '../protocol-session.ts';
import type { ChangeOutcome, FlagChange, ImapMailboxSnapshot, ImapMessageData, LoadOutcome, MessageReads, OpenOutcome } from './mailbox-port.ts';
import { fetchNeeds, writeFetchResponse } from './fetch-response.ts';
import { parseFetchItems, setsSeen, type FetchItem } from './fetch.ts';
import { applyStore, parseStoreAction, type StoreAction } from './flags.ts';
import { ResponseBuilder } from './format.ts';
import { astringText, CommandReader, DEFAULT_MAX_LINE_BYTES, parseSequenceSet, type ImapCommand, type ImapValue, type ReaderItem } from './parser.ts';
import { formatStatus, imapResponses, type ImapStatus } from './responses.ts';
import { matchesSearch, parseSearch, searchNeeds, type SearchKey } from './search.ts';
import { SelectedMailbox, type MailboxChange } from './selected-mailbox.ts';

export interface ImapLimits {
  /** Longest command line between literals, CRLF included (issue 13: 64 KB). */
  readonly maxLineBytes: number;
  /** Largest literal accepted (--max-size). */
  readonly maxLiteralBytes: number;
  /** Autologout before login (issue 13: 60 s). */
  readonly preauthIdleMs: number;
  /** RFC 3501 §5.4: at least 30 minutes once authenticated; IDLE clients re-issue every 29. */
  readonly idleTimeoutMs: number;
  /** Commands answered BAD or NO tolerated before the connection is closed. */
  readonly maxErrors: number;
}

export const DEFAULT_IMAP_LIMITS: ImapLimits = Object.freeze({
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  maxLiteralBytes: 25 * 1024 * 1024,
  preauthIdleMs: 60_000,
  idleTimeoutMs: 30 * 60_000,
  maxErrors: 50,
});

/** What one IMAP session needs to know; built once per connection by the adapter. */
export interface ImapConfig {
  readonly hostname: string;
  readonly limits: ImapLimits;
  /** 'starttls': STARTTLS is offered; 'implicit': the connection is TLS from its first byte. */
  readonly tls: 'none' | 'starttls' | 'implicit';
  /**
   * LOGIN and AUTHENTICATE PLAIN may be used before TLS (catch-all mode on loopback, or
   * --allow-insecure-auth). When false, CAPABILITY says LOGINDISABLED and no AUTH=PLAIN.
   */
  readonly allowInsecureAuth: boolean;
}

export type ImapMechanism = 'LOGIN' | 'PLAIN';

export type ImapEvent =
  /** Credentials to check; answer with resolveAuth(requestId, …). */
  | {
      readonly kind: 'auth';
      readonly requestId: number;
      readonly mechanism: ImapMechanism;
      readonly authzid: string;
      readonly username: string;
      readonly password: string;
    }
  /** One log line per login. */
  | { readonly kind: 'logged-in'; readonly user: string; readonly mechanism: ImapMechanism }
  /** Open the INBOX (port open()); answer with resolveOpen(requestId, …). */
  | { readonly kind: 'open'; readonly requestId: number; readonly user: string; readonly claimRecent: boolean }
  /** The session now shows the INBOX: send it the changes made elsewhere through notify(). */
  | { readonly kind: 'selected'; readonly user: string }
  /** The session no longer shows a mailbox: notify() is no longer needed. */
  | { readonly kind: 'unselected'; readonly user: string }
  /** Message data for FETCH or SEARCH (port load()); answer with resolveLoad(requestId, …). */
  | { readonly kind: 'load'; readonly requestId: number; readonly user: string; readonly uids: readonly number[]; readonly reads: MessageReads }
  /** New flags to keep (port storeFlags()); answer with resolveChange(requestId, …). */
  | { readonly kind: 'store-flags'; readonly requestId: number; readonly user: string; readonly changes: readonly FlagChange[] }
  /** Messages to remove for this login (port expunge()); answer with resolveChange(requestId, …). */
  | { readonly kind: 'expunge'; readonly requestId: number; readonly user: string; readonly uids: readonly number[] }
  /** A command answered NO or BAD, for the log. */
  | { readonly kind: 'rejected'; readonly command: string; readonly status: ImapStatus };

export type ImapStep = ProtocolStep<ImapEvent>;

export type ImapAuthOutcome = { readonly ok: true; readonly user: string } | { readonly ok: false; readonly status: ImapStatus };

/** The mailbox this session has selected. */
interface Selection {
  readonly mailbox: SelectedMailbox;
  readonly readOnly: boolean;
  readonly uidValidity: number;
  readonly recent: Set<number>;
}

/** What a session waits for from the host, and what it does with the answer. */
type Wait =
  | { readonly kind: 'auth'; readonly tag: string; readonly mechanism: ImapMechanism }
  | { readonly kind: 'open'; readonly tag: string; readonly purpose: 'SELECT' | 'EXAMINE' | 'STATUS'; readonly items: readonly string[] }
  | { readonly kind: 'fetch'; readonly command: ImapCommand; readonly seqs: readonly number[]; readonly items: readonly FetchItem[] }
  | { readonly kind: 'fetch-seen'; readonly command: ImapCommand; readonly seqs: readonly number[]; readonly items: readonly FetchItem[]; readonly loaded: ReadonlyMap<number, ImapMessageData>; readonly changes: readonly FlagChange[] }
  | { readonly kind: 'search'; readonly command: ImapCommand; readonly key: SearchKey }
  | { readonly kind: 'store'; readonly command: ImapCommand; readonly action: StoreAction; readonly changes: readonly { seq: number; change: FlagChange }[]; readonly missing: boolean }
  | { readonly kind: 'expunge'; readonly command: ImapCommand; readonly uids: readonly number[]; readonly then: 'report' | 'close' };

type State =
  | { readonly kind: 'not-authenticated' }
  | { readonly kind: 'authenticated' }
  | { readonly kind: 'selected' }
  /** AUTHENTICATE PLAIN sent "+" and waits for the client's response line. */
  | { readonly kind: 'sasl'; readonly tag: string }
  /** RFC 2177: between "+ idling" and DONE. */
  | { readonly kind: 'idle'; readonly tag: string }
  | { readonly kind: 'waiting'; readonly requestId: number; readonly wait: Wait; readonly resume: 'not-authenticated' | 'authenticated' | 'selected' }
  | { readonly kind: 'tls-handshake' }
  | { readonly kind: 'closed' };

export type ImapStateKind = State['kind'];
type CommandState = 'not-authenticated' | 'authenticated' | 'selected';

const ANY: readonly CommandState[] = ['not-authenticated', 'authenticated', 'selected'];
const NOT_AUTH: readonly CommandState[] = ['not-authenticated'];
const AUTH: readonly CommandState[] = ['authenticated', 'selected'];
const SELECTED: readonly CommandState[] = ['selected'];
const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
const STATUS_ITEMS = ['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN'];
const ENCODER = new TextEncoder();

interface Turn {
  readonly config: ImapConfig;
  readonly tls: boolean;
  readonly user: string | null;
  readonly selection: Selection | null;
  untagged(text: string): void;
  /** The tagged OK, after the pending updates; EXPUNGE among them only when `allowExpunge`. */
  ok(tag: string, s: ImapStatus, allowExpunge?: boolean): void;
  fail(tag: string, s: ImapStatus, command: string): void;
  wait(wait: Wait, event: (requestId: number) => ImapEvent): void;
  startTls(tag: string): void;
  enter(next: State): void;
  unselect(): void;
  logout(tag: string): void;
}

interface CommandSpec {
  readonly allowed: readonly CommandState[];
  readonly hint: string;
  readonly apply: (turn: Turn, command: ImapCommand) => void;
}

function cleartextAllowed(config: ImapConfig, tls: boolean): boolean {
  return tls || config.allowInsecureAuth;
}

/** RFC 3501 §7.2.1: the capabilities of the connection as it stands. */
function capabilities(config: ImapConfig, tls: boolean, authenticated: boolean): string {
  const caps = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'NAMESPACE', 'UIDPLUS', 'IDLE', 'UNSELECT'];
  if (!authenticated) {
    if (config.tls === 'starttls' && !tls) caps.push('STARTTLS');
    // RFC 3501 §6.2.3 and §7.2.1: LOGINDISABLED, and no mechanism that sends a cleartext password.
    if (cleartextAllowed(config, tls)) caps.push('AUTH=PLAIN');
    else caps.push('LOGINDISABLED');
  }
  return caps.join(' ');
}

/** The argument as a string, or null: RFC 3501 §9 astring. */
function text(v: ImapValue | undefined): string | null {
  return astringText(v);
}

function isInbox(name: string): boolean {
  // RFC 3501 §5.1: INBOX is case-insensitive.
  return name.toUpperCase() === 'INBOX';
}

/**
 * RFC 3501 §6.3.8: whether `name` matches the reference and pattern, where "*" matches anything
 * and "%" anything but the delimiter "/". A table over (pattern, name) positions, so a client's
 * pattern of many wildcards costs its length times the name's, never a backtracking blow-up.
 */
function listMatches(reference: string, pattern: string, name: string): boolean {
  const p = (reference + pattern).toUpperCase();
  const n = name.toUpperCase();
  // row[j]: the pattern read so far matches the first j characters of the name.
  let row = Array.from({ length: n.length + 1 }, (_, j) => j === 0);
  for (const ch of p) {
    const next = new Array<boolean>(n.length + 1).fill(false);
    if (ch === '*' || ch === '%') {
      next[0] = row[0];
      for (let j = 1; j <= n.length; j++) next[j] = row[j] || (next[j - 1] && (ch === '*' || n[j - 1] !== '/'));
    } else {
      for (let j = 1; j <= n.length; j++) next[j] = row[j - 1] && n[j - 1] === ch;
    }
    row = next;
  }
  return row[n.length];
}

function hasFlag(flags: readonly string[], flag: string): boolean {
  return flags.some((f) => f.toLowerCase() === flag.toLowerCase());
}

/** RFC 3501 §6.2.3: LOGIN userid password. */
function login(turn: Turn, c: ImapCommand): void {
  if (!cleartextAllowed(turn.config, turn.tls)) return turn.fail(c.tag, imapResponses.cleartextNeedsTls(), 'LOGIN');
  const username = text(c.args[0]);
  const password = text(c.args[1]);
  if (c.args.length !== 2 || username === null || password === null) return turn.fail(c.tag, imapResponses.badSyntax('LOGIN takes a user name and a password'), 'LOGIN');
  authenticate(turn, c.tag, 'LOGIN', '', username, password);
}

function authenticate(turn: Turn, tag: string, mechanism: ImapMechanism, authzid: string, username: string, password: string): void {
  turn.wait({ kind: 'auth', tag, mechanism }, (requestId) => ({ kind: 'auth', requestId, mechanism, authzid, username, password }));
}

/** RFC 4616 over RFC 3501 §6.2.2: one base64 response, "=" for empty (RFC 4959 §3). */
function plainResponse(turn: Turn, tag: string, response: string): void {
  if (response.trim() === '*') return turn.fail(tag, imapResponses.saslCancelled(), 'AUTHENTICATE');
  const decoded = decodeSaslText(response);
  if (decoded === null || response.trim() === '') return turn.fail(tag, imapResponses.saslBadBase64(), 'AUTHENTICATE');
  const plain = parsePlainMessage(decoded);
  if (plain === null) return turn.fail(tag, imapResponses.authFailed(), 'AUTHENTICATE');
  authenticate(turn, tag, 'PLAIN', plain.authzid, plain.authcid, plain.password);
}

/** The mailbox a SELECT, EXAMINE or STATUS names; only INBOX exists. */
function openInbox(turn: Turn, c: ImapCommand, purpose: 'SELECT' | 'EXAMINE' | 'STATUS', items: readonly string[]): void {
  const name = text(c.args[0]);
  if (name === null) return turn.fail(c.tag, imapResponses.badSyntax(`${purpose} needs a mailbox name`), purpose);
  if (!isInbox(name)) {
    // RFC 3501 §6.3.1: a failed SELECT leaves the session with no mailbox selected.
    if (purpose !== 'STATUS') turn.unselect();
    return turn.fail(c.tag, imapResponses.noSuchMailbox(name), purpose);
  }
  const user = turn.user!;
  // RFC 3501 §6.3.1: a SELECT while a mailbox is selected first deselects it, without expunging.
  if (purpose !== 'STATUS') turn.unselect();
  const claimRecent = purpose === 'SELECT';
  turn.wait({ kind: 'open', tag: c.tag, purpose, items }, (requestId) => ({ kind: 'open', requestId, user, claimRecent }));
}

/** The message numbers a command's first argument names, or null when it was answered BAD. */
function sequence(turn: Turn, c: ImapCommand): readonly number[] | null {
  const arg = c.args[0];
  const set = arg?.kind === 'atom' ? parseSequenceSet(arg.value) : null;
  if (set === null) {
    turn.fail(c.tag, imapResponses.badSequence('expected a sequence set such as 1:* or 2,4'), c.name);
    return null;
  }
  const resolved = turn.selection!.mailbox.resolve(set, c.uid, null);
  if (!resolved.ok) {
    turn.fail(c.tag, imapResponses.badSequence(resolved.why), c.name);
    return null;
  }
  return resolved.seqs;
}

function uidsOf(selection: Selection, seqs: readonly number[]): number[] {
  return seqs.map((s) => selection.mailbox.uidAt(s)!);
}

function commandName(c: ImapCommand): string {
  return c.uid ? `UID ${c.name}` : c.name;
}

const cannot: CommandSpec = {
  allowed: AUTH,
  hint: 'log in first',
  apply(turn, c) {
    turn.fail(c.tag, imapResponses.cannot(commandName(c)), commandName(c));
  },
};

const COMMANDS: Record<string, CommandSpec> = {
  CAPABILITY: {
    allowed: ANY,
    hint: '',
    apply(turn, c) {
      turn.untagged(`* CAPABILITY ${capabilities(turn.config, turn.tls, turn.user !== null)}\r\n`);
      turn.ok(c.tag, imapResponses.done('CAPABILITY'));
    },
  },
  NOOP: {
    allowed: ANY,
    hint: '',
    apply(turn, c) {
      turn.ok(c.tag, imapResponses.done('NOOP'));
    },
  },
  LOGOUT: {
    allowed: ANY,
    hint: '',
    apply(turn, c) {
      turn.logout(c.tag);
    },
  },
  // RFC 2971 §3.1: the server's ID, whatever the client sent (a list or NIL).
  ID: {
    allowed: ANY,
    hint: '',
    apply(turn, c) {
      const arg = c.args[0];
      if (c.args.length !== 1 || !(arg.kind === 'list' || (arg.kind === 'atom' && arg.value.toUpperCase() === 'NIL'))) {
        return turn.fail(c.tag, imapResponses.badSyntax('ID takes a parenthesised list or NIL'), 'ID');
      }
      turn.untagged('* ID ("name" "mailbox")\r\n');
      turn.ok(c.tag, imapResponses.done('ID'));
    },
  },
  // RFC 3501 §6.2.1
  STARTTLS: {
    allowed: NOT_AUTH,
    hint: 'TLS can only be started before login',
    apply(turn, c) {
      if (turn.tls) return turn.fail(c.tag, imapResponses.tlsAlreadyActive(), 'STARTTLS');
      if (turn.config.tls !== 'starttls') return turn.fail(c.tag, imapResponses.tlsNotOffered(), 'STARTTLS');
      if (c.args.length > 0) return turn.fail(c.tag, imapResponses.badSyntax('STARTTLS takes no arguments'), 'STARTTLS');
      turn.startTls(c.tag);
    },
  },
  LOGIN: { allowed: NOT_AUTH, hint: 'already logged in', apply: login },
  // RFC 3501 §6.2.2 with the initial response of RFC 4959.
  AUTHENTICATE: {
    allowed: NOT_AUTH,
    hint: 'already logged in',
    apply(turn, c) {
      const mechanism = c.args[0]?.kind === 'atom' ? c.args[0].value.toUpperCase() : null;
      if (mechanism === null || c.args.length > 2) return turn.fail(c.tag, imapResponses.badSyntax('AUTHENTICATE takes a mechanism and an optional initial response'), 'AUTHENTICATE');
      if (mechanism !== 'PLAIN') return turn.fail(c.tag, imapResponses.noMechanism(mechanism), 'AUTHENTICATE');
      if (!cleartextAllowed(turn.config, turn.tls)) return turn.fail(c.tag, imapResponses.cleartextNeedsTls(), 'AUTHENTICATE');
      if (c.args.length === 2) {
        const initial = c.args[1].kind === 'atom' ? c.args[1].value : null;
        if (initial === null) return turn.fail(c.tag, imapResponses.saslBadBase64(), 'AUTHENTICATE');
        return plainResponse(turn, c.tag, initial);
      }
      turn.untagged(imapResponses.saslContinue());
      turn.enter({ kind: 'sasl', tag: c.tag });
    },
  },
  // RFC 5161 §3.1: none of the extensions this server speaks needs enabling.
  ENABLE: {
    allowed: AUTH,
    hint: 'log in first',
    apply(turn, c) {
      if (c.args.length === 0 || c.args.some((a) => a.kind !== 'atom')) return turn.fail(c.tag, imapResponses.badSyntax('ENABLE takes capability names'), 'ENABLE');
      turn.untagged('* ENABLED\r\n');
      turn.ok(c.tag, imapResponses.done('ENABLE'));
    },
  },
  // RFC 2342 §5: one personal namespace, no prefix, "/" as the hierarchy delimiter.
  NAMESPACE: {
    allowed: AUTH,
    hint: 'log in first',
    apply(turn, c) {
      turn.untagged('* NAMESPACE (("" "/")) NIL NIL\r\n');
      turn.ok(c.tag, imapResponses.done('NAMESPACE'));
    },
  },
  SELECT: {
    allowed: AUTH,
    hint: 'log in first',
    apply(turn, c) {
      if (c.args.length !== 1) return turn.fail(c.tag, imapResponses.badSyntax('SELECT takes a mailbox name'), 'SELECT');
      openInbox(turn, c, 'SELECT', []);
    },
  },
  EXAMINE: {
    allowed: AUTH,
    hint: 'log in first',
    apply(turn, c) {
      if (c.args.length !== 1) return turn.fail(c.tag, imapResponses.badSyntax('EXAMINE takes a mailbox name'), 'EXAMINE');
      openInbox(turn, c, 'EXAMINE', []);
    },
  },
  // RFC 3501 §6.3.10
  STATUS: {
    allowed: AUTH,
    hint: 'log in first',
    apply(turn, c) {
      const list = c.args[1];
      if (c.args.length !== 2 || list.kind !== 'list' || list.items.length === 0) return turn.fail(c.tag, imapResponses.badSyntax('STATUS takes a mailbox name and a list of items'), 'STATUS');
      const items: string[] = [];
      for (const item of list.items) {
        const name = item.kind === 'atom' ? item.value.toUpperCase() : '';
        if (!STATUS_ITEMS.includes(name)) return turn.fail(c.tag, imapResponses.badSyntax(`STATUS items are ${STATUS_ITEMS.join(', ')}`), 'STATUS');
        items.push(name);
      }
      openInbox(turn, c, 'STATUS', items);
    },
  },
  // RFC 3501 §6.3.8 and §6.3.9: INBOX, which has no children and is always subscribed.
  LIST: { allowed: AUTH, hint: 'log in first', apply: (turn, c) => list(turn, c, 'LIST') },
  LSUB: { allowed: AUTH, hint: 'log in first', apply: (turn, c) => list(turn, c, 'LSUB') },
  CREATE: cannot,
  DELETE: cannot,
  RENAME: cannot,
  SUBSCRIBE: cannot,
  UNSUBSCRIBE: cannot,
  APPEND: cannot,
  COPY: { ...cannot, allowed: SELECTED, hint: 'select a mailbox first' },
  MOVE: { ...cannot, allowed: SELECTED, hint: 'select a mailbox first' },
  // RFC 3501 §6.4.1
  CHECK: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      turn.ok(c.tag, imapResponses.done('CHECK'));
    },
  },
  // RFC 3501 §6.4.2: expunges silently, then deselects; nothing is expunged after EXAMINE.
  CLOSE: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      const selection = turn.selection!;
      const uids = deletedUids(selection, null);
      if (selection.readOnly || uids.length === 0) {
        turn.unselect();
        return turn.ok(c.tag, imapResponses.done('CLOSE'));
      }
      expunge(turn, c, uids, 'close');
    },
  },
  // RFC 3691 §2
  UNSELECT: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      turn.unselect();
      turn.ok(c.tag, imapResponses.done('UNSELECT'));
    },
  },
  // RFC 3501 §6.4.3, and UID EXPUNGE of RFC 4315 §2.1.
  EXPUNGE: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      const selection = turn.selection!;
      if (selection.readOnly) return turn.fail(c.tag, imapResponses.readOnly(commandName(c)), commandName(c));
      let within: Set<number> | null = null;
      if (c.uid) {
        if (c.args.length !== 1) return turn.fail(c.tag, imapResponses.badSyntax('UID EXPUNGE takes a UID set'), 'UID EXPUNGE');
        const seqs = sequence(turn, c);
        if (seqs === null) return;
        within = new Set(uidsOf(selection, seqs));
      } else if (c.args.length > 0) return turn.fail(c.tag, imapResponses.badSyntax('EXPUNGE takes no arguments'), 'EXPUNGE');
      const uids = deletedUids(selection, within);
      if (uids.length === 0) return turn.ok(c.tag, imapResponses.done(commandName(c)));
      expunge(turn, c, uids, 'report');
    },
  },
  // RFC 3501 §6.4.5
  FETCH: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      if (c.args.length < 2) return turn.fail(c.tag, imapResponses.badSyntax('FETCH takes a sequence set and data items'), commandName(c));
      const request = parseFetchItems(c.args.slice(1), c.uid);
      if (!request.ok) return turn.fail(c.tag, imapResponses.badSyntax(request.why), commandName(c));
      const seqs = sequence(turn, c);
      if (seqs === null) return;
      const selection = turn.selection!;
      const user = turn.user!;
      const needs = fetchNeeds(request.items);
      const needsData = needs.bytes || needs.structure || needs.envelope || request.items.some((i) => i.kind === 'INTERNALDATE' || i.kind === 'RFC822.SIZE');
      const live = seqs.filter((s) => !selection.mailbox.isExpunged(s));
      const uids = uidsOf(selection, needsData ? live : []);
      const reads: MessageReads = needs.bytes || needs.structure ? 'message' : needs.envelope ? 'header' : 'none';
      turn.wait({ kind: 'fetch', command: c, seqs, items: request.items }, (requestId) => ({ kind: 'load', requestId, user, uids, reads }));
    },
  },
  // RFC 3501 §6.4.6
  STORE: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      if (c.args.length < 3) return turn.fail(c.tag, imapResponses.badSyntax('STORE takes a sequence set, a data item and flags'), commandName(c));
      const request = parseStoreAction(c.args.slice(1));
      if (!request.ok) return turn.fail(c.tag, imapResponses.badSyntax(request.why), commandName(c));
      const seqs = sequence(turn, c);
      if (seqs === null) return;
      const selection = turn.selection!;
      if (selection.readOnly) return turn.fail(c.tag, imapResponses.readOnly(commandName(c)), commandName(c));
      const changes: { seq: number; change: FlagChange }[] = [];
      let missing = false;
      for (const seq of seqs) {
        if (selection.mailbox.isExpunged(seq)) {
          missing = true;
          continue;
        }
        const uid = selection.mailbox.uidAt(seq)!;
        changes.push({ seq, change: { uid, flags: applyStore(selection.mailbox.flagsAt(seq)!, request.action) } });
      }
      if (changes.length === 0) return finishStore(turn, c, request.action, [], missing);
      const user = turn.user!;
      turn.wait({ kind: 'store', command: c, action: request.action, changes, missing }, (requestId) => ({
        kind: 'store-flags',
        requestId,
        user,
        changes: changes.map((x) => x.change),
      }));
    },
  },
  // RFC 3501 §6.4.4
  SEARCH: {
    allowed: SELECTED,
    hint: 'select a mailbox first',
    apply(turn, c) {
      const request = parseSearch(c.args);
      if (!request.ok) return turn.fail(c.tag, request.status, commandName(c));
      const selection = turn.selection!;
      const user = turn.user!;
      const uids: number[] = [];
      for (let seq = 1; seq <= selection.mailbox.exists; seq++) if (!selection.mailbox.isExpunged(seq)) uids.push(selection.mailbox.uidAt(seq)!);
      const needs = searchNeeds(request.key);
      const reads: MessageReads = needs.body ? 'message' : needs.headers ? 'header' : 'none';
      turn.wait({ kind: 'search', command: c, key: request.key }, (requestId) => ({ kind: 'load', requestId, user, uids, reads }));
    },
  },
  // RFC 2177 §3
  IDLE: {
    allowed: AUTH,
    hint: 'log in first',
    apply(turn, c) {
      if (c.args.length > 0) return turn.fail(c.tag, imapResponses.badSyntax('IDLE takes no arguments'), 'IDLE');
      turn.untagged(imapResponses.idleContinue());
      turn.enter({ kind: 'idle', tag: c.tag });
    },
  },
};

/** UID is allowed before these only (RFC 3501 §6.4.8, RFC 4315 §2.1). */
const UID_COMMANDS = new Set(['FETCH', 'STORE', 'SEARCH', 'EXPUNGE', 'COPY', 'MOVE']);

function list(turn: Turn, c: ImapCommand, verb: 'LIST' | 'LSUB'): void {
  const reference = text(c.args[0]);
  const pattern = text(c.args[1]);
  if (c.args.length !== 2 || reference === null || pattern === null) return turn.fail(c.tag, imapResponses.badSyntax(`${verb} takes a reference and a mailbox pattern`), verb);
  // RFC 3501 §6.3.8: an empty pattern asks for the hierarchy delimiter and root.
  if (verb === 'LIST' && pattern === '') turn.untagged('* LIST (\\Noselect) "/" ""\r\n');
  else if (listMatches(reference, pattern, 'INBOX')) turn.untagged(`* ${verb} (\\HasNoChildren) "/" INBOX\r\n`);
  turn.ok(c.tag, imapResponses.done(verb));
}

function deletedUids(selection: Selection, within: ReadonlySet<number> | null): number[] {
  const uids: number[] = [];
  for (let seq = 1; seq <= selection.mailbox.exists; seq++) {
    const uid = selection.mailbox.uidAt(seq)!;
    if (selection.mailbox.isExpunged(seq) || (within !== null && !within.has(uid))) continue;
    if (hasFlag(selection.mailbox.flagsAt(seq)!, '\\Deleted')) uids.push(uid);
  }
  return uids;
}

function expunge(turn: Turn, c: ImapCommand, uids: readonly number[], then: 'report' | 'close'): void {
  const user = turn.user!;
  turn.wait({ kind: 'expunge', command: c, uids, then }, (requestId) => ({ kind: 'expunge', requestId, user, uids }));
}

function finishStore(turn: Turn, c: ImapCommand, action: StoreAction, changes: readonly { seq: number; change: FlagChange }[], missing: boolean): void {
  const selection = turn.selection!;
  for (const { seq, change } of changes) {
    selection.mailbox.storedHere(change.uid, change.flags);
    // RFC 3501 §6.4.6: without .SILENT the new flags come back as an untagged FETCH.
    if (!action.silent) turn.untagged(`* ${seq} FETCH (${c.uid ? `UID ${change.uid} ` : ''}FLAGS (${shownFlags(selection, change.uid, change.flags).join(' ')}))\r\n`);
  }
  if (missing) turn.fail(c.tag, imapResponses.expungeIssued(commandName(c)), commandName(c));
  else turn.ok(c.tag, imapResponses.done(commandName(c)), c.uid);
}

/** The flags as this session shows them: \Recent added for the messages recent to it. */
function shownFlags(selection: Selection, uid: number, flags: readonly string[]): string[] {
  return selection.recent.has(uid) ? [...flags, '\\Recent'] : [...flags];
}

export class ImapSession implements ProtocolSession<ImapEvent> {
  readonly #config: ImapConfig;
  readonly #reader: CommandReader;
  #state: State = { kind: 'not-authenticated' };
  #tls: boolean;
  #user: string | null = null;
  #selection: Selection | null = null;
  #out: (string | Uint8Array)[] = [];
  #events: ImapEvent[] = [];
  #close = false;
  #startTls = false;
  #errors = 0;
  #draining = false;
  #nextRequest = 1;
  #lastActivity: number;
  readonly #turn: Turn = this.#createTurn();

  /** `tls` is given on an implicit-TLS listener (RFC 8314): the session starts encrypted. */
  constructor(config: ImapConfig, now: number, options: { tls?: TlsInfo | null } = {}) {
    this.#config = config;
    this.#lastActivity = now;
    this.#tls = (options.tls ?? null) !== null || config.tls === 'implicit';
    this.#reader = new CommandReader({ maxLineBytes: config.limits.maxLineBytes, maxLiteralBytes: config.limits.maxLiteralBytes });
  }

  get state(): ImapStateKind {
    return this.#state.kind;
  }

  /** The time at which tick() ends the session, or Infinity while the host is answering. */
  get deadline(): number {
    const kind = this.#state.kind;
    if (kind === 'waiting' || kind === 'closed') return Infinity;
    const limit = this.#user === null ? this.#config.limits.preauthIdleMs : this.#config.limits.idleTimeoutMs;
    return this.#lastActivity + limit;
  }

  /** RFC 3501 §7.1.1: the greeting, with the capabilities (§7.2.1). */
  greet(now: number): ImapStep {
    this.#lastActivity = now;
    this.#untagged(formatStatus(null, imapResponses.greeting(this.#config.hostname, capabilities(this.#config, this.#tls, false))));
    return this.#flush();
  }

  receive(bytes: Uint8Array, now: number): ImapStep {
    const kind = this.#state.kind;
    // RFC 3501 §6.2.1: nothing the client sent in clear after STARTTLS is read.
    if (kind === 'closed' || kind === 'tls-handshake') return this.#flush();
    this.#lastActivity = now;
    this.#reader.feed(bytes);
    // Rule 3 keeps pipelined bytes while the host answers; more than one command's worth is a
    // client that does not wait for answers, and it is closed rather than buffered without end.
    if (kind === 'waiting' && this.#reader.buffered > this.#config.limits.maxLiteralBytes + 2 * this.#config.limits.maxLineBytes) {
      this.#untagged(formatStatus(null, imapResponses.tooMuchPipelined()));
      this.#closeNow();
      return this.#flush();
    }
    this.#process();
    return this.#flush();
  }

  /** Answers an 'auth' event with the host's verdict. */
  resolveAuth(requestId: number, outcome: ImapAuthOutcome, now: number): ImapStep {
    const wait = this.#answered(requestId, 'auth', now);
    if (wait === null) return this.#flush();
    if (!outcome.ok) {
      this.#enter({ kind: 'not-authenticated' });
      this.#fail(wait.tag, outcome.status, wait.mechanism === 'LOGIN' ? 'LOGIN' : 'AUTHENTICATE');
      return this.#resume();
    }
    this.#user = outcome.user;
    this.#enter({ kind: 'authenticated' });
    this.#events.push({ kind: 'logged-in', user: outcome.user, mechanism: wait.mechanism });
    // RFC 3501 §7.2.1: the capabilities change after login, so the OK carries them.
    this.#status(wait.tag, imapResponses.loggedIn(capabilities(this.#config, this.#tls, true)));
    return this.#resume();
  }

  /** Answers an 'open' event: SELECT and EXAMINE responses (RFC 3501 §6.3.1), or STATUS (§6.3.10). */
  resolveOpen(requestId: number, outcome: OpenOutcome, now: number): ImapStep {
    const state = this.#state;
    const wait = this.#answered(requestId, 'open', now);
    if (wait === null || state.kind !== 'waiting') return this.#flush();
    if (!outcome.ok) {
      this.#enter({ kind: wait.purpose === 'STATUS' ? state.resume : 'authenticated' });
      this.#fail(wait.tag, outcome.status, wait.purpose);
      return this.#resume();
    }
    const box = outcome.mailbox;
    if (wait.purpose === 'STATUS') {
      this.#enter({ kind: state.resume });
      this.#untagged(`* STATUS INBOX (${wait.items.map((item) => `${item} ${statusValue(box, item)}`).join(' ')})\r\n`);
      this.#endCommand(wait.tag, imapResponses.done('STATUS'), true);
      return this.#resume();
    }
    const readOnly = wait.purpose === 'EXAMINE';
    const mailbox = new SelectedMailbox(box.messages);
    this.#selection = { mailbox, readOnly, uidValidity: box.uidValidity, recent: new Set(box.recentUids) };
    this.#enter({ kind: 'selected' });
    this.#events.push({ kind: 'selected', user: this.#user! });
    const keywords = new Set<string>();
    for (const m of box.messages) for (const f of m.flags) if (!f.startsWith('\\')) keywords.add(f);
    const flags = [...SYSTEM_FLAGS, ...keywords].join(' ');
    this.#untagged(`* FLAGS (${flags})\r\n`);
    this.#untagged(`* ${box.messages.length} EXISTS\r\n`);
    this.#untagged(`* ${box.recentUids.length} RECENT\r\n`);
    const unseen = box.messages.findIndex((m) => !hasFlag(m.flags, '\\Seen'));
    if (unseen >= 0) this.#status(null, imapResponses.unseen(unseen + 1));
    this.#status(null, imapResponses.uidValidity(box.uidValidity));
    this.#status(null, imapResponses.uidNext(box.uidNext));
    // RFC 3501 §7.1: PERMANENTFLAGS; "\*" since keywords may be created. None after EXAMINE.
    this.#status(null, imapResponses.permanentFlags(readOnly ? '' : `${SYSTEM_FLAGS.join(' ')} \\*`));
    this.#status(wait.tag, imapResponses.selected(readOnly));
    return this.#resume();
  }

  /** Answers a 'load' event: the FETCH responses, or the SEARCH result. */
  resolveLoad(requestId: number, outcome: LoadOutcome, now: number): ImapStep {
    const state = this.#state;
    if (state.kind !== 'waiting' || state.requestId !== requestId || (state.wait.kind !== 'fetch' && state.wait.kind !== 'search')) return this.#flush();
    const wait = state.wait;
    this.#lastActivity = now;
    this.#enter({ kind: 'selected' });
    if (!outcome.ok) {
      this.#fail(wait.command.tag, outcome.status, commandName(wait.command));
      return this.#resume();
    }
    const loaded = new Map<number, ImapMessageData>();
    for (const m of outcome.messages) loaded.set(m.uid, m);
    if (wait.kind === 'search') this.#answerSearch(wait.command, wait.key, loaded);
    else this.#answerFetch(wait.command, wait.seqs, wait.items, loaded);
    return this.#resume();
  }

  /** Answers a 'store-flags' or 'expunge' event. */
  resolveChange(requestId: number, outcome: ChangeOutcome, now: number): ImapStep {
    const state = this.#state;
    if (state.kind !== 'waiting' || state.requestId !== requestId) return this.#flush();
    const wait = state.wait;
    if (wait.kind !== 'store' && wait.kind !== 'expunge' && wait.kind !== 'fetch-seen') return this.#flush();
    this.#lastActivity = now;
    this.#enter({ kind: 'selected' });
    const selection = this.#selection!;
    if (!outcome.ok) {
      this.#fail(wait.command.tag, outcome.status, commandName(wait.command));
      return this.#resume();
    }
    switch (wait.kind) {
      case 'store':
        finishStore(this.#turn, wait.command, wait.action, wait.changes, wait.missing);
        break;
      case 'fetch-seen':
        for (const change of wait.changes) selection.mailbox.storedHere(change.uid, change.flags);
        this.#writeFetch(wait.command, wait.seqs, wait.items, wait.loaded, new Set(wait.changes.map((c) => c.uid)));
        break;
      case 'expunge':
        for (const uid of wait.uids) selection.mailbox.apply({ kind: 'expunged', uid });
        if (wait.then === 'close') {
          this.#unselect();
          this.#status(wait.command.tag, imapResponses.done('CLOSE'));
        } else this.#endCommand(wait.command.tag, imapResponses.done(commandName(wait.command)), true);
        break;
      default: {
        const never: never = wait;
        return never;
      }
    }
    return this.#resume();
  }

  /**
   * Changes made elsewhere (another session, POP3, the API, retention) to the selected mailbox.
   * During IDLE they go out at once (RFC 2177 §3); otherwise at the end of the next command.
   */
  notify(changes: readonly MailboxChange[], now: number): ImapStep {
    const selection = this.#selection;
    if (selection === null || this.#close) return this.#flush();
    for (const change of changes) selection.mailbox.apply(change);
    if (this.#state.kind === 'idle') {
      this.#lastActivity = now;
      this.#sendUpdates(true);
    }
    return this.#flush();
  }

  /** RFC 3501 §6.2.1: the handshake is done; the client asks CAPABILITY again. */
  tlsStarted(_info: TlsInfo, now: number): ImapStep {
    if (this.#state.kind !== 'tls-handshake') return this.#flush();
    this.#lastActivity = now;
    this.#tls = true;
    this.#reader.discardBuffered();
    this.#enter({ kind: 'not-authenticated' });
    return this.#flush();
  }

  /** RFC 3501 §5.4: the autologout timer; the client is told with BYE. */
  tick(now: number): ImapStep {
    if (now >= this.deadline && !this.#close) {
      this.#untagged(formatStatus(null, imapResponses.autologout()));
      this.#closeNow();
    }
    return this.#flush();
  }

  peerClosed(): ImapStep {
    if (!this.#close) this.#closeNow();
    return this.#flush();
  }

  /** The server is stopping: a session between commands (or idling) is told BYE and closed. */
  shutdown(): ImapStep {
    this.#draining = true;
    this.#closeIfDraining();
    return this.#flush();
  }

  #answered<K extends Wait['kind']>(requestId: number, kind: K, now: number): Extract<Wait, { kind: K }> | null {
    const state = this.#state;
    if (state.kind !== 'waiting' || state.requestId !== requestId || state.wait.kind !== kind) return null;
    this.#lastActivity = now;
    return state.wait as Extract<Wait, { kind: K }>;
  }

  #answerSearch(c: ImapCommand, key: SearchKey, loaded: ReadonlyMap<number, ImapMessageData>): void {
    const selection = this.#selection!;
    const mailbox = selection.mailbox;
    const found: number[] = [];
    const largestSeq = mailbox.exists;
    const largestUid = largestSeq === 0 ? 0 : mailbox.uidAt(largestSeq)!;
    for (let seq = 1; seq <= mailbox.exists; seq++) {
      const uid = mailbox.uidAt(seq)!;
      const data = loaded.get(uid);
      if (data === undefined || mailbox.isExpunged(seq)) continue;
      const matches = matchesSearch(
        key,
        {
          seq,
          uid,
          flags: new Set(mailbox.flagsAt(seq)!),
          recent: selection.recent.has(uid),
          internalDateMs: data.internalDateMs,
          size: data.size,
          headerValues: (name) => data.headerValues(name),
          headerText: () => data.headerText(),
          bodyText: () => data.bodyText(),
        },
        { largestSeq, largestUid, savedUids: null },
      );
      if (matches) found.push(c.uid ? uid : seq);
    }
    this.#untagged(`* SEARCH${found.map((n) => ` ${n}`).join('')}\r\n`);
    this.#endCommand(c.tag, imapResponses.done(commandName(c)), c.uid);
  }

  #answerFetch(c: ImapCommand, seqs: readonly number[], items: readonly FetchItem[], loaded: ReadonlyMap<number, ImapMessageData>): void {
    const selection = this.#selection!;
    // RFC 3501 §6.4.5: a body section without PEEK sets \Seen, and the new FLAGS are sent too.
    if (!selection.readOnly && items.some(setsSeen)) {
      const changes: FlagChange[] = [];
      for (const seq of seqs) {
        const uid = selection.mailbox.uidAt(seq)!;
        const flags = selection.mailbox.flagsAt(seq)!;
        if (selection.mailbox.isExpunged(seq) || !loaded.has(uid) || hasFlag(flags, '\\Seen')) continue;
        changes.push({ uid, flags: [...flags, '\\Seen'] });
      }
      if (changes.length > 0) {
        const user = this.#user!;
        const requestId = this.#nextRequest++;
        this.#enter({ kind: 'waiting', requestId, resume: 'selected', wait: { kind: 'fetch-seen', command: c, seqs, items, loaded, changes } });
        this.#events.push({ kind: 'store-flags', requestId, user, changes });
        return;
      }
    }
    this.#writeFetch(c, seqs, items, loaded, new Set());
  }

  #writeFetch(c: ImapCommand, seqs: readonly number[], items: readonly FetchItem[], loaded: ReadonlyMap<number, ImapMessageData>, seenSet: ReadonlySet<number>): void {
    const selection = this.#selection!;
    const b = new ResponseBuilder();
    let missing = false;
    const needsData = items.some((i) => i.kind !== 'FLAGS' && i.kind !== 'UID');
    for (const seq of seqs) {
      const uid = selection.mailbox.uidAt(seq)!;
      const data = loaded.get(uid);
      // RFC 2180 §4.1.2: a message expunged elsewhere still shows its UID and flags; its data is gone.
      if (needsData && data === undefined) {
        missing = true;
        continue;
      }
      const flags = shownFlags(selection, uid, selection.mailbox.flagsAt(seq)!);
      const withFlags = seenSet.has(uid) && !items.some((i) => i.kind === 'FLAGS') ? [...items, { kind: 'FLAGS' } as FetchItem] : items;
      writeFetchResponse(
        b,
        {
          seq,
          uid,
          flags,
          internalDateMs: data?.internalDateMs ?? 0,
          size: data?.size ?? 0,
          bytes: () => data!.bytes(),
          structure: () => data!.structure(),
          headerFields: () => data!.headerFields(),
        },
        withFlags,
      );
    }
    for (const chunk of b.build()) this.#out.push(chunk);
    if (missing) {
      this.#sendUpdates(c.uid);
      this.#fail(c.tag, imapResponses.expungeIssued(commandName(c)), commandName(c));
    } else this.#endCommand(c.tag, imapResponses.done(commandName(c)), c.uid);
  }

  /** The tagged response of a command that went well, after the updates it may carry. */
  #endCommand(tag: string, s: ImapStatus, allowExpunge: boolean): void {
    this.#sendUpdates(allowExpunge);
    this.#status(tag, s);
  }

  #sendUpdates(allowExpunge: boolean): void {
    const selection = this.#selection;
    if (selection === null) return;
    for (const line of selection.mailbox.updates(allowExpunge)) this.#untagged(line);
  }

  #resume(): ImapStep {
    if (!this.#close) this.#process();
    return this.#flush();
  }

  #process(): void {
    while (!this.#close) {
      const state = this.#state;
      if (state.kind === 'waiting' || state.kind === 'tls-handshake' || state.kind === 'closed') return;
      const item: ReaderItem | null = state.kind === 'sasl' || state.kind === 'idle' ? this.#reader.nextLine() : this.#reader.next();
      if (item === null) break;
      this.#item(item);
    }
    this.#closeIfDraining();
  }

  #item(item: ReaderItem): void {
    const state = this.#state;
    switch (item.kind) {
      case 'continue':
        this.#untagged(imapResponses.literalContinue());
        return;
      case 'reject':
        // A line too long for the AUTHENTICATE or IDLE exchange ends it, under that command's tag.
        if (state.kind === 'sasl' || state.kind === 'idle') {
          this.#enter({ kind: this.#commandState() });
          this.#fail(state.tag, item.status, state.kind === 'sasl' ? 'AUTHENTICATE' : 'IDLE');
        } else this.#fail(item.tag, item.status, '(unreadable command)');
        return;
      case 'line':
        if (state.kind === 'sasl') {
          this.#enter({ kind: 'not-authenticated' });
          plainResponse(this.#turn, state.tag, item.text);
        } else if (state.kind === 'idle') {
          this.#enter({ kind: this.#commandState() });
          // RFC 2177 §3: DONE ends IDLE, any case; anything else is a BAD and ends it too.
          if (item.text.toUpperCase() === 'DONE') this.#endCommand(state.tag, imapResponses.done('IDLE'), true);
          else this.#fail(state.tag, imapResponses.idleNotDone(), 'IDLE');
        }
        return;
      case 'command':
        this.#command(item.command);
        return;
      default: {
        const never: never = item;
        return never;
      }
    }
  }

  #commandState(): CommandState {
    return this.#selection !== null ? 'selected' : this.#user !== null ? 'authenticated' : 'not-authenticated';
  }

  #command(c: ImapCommand): void {
    const spec = Object.hasOwn(COMMANDS, c.name) ? COMMANDS[c.name] : undefined;
    if (spec === undefined || (c.uid && !UID_COMMANDS.has(c.name))) return this.#fail(c.tag, imapResponses.unknownCommand(commandName(c)), commandName(c));
    const state = this.#commandState();
    if (!spec.allowed.includes(state)) return this.#fail(c.tag, imapResponses.wrongState(commandName(c), spec.hint), commandName(c));
    spec.apply(this.#turn, c);
  }

  #createTurn(): Turn {
    const session = this;
    return {
      get config() {
        return session.#config;
      },
      get tls() {
        return session.#tls;
      },
      get user() {
        return session.#user;
      },
      get selection() {
        return session.#selection;
      },
      untagged: (line) => this.#untagged(line),
      ok: (tag, s, allowExpunge = true) => this.#endCommand(tag, s, allowExpunge),
      fail: (tag, s, command) => this.#fail(tag, s, command),
      wait: (wait, event) => {
        const requestId = this.#nextRequest++;
        this.#enter({ kind: 'waiting', requestId, wait, resume: this.#commandState() });
        this.#events.push(event(requestId));
      },
      startTls: (tag) => {
        this.#status(tag, imapResponses.beginTls());
        this.#reader.discardBuffered();
        this.#startTls = true;
        this.#enter({ kind: 'tls-handshake' });
      },
      enter: (next) => this.#enter(next),
      unselect: () => this.#unselect(),
      logout: (tag) => {
        this.#untagged(formatStatus(null, imapResponses.bye(this.#config.hostname)));
        this.#status(tag, imapResponses.done('LOGOUT'));
        this.#closeNow();
      },
    };
  }

  #unselect(): void {
    if (this.#selection === null) return;
    this.#selection = null;
    this.#events.push({ kind: 'unselected', user: this.#user! });
    if (this.#state.kind === 'selected') this.#enter({ kind: 'authenticated' });
  }

  #enter(next: State): void {
    this.#state = next;
  }

  #untagged(line: string): void {
    this.#out.push(line);
  }

  #status(tag: string | null, s: ImapStatus): void {
    this.#out.push(formatStatus(tag, s));
  }

  /** The error funnel: writes, reports, counts, and ends a session that keeps failing. */
  #fail(tag: string | null, s: ImapStatus, command: string): void {
    if (this.#close) return;
    this.#sendUpdates(false);
    this.#status(tag, s);
    this.#events.push({ kind: 'rejected', command, status: s });
    this.#errors++;
    if (this.#errors > this.#config.limits.maxErrors) {
      this.#untagged(formatStatus(null, imapResponses.tooManyErrors()));
      this.#closeNow();
    }
  }

  #closeNow(): void {
    this.#close = true;
    if (this.#selection !== null) {
      this.#selection = null;
      this.#events.push({ kind: 'unselected', user: this.#user! });
    }
    this.#enter({ kind: 'closed' });
  }

  #closeIfDraining(): void {
    const kind = this.#state.kind;
    if (!this.#draining || this.#close || kind === 'waiting' || kind === 'tls-handshake' || kind === 'closed') return;
    this.#untagged(formatStatus(null, imapResponses.shuttingDown()));
    this.#closeNow();
  }

  #flush(): ImapStep {
    const step: ImapStep = { out: joinOut(this.#out), events: this.#events, close: this.#close, startTls: this.#startTls, delayMs: 0 };
    if (this.#out.length > 0) this.#out = [];
    if (this.#events.length > 0) this.#events = [];
    this.#startTls = false;
    return step;
  }
}

/** RFC 3501 §6.3.10: one STATUS item of the mailbox. */
function statusValue(box: ImapMailboxSnapshot, item: string): number {
  switch (item) {
    case 'MESSAGES':
      return box.messages.length;
    case 'RECENT':
      return box.recentUids.length;
    case 'UIDNEXT':
      return box.uidNext;
    case 'UIDVALIDITY':
      return box.uidValidity;
    default:
      return box.messages.filter((m) => !hasFlag(m.flags, '\\Seen')).length;
  }
}

/** One step's output: text while it is all text, else the octets of every chunk in order. */
function joinOut(chunks: readonly (string | Uint8Array)[]): string | Uint8Array {
  if (chunks.length === 0) return '';
  if (chunks.every((c) => typeof c === 'string')) return chunks.join('');
  return concat(chunks.map((c) => (typeof c === 'string' ? ENCODER.encode(c) : c)));
}
