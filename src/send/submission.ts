/**
 * @module What `mailbox send` sends: the envelope (sender, recipients) and the message, composed
 * from flags and files, or taken whole from `--eml`, `-t` or the `sendmail` name.
 * Rule: reading files and standard input goes through SubmissionIo; the rest is pure, so the
 * envelope rules (Bcc, -t, -f) are tested without a disk.
 */
import { basename } from 'node:path';
import { InputError, UsageError } from '../exit-status.ts';
import { formatPath, type Mailbox } from '../core/address.ts';
import { formatDate } from '../core/envelope.ts';
import { ComposeError, composeMessage, parseAddress, parseAddressList, type Attachment, type ComposeInput } from '../message/compose.ts';
import { guessContentType } from '../message/mime.ts';
import { cutAtDotLine, headerMessageId, headerRecipients, headerSender, parseRawMessage, prepareRawMessage } from '../message/raw-message.ts';

/** A file to attach or inline: "FILE;type=image/png;name=shown.png;cid=logo@x". */
export interface FileSpec {
  readonly path: string;
  readonly type: string | null;
  readonly name: string | null;
  readonly cid: string | null;
}

/** What send's flags say of the message itself (SendOptions adds the connection and the output). */
export interface MessageOptions {
  readonly from: string | null;
  /** sendmail -F: the full name for a From header the message lacks. */
  readonly fullName: string | null;
  readonly to: readonly string[];
  readonly cc: readonly string[];
  readonly bcc: readonly string[];
  readonly replyTo: readonly string[];
  readonly subject: string | null;
  readonly body: string | null;
  readonly bodyFile: string | null;
  readonly html: string | null;
  readonly attach: readonly FileSpec[];
  readonly inline: readonly FileSpec[];
  readonly headers: readonly string[];
  /** Send this message file as it is. */
  readonly eml: string | null;
  /** -t: recipients also from the message's To, Cc and Bcc. */
  readonly readRecipients: boolean;
  /** -i / -oi: a line of a single "." does not end the input (sendmail mode only). */
  readonly ignoreDots: boolean;
  /** Invoked as `sendmail`: standard input is a whole message. */
  readonly sendmail: boolean;
}

export interface Submission {
  readonly sender: Mailbox | null;
  readonly recipients: readonly Mailbox[];
  readonly messageId: string;
  /** The message for a server with (true) or without 8BITMIME. */
  render(eightBitMime: boolean): Uint8Array;
}

export interface SubmissionIo {
  readFile(path: string): Promise<Uint8Array>;
  /** Standard input, or null when it is a terminal (nothing was piped). */
  readStdin(): Promise<Uint8Array | null>;
  readonly now: () => number;
  readonly newId: () => string;
  readonly hostname: () => string;
  /** The login name, for a sender nobody gave (sendmail uses the same). */
  readonly user: string;
}

const DECODER = new TextDecoder();

function inputError(error: unknown): never {
  if (error instanceof ComposeError) throw new InputError(error.message);
  throw error;
}

async function readInput(io: SubmissionIo, path: string, what: string): Promise<Uint8Array> {
  try {
    return await io.readFile(path);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') throw new InputError(`${what} ${path}: no such file`, 66);
    if (code === 'EACCES') throw new InputError(`${what} ${path}: permission denied`, 66);
    if (code === 'EISDIR') throw new InputError(`${what} ${path}: is a directory`, 66);
    throw error;
  }
}

