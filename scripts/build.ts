/**
 * Compiles mailbox into one executable with the Bun runtime inside (bun build --compile).
 * Run directly, it writes dist/mailbox for this machine (`--target NAME` picks another one of
 * `targets`); scripts/build-release.ts imports `compile` and `targets` to write every release file.
 * Extra entry points (Worker files) must be listed in `entrypoints`, or no binary can start them.
 * The web UI is bundled first (bundleUi) and embedded as a file the server finds in Bun.embeddedFiles.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { UI_BUNDLE_NAME, UI_GZIP_BUDGET_BYTES, buildUiBundle, gzipBytes } from '../src/ui/bundle.ts';

const root = join(import.meta.dir, '..');

/** Every file a binary must contain as its own module: the CLI, then each Worker started by path. */
export const entrypoints = [join(root, 'src', 'main.ts'), join(root, 'src', 'store', 'index-worker.ts'), join(root, 'src', 'delivery', 'relay-worker.ts')];

/**
 * The platforms a release is built for. `name` is the file suffix and what `mailbox --version`
 * prints; `bun` is Bun's --target. Bun documents its default x64 runtimes as needing AVX2
 * (Haswell, 2013); "baseline" needs only SSE4.2 (Nehalem, 2008). The musl runtimes run on Alpine
 * with its libstdc++ package.
 */
export const targets = [
  { name: 'linux-x64', bun: 'bun-linux-x64' },
  { name: 'linux-x64-baseline', bun: 'bun-linux-x64-baseline' },
  { name: 'linux-x64-musl', bun: 'bun-linux-x64-musl' },
  { name: 'linux-arm64', bun: 'bun-linux-arm64' },
  { name: 'linux-arm64-musl', bun: 'bun-linux-arm64-musl' },
  { name: 'darwin-x64', bun: 'bun-darwin-x64' },
  { name: 'darwin-arm64', bun: 'bun-darwin-arm64' },
] as const;

export type Target = (typeof targets)[number];

/** The target of this machine's own platform (glibc, AVX2 on x64): what `npm run build` makes. */
export function hostTarget(): Target {
  const name = `${process.platform}-${process.arch}`;
  const target = targets.find((t) => t.name === name);
  if (!target) throw new Error(`no build target for ${name}; pick one with --target (${targets.map((t) => t.name).join(', ')})`);
  return target;
}

/**
 * Bundles the web UI (src/ui/bundle.ts) into dist/ui/, the file compile() embeds, and measures it:
 * throws when the UI's files, gzip-compressed as the server sends them, exceed the budget.
 */
export async function bundleUi(): Promise<{ file: string; gzipBytes: number }> {
  const bundle = await buildUiBundle();
  const bytes = gzipBytes(bundle);
  if (bytes > UI_GZIP_BUDGET_BYTES) throw new Error(`the web UI is ${bytes} bytes gzip-compressed, over its budget of ${UI_GZIP_BUDGET_BYTES}`);
  const file = join(root, 'dist', 'ui', UI_BUNDLE_NAME);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(bundle));
  return { file, gzipBytes: bytes };
}

/**
 * Compiles every entry point for `target` into `outfile`, with the web UI bundle `uiFile` (bundleUi) inside. A cross target's runtime is fetched
 * from the npm registry on first use and cached (BUN.md, Cross targets); the host's is Bun itself.
 * Throws when bun build fails (its own messages are on standard error).
 */
export function compile(target: Target, outfile: string, uiFile: string): void {
  mkdirSync(dirname(outfile), { recursive: true });
  const proc = Bun.spawnSync(
    [
      process.execPath, 'build', '--compile', `--target=${target.bun}`,
      // src/cli/version.ts reads the target's name from this constant.
      '--define', `MAILBOX_TARGET=${JSON.stringify(target.name)}`,
      // src/worker-path.ts starts Workers at src/ seen from the bundle's root (the common folder
      // of every file compiled in).
      '--define', `MAILBOX_SRC=${JSON.stringify(`./${relative(commonFolder([...entrypoints, uiFile]), join(root, 'src')) || '.'}`)}`,
      // --bytecode: the binary starts in about half the time (`send --dry-run`: 17 ms against
      // 38 ms, median of 30). It forbids top-level await in the entry, and a Worker must then be
      // started by its string path, not new URL(…, import.meta.url) (BUN.md, Workers in a --compile binary).
      '--minify', '--bytecode', '--sourcemap=none',
      ...entrypoints, uiFile, '--outfile', outfile,
    ],
    { cwd: root, stdout: 'inherit', stderr: 'inherit' },
  );
  if (proc.exitCode !== 0) throw new Error(`bun build --target=${target.bun} failed (exit ${proc.exitCode})`);
}

/** The deepest folder holding every one of `files`. */
function commonFolder(files: readonly string[]): string {
  let parts = dirname(files[0]).split(sep);
  for (const file of files.slice(1)) {
    const other = dirname(file).split(sep);
    let i = 0;
    while (i < parts.length && i < other.length && parts[i] === other[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join(sep) || sep;
}

function targetFromArgs(args: readonly string[]): Target {
  const at = args.indexOf('--target');
  if (at === -1) return hostTarget();
  const name = args[at + 1];
  const target = targets.find((t) => t.name === name);
  if (!target) throw new Error(`unknown --target ${name ?? '(missing)'}; one of ${targets.map((t) => t.name).join(', ')}`);
  return target;
}

async function main(): Promise<void> {
  const target = targetFromArgs(process.argv.slice(2));
  const outfile = join(root, 'dist', 'mailbox');
  const ui = await bundleUi();
  console.log(`web UI: ${(ui.gzipBytes / 1024).toFixed(1)} KB gzip in all (budget ${UI_GZIP_BUDGET_BYTES / 1024} KB)`);
  compile(target, outfile, ui.file);
  console.log(`built ${outfile} (${target.name})`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`build: ${(error as Error).message}`);
    process.exit(1);
  });
}
