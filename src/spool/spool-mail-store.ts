/**
 * @module The MailStore port on the spool's in-memory index (until the readers' on-disk index).
 * Rule 1: membership is the index's: a message is in a mailbox while a recipient with that
 *         address holds it (its copy not removed); expunging removes those recipients' copies.
 * Rule 2: header summaries are read from the stored message (its first bytes) when asked for,
 *         and the most recently used are kept; the spool hands over those it computed at commit.
 * Rule 3: mailbox state and removals are journalled (mailbox-state.ts) before they show.
 */
import { dotUnstuff } from '../core/data.ts';
import { headerSummary, type HeaderSummary } from './header-summary.ts';
import { hasUndeletedRecipient, queryKey, type Entry, type SpoolIndex } from './index.ts';
import type { FlagChange, MailboxName, MailCursor, MailPage, MailQuery, MailRemoval, MailStore, MailSummary } from './mail-store.ts';
import { isRemoved } from './copy-state.ts';
import { mailboxFlags, UNREAD, type MailboxFlags, type MailboxRecord, type RemovalRecord } from './mailbox-state.ts';

export interface StoreHost {
  readonly index: SpoolIndex;
  /** The first `bytes` bytes of the stored (dot-stuffed) message. */
  readHead(entry: Entry, bytes: number): Uint8Array;
  readMessage(id: string): Promise<Uint8Array>;
  appendRemovals(records: readonly RemovalRecord[]): Promise<void>;
  appendMailbox(records: readonly MailboxRecord[]): Promise<void>;
  now(): number;
}

const DEFAULT_LIMIT = 50;
/** Summaries kept: two generations of up to half this many each. */
const SUMMARIES_KEPT = 4096;
/** The header sections of most messages fit here; a longer one is read again in full. */
const FIRST_READ_BYTES = 8192;
const SUMMARY_HEAD_LIMIT = 64 * 1024;

export class SpoolMailStore implements MailStore {
  readonly #host: StoreHost;
  /**
   * The summaries listings read last, in two generations: a full young one becomes the old one
   * and the old one goes. (Deleting a Map's first key at each insert instead cost 5-9 µs: JSC's
   * iterator walks every deleted slot to reach the first live one.) Not every committed
   * message's: kept from a burst of mail, 4,096 summaries left serve's RSS 10 MiB higher once
   * the burst was over (their strings, scattered among the burst's garbage, kept its heap
   * blocks), and a listing reads a summary back from the page cache in microseconds.
   */
  #summaries = new Map<string, HeaderSummary>();
  #olderSummaries = new Map<string, HeaderSummary>();
  readonly #removalListeners = new Set<(removals: readonly MailRemoval[]) => void>();

  constructor(host: StoreHost) {
    this.#host = host;
  }

