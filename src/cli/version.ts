/**
 * @module The `mailbox --version` line: the version, the platform the binary was built for and
 * the Bun inside it. scripts/build.ts sets MAILBOX_TARGET at compile time (bun build --define);
 * run from source, the line says so and names the platform it is running on.
 */
import packageJson from '../../package.json' with { type: 'json' };

declare const MAILBOX_TARGET: string | undefined;

/** The release target name (`linux-arm64`, `linux-x64-baseline`…), or null when run from source. */
export function buildTarget(): string | null {
  return typeof MAILBOX_TARGET === 'string' ? MAILBOX_TARGET : null;
}

/** For example `mailbox 0.1.0 linux-x64-musl (Bun 1.4.5)`. */
export function versionLine(): string {
  const target = buildTarget() ?? `${process.platform}-${process.arch}, from source`;
  return `mailbox ${packageJson.version} ${target} (Bun ${Bun.version})`;
}
