// STYLE.md convention 1: the core is sans-I/O. It may import only other core files.
import { expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const coreDir = join(import.meta.dir, '..', '..', 'src', 'core');
/** Every .ts file under src/core, subdirectories (src/core/imap) included, relative to it. */
const coreFiles = (readdirSync(coreDir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
/** An import that stays inside src/core: "./x.ts", "./imap/x.ts", or from a subdirectory "../x.ts". */
const insideCore = (file: string, spec: string) => /^(\.\.?\/)([a-z0-9-]+\/)*[a-z0-9-]+\.ts$/.test(spec) && !relative(coreDir, join(coreDir, file, '..', spec)).startsWith('..');
const FORBIDDEN = [/\bBun\./, /\bprocess\./, /\bconsole\./, /\bDate\b/, /\bsetTimeout\b/, /\bsetInterval\b/, /\bfetch\(/, /\bMath\.random\b/, /\brequire\(/];

test('src/core imports nothing but other core files', () => {
  expect(coreFiles.length).toBeGreaterThan(5);
  for (const file of coreFiles) {
    const text = readFileSync(join(coreDir, file), 'utf8');
    const imports = [...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    for (const spec of imports) expect({ file, spec, ok: insideCore(file, spec) }).toEqual({ file, spec, ok: true });
    expect({ file, dynamic: /\bimport\(/.test(text) }).toEqual({ file, dynamic: false });
  }
});

test('src/core uses no clock, timer, console, process or Bun API', () => {
  for (const file of coreFiles) {
    const code = readFileSync(join(coreDir, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    for (const pattern of FORBIDDEN) expect({ file, uses: pattern.test(code) ? String(pattern) : null }).toEqual({ file, uses: null });
  }
});
