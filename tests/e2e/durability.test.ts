// DESIGN.md storage contract: a 250 reply to DATA means the message is on disk. Several clients
// send concurrently while the server is killed with SIGKILL at random moments and restarted on
// the same data directory; every message that got a 250 must be in the spool exactly once, and
// nothing partial may be.
import { expect, test } from 'bun:test';
import { openSpool } from '../../src/spool/spool.ts';
import { chooser, seededRandom, seedFromEnv } from '../helpers/seeded-random.ts';
import { cleanupServesAfterAll, makeTempDir, smtpDialogue, startServe, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const CLIENTS = 6;
const ROUNDS = 5;

function body(tag: string): string {
  return `Subject: ${tag}\r\nX-Tag: ${tag}\r\n\r\n${`payload for ${tag}\r\n`.repeat(20)}.dot line ${tag}\r\n`.replace(/^\./gm, '..');
}

test('messages acknowledged before SIGKILL survive restarts, exactly once and whole', async () => {
  // The kill moments come from this seed (printed; DURABILITY_SEED replays them).
  const r = chooser(seededRandom(seedFromEnv('DURABILITY_SEED', 'durability test')));
  const data = await makeTempDir('mailbox-durability-');
  const acked = new Map<string, string>();
  let attempts = 0;
  let server: ServeHandle = await startServe({ dataDir: data.path });

  for (let round = 0; round < ROUNDS; round++) {
    let stop = false;
    const current = server;
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        const tag = `r${round}-c${c}-m${i}`;
        attempts++;
        const d = await smtpDialogue(
          current.host,
          current.port,
          [
            { send: `EHLO c${c}.test\r\nMAIL FROM:<c${c}@client.test>\r\nRCPT TO:<box${c}@mailbox.test>\r\nDATA\r\n`, replies: 4 },
            { send: `${body(tag)}.\r\n`, replies: 1 },
          ],
          { replyTimeoutMs: 3000 },
        ).catch(() => null);
        const reply = d?.replies[1];
        const id = reply ? /^250 2\.0\.0 OK queued as (\S+)/.exec(reply)?.[1] : undefined;
        if (id) acked.set(id, tag);
        if (!d || d.closed) await Bun.sleep(5);
      }
    };
    const running = Array.from({ length: CLIENTS }, (_, c) => client(c));
    await Bun.sleep(r.int(300, 999));
    await current.kill9();
    stop = true;
    await Promise.all(running);
    server = await startServe({ dataDir: data.path });
  }
  expect((await server.stop()).exitCode).toBe(0);

  const spool = await openSpool({ dir: data.path, hostname: 'test', now: Date.now, log: { info() {}, warn() {}, error() {} } });
  try {
    expect(spool.recovery.damaged).toEqual([]);
    const seen = new Map<string, number>();
    for (const info of spool.list()) seen.set(info.id, (seen.get(info.id) ?? 0) + 1);
    expect(acked.size).toBeGreaterThan(ROUNDS * CLIENTS);
    for (const [id, tag] of acked) {
      expect({ id, count: seen.get(id) ?? 0 }).toEqual({ id, count: 1 });
      const text = new TextDecoder().decode(await spool.readMessage(id));
      expect(text).toContain(`\r\nX-Tag: ${tag}\r\n`);
      expect(text.endsWith(`.dot line ${tag}\r\n`)).toBe(true);
    }
    // Every record in the spool is whole: its checksum held, so it reads back with its tag.
    for (const info of spool.list()) {
      const text = new TextDecoder().decode(await spool.readMessage(info.id));
      expect(text).toMatch(/\r\nX-Tag: (r\d+-c\d+-m\d+)\r\n[\s\S]*\.dot line \1\r\n$/);
    }
    console.log(`durability: ${attempts} attempts, ${acked.size} acknowledged, ${seen.size} in the spool after ${ROUNDS} kills`);
  } finally {
    await spool.close();
    await server.cleanup();
    await data.remove();
  }
}, 120_000);
