// The index inside a compiled executable: bun build --compile (the flags scripts/build.ts uses) of
// a tiny entry that opens an index, decodes a message with postal-mime and searches it with FTS5.
import { afterEach, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('postal-mime and bun:sqlite FTS5 trigram work in a --compile binary', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'index-db-compiled-'));
  dirs.push(dir);
  const entry = join(import.meta.dir, '..', 'fixtures', 'store', 'index-db-entry.ts');
  const exe = join(dir, 'index-probe');
  const build = Bun.spawnSync([process.execPath, 'build', '--compile', '--minify', '--bytecode', '--sourcemap=none', entry, '--outfile', exe], { stderr: 'pipe', stdout: 'pipe' });
  expect({ exit: build.exitCode, err: build.stderr.toString() }).toEqual({ exit: 0, err: '' });
  const run = Bun.spawn([exe, join(dir, 'probe.db')], { cwd: dir, stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = [await new Response(run.stdout).text(), await new Response(run.stderr).text(), await run.exited];
  expect({ code, err }).toEqual({ code: 0, err: '' });
  expect(JSON.parse(out)).toEqual({ matched: 1, subject: 'café compiled' });
}, 120_000);
