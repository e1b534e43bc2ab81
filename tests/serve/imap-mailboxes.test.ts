// The IMAP mailboxes over the spool's MailStore: a login's INBOX is its address's mailbox, UIDs are
// given in commit order and kept in a file per mailbox across restarts with one UIDVALIDITY,
// flags are that login's own and durable, expunge is for that login only, and the other sessions
// of the login hear of changes through their watchers (RFC 3501 §2.3.1.1, §2.3.2, §6.4.3).
import { afterEach, expect, test } from 'bun:test';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MailboxChange } from '../../src/core/imap/selected-mailbox.ts';
import { StoreImapMailboxes } from '../../src/serve/imap-mailboxes.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { envelope, memoryLog, removeDir, request, tempDir } from '../spool/fixtures/messages.ts';

const T0 = 1_700_000_000_000;
const dirs: string[] = [];
const opened: Spool[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

const MESSAGE = Buffer.from('From: a@b.example\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve line\r\n');

async function start(dir: string, at = T0): Promise<{ spool: Spool; boxes: StoreImapMailboxes }> {
  const spool = await openSpool({ dir, hostname: 'mx.test', now: () => at, log: memoryLog() });
  opened.push(spool);
  return { spool, boxes: new StoreImapMailboxes(() => spool.mailStore, dir, () => at) };
}

async function filled(): Promise<{ dir: string; spool: Spool; boxes: StoreImapMailboxes }> {
  const dir = tempDir();
  dirs.push(dir);
  const { spool, boxes } = await start(dir);
  await spool.commit(request('m0', { timeMs: T0, message: MESSAGE, envelope: envelope('ann@client.example', ['Bob@here.example', 'carol@here.example']) }));
  await spool.commit(request('m1', { timeMs: T0 + 1, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  return { dir, spool, boxes };
}

function opened_(outcome: Awaited<ReturnType<StoreImapMailboxes['open']>>) {
  if (!outcome.ok) throw new Error(outcome.status.text);
  return outcome.mailbox;
}

test('UIDs in commit order, kept across a restart with the same UIDVALIDITY; a new message gets the next UID; \\Recent once', async () => {
  const { dir, spool, boxes } = await filled();
  const first = opened_(await boxes.open('BOB@here.example', true));
  expect(first.messages.map((m) => m.uid)).toEqual([1, 2]);
  expect(first.recentUids).toEqual([1, 2]);
  expect(first.uidNext).toBe(3);
  expect(first.uidValidity).toBe(Math.floor(T0 / 1000));
  expect(opened_(await boxes.open('bob@here.example', true)).recentUids).toEqual([]);
  await spool.close();
  opened.splice(0);
  const later = await start(dir, T0 + 86_400_000);
  await later.spool.commit(request('m2', { timeMs: T0 + 2, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  const again = opened_(await later.boxes.open('bob@here.example', true));
  expect(again.uidValidity).toBe(first.uidValidity);
  expect(again.messages.map((m) => m.uid)).toEqual([1, 2, 3]);
  expect(again.recentUids).toEqual([3]);
  // Carol's UIDs are her own.
  expect(opened_(await later.boxes.open('carol@here.example', false)).messages.map((m) => m.uid)).toEqual([1]);
});

test('a torn last line of the UID file (a crash mid-append) is ignored: that UID was never given out', async () => {
  const { dir, boxes } = await filled();
  opened_(await boxes.open('bob@here.example', false));
  const uidDir = join(dir, 'imap', 'uids');
  appendFileSync(join(uidDir, readdirSync(uidDir)[0]!), '3 m');
  const fresh = new StoreImapMailboxes(() => opened[0]!.mailStore, dir, () => T0);
  expect(opened_(await fresh.open('bob@here.example', false)).uidNext).toBe(3);
  const spool = opened[0]!;
  await spool.commit(request('m2', { timeMs: T0 + 2, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  expect(opened_(await fresh.open('bob@here.example', false)).messages.map((m) => m.uid)).toEqual([1, 2, 3]);
  const reread = new StoreImapMailboxes(() => spool.mailStore, dir, () => T0);
  expect(opened_(await reread.open('bob@here.example', false)).messages.map((m) => m.uid)).toEqual([1, 2, 3]);
});

test('flags are the login\'s own and durable: \\Seen is the read mark, the rest tags; the others sessions are told', async () => {
  const { dir, spool, boxes } = await filled();
  opened_(await boxes.open('bob@here.example', true));
  const told: MailboxChange[][] = [];
  const other = (changes: readonly MailboxChange[]) => told.push([...changes]);
  const self = () => {
    throw new Error('the session that stored is not told');
  };
  boxes.watch('bob@here.example', other);
  boxes.watch('bob@here.example', self);
  expect(await boxes.storeFlags('bob@here.example', [{ uid: 1, flags: ['\\Seen', '\\Flagged', 'urgent'] }], self)).toEqual({ ok: true });
  expect(told).toEqual([[{ kind: 'flags', uid: 1, flags: ['\\Seen', '\\Flagged', 'urgent'] }]]);
  expect(spool.mailStore.get('bob@here.example', 'm0')!.flags).toEqual({ read: true, tags: ['\\Flagged', 'urgent'] });
  expect(spool.mailStore.get('carol@here.example', 'm0')!.flags).toEqual({ read: false, tags: [] });
  await boxes.storeFlags('bob@here.example', [{ uid: 1, flags: ['urgent'] }], self);
  await spool.close();
  opened.splice(0);
  const later = await start(dir);
  expect(opened_(await later.boxes.open('bob@here.example', false)).messages).toEqual([
    { uid: 1, flags: ['urgent'] },
    { uid: 2, flags: [] },
  ]);
});

test('expunge is for that login only; POP3\'s expunge and new mail reach the watchers', async () => {
  const { spool, boxes } = await filled();
  opened_(await boxes.open('bob@here.example', true));
  const told: MailboxChange[][] = [];
  const stop = boxes.watch('bob@here.example', (changes) => told.push([...changes]));
  expect(await boxes.expunge('bob@here.example', [1])).toEqual({ ok: true });
  expect(spool.mailStore.get('bob@here.example', 'm0')).toBeUndefined();
  expect(spool.mailStore.get('carol@here.example', 'm0')).toBeDefined();
  boxes.removed('bob@here.example', ['m1']);
  await spool.commit(request('m2', { timeMs: T0 + 2, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  boxes.committed('m2', ['bob@here.example']);
  expect(told).toEqual([[{ kind: 'expunged', uid: 1 }], [{ kind: 'expunged', uid: 2 }], [{ kind: 'appended', uid: 3, flags: [] }]]);
  stop();
  expect(boxes.watching).toBe(0);
});

test('load gives the bytes as stored, the header fields and the decoded body text; expunged UIDs are left out', async () => {
  const { boxes } = await filled();
  opened_(await boxes.open('carol@here.example', false));
  const loaded = await boxes.load('carol@here.example', [1, 7]);
  if (!loaded.ok) throw new Error(loaded.status.text);
  expect(loaded.messages.map((m) => m.uid)).toEqual([1]);
  const m = loaded.messages[0]!;
  expect(Buffer.from(m.bytes()).toString()).toEndWith(MESSAGE.toString());
  expect(m.size).toBe(m.bytes().length);
  expect(m.headerFields().first('subject')).toBe('=?utf-8?q?caf=C3=A9?=');
  expect(m.headerValues('from')).toEqual(['a@b.example']);
  expect(m.bodyText()).toBe('naïve line\r\n');
});
