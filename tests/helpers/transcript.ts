/**
 * Runs client transcripts against the pure client core, with the roles of a server transcript
 * reversed: `S:` lines are fed to the core as bytes, `C:` lines must match what it writes.
 * Rule: every transcript runs whole, line by line and byte by byte; in the last two modes the
 * client must have written exactly the `C:` lines (and reported exactly the `=` events) that
 * precede each `S:` line before that line is fed, so pipelining and lock-step are both pinned.
 *
 * Directives: `@ option ehlo=NAME starttls=never|opportunistic|required tls=yes
 * auth=USER:SECRET[:token] mechanism=M cleartext=yes quit-after=STAGE chunking=no
 * notify=A,B ret=FULL|HDRS envid=ID outgoing=refuse|strip|relay` (before any line; DSN options apply to every send), `@ message TEXT` (adds a line to the next message; `@ message` alone adds an empty one),
 * `@ send <from> <to>...`, `@ probe <from> <to>...` (MAIL, RCPTs, RSET), `@ probe-vrfy <from> <to>...`
 * (VRFY the first recipient first), `@ quit`, `@ tls`, `@ tls-fails REASON`, `@ idle`, `@ peer-closes`.
 * Events are described by describeClientEvent() and matched against `= pattern` lines.
 */
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseMailbox, type Mailbox } from '../../src/core/address.ts';
import {
  ClientSession,
  type ClientEvent,
  type ClientOptions,
  type ClientStep,
  type DsnOptions,
  type OutgoingPolicy,
  type OutgoingTransaction,
  type QuitAfter,
  type SaslMechanism,
  type StartTlsPolicy,
} from '../../src/core/client-session.ts';
import { describeReply } from '../../src/core/reply.ts';
import { matchesPattern, parseTranscript, type TranscriptEntry, type TranscriptStep } from '../../src/core/transcript.ts';

export type FeedMode = 'whole' | 'line' | 'byte';
export const FEED_MODES: readonly FeedMode[] = ['whole', 'line', 'byte'];

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const DEFAULT_MESSAGE = ['Subject: test', '', 'Hello.'];

/** One line per event, for `=` expectations; transcript events are not described. */
export function describeClientEvent(event: ClientEvent): string | null {
  switch (event.kind) {
    case 'transcript':
    case 'reply':
      return null;
    case 'authenticated':
      return `authenticated ${event.mechanism}`;
    case 'stopped':
      return `stopped after ${event.stage}`;
    case 'ready':
      return event.tls ? 'ready tls' : 'ready';
    case 'starttls':
      return 'starttls';
    case 'outcome': {
      const o = event.outcome;
      const accepted = o.recipients.filter((r) => r.accepted).length;
      const total = o.transaction.recipients.length;
      if (o.ok) return `sent to ${accepted}/${total}: ${describeReply(o.reply)}`;
      if (o.stoppedAfter !== undefined) return `stopped after ${o.stoppedAfter}: ${accepted}/${o.recipients.length} accepted`;
      const f = o.failure;
      return `failed ${f.kind} at ${f.stage}: ${f.reply ? describeReply(f.reply) : f.message}`;
    }
    case 'probed': {
      const o = event.outcome;
      const f = o.failure;
      if (f !== null) return `probe failed ${f.kind} at ${f.stage}: ${f.reply ? describeReply(f.reply) : f.message}`;
      const parts = o.vrfy.map((v) => `vrfy ${v.reply.code}`);
      if (o.mail !== null) parts.push(`mail ${o.mail.code}`);
      if (o.recipients.length > 0) parts.push(`rcpt ${o.recipients.map((r) => r.reply.code).join(' ')}`);
      return `probed: ${parts.join(', ')}`;
    }
    case 'failed': {
      const f = event.failure;
      return `session failed ${f.kind} at ${f.stage}: ${f.reply ? describeReply(f.reply) : f.message}`;
    }
    case 'closed':
      return 'closed';
    default:
      event satisfies never;
      return null;
  }
}

export interface ClientRun {
  readonly session: ClientSession;
  /** Every step's output chunks, in order, as the adapter would write them. */
  readonly writes: readonly (readonly (string | Uint8Array)[])[];
  readonly events: readonly ClientEvent[];
  readonly transcript: readonly TranscriptEntry[];
  /** True once a step asked the adapter to close. */
  readonly closed: boolean;
}

