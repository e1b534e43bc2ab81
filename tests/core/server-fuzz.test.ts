// Fuzz test of the server core: random and mutated command streams under random configurations,
// fed in random chunks, with spool commits, AUTH checks and TLS handshakes answered at random.
// Invariants: no exception escapes; every reply line is well-formed (RFC 5321 §4.2: a code, then
// "-" or " ", at most 512 octets with CRLF, §4.5.3.1.5) and a multi-line reply keeps its code;
// nothing is written after the session closed; no message is accepted without a recipient.
// The seed is fixed and printed; FUZZ_CASES=1000000 (npm run soak does) and FUZZ_SEED=n run more.
import { expect, test } from 'bun:test';
import { ServerSession, type ServerConfig, type Step } from '../../src/core/server-session.ts';
import { DEFAULT_LIMITS } from '../../src/core/limits.ts';
import { replies } from '../../src/core/replies.ts';
import { seededRandom as rng, seedFromEnv } from '../helpers/seeded-random.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 4000);
const SEED = seedFromEnv('FUZZ_SEED', 'server fuzz', 20261127);

const enc = new TextEncoder();

function generate(r: () => number): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const addr = () => pick(['<a@b.example>', '<>', '<"q p"@x.example>', '<üser@exämple.test>', '<bad', '<x@[1.2.3.4]>', '<@r.example:y@z.example>', '<Postmaster>', 'nobrackets@x', `<${'l'.repeat(70)}@x.example>`]);
  const params = () => pick(['', ' SIZE=100', ' SIZE=999999999999', ' BODY=8BITMIME', ' SMTPUTF8', ' RET=HDRS ENVID=x', ' NOTIFY=SUCCESS,FAILURE', ' ORCPT=rfc822;a+40b', ' FOO=bar', ' AUTH=<>', ' SIZE', ` X=${'v'.repeat(600)}`, ` =${'w'.repeat(700)}`, ` BODY=${'b'.repeat(700)}`]);
  const b64 = (s: string) => btoa(s);
  const pieces: string[] = [];
  // Half the cases follow the shape of a real session, with steps left out or repeated, so that
  // the deeper states are reached; the other half are free sequences.
  const shaped = r() < 0.5;
  const plan: number[] = [];
  if (shaped) {
    for (let t = 0, n = 1 + Math.floor(r() * 3); t < n; t++) {
      if (r() < 0.8) plan.push(0);
      if (r() < 0.3) plan.push(12 + Math.floor(r() * 2));
      if (r() < 0.9) plan.push(2);
      for (let k = Math.floor(r() * 3); k > 0; k--) plan.push(3);
      plan.push(r() < 0.7 ? 5 : 7);
      if (plan.at(-1) === 5) plan.push(6);
      if (r() < 0.2) plan.push(Math.floor(r() * 22));
    }
  }
  const count = shaped ? plan.length : 1 + Math.floor(r() * 25);
  for (let i = 0; i < count; i++) {
    const kind = shaped ? plan[i] : Math.floor(r() * 22);
    switch (kind) {
      case 0: pieces.push(`EHLO ${pick(['c.example', '[127.0.0.1]', '', 'a b', 'h'.repeat(900)])}\r\n`); break;
      case 1: pieces.push(`HELO ${pick(['c.example', ''])}\r\n`); break;
      case 2: pieces.push(`MAIL FROM:${addr()}${params()}\r\n`); break;
      case 3: case 4: pieces.push(`RCPT TO:${addr()}${params()}\r\n`); break;
      case 5: pieces.push('DATA\r\n'); break;
      case 6: pieces.push(pick(['Subject: x\r\n\r\nbody\r\n.\r\n', '.\r\n', '..\r\n.\r\n', 'a\nb\r\n.\r\n', 'a\r.\r\n.\r\n', `${'x'.repeat(1200)}\r\n.\r\n`, 'no end'])); break;
      case 7: {
        const body = pick(['', 'x', 'line\r\n', 'a\nb', '.\r\n']);
        pieces.push(`BDAT ${body.length}${r() < 0.5 ? ' LAST' : ''}\r\n${body}`);
        break;
      }
      case 8: pieces.push(pick(['BDAT\r\n', 'BDAT x\r\n', 'BDAT 99999999999999999\r\n', 'BDAT 3 LAST EXTRA\r\n'])); break;
      case 9: pieces.push('RSET\r\n'); break;
      case 10: pieces.push(pick(['NOOP\r\n', 'NOOP hi\r\n', 'HELP\r\n', 'VRFY x\r\n', 'VRFY\r\n', 'EXPN list\r\n'])); break;
      case 11: pieces.push(pick(['STARTTLS\r\n', 'STARTTLS\r\nMAIL FROM:<e@x.example>\r\n', 'STARTTLS x\r\n'])); break;
      case 12: pieces.push(pick([`AUTH PLAIN ${b64('\0alice\0secret')}\r\n`, `AUTH PLAIN ${b64('\0alice\0no')}\r\n`, 'AUTH PLAIN\r\n', 'AUTH LOGIN\r\n', 'AUTH CRAM-MD5\r\n', 'AUTH\r\n', 'AUTH PLAIN =\r\n', 'AUTH PLAIN !!!\r\n'])); break;
      case 13: pieces.push(pick([`${b64('alice')}\r\n`, `${b64('secret')}\r\n`, '*\r\n', '%%%\r\n'])); break;
      case 14: pieces.push('QUIT\r\n'); break;
      case 15: pieces.push(`${'Z'.repeat(Math.floor(r() * 6000))}\r\n`); break;
      case 16: pieces.push(pick(['\r\n', '\n', '\r', '\x00\x00\r\n', 'GET / HTTP/1.1\r\n', 'mail from:<a@b.example>\r\n', 'rcpt to:<c@d.example>\r\n'])); break;
      default: {
        const junk = Array.from({ length: Math.floor(r() * 40) }, () => String.fromCharCode(Math.floor(r() * 256)));
        pieces.push(junk.join(''));
      }
    }
  }
  const bytes = enc.encode(pieces.join(''));
  // Mutations: flip, drop or duplicate a few bytes.
  const mutated = Array.from(bytes);
  const mutations = r() < 0.5 ? 0 : Math.floor(r() * 4);
  for (let m = 0; m < mutations && mutated.length > 0; m++) {
    const at = Math.floor(r() * mutated.length);
    const op = Math.floor(r() * 3);
    if (op === 0) mutated[at] = Math.floor(r() * 256);
    else if (op === 1) mutated.splice(at, 1);
    else mutated.splice(at, 0, ...mutated.slice(at, at + Math.floor(r() * 20)));
  }
  return new Uint8Array(mutated);
}

