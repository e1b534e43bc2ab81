/**
 * `mailbox send` benchmark: one message end to end (process start to exit, STARTTLS with a
 * verified certificate included) to a private Postfix smtpd that discards delivery, on loopback,
 * side by side with swaks (Perl) and msmtp (C) sending the same message in the same run, runs
 * interleaved. Then the cold start of `mailbox send --dry-run`. Prints medians (min–max) and
 * the ratios the issue sets: mailbox must beat swaks, stay within 3× of msmtp, and start under
 * 30 ms. Exits 1 when a target is missed.
 *
 * usage: bash scripts/bun scripts/bench-send.ts [--runs N]   (npm run bench:send)
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { postfixUnavailableReason, startPostfix } from '../tests/helpers/postfix.ts';
import { makeCertificates } from '../tests/helpers/send-peers.ts';

const ROOT = resolve(import.meta.dir, '..');
const MAILBOX_BIN = process.env.MAILBOX_BIN ?? join(ROOT, 'dist/mailbox');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '30' } } });
const RUNS = Number(values.runs);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Wall time of one process from spawn to exit, in ms; throws on a non-zero exit. */
function timed(argv: string[], stdin?: Uint8Array): number {
  const start = performance.now();
  const r = Bun.spawnSync(argv, { stdin: stdin ?? 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const ms = performance.now() - start;
  if (r.exitCode !== 0) throw new Error(`${argv[0]} exited ${r.exitCode}: ${r.stderr.toString()}${r.stdout.toString()}`);
  return ms;
}

const fmt = (xs: number[]) => `${median(xs).toFixed(1)} ms (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;

async function main(): Promise<number> {
  const unavailable = postfixUnavailableReason();
  if (unavailable !== undefined) throw new Error(`cannot run: ${unavailable}`);
  const dir = await mkdtemp(join(tmpdir(), 'mailbox-bench-send-'));
  const certs = makeCertificates(dir);
  const postfix = await startPostfix({ mode: 'discard', mainCf: { smtpd_tls_security_level: 'may', smtpd_tls_cert_file: certs.cert, smtpd_tls_key_file: certs.key } });
  try {
    const body = 'One message, end to end, with STARTTLS.\n'.repeat(20);
    const bodyFile = join(dir, 'body.txt');
    writeFileSync(bodyFile, body);
    const message = new TextEncoder().encode(`From: a@example.org\nTo: b@example.net\nSubject: bench\n\n${body}`);
    const server = `127.0.0.1:${postfix.port}`;
    const msmtprc = join(dir, 'msmtprc');
    writeFileSync(msmtprc, '', { mode: 0o600 });
    const clients: Record<string, () => number> = {
      mailbox: () => timed([MAILBOX_BIN, 'send', '--server', `smtp+starttls://${server}`, '--tls-ca', certs.ca, '--from', 'a@example.org', '--to', 'b@example.net', '--subject', 'bench', '--body-file', bodyFile]),
      swaks: () => timed(['swaks', '--server', server, '--tls', '--tls-verify', '--tls-ca-path', certs.ca, '--from', 'a@example.org', '--to', 'b@example.net', '--header', 'Subject: bench', '--body', bodyFile, '--silent', '2']),
      msmtp: () => timed(['msmtp', `--file=${msmtprc}`, '--host=127.0.0.1', `--port=${postfix.port}`, '--tls=on', '--tls-starttls=on', `--tls-trust-file=${certs.ca}`, '--auth=off', '--from=a@example.org', 'b@example.net'], message),
    };
    const times: Record<string, number[]> = { mailbox: [], swaks: [], msmtp: [] };
    for (const name of Object.keys(clients)) clients[name](); // warm the page cache and Postfix
    for (let i = 0; i < RUNS; i++) for (const name of Object.keys(clients)) times[name].push(clients[name]());
    const cold: number[] = [];
    for (let i = 0; i < RUNS; i++) cold.push(timed([MAILBOX_BIN, 'send', '--dry-run', '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'x']));

    const m = median(times.mailbox);
    const vsSwaks = median(times.swaks) / m;
    const vsMsmtp = m / median(times.msmtp);
    console.log(`one message with STARTTLS to Postfix smtpd, ${RUNS} runs each, interleaved:`);
    for (const name of Object.keys(times)) console.log(`  ${name.padEnd(8)} ${fmt(times[name])}`);
    console.log(`  swaks / mailbox = ${vsSwaks.toFixed(2)}× (target: above 1)`);
    console.log(`  mailbox / msmtp = ${vsMsmtp.toFixed(2)}× (target: at most 3)`);
    console.log(`cold start, mailbox send --dry-run: ${fmt(cold)} (target: median under 30 ms)`);
    const ok = vsSwaks > 1 && vsMsmtp <= 3 && median(cold) < 30;
    console.log(ok ? 'all targets met' : 'a target was missed');
    return ok ? 0 : 1;
  } finally {
    await postfix.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
