// The bun:sqlite index on temp dirs: schema and spool position in meta, rebuild on a version
// mismatch, postal-mime summaries, listing with exact totals, every Mailpit search term against a
// brute-force oracle, read state, tags and deletion.
import { afterEach, beforeEach, expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INDEX_SCHEMA_VERSION, IndexDb, snippetOf, summarizeMessage, zoneOffset, type IndexEnvelope, type IngestItem } from '../../src/store/index-db.ts';
import { parseMailpitSearch } from '../../src/core/mailpit-search.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

let dir: string;
let index: IndexDb;
const enc = new TextEncoder();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'index-db-'));
  index = IndexDb.open(join(dir, 'index.db')).index;
});
afterEach(() => {
  index.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Spec {
  id: string;
  from?: string;
  to?: string;
  cc?: string;
  bcc?: string;
  subject?: string;
  body?: string;
  html?: string;
  attach?: string;
  inline?: boolean;
  rcpts?: string[];
  mailFrom?: string;
  messageId?: string;
}

function compose(s: Spec): Uint8Array {
  const head = [
    `From: ${s.from ?? 'Sender <sender@x.test>'}`,
    `To: ${s.to ?? 'user@x.test'}`,
    ...(s.cc ? [`Cc: ${s.cc}`] : []),
    ...(s.bcc ? [`Bcc: ${s.bcc}`] : []),
    `Subject: ${s.subject ?? 'hello'}`,
    `Message-ID: <${s.messageId ?? `${s.id}@x.test`}>`,
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
  ];
  let body: string;
  if (s.attach !== undefined || s.html !== undefined) {
    const parts = [];
    if (s.body !== undefined) parts.push(`Content-Type: text/plain; charset=utf-8\r\n\r\n${s.body}`);
    if (s.html !== undefined) parts.push(`Content-Type: text/html; charset=utf-8\r\n\r\n${s.html}`);
    if (s.attach !== undefined) parts.push(`Content-Type: application/octet-stream; name="${s.attach}"\r\nContent-Disposition: ${s.inline ? 'inline' : 'attachment'}; filename="${s.attach}"\r\n${s.inline ? 'Content-ID: <img1@x>\r\n' : ''}Content-Transfer-Encoding: base64\r\n\r\nAAEC`);
    head.push('Content-Type: multipart/mixed; boundary="b1"');
    body = `${parts.map((p) => `--b1\r\n${p}\r\n`).join('')}--b1--\r\n`;
  } else {
    head.push('Content-Type: text/plain; charset=utf-8');
    body = `${s.body ?? 'body text'}\r\n`;
  }
  return enc.encode(`${head.join('\r\n')}\r\n\r\n${body}`);
}

let seq = 0;
async function item(s: Spec, extra: Partial<IngestItem> = {}): Promise<IngestItem> {
  const envelope: IndexEnvelope = { mailFrom: s.mailFrom ?? 'sender@x.test', recipients: s.rcpts ?? ['user@x.test'], authUser: null };
  seq++;
  return { id: s.id, seq, receivedMs: 1_700_000_000_000 + seq * 1000, envelope, summary: await summarizeMessage(compose(s), envelope), ...extra };
}

const ids = (q: string, opts: { extensions?: boolean } = {}) => index.search(parseMailpitSearch(q, opts), { limit: 1000, start: 0 }, { offsetAt: () => 0 }).messages.map((m) => m.id);

test('a new file is WAL with the schema version; reopening keeps it; another version is rebuilt', async () => {
  const path = join(dir, 'index.db');
  index.ingest([await item({ id: 'a1' })], 'seg1:100');
  expect(index.spoolPosition()).toBe('seg1:100');
  index.close();
  const raw = new Database(path);
  expect(raw.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
  expect(raw.query("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: String(INDEX_SCHEMA_VERSION) });
  raw.close();
  let opened = IndexDb.open(path);
  expect(opened.rebuilt).toBe(false);
  expect(opened.index.stats().total).toBe(1);
  opened.index.close();
  const old = new Database(path);
  old.query("UPDATE meta SET value = '0' WHERE key = 'schema_version'").run();
  old.close();
  opened = IndexDb.open(path);
  expect(opened.rebuilt).toBe(true);
  expect(opened.index.stats().total).toBe(0);
  expect(opened.index.spoolPosition()).toBeNull();
  index = opened.index;
});

test('reset empties the index and forgets the spool position', async () => {
  index.ingest([await item({ id: 'a1' }), await item({ id: 'a2' })], 'p');
  index.reset();
  expect(index.stats()).toEqual({ total: 0, unread: 0, lastSeq: 0, tags: {} });
  expect(index.spoolPosition()).toBeNull();
  expect(ids('hello')).toEqual([]);
});

test('postal-mime summary: addresses, envelope-only Bcc, decoded subject, counts, snippet, exact size', async () => {
  const bytes = compose({ id: 's', from: '"Ann Example" <ann@x.test>', to: 'Bob <bob@x.test>, team: c@x.test, d@x.test;', cc: 'e@x.test', subject: '=?UTF-8?B?w6l0w6k=?= report', body: 'Hello   there\r\n\r\nsecond line', attach: 'report.pdf' });
  const s = await summarizeMessage(bytes, { mailFrom: 'bounce@x.test', recipients: ['bob@x.test', 'hidden@x.test', 'E@x.test'], authUser: null });
  expect(s.from).toEqual({ Name: 'Ann Example', Address: 'ann@x.test' });
  expect(s.to).toEqual([{ Name: 'Bob', Address: 'bob@x.test' }, { Name: '', Address: 'c@x.test' }, { Name: '', Address: 'd@x.test' }]);
  expect(s.cc).toEqual([{ Name: '', Address: 'e@x.test' }]);
  expect(s.bcc).toEqual([{ Name: '', Address: 'hidden@x.test' }]);
  expect(s.subject).toBe('été report');
  expect(s.messageId).toBe('s@x.test');
  expect(s.dateMs).toBe(Date.UTC(2026, 11, 1, 10));
  expect(s.size).toBe(bytes.length);
  expect([s.attachments, s.inline]).toEqual([1, 0]);
  expect(s.snippet).toBe('Hello there second line');
  expect(s.searchText).toContain('report.pdf');
  expect(s.searchText).toContain('ann example ann@x.test');
  const html = await summarizeMessage(compose({ id: 'h', html: '<style>p{}</style><p>Hi &amp; <b>welcome</b></p>', attach: 'logo.png', inline: true }), { mailFrom: '', recipients: [], authUser: null });
  expect([html.snippet, html.attachments, html.inline]).toEqual(['Hi & welcome', 0, 1]);
  expect(html.searchText).toContain('hi & welcome');
  expect(html.searchText).not.toContain('p{}');
  const garbage = await summarizeMessage(enc.encode('\u0000\u0001 not mail at all'), { mailFrom: '', recipients: ['x@y.test'], authUser: null });
  expect(garbage.size).toBe(18);
  expect(garbage.bcc).toEqual([{ Name: '', Address: 'x@y.test' }]);
});

test('snippets are cut at 250 characters', () => {
  expect(snippetOf('a '.repeat(300)).length).toBe(249 + 3);
  expect(snippetOf(' x\n\ty ')).toBe('x y');
  // Characters, not UTF-16 units; whitespace runs collapse even where they fill the first pages.
  expect(snippetOf('😀'.repeat(300))).toBe(`${'😀'.repeat(250)}...`);
  expect(snippetOf(`${' \r\n'.repeat(3000)}word ${'b'.repeat(10_000)}`)).toBe(`word ${'b'.repeat(245)}...`);
  expect(snippetOf(`${'\u00a0'.repeat(5000)}short`)).toBe('short');
});

test('snippets equal their definition on random text: whitespace runs collapsed, trimmed, 250 code points', () => {
  const definition = (t: string) => {
    const flat = [...t.replace(/\s+/g, ' ').trim()];
    return flat.length <= 250 ? flat.join('') : `${flat.slice(0, 250).join('').trimEnd()}...`;
  };
  const pieces = [' ', '  ', '\r\n', '\t', '\u00a0', '\u3000', '\u2028', '\ufeff', '\u200b', 'a', 'word', 'X'.repeat(77), '😀', '\ud83d', 'é', ' '.repeat(700)];
  const r = seededRandom(8);
  for (let k = 0; k < 3_000; k++) {
    let t = '';
    for (let n = Math.floor(r() * 400); n > 0; n--) t += pieces[Math.floor(r() * pieces.length)];
    expect(snippetOf(t)).toBe(definition(t));
  }
});

test('list: newest first by commit order, exact totals, paging, inboxes from the envelope', async () => {
  const batch = [];
  for (let i = 0; i < 7; i++) batch.push(await item({ id: `m${i}`, rcpts: i % 2 === 0 ? ['Even@X.test'] : ['odd@x.test', 'even@x.test'] }));
  index.ingest(batch.slice(0, 4), 'p1');
  index.ingest(batch.slice(4), 'p2');
  expect(index.spoolPosition()).toBe('p2');
  const page = index.list({ limit: 3, start: 2 });
  expect(page.messages.map((m) => m.id)).toEqual(['m4', 'm3', 'm2']);
  expect([page.matched, page.matchedUnread]).toEqual([7, 7]);
  expect(index.list({ limit: 50, start: 10 }).messages).toEqual([]);
  const even = index.list({ inbox: 'EVEN@x.test', limit: 50, start: 0 });
  expect(even.matched).toBe(7);
  const odd = index.list({ inbox: '<odd@x.test>', limit: 2, start: 0 });
  expect([odd.matched, odd.messages.map((m) => m.id)]).toEqual([3, ['m5', 'm3']]);
  expect(index.list({ inbox: 'odd@x.test', limit: 2, start: 2 }).messages.map((m) => m.id)).toEqual(['m1']);
  expect(index.list({ inbox: 'nobody@x.test', limit: 2, start: 0 })).toEqual({ messages: [], matched: 0, matchedUnread: 0 });
  // An inbox's unread count with some, all and none of the stored messages read.
  const unread = (inbox: string) => index.list({ inbox, limit: 1, start: 0 }).matchedUnread;
  index.setRead(['m1', 'm2'], true);
  expect([unread('even@x.test'), unread('odd@x.test')]).toEqual([5, 2]);
  index.setRead(null, true);
  expect([unread('even@x.test'), unread('odd@x.test')]).toEqual([0, 0]);
  index.setRead(null, false);
  expect([unread('even@x.test'), unread('odd@x.test')]).toEqual([7, 3]);
  expect(index.inboxes()).toEqual([{ address: 'even@x.test', total: 7, lastSeq: batch[6].seq }, { address: 'odd@x.test', total: 3, lastSeq: batch[5].seq }]);
  const m = index.get('m1')!;
  expect(m).toMatchObject({ id: 'm1', recipients: ['odd@x.test', 'even@x.test'], mailFrom: 'sender@x.test', read: false, tags: [], subject: 'hello' });
  expect(index.get('nope')).toBeNull();
});

test('an ingest counts what it adds, read or not, and not an id it already has', async () => {
  expect(index.ingest([await item({ id: 'a' }, { read: true }), await item({ id: 'b' })], 'p1')).toBe(2);
  expect(index.ingest([await item({ id: 'b' }), await item({ id: 'c' }), await item({ id: 'a' })], 'p2')).toBe(1);
  expect(index.ingest([await item({ id: 'c' })], 'p3')).toBe(0);
  expect(index.stats()).toMatchObject({ total: 3, unread: 2 });
  expect(index.list({ limit: 0, start: 0 })).toMatchObject({ matched: 3, matchedUnread: 2 });
});

test('read state, tags and deletion keep the totals exact', async () => {
  index.ingest([await item({ id: 'a' }), await item({ id: 'b' }), await item({ id: 'c' }, { tags: ['Seed'] })], 'p');
  expect(index.setRead(['a', 'b', 'missing'], true)).toBe(2);
  expect(index.setRead(['a'], true)).toBe(0);
  expect(index.stats()).toMatchObject({ total: 3, unread: 1 });
  expect(ids('is:read')).toEqual(['b', 'a']);
  expect(ids('is:unread')).toEqual(['c']);
  expect(ids('-is:read')).toEqual(['c']);
  expect(index.search(parseMailpitSearch('hello'), { limit: 1, start: 0 })).toMatchObject({ matched: 3, matchedUnread: 1 });
  index.setTags(['a', 'b'], ['Urgent', 'x', 'x', ' ']);
  index.setTags(['b'], ['Other']);
  expect(index.get('a')!.tags).toEqual(['Urgent', 'x']);
  expect(index.stats().tags).toEqual({ Other: 1, Seed: 1, Urgent: 1, x: 1 });
  expect(ids('tag:urgent')).toEqual(['a']);
  expect(ids('-tag:urgent')).toEqual(['c', 'b']);
  expect(ids('is:tagged')).toEqual(['c', 'b', 'a']);
  expect(index.renameTag('URGENT', 'Other')).toBe(1);
  expect(index.get('a')!.tags).toEqual(['Other', 'x']);
  expect(index.renameTag('x', 'Y')).toBe(1);
  expect(index.deleteTag('y')).toBe(1);
  expect(index.stats().tags).toEqual({ Other: 2, Seed: 1 });
  index.setTags(['a'], ['Urgent', 'x']);
  expect(index.setRead(null, false)).toBe(2);
  expect(index.delete(['a', 'zzz'])).toBe(1);
  expect(index.stats()).toMatchObject({ total: 2, unread: 2, tags: { Other: 1, Seed: 1 } });
  expect(ids('hello')).toEqual(['c', 'b']);
  expect(index.inboxes()).toEqual([{ address: 'user@x.test', total: 2, lastSeq: index.get('c')!.seq }]);
  expect(index.delete(null)).toBe(2);
  expect(index.stats()).toEqual({ total: 0, unread: 0, lastSeq: 0, tags: {} });
  expect(index.inboxes()).toEqual([]);
});

test('retention: the ids beyond the newest N and those older than a time, oldest first', async () => {
  const batch = [];
  for (let i = 0; i < 6; i++) batch.push(await item({ id: `k${i}` }));
  index.ingest(batch, 'p');
  expect(index.expired({ maxMessages: 4 })).toEqual(['k0', 'k1']);
  expect(index.expired({ beforeMs: batch[3].receivedMs })).toEqual(['k0', 'k1', 'k2']);
  expect(index.expired({ maxMessages: 5, beforeMs: batch[1].receivedMs })).toEqual(['k0']);
  expect(index.expired({ maxMessages: 10 })).toEqual([]);
  expect(index.expired({})).toEqual([]);
});

test('search: every Mailpit term kind (research/mailpit-api.md §1.5)', async () => {
  index.ingest([
    await item({ id: 'a', to: 'a@x.test', subject: 'two words here', body: 'the quick brown fox', rcpts: ['a@x.test'] }),
    await item({ id: 'b', to: 'ba@x.test', subject: 'words two', body: 'lazy dog 100% a_b', rcpts: ['ba@x.test'], attach: 'invoice.pdf' }),
    await item({ id: 'c', to: '"John Doe" <jd@x.test>', cc: 'carol@x.test', subject: 'Re: ok', body: 'ok', rcpts: ['jd@x.test', 'secret@x.test'], messageId: 'abc-123@mail.x' }),
    await item({ id: 'd', from: 'other@y.test', subject: 'hi', html: '<p>quick <i>silver</i></p>', attach: 'pic.png', inline: true, mailFrom: '' }),
  ], 'p');
  expect(ids('')).toEqual(['d', 'c', 'b', 'a']);
  expect(ids('quick')).toEqual(['d', 'a']);
  expect(ids('-quick')).toEqual(['c', 'b']);
  expect(ids('QUICK brown')).toEqual(['a']);
  expect(ids('"quick brown"')).toEqual(['a']);
  expect(ids('"brown quick"')).toEqual([]);
  expect(ids('to:a@x.test')).toEqual(['b', 'a']);
  expect(ids('-to:a@x.test')).toEqual(['d', 'c']);
  expect(ids('to:"john doe"')).toEqual(['c']);
  expect(ids('cc:carol')).toEqual(['c']);
  expect(ids('bcc:secret')).toEqual(['c']);
  expect(ids('from:other')).toEqual(['d']);
  expect(ids('addressed:carol')).toEqual(['c']);
  expect(ids('-addressed:x.test')).toEqual([]);
  expect(ids('subject:"two words"')).toEqual(['a']);
  expect(ids('subject:two words')).toEqual(['b', 'a']);
  expect(ids('subject:RE:')).toEqual(['c']);
  expect(ids('subject:re')).toEqual(['c', 'a']);
  expect(ids('message-id:ABC-123')).toEqual(['c']);
  expect(ids('has:attachment')).toEqual(['b']);
  expect(ids('has:inline')).toEqual(['d']);
  expect(ids('-has:attachments')).toEqual(['d', 'c', 'a']);
  expect(ids('invoice.pdf')).toEqual(['b']);
  expect(ids('100%')).toEqual(['b']);
  expect(ids('a_b')).toEqual(['b']);
  expect(ids('a%b')).toEqual([]);
  expect(ids('ok')).toEqual(['c']);
  expect(ids('-ok')).toEqual(['d', 'b', 'a']);
  expect(ids('ba')).toEqual(['b']);
  expect(ids('after:invalid larger:nonsense')).toEqual(['d', 'c', 'b', 'a']);
  const sizes = Object.fromEntries(['a', 'b', 'c', 'd'].map((id) => [id, index.get(id)!.size]));
  const mid = sizes.a + 1;
  expect(ids(`larger:${mid}`)).toEqual(['a', 'b', 'c', 'd'].filter((id) => sizes[id] > mid).reverse());
  expect(ids(`smaller:${mid}`)).toEqual(['a', 'b', 'c', 'd'].filter((id) => sizes[id] < mid).reverse());
  const t = (k: string) => index.get(k)!.receivedMs;
  const iso = (ms: number) => new Date(ms).toISOString();
  expect(ids(`after:${iso(t('c'))}`)).toEqual(['d', 'c']);
  expect(ids(`before:${iso(t('b'))}`)).toEqual(['b', 'a']);
  expect(ids(`-after:${iso(t('b'))}`)).toEqual(['b', 'a']);
  expect(ids(`rcpt:secret@x.test`, { extensions: true })).toEqual(['c']);
  expect(ids(`rcpt:ecret@x.test`, { extensions: true })).toEqual([]);
  expect(ids(`mailfrom:<>`, { extensions: true })).toEqual(['d']);
  expect(ids(`-mailfrom:<>`, { extensions: true })).toEqual(['c', 'b', 'a']);
});

test('query text never reaches SQL or FTS syntax', async () => {
  index.ingest([await item({ id: 'q', subject: `it's "quoted" (x) OR NEAR`, body: `robert'); DROP TABLE messages;-- * ^ NOT` })], 'p');
  for (const q of [`"robert');"`, 'DROP', `subject:"it's"`, 'NEAR', '*', '^', 'NOT', 'OR', 'subject:(x)', `'`, 'to:"', '{text}', 'text:robert']) {
    expect(() => ids(q)).not.toThrow();
  }
  expect(ids(`"robert'); drop table messages;--"`)).toEqual(['q']);
  expect(ids(`subject:it's`)).toEqual(['q']);
  expect(ids('text:robert')).toEqual([]);
  expect(index.stats().total).toBe(1);
});

test('paging a search keeps the exact total; afterSeq and matchAfter serve a wait', async () => {
  const batch = [];
  for (let i = 0; i < 30; i++) batch.push(await item({ id: `p${i}`, body: i % 3 === 0 ? 'needle here' : 'hay' }));
  index.ingest(batch, 'p');
  const q = parseMailpitSearch('needle');
  const page = index.search(q, { limit: 4, start: 4 });
  expect(page.matched).toBe(10);
  expect(page.messages.map((m) => m.id)).toEqual(['p15', 'p12', 'p9', 'p6']);
  expect(index.search(q, { limit: 4, start: 20 }).messages).toEqual([]);
  index.optimize();
  expect(index.search(q, { limit: 4, start: 4 }).messages.map((m) => m.id)).toEqual(['p15', 'p12', 'p9', 'p6']);
  expect(index.matchAfter(q, batch[10].seq, 2).map((m) => m.id)).toEqual(['p12', 'p15']);
  expect(index.search(q, { limit: 50, start: 0, afterSeq: batch[24].seq }).messages.map((m) => m.id)).toEqual(['p27']);
});

test('dates typed without a zone are read in the given zone (Mailpit tz)', () => {
  const paris = zoneOffset('Europe/Paris')!;
  expect(paris(Date.UTC(2026, 0, 15, 12))).toBe(60);
  expect(paris(Date.UTC(2026, 6, 15, 12))).toBe(120);
  expect(zoneOffset('UTC')!(0)).toBe(0);
  expect(zoneOffset('Not/AZone')).toBeNull();
});

test('random queries agree with a brute-force reading of the same summaries', async () => {
  const SEED = Number(process.env.FUZZ_SEED ?? 4242);
  console.log(`index-db oracle seed ${SEED}`);
  const r = seededRandom(SEED);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'ab', 'zz', 'ta', 'phase', 'omega', 'x'];
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const batch: IngestItem[] = [];
  for (let i = 0; i < 120; i++) {
    const body = Array.from({ length: 1 + Math.floor(r() * 6) }, () => pick(words)).join(' ');
    batch.push(await item({ id: `r${i}`, to: `${pick(['ann', 'bob', 'bobby', 'cy'])}@${pick(['x.test', 'y.test'])}`, subject: `${pick(words)} ${pick(words)}`, body, ...(r() < 0.2 ? { attach: 'f.bin' } : {}) }, { read: r() < 0.5, tags: r() < 0.3 ? [pick(['t1', 't2'])] : [] }));
  }
  // A third in FTS5 and the rest in the backlog (index-db.ts Rule 4), which moves into FTS5 in two
  // steps below: every query must read the same from either table.
  index.ingest(batch.slice(0, 40), 'p1');
  expect(index.ingest(batch.slice(40), 'p2', { deferSearch: true })).toBe(80);
  expect(index.backlogSize()).toBe(80);
  let rows = batch.map((b) => index.get(b.id)!);
  const termPool = [...words, 'to:bob', 'to:y.test', 'subject:ta', 'subject:"alpha beta"', 'is:read', 'is:unread', 'has:attachment', 'tag:t1', 'is:tagged'];
  const matchOne = (m: (typeof rows)[number], term: string): boolean => {
    const neg = term.startsWith('-');
    const t = neg ? term.slice(1) : term;
    let hit: boolean;
    if (t.startsWith('to:')) hit = m.to.some((a) => a.Address.includes(t.slice(3)));
    else if (t.startsWith('subject:')) hit = m.subject.toLowerCase().includes(t.slice(8).replace(/"/g, ''));
    else if (t === 'is:read') hit = m.read;
    else if (t === 'is:unread') hit = !m.read;
    else if (t === 'has:attachment') hit = m.attachments > 0;
    else if (t.startsWith('tag:')) hit = m.tags.includes(t.slice(4));
    else if (t === 'is:tagged') hit = m.tags.length > 0;
    else hit = batch.find((b) => b.id === m.id)!.summary.searchText.includes(t);
    return neg ? !hit : hit;
  };
  // Some read, then every one read, then none: a search counts its unread hits from the totals
  // when all stored messages share one state, and hit by hit otherwise.
  for (const state of ['mixed', 'all read', 'all unread'] as const) {
    if (state !== 'mixed') index.setRead(null, state === 'all read');
    if (state !== 'mixed') expect(index.indexBacklog(40)).toBe(40);
    rows = batch.map((b) => index.get(b.id)!);
    for (let k = 0; k < 200; k++) {
      const terms = Array.from({ length: 1 + Math.floor(r() * 3) }, () => `${r() < 0.25 ? '-' : ''}${pick(termPool)}`);
      const hits = rows.filter((m) => terms.every((t) => matchOne(m, t))).reverse();
      const expected = hits.map((m) => m.id);
      const q = `${terms.join(' ')} (${state})`;
      const page = index.search(parseMailpitSearch(terms.join(' ')), { limit: 1000, start: 0 });
      expect({ q, got: page.messages.map((m) => m.id) }).toEqual({ q, got: expected });
      expect({ q, matched: page.matched, unread: page.matchedUnread }).toEqual({ q, matched: expected.length, unread: hits.filter((m) => !m.read).length });
      // Short pages near the newest end and deeper ones (FTS5 walks backwards for the first).
      const start = Math.floor(r() * 8);
      const small = index.search(parseMailpitSearch(terms.join(' ')), { limit: 3, start });
      expect({ q, start, got: small.messages.map((m) => m.id), matched: small.matched }).toEqual({ q, start, got: expected.slice(start, start + 3), matched: expected.length });
    }
  }
});

test('the backlog: moved into FTS5 oldest first, emptied by deletes and resets (index-db.ts Rule 4)', async () => {
  const batch = [await item({ id: 'b1', subject: 'zircon one' }), await item({ id: 'b2', subject: 'zircon two' }), await item({ id: 'b3', subject: 'zircon three' })];
  expect(index.ingest(batch, 'p', { deferSearch: true })).toBe(3);
  const found = (q: string) => index.search(parseMailpitSearch(q), { limit: 10, start: 0 }).messages.map((m) => m.id);
  expect(found('zircon')).toEqual(['b3', 'b2', 'b1']);
  expect(found('subject:"zircon t"')).toEqual(['b3', 'b2']);
  expect(found('-subject:one zircon')).toEqual(['b3', 'b2']);
  expect(index.indexBacklog(1)).toBe(1);
  expect(found('zircon')).toEqual(['b3', 'b2', 'b1']);
  expect(found('subject:one')).toEqual(['b1']);
  index.delete(['b2']);
  expect(index.backlogSize()).toBe(1);
  expect(found('zircon')).toEqual(['b3', 'b1']);
  expect(index.indexBacklog(10)).toBe(1);
  expect(index.backlogSize()).toBe(0);
  expect(found('zircon')).toEqual(['b3', 'b1']);
  index.ingest([await item({ id: 'b4', subject: 'zircon four' })], 'p2', { deferSearch: true });
  index.reset();
  expect(index.backlogSize()).toBe(0);
  expect(found('zircon')).toEqual([]);
});
