/**
 * Runs an IMAP transcript (tests/fixtures/transcripts/imap/*.txt) against the pure core, in the
 * format of reader-transcript.ts (a flag is written \\Seen there).
 *
 * IMAP's own: `% tls starttls|implicit`, `% insecure-auth`, `% max-errors N`, `% max-literal N`
 * and `% uidvalidity N` set the configuration; `% message UID FLAGS TEXT` adds a message to
 * alice's INBOX (FLAGS comma separated or "-", TEXT escaped, no CRLF added). `@ store-fails`,
 * `@ load-fails` make the next such request fail, and changes made elsewhere arrive with
 * `@ arrives UID TEXT`, `@ expunged UID`, `@ flags UID FLAGS`. `= EVENT` names logged-in,
 * selected, unselected, store-flags and expunge events. The password of "alice" is "secret"; no
 * one else logs in.
 */
import { ImapSession, DEFAULT_IMAP_LIMITS, type ImapConfig, type ImapEvent, type ImapStep } from '../../src/core/imap/session.ts';
import type { ImapMessageData } from '../../src/core/imap/mailbox-port.ts';
import type { MailboxChange } from '../../src/core/imap/selected-mailbox.ts';
import { entityHeaderFields } from '../../src/core/imap/bodystructure.ts';
import { headerLength } from '../../src/core/imap/fetch.ts';
import { parseHeaderFields, parseMimeStructure } from '../../src/core/mime-structure.ts';
import { parseReaderTranscript, runReaderTranscript, type ReaderRunResult, type ReaderStep } from './reader-transcript.ts';
import { unescape, type FeedMode } from './server-transcript.ts';

interface StoredMessage {
  flags: string[];
  readonly bytes: Uint8Array;
}

export interface ImapTranscript {
  readonly steps: readonly ReaderStep[];
  readonly config: ImapConfig;
  readonly messages: ReadonlyMap<number, StoredMessage>;
  readonly uidValidity: number;
}

const flagList = (text: string): string[] => (text === '-' ? [] : text.split(','));

export function parseImapTranscript(text: string): ImapTranscript {
  let tls: ImapConfig['tls'] = 'none';
  let allowInsecureAuth = false;
  let limits = { ...DEFAULT_IMAP_LIMITS };
  let uidValidity = 1764633600;
  const messages = new Map<number, StoredMessage>();
  const { steps } = parseReaderTranscript(text, (name, [value = '', flags = '-', ...rest], lineNo) => {
    if (name === 'tls') tls = value as ImapConfig['tls'];
    else if (name === 'insecure-auth') allowInsecureAuth = true;
    else if (name === 'max-errors') limits = { ...limits, maxErrors: Number(value) };
    else if (name === 'max-literal') limits = { ...limits, maxLiteralBytes: Number(value) };
    else if (name === 'uidvalidity') uidValidity = Number(value);
    else if (name === 'message') messages.set(Number(value), { flags: flagList(flags), bytes: unescape(`${rest.join(' ')}\\c`) });
    else throw new Error(`line ${lineNo}: unknown setting "${name}"`);
  });
  return { steps, config: { hostname: 'imap.test', tls, allowInsecureAuth, limits }, messages, uidValidity };
}

/** A message's data as the store would give it, from its bytes. */
export function messageData(uid: number, bytes: Uint8Array): ImapMessageData {
  const structure = parseMimeStructure(bytes);
  const fields = parseHeaderFields(bytes, 0, headerLength(bytes));
  return {
    uid,
    internalDateMs: 1_764_633_600_000 + uid * 60_000,
    size: bytes.length,
    bytes: () => bytes,
    structure: () => structure,
    headerFields: () => entityHeaderFields(bytes, structure),
    headerValues: (name) => fields.filter((f) => f.name.toLowerCase() === name).map((f) => f.value),
    headerText: () => fields.map((f) => `${f.name}: ${f.value}`).join('\r\n'),
    bodyText: () => new TextDecoder().decode(bytes.subarray(headerLength(bytes))),
  };
}

export type ImapRunResult = ReaderRunResult<ImapEvent>;

