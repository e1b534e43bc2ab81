// --delay-warning (issue 10 part 4): the relay's scheduler over the real RelayQueue, a queue host
// held in memory, and a destination that always answers 451. A recipient deferred longer than the
// warning time is reported "delayed" to the sender once (RFC 3464 §2.3.3), when its NOTIFY allows
// DELAY or it gave none (as Postfix does); never for NOTIFY=NEVER, a NOTIFY without DELAY, or the
// null sender; never without --delay-warning. The mark survives the journal (delivery-state.ts).
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dotStuff, dotUnstuff } from '../../src/core/data.ts';
import type { Envelope, Recipient } from '../../src/core/envelope.ts';
import { reply } from '../../src/core/reply.ts';
import type { TransferResult, TransferTask } from '../../src/delivery/relay-protocol.ts';
import { Relay, type Transfers } from '../../src/delivery/relay.ts';
import { parseRelaySettings, type RelaySettings } from '../../src/delivery/relay-settings.ts';
import type { CommitRequest } from '../../src/spool/commit.ts';
import { RelayQueue } from '../../src/spool/delivery-queue.ts';
import { formatStateRecord, parseStateLine, type DeliveryState } from '../../src/spool/delivery-state.ts';
import type { Entry } from '../../src/spool/index.ts';
import { mailbox } from '../helpers/mailbox.ts';

const MINUTE = 60_000;
const ARRIVAL = Date.UTC(2026, 11, 2, 8, 0, 0);
const GREYLISTED = reply(451, '4.7.1', 'Greylisted, try again later');
const MESSAGE = 'From: alice@sender.test\r\nTo: friends\r\nSubject: Late\r\n\r\nHello.\r\n';

let dir: string;
let segment: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbox-delay-warning-'));
  segment = join(dir, 'segment');
  await writeFile(segment, dotStuff(new TextEncoder().encode(MESSAGE)));
});

afterAll(() => rm(dir, { recursive: true, force: true }));

const rcpt = (address: string, notify?: string): Recipient => ({ mailbox: mailbox(address), local: false, params: notify ? [{ name: 'NOTIFY', value: notify }] : [] });

/** A destination that answers 451 to every recipient. */
const greylisting: Transfers = {
  run: async (task: TransferTask): Promise<TransferResult> => ({
    taskId: task.taskId,
    relay: 'mx.far.test[127.0.0.9]:25',
    recipients: task.recipients.map((r) => ({ rcptIndex: r.rcptIndex, reply: GREYLISTED, accepted: false, fromServer: true })),
    failure: { kind: 'rejected', stage: 'rcpt', message: 'greylisted' },
    unreachable: false,
    nullMx: false,
    relayedWithoutDsn: [],
    tls: null,
  }),
  update: () => {},
  close: async () => {},
};

/** One message in a queue held in memory; the relay's attempts at chosen times, and what they committed. */
function scenario(envelope: Envelope, delayWarning: string | undefined) {
  let now = ARRIVAL;
  const id = `${ARRIVAL.toString(36).padStart(9, '0')}0000001`;
  const entry = { id, envelope, states: envelope.recipients.map(() => ({ kind: 'pending' })) as DeliveryState[], live: true, visible: true, timeMs: ARRIVAL, seq: 1, bodyOffset: 0, bodyBytes: dotStuff(new TextEncoder().encode(MESSAGE)).length };
  const reports: { atMs: number; text: string }[] = [];
  const queue: RelayQueue = new RelayQueue({
    entry: (want) => (want === id ? (entry as unknown as Entry) : undefined),
    relayView: (want) => (want === id ? (entry as unknown as Entry) : undefined),
    segmentPath: () => segment,
    readMessage: async () => new TextEncoder().encode(MESSAGE),
    commitBatch: async (states, bounces: readonly CommitRequest[]) => {
      const next = [...entry.states];
      // Through the journal's own lines, as a restart would read them back.
      for (const r of states) {
        const line = parseStateLine(formatStateRecord(r).subarray(0, -1));
        if (line.kind !== 'record') throw new Error(`unreadable journal line for ${JSON.stringify(r)}`);
        next[r.rcpt!] = line.record.state;
      }
      entry.states = next;
      for (const b of bounces) reports.push({ atMs: now, text: Buffer.from(dotUnstuff(b.stuffed)).toString('latin1') });
      queue.note(entry as unknown as Entry);
    },
  });
  queue.note(entry as unknown as Entry);
  const texts = { relay: [{ text: 'mx', fromFile: false }], routes: [], tlsPolicy: [], relayDomains: [], dns: null, retryAfter: '5m', retryMax: '5m', lifetime: '2d', delayWarning };
  const settings: RelaySettings = parseRelaySettings(texts, { duration: (t) => Number.parseInt(t) * (t.endsWith('d') ? 86_400_000 : t.endsWith('h') ? 60 * MINUTE : MINUTE), count: Number }, 1);
  const log = { info: () => {}, warn: () => {}, error: (e: string, f?: unknown) => { throw new Error(`${e} ${JSON.stringify(f)}`); } };
  const relay = new Relay(settings, { queue, transfers: greylisting, log, now: () => now, hostname: 'relay.test', newId: () => `report${reports.length}`, isLocal: () => true, returnLimitBytes: 1 << 20 });
  return {
    entry,
    reports,
    /** An attempt at `minutes` after arrival, awaited until its outcomes are committed. */
    async attemptAt(minutes: number) {
      now = ARRIVAL + minutes * MINUTE;
      relay.tick();
      const deadline = Date.now() + 10_000;
      while (relay.inFlight > 0 || queue.leased > 0) {
        if (Date.now() > deadline) throw new Error('the attempt did not finish');
        await Bun.sleep(1);
      }
    },
    close: () => relay.drain(),
  };
}

