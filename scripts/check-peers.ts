/**
 * Checks, before any test runs, every peer the suite relies on (tests/helpers/capabilities.ts):
 * prints one line per missing one, naming the package that installs it, and exits 1; silent and
 * 0 when all are there. scripts/test runs it after scripts/install-peers.
 * usage: bun scripts/check-peers.ts [NAME...]   (default: every capability)
 */
import { CAPABILITIES, missingLine, type CapabilityName } from '../tests/helpers/capabilities.ts';

const names = (Bun.argv.length > 2 ? Bun.argv.slice(2) : Object.keys(CAPABILITIES)) as CapabilityName[];
for (const name of names) if (!(name in CAPABILITIES)) throw new Error(`check-peers: no capability ${name} (known: ${Object.keys(CAPABILITIES).join(', ')})`);
const lines = names.map(missingLine).filter((l) => l !== undefined);
for (const line of lines) console.error(`check-peers: ${line}`);
process.exit(lines.length === 0 ? 0 : 1);
