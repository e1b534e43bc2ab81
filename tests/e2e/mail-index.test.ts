// The mail index of dist/mailbox serve: ingested by its Worker (an entry point of the compiled
// --bytecode binary, run away from the sources so that it cannot load them), derived and rebuildable. kill -9 while clients send, then restart: the
// index agrees with the spool. Delete the database and restart: it is rebuilt and agrees, read
// state and tags included. The index file is read here with bun:sqlite while serve runs (WAL).
import { expect, test } from 'bun:test';
import { Database } from 'bun:sqlite';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CATCHER_MAILBOX } from '../../src/spool/mailbox-state.ts';
import { openSpool } from '../../src/spool/spool.ts';
import { cleanupServesAfterAll, makeTempDir, MAILBOX_BIN, runCommand, smtpDialogue, startServe, waitForLog, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const quiet = { info() {}, warn() {}, error() {} };

/** Ids and (read, tags) of every message in the index file, by id. */
function indexed(dataDir: string): Map<string, string> {
  const db = new Database(join(dataDir, 'index.db'), { readonly: true });
  try {
    const rows = db.query("SELECT m.id, m.read, coalesce((SELECT group_concat(tag, ',') FROM (SELECT tag FROM tags t WHERE t.seq = m.seq ORDER BY tag)), '') AS tags FROM messages m").all() as { id: string; read: number; tags: string }[];
    return new Map(rows.map((r) => [r.id, `${r.read}|${r.tags}`]));
  } finally {
    db.close();
  }
}

/** The same view from the spool and journal: local messages and their catcher state. */
async function fromSpool(dataDir: string): Promise<Map<string, string>> {
  const spool = await openSpool({ dir: dataDir, hostname: 'test', now: Date.now, log: quiet });
  try {
    const out = new Map<string, string>();
    for (const m of spool.localMessages(null, 1_000_000, CATCHER_MAILBOX)) out.set(m.id, `${m.state?.read === true ? 1 : 0}|${(m.state?.tags ?? []).join(',')}`);
    return out;
  } finally {
    await spool.close();
  }
}

async function send(server: ServeHandle, tag: string): Promise<string | undefined> {
  const d = await smtpDialogue(
    server.host,
    server.port,
    [
      { send: `EHLO c.test\r\nMAIL FROM:<c@client.test>\r\nRCPT TO:<box@mailbox.test>\r\nDATA\r\n`, replies: 4 },
      { send: `Subject: ${tag}\r\nFrom: c@client.test\r\n\r\nbody of ${tag}\r\n.\r\n`, replies: 1 },
    ],
    { replyTimeoutMs: 3000 },
  ).catch(() => null);
  const reply = d?.replies[1];
  return reply ? /^250 2\.0\.0 OK queued as (\S+)/.exec(reply)?.[1] : undefined;
}

/** The index once it holds `count` messages; serve opens it just after its listeners, so it may not exist yet. */
async function waitIndexed(dataDir: string, count: number): Promise<Map<string, string>> {
  const deadline = Date.now() + 30_000;
  const read = () => {
    try {
      return indexed(dataDir);
    } catch {
      return new Map<string, string>();
    }
  };
  let seen = read();
  while (seen.size < count && Date.now() < deadline) {
    await Bun.sleep(50);
    seen = read();
  }
  return seen;
}

test('kill -9 during ingest, then restart: the index agrees with the spool; a deleted database is rebuilt with read state and tags', async () => {
  const data = await makeTempDir('mailbox-index-');
  let server = await startServe({ dataDir: data.path, cwd: data.path });
  const first = await send(server, 'first');
  expect(first).toBeDefined();
  expect([...(await waitIndexed(data.path, 1)).keys()]).toEqual([first!]);
  expect(fs.statSync(join(data.path, 'index.db')).mode & 0o777).toBe(0o600);

  // Four clients send; the kill lands while the Worker is ingesting their group commits.
  let stop = false;
  const acked: string[] = [];
  const client = async (c: number) => {
    for (let i = 0; !stop; i++) {
      const id = await send(server, `c${c}-${i}`);
      if (id) acked.push(id);
    }
  };
  const running = [0, 1, 2, 3].map(client);
  await Bun.sleep(700);
  await server.kill9();
  stop = true;
  await Promise.all(running);

  server = await startServe({ dataDir: data.path, cwd: data.path });
  await waitForLog(server, /index-ready|index-rebuilt/);
  expect(server.logs()).not.toContain('index-rebuild ');
  expect((await server.stop()).exitCode).toBe(0);
  const expected = await fromSpool(data.path);
  for (const id of acked) expect(expected.has(id)).toBe(true);
  expect(indexed(data.path)).toEqual(expected);

  // Read state and tags, journalled as serve's changes are; then the database goes.
  const spool = await openSpool({ dir: data.path, hostname: 'test', now: Date.now, log: quiet });
  const ids = [...expected.keys()];
  await spool.setMailboxState([
    { id: ids[0], mailbox: CATCHER_MAILBOX, flags: { read: true, tags: ['alpha', 'beta'] } },
    { id: ids[1], mailbox: CATCHER_MAILBOX, flags: { read: true, tags: [] } },
  ]);
  await spool.deleteLocal([ids[2]]);
  await spool.close();
  for (const name of ['index.db', 'index.db-wal', 'index.db-shm']) fs.rmSync(join(data.path, name), { force: true });
  const wanted = await fromSpool(data.path);
  expect(wanted.get(ids[0])).toBe('1|alpha,beta');
  expect(wanted.has(ids[2])).toBe(false);

  server = await startServe({ dataDir: data.path, cwd: data.path });
  await waitForLog(server, 'index-rebuilt');
  expect(server.logs()).toContain('reason="new index file or schema version"');
  expect(indexed(data.path)).toEqual(wanted);
  expect((await server.stop()).exitCode).toBe(0);
  await data.remove();
}, 120_000);

test('mailbox reindex: rebuilds from the spool and journal, refuses while serve holds the spool, and has --help', async () => {
  const data = await makeTempDir('mailbox-reindex-');
  const server = await startServe({ dataDir: data.path, cwd: data.path });
  for (let i = 0; i < 5; i++) expect(await send(server, `m${i}`)).toBeDefined();
  await waitIndexed(data.path, 5);
  const busy = await runCommand([MAILBOX_BIN, 'reindex', '--data', data.path], { cwd: data.path });
  expect(busy.code).toBe(75);
  expect(busy.stderr).toContain('stop serve, then run reindex again');
  expect((await server.stop()).exitCode).toBe(0);
  const before = indexed(data.path);

  const spool = await openSpool({ dir: data.path, hostname: 'test', now: Date.now, log: quiet });
  const id = [...before.keys()][0];
  await spool.setMailboxState([{ id, mailbox: CATCHER_MAILBOX, flags: { read: true, tags: ['kept'] } }]);
  await spool.close();
  const run = await runCommand([MAILBOX_BIN, 'reindex', '--data', data.path], { cwd: data.path });
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(run.stdout).toMatch(/^reindexed 5 messages \(4 unread\) in \d+\.\d s: .*index\.db\n$/);
  expect(indexed(data.path)).toEqual(new Map([...before].map(([k, v]) => [k, k === id ? '1|kept' : v])));

  const help = await runCommand([MAILBOX_BIN, 'reindex', '--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('--data <dir>');
  await data.remove();
}, 60_000);

test('--max-messages: retention deletes the oldest local messages through the journal and the index', async () => {
  const data = await makeTempDir('mailbox-retention-');
  let server = await startServe({ dataDir: data.path, cwd: data.path });
  const sent: string[] = [];
  for (let i = 0; i < 4; i++) sent.push((await send(server, `m${i}`))!);
  await waitIndexed(data.path, 4);
  expect((await server.stop()).exitCode).toBe(0);
  server = await startServe({ dataDir: data.path, cwd: data.path, args: ['--max-messages', '2'] });
  expect(await waitForLog(server, 'retention-deleted')).toMatch(/retention-deleted messages=2/);
  expect(new Set(indexed(data.path).keys())).toEqual(new Set(sent.slice(2)));
  expect((await server.stop()).exitCode).toBe(0);
  expect(new Set((await fromSpool(data.path)).keys())).toEqual(new Set(sent.slice(2)));
  await data.remove();
}, 60_000);

test('the SMTP session of a message: client address and HELO name in its record, replayable by mailbox replay', async () => {
  const data = await makeTempDir('mailbox-session-');
  const server = await startServe({ dataDir: data.path, cwd: data.path });
  const id = (await send(server, 'session'))!;
  await waitIndexed(data.path, 1);
  expect((await server.stop()).exitCode).toBe(0);
  const spool = await openSpool({ dir: data.path, hostname: 'test', now: Date.now, log: quiet });
  const session = (await spool.session(id))!;
  await spool.close();
  expect({ client: session.clientAddress, helo: session.heloName, tls: session.tls, auth: session.envelope.authUser }).toEqual({ client: '127.0.0.1', helo: 'c.test', tls: null, auth: null });
  const file = join(data.path, 'session.smtp');
  fs.writeFileSync(file, session.replayable);

  const other = await startServe();
  const replay = await runCommand([MAILBOX_BIN, 'replay', file, '--server', `${other.host}:${other.port}`, '--expect', '250']);
  expect(replay.code).toBe(0);
  expect((await other.stop()).exitCode).toBe(0);
  const copy = await openSpool({ dir: other.dataDir, hostname: 'test', now: Date.now, log: quiet });
  const [replayed] = copy.localMessages(null, 10, CATCHER_MAILBOX);
  const bytes = Buffer.from(await copy.readMessage(replayed.id)).toString();
  await copy.close();
  expect(bytes).toContain('Subject: session\r\nFrom: c@client.test\r\n\r\nbody of session\r\n');
  await other.cleanup();
  await data.remove();
}, 60_000);
