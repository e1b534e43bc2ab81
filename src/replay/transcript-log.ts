/**
 * @module --transcript FILE for replay: the C:/S: dialogue of every connection in one file, in
 * the order it happened, with a "# connection N" line wherever the speaking connection changes
 * (a comment in the transcript format, so the file still parses).
 * Rule: secrets never reach the file (renderTranscript redacts AUTH); writes are gathered and go
 *       out in large blocks, so a load run is not slowed by one write per line.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { EXIT, SetupError } from '../exit-status.ts';
import { renderTranscript, type TranscriptEntry } from '../core/transcript.ts';

const FLUSH_CHARS = 1 << 16;

export class TranscriptLog {
  readonly #fd: number;
  #buffer = '';
  #connection = 0;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  static create(path: string): TranscriptLog {
    try {
      return new TranscriptLog(openSync(path, 'w', 0o600));
    } catch (error) {
      throw new SetupError(`--transcript ${path}: ${(error as Error).message}`, EXIT.osErr);
    }
  }

  note(connection: number, text: string): void {
    this.#switchTo(connection);
    this.#add(`# ${text}\n`);
  }

  entry(connection: number, entry: TranscriptEntry): void {
    this.#switchTo(connection);
    for (const line of renderTranscript([entry])) this.#add(`${line}\n`);
  }

  close(): void {
    this.#flush();
    closeSync(this.#fd);
  }

  #switchTo(connection: number): void {
    if (connection === this.#connection) return;
    this.#connection = connection;
    this.#add(`# connection ${connection}\n`);
  }

  #add(text: string): void {
    this.#buffer += text;
    if (this.#buffer.length >= FLUSH_CHARS) this.#flush();
  }

  #flush(): void {
    if (this.#buffer === '') return;
    const bytes = Buffer.from(this.#buffer, 'utf8');
    this.#buffer = '';
    for (let at = 0; at < bytes.length; ) at += writeSync(this.#fd, bytes, at, bytes.length - at);
  }
}
