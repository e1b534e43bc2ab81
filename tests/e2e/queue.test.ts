// `mailbox queue` against a stopped serve (it works on the spool under its lock) and a running one
// (over the control socket), and the sendmail link while serve is down: the message is committed
// straight into the spool and serve has it at its next start.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dotStuff } from '../../src/core/data.ts';
import { reply } from '../../src/core/reply.ts';
import { openSpool } from '../../src/spool/spool.ts';
import { envelope, memoryLog, messageFor } from '../spool/fixtures/messages.ts';
import { requirePeers } from '../helpers/capabilities.ts';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runCommand, startServe, type TempDir } from './harness.ts';

cleanupServesAfterAll();
let tmp: TempDir;
let conf: string;
let data: string;
const HOUR = 3_600_000;

beforeAll(async () => {
  tmp = await makeTempDir('mailbox-queue-');
  data = join(tmp.path, 'data');
  conf = join(tmp.path, 'mailbox.conf');
  writeFileSync(conf, `data ${data}\nhostname mx.queue.test\nbounce-size-limit 64K\n`);
  // Mail to relay, as serve --relay would have queued it: committed to the spool while serve is stopped.
  const spool = await openSpool({ dir: data, hostname: 'mx.queue.test', now: Date.now, log: memoryLog() });
  const relayed = (id: string, timeMs: number) => ({
    id,
    timeMs,
    envelope: envelope('alice@client.test', ['bob@far.test', 'carol@near.test', 'me@mx.queue.test']),
    stuffed: dotStuff(messageFor(id)),
    localRecipients: [false, false, true],
  });
  const now = Date.now();
  await spool.commit(relayed('qpending', now - 2 * HOUR));
  await spool.commit(relayed('qdeferred', now - HOUR));
  const greylisted = { kind: 'deferred' as const, attempts: 2, nextAttemptMs: now + HOUR, lastReply: reply(451, '4.7.1', 'Greylisted, try again later') };
  await spool.setState('qdeferred', 0, greylisted);
  await spool.setState('qdeferred', 1, greylisted);
  await spool.close();
});
afterAll(() => tmp.remove());

const queue = (args: string[], env: Record<string, string> = {}) => runCommand([MAILBOX_BIN, 'queue', ...args, '--config', conf], { env });
const json = async (args: string[]) => {
  const r = await queue([...args, '--json']);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(r.stdout);
};
type Entry = { id: string; recipients: { address: string; state: string; reply?: string; attempts?: number; nextAttemptMs?: number }[]; nextAttemptMs: number | null; lastReply: string | null };

