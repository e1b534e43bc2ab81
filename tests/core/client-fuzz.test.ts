// Fuzz test of the client core against hostile servers, through its public API only (send, probe,
// quit, receive, tlsStarted/tlsFailed, timeout, peerClosed): garbage and mutated replies in random
// chunks, a 100 MB reply line, replies that never end, and replies split at every byte.
// Invariants: no call throws; nothing is written after the session closed; every transaction gets
// exactly one outcome and every probe one `probed` event (Rule 3 of the core); no secret reaches
// the transcript (Rule 4); and the session never hangs past its timeouts: once the server has said
// all it will, at most three timeout() calls (the adapter's timer running out while a reply is
// awaited) close it, and whenever it waits with quit() asked it names the stage it waits for.
// CLIENT_FUZZ_CASES=n and CLIENT_FUZZ_SEED=n run more or other cases.
import { expect, test } from 'bun:test';
import {
  ClientSession,
  type ClientAuth,
  type ClientOptions,
  type ClientStep,
  type OutgoingTransaction,
  type ProbeTransaction,
  type SaslMechanism,
} from '../../src/core/client-session.ts';
import { mailbox } from '../helpers/mailbox.ts';
import { chooser, seededRandom, seedFromEnv } from '../helpers/seeded-random.ts';

const CASES = Number(process.env.CLIENT_FUZZ_CASES ?? 3000);
const SEED = seedFromEnv('CLIENT_FUZZ_SEED', 'client fuzz', 20261202);
const SECRET = 'S3cret-Pa55';
const USER = 'fuzz-user';
const enc = new TextEncoder();
type Pick = ReturnType<typeof chooser>;

// ---- the client's side: options and jobs ----

function options(r: Pick): ClientOptions {
  const mechanism = r.pick<SaslMechanism | undefined>([undefined, 'PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER']);
  const auth: ClientAuth | undefined = r.chance(0.4)
    ? {
        username: USER,
        secret: SECRET,
        secretKind: mechanism === 'XOAUTH2' || mechanism === 'OAUTHBEARER' ? 'token' : 'password',
        mechanism,
        allowCleartext: r.chance(0.5),
        host: 'mx.test',
        port: 587,
      }
    : undefined;
  return {
    ehloName: r.pick(['client.test', '[127.0.0.1]']),
    startTls: r.pick(['never', 'opportunistic', 'required'] as const),
    tls: r.chance(0.15),
    auth,
    hmacMd5: (key, data) => Uint8Array.from({ length: 16 }, (_, i) => (key[i % Math.max(1, key.length)] ?? 0) ^ (data[i % Math.max(1, data.length)] ?? 0)),
    chunking: r.chance(0.7),
    quitAfter: r.chance(0.1) ? r.pick(['connect', 'ehlo', 'tls', 'auth', 'mail', 'rcpt'] as const) : undefined,
  };
}

function transaction(r: Pick): OutgoingTransaction {
  const sender = r.chance(0.1) ? null : mailbox(r.pick(['a@client.test', 'ünï@client.test', 'b+x@client.test']));
  const recipients = Array.from({ length: r.int(1, 4) }, (_, i) => mailbox(r.pick([`r${i}@mx.test`, `ü${i}@mx.test`, `"q ${i}"@mx.test`])));
  const dsn = r.chance(0.2) ? { notify: ['FAILURE' as const], ret: 'HDRS' as const, envid: 'e1' } : undefined;
  if (r.chance(0.3)) return { sender, recipients, dsn, stuffed: enc.encode(r.pick(['Subject: s\r\n\r\n..dot\r\n', '', 'a\r\nb\r\n', 'x\r\n.\r\n'])) };
  return { sender, recipients, dsn, message: enc.encode(r.pick(['Subject: m\n\nbody\n', '.\r\n.\n..\n', 'ü 8bit\r\n', '', 'no newline'])) };
}

