/**
 * @module The append-only file that segments and the state journal both are.
 * Rule 1: positioned writes at the tracked end; a failed write is cut back.
 * Rule 2: `durableBytes` grows only when an fdatasync begun after the write has returned; a new
 *         file also fsyncs its folder once. Write and fdatasync go through SpoolIo (fault tests).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FILE_MODE } from './layout.ts';

/** The I/O calls of the hot path; replaceable so tests can inject ENOSPC or EIO. */
export interface SpoolIo {
  /** Like fs.writeSync(fd, bytes, 0, bytes.length, position): returns the bytes written. */
  write(fd: number, bytes: Uint8Array, position: number): number;
  /** fdatasync(2) off the main thread. */
  datasync(fd: number): Promise<void>;
  /** Like fs.readSync(fd, buffer, 0, buffer.length, position), for start-up's scan; default that. */
  read?(fd: number, buffer: Uint8Array, position: number): number;
}

/** Bun runs the callback form of fs.fdatasync on its thread pool (measured: the event loop
 * keeps turning during the call, and strace shows fdatasync on another thread). */
export const nodeIo: SpoolIo = Object.freeze({
  write: (fd: number, bytes: Uint8Array, position: number) => fs.writeSync(fd, bytes, 0, bytes.length, position),
  datasync: (fd: number) =>
    new Promise<void>((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve()))),
});

/** fsync(2) on a directory, so a file created, renamed or removed in it stays that way. */
export async function syncDirectory(dir: string): Promise<void> {
  const fd = fs.openSync(dir, 'r');
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  } finally {
    fs.closeSync(fd);
  }
}

/** The blocking form, for start-up and for the short critical sections of compaction. */
export function syncDirectorySync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a whole buffer at `position`, looping over short writes. */
export function writeFully(io: SpoolIo, fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = io.write(fd, done === 0 ? bytes : bytes.subarray(done), position + done);
    if (n <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    done += n;
  }
}

/** Reads exactly `length` bytes at `position` (pread); a short file is an error. */
export function readExactly(fd: number, position: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  readExactlyInto(fd, out, 0, position, length);
  return out;
}

/** Reads `length` bytes at `position` of `fd` into `target` from `at`, or throws when the file ends first. */
export function readExactlyInto(fd: number, target: Uint8Array, at: number, position: number, length: number): void {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, target, at + done, length - done, position + done);
    if (n <= 0) throw new Error(`spool: file ends ${length - done} bytes early at ${position + done}`);
    done += n;
  }
}

export class AppendFile {
  readonly path: string;
  readonly #io: SpoolIo;
  #fd: number;
  #bytes: number;
  #durableBytes: number;
  #needsDirSync: boolean;

  private constructor(filePath: string, fd: number, bytes: number, io: SpoolIo, isNew: boolean) {
    this.path = filePath;
    this.#fd = fd;
    this.#bytes = bytes;
    this.#durableBytes = isNew ? 0 : bytes;
    this.#io = io;
    this.#needsDirSync = isNew;
  }

  /** Creates a new file (never over an existing one) and writes `header` into it. */
  static create(filePath: string, header: Uint8Array, io: SpoolIo): AppendFile {
    const fd = fs.openSync(filePath, 'wx', FILE_MODE);
    const file = new AppendFile(filePath, fd, 0, io, true);
    try {
      if (header.length > 0) file.append(header);
    } catch (err) {
      file.close();
      fs.rmSync(filePath, { force: true });
      throw err;
    }
    return file;
  }

  /** Opens an existing file to append after its first `bytes` bytes (recovery checked them). */
  static openExisting(filePath: string, bytes: number, io: SpoolIo): AppendFile {
    return new AppendFile(filePath, fs.openSync(filePath, 'r+'), bytes, io, false);
  }

  get fd(): number {
    return this.#fd;
  }

  /** Bytes written, durable or not. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes an fdatasync has covered. */
  get durableBytes(): number {
    return this.#durableBytes;
  }

  get dirty(): boolean {
    return this.#bytes !== this.#durableBytes || this.#needsDirSync;
  }

  /** Writes `bytes` at the end and returns their offset. On failure the file is cut back and the error rethrown. */
  append(bytes: Uint8Array): number {
    const at = this.#bytes;
    try {
      writeFully(this.#io, this.#fd, bytes, at);
    } catch (err) {
      this.#cutTo(at);
      throw err;
    }
    this.#bytes = at + bytes.length;
    return at;
  }

  /** Makes everything written so far durable. */
  async sync(): Promise<void> {
    const target = this.#bytes;
    const dir = this.#needsDirSync;
    if (dir) await Promise.all([this.#io.datasync(this.#fd), syncDirectory(path.dirname(this.path))]);
    else await this.#io.datasync(this.#fd);
    if (dir) this.#needsDirSync = false;
    if (target > this.#durableBytes) this.#durableBytes = target;
  }

  /**
   * After a failed sync nothing past `durableBytes` can be trusted (a failed fdatasync may have
   * dropped dirty pages): cut the file back to it, best effort.
   */
  rollBack(): void {
    this.#cutTo(this.#durableBytes);
  }

  #cutTo(size: number): void {
    try {
      fs.ftruncateSync(this.#fd, size);
    } catch {
      // The bytes beyond `size` stay, but nothing points at them and later writes overwrite
      // them; recovery cuts whatever is left past the last valid record.
    }
    this.#bytes = size;
  }

  close(): void {
    if (this.#fd < 0) return;
    fs.closeSync(this.#fd);
    this.#fd = -1;
  }
}
