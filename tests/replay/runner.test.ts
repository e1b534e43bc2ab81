/**
 * The replay runner against a small scripted SMTP responder on a loopback port: every item gets
 * exactly one result, lost sessions are reopened, a dead server fails the rest unsent, --rate
 * spaces the starts (on a fake clock: no timing assertion), and transactions pipeline.
 */
import { afterEach, describe, expect, test } from 'bun:test';
import type { Socket, TCPSocketListener } from 'bun';
import { ClientFailure } from '../../src/core/errors.ts';
import { parseEnvelopeRules } from '../../src/replay/envelope-rules.ts';
import type { ReplayResult } from '../../src/replay/outcome.ts';
import { runReplay, type ReplayPlan } from '../../src/replay/runner.ts';
import type { ReplayItem, ReplayProblem, SourceEvent } from '../../src/replay/sources.ts';
import { mailbox } from '../helpers/mailbox.ts';

interface Responder {
  readonly port: number;
  /** Messages received, as "from>to,to". */
  readonly received: string[];
  /** Every MAIL command, as sent. */
  readonly mailLines: string[];
  /** Connections accepted. */
  connections: number;
  /** Largest number of commands that arrived in one read. */
  maxBatch: number;
  stop(): void;
}

interface ResponderOptions {
  /** Recipients answered 550. */
  readonly reject?: readonly string[];
  /** Say 421 and close after this many messages on a connection. */
  readonly closeAfter?: number;
  /** Offer 8BITMIME and SMTPUTF8 (RFC 6531). */
  readonly smtpUtf8?: boolean;
}

const listeners: TCPSocketListener<unknown>[] = [];
afterEach(() => {
  for (const l of listeners.splice(0)) l.stop(true);
});

/** A line-based SMTP server with PIPELINING: enough to see what the client writes. */
function startResponder(options: ResponderOptions = {}): Responder {
  const state: Responder = { port: 0, received: [], mailLines: [], connections: 0, maxBatch: 0, stop: () => listener.stop(true) };
  type Session = { buffer: string; inData: boolean; from: string; to: string[]; messages: number };
  const sessions = new Map<Socket<unknown>, Session>();
  const listener = Bun.listen<unknown>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        state.connections++;
        sessions.set(socket, { buffer: '', inData: false, from: '', to: [], messages: 0 });
        socket.write('220 responder ESMTP\r\n');
      },
      data(socket, chunk) {
        const s = sessions.get(socket)!;
        s.buffer += chunk.toString('latin1');
        let out = '';
        let commands = 0;
        for (let eol = s.buffer.indexOf('\r\n'); eol >= 0; eol = s.buffer.indexOf('\r\n')) {
          const line = s.buffer.slice(0, eol);
          s.buffer = s.buffer.slice(eol + 2);
          if (s.inData) {
            if (line !== '.') continue;
            s.inData = false;
            s.messages++;
            if (options.closeAfter !== undefined && s.messages >= options.closeAfter) {
              socket.write(`${out}421 4.3.2 enough for now\r\n`);
              socket.end();
              return;
            }
            state.received.push(`${s.from}>${s.to.join(',')}`);
            out += '250 2.0.0 queued\r\n';
            continue;
          }
          commands++;
          const verb = line.slice(0, 4).toUpperCase();
          if (verb === 'EHLO') out += options.smtpUtf8 === true ? '250-responder\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n' : '250-responder\r\n250 PIPELINING\r\n';
          else if (verb === 'MAIL') {
            state.mailLines.push(line);
            s.from = /<(.*)>/.exec(line)![1];
            s.to = [];
            out += '250 2.1.0 OK\r\n';
          } else if (verb === 'RCPT') {
            const to = /<(.*)>/.exec(line)![1];
            if (options.reject?.includes(to)) out += '550 5.1.1 no such user\r\n';
            else {
              s.to.push(to);
              out += '250 2.1.5 OK\r\n';
            }
          } else if (verb === 'DATA') {
            if (s.to.length === 0) out += '554 5.5.1 no valid recipients\r\n';
            else {
              s.inData = true;
              out += '354 go ahead\r\n';
            }
          } else if (verb === 'RSET') out += '250 2.0.0 OK\r\n';
          else if (verb === 'QUIT') {
            socket.write(`${out}221 2.0.0 bye\r\n`);
            socket.end();
            return;
          } else out += '502 5.5.2 unknown\r\n';
        }
        state.maxBatch = Math.max(state.maxBatch, commands);
        if (out !== '') socket.write(out);
      },
      close(socket) {
        sessions.delete(socket);
      },
    },
  });
  listeners.push(listener);
  return Object.assign(state, { port: listener.port });
}

function items(n: number, recipients: (i: number) => string[] = (i) => [`r${i}@x.test`]): SourceEvent[] {
  return Array.from({ length: n }, (_, i): SourceEvent => ({
    kind: 'item',
    item: {
      file: 'f.smtp',
      offset: i * 100,
      id: `m${i}`,
      messageId: null,
      timeMs: 0,
      sender: mailbox('a@x.test'),
      recipients: recipients(i).map((r) => ({ mailbox: mailbox(r), local: false, params: [] })),
      recipientsProblem: null,
      mailParams: [],
      authUser: null,
      body: { stuffed: Buffer.from(`Subject: ${i}\r\n\r\n..dot\r\n`) },
      sourceBytes: 100,
    } satisfies ReplayItem,
  }));
}

function plan(port: number, overrides: Partial<ReplayPlan> = {}): ReplayPlan {
  return {
    server: { host: '127.0.0.1', port, tls: 'none' },
    ehloName: 'client.test',
    timeoutMs: 5000,
    tlsSettings: {},
    chunking: true,
    concurrency: 1,
    ratePerSecond: null,
    expect: null,
    rules: parseEnvelopeRules({}),
    ...overrides,
  };
}