function probe(r: Pick): ProbeTransaction {
  return { sender: mailbox('p@client.test'), recipients: [mailbox('x@mx.test'), mailbox('y@mx.test')], vrfy: r.chance(0.5) ? [mailbox('v@mx.test')] : undefined };
}

// ---- the server's side: a stream of replies, plausible, wrong or garbage ----

const EXTENSIONS = ['PIPELINING', 'CHUNKING', 'STARTTLS', 'SIZE 1000', 'SIZE', 'SIZE x', 'SMTPUTF8', '8BITMIME', 'DSN', 'ENHANCEDSTATUSCODES', 'AUTH PLAIN LOGIN', 'AUTH CRAM-MD5', 'AUTH XOAUTH2 OAUTHBEARER', 'AUTH=LOGIN', 'VRFY'];

function ehloReply(r: Pick): string {
  const lines = ['mx.test greets you', ...EXTENSIONS.filter(() => r.chance(0.4))];
  return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
}

function unit(r: Pick): string {
  switch (r.int(0, 19)) {
    case 0: return '220 mx.test ESMTP\r\n';
    case 1: case 2: return ehloReply(r);
    case 3: case 4: case 5: return r.pick(['250 2.1.0 ok\r\n', '250 ok\r\n', '250\r\n', '250 2.0.0 queued as X1\r\n']);
    case 6: return '354 go ahead\r\n';
    case 7: return `334 ${r.pick(['', 'VXNlcm5hbWU6', 'UGFzc3dvcmQ6', btoa('<1.2@mx.test>'), '!!notbase64', btoa('{"status":"invalid_token"}')])}\r\n`;
    case 8: return r.pick(['235 2.7.0 ok\r\n', '535 5.7.8 no\r\n', '538 encryption required\r\n']);
    case 9: return `${r.pick(['421', '450', '451', '452', '500', '501', '502', '503', '504', '530', '550', '552', '553', '554'])} ${r.pick(['4.0.0 ', '5.0.0 ', ''])}no\r\n`;
    case 10: return r.pick(['221 bye\r\n', '220 2.0.0 ready for TLS\r\n', '252 maybe\r\n', '551 user not local\r\n']);
    case 11: return r.pick(['99 short\r\n', '2500 long code\r\n', '250x\r\n', 'abc\r\n', '\r\n', '\n', '600 no such class\r\n', '199 too low\r\n', '250\t tab\r\n']);
    case 12: return r.pick(['250-first\r\n550 second\r\n', '250-a\r\n250-b\r\n', '250-never ends\r\n', '220-multi\r\n220 greeting\r\n']);
    case 13: return `250 ${'L'.repeat(r.pick([500, 8000, 8190, 8191, 8192, 8193, 9000]))}\r\n`;
    case 14: return r.pick(['250 bare lf\n', '250 bare cr\r', '250 nul\x00byte\r\n', '250 \xff\xfe invalid utf-8\r\n', '250 ok\r\n250 ok\r\n250 ok\r\n']);
    case 15: return `250-${'x'.repeat(r.int(0, 40))}\r\n`.repeat(r.int(1, 300));
    default: return Array.from({ length: r.int(1, 60) }, () => String.fromCharCode(r.int(0, 255))).join('');
  }
}

