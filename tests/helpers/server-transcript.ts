/**
 * Runs a server transcript (tests/fixtures/transcripts/server/*.txt) against the pure core.
 *
 * Format: `C: text` is sent followed by CRLF (escapes \r \n \t \xHH \\; a trailing \c sends no
 * CRLF); `S: 250 2.1.0 *` expects one reply line, matched exactly on code, separator and
 * enhanced code, with `*` standing for any text; `S: 250 ...` takes a whole multi-line reply
 * with that code (an EHLO reply, say); `@ idle` lets the idle timeout pass;
 * `@ commit-fails` makes the next spool commit fail with 452 4.3.1; `@ closed` expects the
 * session to have closed; `@ tls` completes the TLS handshake STARTTLS asked for (and checks
 * that it did ask); `@ delayed` and `@ undelayed` check whether any reply since the previous
 * such line was held back by the error delay; `% name value` sets the server configuration
 * (tls, auth, insecure-auth, require-tls, relay, trusted, domains, postmaster, max-size,
 * max-recipients, recipient-overshoot, max-errors); `#` lines are comments (the first one cites
 * the RFC). AUTH accepts the user "alice" with the password "secret", and no one else.
 * The client side is fed whole, line by line, or byte by byte; the replies must not differ.
 */
import { ServerSession, type ServerConfig } from '../../src/core/server-session.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { DEFAULT_LIMITS, type Limits } from '../../src/core/limits.ts';
import { replies } from '../../src/core/replies.ts';

export type FeedMode = 'whole' | 'line' | 'byte';

/** Hands `bytes` to `receive` as the mode says: at once, line by line (split after each LF), or byte by byte. */
export function feedInMode(bytes: Uint8Array, mode: FeedMode, receive: (piece: Uint8Array) => void): void {
  if (mode === 'whole') return receive(bytes);
  if (mode === 'byte') {
    for (let i = 0; i < bytes.length; i++) receive(bytes.subarray(i, i + 1));
    return;
  }
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 10) {
      receive(bytes.subarray(start, i + 1));
      start = i + 1;
    }
  }
  if (start < bytes.length) receive(bytes.subarray(start));
}

/** The client lines of one turn as one write, as a pipelining client sends them. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of chunks) {
    all.set(b, at);
    at += b.length;
  }
  return all;
}

/**
 * The two buffers of a transcript run: the client's lines, held until the next expectation and
 * then fed in one write (as a pipelining client sends them), and the server's output, taken one
 * CRLF-ended line at a time.
 */
export class TranscriptTurns {
  readonly #feed: (bytes: Uint8Array) => void;
  #pending: Uint8Array[] = [];
  #output = '';

  constructor(feed: (bytes: Uint8Array) => void) {
    this.#feed = feed;
  }

  send(bytes: Uint8Array): void {
    this.#pending.push(bytes);
  }

  /** Feeds what the client has sent since the last flush. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const all = concatBytes(this.#pending);
    this.#pending = [];
    this.#feed(all);
  }

  received(text: string): void {
    this.#output += text;
  }

  takeLine(): string | null {
    const end = this.#output.indexOf('\r\n');
    if (end < 0) return null;
    const line = this.#output.slice(0, end);
    this.#output = this.#output.slice(end + 2);
    return line;
  }

  /** Output after the last CRLF. */
  get unterminated(): string {
    return this.#output;
  }
}

type Step =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'expect'; line: string; lineNo: number }
  | { kind: 'idle' }
  | { kind: 'commit-fails' }
  | { kind: 'closed'; lineNo: number }
  | { kind: 'tls'; lineNo: number }
  | { kind: 'delayed'; delayed: boolean; lineNo: number };

export function unescape(text: string): Uint8Array {
  const bytes: number[] = [];
  const encoded = new TextEncoder();
  let i = 0;
  let crlf = true;
  if (text.endsWith('\\c')) {
    crlf = false;
    text = text.slice(0, -2);
  }
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') {
      const n = text[i + 1];
      if (n === 'r') bytes.push(13);
      else if (n === 'n') bytes.push(10);
      else if (n === 't') bytes.push(9);
      else if (n === '\\') bytes.push(92);
      else if (n === 'x') {
        bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
        i += 2;
      } else throw new Error(`bad escape \\${n}`);
      i += 2;
      continue;
    }
    const cp = text.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    bytes.push(...encoded.encode(ch));
    i += ch.length;
  }
  if (crlf) bytes.push(13, 10);
  return new Uint8Array(bytes);
}

