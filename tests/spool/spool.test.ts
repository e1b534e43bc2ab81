import { afterEach, describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { dotStuff } from '../../src/core/data.ts';
import { SmtpError } from '../../src/core/errors.ts';
import { nodeIo, type SpoolIo } from '../../src/spool/journal.ts';
import { createLayout } from '../../src/spool/layout.ts';
import { openSpool, SpoolLockedError, type Spool, type SpoolOptions } from '../../src/spool/spool.ts';
import { envelope, memoryLog, messageFor, removeDir, request, tempDir } from './fixtures/messages.ts';

const dirs: string[] = [];
const open: Spool[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

async function spoolIn(dir: string, extra: Partial<SpoolOptions> = {}): Promise<Spool> {
  const s = await openSpool({ dir, hostname: 'mx.test.example', now: () => 1_700_000_000_000, log: memoryLog(), ...extra });
  open.push(s);
  return s;
}

async function closeSpool(s: Spool): Promise<void> {
  await s.close();
  open.splice(open.indexOf(s), 1);
}

function newDir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

/** Checks that a segment reads as one SMTP session a server would accept, and returns its transactions. */
function checkSession(bytes: Buffer): { noop: string; rcpts: number; dataLines: string[] }[] {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) expect(bytes[i - 1]).toBe(0x0d);
    if (bytes[i] === 0x0d) expect(bytes[i + 1]).toBe(0x0a);
  }
  expect(bytes.subarray(-2).toString('latin1')).toBe('\r\n');
  const lines = bytes.toString('latin1').slice(0, -2).split('\r\n');
  expect(lines[0]).toMatch(/^EHLO [\x21-\x7e]+$/);
  const txs: { noop: string; rcpts: number; dataLines: string[] }[] = [];
  let i = 1;
  while (i < lines.length) {
    const noop = lines[i++];
    expect(noop).toMatch(/^NOOP "mailbox id=\S+ t=\d+ len=\d+( local=\S+)? crc=[0-9a-f]{8}"$/);
    expect(noop.length + 2).toBeLessThanOrEqual(512); // RFC 5321 §4.5.3.1.4
    expect(lines[i++]).toMatch(/^MAIL FROM:<[^>]*>/);
    let rcpts = 0;
    while (lines[i].startsWith('RCPT TO:<')) {
      rcpts++;
      i++;
    }
    expect(rcpts).toBeGreaterThan(0);
    expect(lines[i++]).toBe('DATA');
    const dataLines: string[] = [];
    while (lines[i] !== '.') {
      expect(Buffer.byteLength(lines[i], 'latin1') + 2).toBeLessThanOrEqual(1000); // RFC 5321 §4.5.3.1.6
      dataLines.push(lines[i++]);
    }
    i++;
    txs.push({ noop, rcpts, dataLines });
  }
  return txs;
}

