/**
 * @module Where the running server gets the web UI: the bundle scripts/build.ts embedded into the
 * binary, or, when mailbox runs from source (`npm start`), the same bundle built from src/ui/app
 * on the first request (about a tenth of a second) and kept.
 * Rule: a compiled binary never builds; it serves exactly the files measured at build time.
 */
import { UI_BUNDLE_NAME, buildUiBundle, type UiBundle } from './bundle.ts';

/** The embedded bundle's file, named by Bun with a hash before the extension. */
function embeddedBundle(): Blob | null {
  const [stem, ext] = UI_BUNDLE_NAME.split('.');
  for (const file of Bun.embeddedFiles) {
    const name = (file as Blob & { name?: string }).name ?? '';
    if (name.startsWith(stem) && name.endsWith(`.${ext}`)) return file;
  }
  return null;
}

/** Loads the UI once: embedded when there is one, else built from the sources. */
export function uiBundleLoader(): () => Promise<UiBundle> {
  let loading: Promise<UiBundle> | null = null;
  return () => {
    loading ??= (async () => {
      const embedded = embeddedBundle();
      if (embedded) return JSON.parse(await embedded.text()) as UiBundle;
      return buildUiBundle();
    })();
    // A failed build is not kept: the next request tries again.
    loading.catch(() => (loading = null));
    return loading;
  };
}