type LineStep = { kind: 'send'; bytes: Uint8Array } | { kind: 'expect'; line: string; lineNo: number };

/**
 * The lines every server-side transcript has: `#` comments (the first one is the title), blank
 * lines, `C: text` to send and `S: line` to expect. Each other line goes to `other`, which returns
 * its step, null for a line that makes none (a setting), or throws.
 */
export function parseTranscriptLines<Other>(text: string, other: (line: string, lineNo: number) => Other | null): { title: string; steps: (LineStep | Other)[] } {
  const steps: (LineStep | Other)[] = [];
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
    else {
      const step = other(line, lineNo);
      if (step !== null) steps.push(step);
    }
  });
  return { title, steps };
}

export function parseServerTranscript(text: string): { title: string; steps: Step[]; config: TranscriptOverrides } {
  const config: { -readonly [K in keyof TranscriptOverrides]: TranscriptOverrides[K] } = {};
  const { title, steps } = parseTranscriptLines(text, (line, lineNo): Step | null => {
    if (line === '@ idle') return { kind: 'idle' };
    if (line === '@ commit-fails') return { kind: 'commit-fails' };
    if (line === '@ closed') return { kind: 'closed', lineNo };
    if (line === '@ tls') return { kind: 'tls', lineNo };
    if (line === '@ delayed' || line === '@ undelayed') return { kind: 'delayed', delayed: line === '@ delayed', lineNo };
    if (!line.startsWith('% ')) throw new Error(`line ${lineNo}: cannot read "${line}"`);
    const [name, value = ''] = line.slice(2).split(' ');
    if (name === 'tls') config.tls = value as 'starttls' | 'implicit';
    else if (name === 'auth') config.auth = { mechanisms: value.split(',') as ('PLAIN' | 'LOGIN')[], allowInsecure: config.auth?.allowInsecure ?? false };
    else if (name === 'insecure-auth') config.auth = { mechanisms: config.auth?.mechanisms ?? ['PLAIN', 'LOGIN'], allowInsecure: true };
    else if (name === 'require-tls') config.requireTls = true;
    else if (name === 'relay') config.relay = true;
    else if (name === 'trusted') config.trusted = true;
    else if (name === 'domains') config.localDomains = new Set(value.split(','));
    else if (name === 'postmaster') config.postmaster = { local: value.slice(0, value.lastIndexOf('@')), domain: value.slice(value.lastIndexOf('@') + 1) };
    else if (name === 'max-size') config.limits = { ...config.limits, maxMessageBytes: Number(value) };
    else if (name === 'max-recipients') config.limits = { ...config.limits, maxRecipients: Number(value) };
    else if (name === 'recipient-overshoot') config.limits = { ...config.limits, recipientOvershoot: Number(value) };
    else if (name === 'max-errors') config.limits = { ...config.limits, maxErrors: Number(value) };
    else throw new Error(`line ${lineNo}: unknown setting "${name}"`);
    return null;
  });
  return { title, steps, config };
}

function matches(expected: string, actual: string): boolean {
  if (expected.endsWith('*')) {
    const head = expected.slice(0, -1);
    return actual.startsWith(head);
  }
  return expected === actual;
}

export interface RunResult {
  readonly mismatches: string[];
  readonly messages: Uint8Array[];
  /** The envelope of each message, in the order of `messages`. */
  readonly envelopes: Envelope[];
  readonly output: string[];
}

export type TranscriptOverrides = Partial<Omit<ServerConfig, 'limits'>> & { limits?: Partial<Limits> };

