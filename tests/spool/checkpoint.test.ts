// The index checkpoint: a start reads and checksums only the records written after it, and it
// is trusted only for the files it describes.
import { describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { dotStuff } from '../../src/core/data.ts';
import { decodeLog, encodeChunk } from '../../src/spool/checkpoint.ts';
import type { Entry } from '../../src/spool/index.ts';
import { nodeIo, type SpoolIo } from '../../src/spool/journal.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { formatRecord, formatSegmentHeader } from '../../src/spool/segment-format.ts';
import { spoolsPerTest } from './fixtures/spools.ts';
import { envelope, memoryLog, messageFor, request } from './fixtures/messages.ts';


const T0 = 1_700_000_000_000;

const { open, close, newDir } = spoolsPerTest(() => T0);

/** An io that counts the bytes start-up's scan reads from segment files. */
function countingIo(): SpoolIo & { readonly bytes: () => number } {
  let bytes = 0;
  return {
    write: nodeIo.write,
    datasync: nodeIo.datasync,
    read: (fd, buffer, position) => {
      const n = fs.readSync(fd, buffer, 0, buffer.length, position);
      bytes += n;
      return n;
    },
    bytes: () => bytes,
  };
}

const segmentBytesOf = (dir: string) =>
  fs.readdirSync(createLayout(dir).segmentsDir).reduce((n, f) => n + fs.statSync(`${createLayout(dir).segmentsDir}/${f}`).size, 0);

describe('checkpoint', () => {
  test('a chunk lists each distinct envelope once, though every message came with its own equal copy', async () => {
    const dir = newDir();
    const s = await open(dir, { checkpointEvery: 10 });
    // As over SMTP: each transaction builds its envelope afresh; every third is to another recipient.
    for (let i = 0; i < 30; i++) {
      await s.commit(request(`m${i}`, { timeMs: T0 + i, envelope: envelope('sender@client.example', [i % 3 === 0 ? 'other@server.example' : 'rcpt@server.example']) }));
    }
    const before = s.list().map((m) => ({ ...m }));
    await close(s);
    const log = decodeLog(fs.readFileSync(createLayout(dir).checkpointPath));
    expect(log.problem).toBeNull();
    expect(log.chunks.reduce((n, c) => n + c.count, 0)).toBe(30);
    for (const chunk of log.chunks) expect(chunk.envelopes.length).toBe(2);
    const again = await open(dir, { checkpointEvery: 10 });
    expect(again.list()).toEqual(before);
    await close(again);
  });

  test('a start reads only the records after the checkpoint, and finds everything as it was', async () => {
    const dir = newDir();
    const s = await open(dir, { checkpointEvery: 10 });
    for (let i = 0; i < 20; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    const relay = envelope('a@b.example', ['x@far.example']);
    await s.commit(request('r', { envelope: { ...relay, recipients: relay.recipients.map((r) => ({ ...r, local: false })) }, localRecipients: [false], timeMs: T0 + 50 }));
    await s.mailStore.expunge('rcpt@server.example', ['m3']);
    await s.mailStore.setFlags('rcpt@server.example', ['m4'], { read: true });
    const before = s.list().map((m) => ({ ...m }));
    await close(s);

    const tail = segmentBytesOf(dir);
    const io = countingIo();
    const again = await open(dir, { io, checkpointEvery: 10 });
    // 20 of 21 records are covered (two chunks of 10): one record is read, not the rest.
    expect(io.bytes()).toBeGreaterThan(0);
    expect(io.bytes()).toBeLessThan(tail / 10);
    expect(again.recovery.records).toBe(21);
    expect(again.list()).toEqual(before);
    expect(again.get('m3')).toBeUndefined();
    expect(again.mailStore.get('rcpt@server.example', 'm4')?.flags.read).toBe(true);
    expect(again.deliveryQueue.lease(T0 + 100, 5).map((j) => j.id)).toEqual(['r']);
    for (let i = 0; i < 20; i++) {
      if (i === 3) continue;
      expect(Buffer.from(await again.readMessage(`m${i}`)).equals(Buffer.from(messageFor(`m${i}`)))).toBe(true);
    }
  });

  test('damage after the checkpoint is still found; a segment replaced since is scanned whole', async () => {
    const dir = newDir();
    const layout = createLayout(dir);
    const s = await open(dir, { checkpointEvery: 4 });
    for (let i = 0; i < 6; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    const last = s.get('m5')!;
    await close(s);
    const segment = layout.segmentPath(1);
    const bytes = fs.readFileSync(segment);
    bytes[last.offset + 120] ^= 0x04;
    // Written as a new file beside the old one, then renamed over it: another inode (a file
    // removed first may give its inode number to the next), so the checkpoint no longer speaks for it.
    const before = fs.statSync(segment).ino;
    fs.writeFileSync(`${segment}.new`, bytes);
    fs.renameSync(`${segment}.new`, segment);
    expect(fs.statSync(segment).ino).not.toBe(before);
    const io = countingIo();
    const again = await open(dir, { io, checkpointEvery: 4 });
    expect(io.bytes()).toBe(bytes.length);
    expect(again.recovery.damaged.map((d) => d.offset)).toEqual([last.offset]);
    expect(again.list().map((m) => m.id)).toEqual(['m4', 'm3', 'm2', 'm1', 'm0']);
  });

  test('a copied spool is scanned whole once; from then on its checkpoint speaks for the copies', async () => {
    const dir = newDir();
    const layout = createLayout(dir);
    const s = await open(dir, { checkpointEvery: 4 });
    for (let i = 0; i < 8; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    const before = s.list().map((m) => ({ ...m }));
    await close(s);
    // As cp or a restore from backup leaves it: the same bytes in new files (new inodes).
    const segment = layout.segmentPath(1);
    const bytes = fs.readFileSync(segment);
    fs.writeFileSync(`${segment}.copy`, bytes);
    fs.renameSync(`${segment}.copy`, segment);
    const first = countingIo();
    const copied = await open(dir, { io: first, checkpointEvery: 4 });
    expect(first.bytes()).toBe(bytes.length);
    expect(copied.list()).toEqual(before);
    await close(copied);
    const checkpointBytes = fs.statSync(layout.checkpointPath).size;
    // The chunks written after that scan chain from the segment's header: they replace the old ones.
    for (let start = 0; start < 2; start++) {
      const io = countingIo();
      const again = await open(dir, { io, checkpointEvery: 4 });
      expect(io.bytes()).toBeLessThan(bytes.length / 4);
      expect(again.list()).toEqual(before);
      await close(again);
    }
    expect(fs.statSync(layout.checkpointPath).size).toBe(checkpointBytes);
  });

  test('a scan collects its garbage every 4,096 records it parses, not only after the segment', async () => {
    const dir = newDir();
    const s = await open(dir, { checkpointEvery: 100_000 });
    const n = 8_200;
    await Promise.all(Array.from({ length: n }, (_, i) => s.commit(request(`m${i}`, { timeMs: T0 + i }))));
    await close(s);
    // No chunk covers them (checkpointEvery is past n, and a close writes none): the next start scans all n.
    const log = createLayout(dir).checkpointPath;
    expect(fs.existsSync(log) ? decodeLog(fs.readFileSync(log)).chunks.length : 0).toBe(0);
    let collections = 0;
    const again = await open(dir, { checkpointEvery: 100_000, collect: () => collections++ });
    expect(again.stats().messages).toBe(n);
    expect(collections).toBe(2);
    await close(again);
  });

  test('checkpointPending covers the records written since the last chunk, however few', async () => {
    const dir = newDir();
    const s = await open(dir, { checkpointEvery: 100 });
    for (let i = 0; i < 3; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    s.checkpointPending();
    s.checkpointPending();
    const log = decodeLog(fs.readFileSync(createLayout(dir).checkpointPath));
    expect(log.chunks.map((c) => c.count)).toEqual([3]);
    await close(s);
    const io = countingIo();
    const again = await open(dir, { io, checkpointEvery: 100 });
    expect(io.bytes()).toBe(0);
    expect(again.list().map((m) => m.id)).toEqual(['m2', 'm1', 'm0']);
    await close(again);
  });

  test('a torn checkpoint is cut back to its whole chunks, and the rest is scanned', async () => {
    const dir = newDir();
    const layout = createLayout(dir);
    const s = await open(dir, { checkpointEvery: 3 });
    for (let i = 0; i < 7; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    await close(s);
    const size = fs.statSync(layout.checkpointPath).size;
    fs.truncateSync(layout.checkpointPath, size - 5);
    const log = memoryLog();
    const again = await open(dir, { log, checkpointEvery: 3 });
    expect(again.list().map((m) => m.id)).toEqual(['m6', 'm5', 'm4', 'm3', 'm2', 'm1', 'm0']);
    expect(again.recovery.damaged).toEqual([]);
    expect(log.lines.some((l) => l.msg.includes('checkpoint ends early'))).toBe(true);
  });

  test('compaction and the checkpoint: moved records are found after reopen, removed segments are not asked for', async () => {
    const dir = newDir();
    const scratch = await open(newDir());
    await scratch.commit(request('x0'));
    await scratch.commit(request('x1'));
    const segmentBytes = scratch.stats().bytes + 1;
    await close(scratch);
    const s = await open(dir, { checkpointEvery: 2, segmentBytes });
    for (let i = 0; i < 12; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    await s.delete(['m0', 'm1', 'm2', 'm4', 'm6', 'm8']);
    const report = await s.compact();
    expect(report.removedSegments.length + report.rewrittenSegments.length).toBeGreaterThan(0);
    for (let i = 12; i < 16; i++) await s.commit(request(`m${i}`, { timeMs: T0 + i }));
    const before = s.list();
    await close(s);
    const io = countingIo();
    const again = await open(dir, { io, checkpointEvery: 2, segmentBytes });
    expect(again.list()).toEqual(before);
    expect(again.recovery.damaged).toEqual([]);
    for (const m of before) expect(Buffer.from(await again.readMessage(m.id)).equals(Buffer.from(messageFor(m.id)))).toBe(true);
    expect(io.bytes()).toBeLessThan(segmentBytesOf(dir) / 2);
  });

  test('a checkpointed start of 1,000,000 records reads only what came after the checkpoint', async () => {
    const dir = newDir();
    const layout = createLayout(dir);
    fs.mkdirSync(layout.segmentsDir, { recursive: true });
    fs.mkdirSync(layout.journalDir, { recursive: true });
    const total = 1_000_000;
    const perSegment = 200_000;
    const env = envelope('load@client.example', ['box@server.example']);
    const local = [true];
    const header = Buffer.from(formatSegmentHeader('mx.test'));
    const stuffed = dotStuff(Buffer.from('Subject: load\r\n\r\nbody\r\n'));
    const chunks: Buffer[] = [];
    for (let seq = 1; seq <= total / perSegment; seq++) {
      const parts: Uint8Array[] = [header];
      const entries: Entry[] = [];
      let at = header.length;
      for (let i = 0; i < perSegment; i++) {
        const id = `L${seq}-${i}`;
        const record = formatRecord({ id, timeMs: T0 + seq * perSegment + i, envelope: env, stuffed, local });
        parts.push(record);
        entries.push({
          id,
          timeMs: T0 + seq * perSegment + i,
          envelope: env,
          local,
          states: [],
          recipientKeys: ['box@server.example'],
          senderKey: 'load@client.example',
          seq,
          offset: at,
          bytes: record.length,
          bodyOffset: at + record.length - 3 - stuffed.length,
          bodyBytes: stuffed.length,
          size: stuffed.length,
          mailboxes: null,
          live: true,
          visible: true,
        });
        at += record.length;
      }
      fs.writeFileSync(layout.segmentPath(seq), Buffer.concat(parts));
      const ino = fs.statSync(layout.segmentPath(seq)).ino;
      chunks.push(encodeChunk({ seq, ino, headerBytes: header.length, from: header.length, to: at, entries }));
    }
    fs.writeFileSync(layout.checkpointPath, Buffer.concat(chunks));
    // Ten records arrive after the checkpoint, at the end of the last segment.
    const last = layout.segmentPath(total / perSegment);
    const coveredBytes = fs.statSync(last).size;
    const after: Uint8Array[] = [];
    for (let i = 0; i < 10; i++) after.push(formatRecord({ id: `new-${i}`, timeMs: T0 + 2 * total + i, envelope: env, stuffed, local }));
    fs.appendFileSync(last, Buffer.concat(after));
    const tailBytes = fs.statSync(last).size - coveredBytes;

    const io = countingIo();
    const started = performance.now();
    const s = await open(dir, { io });
    const ms = performance.now() - started;
    expect(io.bytes()).toBe(tailBytes);
    expect(s.recovery.records).toBe(total + 10);
    expect(s.stats().messages).toBe(total + 10);
    expect(s.get('L3-12345')?.recipients[0].address).toBe('box@server.example');
    expect(Buffer.from(await s.readMessage('L5-199999')).toString()).toBe('Subject: load\r\n\r\nbody\r\n');
    expect(s.list({ limit: 3 }).map((m) => m.id)).toEqual(['new-9', 'new-8', 'new-7']);
    console.log(`checkpointed start of ${total.toLocaleString('en')} records: ${tailBytes} bytes read, ${ms.toFixed(0)} ms`);
  }, 300_000);
});
