import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dotStuff } from '../../src/core/data.ts';
import { scanSegmentFile, type SegmentEvent } from '../../src/replay/segment-reader.ts';
import { formatRecord, formatSegmentHeader } from '../../src/spool/segment-format.ts';
import { envelope, removeDir, tempDir } from '../spool/fixtures/messages.ts';

const dir = tempDir('mailbox-replay-reader-');
afterAll(() => removeDir(dir));

function record(id: string, text: string): Buffer {
  return formatRecord({ id, timeMs: 1_700_000_000_000, envelope: envelope('a@example.org', ['b@example.net']), stuffed: dotStuff(Buffer.from(text)), local: [false] });
}

function segment(name: string, parts: Uint8Array[]): string {
  const file = join(dir, name);
  writeFileSync(file, Buffer.concat([formatSegmentHeader('rec.example'), ...parts]));
  return file;
}

/** A compact view of the events: "id:body" for records, "damaged@offset+bytes: reason" for damage. */
function read(file: string, chunkBytes?: number): string[] {
  return [...scanSegmentFile(file, chunkBytes)].map((e: SegmentEvent) =>
    e.kind === 'record' ? `${e.record.id}@${e.offset}:${Buffer.from(e.stuffed).toString('latin1')}` : `damaged@${e.offset}+${e.bytes}: ${e.reason}`);
}

const records = [record('m1', 'Subject: one\r\n\r\n.dot line\r\n'), record('m2', `Subject: two\r\n\r\n${'x'.repeat(3000)}\r\n`), record('m3', 'Subject: three\r\n\r\nend\r\n')];
const header = formatSegmentHeader('rec.example').length;

describe('scanSegmentFile', () => {
  test('yields every record with its file offset and the stored (dot-stuffed) message', () => {
    const file = segment('whole.smtp', records);
    const events = read(file);
    expect(events.map((e) => e.split(':')[0])).toEqual([`m1@${header}`, `m2@${header + records[0].length}`, `m3@${header + records[0].length + records[1].length}`]);
    expect(events[0]).toEndWith('Subject: one\r\n\r\n..dot line\r\n');
  });

  test.each([1, 7, 64, 100, 1000, 4096])('reads the same in windows of %i bytes (records larger than a window grow it)', (chunk) => {
    const file = segment(`chunk-${chunk}.smtp`, records);
    expect(read(file, chunk)).toEqual(read(file));
  });

  test('a damaged checksum is reported at its offset; the records around it are read', () => {
    const bad = Buffer.from(records[1]);
    bad[bad.length - 100] ^= 0x20;
    const file = segment('checksum.smtp', [records[0], bad, records[2]]);
    for (const chunk of [undefined, 50, 333]) {
      const events = read(file, chunk);
      expect(events).toHaveLength(3);
      expect(events[0]).toStartWith('m1@');
      expect(events[1]).toMatch(new RegExp(`^damaged@${header + records[0].length}\\+${bad.length}: checksum mismatch \\(stored [0-9a-f]{8}, computed [0-9a-f]{8}\\)$`));
      expect(events[2]).toStartWith('m3@');
    }
  });

  test('a truncated last record is reported as such; the records before it are read', () => {
    const cut = records[2].subarray(0, records[2].length - 10);
    const file = segment('truncated.smtp', [records[0], records[1], cut]);
    for (const chunk of [undefined, 64]) {
      const events = read(file, chunk);
      expect(events.slice(0, 2).map((e) => e.slice(0, 2))).toEqual(['m1', 'm2']);
      expect(events[2]).toBe(`damaged@${header + records[0].length + records[1].length}+${cut.length}: truncated: the file ends inside this record`);
    }
  });

  test('a damaged NOOP line resynchronises on the next record', () => {
    const bad = Buffer.from(records[1]);
    bad.write('XXXX', 0, 'latin1');
    const file = segment('noop.smtp', [records[0], bad, records[2]]);
    for (const chunk of [undefined, 16, 200]) {
      const events = read(file, chunk);
      expect(events.map((e) => e.replace(/:.*$/s, ''))).toEqual([`m1@${header}`, `damaged@${header + records[0].length}+${bad.length}`, `m3@${header + records[0].length + records[1].length}`]);
    }
  });

  test('a length field that runs past the next record: the next records are still read', () => {
    const text = records[0].toString('latin1').replace(/len=(\d+)/, (_, n) => `len=${Number(n) + 5000}`);
    const file = segment('length.smtp', [Buffer.from(text, 'latin1'), records[1], records[2]]);
    const events = read(file, 128);
    expect(events[0]).toStartWith(`damaged@${header}+`);
    expect(events.slice(1).map((e) => e.slice(0, 2))).toEqual(['m2', 'm3']);
  });

  test('a file without its EHLO line is reported, and its records read', () => {
    const file = join(dir, 'noheader.smtp');
    writeFileSync(file, Buffer.concat([Buffer.from('garbage\r\n'), records[0]]));
    expect(read(file)).toEqual(['damaged@0+9: the segment does not start with an EHLO line', `m1@9:${Buffer.from(dotStuff(Buffer.from('Subject: one\r\n\r\n.dot line\r\n'))).toString('latin1')}`]);
  });

  test('an empty file or a lone header holds nothing; reading changes no byte', () => {
    writeFileSync(join(dir, 'empty.smtp'), '');
    expect(read(join(dir, 'empty.smtp'))).toEqual([]);
    const file = segment('header-only.smtp', []);
    expect(read(file)).toEqual([]);
    const before = readFileSync(file);
    read(file, 3);
    expect(readFileSync(file).equals(before)).toBe(true);
  });
});
