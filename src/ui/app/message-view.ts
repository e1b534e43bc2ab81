/**
 * @module The open message: its HTML in a sandboxed frame, the text part, headers, raw source,
 * MIME parts with downloads, the SMTP session, the relay's deliveries, and links and codes.
 * Rule 1: mail HTML is only ever shown inside <iframe sandbox> without allow-scripts or
 *         allow-same-origin, from the API's /view route, which serves it under the sandbox CSP;
 *         remote content stays blocked unless this message's "load remote images" switch is on.
 * Rule 2: each tab loads its data when first shown, so opening a message costs one request.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getDeliveries, getHeaders, getMessage, getText, urls, type Delivery, type Message, type Part } from './api.ts';
import { formatAddress, formatSize } from './format.ts';

type Tab = 'html' | 'text' | 'headers' | 'source' | 'parts' | 'session' | 'delivery' | 'extract';

const TAB_NAMES: Record<Tab, string> = {
  html: 'HTML',
  text: 'Text',
  headers: 'Headers',
  source: 'Source',
  parts: 'Parts',
  session: 'SMTP session',
  delivery: 'Delivery',
  extract: 'Links & codes',
};

/** Remote references a mail client would fetch: http(s) and protocol-relative URLs in src, url() or srcset. */
const REMOTE = /(?:\bsrc(?:set)?\s*=\s*["']?\s*|url\(\s*["']?\s*|\bbackground\s*=\s*["']?\s*)(?:https?:)?\/\//i;

function failure(error: unknown): string {
  if (error instanceof ApiError) return error.status === 0 ? 'The server cannot be reached.' : `${error.message} (HTTP ${error.status})`;
  return String(error);
}

/** Loads `load()` once; the result, the error text, or null while it runs. */
function useLoaded<T>(load: () => Promise<T>, deps: unknown[]): { value: T | undefined; error: string | null } {
  const [state, setState] = useState<{ value: T | undefined; error: string | null }>({ value: undefined, error: null });
  useEffect(() => {
    let current = true;
    load().then(
      (value) => current && setState({ value, error: null }),
      (error: unknown) => current && setState({ value: undefined, error: failure(error) }),
    );
    return () => {
      current = false;
    };
  }, deps);
  return state;
}

function copy(text: string): void {
  if (navigator.clipboard?.writeText) {
    navigator.clipboard.writeText(text).catch(() => fallbackCopy(text));
    return;
  }
  fallbackCopy(text);
}

