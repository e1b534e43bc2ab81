/**
 * Debian's chromium driven by playwright-core (no browser download: executablePath is the system
 * one), for the web UI tests. Screenshots go to test-output/ (gitignored), kept after the run.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM, requirePeers } from './capabilities.ts';

export const TEST_OUTPUT = resolve(import.meta.dir, '../../test-output');

/** Starts headless chromium; the caller closes it. */
export async function launchChromium(): Promise<Browser> {
  requirePeers('chromium');
  // As root (CI), chromium refuses to start with its own sandbox: the tests' pages are our own.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** A path under test-output/<folder>/ for a screenshot or a download kept with the test output. */
export function outputPath(folder: string, name: string): string {
  const dir = join(TEST_OUTPUT, folder);
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
