// MailIndex over a real spool in a temp dir: it follows commits per group commit in commit order
// (seq, wait, subscribe), indexes local mail only, journals read state, tags and deletions before
// the index shows them (so a rebuild from spool plus journal gives them back), rebuilds when the
// file is gone or a change did not finish, and catches up from its position otherwise. The
// writer runs in this thread here, and in a Worker in the last tests.
import { afterEach, describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { parseMailpitSearch } from '../../src/core/mailpit-search.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { parseRecordAt, parseSegmentHeader } from '../../src/spool/segment-format.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { MailIndex, type IndexChange } from '../../src/store/mail-index.ts';
import { envelope, memoryLog, removeDir, request, tempDir } from '../spool/fixtures/messages.ts';

const T0 = 1_800_000_000_000;
const dirs: string[] = [];
const open: { spool: Spool; index: MailIndex }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.index.close();
    await o.spool.close();
  }
  for (const d of dirs.splice(0)) removeDir(d);
});

function newDir(): string {
  const d = tempDir('mail-index-');
  dirs.push(d);
  return d;
}

async function start(dir: string, writer: 'thread' | 'worker' = 'thread', rebuild = false, retention?: { maxMessages?: number; maxAgeMs?: number }, deferMax?: number) {
  const log = memoryLog();
  let index: MailIndex | null = null;
  const spool = await openSpool({ dir, hostname: 'mx.test', now: () => T0 + 60_000, log, onCommit: (m) => index?.committed(m) });
  index = await MailIndex.open({ path: createLayout(dir).indexPath, spool, log, writer, rebuild, retention, now: () => T0 + 60_000, deferMax });
  await index.ready;
  const o = { spool, index, log };
  open.push(o);
  return o;
}

async function stop(o: { spool: Spool; index: MailIndex }): Promise<void> {
  open.splice(open.indexOf(o), 1);
  await o.index.close();
  await o.spool.close();
}

function mail(i: number, subject = `subject ${i}`): Uint8Array {
  return Buffer.from(`From: Ann <ann@client.example>\r\nTo: bob@here.example\r\nSubject: ${subject}\r\nMessage-ID: <m${i}@client.example>\r\n\r\n.dot line\r\nbody ${i}\r\n`);
}

/** Commits m<from>..m<to-1> as one group commit (all in one turn), one ms apart. */
async function commit(spool: Spool, from: number, to: number, rcpts = ['bob@here.example']): Promise<void> {
  const all: Promise<void>[] = [];
  for (let i = from; i < to; i++) all.push(spool.commit(request(`m${i}`, { timeMs: T0 + i, message: mail(i), envelope: envelope('ann@client.example', rcpts) })));
  await Promise.all(all);
}

const ids = (index: MailIndex) => index.db.list({ limit: 1000, start: 0 }).messages.map((m) => m.id);

