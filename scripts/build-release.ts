/**
 * `npm run build:release`: writes dist/release/ with one executable per target of scripts/build.ts
 * (mailbox-linux-x64, mailbox-linux-x64-baseline, …) and SHA256SUMS in the format `sha256sum -c`
 * reads. The folder is emptied first, so it never mixes two builds.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleUi, compile, targets } from './build.ts';

const root = join(import.meta.dir, '..');
export const releaseDir = join(root, 'dist', 'release');

function sha256(file: string): string {
  return new Bun.CryptoHasher('sha256').update(readFileSync(file)).digest('hex');
}

async function main(): Promise<void> {
  rmSync(releaseDir, { recursive: true, force: true });
  const ui = await bundleUi();
  const sums: string[] = [];
  for (const target of targets) {
    const name = `mailbox-${target.name}`;
    const file = join(releaseDir, name);
    compile(target, file, ui.file);
    sums.push(`${sha256(file)}  ${name}`);
    console.log(`built ${name} (${(statSync(file).size / 1e6).toFixed(1)} MB)`);
  }
  writeFileSync(join(releaseDir, 'SHA256SUMS'), `${sums.join('\n')}\n`);
  console.log(`wrote ${join(releaseDir, 'SHA256SUMS')}`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`build:release: ${(error as Error).message}`);
    process.exit(1);
  });
}
