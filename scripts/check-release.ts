/**
 * `npm run check:release` (scripts/check-release installs the tools, then runs this): checks the
 * files in dist/release/ with what this machine can run.
 * - SHA256SUMS lists every target of scripts/build.ts and `sha256sum -c` accepts it.
 * - Every file is the right executable format (`file`) with the right interpreter and needed
 *   libraries (`readelf -d`); darwin files are only identified, and the musl ones are not run
 *   (Debian ships no musl libstdc++).
 * - linux-arm64 runs under qemu-aarch64-static with Debian's arm64 glibc as its loader,
 *   linux-x64-baseline (and linux-x64, see README "Install") under qemu-x86_64-static with a CPU
 *   model that `cpuid` shows has no AVX2, linux-x64 natively: each prints its --version, serves,
 *   takes a message from its own `send` over STARTTLS, and the message is read back from the spool
 *   segment, then replayed by the same binary into a second server and read back from that spool.
 * Prints one line per check and a table of the files with their sizes; exits 1 on any failure.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { releaseDir } from './build-release.ts';
import { targets, type Target } from './build.ts';
import { makeTempDir, runCommand, startServe, waitForLog, type ServeHandle } from '../tests/e2e/harness.ts';

/** Emulated processes start in seconds, not milliseconds; this only bounds a hang. */
const EMULATED_TIMEOUT_MS = 300_000;
/** A CPU model qemu knows that lacks AVX2 (Nehalem, 2008: SSE4.2 and POPCNT, no AVX at all). */
const CPU_WITHOUT_AVX2 = 'Nehalem';
/** Debian's libc6-arm64-cross: the arm64 dynamic loader and glibc for qemu's -L. */
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

interface FormatRule {
  /** Substrings `file` must print. */
  file: string[];
  /** Libraries `readelf -d` must list as NEEDED (Linux only). */
  needs?: string[];
  /** Libraries it must not list: a musl file needing glibc would not start on Alpine. */
  refuses?: string[];
}

const glibc = ['libc.so.6'];
const formats: Record<Target['name'], FormatRule> = {
  'linux-x64': { file: ['ELF 64-bit LSB', 'x86-64', 'interpreter /lib64/ld-linux-x86-64.so.2'], needs: glibc },
  'linux-x64-baseline': { file: ['ELF 64-bit LSB', 'x86-64', 'interpreter /lib64/ld-linux-x86-64.so.2'], needs: glibc },
  'linux-x64-musl': {
    file: ['ELF 64-bit LSB', 'x86-64', 'interpreter /lib/ld-musl-x86_64.so.1'],
    needs: ['libc.musl-x86_64.so.1', 'libstdc++.so.6'],
    refuses: glibc,
  },
  'linux-arm64': { file: ['ELF 64-bit LSB', 'ARM aarch64', 'interpreter /lib/ld-linux-aarch64.so.1'], needs: glibc },
  'linux-arm64-musl': {
    file: ['ELF 64-bit LSB', 'ARM aarch64', 'interpreter /lib/ld-musl-aarch64.so.1'],
    needs: ['libc.musl-aarch64.so.1', 'libstdc++.so.6'],
    refuses: glibc,
  },
  'darwin-x64': { file: ['Mach-O 64-bit x86_64 executable'] },
  'darwin-arm64': { file: ['Mach-O 64-bit arm64 executable'] },
};

/** The files run here, and the command prefix that runs each. */
const runs: { target: Target['name']; prefix: string[]; how: string }[] = [
  { target: 'linux-x64', prefix: [], how: 'natively' },
  { target: 'linux-x64-baseline', prefix: ['qemu-x86_64-static', '-cpu', CPU_WITHOUT_AVX2], how: `under qemu-x86_64-static -cpu ${CPU_WITHOUT_AVX2}` },
  { target: 'linux-x64', prefix: ['qemu-x86_64-static', '-cpu', CPU_WITHOUT_AVX2], how: `under qemu-x86_64-static -cpu ${CPU_WITHOUT_AVX2}` },
  { target: 'linux-arm64', prefix: ['qemu-aarch64-static', '-L', ARM64_SYSROOT], how: `under qemu-aarch64-static -L ${ARM64_SYSROOT}` },
];

