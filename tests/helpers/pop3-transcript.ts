/**
 * Runs a POP3 transcript (tests/fixtures/transcripts/pop3/*.txt) against the pure core, in the
 * format of reader-transcript.ts.
 *
 * POP3's own: `S: +OK ...` takes a status line and the multi-line block after it up to the "."
 * line. `% tls starttls|implicit`, `% insecure-auth` and `% max-errors N` set the configuration;
 * `% message UID TEXT` adds a message to alice's maildrop (TEXT escaped, no CRLF added).
 * `@ lock-fails`, `@ read-fails`, `@ update-fails` make the next such request fail.
 * `= update UID...`, `= release USER` and `= logged-in USER MECHANISM` expect the next such event,
 * in order. The password of "alice" is "secret"; "slow" is throttled; no one else logs in.
 */
import { Pop3Session, DEFAULT_POP3_LIMITS, type Pop3Config, type Pop3Event, type Pop3Step } from '../../src/core/pop3-session.ts';
import { pop3Replies } from '../../src/core/pop3-replies.ts';
import type { Pop3MessageInfo } from '../../src/core/pop3-maildrop.ts';
import { parseReaderTranscript, runReaderTranscript, type ReaderRunResult, type ReaderStep } from './reader-transcript.ts';
import { unescape, type FeedMode } from './server-transcript.ts';

export interface Pop3Transcript {
  readonly title: string;
  readonly steps: readonly ReaderStep[];
  readonly config: Pop3Config;
  readonly messages: ReadonlyMap<string, Uint8Array>;
}

export function parsePop3Transcript(text: string): Pop3Transcript {
  let tls: Pop3Config['tls'] = 'none';
  let allowInsecureAuth = false;
  let maxErrors = DEFAULT_POP3_LIMITS.maxErrors;
  const messages = new Map<string, Uint8Array>();
  const { title, steps } = parseReaderTranscript(text, (name, [value = '', ...rest], lineNo) => {
    if (name === 'tls') tls = value as Pop3Config['tls'];
    else if (name === 'insecure-auth') allowInsecureAuth = true;
    else if (name === 'max-errors') maxErrors = Number(value);
    else if (name === 'message') messages.set(value, unescape(`${rest.join(' ')}\\c`));
    else throw new Error(`line ${lineNo}: unknown setting "${name}"`);
  });
  const config: Pop3Config = { hostname: 'pop.test', tls, allowInsecureAuth, limits: { ...DEFAULT_POP3_LIMITS, maxErrors } };
  return { title, steps, config, messages };
}

export type Pop3RunResult = ReaderRunResult<Pop3Event>;

function describe(event: Pop3Event): string | null {
  if (event.kind === 'update') return `update ${event.deletedUids.join(' ')}`;
  if (event.kind === 'release') return `release ${event.user}`;
  if (event.kind === 'logged-in') return `logged-in ${event.user} ${event.mechanism}`;
  return null;
}

export function runPop3Transcript(text: string, mode: FeedMode): Pop3RunResult {
  const { steps, config, messages } = parsePop3Transcript(text);
  const maildrop: Pop3MessageInfo[] = [...messages].map(([uid, bytes]) => ({ uid, size: bytes.length }));
  const session = new Pop3Session(config, 1_000_000);
  const fails = new Set<string>();
  return runReaderTranscript<Pop3Event, Pop3Step>(steps, mode, {
    session,
    decoder: new TextDecoder(),
    idlePastDeadlineMs: 1,
    silentAfterClose: false,
    multiLineBlocks: true,
    describe,
    onEvent(event, { absorb, now }) {
      switch (event.kind) {
        case 'auth': {
          const ok = event.username === 'alice' && event.password === 'secret';
          const outcome = ok
            ? { ok: true as const, user: event.username }
            : { ok: false as const, response: event.username === 'slow' ? pop3Replies.authThrottled() : pop3Replies.authFailed() };
          absorb(session.resolveAuth(event.requestId, outcome, now));
          break;
        }
        case 'lock': {
          const fail = fails.delete('lock-fails');
          absorb(session.resolveLock(event.requestId, fail ? { ok: false, response: pop3Replies.maildropInUse() } : { ok: true, maildrop: { messages: maildrop } }, now));
          break;
        }
        case 'read': {
          const fail = fails.delete('read-fails');
          const bytes = messages.get(event.uid);
          absorb(session.resolveRead(event.requestId, fail || !bytes ? { ok: false, response: pop3Replies.readFailed('the spool is unavailable') } : { ok: true, bytes }, now));
          break;
        }
        case 'update': {
          const fail = fails.delete('update-fails');
          absorb(session.resolveUpdate(event.requestId, fail ? { ok: false, response: pop3Replies.updateFailed() } : { ok: true }, now));
          break;
        }
        default:
          break;
      }
    },
    directive(name) {
      if (name !== 'lock-fails' && name !== 'read-fails' && name !== 'update-fails') return false;
      fails.add(name);
      return true;
    },
  });
}
