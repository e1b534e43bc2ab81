// Issue 14 part 3 and DESIGN.md's storage contract under failure: a data directory removed while
// serve runs, a full disk, and a spool the server may not write. Each ends in 4xx replies, one
// log line, no crash, and no acknowledged message lost.
import { expect, test } from 'bun:test';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSpool } from '../../src/spool/spool.ts';
import { cleanupServesAfterAll, makeTempDir, runCommand, smtpDialogue, startServe, waitForLog, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const quietLog = { info() {}, warn() {}, error() {} };

/** A message of about `kb` KB that carries its tag in a header and on its last line. */
function body(tag: string, kb: number): string {
  const line = `${tag} `.padEnd(76, 'x');
  const lines = Math.max(1, Math.ceil((kb * 1024) / 78));
  return `Subject: ${tag}\r\nX-Tag: ${tag}\r\n\r\n${`${line}\r\n`.repeat(lines)}end of ${tag}\r\n`;
}

/** Sends one message; returns the reply to the final dot (null when none came). */
async function send(server: ServeHandle, tag: string, kb = 1): Promise<string | null> {
  const d = await smtpDialogue(server.host, server.port, [
    { send: `EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<box@mailbox.test>\r\nDATA\r\n`, replies: 4 },
    { send: `${body(tag, kb)}.\r\n`, replies: 1 },
    'QUIT\r\n',
  ]);
  return d.replies[1];
}

const queuedId = (reply: string | null) => (reply ? /^250 2\.0\.0 OK queued as (\S+)/.exec(reply)?.[1] : undefined);
const count = (text: string, needle: string) => text.split(needle).length - 1;

async function mustRun(argv: string[]): Promise<void> {
  const r = await runCommand(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
}

test('the data directory removed while serve runs: 451 4.3.0 for every later message, one log line, no crash', async () => {
  const server = await startServe();
  try {
    for (let i = 0; i < 3; i++) expect(await send(server, `before-${i}`)).toMatch(/^250 /);
    await rm(server.dataDir, { recursive: true, force: true });
    for (let i = 0; i < 5; i++) expect(await send(server, `after-${i}`)).toMatch(/^451 4\.3\.0 .*removed/);
    const logs = await waitForLog(server, 'data directory was removed');
    expect(count(logs, 'data directory was removed')).toBe(1);
    expect(server.proc.exitCode).toBeNull();
  } finally {
    await server.cleanup();
  }
}, 60_000);

test('a full disk: 452 while full, nothing acknowledged lost or torn, and mail flows again once there is room', async () => {
  const mountPoint = await mkdtemp(join(tmpdir(), 'mailbox-tmpfs-'));
  await mustRun(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'tmpfs', mountPoint]);
  let server: ServeHandle | null = null;
  try {
    const data = join(mountPoint, 'data');
    server = await startServe({ dataDir: data });
    const running = server;
    const acked = new Map<string, string>();
    let refused = 0;
    const client = async (c: number) => {
      for (let i = 0; refused < 12; i++) {
        const tag = `c${c}-m${i}`;
        const reply = await send(running, tag, 60);
        const id = queuedId(reply);
        if (id) acked.set(id, tag);
        else {
          expect(reply).toMatch(/^452 4\.3\.1 /);
          refused++;
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(client));
    expect(acked.size).toBeGreaterThan(10);
    expect(count(running.logs(), 'spool: write failed')).toBeGreaterThanOrEqual(1);

    await mustRun(['mount', '-o', 'remount,size=64m', mountPoint]);
    for (let i = 0; i < 5; i++) {
      const reply = await send(running, `room-${i}`, 60);
      const id = queuedId(reply);
      expect(id).toBeDefined();
      acked.set(id!, `room-${i}`);
    }
    expect(running.proc.exitCode).toBeNull();
    expect((await running.stop()).exitCode).toBe(0);

    const spool = await openSpool({ dir: data, hostname: 'test', now: Date.now, log: quietLog });
    try {
      expect(spool.recovery.damaged).toEqual([]);
      expect(spool.recovery.tornBytes).toBe(0);
      expect(spool.list().length).toBe(acked.size);
      for (const [id, tag] of acked) {
        const text = new TextDecoder().decode(await spool.readMessage(id));
        expect(text).toContain(`\r\nX-Tag: ${tag}\r\n`);
        expect(text.endsWith(`end of ${tag}\r\n`)).toBe(true);
      }
      console.log(`full disk: ${acked.size - 5} acknowledged before the disk filled, ${refused} refused with 452, 5 of 5 after it grew`);
    } finally {
      await spool.close();
    }
  } finally {
    await server?.cleanup();
    await runCommand(['umount', mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  }
}, 120_000);

test('a spool serve may not write (EACCES, serve unprivileged): 451 4.3.0, one log line, no crash', async () => {
  const nobody = 65534;
  const home = await makeTempDir('mailbox-eacces-');
  try {
    const data = join(home.path, 'data');
    await mkdir(data, { mode: 0o700 });
    await chown(data, nobody, nobody);
    const server = await startServe({
      dataDir: data,
      wrapper: ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'],
    });
    try {
      // Root ignores file modes; the unprivileged server does not.
      await chmod(join(data, 'segments'), 0o500);
      for (let i = 0; i < 3; i++) expect(await send(server, `denied-${i}`)).toMatch(/^451 4\.3\.0 .*not writable/);
      const logs = await waitForLog(server, 'spool: write failed');
      expect(count(logs, 'spool: write failed')).toBe(1);
      expect(logs).toContain('EACCES');
      expect(server.proc.exitCode).toBeNull();
      await chmod(join(data, 'segments'), 0o700);
      expect(await send(server, 'allowed')).toMatch(/^250 /);
    } finally {
      await server.cleanup();
    }
  } finally {
    await home.remove();
  }
}, 60_000);
