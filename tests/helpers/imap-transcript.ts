/**
 * Runs an IMAP transcript (tests/fixtures/transcripts/imap/*.txt) against the pure core.
 *
 * Format: `C: text` is sent followed by CRLF (escapes as in server transcripts: \r \n \t \xHH
 * \\, so a flag is written \\Seen, and a trailing \c sends no CRLF); `S: line` expects one line
 * of output exactly, or its start when it ends in `*`. `% tls starttls|implicit`,
 * `% insecure-auth`, `% max-errors N`, `% max-literal N` and `% uidvalidity N` set the
 * configuration; `% message UID FLAGS TEXT` adds a message to alice's INBOX (FLAGS comma
 * separated or "-", TEXT escaped as above, no CRLF added). Directives: `@ tls` completes the
 * handshake STARTTLS asked for, `@ idle` lets the autologout timer expire, `@ closed` expects
 * the session to have closed, `@ peer-closes`, `@ shutdown`, `@ store-fails`, `@ load-fails`,
 * and changes made elsewhere: `@ arrives UID TEXT`, `@ expunged UID`, `@ flags UID FLAGS`.
 * `= EVENT` expects the next event worth naming (logged-in, selected, unselected, store-flags,
 * expunge), in order. The password of "alice" is "secret"; no one else logs in.
 * The client side is fed whole, line by line, or byte by byte; the output must not differ.
 */
import { ImapSession, DEFAULT_IMAP_LIMITS, type ImapConfig, type ImapEvent, type ImapStep } from '../../src/core/imap/session.ts';
import type { ImapMessageData } from '../../src/core/imap/mailbox-port.ts';
import type { MailboxChange } from '../../src/core/imap/selected-mailbox.ts';
import { entityHeaderFields } from '../../src/core/imap/bodystructure.ts';
import { headerLength } from '../../src/core/imap/fetch.ts';
import { parseHeaderFields, parseMimeStructure } from '../../src/core/mime-structure.ts';
import { concatBytes, feedInMode, unescape, type FeedMode } from './server-transcript.ts';

type Step =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'expect'; line: string; lineNo: number }
  | { kind: 'event'; text: string; lineNo: number }
  | { kind: 'directive'; name: string; args: string[]; lineNo: number };

interface StoredMessage {
  flags: string[];
  readonly bytes: Uint8Array;
}

export interface ImapTranscript {
  readonly steps: readonly Step[];
  readonly config: ImapConfig;
  readonly messages: ReadonlyMap<number, StoredMessage>;
  readonly uidValidity: number;
}

const flagList = (text: string): string[] => (text === '-' ? [] : text.split(','));

export function parseImapTranscript(text: string): ImapTranscript {
  const steps: Step[] = [];
  let tls: ImapConfig['tls'] = 'none';
  let allowInsecureAuth = false;
  let limits = { ...DEFAULT_IMAP_LIMITS };
  let uidValidity = 1764633600;
  const messages = new Map<number, StoredMessage>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    const lineNo = index + 1;
    if (line.startsWith('#') || line.trim() === '') return;
    if (line.startsWith('C: ') || line === 'C:') steps.push({ kind: 'send', bytes: unescape(line.slice(3)) });
    else if (line.startsWith('S: ')) steps.push({ kind: 'expect', line: line.slice(3), lineNo });
    else if (line.startsWith('= ')) steps.push({ kind: 'event', text: line.slice(2), lineNo });
    else if (line.startsWith('@ ')) {
      const [name, ...args] = line.slice(2).trim().split(' ');
      steps.push({ kind: 'directive', name, args, lineNo });
    } else if (line.startsWith('% ')) {
      const [name, value = '', flags = '-', ...rest] = line.slice(2).split(' ');
      if (name === 'tls') tls = value as ImapConfig['tls'];
      else if (name === 'insecure-auth') allowInsecureAuth = true;
      else if (name === 'max-errors') limits = { ...limits, maxErrors: Number(value) };
      else if (name === 'max-literal') limits = { ...limits, maxLiteralBytes: Number(value) };
      else if (name === 'uidvalidity') uidValidity = Number(value);
      else if (name === 'message') messages.set(Number(value), { flags: flagList(flags), bytes: unescape(`${rest.join(' ')}\\c`) });
      else throw new Error(`line ${lineNo}: unknown setting "${name}"`);
    } else throw new Error(`line ${lineNo}: cannot read "${line}"`);
  });
  return { steps, config: { hostname: 'imap.test', tls, allowInsecureAuth, limits }, messages, uidValidity };
}

