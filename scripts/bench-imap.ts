/**
 * Benchmark of the readers (issue 13) against dist/mailbox serve on loopback:
 * 1. One INBOX of 10,000 messages (about 1 KB each, 1 in 100 holding the word searched for),
 *    Python's imaplib over one connection; each command runs 5 times and the figure is the median
 *    of runs 2-5: SELECT; UID FETCH 1:* (UID FLAGS ENVELOPE RFC822.SIZE); UID SEARCH TEXT word;
 *    FETCH 1:* (BODY.PEEK[]); and POP3 (poplib) RETR of every message in one session.
 * 2. Memory: 1,000 logins, each with a 100-message INBOX (100 messages to 1,000 recipients),
 *    each selected once (so the logins' state exists), then serve's RSS idle; then 1,000
 *    concurrent sessions over plain TCP, one per login, each in IDLE; RSS again. Target: ≤ 50 MB
 *    above idle. A last message to every login checks that each idling session hears EXISTS.
 * Usage: bash scripts/bun scripts/bench-imap.ts [messages=10000] [sessions=1000]
 * Build first: bash scripts/bun scripts/build.ts
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MESSAGES = Number(process.argv[2] ?? 10_000);
const SESSIONS = Number(process.argv[3] ?? 1_000);
const PYTHON = process.env.SYSTEM_PYTHON ?? '/usr/bin/python3';
const BIN = join(import.meta.dir, '..', 'dist', 'mailbox');

interface Serve {
  readonly proc: ReturnType<typeof Bun.spawn>;
  readonly smtp: number;
  readonly imap: number;
  readonly pop3: number;
}

async function startServe(dataDir: string): Promise<Serve> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run bash scripts/bun scripts/build.ts first`);
  const proc = Bun.spawn(
    ['bash', '-c', 'ulimit -n 8192 2>/dev/null; exec "$@"', 'serve', BIN, 'serve', '--listen', '127.0.0.1:0', '--imap', '127.0.0.1:0', '--pop3', '127.0.0.1:0', '--http', 'off', '--data', dataDir, '--log', 'json', '--max-connections-per-ip', String(SESSIONS + 100)],
    { stdout: 'pipe', stderr: 'pipe' },
  );
  // The log goes to stderr.
  const reader = proc.stderr.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited: ${text}`);
    text += new TextDecoder().decode(value);
    const line = text.split('\n').find((l) => l.includes('"event":"listening"'));
    if (line) {
      const listening = JSON.parse(line) as Record<string, string[]>;
      const port = (a: string[] | undefined) => Number(a![0].split(':').at(-1));
      // Keep draining the log so serve never blocks on a full pipe.
      void (async () => {
        for (;;) if ((await reader.read()).done) return;
      })();
      void new Response(proc.stdout).text();
      return { proc, smtp: port(listening.smtp), imap: port(listening.imap), pop3: port(listening.pop3) };
    }
  }
}

async function python(code: string, args: (string | number)[]): Promise<any> {
  const proc = Bun.spawn([PYTHON, '-c', code, ...args.map(String)], { stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code_] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code_ !== 0) throw new Error(`python exited ${code_}: ${err}`);
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** Sends `count` messages to the recipients over 4 SMTP connections at once. */
const FILL = `import smtplib, sys, json, threading, random
port, count, rcpts = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
rng = random.Random(13)
words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima']
def body(i):
    text = ' '.join(rng.choice(words) for _ in range(150))
    if i % 100 == 7:
        text += ' needleword'
    return f'From: Shop <shop@sender.test>\\r\\nTo: customer@x.test\\r\\nSubject: order {i} {rng.choice(words)}\\r\\nDate: Tue, 01 Dec 2026 10:00:00 +0000\\r\\nMessage-ID: <m{i}@sender.test>\\r\\n\\r\\n{text}\\r\\n'
bodies = [body(i) for i in range(count)]
def worker(k):
    s = smtplib.SMTP('127.0.0.1', port, timeout=60)
    for i in range(k, count, 4):
        s.sendmail('shop@sender.test', rcpts, bodies[i])
    s.quit()
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({'sent': count}))`;

const COMMANDS = `import imaplib, poplib, json, sys, time, statistics
I, P = int(sys.argv[1]), int(sys.argv[2])
m = imaplib.IMAP4('127.0.0.1', I, timeout=600)
m.login('bench@x.test', 'any')
def timed(fn):
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - t) * 1000)
    return {'median_ms': round(statistics.median(runs[1:]), 1), 'runs_ms': [round(r, 1) for r in runs], 'result': result}
out = {}
out['SELECT'] = timed(lambda: m.select('INBOX')[1][0].decode())
out['UID FETCH 1:* (UID FLAGS ENVELOPE RFC822.SIZE)'] = timed(lambda: len(m.uid('FETCH', '1:*', '(UID FLAGS ENVELOPE RFC822.SIZE)')[1]))
out['UID SEARCH TEXT needleword'] = timed(lambda: len(m.uid('SEARCH', 'TEXT', 'needleword')[1][0].split()))
out['FETCH 1:* (BODY.PEEK[])'] = timed(lambda: sum(len(x[1]) for x in m.fetch('1:*', '(BODY.PEEK[])')[1] if isinstance(x, tuple)))
m.logout()
def retr_all():
    p = poplib.POP3('127.0.0.1', P, timeout=600)
    p.user('bench@x.test')
    p.pass_('any')
    n = p.stat()[0]
    total = 0
    for i in range(1, n + 1):
        total += sum(len(l) + 2 for l in p.retr(i)[1])
    p.quit()
    return total
out['POP3 RETR of every message'] = timed(retr_all)
print(json.dumps(out))`;