describe('round trip', () => {
  test('messages read back byte-identical after reopen, and the segment is an SMTP session', async () => {
    const dir = newDir();
    const long = `X-Long: ${'y'.repeat(998 - 8)}`; // a 998-octet line (RFC 5322 §2.1.1 maximum)
    const cases: Record<string, Uint8Array> = {
      dots: Buffer.from('Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\n...\r\nend\r\n'),
      utf8: Buffer.from('Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße aus Köln — ✓ 日本語\r\n'),
      emptyBody: Buffer.from('Subject: nothing below\r\n\r\n'),
      nothing: new Uint8Array(0),
      longLine: Buffer.from(`Subject: long\r\n${long}\r\n\r\nbody\r\n`),
      dotAtEnd: Buffer.from('Subject: x\r\n\r\nlast line is a dot\r\n.\r\n'),
    };
    expect(long.length).toBe(998);
    const s = await spoolIn(dir);
    await Promise.all(Object.entries(cases).map(([id, msg]) => s.commit(request(id, { message: msg }))));
    await closeSpool(s);

    const again = await spoolIn(dir);
    expect(again.recovery).toEqual({ records: 6, tornBytes: 0, damaged: [] });
    for (const [id, msg] of Object.entries(cases)) {
      expect(Buffer.from(await again.readMessage(id)).equals(Buffer.from(msg))).toBe(true);
      expect(Buffer.from(await again.readRaw(id)).equals(Buffer.from(dotStuff(msg)))).toBe(true);
    }
    const segments = fs.readdirSync(createLayout(dir).segmentsDir);
    expect(segments).toEqual(['00000001.smtp']);
    const txs = checkSession(fs.readFileSync(createLayout(dir).segmentPath(1)));
    expect(txs.map((t) => /id=(\S+)/.exec(t.noop)?.[1]).sort()).toEqual(Object.keys(cases).sort());
  });

  test('envelope, parameters and local flags survive reopen', async () => {
    const dir = newDir();
    const env = {
      ...envelope('Sender@Client.Example', ['a@local.example', 'b@remote.example', 'c@local.example']),
      mailParams: [
        { name: 'SIZE', value: '1234' },
        { name: 'BODY', value: '8BITMIME' },
        { name: 'SMTPUTF8', value: null },
      ],
      utf8: true,
    };
    // The recipients' own local flags stand when localRecipients is not given.
    const recipients = env.recipients.map((r, i) =>
      i === 1 ? { ...r, local: false, params: [{ name: 'NOTIFY', value: 'SUCCESS,FAILURE' }] } : r,
    );
    const s = await spoolIn(dir);
    await s.commit({ ...request('env'), envelope: { ...env, recipients, authUser: 'alice' }, localRecipients: undefined });
    await closeSpool(s);
    const info = (await spoolIn(dir)).get('env');
    expect(info?.envelope.authUser).toBe('alice');
    expect(info?.envelope.recipients.map((r) => r.local)).toEqual([true, false, true]);
    expect(info?.sender).toBe('Sender@Client.Example');
    expect(info?.envelope.mailParams).toEqual(env.mailParams);
    expect(info?.envelope.utf8).toBe(true);
    expect(info?.envelope.declaredSize).toBe(1234);
    expect(info?.envelope.recipients[1].params).toEqual([{ name: 'NOTIFY', value: 'SUCCESS,FAILURE' }]);
    expect(info?.recipients.map((r) => r.state.kind)).toEqual(['local', 'pending', 'local']);
  });

  test('the null sender, many recipients and a new segment past segmentBytes', async () => {
    const dir = newDir();
    const many = Array.from({ length: 150 }, (_, i) => `user${i}@example.org`);
    const s = await spoolIn(dir, { segmentBytes: 4096 });
    for (let i = 0; i < 8; i++) {
      await s.commit(request(`m${i}`, { envelope: envelope(null, many), localRecipients: many.map((_, j) => j % 3 === 0) }));
    }
    expect(s.stats().segments).toBeGreaterThan(1);
    await closeSpool(s);
    const again = await spoolIn(dir, { segmentBytes: 4096 });
    expect(again.recovery.records).toBe(8);
    const info = again.get('m5');
    expect(info?.sender).toBe('<>');
    expect(info?.recipients.map((r) => r.state.kind)).toEqual(many.map((_, j) => (j % 3 === 0 ? 'local' : 'pending')));
    for (const name of fs.readdirSync(createLayout(dir).segmentsDir)) {
      checkSession(fs.readFileSync(`${createLayout(dir).segmentsDir}/${name}`));
    }
  });

  test('reads across more segments than read fds kept open', async () => {
    const s = await spoolIn(newDir(), { segmentBytes: 600 });
    const ids = Array.from({ length: 50 }, (_, i) => `m${i}`);
    for (const id of ids) await s.commit(request(id));
    expect(s.stats().segments).toBe(50);
    for (const round of [0, 1]) {
      for (const id of round === 0 ? ids : [...ids].reverse()) {
        expect(Buffer.from(await s.readMessage(id)).equals(Buffer.from(messageFor(id)))).toBe(true);
      }
    }
  });

  test('messages with equal envelopes keep their own states, before and after reopen', async () => {
    const dir = newDir();
    const env = envelope('a@client.example', ['x@remote.example', 'y@remote.example']);
    const ids = ['m1', 'm2', 'm3', 'm4'];
    const s = await spoolIn(dir);
    for (const id of ids) await s.commit(request(id, { envelope: { ...env }, localRecipients: [false, false] }));
    await s.setState('m2', 1, { kind: 'delivered', atMs: 1 });
    await s.delete(['m3']);
    const kinds = (spool: Spool) => ids.map((id) => spool.get(id)?.recipients.map((r): string => r.state.kind));
    const expected = [['pending', 'pending'], ['pending', 'delivered'], undefined, ['pending', 'pending']];
    expect(kinds(s)).toEqual(expected);
    expect(s.get('m4')?.envelope).toEqual(env);
    expect(s.deliveries().map((d) => `${d.id}/${d.rcptIndex}`)).toEqual(['m1/0', 'm1/1', 'm2/0', 'm4/0', 'm4/1']);
    await closeSpool(s);
    const again = await spoolIn(dir);
    expect(kinds(again)).toEqual(expected);
    await again.setState('m1', 0, { kind: 'delivered', atMs: 2 });
    expect(kinds(again)[3]).toEqual(['pending', 'pending']);
  });

  test('a caller bug is a plain Error, not a 4xx', async () => {
    const s = await spoolIn(newDir());
    await expect(s.commit(request('bad id'))).rejects.toThrow(/unsafe message id/);
    await expect(s.commit(request('x', { stuffed: Buffer.from('a\r\n.\r\nb\r\n') }))).rejects.toThrow(/end-of-data/);
    await expect(s.commit(request('y', { stuffed: Buffer.from('no crlf') }))).rejects.toThrow(/CRLF/);
    await s.commit(request('ok'));
    await expect(s.commit(request('ok'))).rejects.toThrow(/duplicate/);
    expect(s.stats().messages).toBe(1);
  });
});

