// IndexWriter reads a live ingest's bytes from the spool's segment itself (index-writer.ts
// Rule 6); when a segment is gone, it ingests nothing of the request and names what to resend.
import { afterEach, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { IndexDb } from '../../src/store/index-db.ts';
import { BACKLOG_CHUNK, BACKLOG_MAX, IndexWriter, type IngestReply, type RawMessage } from '../../src/store/index-writer.ts';
import { removeDir, tempDir } from '../spool/fixtures/messages.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

const message = (id: string, subject: string) => Buffer.from(`From: ann@x.test\r\nSubject: ${subject}\r\n\r\nbody of ${id}\r\n`);
const envelope = { mailFrom: 'ann@x.test', recipients: ['bob@y.test'], authUser: null };

test('bytes are read where Spool.locate says; a segment that is gone makes the whole request come back', async () => {
  const dir = tempDir('index-writer-');
  dirs.push(dir);
  const segment = join(dir, 'segment');
  const a = message('a', 'first one');
  const b = message('b', 'second one');
  fs.writeFileSync(segment, Buffer.concat([Buffer.from('header\r\n'), a, b]));
  const writer = new IndexWriter();
  await writer.handle({ op: 'open', path: join(dir, 'index.db') });
  const located = (id: string, offset: number, bytes: Buffer, path = segment): RawMessage => ({ id, timeMs: 1_800_000_000_000, envelope, at: { path, offset, length: bytes.length }, state: null });
  const gone = (await writer.handle({ op: 'ingest', live: true, messages: [located('a', 8, a), located('b', 8 + a.length, b, join(dir, 'compacted'))] })) as IngestReply;
  expect(gone).toMatchObject({ added: 0, unreadable: ['b'] });
  const sent = (await writer.handle({ op: 'ingest', live: true, messages: [located('a', 8, a), { ...located('b', 0, b), at: undefined, stuffed: new Uint8Array(b) }] })) as IngestReply;
  expect(sent).toMatchObject({ added: 2, backlog: 2 });
  expect(sent.unreadable).toBeUndefined();
  await writer.handle({ op: 'close' });
  const reader = IndexDb.openReader(join(dir, 'index.db'));
  expect(reader.list({ limit: 10, start: 0 }).messages.map((m) => [m.id, m.subject, m.snippet])).toEqual([
    ['b', 'second one', 'body of b'],
    ['a', 'first one', 'body of a'],
  ]);
  reader.close();
});

test("a group commit's messages are read from their segments as the spool holds them: envelopes between, dot-stuffing undone", async () => {
  const dir = tempDir('index-writer-');
  dirs.push(dir);
  const first = join(dir, 'segment-1');
  const second = join(dir, 'segment-2');
  const plain = message('a', 'plain');
  // RFC 5321 §4.5.2: a line starting with "." is stored with one more.
  const stuffed = Buffer.from('From: ann@x.test\r\nSubject: dots\r\n\r\n..starts with a dot\r\nthen\r\n...\r\n');
  // Decoded by postal-mime, from a view of the run read with its neighbours.
  const far = Buffer.from('From: ann@x.test\r\nSubject: far\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody of c\r\n--b--\r\n');
  const other = message('d', 'other segment');
  const envelopeLines = Buffer.from('.\r\nNOOP "mailbox id=x"\r\nMAIL FROM:<ann@x.test>\r\nRCPT TO:<bob@y.test>\r\nDATA\r\n');
  const gap = Buffer.alloc(64 * 1024, 'x');
  const parts = [plain, envelopeLines, stuffed, gap, far];
  fs.writeFileSync(first, Buffer.concat(parts));
  fs.writeFileSync(second, Buffer.concat([envelopeLines, other]));
  const offsetOf = (i: number) => parts.slice(0, i).reduce((n, p) => n + p.length, 0);
  const writer = new IndexWriter();
  await writer.handle({ op: 'open', path: join(dir, 'index.db') });
  const at = (id: string, path: string, offset: number, bytes: Buffer): RawMessage => ({ id, timeMs: 1_800_000_000_000, envelope, at: { path, offset, length: bytes.length }, state: null });
  const reply = (await writer.handle({
    op: 'ingest',
    live: true,
    messages: [at('a', first, 0, plain), at('b', first, offsetOf(2), stuffed), at('c', first, offsetOf(4), far), at('d', second, envelopeLines.length, other)],
  })) as IngestReply;
  expect(reply).toMatchObject({ added: 4 });
  expect(reply.unreadable).toBeUndefined();
  await writer.handle({ op: 'close' });
  const reader = IndexDb.openReader(join(dir, 'index.db'));
  expect(reader.list({ limit: 10, start: 0 }).messages.map((m) => [m.id, m.subject, m.snippet, m.size])).toEqual([
    ['d', 'other segment', 'body of d', other.length],
    ['c', 'far', 'body of c', far.length],
    ['b', 'dots', '.starts with a dot then ..', stuffed.length - 2],
    ['a', 'plain', 'body of a', plain.length],
  ]);
  reader.close();
});

test('past BACKLOG_MAX a live ingest moves a chunk into FTS5 only while searches are being made (Rule 4)', async () => {
  const dir = tempDir('index-writer-');
  dirs.push(dir);
  const writer = new IndexWriter();
  await writer.handle({ op: 'open', path: join(dir, 'index.db') });
  const batch = (from: number, n: number, searched: boolean) =>
    writer.handle({
      op: 'ingest',
      live: true,
      searched,
      messages: Array.from({ length: n }, (_, i) => ({ id: `m${from + i}`, timeMs: 1_800_000_000_000 + from + i, envelope, stuffed: new Uint8Array(message(`m${from + i}`, 'flood')), state: null })),
    }) as Promise<IngestReply>;
  let sent = 0;
  while (sent < BACKLOG_MAX) {
    await batch(sent, 1000, false);
    sent += 1000;
  }
  // No search: the burst leaves all of it for the quiet spell.
  expect((await batch(sent, 100, false)).backlog).toBe(BACKLOG_MAX + 100);
  sent += 100;
  // A search was made: each ingest moves a chunk.
  expect((await batch(sent, 100, true)).backlog).toBe(BACKLOG_MAX + 200 - BACKLOG_CHUNK);
  await writer.handle({ op: 'close' });
}, 60_000);