/** Each login selects its INBOX once, over a few connections, so the logins' state exists. */
const WARM = `import imaplib, json, sys, threading
I, n = int(sys.argv[1]), int(sys.argv[2])
def worker(k):
    for i in range(k, n, 8):
        m = imaplib.IMAP4('127.0.0.1', I, timeout=120)
        m.login(f'user{i}@x.test', 'any')
        m.select('INBOX')
        m.logout()
threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps({'warmed': n}))`;

/** Opens n sessions (user{i}@x.test), each LOGIN, SELECT, IDLE; says when all idle; then waits for EXISTS on each. */
const IDLERS = `import asyncio, json, sys, resource
I, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def session(i, idle_ready, pushed):
    r, w = await asyncio.open_connection('127.0.0.1', I, limit=1 << 20)
    await r.readline()
    w.write(f'a LOGIN user{i}@x.test any\\r\\nb SELECT INBOX\\r\\nc IDLE\\r\\n'.encode())
    exists = None
    while True:
        line = (await r.readline()).decode()
        if line.endswith('EXISTS\\r\\n') and exists is None:
            exists = int(line.split()[1])
        if line.startswith('+'):
            break
    idle_ready.append(exists)
    while True:
        line = (await r.readline()).decode()
        if not line or line.endswith('EXISTS\\r\\n'):
            break
    pushed.append(line.strip())
    w.write(b'DONE\\r\\nd LOGOUT\\r\\n')
    await w.drain()
    w.close()
async def main():
    idle_ready, pushed = [], []
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(session(i, idle_ready, pushed)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while len(idle_ready) < n:
        await asyncio.sleep(0.05)
    print(json.dumps({'idle': len(idle_ready), 'exists': sorted(set(idle_ready))}), flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({'pushed': len(pushed), 'sample': pushed[:1]}), flush=True)
asyncio.run(main())`;

const dir = mkdtempSync(join(tmpdir(), 'bench-imap-'));
const serves: Serve[] = [];
try {
  console.log(`bench:imap — ${MESSAGES} messages in one INBOX, imaplib over one connection; median of runs 2-5`);
  const one = await startServe(join(dir, 'one'));
  serves.push(one);
  let t = performance.now();
  await python(FILL, [one.smtp, MESSAGES, JSON.stringify(['bench@x.test'])]);
  console.log(`  filled in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const figures = await python(COMMANDS, [one.imap, one.pop3]);
  for (const [name, f] of Object.entries(figures) as [string, { median_ms: number; runs_ms: number[]; result: unknown }][]) {
    console.log(`  ${name.padEnd(48)} ${String(f.median_ms).padStart(9)} ms   runs ${f.runs_ms.join(' / ')}   (${JSON.stringify(f.result)})`);
  }
  console.log(`  serve RSS after the commands: ${rssMb(one.proc.pid).toFixed(1)} MB`);
  one.proc.kill();
  await one.proc.exited;

  console.log(`memory — ${SESSIONS} concurrent IDLE sessions over plain TCP, each on its own 100-message INBOX`);
  const many = await startServe(join(dir, 'many'));
  serves.push(many);
  const recipients = Array.from({ length: SESSIONS }, (_, i) => `user${i}@x.test`);
  t = performance.now();
  await python(FILL, [many.smtp, 100, JSON.stringify(recipients)]);
  await python(WARM, [many.imap, SESSIONS]);
  console.log(`  filled and every login selected once in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  Bun.gc(true);
  await Bun.sleep(2000);
  const idle = rssMb(many.proc.pid);
  const idlers = Bun.spawn([PYTHON, '-c', IDLERS, String(many.imap), String(SESSIONS)], { stdout: 'pipe', stderr: 'pipe' });
  const reader = idlers.stdout.getReader();
  let out = '';
  while (!out.includes('\n')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the idling client exited: ${await new Response(idlers.stderr).text()}`);
    out += new TextDecoder().decode(value);
  }
  const ready = JSON.parse(out.split('\n')[0]!);
  await Bun.sleep(2000);
  const loaded = rssMb(many.proc.pid);
  console.log(`  ${ready.idle} sessions idling (EXISTS seen at SELECT: ${ready.exists.join(',')})`);
  console.log(`  serve RSS idle ${idle.toFixed(1)} MB, with the sessions ${loaded.toFixed(1)} MB: +${(loaded - idle).toFixed(1)} MB (target ≤ 50 MB), ${(((loaded - idle) * 1024) / SESSIONS).toFixed(1)} KB per session`);
  t = performance.now();
  await python(FILL, [many.smtp, 1, JSON.stringify(recipients)]);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  const pushed = JSON.parse(out.trim().split('\n').at(-1)!);
  console.log(`  one more message to all ${SESSIONS}: ${pushed.pushed} sessions heard ${pushed.sample[0]} within ${((performance.now() - t) / 1000).toFixed(2)} s of the send starting`);
  await idlers.exited;
} finally {
  for (const s of serves) {
    s.proc.kill();
    await s.proc.exited;
  }
  rmSync(dir, { recursive: true, force: true });
}
