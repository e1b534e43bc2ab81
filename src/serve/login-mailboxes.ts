/**
 * @module A reader login's INBOX over the MailStore and the login state (spool/login-state.ts),
 * one for IMAP (it implements core/imap/mailbox-port.ts) and POP3 (pop3-maildrops.ts). The
 * sessions that show an INBOX are told of changes made elsewhere through their watchers.
 * Rule 1: a login reads the addresses its LoginDirectory gives it (auth/users.ts); its INBOX
 *         holds every message that one of them still holds in the store and that the login did
 *         not expunge, in commit order.
 * Rule 2: UIDs, UIDVALIDITY, flags and expunges are the login's own journal records, durable
 *         before a UID is given out or a change acknowledged. A message gets its UID the first
 *         time the login sees it, so UIDs only grow (RFC 3501 §2.3.1.1). UIDVALIDITY is the
 *         second at which the login was first seen. Mailpit's read mark and tags are not IMAP
 *         flags, and IMAP flags do not set them.
 * Rule 3: a POP3 UPDATE is an expunge of the same login state. When every login that reads an
 *         address has expunged a message, the store removes it from that address's mailbox
 *         (MailStore.expunge), and a message no address holds is deleted in the journal.
 * Rule 4: removals the store raises (the API, retention) reach the sessions of the logins that
 *         had the message; the session core holds the EXPUNGE back until it may send it
 *         (RFC 3501 §7.4.1).
 * Rule 5: one login's steps run one at a time, in order, so two sessions never give one UID to
 *         two messages, and a session sees the writes of the steps before its own.
 * Rule 6: \Recent (RFC 3501 §2.3.2) is held in memory: a UID is recent for the first SELECT that
 *         sees it after this process gave it out.
 */
import type { LoginDirectory } from '../auth/users.ts';
import { loginKey } from '../auth/users.ts';
import { decodeBase64 } from '../core/base-encoding.ts';
import { decodeEncodedWords } from '../core/encoded-words.ts';
import type { ChangeOutcome, FlagChange, ImapMailboxPort, ImapMessageData, LoadOutcome, MessageReads, OpenOutcome } from '../core/imap/mailbox-port.ts';
import { imapResponses } from '../core/imap/responses.ts';
import type { MailboxChange, MailboxMessage } from '../core/imap/selected-mailbox.ts';
import { listMimeEntities, parseHeaderFields, parseMimeStructure, type HeaderField, type MimeEntity } from '../core/mime-structure.ts';
import type { MailRemoval, MailStore, MailSummary } from '../spool/mail-store.ts';
import type { LoginRecord, LoginStateStore } from '../spool/login-state.ts';

const PAGE = 1000;
const UTF8 = new TextDecoder('utf-8');

/** A session showing an INBOX: how to hand it changes made elsewhere. */
export type MailboxWatcher = (changes: readonly MailboxChange[]) => void;

/** One message of a login's INBOX as a snapshot shows it. */
export interface LoginMessageView {
  readonly id: string;
  readonly uid: number;
  readonly flags: readonly string[];
  readonly summary: MailSummary;
}

export interface LoginView {
  readonly uidValidity: number;
  readonly uidNext: number;
  /** UIDs from this one on were given by this view. */
  readonly firstNewUid: number;
  /** In UID order. */
  readonly messages: readonly LoginMessageView[];
}