export function runServerTranscript(text: string, mode: FeedMode, overrides: TranscriptOverrides = {}): RunResult {
  const parsed = parseServerTranscript(text);
  const { steps } = parsed;
  overrides = { ...parsed.config, ...overrides, limits: { ...parsed.config.limits, ...overrides.limits } };
  let ids = 0;
  // As serve resolves it: postmaster@ the first local domain, or @ the host name in catch-all mode.
  const firstDomain = overrides.localDomains ? [...overrides.localDomains][0] : 'mx.test';
  const config: ServerConfig = {
    hostname: 'mx.test',
    postmaster: { local: 'postmaster', domain: firstDomain },
    localDomains: null,
    relay: false,
    trusted: false,
    clientAddress: '192.0.2.1',
    tls: 'none',
    requireTls: false,
    auth: null,
    newId: () => `ID${++ids}`,
    ...overrides,
    limits: { ...DEFAULT_LIMITS, ...overrides.limits },
  };
  let now = 1_000_000;
  const session = new ServerSession(config, now);
  const output: string[] = [];
  const messages: Uint8Array[] = [];
  const envelopes: Envelope[] = [];
  let delays = 0;
  let failNext = false;
  let closed = false;
  let tlsAsked = false;
  const turns = new TranscriptTurns((bytes) => feedInMode(bytes, mode, (piece) => absorb(session.receive(piece, now))));

  const absorb = (step: { out: string; events: readonly { kind: string }[]; close: boolean; delayMs: number }): void => {
    if (step.delayMs > 0) delays++;
    turns.received(step.out);
    if (step.close) closed = true;
    if ((step as { startTls?: boolean }).startTls) tlsAsked = true;
    for (const event of step.events) {
      if (event.kind === 'auth') {
        const a = event as unknown as { requestId: number; username: string; password: string };
        const ok = a.username === 'alice' && a.password === 'secret';
        absorb(session.resolveAuth(a.requestId, ok ? { ok: true, user: a.username } : { ok: false, reply: replies.authFailed() }, now));
        continue;
      }
      if (event.kind !== 'message') continue;
      const m = event as unknown as { requestId: number; stuffed: Uint8Array; envelope: Envelope };
      messages.push(m.stuffed);
      envelopes.push(m.envelope);
      const outcome = failNext ? { ok: false as const, reply: replies.spoolFull() } : { ok: true as const };
      failNext = false;
      absorb(session.resolve(m.requestId, outcome, now));
    }
  };

  absorb(session.greet(now));
  const mismatches: string[] = [];
  const flushSends = () => turns.flush();
  const takeLine = (): string | null => {
    const line = turns.takeLine();
    if (line !== null) output.push(line);
    return line;
  };
  for (const step of steps) {
    switch (step.kind) {
      case 'send':
        turns.send(step.bytes);
        break;
      case 'expect': {
        flushSends();
        if (step.line.endsWith(' ...')) {
          const code = step.line.slice(0, 3);
          let line = takeLine();
          while (line !== null && line.startsWith(`${code}-`)) line = takeLine();
          if (line === null || !line.startsWith(`${code} `)) mismatches.push(`line ${step.lineNo}: expected a ${code} reply, got "${line}"`);
          break;
        }
        const actual = takeLine();
        if (actual === null) mismatches.push(`line ${step.lineNo}: expected "${step.line}", got nothing`);
        else if (!matches(step.line, actual)) mismatches.push(`line ${step.lineNo}: expected "${step.line}", got "${actual}"`);
        break;
      }
      case 'idle':
        flushSends();
        now = session.deadline + 1;
        absorb(session.tick(now));
        break;
      case 'commit-fails':
        failNext = true;
        break;
      case 'closed':
        flushSends();
        if (!closed) mismatches.push(`line ${step.lineNo}: expected the session to be closed`);
        break;
      case 'tls':
        flushSends();
        if (!tlsAsked) mismatches.push(`line ${step.lineNo}: the session did not ask for TLS`);
        tlsAsked = false;
        absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, now));
        break;
      case 'delayed':
        flushSends();
        if (step.delayed !== delays > 0) mismatches.push(`line ${step.lineNo}: expected ${step.delayed ? 'a delayed reply' : 'no delayed reply'}, got ${delays} delayed steps`);
        delays = 0;
        break;
    }
  }
  flushSends();
  let extra: string | null;
  while ((extra = takeLine()) !== null) mismatches.push(`unexpected reply "${extra}"`);
  return { mismatches, messages, envelopes, output };
}