function chunkText(chunk: string | Uint8Array): string {
  return typeof chunk === 'string' ? chunk : DECODER.decode(chunk);
}

/** HMAC-MD5 for CRAM-MD5, as the adapter gives it. */
export function hmacMd5(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('md5', key).update(data).digest());
}

function parseOptions(args: string): ClientOptions {
  const fields = new Map(args.split(/\s+/).filter(Boolean).map((kv): [string, string] => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]));
  const auth = fields.get('auth')?.split(':');
  return {
    ehloName: fields.get('ehlo') ?? 'client.example',
    startTls: (fields.get('starttls') ?? 'never') as StartTlsPolicy,
    tls: fields.get('tls') === 'yes',
    auth: auth === undefined
      ? undefined
      : {
          username: auth[0],
          secret: auth[1],
          secretKind: auth[2] === 'token' ? 'token' : 'password',
          mechanism: fields.get('mechanism') as SaslMechanism | undefined,
          allowCleartext: fields.get('cleartext') === 'yes',
        },
    hmacMd5,
    quitAfter: fields.get('quit-after') as QuitAfter | undefined,
    chunking: fields.get('chunking') !== 'no',
    outgoing: fields.get('outgoing') as OutgoingPolicy | undefined,
  };
}

function parseDsn(args: string): DsnOptions | undefined {
  const fields = new Map(args.split(/\s+/).filter(Boolean).map((kv): [string, string] => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]));
  const notify = fields.get('notify')?.split(',') as DsnOptions['notify'];
  const ret = fields.get('ret') as DsnOptions['ret'];
  const envid = fields.get('envid');
  return notify || ret || envid ? { notify, ret, envid } : undefined;
}

function parseSend(args: string, messageLines: readonly string[], line: number, dsn?: DsnOptions): OutgoingTransaction {
  const paths = [...args.matchAll(/<([^>]*)>/g)].map((m) => m[1]);
  if (paths.length < 1) throw new Error(`transcript line ${line}: "@ send" needs <from> and <to>...`);
  const mailbox = (text: string): Mailbox => {
    const parsed = parseMailbox(text, true);
    if (!parsed.ok) throw new Error(`transcript line ${line}: ${parsed.why}`);
    return parsed.mailbox;
  };
  const lines = messageLines.length > 0 ? messageLines : DEFAULT_MESSAGE;
  return {
    sender: paths[0] === '' ? null : mailbox(paths[0]),
    recipients: paths.slice(1).map(mailbox),
    // Bare LF on purpose: the session must turn it into CRLF.
    message: ENCODER.encode(`${lines.join('\n')}\n`),
    dsn,
  };
}

