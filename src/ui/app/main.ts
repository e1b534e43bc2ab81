/**
 * @module The web UI's shell: the message list (a page of at most PAGE_SIZE summaries, live over
 * the SSE stream), search, the inbox switcher, selection and the keyboard; the open message is
 * drawn by message-view.ts. Rule: the list never holds more than one page; every change the
 * server announces refetches that page, so the list is the server's answer and never a local guess.
 */
import { render } from 'preact';
import { html } from 'htm/preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, PAGE_SIZE, deleteAll, deleteMessages, getCursor, listInboxes, listMessages, setRead, urls, type Inbox, type ListSource, type SummaryPage } from './api.ts';
import { MessageView } from './message-view.ts';
import { formatAddress, formatSize, formatWhen } from './format.ts';

type Live = 'connecting' | 'live' | 'reconnecting';

function describe(error: unknown): string {
  if (error instanceof ApiError) return error.status === 0 ? 'The server cannot be reached.' : `${error.message} (HTTP ${error.status})`;
  return String(error);
}

function App() {
  const [source, setSource] = useState<ListSource>({ inbox: null, query: '', start: 0 });
  const [draft, setDraft] = useState('');
  const [page, setPage] = useState<SummaryPage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [inboxes, setInboxes] = useState<Inbox[]>([]);
  const [live, setLive] = useState<Live>('connecting');
  const [selected, setSelected] = useState(0);
  // A /view/{ID} address (Mailpit's) opens that message.
  const [openId, setOpenId] = useState<string | null>(() => /^\/view\/([A-Za-z0-9]+)$/.exec(location.pathname)?.[1] ?? null);
  /** Whether the server has our /api/mailbox/v1 routes (inboxes, envelope, session, SSE). */
  const [extended, setExtended] = useState(false);
  const [changes, setChanges] = useState(0);
  const searchRef = useRef<HTMLInputElement>(null);

  const messages = page?.messages ?? [];

  // The page for the current source; `changes` counts server events, so each one refetches it.
  useEffect(() => {
    let current = true;
    listMessages(source).then(
      (next) => {
        if (!current) return;
        setPage(next);
        setError(null);
        setSelected((s) => Math.min(s, Math.max(0, next.messages.length - 1)));
      },
      (failure: unknown) => current && setError(describe(failure)),
    );
    return () => {
      current = false;
    };
  }, [source, changes]);

  useEffect(() => {
    if (!extended) return;
    let current = true;
    listInboxes().then(
      (list) => current && setInboxes(list),
      () => current && setInboxes([]),
    );
    return () => {
      current = false;
    };
  }, [changes, extended]);

  // The live stream: our SSE stream from the store's cursor now (never from the beginning: that
  // would replay every message), else Mailpit's websocket. Any event may change the page; a burst
  // is folded into one refetch.
  useEffect(() => {
    let stream: EventSource | WebSocket | null = null;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let closed = false;
    const changed = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        setChanges((n) => n + 1);
      }, 200);
    };
    const websocket = () => {
      const ws = new WebSocket(urls.websocket());
      stream = ws;
      ws.onopen = () => (setLive('live'), changed());
      ws.onmessage = changed;
      // Mailpit's websocket has no replay: reconnect, then refetch (onopen).
      ws.onclose = () => {
        if (closed) return;
        setLive('reconnecting');
        retry = setTimeout(websocket, 2000);
      };
    };
    const connect = (): Promise<void> =>
      getCursor().then(
        (at) => {
          if (closed) return;
          setExtended(at !== null);
          if (at === null) return websocket();
          const events = new EventSource(urls.events(at));
          stream = events;
          events.onopen = () => setLive('live');
          // EventSource reconnects by itself and resumes after the last event id it saw; a refusal
          // (an HTTP error) ends it for good: start again from a fresh cursor, then refetch.
          events.onerror = () => {
            setLive('reconnecting');
            if (events.readyState !== EventSource.CLOSED || closed) return;
            retry = setTimeout(() => (connect(), changed()), 2000);
          };
          events.onmessage = changed;
          // Named events (new, updated, deleted, and any the server adds), besides unnamed ones.
        for (const type of ['new', 'updated', 'deleted', 'truncate', 'prune', 'stats']) events.addEventListener(type, changed);
        },
        () => {
          if (closed) return;
          setLive('reconnecting');
          retry = setTimeout(connect, 2000);
        },
      );
    connect();
    return () => {
      closed = true;
      if (timer) clearTimeout(timer);
      if (retry) clearTimeout(retry);
      stream?.close();
    };
  }, []);

  const go = useCallback((next: Partial<ListSource>) => {
    setSource((s) => ({ ...s, start: 0, ...next }));
    setSelected(0);
  }, []);

  const open = useCallback(
    (index: number) => {
      const message = messages[index];
      if (!message) return;
      setSelected(index);
      setOpenId(message.ID);
      if (!message.Read) setRead([message.ID], true).then(() => setChanges((n) => n + 1), () => undefined);
    },
    [messages],
  );

  const remove = useCallback(
    (id: string) => {
      deleteMessages([id]).then(
        () => {
          if (openId === id) setOpenId(null);
          setChanges((n) => n + 1);
        },
        (failure: unknown) => setError(describe(failure)),
      );
    },
    [openId],
  );

  const toggleRead = useCallback((id: string, read: boolean) => {
    setRead([id], read).then(() => setChanges((n) => n + 1), (failure: unknown) => setError(describe(failure)));
  }, []);

  const removeAll = useCallback(() => {
    const what = source.inbox ? `every message in ${source.inbox}` : 'every stored message';
    if (!confirm(`Delete ${what}? Mail queued for relay is not touched.`)) return;
    deleteAll(source.inbox).then(
      () => {
        setOpenId(null);
        setChanges((n) => n + 1);
      },
      (failure: unknown) => setError(describe(failure)),
    );
  }, [source.inbox]);

  // j/k move, Enter opens, Delete deletes, / searches, Escape closes the message or leaves search.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      const typing = target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.tagName === 'SELECT');
      if (event.key === 'Escape') {
        if (typing) target.blur();
        else setOpenId(null);
        return;
      }
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === 'j' || event.key === 'ArrowDown') setSelected((s) => Math.min(s + 1, Math.max(0, messages.length - 1)));
      else if (event.key === 'k' || event.key === 'ArrowUp') setSelected((s) => Math.max(s - 1, 0));
      else if (event.key === 'Enter') open(selected);
      else if (event.key === 'Delete' || event.key === 'Backspace') {
        const id = openId ?? messages[selected]?.ID;
        if (id) remove(id);
      } else if (event.key === '/') searchRef.current?.focus();
      else return;
      event.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [messages, selected, openId, open, remove]);

  useEffect(() => {
    document.querySelector(`[data-index="${selected}"]`)?.scrollIntoView({ block: 'nearest' });
  }, [selected]);

  const total = page ? (source.query || source.inbox ? page.messages_count : page.total) : 0;
  const first = total === 0 ? 0 : source.start + 1;
  const last = source.start + messages.length;
  const pager = useMemo(
    () => html`<span class="pager">
      <button disabled=${source.start === 0} onClick=${() => setSource((s) => ({ ...s, start: Math.max(0, s.start - PAGE_SIZE) }))} aria-label="Newer">‹</button>
      <span>${first}–${last} of ${total}</span>
      <button disabled=${last >= total} onClick=${() => setSource((s) => ({ ...s, start: s.start + PAGE_SIZE }))} aria-label="Older">›</button>
    </span>`,
    [source.start, first, last, total],
  );

  return html`<div class=${`app ${openId ? 'reading' : ''}`}>
    <header class="bar">
      <strong class="brand">mailbox</strong>
      <form class="search" role="search" onSubmit=${(e: Event) => (e.preventDefault(), searchRef.current?.blur(), go({ query: draft }))}>
        <input ref=${searchRef} type="search" placeholder="Search: to:a@x.test subject:hello is:unread  ( / )" value=${draft}
          onInput=${(e: Event) => setDraft((e.target as HTMLInputElement).value)} aria-label="Search" />
      </form>
      ${extended && html`<select aria-label="Inbox" value=${source.inbox ?? ''} onChange=${(e: Event) => {
        const select = e.target as HTMLSelectElement;
        // The keys go back to the list, as after a search.
        select.blur();
        go({ inbox: select.value || null });
      }}>
        <option value="">All mail${page ? ` (${page.total})` : ''}</option>
        ${inboxes.map((i) => html`<option value=${i.Address}>${i.Address} (${i.Unread ? `${i.Unread} unread, ` : ''}${i.Total})</option>`)}
      </select>`}
      <span class=${`live ${live}`} title="Live updates">${live === 'live' ? '● live' : live === 'connecting' ? '○ connecting' : '○ reconnecting'}</span>
    </header>
    <main class="panes">
      <section class="list" aria-label="Messages">
        <div class="tools">
          ${pager}
          <button class="danger" onClick=${removeAll} disabled=${total === 0}>Delete all</button>
        </div>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        ${page === null && !error && html`<p class="empty">Loading…</p>`}
        ${page !== null && messages.length === 0 && html`<div class="empty">
          ${source.query || source.inbox
            ? html`<p>No message matches${source.inbox ? ` in ${source.inbox}` : ''}${source.query ? ` “${source.query}”` : ''}.</p>`
            : html`<p>No mail yet.</p><p class="hint">Send some to this server's SMTP port, e.g. <code>mailbox send --to you@example.test --subject hi</code>; it shows up here at once.</p>`}
        </div>`}
        <ul>
          ${messages.map(
            (m, i) => html`<li key=${m.ID} data-index=${i} data-id=${m.ID}
                class=${`item ${m.Read ? 'read' : 'unread'} ${i === selected ? 'selected' : ''} ${m.ID === openId ? 'open' : ''}`}
                onClick=${() => open(i)}>
              <div class="line1"><span class="from">${formatAddress(m.From) || '(no sender)'}</span><time datetime=${m.Created}>${formatWhen(m.Created)}</time></div>
              <div class="subject">${m.Subject || '(no subject)'}${m.Attachments > 0 ? html` <span class="clip">· ${m.Attachments === 1 ? '1 attachment' : `${m.Attachments} attachments`}</span>` : ''}</div>
              <div class="snippet">${m.Snippet}</div>
              <div class="meta">to ${m.To.map(formatAddress).join(', ') || '—'} · ${formatSize(m.Size)}
                <button class="link" onClick=${(e: Event) => (e.stopPropagation(), toggleRead(m.ID, !m.Read))}>${m.Read ? 'mark unread' : 'mark read'}</button>
                <button class="link danger" onClick=${(e: Event) => (e.stopPropagation(), remove(m.ID))}>delete</button>
              </div>
            </li>`,
          )}
        </ul>
      </section>
      <section class="reader" aria-label="Message">
        ${openId
          ? html`<${MessageView} key=${openId} id=${openId} extended=${extended} onClose=${() => setOpenId(null)} onDelete=${() => remove(openId)} />`
          : html`<p class="empty">Select a message (j/k to move, Enter to open, Delete to delete, / to search).</p>`}
      </section>
    </main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
