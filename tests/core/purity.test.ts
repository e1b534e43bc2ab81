// STYLE.md convention 1: the core is sans-I/O. It may import only other core files.
import { expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const coreDir = join(import.meta.dir, '..', '..', 'src', 'core');
const FORBIDDEN = [/\bBun\./, /\bprocess\./, /\bconsole\./, /\bDate\b/, /\bsetTimeout\b/, /\bsetInterval\b/, /\bfetch\(/, /\bMath\.random\b/, /\brequire\(/];

test('src/core imports nothing but other core files', () => {
  const files = readdirSync(coreDir).filter((f) => f.endsWith('.ts'));
  expect(files.length).toBeGreaterThan(5);
  for (const file of files) {
    const text = readFileSync(join(coreDir, file), 'utf8');
    const imports = [...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    for (const spec of imports) expect({ file, spec, ok: /^\.\/[a-z0-9-]+\.ts$/.test(spec) }).toEqual({ file, spec, ok: true });
    expect({ file, dynamic: /\bimport\(/.test(text) }).toEqual({ file, dynamic: false });
  }
});

test('src/core uses no clock, timer, console, process or Bun API', () => {
  for (const file of readdirSync(coreDir).filter((f) => f.endsWith('.ts'))) {
    const code = readFileSync(join(coreDir, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    for (const pattern of FORBIDDEN) expect({ file, uses: pattern.test(code) ? String(pattern) : null }).toEqual({ file, uses: null });
  }
});