describe('serve stopped: on the spool, under its lock', () => {
  test('list shows each message, its recipients\' states, the next attempt and the last reply', async () => {
    const entries = (await json(['list'])) as Entry[];
    expect(entries.map((e) => e.id)).toEqual(['qpending', 'qdeferred']);
    const deferred = entries[1];
    expect(deferred.recipients.map((r) => [r.address, r.state, r.attempts])).toEqual([
      ['bob@far.test', 'deferred', 2],
      ['carol@near.test', 'deferred', 2],
      ['me@mx.queue.test', 'local', undefined],
    ]);
    expect(deferred.lastReply).toBe('451 4.7.1 Greylisted, try again later');
    expect(deferred.nextAttemptMs).toBeGreaterThan(Date.now());
    const human = await queue(['list']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('bob@far.test  deferred (2 attempts), next in');
    expect(human.stdout).toContain('451 4.7.1 Greylisted, try again later');
    expect(human.stdout).toContain('2 messages, 4 recipients queued');
  });

  test('show prints the states and the header; --raw the stored message byte for byte', async () => {
    const shown = await queue(['show', 'qpending']);
    expect(shown.stdout).toContain('from <alice@client.test>');
    expect(shown.stdout).toContain('Subject: qpending');
    const raw = await runCommand([MAILBOX_BIN, 'queue', 'show', 'qpending', '--raw', '--config', conf]);
    expect(raw.stdout).toBe(new TextDecoder().decode(messageFor('qpending')));
  });

  test('hold, retry and release are durable; errors are one line with a sysexits code', async () => {
    const held = await queue(['hold', 'qpending']);
    expect([held.code, held.stdout]).toEqual([0, 'qpending: 2 recipients held\n1 message held\n']);
    const states = (await json(['list'])) as Entry[];
    expect(states[0].recipients.map((r) => r.state)).toEqual(['held', 'held', 'local']);
    const retried = await queue(['retry', '--domain', 'far.test']);
    expect(retried.stdout).toContain('qdeferred: 2 recipients due now');
    const after = ((await json(['list'])) as Entry[])[1];
    expect(after.nextAttemptMs).toBeLessThanOrEqual(Date.now());
    const missing = await queue(['delete', 'nosuchid']);
    expect([missing.code, missing.stderr]).toEqual([1, 'mailbox queue: no message nosuchid in the queue\n']);
    const usage = await queue(['retry']);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toMatch(/^mailbox: retry needs message ids, --domain DOMAIN or --all/);
    const wrong = await queue(['list', '--raw']);
    expect([wrong.code, wrong.stderr.split('\n').length]).toEqual([64, 2]);
  });

  test('the sendmail link commits straight into the spool while serve is down', async () => {
    requirePeers('python3');
    const link = join(tmp.path, 'sendmail');
    if (!existsSync(link)) symlinkSync(MAILBOX_BIN, link);
    const r = await runCommand([link, '-i', '-f', 'cron@mx.queue.test', 'root@mx.queue.test'], {
      stdin: 'Subject: cron: backup\nFrom: Cron Daemon <cron@mx.queue.test>\n\nbackup done\n',
      env: { MAILBOX_CONFIG: conf, MAILBOX_SERVER: '' },
    });
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: '', stderr: '' });
    const local = (await json(['list', '--local', '--to', 'root@mx.queue.test'])) as { subject: string; sender: string }[];
    expect(local.map((m) => [m.sender, m.subject])).toEqual([['cron@mx.queue.test', 'cron: backup']]);
  });
});