/** A message's data as the store would give it, from its bytes. */
export function messageData(uid: number, bytes: Uint8Array): ImapMessageData {
  const structure = parseMimeStructure(bytes);
  const fields = parseHeaderFields(bytes, 0, headerLength(bytes));
  return {
    uid,
    internalDateMs: 1_764_633_600_000 + uid * 60_000,
    size: bytes.length,
    bytes: () => bytes,
    structure: () => structure,
    headerFields: () => entityHeaderFields(bytes, structure),
    headerValues: (name) => fields.filter((f) => f.name.toLowerCase() === name).map((f) => f.value),
    headerText: () => fields.map((f) => `${f.name}: ${f.value}`).join('\r\n'),
    bodyText: () => new TextDecoder().decode(bytes.subarray(headerLength(bytes))),
  };
}

export interface ImapRunResult {
  readonly mismatches: string[];
  /** Everything the server wrote, byte for byte. */
  readonly output: Uint8Array;
  readonly events: readonly ImapEvent[];
}

const DECODER = new TextDecoder('latin1');
const ENCODER = new TextEncoder();

function describe(event: ImapEvent): string | null {
  switch (event.kind) {
    case 'logged-in':
      return `logged-in ${event.user} ${event.mechanism}`;
    case 'selected':
    case 'unselected':
      return `${event.kind} ${event.user}`;
    case 'store-flags':
      return `store-flags ${event.changes.map((c) => `${c.uid}=${c.flags.join(',') || '-'}`).join(' ')}`;
    case 'expunge':
      return `expunge ${event.uids.join(' ')}`;
    default:
      return null;
  }
}