function unique(mailboxes: readonly Mailbox[]): Mailbox[] {
  const seen = new Set<string>();
  return mailboxes.filter((m) => {
    const key = `${m.local}@${m.domain.toLowerCase()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function mailboxesOf(lists: readonly string[]): Mailbox[] {
  try {
    return lists.flatMap(parseAddressList).map((a) => a.mailbox);
  } catch (error) {
    return inputError(error);
  }
}

async function readFileSpec(spec: FileSpec, inline: boolean, io: SubmissionIo): Promise<Attachment> {
  const bytes = await readInput(io, spec.path, inline ? '--inline' : '--attach');
  const filename = spec.name ?? basename(spec.path);
  // The HTML refers to an inline file as cid:NAME, NAME being its file name unless cid= says otherwise.
  const contentId = inline ? (spec.cid ?? filename.replace(/[^!-;=?-~]/g, '_')) : undefined;
  return { filename, contentType: spec.type ?? guessContentType(filename), bytes, contentId };
}

/** Builds the envelope and message the options describe. */
export async function buildSubmission(options: MessageOptions, io: SubmissionIo): Promise<Submission> {
  return options.eml !== null || options.readRecipients || options.sendmail ? rawSubmission(options, io) : composedSubmission(options, io);
}

async function composedSubmission(options: MessageOptions, io: SubmissionIo): Promise<Submission> {
  let body = options.body;
  if (body === null && options.bodyFile !== null) body = DECODER.decode(await readInput(io, options.bodyFile, '--body-file'));
  if (body === null) {
    const piped = await io.readStdin();
    if (piped === null) throw new UsageError('no message text: give --body or --body-file, or pipe the text on standard input');
    body = DECODER.decode(piped);
  }
  const html = options.html === null ? undefined : DECODER.decode(await readInput(io, options.html, '--html'));
  const attachments = [
    ...(await Promise.all(options.inline.map((s) => readFileSpec(s, true, io)))),
    ...(await Promise.all(options.attach.map((s) => readFileSpec(s, false, io)))),
  ];
  const from = options.from!;
  const input: ComposeInput = {
    from: options.fullName !== null && !from.includes('<') ? `${JSON.stringify(options.fullName)} <${from}>` : from,
    to: options.to,
    cc: options.cc,
    bcc: options.bcc,
    replyTo: options.replyTo,
    subject: options.subject ?? '',
    body,
    html,
    attachments,
    headers: options.headers,
    timeMs: io.now(),
    uniqueId: io.newId(),
    hostname: io.hostname(),
  };
  const compose = (eightBitMime: boolean) => {
    try {
      return composeMessage({ ...input, eightBitMime });
    } catch (error) {
      return inputError(error);
    }
  };
  // Composed once now, so that a bad header or file costs no connection.
  const first = compose(false);
  return {
    sender: first.sender,
    recipients: first.recipients,
    messageId: first.messageId,
    render: (eightBitMime) => (eightBitMime ? compose(true).bytes : first.bytes),
  };
}

async function rawSubmission(options: MessageOptions, io: SubmissionIo): Promise<Submission> {
  let bytes: Uint8Array;
  if (options.eml !== null) bytes = await readInput(io, options.eml, '--eml');
  else {
    const piped = await io.readStdin();
    if (piped === null) throw new UsageError('no message: pipe the message (headers, blank line, body) on standard input');
    bytes = piped;
  }
  // sendmail(8): without -i, a line holding only "." ends the message.
  if (options.sendmail && !options.ignoreDots) bytes = cutAtDotLine(bytes);
  if (bytes.length === 0) throw new InputError('the message is empty');
  try {
    const parsed = parseRawMessage(bytes);
    const given = options.from === null ? null : parseAddress(options.from);
    const fromHeader = headerSender(parsed);
    const sender = given?.mailbox ?? fromHeader?.mailbox ?? parseAddress(`${io.user}@${io.hostname()}`).mailbox;
    const explicit = mailboxesOf([...options.to, ...options.cc, ...options.bcc]);
    // -t reads the headers; --eml does when no recipient was given (its envelope "as it is").
    const fromHeaders = options.readRecipients || (options.eml !== null && explicit.length === 0) ? headerRecipients(parsed) : [];
    const recipients = unique([...explicit, ...fromHeaders]);
    if (recipients.length === 0) {
      throw new InputError(options.readRecipients || options.eml !== null ? 'the message has no To, Cc or Bcc recipient, and none was given' : 'no recipients given');
    }
    const generatedId = `<${io.newId()}@${/^[A-Za-z0-9.-]+\.[A-Za-z]+$/.test(sender.domain) ? sender.domain : 'mailbox.invalid'}>`;
    const message = prepareRawMessage(parsed, {
      sender,
      fullName: options.fullName ?? given?.name ?? null,
      date: formatDate(io.now()),
      messageId: generatedId,
    });
    return { sender, recipients, messageId: headerMessageId(parsed) ?? generatedId, render: () => message };
  } catch (error) {
    return inputError(error);
  }
}

/** `--dry-run`: the envelope as MAIL/RCPT lines, a blank line, then the message. */
export function formatDryRun(submission: Submission): Uint8Array {
  const envelope = [
    `MAIL FROM:${formatPath(submission.sender)}`,
    ...submission.recipients.map((r) => `RCPT TO:${formatPath(r)}`),
    '',
    '',
  ].join('\n');
  const head = new TextEncoder().encode(envelope);
  const message = submission.render(false);
  const out = new Uint8Array(head.length + message.length);
  out.set(head, 0);
  out.set(message, head.length);
  return out;
}
