// The readers' port on the spool's in-memory index: mailboxes are envelope recipients, listing
// runs in commit order with a cursor, and mailbox state (read, tags) and expunges are journalled,
// so they survive a reopen.
import { describe, expect, test } from 'bun:test';
import { dotStuff } from '../../src/core/data.ts';
import type { HeaderSummary } from '../../src/spool/header-summary.ts';
import type { CommittedMessage, Spool } from '../../src/spool/spool.ts';
import { spoolsPerTest } from './fixtures/spools.ts';
import { envelope, request } from './fixtures/messages.ts';


const T0 = 1_700_000_000_000;

const { open, close, newDir } = spoolsPerTest(() => T0 + 1_000);

function mail(subject: string, extra = ''): Uint8Array {
  return Buffer.from(
    `Received: from client by mailbox\r\nFrom: Ann <ann@client.example>\r\nTo: bob@here.example,\r\n carol@here.example\r\n` +
      `Cc: dave@here.example\r\nSubject: ${subject}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <${subject}@client.example>\r\n${extra}\r\n` +
      `.a line that starts with a dot\r\n..and two\r\nbody of ${subject}\r\n`,
  );
}

/** Commits messages m0..m(n-1) to bob and carol, one ms apart; m2 and m3 share a time. */
async function fill(s: Spool, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await s.commit(
      request(`m${i}`, {
        timeMs: T0 + (i === 3 ? 2 : i),
        message: mail(`subject ${i}`),
        envelope: envelope('ann@client.example', ['Bob@here.example', 'carol@here.example']),
      }),
    );
  }
}