/** Half follow a session's shape (with steps wrong or missing) so the deeper states are reached. */
function serverStream(r: Pick): Uint8Array {
  const parts: string[] = [];
  if (r.chance(0.5)) {
    parts.push('220 mx.test ESMTP\r\n', ehloReply(r));
    if (r.chance(0.3)) parts.push('220 2.0.0 ready for TLS\r\n', ehloReply(r));
    if (r.chance(0.3)) parts.push(...Array.from({ length: r.int(1, 3) }, () => r.pick(['334 VXNlcm5hbWU6\r\n', '334 UGFzc3dvcmQ6\r\n', '235 2.7.0 ok\r\n', '535 5.7.8 no\r\n'])));
    for (let t = r.int(0, 3); t > 0; t--) {
      parts.push('250 2.1.0 ok\r\n');
      for (let k = r.int(0, 4); k > 0; k--) parts.push(r.pick(['250 2.1.5 ok\r\n', '550 5.1.1 no\r\n', '452 4.5.3 too many\r\n']));
      parts.push(r.pick(['354 go\r\n', '250 2.0.0 chunk\r\n', '554 no data\r\n']), r.pick(['250 2.0.0 queued as Q\r\n', '451 4.3.0 try later\r\n', '250 2.0.0 ok\r\n']));
      if (r.chance(0.2)) parts.push(unit(r));
    }
    if (r.chance(0.7)) parts.push('221 2.0.0 bye\r\n');
  } else {
    for (let n = r.int(1, 30); n > 0; n--) parts.push(unit(r));
  }
  const bytes = Array.from(Buffer.from(parts.join(''), 'latin1'));
  for (let m = r.chance(0.5) ? 0 : r.int(1, 4); m > 0 && bytes.length > 0; m--) {
    const at = r.int(0, bytes.length - 1);
    const op = r.int(0, 2);
    if (op === 0) bytes[at] = r.int(0, 255);
    else if (op === 1) bytes.splice(at, 1);
    else bytes.splice(at, 0, ...bytes.slice(at, at + r.int(1, 20)));
  }
  return Uint8Array.from(bytes);
}

// ---- the driver: an adapter that checks the invariants as it goes ----

class Driver {
  readonly problems: string[] = [];
  readonly session: ClientSession;
  /** Everything written, and a digest of the events, to compare runs fed differently. */
  written = '';
  digest: string[] = [];
  starttls = false;
  #closed = false;
  #failedEvents = 0;
  #outcomes = new Map<object, { kind: string; n: number }>();
  #quitAsked = false;
  #r: Pick;

  constructor(opts: ClientOptions, r: Pick) {
    this.session = new ClientSession(opts);
    this.#r = r;
  }

  call(what: string, f: () => ClientStep): void {
    let step: ClientStep;
    try {
      step = f();
    } catch (error) {
      this.problems.push(`${what} threw: ${(error as Error).stack ?? error}`);
      return;
    }
    this.#absorb(step);
  }

  send(tx: OutgoingTransaction | ProbeTransaction, isProbe: boolean): void {
    this.#outcomes.set(tx, { kind: isProbe ? 'probe' : 'transaction', n: 0 });
    this.call(isProbe ? 'probe()' : 'send()', () => (isProbe ? this.session.probe(tx as ProbeTransaction) : this.session.send(tx as OutgoingTransaction)));
  }

  quit(): void {
    this.#quitAsked = true;
    this.call('quit()', () => this.session.quit());
  }

  receive(bytes: Uint8Array): void {
    this.call('receive()', () => this.session.receive(bytes));
    this.#checkWaiting();
  }

