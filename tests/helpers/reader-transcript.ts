/**
 * What the IMAP and POP3 transcript runners (imap-transcript.ts, pop3-transcript.ts) share: the
 * line format and the run against a pure reader session.
 *
 * Format: `#` comments, `C: text` is sent followed by CRLF (escapes as in server transcripts:
 * \r \n \t \xHH \\, and a trailing \c sends no CRLF); `S: line` expects one line of output
 * exactly, or its start when it ends in `*`; `= EVENT` expects the next event worth naming, in
 * order; `@ NAME ARGS` is a directive and `% NAME ARGS` a setting, both the protocol's own except
 * the directives every session has: `@ tls` completes the handshake the session asked for,
 * `@ idle` lets the autologout timer expire, `@ closed` expects the session to have closed,
 * `@ peer-closes` and `@ shutdown`.
 * The client side is fed whole, line by line, or byte by byte; the output must not differ.
 */
import { concatBytes, feedInMode, parseTranscriptLines, TranscriptTurns, type FeedMode } from './server-transcript.ts';

export type ReaderStep =
  | { kind: 'send'; bytes: Uint8Array }
  | { kind: 'expect'; line: string; lineNo: number }
  | { kind: 'event'; text: string; lineNo: number }
  | { kind: 'directive'; name: string; args: string[]; lineNo: number };

/** Splits a transcript into steps; `setting` takes each `% NAME ARGS` line (and throws on an unknown one). */
export function parseReaderTranscript(text: string, setting: (name: string, args: string[], lineNo: number) => void): { title: string; steps: ReaderStep[] } {
  return parseTranscriptLines(text, (line, lineNo): ReaderStep | null => {
    if (line.startsWith('= ')) return { kind: 'event', text: line.slice(2), lineNo };
    if (line.startsWith('@ ')) {
      const [name, ...args] = line.slice(2).trim().split(' ');
      return { kind: 'directive', name, args, lineNo };
    }
    if (!line.startsWith('% ')) throw new Error(`line ${lineNo}: cannot read "${line}"`);
    const [name, ...args] = line.slice(2).split(' ');
    setting(name, args, lineNo);
    return null;
  });
}

/** What Pop3Session and ImapSession have in common, as a run drives them. */
interface ReaderSession<Step> {
  readonly deadline: number;
  greet(now: number): Step;
  receive(bytes: Uint8Array, now: number): Step;
  tlsStarted(info: { protocol: string; cipher: string }, now: number): Step;
  tick(now: number): Step;
  peerClosed(): Step;
  shutdown(): Step;
}

interface SessionStep<Event> {
  readonly out: string | Uint8Array;
  readonly close?: boolean;
  readonly startTls?: boolean;
  readonly events: readonly Event[];
}

/** What a protocol's event and directive handlers get from the run. */
export interface ReaderRun<Step> {
  /** The session's clock: 1,000,000 at the start, moved only by `@ idle`. */
  readonly now: number;
  /** Takes in what a call on the session returned (output, events), as the run does with its own calls. */
  absorb(step: Step): void;
}

export interface ReaderProtocol<Event, Step extends SessionStep<Event>> {
  readonly session: ReaderSession<Step>;
  /** How the output is decoded into lines (POP3 reads it as UTF-8, IMAP as latin1). */
  readonly decoder: TextDecoder;
  /** `@ idle` sets the clock to the session's deadline plus this. */
  readonly idlePastDeadlineMs: number;
  /** Output after the session closed is an error in the run (not just a mismatch). */
  readonly silentAfterClose: boolean;
  /** `S: TEXT ...` takes a status line starting with TEXT and the multi-line block after it, up to ".". */
  readonly multiLineBlocks: boolean;
  /** The text `= EVENT` lines name the event by, or null for one they do not name. */
  describe(event: Event): string | null;
  /** Answers the requests among the session's events. */
  onEvent(event: Event, run: ReaderRun<Step>): void;
  /** A protocol directive: false when the name is not one. */
  directive(name: string, args: readonly string[], run: ReaderRun<Step>): boolean;
}

