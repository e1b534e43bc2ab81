import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, UsageError } from '../../src/cli/exit-codes.ts';
import { formatMailbox } from '../../src/core/address.ts';
import { dotStuff } from '../../src/core/data.ts';
import { ClientFailure } from '../../src/core/errors.ts';
import { reply } from '../../src/core/reply.ts';
import { FailedSpool } from '../../src/replay/failed-spool.ts';
import { resultOf } from '../../src/replay/outcome.ts';
import { scanSegmentFile } from '../../src/replay/segment-reader.ts';
import { planSources, readSources, type ReplayItem, type SourceEvent } from '../../src/replay/sources.ts';
import { formatRecord, formatSegmentHeader } from '../../src/spool/segment-format.ts';
import { envelope, removeDir, tempDir } from '../spool/fixtures/messages.ts';
import { mailbox } from '../helpers/mailbox.ts';

const dir = tempDir('mailbox-replay-sources-');
afterAll(() => removeDir(dir));

function record(id: string, to: string[] = ['b@example.net']): Buffer {
  return formatRecord({ id, timeMs: 1_700_000_000_000, envelope: envelope('a@example.org', to), stuffed: dotStuff(Buffer.from(`Subject: ${id}\r\n\r\nbody\r\n`)), local: to.map(() => false) });
}

function writeSegment(path: string, ids: string[]): void {
  writeFileSync(path, Buffer.concat([formatSegmentHeader('rec.example'), ...ids.map((id) => record(id))]));
}

/** "kind id-or-offset sender → recipients" per event. */
function describeEvents(events: Iterable<SourceEvent>): string[] {
  return [...events].map((e) => {
    if (e.kind === 'problem') return `problem ${e.problem.reason}`;
    const i = e.item;
    const sender = i.sender === undefined ? '?' : i.sender === null ? '<>' : formatMailbox(i.sender);
    return `${i.body.stuffed !== undefined ? 'record' : 'message'} ${i.id ?? i.offset ?? 'file'} ${sender} → ${i.recipients.map((r) => formatMailbox(r.mailbox)).join(',')}`;
  });
}

describe('planSources and readSources', () => {
  const data = join(dir, 'data');
  mkdirSync(join(data, 'segments'), { recursive: true });
  writeSegment(join(data, 'segments', '00000002.smtp'), ['m3']);
  writeSegment(join(data, 'segments', '00000001.smtp'), ['m1', 'm2']);
  writeFileSync(join(data, 'segments', '00000003.smtp.tmp'), 'unfinished compaction');

  test('a data directory: its segments in sequence order, leftovers ignored', () => {
    expect(describeEvents(readSources(planSources([data], null, [])))).toEqual([
      'record m1 a@example.org → b@example.net',
      'record m2 a@example.org → b@example.net',
      'record m3 a@example.org → b@example.net',
    ]);
  });

  test('--data DIR --id picks those messages; an id not found is a problem', () => {
    expect(describeEvents(readSources(planSources([], data, ['m3', 'nope'])))).toEqual(['record m3 a@example.org → b@example.net', `problem no message with id nope in the spool`]);
    expect(() => planSources([], null, ['m1'])).toThrow(UsageError);
  });

  test('message files: the envelope from Return-Path (else From) and To/Cc/Bcc', () => {
    const eml = join(dir, 'one.eml');
    writeFileSync(eml, 'Return-Path: <bounce@example.org>\nFrom: Alice <alice@example.org>\nTo: b@example.net, "C, D" <c@example.net>\nBcc: hidden@example.net\nSubject: x\n\nbody\n');
    const noReturn = join(dir, 'two.eml');
    writeFileSync(noReturn, 'From: alice@example.org\nSubject: no recipients\n\nbody\n');
    expect(describeEvents(readSources(planSources([eml, noReturn], null, [])))).toEqual([
      'message file bounce@example.org → b@example.net,c@example.net,hidden@example.net',
      'message file alice@example.org → ',
    ]);
  });

  test('a Maildir: new/ then cur/, each in name order; tmp/ is left alone', () => {
    const md = join(dir, 'Maildir');
    for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(md, sub), { recursive: true });
    writeFileSync(join(md, 'new', '2.host'), 'From: a@x.test\nTo: n2@x.test\n\nx\n');
    writeFileSync(join(md, 'new', '1.host'), 'From: a@x.test\nTo: n1@x.test\n\nx\n');
    writeFileSync(join(md, 'cur', '0.host:2,S'), 'From: a@x.test\nTo: c0@x.test\n\nx\n');
    writeFileSync(join(md, 'tmp', '9.host'), 'From: a@x.test\nTo: t9@x.test\n\nx\n');
    expect(describeEvents(readSources(planSources([md], null, [])))).toEqual([
      'message file a@x.test → n1@x.test',
      'message file a@x.test → n2@x.test',
      'message file a@x.test → c0@x.test',
    ]);
  });

  test('an mbox file: the sender from the "From " line when there is no Return-Path', () => {
    const mbox = join(dir, 'box');
    const text = 'From env@example.org Thu Nov 26 10:00:00 2026\nFrom: hdr@example.org\nTo: r@x.test\n\none\n\nFrom MAILER-DAEMON Thu Nov 26 10:00:00 2026\nFrom: hdr2@example.org\nTo: r2@x.test\n\ntwo\n';
    writeFileSync(mbox, text);
    const second = text.indexOf('From MAILER');
    expect(describeEvents(readSources(planSources([mbox], null, [])))).toEqual(['message 0 env@example.org → r@x.test', `message ${second} hdr2@example.org → r2@x.test`]);
  });

  test('a missing path fails before anything is read; a folder with nothing to replay too', () => {
    expect(() => planSources([join(dir, 'absent.smtp')], null, [])).toThrow(InputError);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => planSources([empty], null, [])).toThrow(/no spool segments/);
    expect(() => planSources([], null, [])).toThrow(UsageError);
  });
});

