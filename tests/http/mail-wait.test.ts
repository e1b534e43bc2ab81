// The wait on the commit-order cursor: subscribed before it looks, resumes where it stopped,
// times out with the cursor to resume from, capped, and ended when the server stops.
import { afterAll, expect, test } from 'bun:test';
import { WaitRegistry } from '../../src/http/mail-wait.ts';
import { sampleMessage } from './api-harness.ts';
import { TestMail } from './test-mail.ts';

const mail = new TestMail();
afterAll(() => mail.close());
const none = { terms: [], dropped: [] };

test('a message already there answers at once; one committed later wakes the waiter; the cursor moves on', async () => {
  const waits = new WaitRegistry(mail, 10);
  const start = mail.lastSeq;
  await mail.add(sampleMessage({ subject: 'early' }), { to: ['w1@x.test'] });
  const first = await waits.wait({ query: none, recipients: ['w1@x.test'] }, start, 1, 5000, new AbortController().signal);
  expect(first.kind).toBe('found');
  if (first.kind !== 'found') return;
  expect(first.messages[0].subject).toBe('early');
  const later = waits.wait({ query: none, recipients: ['W1@X.TEST'] }, first.cursor, 1, 5000, new AbortController().signal);
  // A pending wait follows new mail: the index keeps its ingests prompt meanwhile (mail-index.ts Rule 6).
  expect(mail.watchers).toBe(1);
  await mail.add(sampleMessage({ subject: 'noise' }), { to: ['other@x.test'] });
  await mail.add(sampleMessage({ subject: 'late' }), { to: ['w1@x.test'] });
  const second = await later;
  expect(second.kind === 'found' && second.messages.map((m) => m.subject)).toEqual(['late']);
  expect(mail.listeners).toBe(0);
  expect(mail.watchers).toBe(0);
});

test('a timeout carries the cursor up to which nothing matched; an abort ends the wait', async () => {
  const waits = new WaitRegistry(mail, 10);
  await mail.add(sampleMessage({ subject: 'unrelated' }), { to: ['x@x.test'] });
  const outcome = await waits.wait({ query: none, recipients: ['nobody@x.test'] }, 0, 1, 50, new AbortController().signal);
  expect(outcome).toEqual({ kind: 'timeout', cursor: mail.lastSeq });
  const controller = new AbortController();
  const aborted = waits.wait({ query: none, recipients: ['nobody@x.test'] }, 0, 1, 5000, controller.signal);
  controller.abort();
  expect(await aborted).toEqual({ kind: 'aborted' });
  const stopping = waits.wait({ query: none, recipients: ['nobody@x.test'] }, 0, 1, 5000, new AbortController().signal);
  waits.stop();
  expect((await stopping).kind).toBe('timeout');
  expect(mail.listeners).toBe(0);
  expect(mail.watchers).toBe(0);
});

test('slots are capped', () => {
  const waits = new WaitRegistry(mail, 2);
  expect(waits.acquire()).toBe(true);
  expect(waits.acquire()).toBe(true);
  expect(waits.acquire()).toBe(false);
  waits.release();
  expect(waits.acquire()).toBe(true);
  expect(waits.open).toBe(2);
});
