/**
 * Runs a server transcript (tests/fixtures/transcripts/server/*.txt) against the pure core.
 *
 * Format: `C: text` is sent followed by CRLF (escapes \r \n \t \xHH \\; a trailing \c sends no
 * CRLF); `S: 250 2.1.0 *` expects one reply line, matched exactly on code, separator and
 * enhanced code, with `*` standing for any text; `@ idle` lets the idle timeout pass;
 * `@ commit-fails` makes the next spool commit fail with 452 4.3.1; `@ closed` expects the
 * session to have closed; `#` lines are comments (the first one cites the RFC).
 * The client side is fed whole, line by line, or byte by byte; the replies must not differ.
 */
import { ServerSession, type ServerConfig } from '../../src/core/server-session.ts';
import { DEFAULT_LIMITS, type Limits } from '../../src/core/limits.ts';
import { replies } from '../../src/core/replies.ts';

export type FeedMode = 'whole' | 'line' | 'byte';

type Step =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'expect'; line: string; lineNo: number }
  | { kind: 'idle' }
  | { kind: 'commit-fails' }
  | { kind: 'closed'; lineNo: number };

function unescape(text: string): Uint8Array {
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

export function parseServerTranscript(text: string): { title: string; steps: Step[] } {
  const steps: Step[] = [];
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
    else if (line === '@ idle') steps.push({ kind: 'idle' });
    else if (line === '@ commit-fails') steps.push({ kind: 'commit-fails' });
    else if (line === '@ closed') steps.push({ kind: 'closed', lineNo });
    else throw new Error(`line ${lineNo}: cannot read "${line}"`);
  });
  return { title, steps };
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
  readonly output: string[];
}

export function runServerTranscript(
  text: string,
  mode: FeedMode,
  overrides: Partial<ServerConfig> & { limits?: Partial<Limits> } = {},
): RunResult {
  const { steps } = parseServerTranscript(text);
  let ids = 0;
  const config: ServerConfig = {
    hostname: 'mx.test',
    localDomains: null,
    relayAllowed: false,
    clientAddress: '192.0.2.1',
    newId: () => `ID${++ids}`,
    ...overrides,
    limits: { ...DEFAULT_LIMITS, ...overrides.limits },
  };
  let now = 1_000_000;
  const session = new ServerSession(config, now);
  const output: string[] = [];
  const messages: Uint8Array[] = [];
  let failNext = false;
  let closed = false;
  let buffered = '';

  const absorb = (step: { out: string; events: readonly { kind: string }[]; close: boolean }): void => {
    buffered += step.out;
    if (step.close) closed = true;
    for (const event of step.events) {
      if (event.kind !== 'message') continue;
      const m = event as unknown as { requestId: number; stuffed: Uint8Array };
      messages.push(m.stuffed);
      const outcome = failNext ? { ok: false as const, reply: replies.spoolFull() } : { ok: true as const };
      failNext = false;
      absorb(session.resolve(m.requestId, outcome, now));
    }
  };
  const feed = (bytes: Uint8Array): void => {
    if (mode === 'whole') return absorb(session.receive(bytes, now));
    if (mode === 'byte') {
      for (let i = 0; i < bytes.length; i++) absorb(session.receive(bytes.subarray(i, i + 1), now));
      return;
    }
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 10) {
        absorb(session.receive(bytes.subarray(start, i + 1), now));
        start = i + 1;
      }
    }
    if (start < bytes.length) absorb(session.receive(bytes.subarray(start), now));
  };

  absorb(session.greet(now));
  const mismatches: string[] = [];
  let pendingSend: Uint8Array[] = [];
  const flushSends = () => {
    if (pendingSend.length === 0) return;
    const total = pendingSend.reduce((n, b) => n + b.length, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const b of pendingSend) {
      all.set(b, at);
      at += b.length;
    }
    pendingSend = [];
    feed(all);
  };
  const takeLine = (): string | null => {
    const end = buffered.indexOf('\r\n');
    if (end < 0) return null;
    const line = buffered.slice(0, end);
    buffered = buffered.slice(end + 2);
    output.push(line);
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
    }
  }
  flushSends();
  let extra: string | null;
  while ((extra = takeLine()) !== null) mismatches.push(`unexpected reply "${extra}"`);
  return { mismatches, messages, output };
}