function describe(event: ImapEvent): string | null {
  switch (event.kind) {
    case 'logged-in':
      return `logged-in ${event.user} ${event.mechanism}`;
    case 'selected':
    case 'unselected':
      return `${event.kind} ${event.user}`;
    case 'store-flags':
      return `store-flags ${event.changes.map((c) => `${c.uid}=${c.flags.join(',') || '-'}`).join(' ')}`;
    case 'expunge':
      return `expunge ${event.uids.join(' ')}`;
    default:
      return null;
  }
}

export function runImapTranscript(text: string, mode: FeedMode): ImapRunResult {
  const { steps, config, messages: initial, uidValidity } = parseImapTranscript(text);
  const messages = new Map([...initial].map(([uid, m]) => [uid, { flags: [...m.flags], bytes: m.bytes }]));
  const claimed = new Set<number>();
  const session = new ImapSession(config, 1_000_000);
  const fails = new Set<string>();
  const failure = (what: string) => ({ ok: false as const, status: { condition: 'NO' as const, code: 'SERVERBUG', text: `${what} failed: the spool is unavailable` } });

  return runReaderTranscript<ImapEvent, ImapStep>(steps, mode, {
    session,
    decoder: new TextDecoder('latin1'),
    idlePastDeadlineMs: 0,
    silentAfterClose: true,
    multiLineBlocks: false,
    describe,
    onEvent(event, { absorb, now }) {
      switch (event.kind) {
        case 'auth': {
          const ok = event.username === 'alice' && event.password === 'secret';
          absorb(session.resolveAuth(event.requestId, ok ? { ok: true, user: 'alice' } : { ok: false, status: { condition: 'NO', code: 'AUTHENTICATIONFAILED', text: 'Authentication failed' } }, now));
          break;
        }
        case 'open': {
          const uids = [...messages.keys()].sort((a, b) => a - b);
          const recentUids = event.claimRecent ? uids.filter((u) => !claimed.has(u)) : [];
          for (const u of recentUids) claimed.add(u);
          const uidNext = Math.max(0, ...initial.keys(), ...messages.keys()) + 1;
          absorb(session.resolveOpen(event.requestId, { ok: true, mailbox: { uidValidity, uidNext, recentUids, messages: uids.map((uid) => ({ uid, flags: [...messages.get(uid)!.flags] })) } }, now));
          break;
        }
        case 'load': {
          if (fails.delete('load-fails')) absorb(session.resolveLoad(event.requestId, failure('Reading messages'), now));
          else absorb(session.resolveLoad(event.requestId, { ok: true, messages: event.uids.filter((u) => messages.has(u)).map((u) => messageData(u, messages.get(u)!.bytes)) }, now));
          break;
        }
        case 'store-flags': {
          if (fails.delete('store-fails')) absorb(session.resolveChange(event.requestId, failure('Storing flags'), now));
          else {
            for (const c of event.changes) {
              const m = messages.get(c.uid);
              if (m) m.flags = [...c.flags];
            }
            absorb(session.resolveChange(event.requestId, { ok: true }, now));
          }
          break;
        }
        case 'expunge': {
          for (const uid of event.uids) messages.delete(uid);
          absorb(session.resolveChange(event.requestId, { ok: true }, now));
          break;
        }
        default:
          break;
      }
    },
    directive(name, [first = '', ...rest], { absorb, now }) {
      const notify = (change: MailboxChange): void => absorb(session.notify([change], now));
      switch (name) {
        case 'store-fails':
        case 'load-fails':
          fails.add(name);
          return true;
        case 'arrives': {
          const uid = Number(first);
          messages.set(uid, { flags: [], bytes: unescape(`${rest.join(' ')}\\c`) });
          notify({ kind: 'appended', uid, flags: [] });
          return true;
        }
        case 'expunged':
          messages.delete(Number(first));
          notify({ kind: 'expunged', uid: Number(first) });
          return true;
        case 'flags': {
          const flags = flagList(rest[0] ?? '-');
          const m = messages.get(Number(first));
          if (m) m.flags = flags;
          notify({ kind: 'flags', uid: Number(first), flags });
          return true;
        }
        default:
          return false;
      }
    },
  });
}
