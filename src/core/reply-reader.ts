/**
 * @module Reply framing for the client: bytes from a server, split anywhere, become lines and
 * whole replies (RFC 5321 §4.2: "code-text" lines, then "code SP text"). Pulled one reading at a
 * time, so that the session can stop between replies (after 220 to STARTTLS, RFC 3207 §4.2, the
 * rest belongs to TLS or must be thrown away).
 * Rule: pure; a peer that breaks the framing gets one `violation`, and the reader stays broken.
 */
import { assembleReply, parseReplyLine, type Reply } from './reply.ts';

export type ReplyReading =
  /** One complete line as received, without its line ending (for the transcript). */
  | { readonly kind: 'line'; readonly text: string }
  /** The reply the last line completed; it comes right after that line's `line`. */
  | { readonly kind: 'reply'; readonly reply: Reply }
  | { readonly kind: 'violation'; readonly what: string };

const CR = 13;
const LF = 10;
const EMPTY = new Uint8Array(0);
const DECODER = new TextDecoder();
// RFC 5321 §4.5.3.1.5 allows reply lines of 512 octets; servers exceed it in EHLO and error
// text, so the cap only guards against a peer that never ends a line.
export const MAX_REPLY_LINE_BYTES = 8192;

export class ReplyReader {
  #buffer: Uint8Array = EMPTY;
  /** Bytes of #buffer already read. */
  #at = 0;
  /** Lines decoded ahead of reading, and the first not yet read. */
  #lines: string[] = [];
  #next = 0;
  #code = 0;
  #texts: string[] = [];
  /** Readings due before any further line: a reply or a violation after the line that made it. */
  #due: ReplyReading[] = [];
  #broken = false;

  /** Bytes read from the server. */
  push(bytes: Uint8Array): void {
    if (this.#broken || bytes.length === 0) return;
    const rest = this.#buffer.subarray(this.#at);
    if (rest.length === 0) this.#buffer = bytes;
    else {
      const joined = new Uint8Array(rest.length + bytes.length);
      joined.set(rest, 0);
      joined.set(bytes, rest.length);
      this.#buffer = joined;
    }
    this.#at = 0;
    this.#lines = [];
    this.#next = 0;
  }

  /** The next line, reply or violation; null when more bytes are needed. */
  next(): ReplyReading | null {
    const due = this.#due.shift();
    if (due !== undefined) return due;
    if (this.#broken) return null;
    const buffer = this.#buffer;
    if (this.#next === this.#lines.length) {
      const lastLf = buffer.lastIndexOf(LF);
      if (lastLf < this.#at) {
        if (buffer.length - this.#at > MAX_REPLY_LINE_BYTES) return this.#violation(`a reply line longer than ${MAX_REPLY_LINE_BYTES} bytes`);
        return null;
      }
      // Every complete line is decoded in one go: an LF is never inside a UTF-8 sequence, so the
      // text splits at "\n" exactly where the bytes do.
      this.#lines = DECODER.decode(buffer.subarray(this.#at, lastLf)).split('\n');
      this.#next = 0;
    }
    const raw = this.#lines[this.#next++];
    const lf = buffer.indexOf(LF, this.#at);
    if (lf - this.#at > MAX_REPLY_LINE_BYTES) return this.#violation(`a reply line longer than ${MAX_REPLY_LINE_BYTES} bytes`);
    this.#at = lf + 1;
    if (this.#at === buffer.length) {
      this.#buffer = EMPTY;
      this.#at = 0;
      this.#lines = [];
      this.#next = 0;
    }
    // Replies end in CRLF (RFC 5321 §2.3.8); a bare LF from a sloppy server is tolerated.
    const line = raw.charCodeAt(raw.length - 1) === CR ? raw.slice(0, -1) : raw;
    const parsed = parseReplyLine(line);
    if (parsed.kind === 'malformed') this.#due.push(this.#violation(`a malformed reply line ${JSON.stringify(line.slice(0, 80))}`));
    // RFC 5321 §4.2.1: every line of a multi-line reply carries the same code.
    else if (this.#texts.length > 0 && parsed.code !== this.#code) {
      this.#due.push(this.#violation(`a multi-line reply that changes its code from ${this.#code} to ${parsed.code}`));
    } else {
      this.#code = parsed.code;
      this.#texts.push(parsed.text);
      if (parsed.last) {
        this.#due.push({ kind: 'reply', reply: assembleReply(this.#code, this.#texts) });
        this.#texts = [];
      }
    }
    return { kind: 'line', text: line };
  }

  #violation(what: string): ReplyReading {
    this.#broken = true;
    return { kind: 'violation', what };
  }

  /** Forgets the lines of a reply not yet complete (the session gave up waiting for it). */
  dropPartialReply(): void {
    this.#texts = [];
  }

  /** Throws away every byte not yet read; returns how many there were. */
  discard(): number {
    const n = this.#buffer.length - this.#at;
    this.#buffer = EMPTY;
    this.#at = 0;
    this.#lines = [];
    this.#next = 0;
    this.#texts = [];
    this.#due = [];
    return n;
  }
}
