// Fuzz test of the POP3 core: random and mutated command streams under random configurations,
// fed in random chunks, with logins, locks, reads and updates answered (or failed) at random.
// Invariants: no exception escapes; every status line is "+OK", "-ERR" or the "+ " challenge
// and fits 512 octets (RFC 2449 §4); every multi-line block ends with "."; nothing is written
// after the session closed; the lock is released exactly once for each lock granted.
// The seed is printed in the test name; FUZZ_CASES=100000 (and FUZZ_SEED=n) run more.
import { expect, test } from 'bun:test';
import { Pop3Session, DEFAULT_POP3_LIMITS, type Pop3Config, type Pop3Step } from '../../src/core/pop3-session.ts';
import { pop3Replies } from '../../src/core/pop3-replies.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);

const enc = new TextEncoder();
const dec = new TextDecoder();

function generate(r: () => number): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const num = () => pick(['1', '2', '3', '0', '-1', '99999999999', 'x', '', ' 1', '1 2']);
  const pieces: string[] = [];
  const count = 1 + Math.floor(r() * 25);
  if (r() < 0.6) pieces.push('USER alice\r\nPASS secret\r\n');
  for (let i = 0; i < count; i++) {
    switch (Math.floor(r() * 16)) {
      case 0: pieces.push(pick(['USER alice\r\n', 'USER\r\n', 'user bob\r\n', `USER ${'u'.repeat(2000)}\r\n`])); break;
      case 1: pieces.push(pick(['PASS secret\r\n', 'PASS\r\n', 'PASS a b c\r\n'])); break;
      case 2: pieces.push(pick([`AUTH PLAIN ${btoa('\0alice\0secret')}\r\n`, 'AUTH PLAIN\r\n', 'AUTH\r\n', 'AUTH X\r\n', 'AUTH PLAIN =\r\n', 'AUTH PLAIN *\r\n'])); break;
      case 3: pieces.push(pick([`${btoa('\0alice\0secret')}\r\n`, '*\r\n', '%%%\r\n', `${'A'.repeat(13000)}\r\n`])); break;
      case 4: pieces.push(`STAT\r\n`); break;
      case 5: pieces.push(`LIST ${num()}\r\n`, 'LIST\r\n'); break;
      case 6: pieces.push(`RETR ${num()}\r\n`); break;
      case 7: pieces.push(`TOP ${num()} ${num()}\r\n`); break;
      case 8: pieces.push(`DELE ${num()}\r\n`); break;
      case 9: pieces.push(pick(['UIDL\r\n', `UIDL ${num()}\r\n`])); break;
      case 10: pieces.push(pick(['RSET\r\n', 'NOOP\r\n', 'CAPA\r\n', 'APOP a b\r\n'])); break;
      case 11: pieces.push(pick(['STLS\r\n', 'STLS\r\nUSER evil\r\n', 'STLS x\r\n'])); break;
      case 12: pieces.push('QUIT\r\n'); break;
      case 13: pieces.push(pick(['\r\n', '\n', '\r', '\x00\r\n', 'GET / HTTP/1.1\r\n'])); break;
      default: pieces.push(Array.from({ length: Math.floor(r() * 40) }, () => String.fromCharCode(Math.floor(r() * 256))).join(''));
    }
  }
  const bytes = Array.from(enc.encode(pieces.join('')));
  for (let m = r() < 0.5 ? 0 : Math.floor(r() * 4); m > 0 && bytes.length > 0; m--) {
    const at = Math.floor(r() * bytes.length);
    const op = Math.floor(r() * 3);
    if (op === 0) bytes[at] = Math.floor(r() * 256);
    else if (op === 1) bytes.splice(at, 1);
    else bytes.splice(at, 0, ...bytes.slice(at, at + Math.floor(r() * 20)));
  }
  return new Uint8Array(bytes);
}