describe('serve running: over the control socket', () => {
  test('serve answers while it holds the spool; the socket is the owner\'s alone', async () => {
    const serve = await startServe({ dataDir: data, args: ['--config', conf] });
    try {
      const socket = join(data, 'control.sock');
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      // The cron message committed while serve was down is there now.
      const local = (await json(['list', '--local'])) as { subject: string }[];
      expect(local.map((m) => m.subject)).toContain('cron: backup');
      // A second sendmail goes through the running serve. Without -f or From, the sender is the
      // user at the config file's hostname, not at this machine's name.
      const r = await runCommand([join(tmp.path, 'sendmail'), '-i', 'ops@mx.queue.test'], { stdin: 'Subject: while running\n\nhello\n', env: { MAILBOX_CONFIG: conf, MAILBOX_SERVER: '', USER: 'backup' } });
      expect(r.code).toBe(0);
      const running = (await json(['list', '--local', '--to', 'ops@mx.queue.test'])) as { subject: string; sender: string; id: string }[];
      expect(running.map((m) => [m.sender, m.subject])).toEqual([['backup@mx.queue.test', 'while running']]);
      const header = await runCommand([MAILBOX_BIN, 'queue', 'show', running[0].id, '--raw', '--config', conf]);
      expect(header.stdout).toMatch(/^From: backup@mx\.queue\.test\r$/m);

      const released = await queue(['release', 'qpending']);
      expect(released.stdout).toBe('qpending: 2 recipients released\n1 message released\n');
      expect(((await json(['list'])) as Entry[])[0].recipients.map((r) => r.state)).toEqual(['pending', 'pending', 'local']);

      // bounce: the recipients are bounced and the sender (local here: catch-all) gets the report.
      const bounced = await queue(['bounce', 'qdeferred']);
      expect(bounced.stdout).toBe('qdeferred: 2 recipients bounced\n1 message bounced\n');
      const reports = (await json(['list', '--local', '--to', 'alice@client.test'])) as { id: string; sender: string; subject: string }[];
      expect(reports.map((m) => [m.sender, m.subject])).toEqual([['<>', 'Undelivered Mail Returned to Sender']]);
      const raw = await runCommand([MAILBOX_BIN, 'queue', 'show', reports[0].id, '--raw', '--config', conf]);
      const parsed = await runCommand(['python3', join(import.meta.dir, '..', 'helpers', 'dsn-report.py')], { stdin: JSON.stringify([Buffer.from(raw.stdout).toString('base64')]) });
      const [report] = JSON.parse(parsed.stdout);
      expect([report.type, report.reportType, report.parts]).toEqual(['multipart/report', 'delivery-status', ['text/plain', 'message/delivery-status', 'text/rfc822-headers']]);
      expect(report.recipients.map((x: Record<string, string>) => [x['Final-Recipient'], x.Action, x.Status, x['Diagnostic-Code']])).toEqual([
        ['rfc822; bob@far.test', 'failed', '5.0.0', 'X-mailbox; 550 5.0.0 delivery given up by the operator; the last attempt got: 451 4.7.1 Greylisted, try again later'],
        ['rfc822; carol@near.test', 'failed', '5.0.0', 'X-mailbox; 550 5.0.0 delivery given up by the operator; the last attempt got: 451 4.7.1 Greylisted, try again later'],
      ]);
      expect((await json(['list'])).map((e: Entry) => e.id)).toEqual(['qpending']);
      expect((await queue(['delete', '--all'])).stdout).toBe('qpending: 2 recipients deleted\n1 message deleted\n');
      expect((await queue(['list'])).stdout).toBe('The queue is empty.\n');
    } finally {
      await serve.stop();
    }
  });
});

describe('the sendmail link and the relay', () => {
  test('mail for another domain handed to the link while serve is down is relayed once serve starts', async () => {
    const sink = await startServe();
    const dir = await makeTempDir('mailbox-queue-relay-');
    try {
      const relayConf = join(dir.path, 'mailbox.conf');
      writeFileSync(relayConf, `data ${join(dir.path, 'data')}\nhostname mx.relay.test\ndomain mx.relay.test\nrelay smtp://127.0.0.1:${sink.port}?tls=insecure\n`);
      const link = join(dir.path, 'sendmail');
      symlinkSync(MAILBOX_BIN, link);
      const r = await runCommand([link, '-i', '-f', 'cron@mx.relay.test', 'ops@far.test'], { stdin: 'Subject: relayed cron\n\nnightly\n', env: { MAILBOX_CONFIG: relayConf, MAILBOX_SERVER: '' } });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const queued = await runCommand([MAILBOX_BIN, 'queue', 'list', '--json', '--config', relayConf]);
      expect((JSON.parse(queued.stdout) as Entry[]).map((e) => e.recipients.map((x) => [x.address, x.state]))).toEqual([[['ops@far.test', 'pending']]]);
      const relay = await startServe({ dataDir: join(dir.path, 'data'), args: ['--config', relayConf] });
      try {
        const deadline = Date.now() + 30_000;
        let arrived: { subject: string }[] = [];
        while (arrived.length === 0 && Date.now() < deadline) {
          const listed = await runCommand([MAILBOX_BIN, 'queue', 'list', '--local', '--json', '--data', sink.dataDir]);
          arrived = JSON.parse(listed.stdout || '[]');
          if (arrived.length === 0) await Bun.sleep(100);
        }
        expect(arrived.map((m) => m.subject)).toEqual(['relayed cron']);
      } finally {
        await relay.stop();
      }
    } finally {
      await sink.stop();
      await dir.remove();
    }
  }, 60_000);
});
