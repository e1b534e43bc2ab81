// Issue 14 part 3, through the spool's I/O injection point: a read-only file system, an I/O
// error, and a data directory removed under a running spool each give 451 4.3.0, one log line,
// and a spool that keeps answering.
import { afterEach, describe, expect, test } from 'bun:test';
import * as fs from 'node:fs';
import { SmtpError } from '../../src/core/errors.ts';
import { nodeIo, type SpoolIo } from '../../src/spool/journal.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { memoryLog, removeDir, request, tempDir } from './fixtures/messages.ts';

const dirs: string[] = [];
const open: Spool[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

function injected(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

async function spoolWith(io: SpoolIo) {
  const dir = tempDir();
  dirs.push(dir);
  const log = memoryLog();
  const spool = await openSpool({ dir, hostname: 'mx.test.example', now: () => 1_700_000_000_000, log, io });
  open.push(spool);
  return { dir, log, spool };
}

async function refusal(p: Promise<unknown>): Promise<SmtpError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SmtpError);
  return err as SmtpError;
}

const errorLines = (log: ReturnType<typeof memoryLog>) => log.lines.filter((l) => l.level === 'error');

describe('spool failures', () => {
  for (const { code, where, reason } of [
    { code: 'EROFS', where: 'write', reason: 'read-only file system' },
    { code: 'EIO', where: 'write', reason: 'I/O error' },
    { code: 'EROFS', where: 'fdatasync', reason: 'read-only file system' },
    { code: 'EIO', where: 'fdatasync', reason: 'I/O error' },
  ] as const) {
    test(`${code} on ${where}: every commit gets 451 4.3.0, one log line for the run, then the spool recovers`, async () => {
      let failing = false;
      const { spool, log } = await spoolWith({
        write: (fd, bytes, pos) => {
          if (failing && where === 'write') throw injected(code);
          return nodeIo.write(fd, bytes, pos);
        },
        datasync: (fd) => (failing && where === 'fdatasync' ? Promise.reject(injected(code)) : nodeIo.datasync(fd)),
      });
      await spool.commit(request('before'));
      failing = true;
      for (const id of ['a', 'b', 'c']) {
        const err = await refusal(spool.commit(request(id)));
        expect(err.reply.code).toBe(451);
        expect(err.reply.enhanced).toBe('4.3.0');
        expect(err.reply.lines.join(' ')).toContain(reason);
      }
      const errors = errorLines(log);
      expect(errors).toHaveLength(1);
      expect(errors[0].fields?.code).toBe(code);
      failing = false;
      await spool.commit(request('after'));
      expect(spool.list().map((m) => m.id)).toEqual(['after', 'before']);
      expect(errorLines(log)).toHaveLength(1);
    });
  }

  test('the data directory removed under a running spool: 451 4.3.0 from the next batch on, one log line', async () => {
    const { dir, spool, log } = await spoolWith(nodeIo);
    for (const id of ['m1', 'm2', 'm3']) await spool.commit(request(id));
    fs.rmSync(dir, { recursive: true, force: true });
    for (const id of ['g1', 'g2', 'g3']) {
      const err = await refusal(spool.commit(request(id)));
      expect(err.reply.code).toBe(451);
      expect(err.reply.enhanced).toBe('4.3.0');
      expect(err.reply.lines.join(' ')).toContain('removed');
    }
    const refusedTogether = await Promise.allSettled([spool.commit(request('p1')), spool.commit(request('p2'))]);
    expect(refusedTogether.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(spool.get('g1')).toBeUndefined();
    const errors = errorLines(log);
    expect(errors).toHaveLength(1);
    expect(errors[0].msg).toContain('removed');
    // A removal cannot be journalled into the unlinked journal either.
    const stateErr = await refusal(spool.deleteLocal(['m1']));
    expect(stateErr.reply.code).toBe(451);
  });

  test('a batch already being written when the directory goes is refused as a whole', async () => {
    let release: (() => void) | null = null;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let hold = false;
    const { dir, spool } = await spoolWith({
      write: nodeIo.write,
      datasync: async (fd) => {
        if (hold) await gate;
        return nodeIo.datasync(fd);
      },
    });
    await spool.commit(request('kept'));
    hold = true;
    const pending = [spool.commit(request('x1')), spool.commit(request('x2'))];
    fs.rmSync(dir, { recursive: true, force: true });
    release!();
    const results = await Promise.allSettled(pending);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as SmtpError).reply.code).toBe(451);
    }
  });
});