async function replay(events: SourceEvent[], p: ReplayPlan, clock = { now: () => performance.now(), sleep: (ms: number) => Bun.sleep(ms) }) {
  const results: ReplayResult[] = [];
  const problems: ReplayProblem[] = [];
  let filtered = 0;
  await runReplay(events[Symbol.iterator](), p, { onResult: (r) => results.push(r), onProblem: (x) => problems.push(x), onFiltered: () => filtered++ }, clock);
  return { results, problems, filtered };
}

describe('runReplay', () => {
  test('every transaction gets one result; many go over one connection, pipelined with the end of the one before', async () => {
    const server = startResponder();
    const { results } = await replay(items(50), plan(server.port));
    expect(results).toHaveLength(50);
    expect(results.every((r) => r.verdict === 'sent' && r.connection === 1)).toBe(true);
    expect(server.received).toHaveLength(50);
    expect(server.connections).toBe(1);
    // ".", then the next MAIL, RCPT and DATA, arrive in one read.
    expect(server.maxBatch).toBeGreaterThanOrEqual(3);
  });

  test('a transaction recorded with SMTPUTF8 asks for it again; a server without it refuses UTF-8 header fields with 5.6.9 (RFC 6532 §3)', async () => {
    const [event] = items(1);
    if (event.kind !== 'item') throw new Error('an item');
    const utf8: SourceEvent = { kind: 'item', item: { ...event.item, mailParams: [{ name: 'SMTPUTF8', value: null }], body: { stuffed: Buffer.from('Subject: Grüße\r\n\r\nHallo\r\n') } } };
    const offering = startResponder({ smtpUtf8: true });
    const sent = await replay([utf8], plan(offering.port));
    expect(sent.results.map((r) => r.verdict)).toEqual(['sent']);
    expect(offering.mailLines).toHaveLength(1);
    expect(offering.mailLines[0]).toContain(' SMTPUTF8');
    const plain = startResponder();
    const refused = await replay([utf8], plan(plain.port));
    expect(refused.results.map((r) => [r.verdict, r.failure?.status.enhanced])).toEqual([['perm', '5.6.9']]);
    expect(plain.received).toHaveLength(0);
  });

  test('with --concurrency the transactions spread over several connections, each one result', async () => {
    const server = startResponder();
    const { results } = await replay(items(200), plan(server.port, { concurrency: 8 }));
    expect(results.map((r) => r.item.id).sort()).toEqual(items(200).map((e) => (e.kind === 'item' ? e.item.id : '')).sort());
    expect(new Set(results.map((r) => r.connection)).size).toBeGreaterThan(1);
    expect(server.received).toHaveLength(200);
  });

  test('a refused recipient makes a partial result; a session the server closes is reopened', async () => {
    const server = startResponder({ reject: ['r3@x.test'], closeAfter: 5 });
    const { results } = await replay(items(10, (i) => (i === 3 ? ['r3@x.test', 'ok@x.test'] : [`r${i}@x.test`])), plan(server.port));
    expect(results).toHaveLength(10);
    expect(results.find((r) => r.item.id === 'm3')!.verdict).toBe('partial');
    // The 421 after the 5th message also fails the one pipelined behind it: temporary, reported.
    const failed = results.filter((r) => r.verdict === 'temp');
    expect(failed.every((r) => r.failure?.reply?.code === 421)).toBe(true);
    expect(server.connections).toBeGreaterThan(1);
    expect(results.filter((r) => r.verdict !== 'temp')).toHaveLength(server.received.length);
  });

  test('a server that cannot be reached fails the run before anything is read', async () => {
    const server = startResponder();
    const port = server.port;
    server.stop();
    let pulled = 0;
    const source = (function* () {
      for (const e of items(3)) {
        pulled++;
        yield e;
      }
    })();
    const error = await runReplay(source, plan(port), { onResult: () => {}, onProblem: () => {}, onFiltered: () => {} }, { now: () => 0, sleep: async () => {} }).catch((e) => e);
    expect(error).toBeInstanceOf(ClientFailure);
    expect((error as ClientFailure).stage).toBe('connect');
    expect(pulled).toBe(0);
  });

  test('problems and filtered items pass through; the rest is sent', async () => {
    const server = startResponder();
    const events: SourceEvent[] = [
      ...items(2),
      { kind: 'problem', problem: { file: 'f.smtp', offset: 500, bytes: 20, reason: 'checksum mismatch' } },
      ...items(3, () => ['other@y.test']).map((e) => (e.kind === 'item' ? { kind: 'item' as const, item: { ...e.item, id: `n${e.item.id}` } } : e)),
    ];
    const { results, problems, filtered } = await replay(events, plan(server.port, { rules: parseEnvelopeRules({ filter: ['to=*@x.test'] }) }));
    expect(results).toHaveLength(2);
    expect(problems.map((p) => p.reason)).toEqual(['checksum mismatch']);
    expect(filtered).toBe(3);
  });

  test('--rate spaces the starts evenly (a fake clock: sleeps add up to the schedule)', async () => {
    const server = startResponder();
    let now = 0;
    const sleeps: number[] = [];
    const clock = { now: () => now, sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    } };
    const { results } = await replay(items(5), plan(server.port, { ratePerSecond: 10, concurrency: 2 }), clock);
    expect(results).toHaveLength(5);
    // Five starts 100 ms apart, and the pacer is asked once more by each worker that finds nothing left.
    expect(Math.round(sleeps.reduce((a, b) => a + b, 0))).toBeGreaterThanOrEqual(400);
    expect(sleeps.every((ms) => ms > 0)).toBe(true);
  });
});