function runCase(seed: number): string[] {
  const r = seededRandom(seed);
  const problems: string[] = [];
  const config: Pop3Config = {
    hostname: 'pop.test',
    tls: r() < 0.3 ? 'none' : r() < 0.5 ? 'implicit' : 'starttls',
    allowInsecureAuth: r() < 0.5,
    limits: { ...DEFAULT_POP3_LIMITS, maxErrors: 3 + Math.floor(r() * 20) },
  };
  const messages = Array.from({ length: Math.floor(r() * 4) }, (_, i) => enc.encode(`Subject: ${i}\r\n\r\n.dot\r\nline ${i}${r() < 0.3 ? '' : '\r\n'}`));
  const session = new Pop3Session(config, 0);
  let text = '';
  let closed = false;
  let locks = 0;
  let releases = 0;
  const absorb = (step: Pop3Step): void => {
    const out = typeof step.out === 'string' ? step.out : dec.decode(step.out);
    if (closed && out.length > 0) problems.push(`wrote after close: ${JSON.stringify(out.slice(0, 60))}`);
    text += out;
    if (step.close) closed = true;
    if (step.startTls && !closed) absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'X' }, 0));
    for (const e of step.events) {
      if (e.kind === 'auth') {
        const ok = e.username === 'alice' && e.password === 'secret';
        absorb(session.resolveAuth(e.requestId, ok ? { ok: true, user: 'alice' } : { ok: false, response: pop3Replies.authFailed() }, 0));
      } else if (e.kind === 'lock') {
        const ok = r() < 0.85;
        if (ok) locks++;
        absorb(session.resolveLock(e.requestId, ok ? { ok: true, maildrop: { messages: messages.map((m, i) => ({ uid: `u${i}`, size: m.length })) } } : { ok: false, response: pop3Replies.maildropInUse() }, 0));
      } else if (e.kind === 'read') {
        absorb(session.resolveRead(e.requestId, r() < 0.9 ? { ok: true, bytes: messages[Number(e.uid.slice(1))] } : { ok: false, response: pop3Replies.readFailed('x') }, 0));
      } else if (e.kind === 'update') {
        absorb(session.resolveUpdate(e.requestId, r() < 0.9 ? { ok: true } : { ok: false, response: pop3Replies.updateFailed() }, 0));
      } else if (e.kind === 'release') releases++;
    }
  };
  absorb(session.greet(0));
  const input = generate(r);
  for (let at = 0; at < input.length; ) {
    const size = 1 + Math.floor(r() * (r() < 0.3 ? 3 : 200));
    absorb(session.receive(input.subarray(at, at + size), 0));
    at += size;
  }
  if (r() < 0.2) absorb(session.tick(DEFAULT_POP3_LIMITS.idleTimeoutMs + 1));
  if (r() < 0.2) absorb(session.shutdown());
  absorb(session.peerClosed());
  if (releases !== locks) problems.push(`${locks} locks granted but ${releases} released`);
  // Every status line is +OK, -ERR or "+ " and fits; any other line belongs to a multi-line
  // block, which a "." line closes before the next status line.
  const lines = text.split('\r\n');
  if (lines.at(-1) !== '') problems.push('output does not end with CRLF');
  let open = false;
  for (const line of lines.slice(0, -1)) {
    const status = line.startsWith('+OK') || line.startsWith('-ERR') || line === '+ ';
    if (status && enc.encode(line).length + 2 > 512) problems.push(`status line too long: ${line.slice(0, 60)}`);
    if (line === '.') open = false;
    else if (status && open) problems.push(`a block was not closed before ${JSON.stringify(line.slice(0, 60))}`);
    else if (!status) open = true;
  }
  if (open) problems.push('a multi-line block never ended');
  if (!/^\+OK /.test(text)) problems.push('no greeting');
  return problems;
}

test(`POP3 core survives ${CASES} random and mutated sessions (seed ${SEED})`, () => {
  const failures: string[] = [];
  for (let i = 0; i < CASES && failures.length < 5; i++) {
    let problems: string[];
    try {
      problems = runCase(SEED + i);
    } catch (error) {
      problems = [`exception: ${(error as Error).stack ?? error}`];
    }
    if (problems.length > 0) failures.push(`case seed ${SEED + i}: ${problems.slice(0, 3).join('; ')}`);
  }
  expect(failures).toEqual([]);
}, 120_000);