export function runImapTranscript(text: string, mode: FeedMode): ImapRunResult {
  const { steps, config, messages: initial, uidValidity } = parseImapTranscript(text);
  const messages = new Map([...initial].map(([uid, m]) => [uid, { flags: [...m.flags], bytes: m.bytes }]));
  const claimed = new Set<number>();
  let now = 1_000_000;
  const session = new ImapSession(config, now);
  const chunks: Uint8Array[] = [];
  const allEvents: ImapEvent[] = [];
  const described: string[] = [];
  const fails = new Set<string>();
  let closed = false;
  let tlsAsked = false;
  let buffered = '';
  const failure = (what: string) => ({ ok: false as const, status: { condition: 'NO' as const, code: 'SERVERBUG', text: `${what} failed: the spool is unavailable` } });

  const absorb = (step: ImapStep): void => {
    const bytes = typeof step.out === 'string' ? ENCODER.encode(step.out) : step.out;
    if (closed && bytes.length > 0) throw new Error('output after the session closed');
    chunks.push(bytes);
    buffered += DECODER.decode(bytes);
    if (step.close) closed = true;
    if (step.startTls) tlsAsked = true;
    for (const event of step.events) {
      allEvents.push(event);
      const d = describe(event);
      if (d !== null) described.push(d);
      switch (event.kind) {
        case 'auth': {
          const ok = event.username === 'alice' && event.password === 'secret';
          absorb(session.resolveAuth(event.requestId, ok ? { ok: true, user: 'alice' } : { ok: false, status: { condition: 'NO', code: 'AUTHENTICATIONFAILED', text: 'Authentication failed' } }, now));
          break;
        }
        case 'open': {
          const uids = [...messages.keys()].sort((a, b) => a - b);
          const recentUids = event.claimRecent ? uids.filter((u) => !claimed.has(u)) : [];
          for (const u of recentUids) claimed.add(u);
          const uidNext = Math.max(0, ...initial.keys(), ...messages.keys()) + 1;
          absorb(session.resolveOpen(event.requestId, { ok: true, mailbox: { uidValidity, uidNext, recentUids, messages: uids.map((uid) => ({ uid, flags: [...messages.get(uid)!.flags] })) } }, now));
          break;
        }
        case 'load': {
          if (fails.delete('load-fails')) absorb(session.resolveLoad(event.requestId, failure('Reading messages'), now));
          else absorb(session.resolveLoad(event.requestId, { ok: true, messages: event.uids.filter((u) => messages.has(u)).map((u) => messageData(u, messages.get(u)!.bytes)) }, now));
          break;
        }
        case 'store-flags': {
          if (fails.delete('store-fails')) absorb(session.resolveChange(event.requestId, failure('Storing flags'), now));
          else {
            for (const c of event.changes) {
              const m = messages.get(c.uid);
              if (m) m.flags = [...c.flags];
            }
            absorb(session.resolveChange(event.requestId, { ok: true }, now));
          }
          break;
        }
        case 'expunge': {
          for (const uid of event.uids) messages.delete(uid);
          absorb(session.resolveChange(event.requestId, { ok: true }, now));
          break;
        }
        default:
          break;
      }
    }
  };
  const feed = (bytes: Uint8Array): void => feedInMode(bytes, mode, (piece) => absorb(session.receive(piece, now)));
  const notify = (change: MailboxChange): void => absorb(session.notify([change], now));

  absorb(session.greet(now));
  const mismatches: string[] = [];
  let pendingSend: Uint8Array[] = [];
  const flushSends = () => {
    if (pendingSend.length === 0) return;
    const all = concatBytes(pendingSend);
    pendingSend = [];
    feed(all);
  };
  const takeLine = (): string | null => {
    const end = buffered.indexOf('\r\n');
    if (end < 0) return null;
    const line = buffered.slice(0, end);
    buffered = buffered.slice(end + 2);
    return line;
  };
  for (const step of steps) {
    switch (step.kind) {
      case 'send':
        pendingSend.push(step.bytes);
        break;
      case 'expect': {
        flushSends();
        const actual = takeLine();
        const matches = actual !== null && (step.line.endsWith('*') ? actual.startsWith(step.line.slice(0, -1)) : actual === step.line);
        if (!matches) mismatches.push(`line ${step.lineNo}: expected "${step.line}", got ${actual === null ? 'nothing' : `"${actual}"`}`);
        break;
      }
      case 'event': {
        flushSends();
        const got = described.shift();
        if (got !== step.text) mismatches.push(`line ${step.lineNo}: expected event "${step.text}", got ${got === undefined ? 'none' : `"${got}"`}`);
        break;
      }
      case 'directive': {
        flushSends();
        const [first = '', ...rest] = step.args;
        switch (step.name) {
          case 'tls':
            if (!tlsAsked) mismatches.push(`line ${step.lineNo}: the session did not ask for TLS`);
            tlsAsked = false;
            absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, now));
            break;
          case 'idle':
            now = session.deadline;
            absorb(session.tick(now));
            break;
          case 'closed':
            if (!closed) mismatches.push(`line ${step.lineNo}: expected the session to be closed`);
            break;
          case 'peer-closes':
            absorb(session.peerClosed());
            break;
          case 'shutdown':
            absorb(session.shutdown());
            break;
          case 'store-fails':
          case 'load-fails':
            fails.add(step.name);
            break;
          case 'arrives': {
            const uid = Number(first);
            messages.set(uid, { flags: [], bytes: unescape(`${rest.join(' ')}\\c`) });
            notify({ kind: 'appended', uid, flags: [] });
            break;
          }
          case 'expunged':
            messages.delete(Number(first));
            notify({ kind: 'expunged', uid: Number(first) });
            break;
          case 'flags': {
            const flags = flagList(rest[0] ?? '-');
            const m = messages.get(Number(first));
            if (m) m.flags = flags;
            notify({ kind: 'flags', uid: Number(first), flags });
            break;
          }
          default:
            throw new Error(`line ${step.lineNo}: unknown directive "@ ${step.name}"`);
        }
        break;
      }
    }
  }
  flushSends();
  let extra: string | null;
  while ((extra = takeLine()) !== null) mismatches.push(`unexpected output "${extra}"`);
  if (buffered !== '') mismatches.push(`output without CRLF at the end: ${JSON.stringify(buffered)}`);
  const output = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    output.set(c, at);
    at += c.length;
  }
  return { mismatches, output, events: allEvents };
}
