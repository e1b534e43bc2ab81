/**
 * @module What replay reads: spool segments (a file, a folder of them, a data directory, or
 * chosen ids in one), single messages (.eml), mbox files and Maildirs, as one stream of
 * transactions and of problems (damage, a message without an envelope).
 * Rule 1: read-only. Sources are opened 'r' and never locked, cut, renamed or written.
 * Rule 2: planSources() checks every path before anything is sent (a wrong path fails the run
 *         at once); readSources() then reads lazily, one transaction at a time, as sending needs.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { EXIT, InputError, UsageError } from '../exit-status.ts';
import { parsePath, type Mailbox } from '../core/address.ts';
import type { Parameter } from '../core/command.ts';
import type { Recipient } from '../core/envelope.ts';
import { fromLineSender, isMbox, splitMbox } from '../message/mbox.ts';
import { headerMessageId, headerRecipients, headerSender, parseRawMessage } from '../message/raw-message.ts';
import { createLayout, parseSegmentName } from '../spool/layout.ts';
import { scanSegmentFile } from './segment-reader.ts';

/** One transaction to replay, as recorded (a spool record) or as found in a message's header. */
export interface ReplayItem {
  readonly file: string;
  /** Where the record or mbox message starts; null for a whole file. */
  readonly offset: number | null;
  /** The spool message id, for spool records. */
  readonly id: string | null;
  /** The Message-ID field without its angle brackets, for message files. */
  readonly messageId: string | null;
  /** When it was received (spool), or its Date field (message files); null when unknown. */
  readonly timeMs: number | null;
  /** undefined: a message file whose header names no sender (--from must). */
  readonly sender: Mailbox | null | undefined;
  readonly recipients: readonly Recipient[];
  /** Why the header gave no recipients, when it gave none. */
  readonly recipientsProblem: string | null;
  readonly mailParams: readonly Parameter[];
  readonly authUser: string | null;
  readonly body: { readonly stuffed: Uint8Array; readonly message?: undefined } | { readonly message: Uint8Array; readonly stuffed?: undefined };
  /** Bytes of the source this item stands for (for progress). */
  readonly sourceBytes: number;
}

/** A stretch of a source that could not be replayed, and why. */
export interface ReplayProblem {
  readonly file: string;
  readonly offset: number | null;
  readonly bytes: number;
  readonly reason: string;
}

export type SourceEvent = { readonly kind: 'item'; readonly item: ReplayItem } | { readonly kind: 'problem'; readonly problem: ReplayProblem };

type SourceFile =
  | { readonly kind: 'segment'; readonly path: string; readonly bytes: number }
  | { readonly kind: 'mbox'; readonly path: string; readonly bytes: number }
  | { readonly kind: 'message'; readonly path: string; readonly bytes: number };

export interface SourcePlan {
  readonly files: readonly SourceFile[];
  /** Only these spool ids (--data DIR --id ID); null: everything. */
  readonly ids: ReadonlySet<string> | null;
  readonly dataDir: string | null;
  readonly totalBytes: number;
}

const SNIFF_BYTES = 16;
const EHLO = Buffer.from('EHLO ', 'latin1');

function statOrFail(path: string): Stats {
  try {
    return statSync(path);
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new InputError(`${path}: ${why}`, code === 'EACCES' ? EXIT.noPerm : EXIT.noInput);
  }
}

function sniff(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    return head.subarray(0, readSync(fd, head, 0, SNIFF_BYTES, 0));
  } finally {
    closeSync(fd);
  }
}

/** A file's kind: by its name for .smtp and .eml, else by its first bytes. */
function classifyFile(path: string, bytes: number): SourceFile {
  if (path.endsWith('.smtp')) return { kind: 'segment', path, bytes };
  if (path.endsWith('.eml')) return { kind: 'message', path, bytes };
  const head = sniff(path);
  if (head.subarray(0, EHLO.length).equals(EHLO)) return { kind: 'segment', path, bytes };
  if (isMbox(head)) return { kind: 'mbox', path, bytes };
  return { kind: 'message', path, bytes };
}

function filesIn(dir: string): { name: string; path: string; bytes: number }[] {
  return readdirSync(dir)
    .sort()
    .map((name) => ({ name, path: join(dir, name) }))
    .flatMap((f) => {
      const st = statSync(f.path);
      return st.isFile() ? [{ ...f, bytes: st.size }] : [];
    });
}

/** The segment files of a data directory, in write order. */
function segmentsOf(dataDir: string): SourceFile[] {
  const segmentsDir = createLayout(dataDir).segmentsDir;
  statOrFail(segmentsDir);
  return filesIn(segmentsDir)
    .map((f) => ({ ...f, seq: parseSegmentName(f.name) }))
    .filter((f) => f.seq !== null)
    .sort((a, b) => a.seq! - b.seq!)
    .map((f) => ({ kind: 'segment' as const, path: f.path, bytes: f.bytes }));
}

/** A directory: a Maildir (cur/, new/), a data directory (segments/), or a folder of segments and .eml files. */
function classifyDirectory(dir: string): SourceFile[] {
  const isDir = (p: string) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  };
  if (isDir(join(dir, 'cur')) || isDir(join(dir, 'new'))) {
    // Maildir: new/ then cur/, each in name order (names begin with the delivery time); tmp/ is unfinished.
    return ['new', 'cur'].flatMap((sub) => (isDir(join(dir, sub)) ? filesIn(join(dir, sub)) : []))
      .filter((f) => !f.name.startsWith('.'))
      .map((f) => ({ kind: 'message' as const, path: f.path, bytes: f.bytes }));
  }
  if (isDir(join(dir, 'segments'))) return segmentsOf(dir);
  const files = filesIn(dir).filter((f) => f.name.endsWith('.smtp') || f.name.endsWith('.eml'));
  if (files.length === 0) throw new InputError(`${dir}: no spool segments (*.smtp), .eml files, Maildir or data directory in it`, EXIT.noInput);
  return files.map((f) => classifyFile(f.path, f.bytes));
}