function fallbackCopy(text: string): void {
  const area = document.createElement('textarea');
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

function Copyable({ value, label }: { value: string; label?: string }) {
  const [done, setDone] = useState(false);
  return html`<span class="copyable"><code>${label ?? value}</code>
    <button class="small" onClick=${() => (copy(value), setDone(true), setTimeout(() => setDone(false), 1500))}>${done ? 'copied' : 'copy'}</button></span>`;
}

function Loading({ error }: { error: string | null }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : html`<p class="empty">Loading…</p>`;
}

export function MessageView({ id, extended, onClose, onDelete }: { id: string; extended: boolean; onClose: () => void; onDelete: () => void }) {
  const { value: message, error } = useLoaded(() => getMessage(id, extended), [id, extended]);
  const [tab, setTab] = useState<Tab | null>(null);
  const [remote, setRemote] = useState(false);

  if (!message) {
    return html`<div class="message"><div class="msg-tools"><button class="back" onClick=${onClose}>← Back</button></div><${Loading} error=${error} /></div>`;
  }
  const shown: Tab = tab ?? (message.HTML ? 'html' : 'text');
  // The session, deliveries and links and codes come from our API only.
  const tabs = (Object.keys(TAB_NAMES) as Tab[]).filter((t) => (t !== 'html' || message.HTML) && (extended || !['session', 'delivery', 'extract'].includes(t)));
  const hasRemote = REMOTE.test(message.HTML);
  return html`<article class="message">
    <div class="msg-tools">
      <button class="back" onClick=${onClose}>← Back</button>
      <a class="button" href=${urls.rawDownload(id)} download=${`${id}.eml`}>Download .eml</a>
      <button class="danger" onClick=${onDelete}>Delete</button>
    </div>
    <h1 class="msg-subject">${message.Subject || '(no subject)'}</h1>
    <dl class="addresses">
      <dt>From</dt><dd>${formatAddress(message.From) || '—'}</dd>
      <dt>To</dt><dd>${(message.To ?? []).map(formatAddress).join(', ') || '—'}</dd>
      ${message.Cc?.length ? html`<dt>Cc</dt><dd>${message.Cc.map(formatAddress).join(', ')}</dd>` : ''}
      ${message.Bcc?.length ? html`<dt>Bcc</dt><dd>${message.Bcc.map(formatAddress).join(', ')}</dd>` : ''}
      ${message.Envelope?.RcptTo?.length ? html`<dt>Envelope</dt><dd>${message.Envelope.MailFrom || '<>'} → ${message.Envelope.RcptTo.join(', ')}</dd>` : ''}
      <dt>Date</dt><dd>${new Date(message.Date).toLocaleString()}</dd>
      <dt>Size</dt><dd>${formatSize(message.Size)}</dd>
    </dl>
    ${(message.Attachments?.length ?? 0) > 0 &&
    html`<ul class="attachments" aria-label="Attachments">
      ${message.Attachments!.map((a) => html`<li><a href=${urls.part(id, a.PartID)} download=${a.FileName || a.PartID}>${a.FileName || a.ContentType}</a> <span class="muted">${formatSize(a.Size)}</span></li>`)}
    </ul>`}
    <nav class="tabs" role="tablist">
      ${tabs.map((t) => html`<button role="tab" aria-selected=${t === shown} class=${t === shown ? 'active' : ''} onClick=${() => setTab(t)}>${TAB_NAMES[t]}</button>`)}
    </nav>
    <div class="tab-body">
      ${shown === 'html' &&
      html`<div class="html-view">
        <label class="remote ${hasRemote && !remote ? 'blocked' : ''}">
          <input type="checkbox" checked=${remote} onChange=${(e: Event) => setRemote((e.target as HTMLInputElement).checked)} />
          Load remote images${hasRemote && !remote ? ' (remote content is blocked)' : ''}
        </label>
        <iframe class="mail-html" title="Message HTML" sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" src=${urls.view(id, remote)}></iframe>
      </div>`}
      ${shown === 'text' && html`<${TextPart} id=${id} text=${message.Text} />`}
      ${shown === 'headers' && html`<${Headers} id=${id} />`}
      ${shown === 'source' && html`<${Source} id=${id} />`}
      ${shown === 'parts' && html`<${Parts} id=${id} message=${message} />`}
      ${shown === 'session' && html`<${Session} id=${id} message=${message} />`}
      ${shown === 'delivery' && html`<${Deliveries} id=${id} />`}
      ${shown === 'extract' && html`<${Extract} message=${message} />`}
    </div>
  </article>`;
}

function TextPart({ text }: { id: string; text: string }) {
  return text ? html`<pre class="text-part">${text}</pre>` : html`<p class="empty">This message has no text part.</p>`;
}

function Headers({ id }: { id: string }) {
  const { value, error } = useLoaded(() => getHeaders(id), [id]);
  if (!value) return html`<${Loading} error=${error} />`;
  return html`<table class="headers"><tbody>
    ${Object.entries(value).flatMap(([name, values]) => values.map((v) => html`<tr><th>${name}</th><td>${v}</td></tr>`))}
  </tbody></table>`;
}

/** The raw message as stored; very large ones are cut on screen (the download has every byte). */
const SOURCE_SHOWN = 1024 * 1024;

function Source({ id }: { id: string }) {
  const { value, error } = useLoaded(() => getText(urls.raw(id)), [id]);
  if (value === undefined) return html`<${Loading} error=${error} />`;
  return html`<div>
    <a class="button" href=${urls.rawDownload(id)} download=${`${id}.eml`}>Download source</a>
    ${value.length > SOURCE_SHOWN ? html`<p class="muted">Showing the first MB of ${formatSize(value.length)}.</p>` : ''}
    <pre class="source">${value.slice(0, SOURCE_SHOWN)}</pre>
  </div>`;
}

/** The MIME parts by their part numbers (1, 1.1, 1.2…), indented by depth, each downloadable. */
function Parts({ id, message }: { id: string; message: Message }) {
  const parts: (Part & { kind: string })[] = [
    ...(message.Inline ?? []).map((p) => ({ ...p, kind: 'inline' })),
    ...(message.Attachments ?? []).map((p) => ({ ...p, kind: 'attachment' })),
  ].sort((a, b) => comparePartIds(a.PartID, b.PartID));
  return html`<div>
    <ul class="part-tree">
      <li><span class="muted">message</span> ${formatSize(message.Size)}
        <ul>
          ${message.Text ? html`<li><code>text/plain</code> <span class="muted">the text part</span></li>` : ''}
          ${message.HTML ? html`<li><code>text/html</code> <span class="muted">the HTML part</span></li>` : ''}
          ${parts.map(
            (p) => html`<li style=${`margin-left:${(p.PartID.split('.').length - 1) * 1.2}em`}>
              <span class="muted">${p.PartID}</span> <code>${p.ContentType}</code> ${p.kind}
              ${p.FileName ? html` <strong>${p.FileName}</strong>` : ''}${p.ContentID ? html` <span class="muted">cid:${p.ContentID}</span>` : ''}
              <span class="muted">${formatSize(p.Size)}</span>
              <a href=${urls.part(id, p.PartID)} download=${p.FileName || p.ContentID || p.PartID}>download</a>
            </li>`,
          )}
        </ul>
      </li>
    </ul>
    ${parts.length === 0 ? html`<p class="empty">No attachments or inline parts.</p>` : ''}
  </div>`;
}

function comparePartIds(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** The transaction as stored is the replayable segment; a very large one is cut on screen. */
function Session({ id, message }: { id: string; message: Message }) {
  const { value, error } = useLoaded(() => getText(urls.replay(id)), [id]);
  const e = message.Envelope;
  const tls = e?.TLS ? e.TLS : 'none';
  return html`<div>
    ${e &&
    html`<dl class="addresses">
      <dt>Client</dt><dd>${e.ClientAddress ?? '—'}</dd>
      <dt>HELO</dt><dd>${e.Helo ?? '—'}</dd>
      <dt>TLS</dt><dd>${tls}</dd>
      <dt>AUTH user</dt><dd>${e.AuthUser || '—'}</dd>
      <dt>MAIL FROM</dt><dd>${e.MailFrom === undefined ? '—' : `<${e.MailFrom}>`}</dd>
      <dt>RCPT TO</dt><dd>${(e.RcptTo ?? []).map((r) => `<${r}>`).join(', ') || '—'}</dd>
    </dl>`}
    <a class="button" href=${urls.replay(id)} download=${`${id}.smtp`}>Download replay (mailbox replay FILE)</a>
    ${value === undefined
      ? html`<${Loading} error=${error} />`
      : html`<pre class="source session">${value.slice(0, SOURCE_SHOWN)}</pre>${value.length > SOURCE_SHOWN ? html`<p class="muted">Showing the first MB of ${formatSize(value.length)}.</p>` : ''}`}
  </div>`;
}

function replyText(reply: Delivery['LastReply']): string {
  if (!reply) return '—';
  if (typeof reply === 'string') return reply;
  return [reply.Code, reply.Enhanced, reply.Text].filter((x) => x !== undefined && x !== '').join(' ');
}

function Deliveries({ id }: { id: string }) {
  const { value, error } = useLoaded(() => getDeliveries(id), [id]);
  if (value === undefined) return html`<${Loading} error=${error} />`;
  if (value === null || value.length === 0) return html`<p class="empty">The server reports no relay delivery for this message.</p>`;
  return html`<table class="deliveries">
    <thead><tr><th>Recipient</th><th>State</th><th>Attempts</th><th>Last reply</th></tr></thead>
    <tbody>${value.map(
      (d) => html`<tr><td>${d.Rcpt}</td><td class=${`state ${d.State}`}>${d.State}${d.NextAttempt ? html`<br /><span class="muted">next ${new Date(d.NextAttempt).toLocaleString()}</span>` : ''}</td>
        <td>${d.Attempts ?? '—'}</td><td><code>${replyText(d.LastReply)}</code></td></tr>`,
    )}</tbody>
  </table>`;
}

function Extract({ message }: { message: Message }) {
  const codes = message.Codes ?? [];
  const links = message.Links ?? [];
  return html`<div class="extract">
    <h2>Codes</h2>
    ${codes.length ? html`<ul>${codes.map((c) => html`<li><${Copyable} value=${c} /></li>`)}</ul>` : html`<p class="empty">No codes found.</p>`}
    <h2>Links</h2>
    ${links.length
      ? html`<ul>${links.map((l) => html`<li>${l.Text ? html`<span class="muted">${l.Text}</span> ` : ''}<${Copyable} value=${l.URL} /></li>`)}</ul>`
      : html`<p class="empty">No links found.</p>`}
  </div>`;
}