  /** The server says nothing more: the adapter's timer runs out, at most three times. */
  finish(peerCloses: boolean): void {
    if (peerCloses) this.call('peerClosed()', () => this.session.peerClosed());
    for (let n = 0; n < 3 && !this.session.closed; n++) this.call('timeout()', () => this.session.timeout());
    if (!this.session.closed) this.problems.push(`still open after three timeouts (awaiting ${this.session.awaitingStage})`);
    for (const { kind, n } of this.#outcomes.values()) if (n !== 1) this.problems.push(`a ${kind} got ${n} outcomes`);
    if (this.#failedEvents > 1) this.problems.push(`${this.#failedEvents} failed events`);
  }

  #checkWaiting(): void {
    // With quit() asked, an open session must be waiting for a reply, so the adapter's timer runs.
    if (this.#quitAsked && !this.session.closed && this.session.awaitingStage === null) this.problems.push('open, quit asked, and waiting for nothing: the adapter would hang');
  }

  #absorb(step: ClientStep): void {
    const text = step.out.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('latin1'))).join('');
    if (this.#closed && text.length > 0) this.problems.push(`wrote after close: ${JSON.stringify(text.slice(0, 60))}`);
    this.written += text;
    if (step.close) this.#closed = true;
    for (const event of step.events) {
      switch (event.kind) {
        case 'transcript':
          if (event.entry.kind === 'line' && (event.entry.text.includes(SECRET) || event.entry.text.includes(btoa(SECRET)) || event.entry.text.includes(btoa(`\0${USER}\0${SECRET}`)))) {
            this.problems.push(`a secret in the transcript: ${event.entry.text.slice(0, 80)}`);
          }
          break;
        case 'outcome':
          this.#count(event.outcome.transaction);
          this.digest.push(`outcome ${event.outcome.ok} ${event.outcome.ok ? event.outcome.reply.code : event.outcome.failure.message}`);
          break;
        case 'probed':
          this.#count(event.outcome.probe);
          this.digest.push(`probed ${event.outcome.failure?.message ?? 'ok'}`);
          break;
        case 'failed':
          this.#failedEvents++;
          this.digest.push(`failed ${event.failure.message}`);
          break;
        case 'closed':
          this.#closed = true;
          this.digest.push('closed');
          break;
        case 'starttls':
          this.starttls = true;
          this.digest.push('starttls');
          if (this.#r.chance(0.8)) this.call('tlsStarted()', () => this.session.tlsStarted());
          else this.call('tlsFailed()', () => this.session.tlsFailed('handshake failure'));
          break;
        default:
          this.digest.push(event.kind);
      }
    }
  }

  #count(tx: object): void {
    const entry = this.#outcomes.get(tx);
    if (entry === undefined) this.problems.push('an outcome for a transaction never sent');
    else entry.n++;
  }
}

interface Plan {
  readonly opts: ClientOptions;
  readonly jobs: { tx: OutgoingTransaction | ProbeTransaction; probe: boolean }[];
  readonly quitFirst: boolean;
  readonly stream: Uint8Array;
  readonly peerCloses: boolean;
}

function plan(r: Pick): Plan {
  const opts = options(r);
  const jobs = Array.from({ length: r.int(0, 3) }, () => (r.chance(0.15) ? { tx: probe(r), probe: true } : { tx: transaction(r), probe: false }));
  return { opts, jobs, quitFirst: r.chance(0.7), stream: serverStream(r), peerCloses: r.chance(0.5) };
}

/** Runs `p` feeding the stream in the chunks `cut` chooses; the driver's own choices use `seed`. */
function run(p: Plan, seed: number, cut: (at: number, left: number) => number): Driver {
  const d = new Driver(p.opts, chooser(seededRandom(seed)));
  for (const job of p.jobs) d.send(job.tx, job.probe);
  if (p.quitFirst) d.quit();
  for (let at = 0; at < p.stream.length;) {
    const size = Math.max(1, cut(at, p.stream.length - at));
    d.receive(p.stream.subarray(at, at + size));
    at += size;
  }
  if (!p.quitFirst) d.quit();
  d.finish(p.peerCloses);
  return d;
}

test(`client core survives ${CASES} hostile servers (seed ${SEED})`, () => {
  const failures: string[] = [];
  for (let i = 0; i < CASES && failures.length < 5; i++) {
    const r = chooser(seededRandom(SEED + i));
    const p = plan(r);
    const tiny = r.chance(0.3);
    const d = run(p, SEED + i, () => r.int(1, tiny ? 3 : 300));
    if (d.problems.length > 0) failures.push(`case seed ${SEED + i}: ${d.problems.slice(0, 3).join('; ')} [${d.digest.join(' | ')}]`);
  }
  expect(failures).toEqual([]);
}, Math.max(60_000, CASES * 20));