describe('stats', () => {
  test("the oldest message's time: ties in one millisecond, then the next once the oldest are deleted", async () => {
    const s = await spoolIn(newDir());
    expect(s.stats().oldestMs).toBeNull();
    await s.commit(request('late', { timeMs: 3_000 }));
    for (const id of ['b', 'a']) await s.commit(request(id, { timeMs: 1_000 }));
    await s.commit(request('middle', { timeMs: 2_000 }));
    expect(s.stats().oldestMs).toBe(1_000);
    await s.delete(['a', 'b']);
    expect(s.stats().oldestMs).toBe(2_000);
    await s.delete(['middle', 'late']);
    expect(s.stats().oldestMs).toBeNull();
    await closeSpool(s);
  });
});

describe('the lock', () => {
  test('a second open of one spool fails clearly; a stale lock is taken over', async () => {
    const dir = newDir();
    const s = await spoolIn(dir);
    await expect(openSpool({ dir, hostname: 'h', now: Date.now, log: memoryLog() })).rejects.toBeInstanceOf(SpoolLockedError);
    await closeSpool(s);
    const dead = Bun.spawn(['true']);
    await dead.exited;
    fs.writeFileSync(createLayout(dir).lockPath, `${dead.pid}\n`);
    const again = await spoolIn(dir);
    expect(fs.readFileSync(createLayout(dir).lockPath, 'utf8').trim()).toBe(`${process.pid} serve`);
    await closeSpool(again);
    expect(fs.existsSync(createLayout(dir).lockPath)).toBe(false);
  });
});

describe('I/O failures', () => {
  const failing = (code: string, when: { write?: () => boolean; sync?: () => boolean }): SpoolIo => ({
    write: (fd, bytes, pos) => {
      if (when.write?.()) throw Object.assign(new Error(`${code}: injected`), { code });
      return nodeIo.write(fd, bytes, pos);
    },
    datasync: (fd) => (when.sync?.() ? Promise.reject(Object.assign(new Error(`${code}: injected`), { code })) : nodeIo.datasync(fd)),
  });

  test('disk full on write: 452 4.3.1, and acknowledged messages are unharmed', async () => {
    const dir = newDir();
    let full = false;
    const s = await spoolIn(dir, { io: failing('ENOSPC', { write: () => full }) });
    await s.commit(request('before'));
    full = true;
    const err = await s.commit(request('refused')).catch((e) => e);
    expect(err).toBeInstanceOf(SmtpError);
    expect((err as SmtpError).reply.code).toBe(452);
    expect((err as SmtpError).reply.enhanced).toBe('4.3.1');
    full = false;
    await s.commit(request('after'));
    await closeSpool(s);
    const again = await spoolIn(dir);
    expect(again.recovery.damaged).toEqual([]);
    expect(again.list().map((m) => m.id)).toEqual(['after', 'before']);
    expect(again.get('refused')).toBeUndefined();
    expect(Buffer.from(await again.readMessage('before')).equals(Buffer.from(messageFor('before')))).toBe(true);
    expect(Buffer.from(await again.readMessage('after')).equals(Buffer.from(messageFor('after')))).toBe(true);
  });

  test('permission denied: 451 4.3.0 with the reason', async () => {
    let denied = true;
    const s = await spoolIn(newDir(), { io: failing('EACCES', { write: () => denied }) });
    const err = (await s.commit(request('m')).catch((e) => e)) as SmtpError;
    expect(err.reply.code).toBe(451);
    expect(err.reply.enhanced).toBe('4.3.0');
    expect(err.reply.lines.join(' ')).toContain('not writable');
    denied = false;
    await s.commit(request('m'));
    expect(s.get('m')).toBeDefined();
  });

  test('a failed fdatasync rejects its batch, which is not kept; later commits go to a new segment', async () => {
    const dir = newDir();
    let failNext = false;
    const s = await spoolIn(dir, {
      io: failing('EIO', {
        sync: () => {
          const f = failNext;
          failNext = false;
          return f;
        },
      }),
    });
    await s.commit(request('kept'));
    failNext = true;
    const results = await Promise.allSettled([s.commit(request('lost1')), s.commit(request('lost2'))]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as SmtpError).reply.code).toBe(451);
    }
    await s.commit(request('later'));
    expect(s.get('later')?.segment).toBe('00000002.smtp');
    await closeSpool(s);
    const again = await spoolIn(dir);
    expect(again.recovery.damaged).toEqual([]);
    expect(again.list().map((m) => m.id).sort()).toEqual(['kept', 'later']);
  });

  test('commit after close is refused with 451', async () => {
    const s = await spoolIn(newDir());
    await closeSpool(s);
    const err = (await s.commit(request('late')).catch((e) => e)) as SmtpError;
    expect(err.reply.code).toBe(451);
  });
});
