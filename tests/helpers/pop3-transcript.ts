/**
 * Runs a POP3 transcript (tests/fixtures/transcripts/pop3/*.txt) against the pure core.
 *
 * Format: `C: text` is sent followed by CRLF (escapes as in server transcripts: \r \n \t \xHH
 * \\, and a trailing \c sends no CRLF); `S: line` expects one line of output exactly, or its
 * start when it ends in `*`; `S: +OK ...` takes a status line and the multi-line block after
 * it up to the "." line. `% tls starttls|implicit`, `% insecure-auth` and `% max-errors N` set
 * the configuration; `% message UID TEXT` adds a message to alice's maildrop (TEXT escaped as
 * above, no CRLF added). Directives: `@ tls` completes the handshake STLS asked for, `@ idle`
 * lets the autologout timer expire, `@ closed` expects the session to have closed,
 * `@ peer-closes`, `@ shutdown`, and `@ lock-fails`, `@ read-fails`, `@ update-fails` make the
 * next such request fail. `= update UID...`, `= release USER` and `= logged-in USER MECHANISM` expect
 * the next such event, in order. The password of "alice" is "secret"; "slow" is throttled; no one else logs in.
 * The client side is fed whole, line by line, or byte by byte; the output must not differ.
 */
import { Pop3Session, DEFAULT_POP3_LIMITS, type Pop3Config, type Pop3Event, type Pop3Step } from '../../src/core/pop3-session.ts';
import { pop3Replies } from '../../src/core/pop3-replies.ts';
import type { Pop3MessageInfo } from '../../src/core/pop3-maildrop.ts';
import { concatBytes, feedInMode, unescape, type FeedMode } from './server-transcript.ts';

type Step =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'expect'; line: string; lineNo: number }
  | { kind: 'event'; text: string; lineNo: number }
  | { kind: 'directive'; name: string; lineNo: number };

export interface Pop3Transcript {
  readonly title: string;
  readonly steps: readonly Step[];
  readonly config: Pop3Config;
  readonly messages: ReadonlyMap<string, Uint8Array>;
}

export function parsePop3Transcript(text: string): Pop3Transcript {
  const steps: Step[] = [];
  let tls: Pop3Config['tls'] = 'none';
  let allowInsecureAuth = false;
  let maxErrors = DEFAULT_POP3_LIMITS.maxErrors;
  const messages = new Map<string, Uint8Array>();
  let title = '';
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    const lineNo = index + 1;
    if (line.startsWith('#')) {
      if (!title) title = line.slice(1).trim();
      return;
    }
    if (line.trim() === '') return;
    if (line.startsWith('C: ') || line === 'C:') steps.push({ kind: 'send', bytes: unescape(line.slice(3)) });
    else if (line.startsWith('S: ')) steps.push({ kind: 'expect', line: line.slice(3), lineNo });
    else if (line.startsWith('= ')) steps.push({ kind: 'event', text: line.slice(2), lineNo });
    else if (line.startsWith('@ ')) steps.push({ kind: 'directive', name: line.slice(2).trim(), lineNo });
    else if (line.startsWith('% ')) {
      const [name, value = '', ...rest] = line.slice(2).split(' ');
      if (name === 'tls') tls = value as Pop3Config['tls'];
      else if (name === 'insecure-auth') allowInsecureAuth = true;
      else if (name === 'max-errors') maxErrors = Number(value);
      else if (name === 'message') messages.set(value, unescape(`${rest.join(' ')}\\c`));
      else throw new Error(`line ${lineNo}: unknown setting "${name}"`);
    } else throw new Error(`line ${lineNo}: cannot read "${line}"`);
  });
  const config: Pop3Config = { hostname: 'pop.test', tls, allowInsecureAuth, limits: { ...DEFAULT_POP3_LIMITS, maxErrors } };
  return { title, steps, config, messages };
}