export interface LoginMailboxesDeps {
  readonly store: () => MailStore;
  readonly states: () => LoginStateStore;
  /** Re-read with the users file (SIGHUP). */
  readonly directory: () => LoginDirectory;
  readonly now: () => number;
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

/**
 * The data of one message for FETCH and SEARCH. `bytes` is the whole message, or only its header
 * section when the request reads no more (then bytes() and bodyText() are never called).
 */
function messageData(uid: number, summary: MailSummary, bytes: Uint8Array | null, whole: boolean): ImapMessageData {
  let structure: MimeEntity | null = null;
  const have = () => {
    if (bytes === null) throw new Error('the message was loaded without its bytes');
    return bytes;
  };
  const root = () => (structure ??= parseMimeStructure(have()));
  let top: HeaderField[] | null = null;
  // The header section alone needs no MIME parse: it is all header fields and a blank line.
  const fields = () => (top ??= whole ? parseHeaderFields(have(), root().headerStart, root().headerEnd) : parseHeaderFields(have(), 0, have().length));
  let byName: Map<string, string> | null = null;
  const full = () => {
    if (!whole) throw new Error('the message was loaded without its body');
    return have();
  };
  return {
    uid,
    internalDateMs: summary.timeMs,
    size: summary.size,
    bytes: full,
    structure: () => (full(), root()),
    headerFields: () => {
      if (byName === null) {
        byName = new Map();
        for (const f of fields()) if (!byName.has(f.name.toLowerCase())) byName.set(f.name.toLowerCase(), f.value);
      }
      const map = byName;
      return { first: (name) => map.get(name) ?? null };
    },
    headerValues: (name) => fields().filter((f) => f.name.toLowerCase() === name).map((f) => decodeEncodedWords(f.value)),
    headerText: () => fields().map((f) => `${f.name}: ${decodeEncodedWords(f.value)}`).join('\r\n'),
    bodyText: () =>
      listMimeEntities(root())
        .filter((e) => e.type === 'text' && e.children.length === 0)
        .map((e) => partText(full(), e))
        .join('\n'),
  };
}

export class LoginMailboxes implements ImapMailboxPort {
  readonly #deps: LoginMailboxesDeps;
  readonly #watchers = new Map<string, Set<MailboxWatcher>>();
  /** Per login: UIDs up to this one were claimed as \Recent by a SELECT (Rule 6). */
  readonly #claimedThrough = new Map<string, number>();
  /** Per login: the last step queued (Rule 5). */
  readonly #steps = new Map<string, Promise<unknown>>();

  constructor(deps: LoginMailboxesDeps) {
    this.#deps = deps;
  }

  /** Sessions showing an INBOX now. */
  get watching(): number {
    let n = 0;
    for (const set of this.#watchers.values()) n += set.size;
    return n;
  }

  /** `watcher` is told of changes to `user`'s INBOX made elsewhere until the returned call. */
  watch(user: string, watcher: MailboxWatcher): () => void {
    const login = loginKey(user);
    let set = this.#watchers.get(login);
    if (!set) this.#watchers.set(login, (set = new Set()));
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.#watchers.get(login) === set) this.#watchers.delete(login);
    };
  }

  /** A message made durable: the sessions of the logins that read its recipients hear of it (RFC 3501 §7.3.1). */
  committed(id: string, recipients: readonly string[]): void {
    const directory = this.#deps.directory();
    const logins = new Set(recipients.flatMap((r) => directory.readersOf(r)));
    for (const login of logins) {
      if (!this.#watchers.has(login)) continue;
      void this.#step(login, async () => {
        const view = await this.#view(login, new Set([id]));
        const m = view.messages.find((x) => x.id === id);
        if (m) this.#tell(login, [{ kind: 'appended', uid: m.uid, flags: m.flags }], null);
      }).catch(() => {
        // The state could not be written: the sessions see the message at their next SELECT.
      });
    }
  }

