/**
 * @module `mailbox send` from options to outcome: build the submission, settle TLS and AUTH,
 * deliver to the server or the MX hosts, write the transcript, report, and throw the first
 * failure for main.ts to turn into one line and a sysexits code.
 * Rule: the world (files, standard input, DNS, terminal) comes in through SendDeps.
 */
import { readClientAuth, readTlsSettings, tlsSettingsFor, type ConnectionIo } from '../../cli/connection-options.ts';
import type { PromptInput } from '../../cli/prompt.ts';
import { formatMailbox } from '../../core/address.ts';
import type { ClientAuth } from '../../core/client-session.ts';
import { ClientFailure } from '../../core/errors.ts';
import { renderTranscript, type TranscriptEntry } from '../../core/transcript.ts';
import { FALLBACK_SERVER, parseResolvConf } from '../../dns/resolv-conf.ts';
import { DnsResolver } from '../../dns/resolver.ts';
import { handOffToServer, type Handoff, type SessionPlan } from '../../delivery/handoff.ts';
import { handOffToMx } from '../../delivery/mx-delivery.ts';
import type { MxPolicy } from '../../delivery/mx-policy.ts';
import { tlsMode, type SendOptions } from './options.ts';
import { explainFailure, formatJson, formatReport } from './report.ts';
import { buildSubmission, formatDryRun, type Submission, type SubmissionIo } from '../../send/submission.ts';

/** Standard input: piped bytes, or a terminal to ask on. */
export type SendInput = { readonly isTTY?: boolean } & AsyncIterable<Uint8Array | string> & Partial<PromptInput>;

export interface SendDeps {
  readonly now: () => number;
  readonly stdin: SendInput;
  readonly stdout: { write(text: string | Uint8Array): unknown };
  readonly stderr: { write(text: string): unknown };
  /** This machine's name: the default EHLO name and the fallback Message-ID domain. */
  readonly hostname: () => string;
  /** A fresh unique id (the left part of the Message-ID). */
  readonly newId: () => string;
  readonly env?: Record<string, string | undefined>;
  readonly readFile?: (path: string) => Promise<Uint8Array>;
  readonly writeFile?: (path: string, text: string) => Promise<void>;
}

export interface SendSummary {
  readonly messageId: string;
  readonly results: readonly Handoff[];
}

async function readAll(stdin: SendInput): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return all;
}

async function defaultReadFile(path: string): Promise<Uint8Array> {
  const { readFile } = await import('node:fs/promises');
  return new Uint8Array(await readFile(path));
}

async function defaultWriteFile(path: string, text: string): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, text);
}

export function submissionIo(deps: SendDeps): SubmissionIo {
  return {
    readFile: deps.readFile ?? defaultReadFile,
    readStdin: async () => (deps.stdin.isTTY ? null : readAll(deps.stdin)),
    now: deps.now,
    newId: deps.newId,
    hostname: deps.hostname,
    user: deps.env?.USER ?? deps.env?.LOGNAME ?? 'root',
  };
}

/** The credentials for AUTH: a flag, a file, or a question on the terminal. */
function readAuth(options: SendOptions, deps: SendDeps): Promise<ClientAuth | undefined> {
  return readClientAuth(options.auth, { tls: options.tls, server: options.server }, connectionIo(deps));
}

function connectionIo(deps: SendDeps): ConnectionIo {
  return { readFile: deps.readFile ?? defaultReadFile, stdin: deps.stdin, stderr: deps.stderr };
}

/** Everything a session needs besides the server; transcript lines go to `onEntry`. */
export async function buildPlan(options: SendOptions, deps: SendDeps, onEntry: (entry: TranscriptEntry | string) => void): Promise<SessionPlan> {
  const tlsSettings = await readTlsSettings(options, connectionIo(deps));
  return {
    ehloName: options.ehloName ?? deps.hostname(),
    timeoutMs: options.timeoutMs,
    tlsSettings: options.server === null ? tlsSettings : tlsSettingsFor(options.server, tlsSettings),
    auth: await readAuth(options, deps),
    chunking: options.chunking,
    quitAfter: options.quitAfter,
    dsn: options.dsn,
    onConnect: (peer) => onEntry(`# connecting to ${peer}`),
    onTranscript: (entry) => onEntry(entry),
  };
}