export interface Pop3RunResult {
  readonly mismatches: string[];
  /** Everything the server wrote, byte for byte. */
  readonly output: Uint8Array;
  readonly events: readonly Pop3Event[];
}

const DECODER = new TextDecoder();
const ENCODER = new TextEncoder();

function describe(event: Pop3Event): string | null {
  if (event.kind === 'update') return `update ${event.deletedUids.join(' ')}`;
  if (event.kind === 'release') return `release ${event.user}`;
  if (event.kind === 'logged-in') return `logged-in ${event.user} ${event.mechanism}`;
  return null;
}

export function runPop3Transcript(text: string, mode: FeedMode): Pop3RunResult {
  const { steps, config, messages } = parsePop3Transcript(text);
  const maildrop: Pop3MessageInfo[] = [...messages].map(([uid, bytes]) => ({ uid, size: bytes.length }));
  let now = 1_000_000;
  const session = new Pop3Session(config, now);
  const chunks: Uint8Array[] = [];
  const allEvents: Pop3Event[] = [];
  const described: string[] = [];
  const fails = new Set<string>();
  let closed = false;
  let tlsAsked = false;
  let buffered = '';

  const absorb = (step: Pop3Step): void => {
    const bytes = typeof step.out === 'string' ? ENCODER.encode(step.out) : step.out;
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
          const outcome = ok
            ? { ok: true as const, user: event.username }
            : { ok: false as const, response: event.username === 'slow' ? pop3Replies.authThrottled() : pop3Replies.authFailed() };
          absorb(session.resolveAuth(event.requestId, outcome, now));
          break;
        }
        case 'lock': {
          const fail = fails.delete('lock-fails');
          absorb(session.resolveLock(event.requestId, fail ? { ok: false, response: pop3Replies.maildropInUse() } : { ok: true, maildrop: { messages: maildrop } }, now));
          break;
        }
        case 'read': {
          const fail = fails.delete('read-fails');
          const bytes = messages.get(event.uid);
          absorb(session.resolveRead(event.requestId, fail || !bytes ? { ok: false, response: pop3Replies.readFailed('the spool is unavailable') } : { ok: true, bytes }, now));
          break;
        }
        case 'update': {
          const fail = fails.delete('update-fails');
          absorb(session.resolveUpdate(event.requestId, fail ? { ok: false, response: pop3Replies.updateFailed() } : { ok: true }, now));
          break;
        }
        default:
          break;
      }
    }
  };
  const feed = (bytes: Uint8Array): void => feedInMode(bytes, mode, (piece) => absorb(session.receive(piece, now)));

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
        if (step.line.endsWith(' ...')) {
          if (actual === null || !actual.startsWith(step.line.slice(0, -4))) {
            mismatches.push(`line ${step.lineNo}: expected "${step.line}", got "${actual}"`);
            break;
          }
          let body = takeLine();
          while (body !== null && body !== '.') body = takeLine();
          if (body === null) mismatches.push(`line ${step.lineNo}: the multi-line response never ended`);
          break;
        }
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
      case 'directive':
        flushSends();
        switch (step.name) {
          case 'tls':
            if (!tlsAsked) mismatches.push(`line ${step.lineNo}: the session did not ask for TLS`);
            tlsAsked = false;
            absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, now));
            break;
          case 'idle':
            now = session.deadline + 1;
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
          case 'lock-fails':
          case 'read-fails':
          case 'update-fails':
            fails.add(step.name);
            break;
          default:
            throw new Error(`line ${step.lineNo}: unknown directive "@ ${step.name}"`);
        }
        break;
    }
  }
  flushSends();
  let extra: string | null;
  while ((extra = takeLine()) !== null) mismatches.push(`unexpected output "${extra}"`);
  if (buffered !== '') mismatches.push(`output without CRLF at the end: ${JSON.stringify(buffered)}`);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const output = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    output.set(c, at);
    at += c.length;
  }
  return { mismatches, output, events: allEvents };
}