function envelope(sender: string | null, recipients: Recipient[]): Envelope {
  return { sender: sender === null ? null : mailbox(sender), mailParams: [], recipients, utf8: false, body: '7BIT', declaredSize: null, authUser: null };
}

test('one "delayed" report once a recipient is deferred past --delay-warning, for NOTIFY absent or with DELAY only', async () => {
  const s = scenario(envelope('alice@sender.test', [rcpt('none@far.test'), rcpt('delay@far.test', 'DELAY,FAILURE'), rcpt('never@far.test', 'NEVER'), rcpt('failure@far.test', 'FAILURE')]), '10m');
  await s.attemptAt(0);
  await s.attemptAt(5);
  expect(s.reports).toEqual([]);
  await s.attemptAt(10);
  expect(s.reports.length).toBe(1);
  const text = s.reports[0].text;
  expect(text).toContain('Subject: Delayed Mail (still being retried)');
  expect(text).toContain('report-type=delivery-status');
  expect([...text.matchAll(/^Final-Recipient: rfc822; (.*)$/gm)].map((m) => m[1].trim())).toEqual(['none@far.test', 'delay@far.test']);
  expect([...text.matchAll(/^Action: (.*)$/gm)].map((m) => m[1].trim())).toEqual(['delayed', 'delayed']);
  expect([...text.matchAll(/^Status: (.*)$/gm)].map((m) => m[1].trim())).toEqual(['4.7.1', '4.7.1']);
  expect(text).toContain('Remote-MTA: dns; mx.far.test[127.0.0.9]:25');
  expect(text).toContain('Diagnostic-Code: smtp; 451 4.7.1 Greylisted, try again later');
  // RFC 3464 §2.3.8: when the relay gives up: arrival plus --queue-lifetime (2 days).
  expect(text).toContain('Will-Retry-Until: Fri, 4 Dec 2026 08:00:00 +0000');
  // A warning returns the header only, whatever RET says (RFC 3461 §4.3 speaks of failures).
  expect(text).toContain('Content-Type: text/rfc822-headers');
  expect(s.entry.states.map((st) => st.kind === 'deferred' && st.warned === true)).toEqual([true, true, false, false]);
  await s.attemptAt(15);
  await s.attemptAt(20);
  expect(s.reports.length).toBe(1);
  expect(s.entry.states.every((st) => st.kind === 'deferred' && st.attempts === 5)).toBe(true);
  await s.close();
});

test('no warning without --delay-warning, and none for the null sender', async () => {
  for (const s of [
    scenario(envelope('alice@sender.test', [rcpt('none@far.test'), rcpt('delay@far.test', 'DELAY')]), undefined),
    scenario(envelope(null, [rcpt('none@far.test'), rcpt('delay@far.test', 'DELAY')]), '1m'),
  ]) {
    for (const minutes of [0, 5, 10, 15]) await s.attemptAt(minutes);
    expect(s.reports).toEqual([]);
    expect(s.entry.states.every((st) => st.kind === 'deferred' && st.attempts === 4 && st.warned === undefined)).toBe(true);
    await s.close();
  }
});

test('the warned mark is a journal field: written, read back, and refused when it is not true', () => {
  const state: DeliveryState = { kind: 'deferred', attempts: 3, nextAttemptMs: ARRIVAL, lastReply: GREYLISTED, warned: true };
  const line = parseStateLine(formatStateRecord({ id: 'x', rcpt: 0, state }).subarray(0, -1));
  expect(line).toEqual({ kind: 'record', record: { id: 'x', rcpt: 0, state } });
  const bad = formatStateRecord({ id: 'x', rcpt: 0, state: { ...state, warned: 'yes' } as unknown as DeliveryState });
  expect(parseStateLine(bad.subarray(0, -1)).kind).toBe('bad');
});
