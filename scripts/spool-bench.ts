/**
 * Measures durable spool commits per second at several concurrencies (group commit at work).
 * Usage: bash scripts/bun scripts/spool-bench.ts [--seconds 3] [--size 1024] [--dir /path] [1 10 50 ...]
 * Each "session" commits one message after another; every commit waits for its fdatasync batch.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dotStuff } from '../src/core/data.ts';
import type { Envelope } from '../src/core/envelope.ts';
import { openSpool } from '../src/spool/spool.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const [value] = args.splice(at, 2).slice(1);
  return value;
};
const seconds = Number(option('--seconds', '3'));
const size = Number(option('--size', '1024'));
const baseDir = option('--dir', os.tmpdir());
const levels = args.length > 0 ? args.map(Number) : [1, 10, 50];

const quiet = { info() {}, warn() {}, error: (m: string, f?: unknown) => console.error(m, f) };
const envelope: Envelope = {
  sender: { local: 'bench', domain: 'client.example' },
  mailParams: [{ name: 'SIZE', value: String(size) }],
  recipients: [{ mailbox: { local: 'sink', domain: 'server.example' }, params: [], local: true }],
  utf8: false,
  body: '7BIT',
  declaredSize: size,
  authUser: null,
};
const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
const text = `Received: from bench by mailbox\r\nSubject: bench\r\n\r\n${line.repeat(Math.ceil(size / line.length))}`.slice(0, size);
const stuffed = dotStuff(Buffer.from(text));

for (const concurrency of levels) {
  const dir = fs.mkdtempSync(path.join(baseDir, 'spool-bench-'));
  const spool = await openSpool({ dir, hostname: 'bench.example', now: Date.now, log: quiet });
  let n = 0;
  let stop = false;
  const session = async (s: number) => {
    for (let i = 0; !stop; i++) {
      await spool.commit({ id: `s${s}-${i}`, timeMs: Date.now(), envelope, stuffed });
      n++;
    }
  };
  const t0 = performance.now();
  const timer = setTimeout(() => (stop = true), seconds * 1000);
  await Promise.all(Array.from({ length: concurrency }, (_, s) => session(s)));
  clearTimeout(timer);
  const elapsed = (performance.now() - t0) / 1000;
  const { syncBatches } = spool.stats();
  await spool.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(
    `concurrency ${String(concurrency).padStart(3)}: ${Math.round(n / elapsed).toLocaleString('en').padStart(8)} commits/s, ` +
      `${syncBatches} fdatasync batches, ${(n / syncBatches).toFixed(1)} commits/batch`,
  );
}
