// Fuzz test of the IMAP core: random and mutated command streams under random configurations,
// fed in random chunks, with logins, opens, loads, flag stores and expunges answered (or failed)
// at random, and changes made elsewhere arriving at random points.
// Invariants: no exception escapes; every line the server writes outside literal data is
// untagged ("* "), a continuation ("+ ") or tagged OK, NO or BAD; nothing is written after the
// session closed; every EXPUNGE goes out while IDLE or a command other than FETCH, STORE and
// SEARCH is answered (RFC 3501 §7.4.1).
// The seed is printed; IMAP_FUZZ_SEED=n replays it and FUZZ_CASES=n runs more cases.
import { expect, test } from 'bun:test';
import { ImapSession, DEFAULT_IMAP_LIMITS, type ImapConfig, type ImapStep } from '../../../src/core/imap/session.ts';
import { messageData } from '../../helpers/imap-transcript.ts';
import { chooser, seededRandom, seedFromEnv } from '../../helpers/seeded-random.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 1500);
const SEED = seedFromEnv('IMAP_FUZZ_SEED', 'IMAP session fuzz', 20261202);
const enc = new TextEncoder();

function generate(c: ReturnType<typeof chooser>): Uint8Array {
  const set = () => c.pick(['1', '1:*', '*', '2,4', '3:1', '0', '99999999999', '$', 'x', '1:2']);
  const pieces: string[] = [];
  if (c.chance(0.7)) pieces.push(c.pick(['a LOGIN alice secret\r\n', `a AUTHENTICATE PLAIN ${btoa('\0alice\0secret')}\r\n`, 'a LOGIN alice {6+}\r\nsecret\r\n']));
  if (c.chance(0.7)) pieces.push(c.pick(['s SELECT INBOX\r\n', 's EXAMINE inbox\r\n']));
  const count = c.int(1, 25);
  for (let i = 0; i < count; i++) {
    const tag = c.pick(['t', 'A001', '*', '+', '']);
    switch (c.int(0, 17)) {
      case 0: pieces.push(`${tag} FETCH ${set()} ${c.pick(['FLAGS', 'ALL', 'FULL', '(BODY[] UID)', 'BODY.PEEK[HEADER.FIELDS (Subject)]<0.5>', 'BODYSTRUCTURE', '(BODY[1.MIME] RFC822.TEXT)', 'BODY[', '()'])}\r\n`); break;
      case 1: pieces.push(`${tag} UID FETCH ${set()} (FLAGS ENVELOPE RFC822.SIZE INTERNALDATE)\r\n`); break;
      case 2: pieces.push(`${tag} ${c.pick(['', 'UID '])}STORE ${set()} ${c.pick(['+FLAGS', '-FLAGS.SILENT', 'FLAGS', 'X'])} ${c.pick(['(\\Seen)', '\\Deleted $Work', '(\\Recent)', '()', '\\Bogus'])}\r\n`); break;
      case 3: pieces.push(`${tag} ${c.pick(['', 'UID '])}SEARCH ${c.pick(['ALL', 'CHARSET UTF-8 TEXT grüße', 'OR UNSEEN FROM bob', 'UID 1:*', 'NOT', 'CHARSET X ALL', 'BEFORE 1-Jan-2030', 'LARGER 10'])}\r\n`); break;
      case 4: pieces.push(`${tag} ${c.pick(['EXPUNGE', 'UID EXPUNGE 1:*', 'CLOSE', 'UNSELECT', 'CHECK', 'NOOP'])}\r\n`); break;
      case 5: pieces.push(`${tag} IDLE\r\n`, c.pick(['DONE\r\n', 'done\r\n', 'nope\r\n', ''])); break;
      case 6: pieces.push(`${tag} ${c.pick(['SELECT INBOX', 'EXAMINE INBOX', 'SELECT "Other"', 'STATUS INBOX (MESSAGES UNSEEN)', 'STATUS INBOX ()'])}\r\n`); break;
      case 7: pieces.push(`${tag} ${c.pick(['LIST "" *', 'LSUB "" %', 'NAMESPACE', 'ID NIL', 'ENABLE X', 'CAPABILITY', 'CREATE x', 'APPEND INBOX {3}\r\nabc', 'COPY 1 x', 'MOVE 1 x'])}\r\n`); break;
      case 8: pieces.push(c.pick(['a STARTTLS\r\n', 'a STARTTLS\r\nb LOGIN evil x\r\n'])); break;
      case 9: pieces.push(c.pick(['a AUTHENTICATE PLAIN\r\n', '*\r\n', '=\r\n', `${btoa('\0alice\0secret')}\r\n`, 'a AUTHENTICATE PLAIN =\r\n'])); break;
      case 10: pieces.push(`${tag} LOGIN ${c.pick(['alice secret', '{3}\r\nabc x', '{999999999}', '{5+}\r\nab', '"a\\', '(x) y'])}\r\n`); break;
      case 11: pieces.push(c.pick(['a LOGOUT\r\n', '\r\n', '\n', '\x00\r\n', 'GET / HTTP/1.1\r\n'])); break;
      case 12: pieces.push(`${tag} FETCH 1 (${'('.repeat(c.int(1, 100))}\r\n`); break;
      case 13: pieces.push(`t NOOP ${'x'.repeat(c.chance(0.1) ? c.int(60000, 70000) : c.int(100, 2000))}\r\n`); break;
      default: pieces.push(Array.from({ length: c.int(0, 40) }, () => String.fromCharCode(c.int(0, 255))).join(''));
    }
  }
  const bytes = Array.from(enc.encode(pieces.join('')));
  for (let m = c.chance(0.5) ? 0 : c.int(1, 4); m > 0 && bytes.length > 0; m--) {
    const at = c.int(0, bytes.length - 1);
    const op = c.int(0, 2);
    if (op === 0) bytes[at] = c.int(0, 255);
    else if (op === 1) bytes.splice(at, 1);
    else bytes.splice(at, 0, ...bytes.slice(at, at + c.int(0, 20)));
  }
  return new Uint8Array(bytes);
}

