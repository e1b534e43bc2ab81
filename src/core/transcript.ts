/**
 * @module Transcripts: the C:/S: dialogue of a session, as entries, as text, and parsed back.
 * Rule 1: rendering never shows a secret; AUTH arguments and the answers to 334 challenges
 *         print as "<redacted>", whatever the entry says.
 * Rule 2: the text form is the fixture form: `C:`/`S:` lines, `@ event` lines, `# comments`.
 */

/** One thing that crossed the wire, or one event the session saw. */
export type TranscriptEntry =
  | { readonly kind: 'line'; readonly dir: 'C' | 'S'; readonly text: string; readonly secret?: boolean }
  /** The message after DATA as written: dot-stuffed, CRLF lines, without the final ".". */
  | { readonly kind: 'content'; readonly bytes: Uint8Array }
  /** An event that is not a line: "tls" once a handshake finishes, "peer-closes", "idle". */
  | { readonly kind: 'event'; readonly name: string }
  | { readonly kind: 'note'; readonly text: string };

export interface RenderOptions {
  /** 'summary' (default) prints one line for the message; 'full' prints every line of it. */
  readonly content?: 'summary' | 'full';
}

const LF = 10;
const DECODER = new TextDecoder();

/** Lines of dot-stuffed content, without their CRLF. */
function contentLines(bytes: Uint8Array): string[] {
  const text = DECODER.decode(bytes);
  const lines = text.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function countLines(bytes: Uint8Array): number {
  let n = 0;
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) n++;
  return bytes.length > 0 && bytes[bytes.length - 1] !== LF ? n + 1 : n;
}

/** RFC 4954 §4: "AUTH mechanism [initial-response]"; the response carries the credentials. */
function redactAuth(text: string): string {
  const m = /^(AUTH\s+\S+)\s+\S/i.exec(text);
  return m ? `${m[1]} <redacted>` : text;
}

/**
 * Renders entries as transcript lines (no trailing newline on each). Client lines that answer a
 * 334 challenge, or that an entry marks secret, are shown as "<redacted>" (RFC 4954 §4).
 */
export function renderTranscript(entries: Iterable<TranscriptEntry>, options: RenderOptions = {}): string[] {
  const out: string[] = [];
  let challenged = false;
  for (const entry of entries) {
    switch (entry.kind) {
      case 'line': {
        if (entry.dir === 'S') {
          challenged = /^334[ -]/.test(entry.text);
          out.push(`S: ${entry.text}`);
        } else {
          const hidden = entry.secret === true || challenged;
          const text = /^AUTH\s/i.test(entry.text) ? redactAuth(entry.text) : hidden ? '<redacted>' : entry.text;
          challenged = false;
          out.push(`C: ${text}`);
        }
        break;
      }
      case 'content':
        if (options.content === 'full') {
          for (const line of contentLines(entry.bytes)) out.push(`C: ${line}`);
        } else {
          out.push(`C: [message: ${countLines(entry.bytes)} lines, ${entry.bytes.length} bytes]`);
        }
        break;
      case 'event':
        out.push(`@ ${entry.name}`);
        break;
      case 'note':
        out.push(`# ${entry.text}`);
        break;
      default:
        entry satisfies never;
    }
  }
  return out;
}

/** One step of a parsed transcript, with the 1-based line it came from. */
export type TranscriptStep =
  | { readonly kind: 'C' | 'S'; readonly text: string; readonly line: number }
  /** "@ name args": an event to inject ("@ idle", "@ peer-closes", "@ send …"). */
  | { readonly kind: 'event'; readonly name: string; readonly args: string; readonly line: number }
  /** "= text": an expectation on what the core reports (matched as a pattern). */
  | { readonly kind: 'expect'; readonly text: string; readonly line: number };

export interface ParsedTranscript {
  /** The text of the leading "#" lines: the RFC section the fixture pins. */
  readonly title: string;
  readonly steps: readonly TranscriptStep[];
}

/**
 * Parses transcript text. "C: x" and "S: x" keep everything after the first space ("C: " alone is
 * an empty line, as in message content); "#" lines and blank lines are comments.
 */
export function parseTranscript(text: string): ParsedTranscript {
  const steps: TranscriptStep[] = [];
  const title: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const line = i + 1;
    if (raw.startsWith('#')) {
      if (steps.length === 0) title.push(raw.replace(/^#\s?/, ''));
      continue;
    }
    if (raw.trim() === '') continue;
    const m = /^(C|S):(?: (.*))?$/.exec(raw);
    if (m) {
      steps.push({ kind: m[1] as 'C' | 'S', text: m[2] ?? '', line });
      continue;
    }
    if (raw.startsWith('@ ')) {
      const body = raw.slice(2).trim();
      const space = body.indexOf(' ');
      steps.push({
        kind: 'event',
        name: space < 0 ? body : body.slice(0, space),
        args: space < 0 ? '' : body.slice(space + 1).trim(),
        line,
      });
      continue;
    }
    if (raw.startsWith('= ')) {
      steps.push({ kind: 'expect', text: raw.slice(2), line });
      continue;
    }
    throw new Error(`transcript line ${line}: expected "C: ", "S: ", "@ ", "= " or "#", got ${JSON.stringify(raw)}`);
  }
  return { title: title.join(' '), steps };
}

/**
 * Matches a transcript pattern against actual text: "*" stands for any run of characters,
 * everything else must be equal. So "250 2.1.5 *" pins the code and enhanced code only.
 */
export function matchesPattern(pattern: string, actual: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === actual;
  if (!actual.startsWith(parts[0])) return false;
  let at = parts[0].length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = actual.indexOf(parts[i], at);
    if (found < 0) return false;
    at = found + parts[i].length;
  }
  const last = parts[parts.length - 1];
  return actual.length - last.length >= at && actual.endsWith(last);
}
