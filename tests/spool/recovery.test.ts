import { afterEach, describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeIo, type SpoolIo } from '../../src/spool/journal.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { memoryLog, messageFor, removeDir, request, tempDir } from './fixtures/messages.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

const open = (dir: string) => openSpool({ dir, hostname: 'mx.test', now: () => 1_700_000_000_000, log: memoryLog() });

/** A spool with five messages in one segment, closed; returns where each record starts. */
async function fiveMessages(): Promise<{ dir: string; segment: string; offsets: number[]; size: number }> {
  const dir = tempDir();
  dirs.push(dir);
  const s = await open(dir);
  for (let i = 0; i < 5; i++) await s.commit(request(`m${i}`, { message: messageFor(`m${i}`, 20) }));
  const offsets = [0, 1, 2, 3, 4].map((i) => s.get(`m${i}`)!.offset);
  await s.close();
  const segment = createLayout(dir).segmentPath(1);
  return { dir, segment, offsets, size: fs.statSync(segment).size };
}

async function expectReadable(s: Spool, ids: string[]): Promise<void> {
  for (const id of ids) expect(Buffer.from(await s.readMessage(id)).equals(Buffer.from(messageFor(id, 20)))).toBe(true);
}

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x7fffffff;
  };
}

describe('torn tail', () => {
  test('a last record cut anywhere is removed; the records before it are intact', async () => {
    const { dir, segment, offsets, size } = await fiveMessages();
    const original = fs.readFileSync(segment);
    const random = rng(7);
    const last = offsets[4];
    const cuts = [last + 1, last + 20, size - 1, size - 3, ...Array.from({ length: 8 }, () => last + 1 + Math.floor(random() * (size - last - 2)))];
    for (const cut of cuts) {
      fs.writeFileSync(segment, original.subarray(0, cut));
      const s = await open(dir);
      expect(s.recovery).toEqual({ records: 4, tornBytes: cut - last, damaged: [] });
      expect(s.get('m4')).toBeUndefined();
      await expectReadable(s, ['m0', 'm1', 'm2', 'm3']);
      expect(fs.statSync(segment).size).toBe(last);
      // New commits go after the cut, and everything survives another reopen.
      await s.commit(request('m4', { message: messageFor('m4', 20) }));
      await s.close();
      const again = await open(dir);
      expect(again.recovery).toEqual({ records: 5, tornBytes: 0, damaged: [] });
      await expectReadable(again, ['m0', 'm1', 'm2', 'm3', 'm4']);
      await again.close();
    }
  });

  test('a segment created but never given its header is removed', async () => {
    const { dir } = await fiveMessages();
    const layout = createLayout(dir);
    fs.writeFileSync(layout.segmentPath(2), 'EHLO mx.te');
    const s = await open(dir);
    expect(s.recovery.tornBytes).toBe(10);
    expect(fs.existsSync(layout.segmentPath(2))).toBe(false);
    expect(s.stats().messages).toBe(5);
    await s.close();
  });
});