const MESSAGES = [
  'Subject: one\r\nFrom: Bob <bob@example.com>\r\n\r\nHello\r\n',
  'Content-Type: multipart/mixed; boundary=b\r\nSubject: two\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nGrüße\r\n--b--\r\n',
  'no header at all',
];

function runCase(seed: number): string[] {
  const c = chooser(seededRandom(seed));
  const problems: string[] = [];
  const config: ImapConfig = {
    hostname: 'imap.test',
    tls: c.pick(['none', 'starttls', 'implicit'] as const),
    allowInsecureAuth: c.chance(0.7),
    limits: { ...DEFAULT_IMAP_LIMITS, maxErrors: c.int(3, 30), maxLiteralBytes: c.int(1, 1000) },
  };
  const store = new Map<number, { flags: string[]; bytes: Uint8Array }>();
  let nextUid = 1;
  for (let i = c.int(0, 5); i > 0; i--) store.set(nextUid++, { flags: c.chance(0.5) ? ['\\Seen'] : [], bytes: enc.encode(c.pick(MESSAGES)) });
  const session = new ImapSession(config, 0);
  let closed = false;
  let text = '';
  const fail = () => ({ ok: false as const, status: { condition: 'NO' as const, text: 'failed' } });
  const absorb = (step: ImapStep): void => {
    const bytes = typeof step.out === 'string' ? enc.encode(step.out) : step.out;
    if (closed && bytes.length > 0) problems.push('output after close');
    if (step.close) closed = true;
    text += new TextDecoder('latin1').decode(bytes);
    for (const e of step.events) {
      switch (e.kind) {
        case 'auth':
          absorb(session.resolveAuth(e.requestId, c.chance(0.8) ? { ok: true, user: 'alice' } : fail(), 0));
          break;
        case 'open': {
          const uids = [...store.keys()];
          const outcome = c.chance(0.9) ? { ok: true as const, mailbox: { uidValidity: 7, uidNext: nextUid, recentUids: e.claimRecent ? uids : [], messages: uids.map((uid) => ({ uid, flags: [...store.get(uid)!.flags] })) } } : fail();
          absorb(session.resolveOpen(e.requestId, outcome, 0));
          break;
        }
        case 'load':
          absorb(session.resolveLoad(e.requestId, c.chance(0.9) ? { ok: true, messages: e.uids.filter((u) => store.has(u)).map((u) => messageData(u, store.get(u)!.bytes)) } : fail(), 0));
          break;
        case 'store-flags':
          if (c.chance(0.9)) {
            for (const ch of e.changes) if (store.has(ch.uid)) store.get(ch.uid)!.flags = [...ch.flags];
            absorb(session.resolveChange(e.requestId, { ok: true }, 0));
          } else absorb(session.resolveChange(e.requestId, fail(), 0));
          break;
        case 'expunge':
          for (const u of e.uids) store.delete(u);
          absorb(session.resolveChange(e.requestId, { ok: true }, 0));
          break;
        default:
          break;
      }
    }
  };
  const elsewhere = (): void => {
    const roll = c.int(0, 2);
    if (roll === 0) {
      const uid = nextUid++;
      store.set(uid, { flags: [], bytes: enc.encode(c.pick(MESSAGES)) });
      absorb(session.notify([{ kind: 'appended', uid, flags: [] }], 0));
    } else {
      const uids = [...store.keys()];
      if (uids.length === 0) return;
      const uid = c.pick(uids);
      if (roll === 1) {
        store.delete(uid);
        absorb(session.notify([{ kind: 'expunged', uid }], 0));
      } else absorb(session.notify([{ kind: 'flags', uid, flags: ['\\Flagged'] }], 0));
    }
  };
  absorb(session.greet(0));
  const input = generate(c);
  let at = 0;
  while (at < input.length) {
    const n = c.int(1, 2000);
    absorb(session.receive(input.subarray(at, at + n), 0));
    at += n;
    if (c.chance(0.2)) elsewhere();
    if (c.chance(0.02)) absorb(session.tlsStarted({ protocol: 'TLSv1.3', cipher: 'x' }, 0));
  }
  if (c.chance(0.3)) absorb(session.shutdown());
  if (c.chance(0.3)) absorb(session.tick(session.deadline));
  absorb(session.peerClosed());
  // Every line outside literal data; then, for each EXPUNGE, the tagged line that ends its command.
  const lines: string[] = [];
  let i = 0;
  let continued = false;
  while (i < text.length) {
    const end = text.indexOf('\r\n', i);
    if (end < 0) {
      problems.push(`output without CRLF: ${JSON.stringify(text.slice(i, i + 80))}`);
      break;
    }
    const line = text.slice(i, end);
    i = end + 2;
    const literal = /\{(\d+)\}$/.exec(line);
    if (!continued && !/^(\* |\+ |[^ *+]+ (OK|NO|BAD) )/.test(line)) problems.push(`bad line ${JSON.stringify(line.slice(0, 80))}`);
    if (!continued) lines.push(line);
    // The rest of a response goes on after literal data, on the same line.
    continued = literal !== null;
    if (literal) i += Number(literal[1]);
  }
  let idling = false;
  lines.forEach((line, k) => {
    if (line === '+ idling') idling = true;
    else if (!line.startsWith('* ') && !line.startsWith('+ ')) idling = false;
    if (!/^\* \d+ EXPUNGE$/.test(line) || idling) return;
    const ending = lines.slice(k + 1).find((l) => !l.startsWith('* ') && !l.startsWith('+ '));
    if (ending === undefined) problems.push('EXPUNGE with no command in progress');
    else if (/ OK (FETCH|STORE|SEARCH) completed$/.test(ending)) problems.push(`EXPUNGE before "${ending}"`);
  });
  return problems;
}

test(`IMAP core fuzz: ${CASES} cases from seed ${SEED} never throw and keep the response grammar`, () => {
  for (let k = 0; k < CASES; k++) {
    const seed = (SEED + k) >>> 0;
    let problems: string[];
    try {
      problems = runCase(seed);
    } catch (error) {
      problems = [`threw ${String(error)}`];
    }
    expect({ seed, problems }).toEqual({ seed, problems: [] });
  }
}, 60_000);
