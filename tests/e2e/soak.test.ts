// The soak (scripts/soak.ts) for one minute, as npm test runs it: mixed load against dist/mailbox
// serve while it is SIGKILLed every ~15 s and restarted on the same spool; then every acknowledged
// message must be in the spool whole, with duplicates only of messages whose 250 a kill swallowed.
// `npm run soak -- --minutes 30` is the long version (with the million-case server-core fuzz).
import { expect, test } from 'bun:test';
import { join } from 'node:path';
import { REPO_ROOT } from './harness.ts';

test('one minute of mixed load with SIGKILLs loses nothing acknowledged', async () => {
  const proc = Bun.spawn(
    [process.execPath, join(REPO_ROOT, 'scripts/soak.ts'), '--minutes', '1', '--kill-every', '15', '--clients', '3', '--fuzz-cases', '0', '--client-fuzz-cases', '0'],
    { cwd: REPO_ROOT, stdout: 'pipe', stderr: 'pipe' },
  );
  // A run that overstays is stopped (the script then stops serve and removes its data directory).
  const guard = setTimeout(() => proc.kill('SIGTERM'), 280_000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  clearTimeout(guard);
  const line = out.split('\n').find((l) => l.startsWith('soak-result '));
  if (code !== 0 || line === undefined) console.log(out, err);
  expect(line).toBeDefined();
  const result = JSON.parse(line!.slice('soak-result '.length));
  console.log(out.split('\n').filter((l) => /seed|soak (passed|FAILED)/.test(l)).join('\n'));
  expect({ lost: result.lost, damaged: result.damaged, phantom: result.phantom, unexplainedDuplicates: result.unexplainedDuplicates, unexpected: result.unexpected, refused: result.refused, serveExit: result.serveExit })
    .toEqual({ lost: 0, damaged: 0, phantom: 0, unexplainedDuplicates: 0, unexpected: 0, refused: 0, serveExit: 0 });
  expect(result.kills).toBeGreaterThanOrEqual(2);
  expect(result.acknowledged).toBeGreaterThan(0);
  expect(Object.keys(result.scenarios).sort()).toEqual(['bdat', 'new-connection', 'pipelined', 'reused', 'starttls', 'vanish']);
  expect(code).toBe(0);
}, 300_000);