describe('damage', () => {
  test('a flipped byte in a middle record is reported and quarantined; records before and after stay readable', async () => {
    const { dir, segment, offsets } = await fiveMessages();
    const original = fs.readFileSync(segment);
    const layout = createLayout(dir);
    const random = rng(11);
    const start = offsets[2];
    const end = offsets[3];
    // The NOOP line, the envelope, the body, the final ".\r\n", and spots chosen at random.
    const spots = [start, start + 10, start + 40, start + 90, end - 1, end - 3, ...Array.from({ length: 6 }, () => start + Math.floor(random() * (end - start)))];
    for (const spot of spots) {
      const damaged = Buffer.from(original);
      damaged[spot] ^= 0x04;
      fs.writeFileSync(segment, damaged);
      fs.rmSync(layout.quarantineDir, { recursive: true, force: true });
      fs.mkdirSync(layout.quarantineDir);

      const s = await open(dir);
      expect(s.recovery.records).toBe(4);
      expect(s.recovery.tornBytes).toBe(0);
      expect(s.recovery.damaged).toHaveLength(1);
      const report = s.recovery.damaged[0];
      expect(report.file).toBe(segment);
      expect(report.offset).toBe(start);
      expect(report.reason.length).toBeGreaterThan(0);
      expect(s.get('m2')).toBeUndefined();
      await expectReadable(s, ['m0', 'm1', 'm3', 'm4']);
      // The bytes were set aside, with a reason, before the segment was rewritten without them.
      expect(report.quarantined).toBe(layout.quarantinePath('00000001.smtp', start));
      expect(fs.readFileSync(report.quarantined!).equals(damaged.subarray(start, end))).toBe(true);
      const reason = fs.readFileSync(`${report.quarantined}.reason`, 'utf8');
      expect(reason).toContain(`reason: ${report.reason}`);
      expect(reason).toContain(`offset: ${start}`);
      expect(fs.existsSync(segment)).toBe(false);
      await s.close();

      // The damage is gone from the spool: the next open finds nothing wrong.
      const again = await open(dir);
      expect(again.recovery).toEqual({ records: 4, tornBytes: 0, damaged: [] });
      await expectReadable(again, ['m0', 'm1', 'm3', 'm4']);
      await again.close();
      for (const name of fs.readdirSync(layout.segmentsDir)) fs.rmSync(path.join(layout.segmentsDir, name));
    }
  });

  test('a damaged last record is set aside, not silently cut', async () => {
    const { dir, segment, offsets, size } = await fiveMessages();
    const bytes = fs.readFileSync(segment);
    bytes[offsets[4] + 200] ^= 0x01;
    fs.writeFileSync(segment, bytes);
    const s = await open(dir);
    expect(s.recovery.records).toBe(4);
    expect(s.recovery.damaged).toHaveLength(1);
    expect(s.recovery.damaged[0].bytes).toBe(size - offsets[4]);
    expect(fs.readFileSync(s.recovery.damaged[0].quarantined!).equals(bytes.subarray(offsets[4]))).toBe(true);
    await s.close();
  });

  test('a damaged EHLO line is set aside and the records after it are kept', async () => {
    const { dir, segment } = await fiveMessages();
    const bytes = fs.readFileSync(segment);
    bytes[1] = 0x00;
    fs.writeFileSync(segment, bytes);
    const s = await open(dir);
    expect(s.recovery.records).toBe(5);
    expect(s.recovery.damaged).toHaveLength(1);
    expect(s.recovery.damaged[0].reason).toContain('EHLO');
    await expectReadable(s, ['m0', 'm1', 'm2', 'm3', 'm4']);
    await s.close();
  });
});

describe('segments longer than the scan window', () => {
  /** An io that records the largest single read start-up's scan makes. */
  function largestReadIo(): SpoolIo & { readonly largest: () => number } {
    let largest = 0;
    return {
      write: nodeIo.write,
      datasync: nodeIo.datasync,
      read: (fd, buffer, position) => {
        largest = Math.max(largest, buffer.length);
        return fs.readSync(fd, buffer, 0, buffer.length, position);
      },
      largest: () => largest,
    };
  }

  /** 400 small records (about 2.5 MB) around one of 3 MB, in one segment, with no checkpoint. */
  async function bigSegment(): Promise<{ dir: string; segment: string; ids: string[]; big: Uint8Array }> {
    const dir = tempDir();
    dirs.push(dir);
    const s = await openSpool({ dir, hostname: 'mx.test', now: () => 1_700_000_000_000, log: memoryLog(), checkpointEvery: 1_000_000 });
    const big = Buffer.from('x'.repeat(998) + '\r\n').toString().repeat(3 * 1024);
    const ids: string[] = [];
    for (let i = 0; i < 400; i++) {
      const id = `w${i}`;
      ids.push(id);
      await s.commit(request(id, { message: i === 200 ? Buffer.from(`Subject: big\r\n\r\n${big}`) : messageFor(id, 100) }));
    }
    await s.close();
    const layout = createLayout(dir);
    fs.rmSync(layout.checkpointPath, { force: true });
    return { dir, segment: layout.segmentPath(1), ids, big: Buffer.from(`Subject: big\r\n\r\n${big}`) };
  }

  const bodyOf = (id: string, big: Uint8Array) => Buffer.from(id === 'w200' ? big : messageFor(id, 100));

  test('every record is found, each read whole; no read spans the segment', async () => {
    const { dir, segment, ids, big } = await bigSegment();
    const size = fs.statSync(segment).size;
    expect(size).toBeGreaterThan(4 * 2 ** 20);
    const io = largestReadIo();
    const s = await openSpool({ dir, hostname: 'mx.test', now: () => 1_700_000_000_000, log: memoryLog(), io });
    expect(s.recovery).toEqual({ records: 400, tornBytes: 0, damaged: [] });
    expect(io.largest()).toBeLessThan(size);
    for (const id of ids) expect(Buffer.from(await s.readMessage(id)).equals(bodyOf(id, big))).toBe(true);
    await s.close();
  });

  test('damage and a torn tail past the first window are found as in a whole read', async () => {
    const { dir, segment, ids, big } = await bigSegment();
    const layout = createLayout(dir);
    const s0 = await openSpool({ dir, hostname: 'mx.test', now: () => 1_700_000_000_000, log: memoryLog() });
    const damagedAt = s0.get('w300')!.offset;
    const nextAt = s0.get('w301')!.offset;
    const lastAt = s0.get('w399')!.offset;
    await s0.close();
    fs.rmSync(layout.checkpointPath, { force: true });
    const bytes = fs.readFileSync(segment);
    bytes[damagedAt + 200] ^= 0x20;
    fs.writeFileSync(segment, bytes.subarray(0, bytes.length - 7));
    const s = await openSpool({ dir, hostname: 'mx.test', now: () => 1_700_000_000_000, log: memoryLog() });
    expect(s.recovery.records).toBe(398);
    expect(s.recovery.tornBytes).toBe(bytes.length - 7 - lastAt);
    expect(s.recovery.damaged.map((d) => [d.offset, d.bytes])).toEqual([[damagedAt, nextAt - damagedAt]]);
    expect(s.get('w300')).toBeUndefined();
    expect(s.get('w399')).toBeUndefined();
    for (const id of ids.filter((i) => i !== 'w300' && i !== 'w399')) {
      expect(Buffer.from(await s.readMessage(id)).equals(bodyOf(id, big))).toBe(true);
    }
    await s.close();
  });
});

