// Mailpit's API v1 over an index filled here: shapes, counts, read-on-fetch, canonical headers,
// parts and /view under the sandbox CSP, the DELETE/PUT bodies clients send, limits and errors
// (research/mailpit-api.md §1).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { MAX_LIMIT } from '../../src/http/mailpit-api.ts';
import { canonicalHeaderKey } from '../../src/http/mailpit-json.ts';
import { sampleMessage, startApi, type ApiUnderTest } from './api-harness.ts';

const CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";

let t: ApiUnderTest;
beforeAll(() => {
  t = startApi();
});
afterAll(() => t.close());

const get = (path: string, init?: RequestInit) => fetch(`${t.base}${path}`, init);
const json = async (path: string, init?: RequestInit) => {
  const r = await get(path, init);
  expect(r.status).toBe(200);
  return r.json() as Promise<Record<string, any>>;
};

const ATTACHED = `From: "Ann Example" <ann@x.test>
To: bob@x.test, "Carol" <carol@x.test>
Cc: dan@x.test
Reply-To: replies@x.test
Subject: Report with files
Message-ID: <report-1@x.test>
Date: Tue, 01 Dec 2026 10:00:00 +0100
List-Unsubscribe: <mailto:unsub@x.test>, <https://x.test/unsub>
dkim-signature: v=1; a=rsa-sha256
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

See the chart. Your code is 482913.
--alt
Content-Type: text/html; charset=utf-8

<p>See the chart <img src="cid:chart@x.test"> and <a href="https://x.test/report">the report</a></p><script>alert(1)</script>
--alt--
--rel
Content-Type: image/png
Content-ID: <chart@x.test>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--rel--
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer
Content-Type: text/html; name="page.html"
Content-Disposition: attachment; filename="page.html"

<script>steal()</script>
--outer--
`;

