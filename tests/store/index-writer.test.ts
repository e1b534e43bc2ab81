// IndexWriter reads a live ingest's bytes from the spool's segment itself (index-writer.ts
// Rule 6); when a segment is gone, it ingests nothing of the request and names what to resend.
import { afterEach, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { IndexDb } from '../../src/store/index-db.ts';
import { IndexWriter, type IngestReply, type RawMessage } from '../../src/store/index-writer.ts';
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