export interface ReaderRunResult<Event> {
  readonly mismatches: string[];
  /** Everything the server wrote, byte for byte. */
  readonly output: Uint8Array;
  readonly events: readonly Event[];
}

const ENCODER = new TextEncoder();

/** Runs the steps against the protocol's session, feeding the client side in `mode`. */
export function runReaderTranscript<Event, Step extends SessionStep<Event>>(steps: readonly ReaderStep[], mode: FeedMode, protocol: ReaderProtocol<Event, Step>): ReaderRunResult<Event> {
  const { session } = protocol;
  const chunks: Uint8Array[] = [];
  const allEvents: Event[] = [];
  const described: string[] = [];
  let closed = false;
  let tlsAsked = false;
  const turns = new TranscriptTurns((bytes) => feedInMode(bytes, mode, (piece) => run.absorb(session.receive(piece, run.now))));
  const run = {
    now: 1_000_000,
    absorb(step: Step): void {
      const bytes = typeof step.out === 'string' ? ENCODER.encode(step.out) : step.out;
      if (protocol.silentAfterClose && closed && bytes.length > 0) throw new Error('output after the session closed');
      chunks.push(bytes);
      turns.received(protocol.decoder.decode(bytes));
      if (step.close) closed = true;
      if (step.startTls) tlsAsked = true;
      for (const event of step.events) {
        allEvents.push(event);
        const d = protocol.describe(event);
        if (d !== null) described.push(d);
        protocol.onEvent(event, run);
      }
    },
  };

  run.absorb(session.greet(run.now));
  const mismatches: string[] = [];
  for (const step of steps) {
    switch (step.kind) {
      case 'send':
        turns.send(step.bytes);
        break;
      case 'expect': {
        turns.flush();
        const actual = turns.takeLine();
        if (protocol.multiLineBlocks && step.line.endsWith(' ...')) {
          if (actual === null || !actual.startsWith(step.line.slice(0, -4))) {
            mismatches.push(`line ${step.lineNo}: expected "${step.line}", got "${actual}"`);
            break;
          }
          let body = turns.takeLine();
          while (body !== null && body !== '.') body = turns.takeLine();
          if (body === null) mismatches.push(`line ${step.lineNo}: the multi-line response never ended`);
          break;
        }
        const matches = actual !== null && (step.line.endsWith('*') ? actual.startsWith(step.line.slice(0, -1)) : actual === step.line);
        if (!matches) mismatches.push(`line ${step.lineNo}: expected "${step.line}", got ${actual === null ? 'nothing' : `"${actual}"`}`);
        break;
      }
      case 'event': {
        turns.flush();
        const got = described.shift();
        if (got !== step.text) mismatches.push(`line ${step.lineNo}: expected event "${step.text}", got ${got === undefined ? 'none' : `"${got}"`}`);
        break;
      }
      case 'directive':
        turns.flush();
        switch (step.name) {
          case 'tls':
            if (!tlsAsked) mismatches.push(`line ${step.lineNo}: the session did not ask for TLS`);
            tlsAsked = false;
            run.absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, run.now));
            break;
          case 'idle':
            run.now = session.deadline + protocol.idlePastDeadlineMs;
            run.absorb(session.tick(run.now));
            break;
          case 'closed':
            if (!closed) mismatches.push(`line ${step.lineNo}: expected the session to be closed`);
            break;
          case 'peer-closes':
            run.absorb(session.peerClosed());
            break;
          case 'shutdown':
            run.absorb(session.shutdown());
            break;
          default:
            if (!protocol.directive(step.name, step.args, run)) throw new Error(`line ${step.lineNo}: unknown directive "@ ${step.name}"`);
        }
        break;
    }
  }
  turns.flush();
  let extra: string | null;
  while ((extra = turns.takeLine()) !== null) mismatches.push(`unexpected output "${extra}"`);
  if (turns.unterminated !== '') mismatches.push(`output without CRLF at the end: ${JSON.stringify(turns.unterminated)}`);
  return { mismatches, output: concatBytes(chunks), events: allEvents };
}