/** Checks the paths and lists the files to read, in order. */
export function planSources(paths: readonly string[], dataDir: string | null, ids: readonly string[]): SourcePlan {
  if (ids.length > 0 && dataDir === null) throw new UsageError('--id needs --data DIR (the spool to take the messages from)');
  const files: SourceFile[] = [];
  if (dataDir !== null) {
    if (!statOrFail(dataDir).isDirectory()) throw new UsageError(`--data ${dataDir}: not a directory`);
    files.push(...segmentsOf(dataDir));
  }
  for (const path of paths) {
    const st = statOrFail(path);
    files.push(...(st.isDirectory() ? classifyDirectory(path) : [classifyFile(path, st.size)]));
  }
  if (files.length === 0 && paths.length === 0 && dataDir === null) throw new UsageError('give spool files, message files, mbox files or Maildirs to replay, or --data DIR');
  return { files, ids: ids.length > 0 ? new Set(ids) : null, dataDir, totalBytes: files.reduce((n, f) => n + f.bytes, 0) };
}

/** Every transaction and problem of the planned sources, in order. */
export function* readSources(plan: SourcePlan): Generator<SourceEvent> {
  const wanted = plan.ids === null ? null : new Set(plan.ids);
  for (const file of plan.files) {
    switch (file.kind) {
      case 'segment':
        yield* readSegment(file.path, wanted);
        break;
      case 'mbox':
        if (wanted === null) yield* readMbox(file.path);
        break;
      case 'message':
        if (wanted === null) yield readMessageFile(file.path, null, readFileSync(file.path), null);
        break;
      default:
        file satisfies never;
    }
    if (wanted !== null && wanted.size === 0) return;
  }
  if (wanted !== null) {
    for (const id of wanted) yield { kind: 'problem', problem: { file: plan.dataDir ?? '', offset: null, bytes: 0, reason: `no message with id ${id} in the spool` } };
  }
}

function* readSegment(path: string, wanted: Set<string> | null): Generator<SourceEvent> {
  for (const event of scanSegmentFile(path)) {
    if (event.kind === 'damaged') {
      // With --id, damage elsewhere in the spool is none of this run's business.
      if (wanted === null) yield { kind: 'problem', problem: { file: path, offset: event.offset, bytes: event.bytes, reason: event.reason } };
      continue;
    }
    const { record, stuffed, offset } = event;
    if (wanted !== null) {
      if (!wanted.has(record.id)) continue;
      wanted.delete(record.id);
    }
    const env = record.envelope;
    yield {
      kind: 'item',
      item: {
        file: path,
        offset,
        id: record.id,
        messageId: null,
        timeMs: record.timeMs,
        sender: env.sender,
        recipients: env.recipients,
        recipientsProblem: null,
        mailParams: env.mailParams,
        authUser: env.authUser,
        body: { stuffed },
        sourceBytes: record.bytes,
      },
    };
  }
}

function* readMbox(path: string): Generator<SourceEvent> {
  for (const m of splitMbox(readFileSync(path))) {
    yield readMessageFile(path, m.offset, m.bytes, fromLineSender(m.fromLine), m.bytes.length + m.fromLine.length + 7);
  }
}

/**
 * A message file's envelope from its header: the sender from Return-Path (what the last
 * delivery recorded), else the mbox "From " line, else From; the recipients from To, Cc and Bcc.
 */
function readMessageFile(path: string, offset: number | null, bytes: Uint8Array, fromLine: string | null, sourceBytes = bytes.length): SourceEvent {
  const raw = parseRawMessage(bytes);
  const field = (name: string) => raw.fields.find((f) => f.name.toLowerCase() === name)?.value;
  let sender: Mailbox | null | undefined;
  const returnPath = field('return-path');
  const parsedReturn = returnPath === undefined ? null : parsePath(returnPath.trim(), { allowNull: true, utf8: true });
  if (parsedReturn?.ok) sender = parsedReturn.mailbox;
  else if (fromLine !== null) {
    const parsed = parsePath(`<${fromLine}>`, { allowNull: false, utf8: true });
    if (parsed.ok) sender = parsed.mailbox;
  }
  if (sender === undefined) {
    try {
      sender = headerSender(raw)?.mailbox;
    } catch {
      sender = undefined;
    }
  }
  let recipients: Recipient[] = [];
  let recipientsProblem: string | null = null;
  try {
    recipients = headerRecipients(raw).map((mailbox) => ({ mailbox, local: false, params: [] }));
    if (recipients.length === 0) recipientsProblem = 'the header names no recipient (To, Cc, Bcc)';
  } catch (error) {
    recipientsProblem = `the recipients in the header do not parse: ${(error as Error).message}`;
  }
  const date = field('date');
  const timeMs = date === undefined ? NaN : Date.parse(date);
  const messageId = headerMessageId(raw);
  return {
    kind: 'item',
    item: {
      file: path,
      offset,
      id: null,
      messageId: messageId === null ? null : messageId.replace(/^<|>$/g, ''),
      timeMs: Number.isFinite(timeMs) ? timeMs : null,
      sender,
      recipients,
      recipientsProblem,
      mailParams: [],
      authUser: null,
      body: { message: bytes },
      sourceBytes,
    },
  };
}

/** "file@offset" (spool records, mbox messages) or the file's name alone. */
export function formatOrigin(item: { readonly file: string; readonly offset: number | null }): string {
  return item.offset === null ? item.file : `${item.file}@${item.offset}`;
}
