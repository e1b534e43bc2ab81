// `mailbox --version`: the platform comes from the build (scripts/build.ts defines MAILBOX_TARGET).
import { expect, test } from 'bun:test';
import packageJson from '../../package.json' with { type: 'json' };
import { buildTarget, versionLine } from '../../src/cli/version.ts';
import { hostTarget } from '../../scripts/build.ts';
import { MAILBOX_BIN, runCommand } from '../e2e/harness.ts';

test('run from source, the line says so and names the running platform', () => {
  expect(buildTarget()).toBeNull();
  expect(versionLine()).toBe(`mailbox ${packageJson.version} ${process.platform}-${process.arch}, from source (Bun ${Bun.version})`);
});

test('dist/mailbox --version names the target npm run build compiled it for', async () => {
  const result = await runCommand([MAILBOX_BIN, '--version']);
  expect(result).toEqual({ code: 0, stdout: `mailbox ${packageJson.version} ${hostTarget().name} (Bun ${Bun.version})\n`, stderr: '' });
});

test('-v is --version', async () => {
  const result = await runCommand([MAILBOX_BIN, '-v']);
  expect(result.stdout).toStartWith(`mailbox ${packageJson.version} ${hostTarget().name} `);
});