describe('state journal', () => {
  test('a torn last line is cut; a damaged line is quarantined and the others still apply', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const layout = createLayout(dir);
    const s = await open(dir);
    for (let i = 0; i < 4; i++) await s.commit(request(`m${i}`));
    await s.delete(['m0']);
    await s.delete(['m1']);
    await s.delete(['m2']);
    await s.close();
    const journal = fs.readFileSync(layout.journalPath);
    const lines = journal.toString('latin1').split('\n');
    expect(lines).toHaveLength(4); // three lines and the empty rest

    // Damage the middle line and tear the last one.
    const damaged = Buffer.from(journal.subarray(0, journal.length - 5));
    damaged[lines[0].length + 1 + 20] ^= 0x02;
    fs.writeFileSync(layout.journalPath, damaged);
    const again = await open(dir);
    expect(again.recovery.tornBytes).toBe(lines[2].length - 4);
    expect(again.recovery.damaged).toHaveLength(1);
    expect(again.recovery.damaged[0].file).toBe(layout.journalPath);
    expect(again.recovery.damaged[0].reason).toContain('checksum');
    expect(again.get('m0')).toBeUndefined();
    expect(again.get('m1')).toBeDefined();
    expect(again.get('m2')).toBeDefined();
    expect(again.get('m3')).toBeDefined();
    await again.close();
    // The journal was rewritten without the damaged line.
    const third = await open(dir);
    expect(third.recovery.damaged).toEqual([]);
    expect(third.list().map((m) => m.id)).toEqual(['m3', 'm2', 'm1']);
    await third.close();
  });
});

test('quarantine never overwrites evidence: other bytes found at the same place get a new name', async () => {
  const dir = tempDir();
  dirs.push(dir);
  const layout = createLayout(dir);
  const names: string[] = [];
  for (const round of [0, 1]) {
    const s = await open(dir);
    if (round === 0) for (let i = 0; i < 3; i++) await s.commit(request(`m${i}`));
    await s.delete([`m${round}`]);
    await s.delete(['m2']);
    await s.close();
    // Damage the first journal line; each round's first line differs.
    const journal = fs.readFileSync(layout.journalPath);
    journal[12] ^= 0x01;
    fs.writeFileSync(layout.journalPath, journal);
    const again = await open(dir);
    expect(again.recovery.damaged).toHaveLength(1);
    names.push(again.recovery.damaged[0].quarantined!);
    await again.close();
  }
  expect(names).toEqual([layout.quarantinePath('state.log', 0), layout.quarantinePath('state.log', 0, 1)]);
  expect(fs.readFileSync(names[0]).equals(fs.readFileSync(names[1]))).toBe(false);
  expect(fs.existsSync(`${names[1]}.reason`)).toBe(true);
});