test('replies split at every byte: the same writes and events as the stream in one piece', () => {
  const failures: string[] = [];
  // Every case fed a byte at a time; the first ones also in two pieces, cut at each byte in turn.
  for (let i = 0; i < 300 && failures.length < 5; i++) {
    const p = plan(chooser(seededRandom(SEED + 1_000_000 + i)));
    const whole = run(p, i, (_, left) => left);
    const bytewise = run(p, i, () => 1);
    // Bytes after the 220 to STARTTLS are dropped when they came in the same read (RFC 3207 §4.2),
    // so only streams that never start TLS must give the same result however they are cut.
    if (whole.starttls || bytewise.starttls) continue;
    for (let at = 1; i < 25 && at < p.stream.length; at++) {
      const two = run(p, i, (from) => (from === 0 ? at : p.stream.length));
      if (two.written !== whole.written || two.digest.join('\n') !== whole.digest.join('\n')) {
        failures.push(`case ${i} split at byte ${at}: ${JSON.stringify(two.digest)} vs ${JSON.stringify(whole.digest)}`);
        break;
      }
    }
    if (bytewise.written !== whole.written || bytewise.digest.join('\n') !== whole.digest.join('\n')) failures.push(`case ${i} byte by byte: ${JSON.stringify(bytewise.digest)} vs ${JSON.stringify(whole.digest)}`);
    for (const d of [whole, bytewise]) if (d.problems.length > 0) failures.push(`case ${i}: ${d.problems.slice(0, 3).join('; ')}`);
  }
  expect(failures).toEqual([]);
}, 120_000);

const GREETED = enc.encode('220 mx.test ESMTP\r\n250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n');
const MESSAGE: OutgoingTransaction = { sender: mailbox('a@client.test'), recipients: [mailbox('b@mx.test')], message: enc.encode('Subject: big\n\nx\n') };

/** A session with one transaction queued, greeted, and past EHLO when `greet`. */
function hostile(greet: boolean): Driver {
  const d = new Driver({ ehloName: 'client.test' }, chooser(seededRandom(SEED)));
  d.send(MESSAGE, false);
  d.quit();
  if (greet) d.receive(GREETED);
  return d;
}

test('a 100 MB reply line, fed in 1 MB reads or in one: a protocol failure, the outcome, the close', () => {
  const line = new Uint8Array(100 * 1024 * 1024 + 6).fill(0x4c);
  line.set(enc.encode('250 '), 0);
  line.set(enc.encode('\r\n'), line.length - 2);
  for (const greet of [false, true]) {
    const inReads = hostile(greet);
    for (let at = 0; at < line.length && !inReads.session.closed; at += 1 << 20) inReads.receive(line.subarray(at, at + (1 << 20)));
    expect(inReads.session.closed).toBe(true);
    inReads.finish(false);
    expect(inReads.problems).toEqual([]);
    expect(inReads.digest.join('\n')).toContain('longer than');

    const atOnce = hostile(greet);
    atOnce.receive(line);
    atOnce.finish(false);
    expect(atOnce.problems).toEqual([]);
    expect(atOnce.digest.join('\n')).toContain('longer than');
  }
});

test('replies that never end: continuation lines without a last line, and silence, end with the timeouts', () => {
  const endless = enc.encode('250-still going\r\n'.repeat(100_000));
  for (const greet of [false, true]) {
    const d = hostile(greet);
    for (let at = 0; at < endless.length; at += 65_536) d.receive(endless.subarray(at, at + 65_536));
    expect(d.session.closed).toBe(false);
    expect(d.session.awaitingStage).not.toBeNull();
    d.finish(false);
    expect(d.problems).toEqual([]);
    expect(d.digest.some((e) => e.startsWith('outcome false'))).toBe(true);

    const silent = hostile(greet);
    silent.finish(false);
    expect(silent.problems).toEqual([]);
    expect(silent.session.closed).toBe(true);
  }
});
