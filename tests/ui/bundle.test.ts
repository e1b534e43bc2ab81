// The web UI bundle (issue 12): built from src/ui/app with no CDN and nothing fetched at run time,
// within 150 KB gzip in all; `npm start` (from source) builds the same bundle on first request.
import { expect, test } from 'bun:test';
import { UI_GZIP_BUDGET_BYTES, buildUiBundle, gzipBytes } from '../../src/ui/bundle.ts';
import { uiBundleLoader } from '../../src/ui/assets.ts';

/** XML namespace names inside preact: identifiers, never fetched. */
const NAMESPACES = new Set(['http://www.w3.org/1998/Math/MathML', 'http://www.w3.org/1999/xhtml', 'http://www.w3.org/2000/svg']);

test('the bundle is the page, one script and one stylesheet, within the gzip budget', async () => {
  const bundle = await buildUiBundle();
  const paths = Object.keys(bundle.files);
  expect(paths).toHaveLength(3);
  const script = paths.find((p) => /^\/ui\/app-[0-9a-z]+\.js$/.test(p));
  const style = paths.find((p) => /^\/ui\/app-[0-9a-z]+\.css$/.test(p));
  expect(paths).toContain('/');
  const page = bundle.files['/'].body;
  expect(page).toContain(`<script type="module" src="${script}"></script>`);
  expect(page).toContain(`<link rel="stylesheet" href="${style}">`);
  expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
  const bytes = gzipBytes(bundle);
  console.log(`web UI: ${bytes} bytes gzip in all (budget ${UI_GZIP_BUDGET_BYTES})`);
  expect(bytes).toBeLessThanOrEqual(UI_GZIP_BUDGET_BYTES);
  expect(bytes).toBeGreaterThan(5_000);
  // Nothing refers to another origin: no CDN, no font service, no remote import.
  for (const file of Object.values(bundle.files)) {
    const urls = [...file.body.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)\\]*/gi)].map((m) => m[0]);
    expect(urls.filter((u) => !NAMESPACES.has(u))).toEqual([]);
  }
});

test('run from source, the loader builds the bundle once and keeps it', async () => {
  const load = uiBundleLoader();
  const first = await load();
  expect(Object.keys(first.files)).toContain('/');
  expect(await load()).toBe(first);
});