describe('FailedSpool (--failed-out)', () => {

  test('holds exactly the recipients that did not get each message, and reads back as a segment', () => {
    const seg = join(dir, 'src.smtp');
    writeFileSync(seg, Buffer.concat([formatSegmentHeader('rec.example'), record('m1', ['ok@x.test', 'bad@x.test']), record('m2', ['fine@x.test'])]));
    const items = [...readSources(planSources([seg], null, []))].flatMap((e) => (e.kind === 'item' ? [e.item] : []));
    const out = join(dir, 'failed.smtp');
    const spool = FailedSpool.create(out, 'replay.example', () => 'new1', () => 5);
    const results = items.map((item: ReplayItem, i) => {
      const to = item.recipients.map((r) => r.mailbox);
      const tx = { sender: item.sender!, recipients: to, stuffed: item.body.stuffed! };
      const outcome = i === 0
        ? { ok: true as const, transaction: tx, reply: reply(250, '2.0.0', 'ok'), recipients: [{ mailbox: to[0], reply: reply(250, '2.1.5', 'ok'), accepted: true }, { mailbox: to[1], reply: reply(550, '5.1.1', 'no'), accepted: false }] }
        : { ok: true as const, transaction: tx, reply: reply(250, '2.0.0', 'ok'), recipients: [{ mailbox: to[0], reply: reply(250, '2.1.5', 'ok'), accepted: true }] };
      return resultOf(item, item.sender!, item.recipients, outcome, 1, null);
    });
    for (const r of results) spool.add(r);
    spool.add(resultOf(items[1], mailbox('z@x.test'), items[1].recipients, { ok: false, transaction: { sender: null, recipients: [], stuffed: new Uint8Array(0) }, failure: new ClientFailure('connect', 'mail', 'lost'), recipients: [] }, 1, null));
    spool.close();
    expect(spool.records).toBe(2);
    const back = [...scanSegmentFile(out)].map((e) => (e.kind === 'record' ? `${e.record.id} ${formatMailbox(e.record.envelope.sender!)} → ${e.record.envelope.recipients.map((r) => formatMailbox(r.mailbox)).join(',')} ${Buffer.from(e.stuffed).toString()}` : e.reason));
    expect(back).toEqual(['m1 a@example.org → bad@x.test Subject: m1\r\n\r\nbody\r\n', 'm2 z@x.test → fine@x.test Subject: m2\r\n\r\nbody\r\n']);
    expect(() => FailedSpool.create(out, 'replay.example', () => 'x', () => 0)).toThrow(UsageError);
  });
});