function checkReplies(text: string, problems: string[]): void {
  const lines = text.split('\r\n');
  if (lines.at(-1) !== '') problems.push(`output does not end with CRLF: ${JSON.stringify(text.slice(-40))}`);
  let open: string | null = null;
  for (const line of lines.slice(0, -1)) {
    if (!/^[2-5][0-9][0-9][ -]/.test(line) && !/^[2-5][0-9][0-9]$/.test(line)) problems.push(`malformed reply line ${JSON.stringify(line.slice(0, 80))}`);
    if (new TextEncoder().encode(line).length + 2 > 512) problems.push(`reply line longer than 512 octets: ${JSON.stringify(line.slice(0, 80))}`);
    const code = line.slice(0, 3);
    if (open !== null && code !== open) problems.push(`multi-line reply changes code ${open} → ${code}`);
    open = line.charAt(3) === '-' ? code : null;
  }
  if (open !== null) problems.push('multi-line reply never finished');
}

function runCase(seed: number): string[] {
  const r = rng(seed);
  const problems: string[] = [];
  const config: ServerConfig = {
    hostname: 'mx.test',
    postmaster: { local: 'postmaster', domain: 'b.example' },
    limits: { ...DEFAULT_LIMITS, maxMessageBytes: r() < 0.3 ? 8 : DEFAULT_LIMITS.maxMessageBytes, commandLineBytes: r() < 0.3 ? 600 : DEFAULT_LIMITS.commandLineBytes, maxErrors: 5 + Math.floor(r() * 20) },
    localDomains: r() < 0.5 ? null : new Set(['b.example']),
    relay: r() < 0.5,
    trusted: r() < 0.5,
    clientAddress: '192.0.2.9',
    tls: r() < 0.5 ? 'starttls' : 'none',
    requireTls: r() < 0.2,
    auth: r() < 0.6 ? { mechanisms: ['PLAIN', 'LOGIN'], allowInsecure: r() < 0.5 } : null,
    newId: (() => {
      let n = 0;
      return () => `F${++n}`;
    })(),
  };
  const session = new ServerSession(config, 0);
  let output = '';
  let closed = false;
  let now = 0;
  const absorb = (step: Step): void => {
    if (closed && step.out.length > 0) problems.push(`wrote after close: ${JSON.stringify(step.out.slice(0, 60))}`);
    output += step.out;
    if (step.close) closed = true;
    if (step.startTls && !closed) absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'X' }, now));
    for (const event of step.events) {
      if (event.kind === 'message') {
        if (event.envelope.recipients.length === 0) problems.push('a message was accepted without a recipient');
        absorb(session.resolve(event.requestId, r() < 0.8 ? { ok: true } : { ok: false, reply: replies.spoolFull() }, now));
      } else if (event.kind === 'auth') {
        const ok = event.username === 'alice' && event.password === 'secret';
        absorb(session.resolveAuth(event.requestId, ok ? { ok: true, user: 'alice' } : { ok: false, reply: replies.authFailed() }, now));
      }
    }
  };
  absorb(session.greet(now));
  const input = generate(r);
  let at = 0;
  while (at < input.length) {
    const size = 1 + Math.floor(r() * (r() < 0.3 ? 3 : 200));
    now += Math.floor(r() * 1000);
    absorb(session.receive(input.subarray(at, at + size), now));
    at += size;
  }
  if (r() < 0.2) absorb(session.tick(now + DEFAULT_LIMITS.commandTimeoutMs + 1));
  if (r() < 0.2) absorb(session.shutdown());
  checkReplies(output, problems);
  return problems;
}

test(`server core survives ${CASES} random and mutated sessions (seed ${SEED})`, () => {
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
}, Math.max(120_000, CASES * 5));