/** Runs one transcript in one feed mode; throws an Error naming the fixture line on a mismatch. */
export function runClientTranscript(text: string, mode: FeedMode): ClientRun {
  const { steps } = parseTranscript(text);
  const optionStep = steps.find((s) => s.kind === 'event' && s.name === 'option');
  const optionArgs = optionStep?.kind === 'event' ? optionStep.args : '';
  const session = new ClientSession(parseOptions(optionArgs));
  const dsn = parseDsn(optionArgs);

  const writes: (readonly (string | Uint8Array)[])[] = [];
  const events: ClientEvent[] = [];
  const transcript: TranscriptEntry[] = [];
  let output = '';
  let closed = false;
  const take = (step: ClientStep) => {
    if (closed && step.out.length > 0) throw new Error(`the client wrote after asking to close: ${JSON.stringify(step.out.map(chunkText).join(''))}`);
    if (step.out.length > 0) writes.push(step.out);
    for (const chunk of step.out) output += chunkText(chunk);
    for (const event of step.events) {
      events.push(event);
      if (event.kind === 'transcript') transcript.push(event.entry);
    }
    if (step.close) closed = true;
  };

  const expectedC: { text: string; line: number }[] = [];
  const expectedEvents: { text: string; line: number }[] = [];
  let pendingS: Uint8Array[] = [];
  let messageLines: string[] = [];

  const check = (where: string) => {
    const actual = output.endsWith('\r\n') ? output.slice(0, -2).split('\r\n') : output === '' ? [] : output.split('\r\n');
    const n = Math.max(actual.length, expectedC.length);
    for (let i = 0; i < n; i++) {
      const want = expectedC[i];
      const got = actual[i];
      if (want === undefined) throw new Error(`${mode}: ${where}: the client wrote ${JSON.stringify(got)}, which the transcript does not have yet`);
      if (got === undefined) throw new Error(`${mode}: ${where}: line ${want.line} expects the client to have written ${JSON.stringify(want.text)}; it wrote nothing more`);
      if (!matchesPattern(want.text, got)) {
        throw new Error(`${mode}: ${where}: line ${want.line} expects C: ${JSON.stringify(want.text)}, the client wrote ${JSON.stringify(got)}`);
      }
    }
    const described = events.map(describeClientEvent).filter((d): d is string => d !== null);
    const m = Math.max(described.length, expectedEvents.length);
    for (let i = 0; i < m; i++) {
      const want = expectedEvents[i];
      const got = described[i];
      if (want === undefined) throw new Error(`${mode}: ${where}: the client reported "${got}", which the transcript does not expect yet`);
      if (got === undefined) throw new Error(`${mode}: ${where}: line ${want.line} expects "= ${want.text}"; no such event yet`);
      if (!matchesPattern(want.text, got)) throw new Error(`${mode}: ${where}: line ${want.line} expects "= ${want.text}", got "${got}"`);
    }
  };

  const feed = (bytes: Uint8Array) => {
    if (mode === 'byte') for (let i = 0; i < bytes.length; i++) take(session.receive(bytes.subarray(i, i + 1)));
    else take(session.receive(bytes));
  };
  const flushWhole = () => {
    if (pendingS.length === 0) return;
    const total = pendingS.reduce((n, b) => n + b.length, 0);
    const all = new Uint8Array(total);
    let at = 0;
    for (const b of pendingS) {
      all.set(b, at);
      at += b.length;
    }
    pendingS = [];
    feed(all);
  };

  const apply = (step: Extract<TranscriptStep, { kind: 'event' }>) => {
    switch (step.name) {
      case 'option':
        return;
      case 'message':
        messageLines.push(step.args);
        return;
      case 'send':
        take(session.send(parseSend(step.args, messageLines, step.line, dsn)));
        messageLines = [];
        return;
      case 'probe':
      case 'probe-vrfy': {
        const tx = parseSend(step.args, [], step.line);
        return take(session.probe({ sender: tx.sender, recipients: tx.recipients, vrfy: step.name === 'probe-vrfy' ? tx.recipients.slice(0, 1) : undefined }));
      }
      case 'quit':
        return take(session.quit());
      case 'tls':
        return take(session.tlsStarted());
      case 'tls-fails':
        return take(session.tlsFailed(step.args || 'handshake failed'));
      case 'idle':
        return take(session.timeout());
      case 'peer-closes':
        return take(session.peerClosed());
      default:
        throw new Error(`transcript line ${step.line}: unknown directive "@ ${step.name}"`);
    }
  };

  for (const step of steps) {
    switch (step.kind) {
      case 'C':
        expectedC.push({ text: step.text, line: step.line });
        break;
      case 'expect':
        expectedEvents.push({ text: step.text, line: step.line });
        break;
      case 'S': {
        const bytes = ENCODER.encode(`${step.text}\r\n`);
        if (mode === 'whole') {
          pendingS.push(bytes);
          break;
        }
        check(`before S: line ${step.line}`);
        feed(bytes);
        break;
      }
      case 'event':
        flushWhole();
        // Directives that only set up input are not checkpoints: output may not have caught up.
        if (step.name !== 'message' && step.name !== 'option' && mode !== 'whole') check(`before line ${step.line}`);
        apply(step);
        break;
      default:
        step satisfies never;
    }
  }
  flushWhole();
  check('at the end');
  return { session, writes, events, transcript, closed };
}

/** The client fixtures: file name → text. */
export function readClientFixtures(dir: string): [string, string][] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.txt'))
    .sort()
    .map((name) => [name, readFileSync(join(dir, name), 'utf8')]);
}
