// The login mailboxes over the spool's MailStore and login state: a login's INBOX is what its
// addresses hold; UIDs are given in commit order and journalled, kept across restarts with one
// UIDVALIDITY; flags and expunges are that login's own and durable, apart from Mailpit's read
// mark; a message leaves an address when every login that reads it expunged it; the other
// sessions of the login, and removals by the API, reach the watchers (RFC 3501 §2.3.1.1, §2.3.2,
// §6.4.3, §7.4.1).
import { afterEach, expect, test } from 'bun:test';
import { appendFileSync, readFileSync } from 'node:fs';
import { LoginDirectory, parseUsers } from '../../src/auth/users.ts';
import type { MailboxChange } from '../../src/core/imap/selected-mailbox.ts';
import { LoginMailboxes } from '../../src/serve/login-mailboxes.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { envelope, memoryLog, removeDir, request, tempDir } from '../spool/fixtures/messages.ts';

const T0 = 1_700_000_000_000;
const HASH = '$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g';
const dirs: string[] = [];
const opened: Spool[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

const MESSAGE = Buffer.from(
  'From: a@b.example\r\nSubject: =?utf-8?q?caf=C3=A9?= =?utf-8?b?IGNyw6htZQ==?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve line\r\n',
);
/** Catch-all, plus "team" reading bob's and carol's mail. */
const DIRECTORY = new LoginDirectory(parseUsers(`team:${HASH} bob@here.example carol@here.example\n`, 'users'), null, true);

async function start(dir: string, at = T0): Promise<{ spool: Spool; boxes: LoginMailboxes }> {
  const spool = await openSpool({ dir, hostname: 'mx.test', now: () => at, log: memoryLog() });
  opened.push(spool);
  const boxes = new LoginMailboxes({ store: () => spool.mailStore, states: () => spool.loginStates, directory: () => DIRECTORY, now: () => at });
  spool.mailStore.onRemoved((removals) => boxes.removed(removals));
  return { spool, boxes };
}

async function filled(): Promise<{ dir: string; spool: Spool; boxes: LoginMailboxes }> {
  const dir = tempDir();
  dirs.push(dir);
  const { spool, boxes } = await start(dir);
  await spool.commit(request('m0', { timeMs: T0, message: MESSAGE, envelope: envelope('ann@client.example', ['Bob@here.example', 'carol@here.example']) }));
  await spool.commit(request('m1', { timeMs: T0 + 1, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  return { dir, spool, boxes };
}

async function restart(dir: string, at = T0) {
  for (const s of opened.splice(0)) await s.close();
  return start(dir, at);
}

function opened_(outcome: Awaited<ReturnType<LoginMailboxes['open']>>) {
  if (!outcome.ok) throw new Error(outcome.status.text);
  return outcome.mailbox;
}

test('UIDs in commit order, journalled and kept across a restart with the same UIDVALIDITY; a new message gets the next UID; \\Recent once', async () => {
  const { dir, boxes } = await filled();
  const first = opened_(await boxes.open('BOB@here.example', true));
  expect(first.messages.map((m) => m.uid)).toEqual([1, 2]);
  expect(first.recentUids).toEqual([1, 2]);
  expect(first.uidNext).toBe(3);
  expect(first.uidValidity).toBe(Math.floor(T0 / 1000));
  expect(opened_(await boxes.open('bob@here.example', true)).recentUids).toEqual([]);
  const later = await restart(dir, T0 + 86_400_000);
  await later.spool.commit(request('m2', { timeMs: T0 + 2, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  const again = opened_(await later.boxes.open('bob@here.example', true));
  expect(again.uidValidity).toBe(first.uidValidity);
  expect(again.messages.map((m) => m.uid)).toEqual([1, 2, 3]);
  expect(again.recentUids).toEqual([3]);
  // Carol's UIDs are her own, and so is the team's INBOX of both addresses, each message once.
  expect(opened_(await later.boxes.open('carol@here.example', false)).messages.map((m) => m.uid)).toEqual([1]);
  const team = opened_(await later.boxes.open('team', false));
  expect(team.messages.map((m) => m.uid)).toEqual([1, 2, 3]);
  expect(team.uidValidity).toBe(Math.floor((T0 + 86_400_000) / 1000));
});

test('a journal snapshot keeps every UID and the next UID, also past a message that is gone', async () => {
  const { dir, spool, boxes } = await filled();
  opened_(await boxes.open('bob@here.example', false));
  await spool.delete(['m1']);
  const states = spool.loginStates;
  expect(states.mailbox('bob@here.example')!.uidNext).toBe(3);
  // A damaged line makes the next open rewrite the journal as a snapshot.
  for (const s of opened.splice(0)) await s.close();
  appendFileSync(createLayout(dir).journalPath, 'damaged\n');
  const snapshot = await restart(dir);
  expect(snapshot.spool.recovery.damaged.length).toBe(1);
  expect(readFileSync(createLayout(dir).journalPath, 'utf8')).not.toContain('"l":"bob@here.example","id":"m1"');
  const later = await restart(dir);
  await later.spool.commit(request('m2', { timeMs: T0 + 2, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  expect(opened_(await later.boxes.open('bob@here.example', false)).messages.map((m) => m.uid)).toEqual([1, 3]);
});

test('flags are the login\'s own and durable, apart from Mailpit\'s read mark and tags; the other sessions are told', async () => {
  const { dir, spool, boxes } = await filled();
  opened_(await boxes.open('bob@here.example', true));
  opened_(await boxes.open('carol@here.example', true));
  const told: MailboxChange[][] = [];
  const other = (changes: readonly MailboxChange[]) => told.push([...changes]);
  const self = () => {
    throw new Error('the session that stored is not told');
  };
  boxes.watch('bob@here.example', other);
  boxes.watch('bob@here.example', self);
  expect(await boxes.storeFlags('bob@here.example', [{ uid: 1, flags: ['\\Seen', '\\Flagged', 'urgent'] }], self)).toEqual({ ok: true });
  expect(told).toEqual([[{ kind: 'flags', uid: 1, flags: ['\\Seen', '\\Flagged', 'urgent'] }]]);
  expect(spool.mailStore.get('bob@here.example', 'm0')!.flags).toEqual({ read: false, tags: [] });
  await spool.mailStore.setFlags(null, ['m1'], { read: true, addTags: ['mailpit'] });
  await boxes.storeFlags('bob@here.example', [{ uid: 1, flags: ['urgent', '\\Deleted'] }], self);
  const later = await restart(dir);
  expect(opened_(await later.boxes.open('bob@here.example', false)).messages).toEqual([
    { uid: 1, flags: ['urgent', '\\Deleted'] },
    { uid: 2, flags: [] },
  ]);
  expect(opened_(await later.boxes.open('carol@here.example', false)).messages).toEqual([{ uid: 1, flags: [] }]);
});

test('an expunge is the login\'s own; the message leaves an address once every login reading it expunged it, and is deleted when none holds it', async () => {
  const { dir, spool, boxes } = await filled();
  for (const login of ['bob@here.example', 'carol@here.example', 'team']) opened_(await boxes.open(login, false));
  const told: MailboxChange[][] = [];
  boxes.watch('team', (changes) => told.push([...changes]));
  expect(await boxes.expunge('bob@here.example', [1])).toEqual({ ok: true });
  expect(spool.mailStore.get('bob@here.example', 'm0')).toBeDefined();
  expect(opened_(await boxes.open('bob@here.example', false)).messages.map((m) => m.uid)).toEqual([2]);
  await boxes.expungeIds('team', ['m0']);
  // Bob and the team read bob@: it lets go; carol has not expunged, so carol@ keeps it.
  expect(spool.mailStore.get('bob@here.example', 'm0')).toBeUndefined();
  expect(spool.mailStore.get('carol@here.example', 'm0')).toBeDefined();
  await boxes.expungeIds('carol@here.example', ['m0']);
  expect(spool.mailStore.get(null, 'm0')).toBeUndefined();
  // The team's own expunge reached its other session; carol's, of a message it had expunged, did not.
  expect(told).toEqual([[{ kind: 'expunged', uid: 1 }]]);
  const later = await restart(dir);
  expect(later.spool.mailStore.get(null, 'm0')).toBeUndefined();
  expect(opened_(await later.boxes.open('team', false)).messages.map((m) => m.uid)).toEqual([2]);
});

test('removals by the API reach the sessions that showed the message; new mail reaches them too', async () => {
  const { spool, boxes } = await filled();
  opened_(await boxes.open('bob@here.example', true));
  opened_(await boxes.open('carol@here.example', true));
  const bob: MailboxChange[][] = [];
  const carol: MailboxChange[][] = [];
  const stop = boxes.watch('bob@here.example', (changes) => bob.push([...changes]));
  boxes.watch('carol@here.example', (changes) => carol.push([...changes]));
  await spool.mailStore.expunge('bob@here.example', ['m0']);
  await spool.mailStore.expunge(null, ['m1']);
  await spool.commit(request('m2', { timeMs: T0 + 2, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  boxes.committed('m2', ['bob@here.example']);
  await boxes.view('bob@here.example');
  expect(bob).toEqual([[{ kind: 'expunged', uid: 1 }], [{ kind: 'expunged', uid: 2 }], [{ kind: 'appended', uid: 3, flags: [] }]]);
  expect(carol).toEqual([]);
  stop();
  expect(boxes.watching).toBe(1);
});

test('load reads only what the request needs; header values are RFC 2047-decoded for SEARCH; expunged UIDs are left out', async () => {
  const { spool, boxes } = await filled();
  opened_(await boxes.open('carol@here.example', false));
  const loaded = await boxes.load('carol@here.example', [1, 7], 'message');
  if (!loaded.ok) throw new Error(loaded.status.text);
  expect(loaded.messages.map((m) => m.uid)).toEqual([1]);
  const m = loaded.messages[0]!;
  expect(Buffer.from(m.bytes()).toString()).toEndWith(MESSAGE.toString());
  expect(m.size).toBe(m.bytes().length);
  expect(m.headerFields().first('subject')).toBe('=?utf-8?q?caf=C3=A9?= =?utf-8?b?IGNyw6htZQ==?=');
  expect(m.headerValues('subject')).toEqual(['café crème']);
  expect(m.bodyText()).toBe('naïve line\r\n');
  const reads: string[] = [];
  const store = spool.mailStore;
  const counting = new LoginMailboxes({
    store: () => ({ ...Object.fromEntries(['list', 'search', 'get', 'setFlags', 'expunge', 'onRemoved'].map((k) => [k, (...a: unknown[]) => (store as never as Record<string, (...x: unknown[]) => unknown>)[k]!(...a)])), read: (b: string | null, id: string) => (reads.push(`read ${id}`), store.read(b, id)), readHeader: (b: string | null, id: string) => (reads.push(`header ${id}`), store.readHeader(b, id)) }) as never,
    states: () => spool.loginStates,
    directory: () => DIRECTORY,
    now: () => T0,
  });
  const header = await counting.load('carol@here.example', [1], 'header');
  if (!header.ok) throw new Error(header.status.text);
  expect(header.messages[0]!.headerFields().first('from')).toBe('a@b.example');
  expect(header.messages[0]!.size).toBe(m.size);
  const none = await counting.load('carol@here.example', [1], 'none');
  expect(none.ok && none.messages[0]!.internalDateMs).toBe(T0);
  expect(reads).toEqual(['header m0']);
  await boxes.expunge('carol@here.example', [1]);
  const after = await boxes.load('carol@here.example', [1], 'none');
  expect(after.ok && after.messages).toEqual([]);
});
