// Layering (issue 9 part 7): the CLI is the outer layer. Only commands/ and main.ts (and cli/
// itself) import src/cli/, with no exceptions: a command's flag parser and runner live in
// commands/<command>/. Nothing the delivery code loads reaches cli/ or commands/, so it runs in
// a Worker without the CLI; and nothing outside them imports commands/.
import { expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const SRC = join(import.meta.dir, '..', 'src');
const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => f.split('\\').join('/'));

/** Relative imports of a file, resolved to paths under src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm), ...text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm), ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]);
  return specs.filter((s) => s.startsWith('.')).map((s) => relative(SRC, join(SRC, dirname(file), s)).split('\\').join('/'));
}

const isCli = (path: string) => path.startsWith('cli/');
const isOuter = (path: string) => isCli(path) || path.startsWith('commands/') || path === 'main.ts';

test('only commands/ and main.ts import cli/, and only they, cli/ and main.ts import commands/', () => {
  expect(files.length).toBeGreaterThan(50);
  for (const file of files) {
    if (isOuter(file)) continue;
    expect({ file, outer: importsOf(file).filter(isOuter) }).toEqual({ file, outer: [] });
  }
});

test('nothing the delivery code, the core, the transport, DNS or the spool loads reaches cli/ or commands/', () => {
  const roots = files.filter((f) => /^(delivery|core|transport|dns|spool|auth|tls)\//.test(f));
  expect(roots.some((f) => f.startsWith('delivery/'))).toBe(true);
  const seen = new Set<string>();
  const walk = (file: string, path: string[]) => {
    expect({ path, outer: isOuter(file) }).toEqual({ path, outer: false });
    if (seen.has(file)) return;
    seen.add(file);
    for (const next of importsOf(file)) walk(next, [...path, next]);
  };
  for (const root of roots) walk(root, [root]);
});
