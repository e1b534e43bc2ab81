/**
 * @module Builds the web UI from src/ui/app (preact + htm, bundled and minified by Bun.build) into
 * the few files the server hands out: index.html, one script and one stylesheet, each named by a
 * hash of its content so a browser may keep it forever.
 * Rule: nothing is fetched at run time; the page loads only what this bundle holds.
 */
import { join } from 'node:path';

export interface UiFile {
  readonly type: string;
  readonly body: string;
}

/** The UI as served: request path → file. '/' is the page itself. */
export interface UiBundle {
  readonly files: Readonly<Record<string, UiFile>>;
}

/** The file name scripts/build.ts embeds into the binary (found again through Bun.embeddedFiles). */
export const UI_BUNDLE_NAME = 'mailbox-ui.bundle';

const APP_DIR = join(import.meta.dir, 'app');

function hashed(stem: string, ext: string, body: string): string {
  return `/ui/${stem}-${Bun.hash(body).toString(36)}.${ext}`;
}

function page(script: string, style: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>mailbox</title>
<link rel="stylesheet" href="${style}">
<script type="module" src="${script}"></script>
</head>
<body>
<div id="app"><noscript>The mailbox web UI needs JavaScript; the JSON API is at /api/v1/messages.</noscript></div>
</body>
</html>
`;
}

/** Bundles the UI sources; throws with Bun's messages when they do not build. */
export async function buildUiBundle(): Promise<UiBundle> {
  const result = await Bun.build({
    entrypoints: [join(APP_DIR, 'main.ts'), join(APP_DIR, 'style.css')],
    minify: true,
    target: 'browser',
    format: 'esm',
  });
  if (!result.success) throw new Error(`the web UI does not build: ${result.logs.map(String).join('; ')}`);
  let script = '';
  let style = '';
  for (const output of result.outputs) {
    if (output.path.endsWith('.js')) script = await output.text();
    else if (output.path.endsWith('.css')) style = await output.text();
  }
  const scriptPath = hashed('app', 'js', script);
  const stylePath = hashed('app', 'css', style);
  return {
    files: {
      '/': { type: 'text/html; charset=utf-8', body: page(scriptPath, stylePath) },
      [scriptPath]: { type: 'text/javascript; charset=utf-8', body: script },
      [stylePath]: { type: 'text/css; charset=utf-8', body: style },
    },
  };
}

/** Bytes the browser transfers for the whole UI, each file gzip-compressed as the server sends it. */
export function gzipBytes(bundle: UiBundle): number {
  let total = 0;
  for (const file of Object.values(bundle.files)) total += Bun.gzipSync(file.body).length;
  return total;
}

/** The budget for the whole UI, gzip-compressed (issue 12). */
export const UI_GZIP_BUDGET_BYTES = 150 * 1024;