describe('lists and search', () => {
  test('newest first; total/unread count the store, messages_count the query; Attachments a count', async () => {
    await t.mail.delete(null);
    const first = await t.mail.add(sampleMessage({ subject: 'first one' }));
    const second = await t.mail.add(ATTACHED, { to: ['bob@x.test', 'carol@x.test', 'dan@x.test', 'hidden@x.test'] });
    const list = await json('/api/v1/messages');
    expect(Object.keys(list)).toEqual(['total', 'unread', 'count', 'messages_count', 'messages_unread', 'start', 'tags', 'messages']);
    expect(list.messages.map((m: any) => m.ID)).toEqual([second, first]);
    expect(list.total).toBe(2);
    expect(list.messages_count).toBe(2);
    const summary = list.messages[0];
    expect(Object.keys(summary)).toEqual(['ID', 'MessageID', 'Read', 'From', 'To', 'Cc', 'Bcc', 'ReplyTo', 'Subject', 'Created', 'Username', 'Tags', 'Size', 'Attachments', 'Snippet']);
    expect(summary.MessageID).toBe('report-1@x.test');
    expect(summary.From).toEqual({ Name: 'Ann Example', Address: 'ann@x.test' });
    expect(summary.To).toEqual([{ Name: '', Address: 'bob@x.test' }, { Name: 'Carol', Address: 'carol@x.test' }]);
    // Envelope recipients named in no header are Bcc, as Mailpit writes them.
    expect(summary.Bcc).toEqual([{ Name: '', Address: 'hidden@x.test' }]);
    expect(summary.Attachments).toBe(2);
    expect(summary.Created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(summary.Tags).toEqual([]);
    const search = await json('/api/v1/search?query=subject:report');
    expect(search.total).toBe(2);
    expect(search.messages_count).toBe(1);
    expect(search.messages[0].ID).toBe(second);
    expect((await get('/api/v1/messages')).headers.get('x-mailbox-cursor')).toBe(String(t.mail.lastSeq));
  });

  test('limit: 50 by default, capped at 5,000, 0 means the cap; total stays exact', async () => {
    await t.mail.delete(null);
    for (let i = 0; i < 60; i++) await t.mail.add(sampleMessage({ subject: `bulk ${i}` }));
    expect((await json('/api/v1/messages')).messages).toHaveLength(50);
    const all = await json('/api/v1/messages?limit=0');
    expect(all.messages).toHaveLength(60);
    expect(all.total).toBe(60);
    expect((await json('/api/v1/search?query=bulk&limit=0')).messages).toHaveLength(60);
    const page = await json('/api/v1/messages?start=55&limit=10');
    expect(page.messages.map((m: any) => m.Subject)).toEqual(['bulk 4', 'bulk 3', 'bulk 2', 'bulk 1', 'bulk 0']);
    expect(page.start).toBe(55);
    expect(MAX_LIMIT).toBe(5000);
  });

  test('an empty query is 400 with Mailpit\'s text; a query of dropped terms matches everything', async () => {
    const r = await get('/api/v1/search?query=');
    expect(r.status).toBe(400);
    expect(await r.text()).toBe('Error: no search query\n');
    expect((await json('/api/v1/search?query=larger:zz')).messages_count).toBe((await json('/api/v1/messages')).total);
  });
});

describe('one message', () => {
  test('GET message: Mailpit\'s Message with Attachments an array, part IDs, checksums; it marks read', async () => {
    const id = await t.mail.add(ATTACHED);
    expect(t.mail.db.get(id)!.read).toBe(false);
    const m = await json(`/api/v1/message/${id}`);
    expect(m.Read).toBe(true);
    expect(t.mail.db.get(id)!.read).toBe(true);
    expect(m.Text).toContain('See the chart');
    expect(m.HTML).toContain('<img src="cid:chart@x.test">');
    expect(m.ReturnPath).toBe('sender@x.test');
    expect(m.Date).toBe('2026-12-01T09:00:00.000Z');
    expect(m.ListUnsubscribe).toEqual({ Header: '<mailto:unsub@x.test>, <https://x.test/unsub>', Links: ['mailto:unsub@x.test', 'https://x.test/unsub'], Errors: '', HeaderPost: '' });
    expect(m.Inline).toEqual([
      { PartID: '1.2', FileName: 'chart@x.test', ContentType: 'image/png', ContentID: 'chart@x.test', Size: 8, Checksums: expect.any(Object) },
    ]);
    expect(m.Attachments.map((a: any) => [a.PartID, a.FileName, a.ContentType, a.Size])).toEqual([
      ['2', 'report.pdf', 'application/pdf', 9],
      ['3', 'page.html', 'text/html', 24],
    ]);
    expect(m.Attachments[0].Checksums.SHA256).toBe(new Bun.CryptoHasher('sha256').update('%PDF-1.4\n').digest('hex'));
  });

  test('latest, latest with a query, and 404s: an unknown id, a bad id, no match', async () => {
    const id = await t.mail.add(sampleMessage({ subject: 'latest probe zq9' }));
    expect((await json('/api/v1/message/latest')).ID).toBe(id);
    expect((await json('/api/v1/message/latest?query=subject:report')).Subject).toBe('Report with files');
    const none = await get('/api/v1/message/latest?query=subject:nothing-like-this');
    expect(none.status).toBe(404);
    expect(await none.text()).toBe('Message not found\n');
    for (const bad of ['doesnotexist', 'bad%20id', '..%2F..%2Fetc']) {
      const r = await get(`/api/v1/message/${bad}`);
      expect(r.status).toBe(404);
      expect(await r.text()).toBe('404 page not found\n');
    }
  });

  test('headers: Go canonical keys, sorted, every value; raw; dl=1', async () => {
    const id = await t.mail.add(ATTACHED);
    const h = await json(`/api/v1/message/${id}/headers`);
    expect(Object.keys(h)).toEqual([...Object.keys(h)].sort());
    expect(h['Message-Id']).toEqual(['<report-1@x.test>']);
    expect(h['Mime-Version']).toEqual(['1.0']);
    expect(h['Dkim-Signature']).toEqual(['v=1; a=rsa-sha256']);
    expect(h['Reply-To']).toEqual(['replies@x.test']);
    expect(t.mail.db.get(id)!.read).toBe(false);
    const raw = await get(`/api/v1/message/${id}/raw`);
    expect(raw.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await raw.text()).toBe(ATTACHED.replace(/\n/g, '\r\n'));
    expect((await get(`/api/v1/message/${id}/raw?dl=1`)).headers.get('content-disposition')).toBe(`attachment; filename="${id}.eml"`);
    expect(canonicalHeaderKey('x-mailer')).toBe('X-Mailer');
    expect(canonicalHeaderKey('content-ID')).toBe('Content-Id');
  });

  test('parts: decoded bytes, the sandbox CSP and nosniff on each; only images inline; bad part 404', async () => {
    const id = await t.mail.add(ATTACHED);
    const png = await get(`/api/v1/message/${id}/part/1.2`);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(png.headers.get('content-disposition')).toBe('inline; filename="chart@x.test"');
    expect(png.headers.get('content-security-policy')).toBe(CSP);
    expect(png.headers.get('x-content-type-options')).toBe('nosniff');
    expect(new Uint8Array(await png.arrayBuffer())).toEqual(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const html = await get(`/api/v1/message/${id}/part/3`);
    expect(html.headers.get('content-disposition')).toBe('attachment; filename="page.html"');
    expect(html.headers.get('content-security-policy')).toBe(CSP);
    expect(await html.text()).toBe('<script>steal()</script>');
    for (const bad of ['9', '1', '0', 'x', '1.2.3.4']) expect((await get(`/api/v1/message/${id}/part/${bad}`)).status).toBe(404);
  });
});

describe('/view', () => {
  test('.html: a <script> in mail HTML is served under the sandbox CSP; cid: points at the part; it marks read', async () => {
    const id = await t.mail.add(ATTACHED);
    const r = await get(`/view/${id}.html`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toBe(CSP);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const body = await r.text();
    expect(body).toContain('<script>alert(1)</script>');
    expect(body).toContain(`<img src="/api/v1/message/${id}/part/1.2">`);
    expect(t.mail.db.get(id)!.read).toBe(true);
  });

  test('.html?remote=1 (the web UI\'s "load remote images"): images from anywhere, still no script', async () => {
    const id = await t.mail.add(ATTACHED);
    const r = await get(`/view/${id}.html?remote=1`);
    expect(r.status).toBe(200);
    const csp = r.headers.get('content-security-policy')!;
    expect(csp).toBe("sandbox; default-src 'none'; img-src 'self' data: http: https:; style-src 'unsafe-inline'");
    expect(csp).not.toContain('script-src');
  });

  test('an inline image asked for by the sandboxed frame (Origin: null, no-cors image) is served; other foreign asks are not', async () => {
    const id = await t.mail.add(ATTACHED);
    const frame = { Origin: 'null', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Dest': 'image' };
    expect((await get(`/api/v1/message/${id}/part/1.2`, { headers: frame })).status).toBe(200);
    // The exemption is the part route's alone, for that one kind of request.
    expect((await get(`/api/v1/message/${id}/raw`, { headers: frame })).status).toBe(403);
    expect((await get(`/api/v1/message/${id}/part/1.2`, { headers: { ...frame, 'Sec-Fetch-Mode': 'cors' } })).status).toBe(403);
    expect((await get(`/api/v1/message/${id}/part/1.2`, { headers: { ...frame, Origin: 'http://evil.example' } })).status).toBe(403);
  });

  test('.txt, //view (cypress-mailpit), latest, and a message without HTML', async () => {
    const id = await t.mail.add(sampleMessage({ subject: 'plain only', body: 'just text' }));
    const txt = await get(`//view/${id}.txt`);
    expect(txt.status).toBe(200);
    expect(await txt.text()).toBe('just text\n');
    expect(txt.headers.get('content-security-policy')).toBe(CSP);
    const noHtml = await get(`/view/${id}.html`);
    expect(noHtml.status).toBe(404);
    expect(await noHtml.text()).toBe('This message does not contain a HTML part\n');
    const latest = await get('/view/latest', { redirect: 'manual' });
    expect(latest.status).toBe(302);
    expect(latest.headers.get('location')).toBe(`/view/${id}`);
    expect((await get('/view/latest.txt')).status).toBe(200);
  });
});

describe('changes: read status, delete, tags', () => {
  test('PUT messages: IDs, Search, neither (all), both (400), keys in any case, an empty body (400)', async () => {
    await t.mail.delete(null);
    const a = await t.mail.add(sampleMessage({ subject: 'alpha' }));
    const b = await t.mail.add(sampleMessage({ subject: 'beta' }));
    const put = (body: string) => get('/api/v1/messages', { method: 'PUT', body, headers: { 'Content-Type': 'application/json' } });
    expect(await (await put(JSON.stringify({ read: true, ids: [a] }))).text()).toBe('ok');
    expect(t.mail.db.get(a)!.read).toBe(true);
    expect((await put(JSON.stringify({ READ: true, search: 'subject:beta' }))).status).toBe(200);
    expect(t.mail.db.get(b)!.read).toBe(true);
    expect((await put(JSON.stringify({ Read: false }))).status).toBe(200);
    expect((await json('/api/v1/messages')).unread).toBe(2);
    const both = await put(JSON.stringify({ IDs: [a], Search: 'x' }));
    expect(both.status).toBe(400);
    expect((await put('')).status).toBe(400);
    expect((await put('ids=1')).status).toBe(400);
  });

  test('DELETE messages: {"ids":[…]} (testcontainers), no body = all, a non-JSON body is 400 and deletes nothing', async () => {
    await t.mail.delete(null);
    const a = await t.mail.add(sampleMessage());
    const b = await t.mail.add(sampleMessage());
    const c = await t.mail.add(sampleMessage());
    const del = (body?: string, type = 'application/json') => get('/api/v1/messages', { method: 'DELETE', ...(body === undefined ? {} : { body, headers: { 'Content-Type': type } }) });
    expect((await del(JSON.stringify({ ids: [a] }))).status).toBe(200);
    expect(t.mail.db.get(a)).toBeNull();
    const form = await del(`ids=${b}`, 'application/x-www-form-urlencoded');
    expect(form.status).toBe(400);
    expect(t.mail.db.stats().total).toBe(2);
    expect((await del('[1,2]')).status).toBe(400);
    expect((await del(JSON.stringify({ IDs: [] }))).status).toBe(200);
    expect(t.mail.db.stats().total).toBe(0);
    await t.mail.add(sampleMessage());
    expect(await (await del()).text()).toBe('ok');
    expect(t.mail.db.stats().total).toBe(0);
    expect(c).toBeString();
  });

  test('DELETE search deletes the matches only', async () => {
    await t.mail.delete(null);
    await t.mail.add(sampleMessage({ subject: 'keep me' }));
    await t.mail.add(sampleMessage({ subject: 'drop me' }));
    expect((await get('/api/v1/search?query=subject:drop', { method: 'DELETE' })).status).toBe(200);
    expect((await json('/api/v1/messages')).messages.map((m: any) => m.Subject)).toEqual(['keep me']);
    expect((await get('/api/v1/search', { method: 'DELETE' })).status).toBe(400);
  });

  test('tags: set (replaces), list, rename, delete, search by tag', async () => {
    await t.mail.delete(null);
    const a = await t.mail.add(sampleMessage());
    const b = await t.mail.add(sampleMessage());
    const put = (path: string, body: unknown) => get(path, { method: 'PUT', body: JSON.stringify(body) });
    expect((await put('/api/v1/tags', { tags: ['Red', 'blue'], IDs: [a, b] })).status).toBe(200);
    expect((await put('/api/v1/tags', { Tags: ['green'], ids: [b] })).status).toBe(200);
    expect(await json('/api/v1/tags')).toEqual(['blue', 'green', 'Red']);
    expect((await json(`/api/v1/message/${b}`)).Tags).toEqual(['green']);
    expect((await put('/api/v1/tags/Red', { name: 'Crimson' })).status).toBe(200);
    expect((await json('/api/v1/search?query=tag:crimson')).messages.map((m: any) => m.ID)).toEqual([a]);
    expect((await get('/api/v1/tags/blue', { method: 'DELETE' })).status).toBe(200);
    expect(await json('/api/v1/tags')).toEqual(['Crimson', 'green']);
    expect((await put('/api/v1/tags/x', {})).status).toBe(400);
  });
});

describe('the rest of Mailpit\'s routes', () => {
  test('info, webui, chaos (400, disabled), livez-style 200s, OPTIONS', async () => {
    const info = await json('/api/v1/info');
    expect(Object.keys(info)).toEqual(['Version', 'LatestVersion', 'Database', 'DatabaseSize', 'Messages', 'Unread', 'Tags', 'RuntimeStats']);
    expect(info.LatestVersion).toBe(info.Version);
    const webui = await json('/api/v1/webui');
    expect(webui.MessageRelay.Enabled).toBe(false);
    expect(webui.ChaosEnabled).toBe(false);
    const chaos = await get('/api/v1/chaos');
    expect(chaos.status).toBe(400);
    expect(await chaos.text()).toBe('Chaos is not enabled\n');
    expect((await get('/api/v1/chaos', { method: 'PUT', body: '{}' })).status).toBe(400);
  });

  test('send: 200 {"ID"} through the submit path, tags applied; bad input is JSON {"Error"}', async () => {
    const r = await get('/api/v1/send', {
      method: 'POST',
      body: JSON.stringify({
        from: { email: 'app@x.test', name: 'The App' },
        To: [{ Email: 'user@x.test' }],
        Bcc: ['audit@x.test'],
        Subject: 'Welcome',
        Text: 'Your code is 123456',
        HTML: '<p>Your code is <b>123456</b></p>',
        Attachments: [{ Content: btoa('hello'), Filename: 'hello.txt' }],
        Tags: ['signup'],
        Headers: { 'X-Campaign': 'w1' },
      }),
    });
    expect(r.status).toBe(200);
    const { ID } = (await r.json()) as { ID: string };
    const sub = t.submitted.at(-1)!;
    expect(sub.recipients).toEqual(['user@x.test', 'audit@x.test']);
    const raw = new TextDecoder().decode(sub.bytes);
    expect(raw).toContain('X-Campaign: w1');
    expect(raw).not.toContain('audit@x.test');
    const m = await json(`/api/v1/message/${ID}`);
    expect(m.Subject).toBe('Welcome');
    expect(m.Tags).toEqual(['signup']);
    expect(m.Attachments.map((a: any) => a.FileName)).toEqual(['hello.txt']);
    for (const bad of ['{}', '{"From":{"Email":"a@x.test"}}', 'not json', '{"From":{"Email":"a@x.test"},"To":"b@x.test"}']) {
      const e = await get('/api/v1/send', { method: 'POST', body: bad });
      expect(e.status).toBe(400);
      expect(e.headers.get('content-type')).toBe('application/json');
      expect(Object.keys((await e.json()) as object)).toEqual(['Error']);
    }
  });

  test('send and release refuse callers who may not relay (403)', async () => {
    const closed = startApi({ mayRelay: () => false });
    try {
      const send = await fetch(`${closed.base}/api/v1/send`, { method: 'POST', body: JSON.stringify({ From: { Email: 'a@x.test' }, To: [{ Email: 'b@x.test' }] }) });
      expect(send.status).toBe(403);
      const id = await closed.mail.add(sampleMessage());
      expect((await fetch(`${closed.base}/api/v1/message/${id}/release`, { method: 'POST', body: '{"To":["x@y.test"]}' })).status).toBe(403);
    } finally {
      await closed.close();
    }
    const id = await t.mail.add(sampleMessage());
    const noRelay = await get(`/api/v1/message/${id}/release`, { method: 'POST', body: '{"To":["x@y.test"]}' });
    expect(noRelay.status).toBe(400);
    expect(await noRelay.text()).toContain('Relay is not enabled');
  });

  test('bodies over 5 MB are 413; one log line per error answer', async () => {
    const before = t.log.filter((l) => l.event === 'http-error').length;
    const huge = JSON.stringify({ IDs: ['x'.repeat(6 * 1024 * 1024)] });
    const r = await get('/api/v1/messages', { method: 'DELETE', body: huge });
    expect(r.status).toBe(413);
    expect(t.log.filter((l) => l.event === 'http-error').length).toBe(before + 1);
  });
});

describe('deliveries of the relay', () => {
  test('without a relay the route answers 404 with a reason; with one, each relayed recipient as the queue sees it', async () => {
    const plain = startApi();
    try {
      const response = await fetch(`${plain.base}/api/mailbox/v1/message/AbC123/deliveries`);
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: string }).error).toContain('does not relay');
    } finally {
      await plain.close();
    }
    const relaying = startApi({
      deliveries: (id) => (id === 'AbC123' ? [{ address: 'b@remote.test', state: 'deferred', attempts: 2, nextAttemptMs: Date.UTC(2030, 0, 1), reply: '451 4.3.0 try later' }] : undefined),
    });
    try {
      const ok = await fetch(`${relaying.base}/api/mailbox/v1/message/AbC123/deliveries`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual([{ Rcpt: 'b@remote.test', State: 'deferred', Attempts: 2, NextAttempt: '2030-01-01T00:00:00.000Z', LastReply: '451 4.3.0 try later', At: null }]);
      expect((await fetch(`${relaying.base}/api/mailbox/v1/message/Other1/deliveries`)).status).toBe(404);
      expect((await fetch(`${relaying.base}/api/mailbox/v1/message/bad%20id/deliveries`)).status).toBe(400);
    } finally {
      await relaying.close();
    }
  });
});

describe('reads and watchers (mail-index.ts Rule 6)', () => {
  test('every route asks for the index as of the request; a websocket and an SSE stream are watchers while open', async () => {
    const own = startApi();
    try {
      const reads = own.mail.reads;
      expect((await fetch(`${own.base}/api/v1/messages`)).status).toBe(200);
      expect((await fetch(`${own.base}/api/mailbox/v1/inboxes`)).status).toBe(200);
      expect(own.mail.reads).toBe(reads + 2);
      const ws = new WebSocket(`${own.base.replace('http:', 'ws:')}/api/events`);
      await new Promise((resolve, reject) => {
        ws.onmessage = resolve;
        ws.onerror = reject;
      });
      expect(own.mail.watchers).toBe(1);
      const stream = new AbortController();
      const sse = await fetch(`${own.base}/api/mailbox/v1/events`, { signal: stream.signal });
      expect(sse.status).toBe(200);
      const reader = sse.body!.getReader();
      await reader.read();
      expect(own.mail.watchers).toBe(2);
      ws.close();
      stream.abort();
      await reader.read().catch(() => undefined);
      const deadline = Date.now() + 5000;
      while (own.mail.watchers > 0 && Date.now() < deadline) await Bun.sleep(10);
      expect(own.mail.watchers).toBe(0);
    } finally {
      await own.close();
    }
  });
});