  #remember(id: string, summary: HeaderSummary): void {
    if (this.#summaries.size >= SUMMARIES_KEPT / 2) {
      this.#olderSummaries = this.#summaries;
      this.#summaries = new Map();
    }
    this.#summaries.set(id, summary);
  }

  onRemoved(listener: (removals: readonly MailRemoval[]) => void): () => void {
    this.#removalListeners.add(listener);
    return () => void this.#removalListeners.delete(listener);
  }

  /** The spool made these removals durable: the listeners hear of them. */
  removed(records: readonly RemovalRecord[]): void {
    if (this.#removalListeners.size === 0 || records.length === 0) return;
    const removals: MailRemoval[] = [];
    for (const r of records) {
      const e = this.#host.index.record(r.id);
      const rcpt = r.rcpt === null || !e ? undefined : e.recipientKeys[r.rcpt];
      removals.push({ id: r.id, mailboxes: rcpt !== undefined ? [rcpt] : null });
    }
    for (const listener of this.#removalListeners) listener(removals);
  }

  list(mailbox: MailboxName, cursor: MailCursor | null, limit = DEFAULT_LIMIT): MailPage {
    return this.#page(mailbox, cursor, limit, null);
  }

  search(mailbox: MailboxName, query: MailQuery, cursor: MailCursor | null, limit = DEFAULT_LIMIT): MailPage {
    return this.#page(mailbox, cursor, limit, query);
  }

  get(mailbox: MailboxName, id: string): MailSummary | undefined {
    const key = mailbox === null ? null : queryKey(mailbox);
    const e = this.#host.index.get(id);
    return e && holds(e, key) ? this.#summary(e, key) : undefined;
  }

  async read(mailbox: MailboxName, id: string): Promise<Uint8Array> {
    if (!this.get(mailbox, id)) throw new Error(`no message ${id} in mailbox ${mailbox ?? '(all)'}`);
    return this.#host.readMessage(id);
  }

  async readHeader(mailbox: MailboxName, id: string): Promise<Uint8Array> {
    const e = this.#host.index.get(id);
    if (!e || !holds(e, mailbox === null ? null : queryKey(mailbox))) throw new Error(`no message ${id} in mailbox ${mailbox ?? '(all)'}`);
    for (let want = FIRST_READ_BYTES; ; want *= 4) {
      const head = this.#host.readHead(e, Math.min(e.bodyBytes, want));
      const end = Buffer.from(head.buffer, head.byteOffset, head.byteLength).indexOf('\r\n\r\n');
      // Whole lines only, so undoing the dot-stuffing of the part read is exact.
      if (end >= 0) return dotUnstuff(head.subarray(0, end + 4));
      if (head.length >= e.bodyBytes) return dotUnstuff(head);
    }
  }

  setFlags(mailbox: MailboxName, ids: readonly string[], change: FlagChange): Promise<void> {
    const key = mailbox === null ? null : queryKey(mailbox);
    const records: MailboxRecord[] = [];
    for (const id of ids) {
      const e = this.#host.index.get(id);
      if (!e || !holds(e, key)) continue;
      for (const box of key === null ? heldBy(e) : [key]) {
        const old = e.mailboxes?.get(box) ?? UNREAD;
        const tags = new Set(old.tags);
        for (const t of change.addTags ?? []) tags.add(t);
        for (const t of change.removeTags ?? []) tags.delete(t);
        const flags = mailboxFlags(change.read ?? old.read, tags);
        if (flags.read !== old.read || flags.tags.join('\n') !== old.tags.join('\n')) records.push({ id, mailbox: box, flags });
      }
    }
    return records.length === 0 ? Promise.resolve() : this.#host.appendMailbox(records);
  }

  expunge(mailbox: MailboxName, ids: readonly string[]): Promise<void> {
    const key = mailbox === null ? null : queryKey(mailbox);
    const atMs = this.#host.now();
    const records: RemovalRecord[] = [];
    for (const id of ids) {
      const e = this.#host.index.get(id);
      if (!e || !holds(e, key)) continue;
      if (key === null) {
        records.push({ id, rcpt: null, atMs });
        continue;
      }
      e.recipientKeys.forEach((k, i) => {
        if (k === key && !isRemoved(e.states[i])) records.push({ id, rcpt: i, atMs });
      });
    }
    return records.length === 0 ? Promise.resolve() : this.#host.appendRemovals(records);
  }

  #page(mailbox: MailboxName, cursor: MailCursor | null, limit: number, query: MailQuery | null): MailPage {
    const key = mailbox === null ? null : queryKey(mailbox);
    const out: MailSummary[] = [];
    let more = false;
    const since = Math.max(cursor?.timeMs ?? -Infinity, query?.since ?? -Infinity);
    this.#host.index.forEachInCommitOrder(since, (e) => {
      if (cursor && (e.timeMs < cursor.timeMs || (e.timeMs === cursor.timeMs && e.id <= cursor.id))) return true;
      if (query?.until !== undefined && e.timeMs >= query.until) return false;
      if (!holds(e, key)) return true;
      const summary = this.#summary(e, key);
      if (query && !matches(summary, query)) return true;
      if (out.length === limit) {
        more = true;
        return false;
      }
      out.push(summary);
      return true;
    });
    return { messages: out, next: more && out.length > 0 ? out[out.length - 1].cursor : null };
  }

  #summary(e: Entry, key: string | null): MailSummary {
    const store = this;
    let headers: HeaderSummary | null = null;
    let recipients: string[] | null = null;
    let flags: MailboxFlags | null = key !== null ? (e.mailboxes?.get(key) ?? UNREAD) : null;
    // Headers, recipients and combined flags are worked out when asked for: IMAP and POP3 list
    // without them, and a message may have a thousand recipients.
    return {
      id: e.id,
      timeMs: e.timeMs,
      cursor: { timeMs: e.timeMs, id: e.id },
      sender: e.senderKey,
      get recipients() {
        return (recipients ??= heldBy(e));
      },
      size: e.size,
      get headers() {
        return (headers ??= store.#headers(e));
      },
      get flags() {
        return (flags ??= combined(e, (recipients ??= heldBy(e))));
      },
    };
  }

  #headers(e: Entry): HeaderSummary {
    const known = this.#summaries.get(e.id) ?? this.#olderSummaries.get(e.id);
    if (known) return known;
    let head = this.#host.readHead(e, Math.min(e.bodyBytes, FIRST_READ_BYTES));
    if (head.length < e.bodyBytes && !endsHeader(head)) head = this.#host.readHead(e, Math.min(e.bodyBytes, SUMMARY_HEAD_LIMIT));
    const summary = headerSummary(head);
    this.#remember(e.id, summary);
    return summary;
  }
}

function holds(e: Entry, key: string | null): boolean {
  return key === null ? e.visible : hasUndeletedRecipient(e, key);
}

/** The mailboxes (address keys) that still hold the message, each once. */
function heldBy(e: Entry): string[] {
  const out = new Set<string>();
  e.recipientKeys.forEach((k, i) => {
    if (!isRemoved(e.states[i])) out.add(k);
  });
  return [...out];
}

/** Across mailboxes: read once every mailbox read it; the tags any of them gave. */
function combined(e: Entry, boxes: readonly string[]): MailboxFlags {
  if (!e.mailboxes) return UNREAD;
  const flags = boxes.map((b) => e.mailboxes?.get(b) ?? UNREAD);
  return mailboxFlags(flags.length > 0 && flags.every((f) => f.read), flags.flatMap((f) => f.tags));
}

function endsHeader(head: Uint8Array): boolean {
  return Buffer.from(head.buffer, head.byteOffset, head.byteLength).includes('\r\n\r\n');
}

const contains = (hay: string, needle: string) => hay.toLowerCase().includes(needle.toLowerCase());

function matches(m: MailSummary, q: MailQuery): boolean {
  const h = m.headers;
  if (q.read !== undefined && m.flags.read !== q.read) return false;
  if (q.tag !== undefined && !m.flags.tags.includes(q.tag)) return false;
  if (q.from !== undefined && !contains(`${h.from} ${m.sender}`, q.from)) return false;
  if (q.to !== undefined && !contains(`${h.to} ${h.cc} ${m.recipients.join(' ')}`, q.to)) return false;
  if (q.subject !== undefined && !contains(h.subject, q.subject)) return false;
  if (q.text !== undefined) {
    const all = [h.from, h.to, h.cc, h.subject, h.date, h.messageId, m.sender, ...m.recipients].join('\n');
    if (!contains(all, q.text)) return false;
  }
  return true;
}
