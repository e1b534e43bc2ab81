/**
 * @module How `mailbox verify` shows its results: one line per address (with -v, the evidence
 * under it), one JSON object per line for --json, and a progress bar for a terminal.
 * Rule: colours come from render.ts, the one file that picks styles.
 */
import type { VerifyResult, VerifyStats } from '../verify/verifier.ts';
import { paintKey, paintVerdict, type Paint } from './render.ts';

const VERDICT_WIDTH = 'undeliverable'.length;
const BAR_WIDTH = 30;

/** `deliverable    alice@example.org  accepted: RCPT TO: 250 2.1.5 OK` */
export function formatResultLine(paint: Paint, result: VerifyResult): string {
  const verdict = paintVerdict(paint, result.verdict, result.verdict.padEnd(VERDICT_WIDTH));
  const address = result.address ?? result.input;
  const hints = result.hints.map((h) => paintKey(paint, ` [${h.code}: ${h.text}]`)).join('');
  return `${verdict} ${address}  ${result.reason}: ${result.detail}${hints}`;
}

/** The evidence under a result line (-v): DNS answers, connection attempts, the dialogue. */
export function formatResultDetails(paint: Paint, result: VerifyResult): string[] {
  const out: string[] = [];
  const key = (text: string) => paintKey(paint, text);
  if (!result.syntax.valid) return [`  ${key('syntax')} ${result.syntax.why}`];
  if (result.syntax.smtpUtf8) out.push(`  ${key('syntax')} UTF-8 local part: needs SMTPUTF8 (RFC 6531)`);
  if (result.address !== null && result.syntax.unicodeDomain !== result.address.slice(result.address.lastIndexOf('@') + 1)) {
    out.push(`  ${key('idna')} ${result.syntax.unicodeDomain}`);
  }
  const dns = result.dns;
  if (dns !== undefined) {
    out.push(`  ${key('dns')} ${dns.route} via ${dns.server}`);
    for (const l of dns.lookups) {
      out.push(`    ${l.query}: ${l.detail}`);
      for (const a of l.answers) out.push(`      ${a}`);
    }
    for (const s of dns.skipped) out.push(`    ${key('skipped')} ${s}`);
  }
  const smtp = result.smtp;
  if (smtp !== undefined) {
    for (const a of smtp.attempts) {
      out.push(`  ${key('connect')} ${a.host} [${a.address}]:${a.port} ${a.detail}`);
      for (const line of a.transcript) out.push(`    ${line}`);
    }
    for (const line of smtp.session) out.push(`    ${line}`);
    for (const line of smtp.transcript) out.push(`    ${line}`);
    if (smtp.catchAll !== null) {
      const c = smtp.catchAll;
      const what = c.acceptsAll === null ? 'not known' : c.acceptsAll ? 'accepts any address' : 'refuses unknown addresses';
      out.push(`  ${key('catch-all')} ${what} (${c.address}: ${c.reply ?? 'no answer'})`);
    }
  }
  return out;
}

/** One NDJSON line. */
export function formatResultJson(result: VerifyResult): string {
  return JSON.stringify(result);
}

/** `[#########.....................] 312/1000  31%` without colour. */
export function formatProgress(done: number, total: number): string {
  const share = total === 0 ? 1 : done / total;
  const filled = Math.round(share * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${done}/${total} ${Math.floor(share * 100)}%`;
}

/** The closing line on standard error with -v: what the run cost. */
export function formatStats(stats: VerifyStats, elapsedMs: number): string {
  const seconds = elapsedMs / 1000;
  const rate = seconds > 0 ? (stats.addresses / seconds).toFixed(1) : String(stats.addresses);
  const per = stats.addresses > 0 ? (stats.connections / stats.addresses).toFixed(3) : '0';
  return `# ${stats.addresses} addresses, ${stats.domains} domains, ${stats.dnsQueries} DNS queries, ${stats.connections} SMTP connections (${per} per address), ${stats.probes} probes in ${seconds.toFixed(2)} s (${rate} addresses/s)`;
}

/**
 * When no SMTP server answered at all in a batch that tried several, the likeliest cause is this
 * machine, not the domains: say so once, beside the per-address "smtp-unreachable" verdicts.
 */
export function formatBlockedWarning(stats: VerifyStats, port: number): string | null {
  if (stats.attempts < 2 || stats.answered > 0) return null;
  return `mailbox: none of the ${stats.attempts} SMTP connection attempts got an answer on port ${port}; outbound SMTP to port ${port} is probably blocked from this machine (many ISPs and cloud providers block it)`;
}