/** Where -v and --transcript put the dialogue. */
export function transcriptSink(options: SendOptions, deps: SendDeps): { onEntry: (entry: TranscriptEntry | string) => void; save: () => Promise<void> } {
  const saved: string[] = [];
  const onEntry = (entry: TranscriptEntry | string) => {
    const lines = typeof entry === 'string' ? [entry] : renderTranscript([entry]);
    if (options.verbose) deps.stderr.write(`${lines.join('\n')}\n`);
    if (options.transcriptFile !== null) saved.push(...lines);
  };
  const save = async () => {
    if (options.transcriptFile === null) return;
    await (deps.writeFile ?? defaultWriteFile)(options.transcriptFile, `${saved.join('\n')}\n`);
  };
  return { onEntry, save };
}

function dnsResolver(options: SendOptions, deps: SendDeps): Promise<DnsResolver> {
  const make = (server: typeof FALLBACK_SERVER) => new DnsResolver({ server, timeoutMs: Math.min(5000, options.timeoutMs), attempts: 2 });
  if (options.dns !== null) return Promise.resolve(make(options.dns));
  return (deps.readFile ?? defaultReadFile)('/etc/resolv.conf')
    .then((bytes) => make(parseResolvConf(new TextDecoder().decode(bytes)) ?? FALLBACK_SERVER))
    .catch(() => make(FALLBACK_SERVER));
}

/** Names the server in a failure the core reported without knowing which server it was. */
function atPeer(failure: ClientFailure, peer: string, domain: string | null): ClientFailure {
  if (failure.stage === 'connect') return domain !== null && !failure.message.includes(domain) ? failure.withMessage(`${domain}: ${failure.message}`) : failure;
  const where = domain === null ? peer : `${peer} (for ${domain})`;
  return failure.withMessage(`send via ${where} failed: ${failure.message}`);
}

/**
 * --mx: the MX policy (delivery/mx-policy.ts). `--tls auto` is opportunistic TLS with no
 * certificate check (RFC 7435); `--tls starttls` or `implicit` require TLS and check the
 * certificate against the MX name (--tls-ca adds CAs, --insecure skips the check); `--tls-ca`
 * alone asks for the check too.
 */
export function mxPolicyFor(options: SendOptions, plan: SessionPlan): MxPolicy {
  const required = options.tls === 'starttls' || options.tls === 'implicit';
  const verify = !options.insecure && (required || options.tlsCa !== null);
  return { tls: tlsMode(options.tls, 'opportunistic'), verify: verify ? { ca: plan.tlsSettings.ca } : null };
}

/** Sends the submission as the options say; reports; throws the first failure. */
export async function deliverSubmission(submission: Submission, options: SendOptions, deps: SendDeps, plan: SessionPlan): Promise<SendSummary> {
  const mxTls = tlsMode(options.tls, 'opportunistic');
  const results = options.mx
    ? await handOffToMx(submission, plan, { resolver: await dnsResolver(options, deps), port: options.mxPort, policy: mxPolicyFor(options, plan) })
    : [await handOffToServer(options.server!, submission, submission.recipients, plan)];
  const explain = (r: Handoff) => {
    const port = options.server?.port ?? options.mxPort;
    return atPeer(explainFailure(r.failure!, port, options.server?.tls ?? mxTls), r.peer, r.domain);
  };
  if (options.json) {
    const byFailure = new Map(results.filter((r) => r.failure !== null).map((r) => [r.failure!, explain(r).message]));
    const sender = submission.sender === null ? null : formatMailbox(submission.sender);
    deps.stdout.write(`${formatJson(submission.messageId, sender, results, (f) => byFailure.get(f) ?? f.message)}\n`);
  } else {
    const lines = formatReport(submission.messageId, results);
    for (const line of lines.stderr) deps.stderr.write(`${line}\n`);
    for (const line of lines.stdout) deps.stdout.write(`${line}\n`);
  }
  const failed = results.find((r) => r.failure !== null);
  if (failed) throw explain(failed);
  return { messageId: submission.messageId, results };
}

/** The whole command: compose (or read), then --dry-run output or delivery. */
export async function runSend(options: SendOptions, deps: SendDeps): Promise<SendSummary> {
  const submission = await buildSubmission(options, submissionIo(deps));
  if (options.dryRun) {
    deps.stdout.write(formatDryRun(submission));
    return { messageId: submission.messageId, results: [] };
  }
  const sink = transcriptSink(options, deps);
  const plan = await buildPlan(options, deps, sink.onEntry);
  try {
    return await deliverSubmission(submission, options, deps, plan);
  } finally {
    await sink.save();
  }
}