  /** The store removed messages from mailboxes (Rule 4): the logins that still showed them hear of it. */
  removed(removals: readonly MailRemoval[]): void {
    if (this.#watchers.size === 0) return;
    const states = this.#deps.states();
    const store = this.#deps.store();
    const directory = this.#deps.directory();
    for (const login of this.#watchers.keys()) {
      const box = states.mailbox(login);
      if (!box) continue;
      const addresses = directory.addressesOf(login);
      const gone: MailboxChange[] = [];
      for (const r of removals) {
        const m = box.message(r.id);
        if (!m || m.expunged) continue;
        if (r.mailboxes !== null && !r.mailboxes.some((a) => addresses.includes(a))) continue;
        if (addresses.some((a) => store.get(a, r.id) !== undefined)) continue;
        gone.push({ kind: 'expunged', uid: m.uid });
      }
      this.#tell(login, gone, null);
    }
  }

  /** The login's INBOX now, every message with its UID (given now if new), in UID order. */
  view(user: string): Promise<LoginView> {
    const login = loginKey(user);
    return this.#step(login, () => this.#view(login, null));
  }

  /** The address of the login through which the store holds message `id` (for reading it). */
  addressHolding(user: string, id: string): string {
    const found = this.#find(this.#deps.store(), this.#deps.directory().addressesOf(loginKey(user)), id);
    if (!found) throw new Error(`no message ${id} for ${user}`);
    return found.address;
  }

  async open(user: string, claimRecent: boolean): Promise<OpenOutcome> {
    try {
      const login = loginKey(user);
      const view = await this.view(user);
      const messages: MailboxMessage[] = view.messages.map((m) => ({ uid: m.uid, flags: m.flags }));
      const claimed = this.#claimedThrough.get(login) ?? this.#claimedAtStart(login, view);
      const recentUids = claimRecent ? messages.filter((m) => m.uid > claimed).map((m) => m.uid) : [];
      this.#claimedThrough.set(login, claimRecent ? view.uidNext - 1 : claimed);
      return { ok: true, mailbox: { uidValidity: view.uidValidity, uidNext: view.uidNext, messages, recentUids } };
    } catch (error) {
      return { ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) };
    }
  }