let failures = 0;
const notes = new Map<string, string[]>();

function report(ok: boolean, what: string, detail = ''): void {
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`);
}

function note(target: string, text: string): void {
  notes.set(target, [...(notes.get(target) ?? []), text]);
}

async function checkSums(): Promise<void> {
  const listed = readFileSync(join(releaseDir, 'SHA256SUMS'), 'utf8').trim().split('\n').map((line) => line.split(/\s+/)[1]);
  const expected = targets.map((t) => `mailbox-${t.name}`);
  const missing = expected.filter((name) => !listed.includes(name));
  report(missing.length === 0 && listed.length === expected.length, 'SHA256SUMS lists every target', missing.length ? `missing ${missing.join(', ')}` : `${listed.length} files`);
  const result = await runCommand(['sha256sum', '-c', 'SHA256SUMS'], { cwd: releaseDir, timeoutMs: 120_000 });
  report(result.code === 0, 'sha256sum -c SHA256SUMS', result.code === 0 ? `${result.stdout.trim().split('\n').length} OK` : result.stdout + result.stderr);
}

async function checkFormat(target: Target): Promise<void> {
  const file = join(releaseDir, `mailbox-${target.name}`);
  const rule = formats[target.name];
  const described = (await runCommand(['file', '-b', file])).stdout.trim();
  const absent = rule.file.filter((part) => !described.includes(part));
  report(absent.length === 0, `${target.name}: file`, absent.length ? `lacks ${absent.join(', ')} in "${described}"` : rule.file.join(', '));
  if (rule.needs === undefined) return;
  const dynamic = (await runCommand(['readelf', '-d', file])).stdout;
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const lacking = rule.needs.filter((lib) => !needed.includes(lib));
  const wrong = (rule.refuses ?? []).filter((lib) => needed.includes(lib));
  report(lacking.length === 0 && wrong.length === 0, `${target.name}: readelf NEEDED`, needed.join(' '));
  note(target.name, `needs ${needed.join(' ')}`);
}

/** qemu's CPU model must really lack AVX2, and the probe must see AVX2 where it exists. */
async function checkCpuModel(): Promise<void> {
  const avx2 = async (model: string) => {
    const out = (await runCommand(['qemu-x86_64-static', '-cpu', model, '/usr/bin/cpuid', '-1', '-i'], { timeoutMs: 60_000 })).stdout;
    return /AVX2: advanced vector extensions 2\s*= (true|false)/.exec(out)?.[1];
  };
  const [without, control] = [await avx2(CPU_WITHOUT_AVX2), await avx2('Haswell')];
  report(without === 'false' && control === 'true', `qemu -cpu ${CPU_WITHOUT_AVX2} has no AVX2 (cpuid; Haswell control has it)`, `${CPU_WITHOUT_AVX2}: AVX2=${without}, Haswell: AVX2=${control}`);
}

function segmentsText(dataDir: string): string {
  const dir = join(dataDir, 'segments');
  if (!existsSync(dir)) return '';
  return readdirSync(dir).filter((f) => f.endsWith('.smtp')).sort().map((f) => readFileSync(join(dir, f), 'latin1')).join('');
}

function firstSegment(dataDir: string): string {
  const dir = join(dataDir, 'segments');
  return join(dir, readdirSync(dir).filter((f) => f.endsWith('.smtp')).sort()[0]);
}

/** --version, serve, send, read back, replay into a second serve, read back: all by one binary. */
async function checkRun(run: (typeof runs)[number]): Promise<void> {
  const label = `${run.target} ${run.how}`;
  const bin = join(releaseDir, `mailbox-${run.target}`);
  const command = [...run.prefix, bin];
  const version = await runCommand([...command, '--version'], { timeoutMs: EMULATED_TIMEOUT_MS });
  report(version.code === 0 && version.stdout.includes(` ${run.target} `), `${label}: --version`, version.stdout.trim() || version.stderr.trim());

  const token = `release-check-${run.target}-${crypto.randomUUID()}`;
  const servers: ServeHandle[] = [];
  await using work = await makeTempDir('mailbox-release-');
  try {
    const first = await startServe({ wrapper: run.prefix, bin, dataDir: join(work.path, 'first'), greetingTimeoutMs: EMULATED_TIMEOUT_MS });
    servers.push(first);
    const sent = await runCommand(
      [...command, 'send', '--server', `${first.host}:${first.port}`, '--tls', 'starttls', '--insecure',
        '--from', 'release@example.test', '--to', 'check@example.test', '--subject', `release check ${run.target}`, '--body', token],
      { timeoutMs: EMULATED_TIMEOUT_MS },
    );
    report(sent.code === 0 && / 250 /.test(sent.stdout), `${label}: send over STARTTLS`, (sent.stdout || sent.stderr).trim());
    const accepted = await waitForLog(first, /accepted id=\S+ .*tls=TLS/, EMULATED_TIMEOUT_MS);
    const firstExit = await first.stop('SIGTERM', EMULATED_TIMEOUT_MS);
    report(/accepted id=\S+ .*tls=TLS/.test(accepted) && firstExit.exitCode === 0, `${label}: serve accepted it over TLS and stopped on SIGTERM`, `exit ${firstExit.exitCode ?? firstExit.signalCode}`);
    const spooled = segmentsText(first.dataDir);
    report(spooled.includes(token) && spooled.includes(`Subject: release check ${run.target}`), `${label}: message read back from the spool segment`);

    const second = await startServe({ wrapper: run.prefix, bin, dataDir: join(work.path, 'second'), greetingTimeoutMs: EMULATED_TIMEOUT_MS });
    servers.push(second);
    const replayed = await runCommand([...command, 'replay', firstSegment(first.dataDir), '--server', `${second.host}:${second.port}`], { timeoutMs: EMULATED_TIMEOUT_MS });
    report(replayed.code === 0 && /\b1 sent\b/.test(replayed.stdout), `${label}: replay into a second serve`, (replayed.stdout || replayed.stderr).trim());
    await waitForLog(second, /accepted id=/, EMULATED_TIMEOUT_MS);
    await second.stop('SIGTERM', EMULATED_TIMEOUT_MS);
    report(segmentsText(second.dataDir).includes(token), `${label}: replayed message read back from the second spool`);
    note(run.target, `ran ${run.how}`);
  } catch (error) {
    report(false, `${label}: run`, (error as Error).message);
    for (const server of servers) console.log(server.logs());
  } finally {
    for (const server of servers) await server.cleanup();
  }
}

async function main(): Promise<number> {
  if (!existsSync(join(releaseDir, 'SHA256SUMS'))) {
    console.error(`check:release: ${releaseDir} has no SHA256SUMS; run npm run build:release first`);
    return 1;
  }
  await checkSums();
  for (const target of targets) await checkFormat(target);
  await checkCpuModel();
  for (const run of runs) await checkRun(run);

  console.log('\nfile                           bytes        MB  checked');
  for (const target of targets) {
    const name = `mailbox-${target.name}`;
    const size = statSync(join(releaseDir, name)).size;
    const ran = runs.some((run) => run.target === target.name);
    const how = [...(notes.get(target.name) ?? []), ...(ran ? [] : ['not run here'])];
    console.log(`${name.padEnd(28)} ${String(size).padStart(11)} ${(size / 1e6).toFixed(1).padStart(7)}  ${how.join('; ')}`);
  }
  console.log(`\ncheck:release: ${failures === 0 ? 'all checks passed' : `${failures} check(s) failed`}`);
  return failures === 0 ? 0 : 1;
}

process.exit(await main());
