/**
 * @module --failed-out: the transactions that did not reach every recipient, written as a new
 * spool segment (spool/segment-format.ts), so that `mailbox replay FILE` retries exactly those.
 * Rule 1: a new file only ('wx'): it can never overwrite a source or an earlier run's output.
 * Rule 2: a record keeps the id, time, MAIL parameters and message of what was replayed, with
 *         only the recipients that did not get it (a partly refused message is not resent to
 *         the ones who have it). It is fsynced when closed.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { EXIT, SetupError, UsageError } from '../exit-status.ts';
import type { Envelope } from '../core/envelope.ts';
import { dotStuff } from '../core/data.ts';
import { FILE_MODE } from '../spool/layout.ts';
import { formatRecord, formatSegmentHeader } from '../spool/segment-format.ts';
import { refusedRecipients, type ReplayResult } from './outcome.ts';

/** Writes are gathered up to this size before they go to the file. */
const FLUSH_BYTES = 1 << 20;

export class FailedSpool {
  readonly path: string;
  readonly #fd: number;
  readonly #newId: () => string;
  readonly #now: () => number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #records = 0;

  private constructor(path: string, fd: number, newId: () => string, now: () => number) {
    this.path = path;
    this.#fd = fd;
    this.#newId = newId;
    this.#now = now;
  }

  /** Creates the file with its EHLO line; refuses a path that exists. */
  static create(path: string, hostname: string, newId: () => string, now: () => number): FailedSpool {
    let fd: number;
    try {
      fd = openSync(path, 'wx', FILE_MODE);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'EEXIST') throw new UsageError(`--failed-out ${path}: the file exists; give a new file name`);
      throw new SetupError(`--failed-out ${path}: ${(error as Error).message}`, EXIT.osErr);
    }
    const spool = new FailedSpool(path, fd, newId, now);
    spool.#push(formatSegmentHeader(hostname));
    return spool;
  }

  get records(): number {
    return this.#records;
  }

  /** Adds the part of a transaction that failed (nothing when every recipient got it). */
  add(result: ReplayResult): void {
    const recipients = refusedRecipients(result);
    if (recipients.length === 0) return;
    const { item } = result;
    const envelope: Envelope = {
      sender: result.sender,
      mailParams: item.mailParams,
      recipients: recipients.map((r) => ({ ...r, local: false })),
      utf8: false,
      body: '7BIT',
      declaredSize: null,
      authUser: item.authUser,
    };
    const stuffed = item.body.stuffed ?? dotStuff(item.body.message);
    this.#push(formatRecord({ id: item.id ?? this.#newId(), timeMs: item.timeMs ?? this.#now(), envelope, stuffed, local: recipients.map(() => false) }));
    this.#records++;
  }

  /** Writes what is left and makes it durable. */
  close(): void {
    try {
      this.#flush();
      fsyncSync(this.#fd);
    } finally {
      closeSync(this.#fd);
    }
  }

  #push(bytes: Uint8Array): void {
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    if (this.#pendingBytes >= FLUSH_BYTES) this.#flush();
  }

  #flush(): void {
    if (this.#pendingBytes === 0) return;
    const all = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    for (let at = 0; at < all.length; ) at += writeSync(this.#fd, all, at, all.length - at);
  }
}