describe('MailIndex', () => {
  test('live mail is found at once from the backlog, across a restart too, and moved into FTS5 once commits pause (mail-index.ts Rule 5)', async () => {
    const dir = newDir();
    const found = (index: MailIndex) => index.db.search(parseMailpitSearch('"subject 1"'), { limit: 10, start: 0 }).messages.map((m) => m.id);
    const first = await start(dir);
    await commit(first.spool, 0, 3);
    await first.index.drain();
    expect(first.index.db.backlogSize()).toBe(3);
    expect(found(first.index)).toEqual(['m1']);
    await stop(first);
    // Stopping may have raced the quiet timer: what is left of the backlog is still searched.
    const o = await start(dir);
    expect(found(o.index)).toEqual(['m1']);
    const deadline = Date.now() + 5000;
    while (o.index.db.backlogSize() > 0 && Date.now() < deadline) await Bun.sleep(20);
    expect(o.index.db.backlogSize()).toBe(0);
    expect(found(o.index)).toEqual(['m1']);
  });

  test('indexes each group commit once, in commit order, and wakes waiters and subscribers', async () => {
    const o = await start(newDir());
    const changes: IndexChange[] = [];
    o.index.subscribe((c) => changes.push(c));
    const waited = o.index.waitAfter(0);
    await commit(o.spool, 0, 5);
    expect(await waited).toBe(o.index.lastSeq);
    await commit(o.spool, 5, 7);
    await o.index.drain();
    expect(changes.map((c) => (c.kind === 'new' ? c.count : c.kind))).toEqual([5, 2]);
    expect(ids(o.index)).toEqual(['m6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    const after = o.index.db.matchAfter(parseMailpitSearch(''), 0, 100);
    expect(after.map((m) => m.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    // Seqs grow with commit time (1024 per ms), so a rebuild gives them again.
    expect(after[1].seq - after[0].seq).toBe(1024);
    const m0 = o.index.db.get('m0')!;
    expect({ subject: m0.subject, recipients: m0.recipients, mailFrom: m0.mailFrom }).toEqual({ subject: 'subject 0', recipients: ['bob@here.example'], mailFrom: 'ann@client.example' });
    expect(Buffer.from((await o.index.readMessage('m0'))!).toString()).toBe(Buffer.from(mail(0)).toString());
  });

  test('group commits made while the writer works go to it together, in commit order, each message once', async () => {
    const o = await start(newDir());
    const changes: IndexChange[] = [];
    o.index.subscribe((c) => changes.push(c));
    const commits: Promise<void>[] = [];
    for (let g = 0; g < 8; g++) {
      commits.push(commit(o.spool, g * 3, g * 3 + 3));
      await Bun.sleep(0);
    }
    await Promise.all(commits);
    await o.index.drain();
    const added = changes.filter((c) => c.kind === 'new');
    expect(added.reduce((n, c) => n + c.count, 0)).toBe(24);
    expect(added.length).toBeLessThanOrEqual(8);
    // Each request takes up where the one before ended.
    for (let i = 1; i < added.length; i++) expect(added[i].afterSeq).toBe(added[i - 1].lastSeq);
    expect(ids(o.index)).toEqual(Array.from({ length: 24 }, (_, i) => `m${23 - i}`));
  });

  test('while nobody reads, commits wait for a pause; current() indexes what was committed before it, at once (mail-index.ts Rule 6)', async () => {
    const o = await start(newDir());
    const changes: IndexChange[] = [];
    o.index.subscribe((c) => changes.push(c));
    await commit(o.spool, 0, 3);
    await commit(o.spool, 3, 5);
    // Well inside the pause a deferred ingest waits for (DEFER_QUIET_MS, 250 ms).
    await Bun.sleep(20);
    expect(o.index.lastSeq).toBe(0);
    await o.index.current();
    expect(ids(o.index)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);
    expect(changes.filter((c) => c.kind === 'new').map((c) => (c.kind === 'new' ? c.count : 0))).toEqual([5]);
    // Nothing waits: at once.
    await o.index.current();
    // Read just now: the next commit goes to the writer without waiting for a pause.
    const waited = o.index.waitAfter(o.index.lastSeq);
    await commit(o.spool, 5, 6);
    await waited;
    expect(ids(o.index)[0]).toBe('m5');
  });

  /** Commits a message every 10 ms from m<from> on until `until` settles or 3 s pass; `settled` is true when it settled first, `next` the first id not committed. */
  async function keepCommitting(o: { spool: Spool }, from: number, until: Promise<unknown>): Promise<{ settled: boolean; next: number }> {
    let settled = false;
    let next = from;
    void until.then(() => (settled = true));
    const deadline = Date.now() + 3000;
    while (!settled && Date.now() < deadline) {
      await commit(o.spool, next, next + 1);
      next++;
      await Bun.sleep(10);
    }
    return { settled, next };
  }

  test('a watcher keeps ingests prompt while commits keep coming; detaching twice counts once (mail-index.ts Rule 6)', async () => {
    const o = await start(newDir());
    const unwatch = o.index.watch();
    const { settled, next } = await keepCommitting(o, 0, o.index.waitAfter(0));
    expect(settled).toBe(true);
    unwatch();
    unwatch();
    await o.index.current();
    expect(ids(o.index).length).toBe(next);
  });

  test('while nobody reads, deferMax messages waiting are sent while commits keep coming, and the rest after them (mail-index.ts Rule 6)', async () => {
    const o = await start(newDir(), 'thread', false, undefined, 4);
    const changes: IndexChange[] = [];
    o.index.subscribe((c) => changes.push(c));
    const { settled, next } = await keepCommitting(o, 0, o.index.waitAfter(0));
    expect(settled).toBe(true);
    await o.index.current();
    expect(ids(o.index).length).toBe(next);
    // Each request takes up where the one before ended.
    const added = changes.filter((c) => c.kind === 'new');
    for (let i = 1; i < added.length; i++) expect(added[i].afterSeq).toBe(added[i - 1].lastSeq);
  });

  test('a waiter whose signal aborts is rejected with its reason and hears nothing more', async () => {
    const o = await start(newDir());
    const controller = new AbortController();
    const waited = o.index.waitAfter(0, controller.signal);
    controller.abort(new Error('timeout'));
    await expect(waited).rejects.toThrow('timeout');
  });

  test('local mail only: relay-only messages are not indexed, and deleting leaves relay recipients queued', async () => {
    const o = await start(newDir());
    const env = envelope('ann@client.example', ['bob@here.example', 'out@far.example']);
    await o.spool.commit(request('mixed', { timeMs: T0, message: mail(1), envelope: env, localRecipients: [true, false] }));
    await o.spool.commit(request('relay', { timeMs: T0 + 1, message: mail(2), envelope: env, localRecipients: [false, false] }));
    await o.index.drain();
    expect(ids(o.index)).toEqual(['mixed']);
    expect(o.index.db.get('mixed')!.recipients).toEqual(['bob@here.example']);
    expect(await o.index.delete(null)).toBe(1);
    expect(ids(o.index)).toEqual([]);
    expect(o.spool.get('mixed')!.recipients.map((r) => r.state.kind)).toEqual(['removed', 'pending']);
    expect(o.spool.get('relay')!.recipients.map((r) => r.state.kind)).toEqual(['pending', 'pending']);
  });

  test('copies expunged by POP3 or IMAP (through the spool MailStore) leave the index: one inbox, then the message', async () => {
    const o = await start(newDir());
    const changes: IndexChange[] = [];
    o.index.subscribe((c) => changes.push(c));
    await commit(o.spool, 0, 2, ['bob@here.example', 'carol@here.example']);
    await o.index.drain();
    await o.spool.mailStore.expunge('bob@here.example', ['m0']);
    await o.index.drain();
    expect(o.index.db.get('m0')!.recipients).toEqual(['carol@here.example']);
    expect(o.index.db.list({ inbox: 'bob@here.example', limit: 10, start: 0 }).messages.map((m) => m.id)).toEqual(['m1']);
    await o.spool.mailStore.expunge('carol@here.example', ['m0']);
    await o.index.drain();
    expect(ids(o.index)).toEqual(['m1']);
    expect(changes.slice(1)).toEqual([{ kind: 'updated', ids: ['m0'] }, { kind: 'deleted', ids: ['m0'] }]);
    // The index's own deletions are counted once, not again from the spool's event.
    expect(await o.index.delete(['m1'])).toBe(1);
    expect(changes.at(-1)).toEqual({ kind: 'deleted', ids: ['m1'] });
  });

  test('read state, tags and deletions are journalled: a rebuild from the spool gives them back', async () => {
    const dir = newDir();
    let o = await start(dir);
    await commit(o.spool, 0, 6);
    await o.index.drain();
    expect(await o.index.setRead(['m1', 'm2'], true)).toBe(2);
    expect(await o.index.setTags(['m2', 'm3'], ['Blue', ' red ', 'Blue'])).toBe(2);
    expect(await o.index.renameTag('blue', 'green')).toBe(2);
    expect(await o.index.deleteTag('RED')).toBe(2);
    expect(await o.index.delete(['m0', 'nope'])).toBe(1);
    expect(await o.index.deleteSearch(parseMailpitSearch('subject:"subject 5"'))).toBe(1);
    const snapshot = () => o.index.db.list({ limit: 100, start: 0 }).messages.map((m) => [m.id, m.read, m.tags.join(',')]);
    const before = snapshot();
    expect(before).toEqual([
      ['m4', false, ''],
      ['m3', false, 'green'],
      ['m2', true, 'green'],
      ['m1', true, ''],
    ]);
    expect(o.index.db.stats()).toMatchObject({ total: 4, unread: 2, tags: { green: 2 } });
    await stop(o);
    fs.rmSync(createLayout(dir).indexPath);
    o = await start(dir);
    expect(o.log.lines.some((l) => l.msg === 'index-rebuild' && l.fields?.reason === 'new index file or schema version')).toBe(true);
    expect(snapshot()).toEqual(before);
    expect(await o.index.setRead(null, true)).toBe(2);
    expect(o.index.db.stats().unread).toBe(0);
  });

  test('a reopened index catches up from its position without a rebuild', async () => {
    const dir = newDir();
    let o = await start(dir);
    await commit(o.spool, 0, 3);
    await o.index.drain();
    await stop(o);
    // Commits the index did not see (as after kill -9 between the spool's fsync and the ingest).
    const spool = await openSpool({ dir, hostname: 'mx.test', now: () => T0, log: memoryLog() });
    await commit(spool, 3, 8);
    await spool.close();
    o = await start(dir);
    expect(o.log.lines.some((l) => l.msg === 'index-rebuild')).toBe(false);
    expect(o.log.lines.find((l) => l.msg === 'index-ready')?.fields).toMatchObject({ indexed: 5, messages: 8 });
    expect(ids(o.index)).toEqual(['m7', 'm6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
  });

  test('a change journalled but not applied to the index makes the next open rebuild', async () => {
    const dir = newDir();
    let o = await start(dir);
    await commit(o.spool, 0, 3);
    await o.index.drain();
    // What a crash between the journal write and the index update leaves: the read mark is in
    // the journal, the index still counts the change as pending.
    const { Database } = await import('bun:sqlite');
    await stop(o);
    const spool = await openSpool({ dir, hostname: 'mx.test', now: () => T0, log: memoryLog() });
    await spool.setMailboxState([{ id: 'm1', mailbox: '*', flags: { read: true, tags: ['x'] } }]);
    await spool.close();
    const db = new Database(createLayout(dir).indexPath);
    db.query("INSERT INTO meta (key, value) VALUES ('pending_changes', '1')").run();
    db.close();
    o = await start(dir);
    expect(o.log.lines.find((l) => l.msg === 'index-rebuild')?.fields?.reason).toBe('a change was journalled but not indexed');
    expect(o.index.db.get('m1')).toMatchObject({ read: true, tags: ['x'] });
  });

  test('an index left open by another boot (a machine crash: it never fsyncs) is rebuilt; one closed cleanly is not', async () => {
    const dir = newDir();
    let o = await start(dir);
    await commit(o.spool, 0, 2);
    await o.index.drain();
    await stop(o);
    const { Database } = await import('bun:sqlite');
    const db = new Database(createLayout(dir).indexPath);
    expect(db.query("SELECT value FROM meta WHERE key = 'open_in_boot'").get()).toBeNull();
    db.query("INSERT INTO meta (key, value) VALUES ('open_in_boot', 'a-boot-before')").run();
    db.close();
    o = await start(dir);
    expect(o.log.lines.find((l) => l.msg === 'index-rebuild')?.fields?.reason).toBe('the machine stopped while the index was open');
    expect(ids(o.index)).toEqual(['m1', 'm0']);
  });

  test('reindex (rebuild asked for) empties and refills the index', async () => {
    const dir = newDir();
    let o = await start(dir);
    await commit(o.spool, 0, 4);
    await o.index.drain();
    await stop(o);
    o = await start(dir, 'thread', true);
    expect(o.log.lines.find((l) => l.msg === 'index-rebuilt')?.fields).toMatchObject({ indexed: 4, messages: 4 });
    expect(ids(o.index)).toEqual(['m3', 'm2', 'm1', 'm0']);
  });

  test('retention deletes the oldest local copies through the journal; relay recipients stay queued', async () => {
    const o = await start(newDir(), 'thread', false, { maxMessages: 3, maxAgeMs: 59_996 });
    const env = envelope('ann@client.example', ['bob@here.example', 'out@far.example']);
    await o.spool.commit(request('mixed', { timeMs: T0 - 1, message: mail(9), envelope: env, localRecipients: [true, false] }));
    await commit(o.spool, 0, 6);
    await o.index.drain();
    // Now is T0 + 60 s: mixed and m0..m3 are older than 59,996 ms; only m3, m4 and m5 are among the newest three.
    expect(await o.index.applyRetention()).toBe(5);
    expect(ids(o.index)).toEqual(['m5', 'm4']);
    expect(o.spool.get('mixed')!.recipients.map((r) => r.state.kind)).toEqual(['removed', 'pending']);
    expect(o.spool.get('m0')).toBeUndefined();
    expect(o.log.lines.find((l) => l.msg === 'retention-deleted')?.fields?.messages).toBe(5);
  });

  test('session(): the SMTP session from the record line, and the record as a replayable segment; records without the fields give nulls', async () => {
    const o = await start(newDir());
    const env = { ...envelope('ann@client.example', ['bob@here.example']), authUser: 'ann' };
    await o.spool.commit({ ...request('s1', { timeMs: T0, message: mail(1), envelope: env }), session: { clientAddress: '127.0.0.9', heloName: 'client.test', tls: 'TLSv1.3' } });
    await o.spool.commit(request('s2', { timeMs: T0 + 1, message: mail(2) }));
    await o.index.drain();
    const s1 = (await o.index.session('s1'))!;
    expect({ client: s1.clientAddress, helo: s1.heloName, tls: s1.tls, auth: s1.envelope.authUser, size: s1.size }).toEqual({ client: '127.0.0.9', helo: 'client.test', tls: 'TLSv1.3', auth: 'ann', size: mail(1).length });
    const segment = Buffer.from(s1.replayable);
    const headerBytes = parseSegmentHeader(segment)!;
    expect(segment.toString('latin1', 0, headerBytes)).toBe('EHLO client.test\r\n');
    const scan = parseRecordAt(segment, headerBytes);
    expect(scan.kind === 'record' && scan.record.bytes + headerBytes).toBe(segment.length);
    const s2 = (await o.index.session('s2'))!;
    expect([s2.clientAddress, s2.heloName, s2.tls]).toEqual([null, null, null]);
    expect(Buffer.from(s2.replayable).toString('latin1')).toStartWith('EHLO mx.test\r\nNOOP "mailbox id=s2 ');
    expect(await o.index.session('nope')).toBeUndefined();
  });

  test('in a Worker: the same ingest, changes and notifications', async () => {
    const o = await start(newDir(), 'worker');
    const waited = o.index.waitAfter(0);
    await commit(o.spool, 0, 20);
    await waited;
    await o.index.drain();
    expect(ids(o.index).length).toBe(20);
    expect(await o.index.setRead(['m3'], true)).toBe(1);
    expect(o.index.db.get('m3')!.read).toBe(true);
    expect(o.index.db.search(parseMailpitSearch('"body 7"'), { limit: 10, start: 0 }).messages.map((m) => m.id)).toEqual(['m7']);
  });
});
