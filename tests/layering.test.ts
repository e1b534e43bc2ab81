// Layering (issue 9 part 7): the CLI is the outer layer. Only commands/ and main.ts (and cli/
// itself) import src/cli/, beside the few command front ends listed below; and nothing the
// delivery code loads reaches cli/ or commands/, so it runs in a Worker without the CLI.
import { expect, test } from 'bun:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const SRC = join(import.meta.dir, '..', 'src');
const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => f.split('\\').join('/'));

/**
 * Command front ends that read flags, ask on the terminal or word hints about flags: they are the
 * command's own parse and run modules (STYLE convention 7), kept beside the code they drive.
 */
const FRONT_ENDS: Record<string, string> = {
  'send/options.ts': "send's flag parser (cli/flags, cli/connection-options)",
  'send/run.ts': 'reads --tls-ca, secrets and passwords through cli/connection-options',
  'send/interactive.ts': 'asks on the terminal (cli/prompt)',
  'send/report.ts': "words failures with flag hints (cli/connection-options' explainFailure)",
  'replay/envelope-rules.ts': "replay's --filter/--rewrite flag lists (cli/flags)",
  'replay/runner.ts': "replay's runner: the --server TLS hint and flag hints",
  'replay/options.ts': "replay's flag parser (cli/flags, cli/connection-options)",
  'replay/run.ts': 'reads --tls-ca and secrets through cli/connection-options; prints through cli/replay-render and the progress line',
  'verify/options.ts': "verify's flag parser (cli/flags)",
  'verify/run.ts': 'prints through cli/verify-render and cli/render',
  'log.ts': 'the Logger main builds; its colours are cli/render.ts, the one owner of styles',
};

/** Relative imports of a file, resolved to paths under src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm), ...text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm), ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]);
  return specs.filter((s) => s.startsWith('.')).map((s) => relative(SRC, join(SRC, dirname(file), s)).split('\\').join('/'));
}

const isCli = (path: string) => path.startsWith('cli/');
const isOuter = (path: string) => isCli(path) || path.startsWith('commands/') || path === 'main.ts';

test('only commands/, main.ts and the listed front ends import cli/', () => {
  expect(files.length).toBeGreaterThan(50);
  for (const file of files) {
    if (isOuter(file) || file in FRONT_ENDS) continue;
    expect({ file, cli: importsOf(file).filter(isCli) }).toEqual({ file, cli: [] });
  }
  for (const front of Object.keys(FRONT_ENDS)) expect({ front, exists: existsSync(join(SRC, front)) }).toEqual({ front, exists: true });
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