describe('MailStore', () => {
  test('list pages through a mailbox in commit order (time, then id) with a cursor', async () => {
    const s = await open(newDir());
    await fill(s, 7);
    await s.commit(request('other', { timeMs: T0 + 3, envelope: envelope('x@client.example', ['zed@here.example']) }));
    const store = s.mailStore;
    const first = store.list('bob@HERE.example', null, 3);
    expect(first.messages.map((m) => m.id)).toEqual(['m0', 'm1', 'm2']);
    const second = store.list('<bob@here.example>', first.next, 3);
    expect(second.messages.map((m) => m.id)).toEqual(['m3', 'm4', 'm5']);
    const third = store.list('bob@here.example', second.next, 3);
    expect(third.messages.map((m) => m.id)).toEqual(['m6']);
    expect(third.next).toBeNull();
    expect(store.list(null, null, 100).messages.map((m) => m.id)).toEqual(['m0', 'm1', 'm2', 'm3', 'other', 'm4', 'm5', 'm6']);
    expect(store.list('zed@here.example', null).messages.map((m) => m.id)).toEqual(['other']);
    expect(store.list('nobody@here.example', null).messages).toEqual([]);
  });

  test('a summary carries the exact size and the header summary; read gives the message back', async () => {
    const s = await open(newDir());
    await fill(s, 1);
    const m = s.mailStore.get('carol@here.example', 'm0')!;
    const original = mail('subject 0');
    expect(m.size).toBe(original.length);
    expect(s.get('m0')?.size).toBe(original.length);
    expect(dotStuff(original).length).toBe(original.length + 2);
    expect(m.headers).toEqual({
      from: 'Ann <ann@client.example>',
      to: 'bob@here.example, carol@here.example',
      cc: 'dave@here.example',
      subject: 'subject 0',
      date: 'Tue, 1 Dec 2026 10:00:00 +0000',
      messageId: '<subject 0@client.example>',
    });
    expect(m.sender).toBe('ann@client.example');
    expect(m.recipients).toEqual(['bob@here.example', 'carol@here.example']);
    expect(Buffer.from(await s.mailStore.read('carol@here.example', 'm0')).equals(Buffer.from(original))).toBe(true);
    await expect(s.mailStore.read('zed@here.example', 'm0')).rejects.toThrow(/no message m0/);
    expect(s.mailStore.get('zed@here.example', 'm0')).toBeUndefined();
  });

  test('size and header summary after a reopen: the size told at commit, the summary listed before', async () => {
    const dir = newDir();
    const committed: CommittedMessage[] = [];
    const s = await open(dir, { onCommit: (m) => committed.push(m) });
    await fill(s, 3);
    const sizes = new Map(committed.map((c) => [c.id, c.size]));
    const listed = new Map<string, HeaderSummary>(s.mailStore.list(null, null).messages.map((m) => [m.id, m.headers]));
    expect(listed.get('m1')?.subject).toBe('subject 1');
    await close(s);
    const again = await open(dir);
    const after = again.mailStore.list(null, null).messages;
    expect(after.map((m) => m.id).sort()).toEqual(['m0', 'm1', 'm2']);
    for (const m of after) expect({ size: m.size, headers: m.headers }).toEqual({ size: sizes.get(m.id)!, headers: listed.get(m.id)! });
  });

  test('read state and tags are per mailbox, journalled, and survive a reopen', async () => {
    const dir = newDir();
    const s = await open(dir);
    await fill(s, 3);
    const store = s.mailStore;
    await store.setFlags('bob@here.example', ['m0', 'm1'], { read: true, addTags: ['work', 'urgent'] });
    await store.setFlags('bob@here.example', ['m1'], { removeTags: ['urgent'] });
    expect(store.get('bob@here.example', 'm0')?.flags).toEqual({ read: true, tags: ['urgent', 'work'] });
    expect(store.get('bob@here.example', 'm1')?.flags).toEqual({ read: true, tags: ['work'] });
    expect(store.get('carol@here.example', 'm0')?.flags).toEqual({ read: false, tags: [] });
    // Across mailboxes: read only once every mailbox read it.
    expect(store.get(null, 'm0')?.flags.read).toBe(false);
    await store.setFlags(null, ['m0'], { read: true });
    expect(store.get(null, 'm0')?.flags.read).toBe(true);
    expect(store.get('carol@here.example', 'm0')?.flags.read).toBe(true);

    await close(s);
    const again = await open(dir);
    expect(again.mailStore.get('bob@here.example', 'm0')?.flags).toEqual({ read: true, tags: ['urgent', 'work'] });
    expect(again.mailStore.get('bob@here.example', 'm1')?.flags).toEqual({ read: true, tags: ['work'] });
    expect(again.mailStore.get('carol@here.example', 'm1')?.flags).toEqual({ read: false, tags: [] });
    expect(again.mailStore.search('bob@here.example', { read: false }, null).messages.map((m) => m.id)).toEqual(['m2']);
    expect(again.mailStore.search('bob@here.example', { tag: 'urgent' }, null).messages.map((m) => m.id)).toEqual(['m0']);
  });

  test('search matches the header summary and the envelope, without regard to case', async () => {
    const s = await open(newDir());
    await fill(s, 4);
    const store = s.mailStore;
    expect(store.search(null, { subject: 'SUBJECT 2' }, null).messages.map((m) => m.id)).toEqual(['m2']);
    expect(store.search(null, { text: 'dave@' }, null).messages).toHaveLength(4);
    expect(store.search(null, { from: 'ann@client' }, null, 2).messages.map((m) => m.id)).toEqual(['m0', 'm1']);
    expect(store.search(null, { to: 'nobody' }, null).messages).toEqual([]);
    expect(store.search(null, { since: T0 + 1, until: T0 + 2 }, null).messages.map((m) => m.id)).toEqual(['m1']);
  });

  test('expunge removes a message from one mailbox (or all), durably', async () => {
    const dir = newDir();
    const s = await open(dir);
    await fill(s, 3);
    await s.mailStore.expunge('bob@here.example', ['m0']);
    expect(s.mailStore.list('bob@here.example', null).messages.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(s.mailStore.list('carol@here.example', null).messages.map((m) => m.id)).toEqual(['m0', 'm1', 'm2']);
    expect(s.mailStore.get(null, 'm0')?.recipients).toEqual(['carol@here.example']);
    await s.mailStore.expunge(null, ['m1']);
    expect(s.mailStore.list('carol@here.example', null).messages.map((m) => m.id)).toEqual(['m0', 'm2']);
    await close(s);
    const again = await open(dir);
    expect(again.mailStore.list('bob@here.example', null).messages.map((m) => m.id)).toEqual(['m2']);
    expect(again.mailStore.list(null, null).messages.map((m) => m.id)).toEqual(['m0', 'm2']);
  });
});