  async load(user: string, uids: readonly number[], reads: MessageReads = 'message'): Promise<LoadOutcome> {
    try {
      const login = loginKey(user);
      const box = this.#deps.states().mailbox(login);
      const store = this.#deps.store();
      const addresses = this.#deps.directory().addressesOf(login);
      const messages: ImapMessageData[] = [];
      for (const uid of uids) {
        const id = box?.idOf(uid);
        if (id === undefined || box?.message(id)?.expunged) continue;
        const found = this.#find(store, addresses, id);
        if (!found) continue;
        const bytes = reads === 'message' ? await store.read(found.address, id) : reads === 'header' ? await store.readHeader(found.address, id) : null;
        messages.push(messageData(uid, found.summary, bytes, reads === 'message'));
      }
      return { ok: true, messages };
    } catch (error) {
      return { ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) };
    }
  }

  /** Each change carries the message's whole new flag set, journalled as the login's own. */
  storeFlags(user: string, changes: readonly FlagChange[], from: MailboxWatcher | null = null): Promise<ChangeOutcome> {
    const login = loginKey(user);
    return this.#step(login, async () => {
      const box = this.#deps.states().mailbox(login);
      const records: LoginRecord[] = [];
      const told: MailboxChange[] = [];
      for (const change of changes) {
        const id = box?.idOf(change.uid);
        const m = id === undefined ? undefined : box?.message(id);
        if (id === undefined || !m || m.expunged) continue;
        const flags = Object.freeze(change.flags.filter((f) => f.toLowerCase() !== '\\recent'));
        records.push({ kind: 'message', login, id, uid: m.uid, flags, expunged: false });
        told.push({ kind: 'flags', uid: m.uid, flags });
      }
      await this.#deps.states().write(records);
      this.#tell(login, told, from);
      return { ok: true } as const;
    }).catch((error: unknown) => ({ ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) }) as const);
  }

  expunge(user: string, uids: readonly number[], from: MailboxWatcher | null = null): Promise<ChangeOutcome> {
    const login = loginKey(user);
    const box = this.#deps.states().mailbox(login);
    const ids = uids.map((uid) => box?.idOf(uid)).filter((id) => id !== undefined);
    return this.expungeIds(user, ids, from).then(
      () => ({ ok: true }) as const,
      (error: unknown) => ({ ok: false, status: imapResponses.mailboxUnavailable((error as Error).message) }) as const,
    );
  }

  /** RFC 3501 §6.4.3, RFC 1939 §6: the login expunges these messages (Rule 3); the login's other sessions hear of it. */
  expungeIds(user: string, ids: readonly string[], from: MailboxWatcher | null = null): Promise<void> {
    const login = loginKey(user);
    return this.#step(login, async () => {
      const states = this.#deps.states();
      const box = states.mailbox(login);
      const records: LoginRecord[] = [];
      for (const id of ids) {
        const m = box?.message(id);
        if (m && !m.expunged) records.push({ kind: 'message', login, id, uid: m.uid, flags: m.flags, expunged: true });
      }
      // The store first: if it fails, nothing changed and the client may try again.
      await this.#release(login, records.map((r) => (r as { id: string }).id));
      await states.write(records);
      this.#tell(
        login,
        records.map((r) => ({ kind: 'expunged', uid: (r as { uid: number }).uid })),
        from,
      );
    });
  }

  /** Rule 3: each address of the login whose every other reader has expunged the message lets go of it. */
  async #release(login: string, ids: readonly string[]): Promise<void> {
    const store = this.#deps.store();
    const states = this.#deps.states();
    const directory = this.#deps.directory();
    const byAddress = new Map<string, string[]>();
    for (const address of directory.addressesOf(login)) {
      for (const id of ids) {
        if (store.get(address, id) === undefined) continue;
        const others = directory.readersOf(address).filter((r) => r !== login);
        if (!others.every((r) => states.mailbox(r)?.message(id)?.expunged === true)) continue;
        const list = byAddress.get(address) ?? [];
        list.push(id);
        byAddress.set(address, list);
      }
    }
    for (const [address, list] of byAddress) await store.expunge(address, list);
  }

  async #view(login: string, only: ReadonlySet<string> | null): Promise<LoginView> {
    const states = this.#deps.states();
    const store = this.#deps.store();
    const records: LoginRecord[] = [];
    let box = states.mailbox(login);
    if (!box) {
      records.push({ kind: 'mailbox', login, uidValidity: Math.max(1, Math.floor(this.#deps.now() / 1000)), uidNext: 1 });
      await states.write(records.splice(0));
      box = states.mailbox(login)!;
    }
    const summaries = only === null ? this.#list(store, login) : [...only].flatMap((id) => this.#find(store, this.#deps.directory().addressesOf(login), id)?.summary ?? []);
    const firstNewUid = box.uidNext;
    let next = firstNewUid;
    for (const s of summaries) {
      if (box.message(s.id)) continue;
      records.push({ kind: 'message', login, id: s.id, uid: next++, flags: [], expunged: false });
    }
    await states.write(records);
    const messages: LoginMessageView[] = [];
    for (const s of summaries) {
      const m = box.message(s.id);
      if (!m || m.expunged) continue;
      messages.push({ id: s.id, uid: m.uid, flags: m.flags, summary: s });
    }
    messages.sort((a, b) => a.uid - b.uid);
    return { uidValidity: box.uidValidity, uidNext: box.uidNext, firstNewUid, messages };
  }

  /** Every message the login's addresses hold, each once, in commit order. */
  #list(store: MailStore, login: string): MailSummary[] {
    const addresses = this.#deps.directory().addressesOf(login);
    const seen = new Set<string>();
    const out: MailSummary[] = [];
    for (const address of addresses) {
      let cursor = null;
      do {
        const page = store.list(address, cursor, PAGE);
        for (const m of page.messages) {
          if (seen.has(m.id)) continue;
          seen.add(m.id);
          out.push(m);
        }
        cursor = page.next;
      } while (cursor !== null);
    }
    if (addresses.length > 1) out.sort((a, b) => a.timeMs - b.timeMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  }

  #find(store: MailStore, addresses: readonly string[], id: string): { address: string; summary: MailSummary } | null {
    for (const address of addresses) {
      const summary = store.get(address, id);
      if (summary) return { address, summary };
    }
    return null;
  }

  /** After a restart every UID given before is old: only those this view gave are \Recent. */
  #claimedAtStart(login: string, view: LoginView): number {
    const claimed = view.firstNewUid - 1;
    this.#claimedThrough.set(login, claimed);
    return claimed;
  }

  #step<T>(login: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#steps.get(login) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.#steps.set(login, settled);
    void settled.then(() => {
      if (this.#steps.get(login) === settled) this.#steps.delete(login);
    });
    return run;
  }

  #tell(login: string, changes: readonly MailboxChange[], from: MailboxWatcher | null): void {
    if (changes.length === 0) return;
    for (const watcher of this.#watchers.get(login) ?? []) if (watcher !== from) watcher(changes);
  }
}
