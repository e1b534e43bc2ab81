// The POP3 maildrops over the login mailboxes: a login's maildrop is its INBOX (any letter case),
// unique-ids are message ids and survive a reopen, RETR bytes are the unstuffed message, UPDATE
// is an expunge of the login's state (IMAP sees it), and one lock per maildrop (RFC 1939 §4, §6, §7).
import { afterEach, expect, test } from 'bun:test';
import type { MailStore } from '../../src/spool/mail-store.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { LoginDirectory } from '../../src/auth/users.ts';
import { LoginMailboxes } from '../../src/serve/login-mailboxes.ts';
import { StoreMaildrops } from '../../src/serve/pop3-maildrops.ts';
import { envelope, memoryLog, removeDir, request, tempDir } from '../spool/fixtures/messages.ts';

const T0 = 1_700_000_000_000;
const dirs: string[] = [];
const opened: Spool[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

async function open(dir: string): Promise<Spool> {
  const s = await openSpool({ dir, hostname: 'mx.test', now: () => T0 + 1_000, log: memoryLog() });
  opened.push(s);
  return s;
}

const MESSAGE = Buffer.from('Subject: dots\r\n\r\n.one dot\r\n..two dots\r\nend\r\n');

async function filled(): Promise<{ dir: string; spool: Spool }> {
  const dir = tempDir();
  dirs.push(dir);
  const spool = await open(dir);
  await spool.commit(request('m0', { timeMs: T0, message: MESSAGE, envelope: envelope('ann@client.example', ['Bob@here.example', 'carol@here.example']) }));
  await spool.commit(request('m1', { timeMs: T0 + 1, envelope: envelope('ann@client.example', ['bob@here.example']) }));
  return { dir, spool };
}

/** The spool's store with another expunge (the store's methods use private fields: delegate, do not inherit). */
function withExpunge(store: MailStore, expunge: MailStore['expunge']): MailStore {
  return {
    list: (m, c, l) => store.list(m, c, l),
    search: (m, q, c, l) => store.search(m, q, c, l),
    get: (m, id) => store.get(m, id),
    read: (m, id) => store.read(m, id),
    setFlags: (m, ids, change) => store.setFlags(m, ids, change),
    expunge,
    readHeader: (m, id) => store.readHeader(m, id),
    onRemoved: (listener) => store.onRemoved(listener),
  };
}

/** The maildrops of `spool` (catch-all logins), reading through `store`. */
function maildrops(spool: Spool, store: () => MailStore = () => spool.mailStore): StoreMaildrops {
  const mailboxes = new LoginMailboxes({ store, states: () => spool.loginStates, directory: () => new LoginDirectory(null, null, true), now: () => T0 });
  return new StoreMaildrops(store, mailboxes);
}

async function uids(drops: StoreMaildrops, user: string): Promise<string[]> {
  const lock = await drops.lock(user);
  if (!lock.ok) throw new Error(lock.response.text);
  drops.release(user);
  return lock.maildrop.messages.map((m) => m.uid);
}

test('the maildrop is every message to the address, any case; uids are message ids, sizes what RETR sends', async () => {
  const { spool } = await filled();
  const drops = maildrops(spool);
  const lock = await drops.lock('BOB@Here.Example');
  expect(lock.ok).toBe(true);
  if (!lock.ok) return;
  expect(lock.maildrop.messages.map((m) => m.uid)).toEqual(['m0', 'm1']);
  const read = await drops.read('bob@here.example', 'm0');
  expect(read.ok).toBe(true);
  if (!read.ok) return;
  expect(Buffer.from(read.bytes).toString()).toEndWith(MESSAGE.toString());
  expect(lock.maildrop.messages[0].size).toBe(read.bytes.length);
  drops.release('BOB@Here.Example');
  expect(await uids(drops, 'carol@here.example')).toEqual(['m0']);
  expect(await uids(drops, 'nobody@here.example')).toEqual([]);
});

test('a second lock of one maildrop gets [IN-USE] until release; other maildrops are not held', async () => {
  const { spool } = await filled();
  const drops = maildrops(spool);
  expect((await drops.lock('bob@here.example')).ok).toBe(true);
  const second = await drops.lock('Bob@here.example');
  expect(second.ok ? null : second.response).toEqual({ ok: false, code: 'IN-USE', text: 'Maildrop is in use by another session' });
  expect((await drops.lock('carol@here.example')).ok).toBe(true);
  drops.release('bob@here.example');
  expect((await drops.lock('bob@here.example')).ok).toBe(true);
  expect(drops.locked).toBe(2);
});

test('UPDATE expunges for that login only, durably; the lock waits for it', async () => {
  const { dir, spool } = await filled();
  let finish: () => void = () => {};
  const gate = new Promise<void>((resolve) => (finish = resolve));
  const slow = withExpunge(spool.mailStore, (mailbox, ids) => gate.then(() => spool.mailStore.expunge(mailbox, ids)));
  const drops = maildrops(spool, () => slow);
  expect((await drops.lock('bob@here.example')).ok).toBe(true);
  const update = drops.update('bob@here.example', ['m0']);
  drops.release('bob@here.example');
  // RFC 1939 §6: the next session must not see the maildrop before the update is done.
  const during = await drops.lock('bob@here.example');
  expect(during.ok).toBe(false);
  finish();
  expect(await update).toEqual({ ok: true });
  expect(await uids(drops, 'bob@here.example')).toEqual(['m1']);
  expect(await uids(drops, 'carol@here.example')).toEqual(['m0']);

  await spool.close();
  opened.splice(opened.indexOf(spool), 1);
  const again = await open(dir);
  const reopened = maildrops(again);
  expect(await uids(reopened, 'bob@here.example')).toEqual(['m1']);
  expect(await uids(reopened, 'carol@here.example')).toEqual(['m0']);
});

test('a failed expunge answers -ERR [SYS/TEMP] and the messages stay', async () => {
  const { spool } = await filled();
  const broken = withExpunge(spool.mailStore, () => Promise.reject(new Error('EIO')));
  const drops = maildrops(spool, () => broken);
  expect((await drops.lock('bob@here.example')).ok).toBe(true);
  const outcome = await drops.update('bob@here.example', ['m0']);
  expect(outcome.ok ? null : outcome.response.code).toBe('SYS/TEMP');
  drops.release('bob@here.example');
  expect(await uids(drops, 'bob@here.example')).toEqual(['m0', 'm1']);
});
