/**
 * @module The IMAP mailbox port (core/imap/mailbox-port.ts) over the MailStore: a login's INBOX is
 * the mailbox of its address, with that login's UIDs, flags and expunges, and the sessions that
 * show it are told of changes made elsewhere through their notify().
 * Rule 1: the login name is an email address; its INBOX holds every message with that address
 *         among its envelope recipients, keyed as POP3 keys its maildrop (maildropKey()).
 * Rule 2: UIDs (RFC 3501 §2.3.1.1) are kept in a file per mailbox under <data>/imap/uids: a first
 *         line "uidvalidity N", then one "uid id" line per message, appended and fsynced before a
 *         UID is given out. A message gets its UID the first time a session of the login sees
 *         it, in commit order, so UIDs only grow and never change; UIDVALIDITY is the second at
 *         which the file was made, and changes only if the file is lost (then every UID is new).
 * Rule 3: flags are the store's per-mailbox state (mailbox-state.ts journal records): \Seen is
 *         its read mark; every other flag and keyword is a tag, the system flags by their
 *         backslashed names. Tags that are not IMAP atoms (Mailpit's free-form labels) are kept
 *         but not shown. Expunge goes through MailStore.expunge for this login's mailbox only.
 * Rule 4: \Recent (RFC 3501 §2.3.2) is held in memory: a UID is recent for the first SELECT that
 *         sees it after it was given out by this process.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { decodeBase64 } from '../core/base-encoding.ts';
import { entityHeaderFields } from '../core/imap/bodystructure.ts';
import type { ChangeOutcome, FlagChange, ImapMailboxPort, ImapMessageData, LoadOutcome, OpenOutcome } from '../core/imap/mailbox-port.ts';
import { imapResponses } from '../core/imap/responses.ts';
import type { MailboxChange, MailboxMessage } from '../core/imap/selected-mailbox.ts';
import { listMimeEntities, parseHeaderFields, parseMimeStructure, type MimeEntity } from '../core/mime-structure.ts';
import type { MailStore, MailSummary } from '../spool/mail-store.ts';
import { maildropKey } from './pop3-maildrops.ts';

const PAGE = 1000;
const SEEN = '\\Seen';
/** RFC 3501 §9 flag-keyword (an atom) or a system flag. */
const SHOWN_TAG = /^\\?[^\x00-\x20\x7f(){%*"\\\]]+$/;
const UTF8 = new TextDecoder('utf-8');

/** A session showing an INBOX: how to hand it changes made elsewhere. */
export type MailboxWatcher = (changes: readonly MailboxChange[]) => void;

/** One mailbox's UIDs, as its file holds them. */
class UidFile {
  readonly validity: number;
  readonly #path: string;
  readonly #byId = new Map<string, number>();
  readonly #byUid = new Map<number, string>();
  #last = 0;
  /** UIDs up to this one have been claimed as \Recent by a SELECT. */
  claimedThrough: number;

  constructor(path: string, nowMs: number) {
    this.#path = path;
    let text: string | null = null;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT') throw error;
    }
    if (text !== null) {
      // A torn last line (crash mid-append) is cut off: its UID was never given out, and the
      // next append must not be glued to it.
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      if (complete.length !== text.length) fs.truncateSync(path, Buffer.byteLength(complete));
      text = complete === '' ? null : complete;
    }
    if (text === null) {
      this.validity = Math.max(1, Math.floor(nowMs / 1000));
      fs.mkdirSync(join(path, '..'), { recursive: true });
      this.#append(`uidvalidity ${this.validity}\n`);
    } else {
      const lines = text.slice(0, -1).split('\n');
      const head = /^uidvalidity (\d+)$/.exec(lines[0] ?? '');
      if (!head) throw new Error(`${path}: not a UID file`);
      this.validity = Number(head[1]);
      for (const line of lines.slice(1)) {
        const m = /^(\d+) (\S+)$/.exec(line);
        if (!m) continue;
        const uid = Number(m[1]);
        this.#byId.set(m[2]!, uid);
        this.#byUid.set(uid, m[2]!);
        this.#last = Math.max(this.#last, uid);
      }
    }
    this.claimedThrough = this.#last;
  }

  get next(): number {
    return this.#last + 1;
  }

  uidOf(id: string): number | undefined {
    return this.#byId.get(id);
  }

  idOf(uid: number): string | undefined {
    return this.#byUid.get(uid);
  }

  /** Gives the ids without a UID the next UIDs, in order; durable before it returns. */
  assign(ids: readonly string[]): void {
    const fresh = ids.filter((id) => !this.#byId.has(id));
    if (fresh.length === 0) return;
    let text = '';
    let uid = this.#last;
    for (const id of fresh) text += `${++uid} ${id}\n`;
    this.#append(text);
    for (const id of fresh) {
      this.#last += 1;
      this.#byId.set(id, this.#last);
      this.#byUid.set(this.#last, id);
    }
  }

  #append(text: string): void {
    const fd = fs.openSync(this.#path, 'a');
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function imapFlags(summary: MailSummary): string[] {
  const flags = summary.flags.tags.filter((t) => SHOWN_TAG.test(t));
  return summary.flags.read ? [SEEN, ...flags] : flags;
}

/** RFC 2045 §6.7 quoted-printable, leniently. */
function decodeQuotedPrintable(text: string): string {
  const bytes: number[] = [];
  const raw = text.replace(/=\r?\n/g, '');
  for (let i = 0; i < raw.length; i++) {
    const hex = raw[i] === '=' ? /^[0-9A-Fa-f]{2}$/.exec(raw.slice(i + 1, i + 3)) : null;
    if (hex) {
      bytes.push(parseInt(hex[0], 16));
      i += 2;
    } else bytes.push(raw.charCodeAt(i) & 0xff);
  }
  return UTF8.decode(new Uint8Array(bytes));
}

function partText(bytes: Uint8Array, entity: MimeEntity): string {
  const body = bytes.subarray(entity.bodyStart, entity.bodyEnd);
  if (entity.transferEncoding === 'base64') {
    const decoded = decodeBase64(UTF8.decode(body).replace(/\s+/g, ''));
    return decoded ? UTF8.decode(decoded) : '';
  }
  if (entity.transferEncoding === 'quoted-printable') return decodeQuotedPrintable(UTF8.decode(body));
  return UTF8.decode(body);
}

function messageData(uid: number, summary: MailSummary, bytes: Uint8Array): ImapMessageData {
  let structure: MimeEntity | null = null;
  const root = () => (structure ??= parseMimeStructure(bytes));
  const fields = () => parseHeaderFields(bytes, root().headerStart, root().headerEnd);
  return {
    uid,
    internalDateMs: summary.timeMs,
    size: bytes.length,
    bytes: () => bytes,
    structure: root,
    headerFields: () => entityHeaderFields(bytes, root()),
    headerValues: (name) => fields().filter((f) => f.name.toLowerCase() === name).map((f) => f.value),
    headerText: () => fields().map((f) => `${f.name}: ${f.value}`).join('\r\n'),
    bodyText: () =>
      listMimeEntities(root())
        .filter((e) => e.type === 'text' && e.children.length === 0)
        .map((e) => partText(bytes, e))
        .join('\n'),
  };
}

export class StoreImapMailboxes implements ImapMailboxPort {
  readonly #store: () => MailStore;
  readonly #dir: string;
  readonly #now: () => number;
  readonly #files = new Map<string, UidFile>();
  readonly #watchers = new Map<string, Set<MailboxWatcher>>();

  constructor(store: () => MailStore, dataDir: string, now: () => number) {
    this.#store = store;
    this.#dir = join(dataDir, 'imap', 'uids');
    this.#now = now;
  }

  /** Sessions showing an INBOX now. */
  get watching(): number {
    let n = 0;
    for (const set of this.#watchers.values()) n += set.size;
    return n;
  }

  /** `watcher` is told of changes to `user`'s INBOX made elsewhere until the returned call. */
  watch(user: string, watcher: MailboxWatcher): () => void {
    const key = maildropKey(user);
    let set = this.#watchers.get(key);
    if (!set) this.#watchers.set(key, (set = new Set()));
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.#watchers.get(key) === set) this.#watchers.delete(key);
    };
  }

  /** A message made durable: the sessions showing its recipients' INBOXes hear of it (RFC 3501 §7.3.1). */
  committed(id: string, recipients: readonly string[]): void {
    for (const key of new Set(recipients.map(maildropKey))) {
      const set = this.#watchers.get(key);
      if (!set) continue;
      try {
        const file = this.#file(key);
        file.assign([id]);
        this.#tell(key, [{ kind: 'appended', uid: file.uidOf(id)!, flags: [] }], null);
      } catch {
        // The UID file could not be written: the sessions see the message at their next SELECT.
      }
    }
  }

  /** Messages expunged from `user`'s mailbox by another reader (POP3's UPDATE): its sessions hear of it. */
  removed(user: string, ids: readonly string[]): void {
    const key = maildropKey(user);
    if (!this.#watchers.has(key)) return;
    const file = this.#file(key);
    const uids = ids.map((id) => file.uidOf(id)).filter((uid) => uid !== undefined);
    this.#tell(key, uids.map((uid) => ({ kind: 'expunged', uid })), null);
  }

  async open(user: string, claimRecent: boolean): Promise<OpenOutcome> {
    try {
      const key = maildropKey(user);
      const file = this.#file(key);
      const store = this.#store();
      const summaries: MailSummary[] = [];
      let cursor = null;
      do {
        const page = store.list(key, cursor, PAGE);
        summaries.push(...page.messages);
        cursor = page.next;
      } while (cursor !== null);
      file.assign(summaries.map((s) => s.id));
      const messages: MailboxMessage[] = summaries
        .map((s) => ({ uid: file.uidOf(s.id)!, flags: imapFlags(s) }))
        .sort((a, b) => a.uid - b.uid);
      const recentUids = claimRecent ? messages.filter((m) => m.uid > file.claimedThrough).map((m) => m.uid) : [];
      if (claimRecent) file.claimedThrough = file.next - 1;
      return { ok: true, mailbox: { uidValidity: file.validity, uidNext: file.next, messages, recentUids } };
    } catch (error) {
      return { ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) };
    }
  }

  async load(user: string, uids: readonly number[]): Promise<LoadOutcome> {
    try {
      const key = maildropKey(user);
      const file = this.#file(key);
      const store = this.#store();
      const messages: ImapMessageData[] = [];
      for (const uid of uids) {
        const id = file.idOf(uid);
        const summary = id === undefined ? undefined : store.get(key, id);
        if (id === undefined || summary === undefined) continue;
        messages.push(messageData(uid, summary, await store.read(key, id)));
      }
      return { ok: true, messages };
    } catch (error) {
      return { ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) };
    }
  }

  /** Each change carries the message's whole new flag set; the store is told the difference. */
  async storeFlags(user: string, changes: readonly FlagChange[], from: MailboxWatcher | null = null): Promise<ChangeOutcome> {
    try {
      const key = maildropKey(user);
      const file = this.#file(key);
      const store = this.#store();
      const told: MailboxChange[] = [];
      for (const change of changes) {
        const id = file.idOf(change.uid);
        const summary = id === undefined ? undefined : store.get(key, id);
        if (id === undefined || summary === undefined) continue;
        const wanted = new Set(change.flags.filter((f) => f.toLowerCase() !== '\\seen'));
        const shown = summary.flags.tags.filter((t) => SHOWN_TAG.test(t));
        await store.setFlags(key, [id], {
          read: change.flags.some((f) => f.toLowerCase() === '\\seen'),
          addTags: [...wanted].filter((f) => !shown.includes(f)),
          removeTags: shown.filter((t) => !wanted.has(t)),
        });
        told.push({ kind: 'flags', uid: change.uid, flags: change.flags });
      }
      this.#tell(key, told, from);
      return { ok: true };
    } catch (error) {
      return { ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) };
    }
  }

  async expunge(user: string, uids: readonly number[], from: MailboxWatcher | null = null): Promise<ChangeOutcome> {
    try {
      const key = maildropKey(user);
      const file = this.#file(key);
      const ids = uids.map((uid) => file.idOf(uid)).filter((id) => id !== undefined);
      if (ids.length > 0) await this.#store().expunge(key, ids);
      this.#tell(key, uids.map((uid) => ({ kind: 'expunged', uid })), from);
      return { ok: true };
    } catch (error) {
      return { ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) };
    }
  }

  #tell(key: string, changes: readonly MailboxChange[], from: MailboxWatcher | null): void {
    if (changes.length === 0) return;
    for (const watcher of this.#watchers.get(key) ?? []) if (watcher !== from) watcher(changes);
  }

  #file(key: string): UidFile {
    let file = this.#files.get(key);
    if (!file) {
      const name = createHash('sha256').update(key).digest('hex').slice(0, 32);
      file = new UidFile(join(this.#dir, name), this.#now());
      this.#files.set(key, file);
    }
    return file;
  }
}
