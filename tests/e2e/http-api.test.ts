// dist/mailbox serve --http with real clients: the mailpit-api package from npm, unchanged,
// through its helpers; the request sequences of the other Mailpit clients (research/mailpit-api.md
// §2) replayed as fixtures; wait with 20 concurrent senders (Python smtplib) and 20 waiters;
// the resumable SSE stream; the Host and Origin checks and /view's headers; bad input.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { MailpitClient } from 'mailpit-api';
import { cleanupServesAfterAll, listeningAddresses, portOf, runPython, startServe, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";

let server: ServeHandle;
let base: string;

beforeAll(async () => {
  server = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json'] });
  base = `http://127.0.0.1:${portOf((await listeningAddresses(server)).http[0])}`;
});

/** Sends messages with Python's smtplib, `threads` sessions at once; each item is [to, subject, extra headers, body]. */
async function sendAll(items: [string, string, string?, string?][], threads = 1, port = server.port): Promise<void> {
  const r = await runPython(
    `import smtplib, sys, json, threading
items = json.loads(sys.argv[2]); n = int(sys.argv[3]); errors = []
def work(k):
    try:
        with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
            for i in range(k, len(items), n):
                to, subject, extra, body = (items[i] + [None, None])[:4]
                msg = 'From: App <app@x.test>\\r\\nTo: %s\\r\\nSubject: %s\\r\\n%s\\r\\n%s\\r\\n' % (to, subject, extra or '', body or 'hello ' + subject)
                s.sendmail('app@x.test', [to], msg.encode())
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(errors))`,
    [String(port), JSON.stringify(items), String(threads)],
    { timeoutMs: 120_000 },
  );
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('[]');
}

async function waitFor(query: string, timeout = 10): Promise<Record<string, any>> {
  const r = await fetch(`${base}/api/mailbox/v1/wait?query=${encodeURIComponent(query)}&timeout=${timeout}`);
  expect(r.status).toBe(200);
  return ((await r.json()) as { messages: Record<string, any>[] }).messages[0];
}

/** One server-sent event: its event name ("message" when none), id and data line. */
interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

/** Reads an SSE body block by block (blocks end with a blank line), handing each one with data to `onEvent`. */
async function readSse(body: ReadableStream<Uint8Array>, onEvent: (event: SseEvent) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (data) onEvent({ event: /^event: (.*)$/m.exec(block)?.[1] ?? 'message', id: /^id: (.*)$/m.exec(block)?.[1], data });
    }
  }
}

const MULTIPART = `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"`;
const MULTIPART_BODY = `--b\r\nContent-Type: text/html\r\n\r\n<p>Hi <a href="https://x.test/confirm?t=1">confirm</a>, your verification code is 739201</p><script>alert(document.cookie)</script>\r\n--b\r\nContent-Type: text/csv; name="data.csv"\r\nContent-Disposition: attachment; filename="data.csv"\r\n\r\na,b\r\n1,2\r\n--b--`;

describe('mailpit-api from npm, unchanged', () => {
  test('list, search, message, headers, raw, part, read status, delete and the wait helpers', async () => {
    const mailpit = new MailpitClient(base);
    await mailpit.deleteMessages();
    expect((await mailpit.listMessages()).total).toBe(0);
    const waiting = mailpit.waitForMessage({ query: 'subject:"npm client"' }, { timeout: 10_000, interval: 100 });
    await sendAll([['npm@x.test', 'npm client one', `X-Priority: 2\r\n${MULTIPART}\r\n`, MULTIPART_BODY]]);
    const message = await waiting;
    expect(message.Subject).toBe('npm client one');
    expect(message.Attachments.map((a) => a.FileName)).toEqual(['data.csv']);
    const list = await mailpit.listMessages();
    expect(list.total).toBe(1);
    expect(list.messages[0].Read).toBe(true);
    const headers = await mailpit.getMessageHeaders(message.ID);
    expect(headers['X-Priority']).toEqual(['2']);
    expect(headers.Received?.[0]).toContain('(mailbox)');
    const source = await mailpit.getMessageSource(message.ID);
    expect(source).toContain('Subject: npm client one');
    const part = await mailpit.getMessageAttachment(message.ID, message.Attachments[0].PartID);
    expect(part.type).toBe('text/csv');
    expect(await part.text()).toBe('a,b\r\n1,2');
    await mailpit.setReadStatus({ IDs: [message.ID], Read: false });
    expect((await mailpit.listMessages()).unread).toBe(1);
    await sendAll([['npm@x.test', 'npm client two'], ['npm@x.test', 'npm client three']]);
    const two = await mailpit.waitForMessages({ query: 'subject:"npm client"', count: 3 }, { timeout: 10_000, interval: 100 });
    expect(two.messages_count).toBe(3);
    expect(two.messages.map((m) => m.Subject)).toEqual(['npm client three', 'npm client two', 'npm client one']);
    const search = await mailpit.searchMessages({ query: 'to:npm@x.test' });
    expect(search.messages_count).toBe(3);
    await mailpit.deleteMessages({ IDs: [two.messages[0].ID] });
    expect((await mailpit.listMessages()).total).toBe(2);
    await mailpit.deleteMessagesBySearch({ query: 'subject:two' });
    expect((await mailpit.listMessages()).messages.map((m) => m.Subject)).toEqual(['npm client one']);
    await mailpit.setTags({ IDs: [message.ID], Tags: ['npm'] });
    expect(await mailpit.getTags()).toEqual(['npm']);
    expect((await mailpit.getInfo()).Messages).toBe(1);
    expect(await mailpit.renderMessageText(message.ID)).toContain('');
    const sent = await mailpit.sendMessage({ From: { Email: 'api@x.test' }, To: [{ Email: 'npm@x.test' }], Subject: 'sent by npm client', Text: 'hi' });
    expect((await mailpit.getMessageSummary(sent.ID)).Subject).toBe('sent by npm client');
    await expect(mailpit.getChaosTriggers()).rejects.toThrow(/400/);
    await mailpit.deleteMessages();
    expect((await mailpit.listMessages()).total).toBe(0);
  });
});

describe('the other clients, as fixtures of their requests', () => {
  test('cypress-mailpit, playwright-mailpit, pytest-mailpit, testcontainers, codeception, LibreSign, Corvan', async () => {
    await fetch(`${base}/api/v1/messages`, { method: 'DELETE' });
    await sendAll([
      ['fix@x.test', 'Fixture Hello World', `X-Priority: 1\r\n${MULTIPART}\r\n`, MULTIPART_BODY],
      ['other@x.test', 'Unrelated'],
    ]);
    const first = await waitFor('subject:"Fixture Hello World"');
    await waitFor('subject:Unrelated');
    const id: string = first.ID;
    type Step = { client: string; method?: string; path: string; body?: string; headers?: Record<string, string>; status: number; check?: (r: Response) => Promise<void> };
    const steps: Step[] = [
      // cypress-mailpit (src/MailpitCommands.ts): paging, an unquoted multi-word subject, //view.
      { client: 'cypress', path: '/api/v1/messages?start=0&limit=50', status: 200, check: async (r) => expect(((await r.json()) as any).messages_count).toBe(2) },
      { client: 'cypress', path: `/api/v1/search?query=${encodeURIComponent('subject:Fixture Hello')}&start=0&limit=50`, status: 200, check: async (r) => expect(((await r.json()) as any).messages_count).toBe(1) },
      { client: 'cypress', path: `//view/${id}.html`, status: 200, check: async (r) => expect(r.headers.get('content-security-policy')).toBe(CSP) },
      { client: 'cypress', path: `//view/${id}.txt`, status: 200 },
      { client: 'cypress', method: 'PUT', path: '/api/v1/messages', body: '{"IDs":[],"Read":true}', status: 200 },
      // playwright-mailpit (src/client.ts): JSON headers on every request, raw included.
      { client: 'playwright', path: `/api/v1/message/${encodeURIComponent(id)}/raw`, headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, status: 200, check: async (r) => expect(await r.text()).toContain('Fixture Hello World') },
      // pytest-mailpit (client.py): probes, the Date header, pages of 250, parts and headers.
      { client: 'pytest', path: '/readyz', status: 200 },
      { client: 'pytest', path: '/livez', status: 200, check: async (r) => expect(Math.abs(Date.parse(r.headers.get('date')!) - Date.now())).toBeLessThan(120_000) },
      { client: 'pytest', path: '/api/v1/info', status: 200, check: async (r) => expect(((await r.json()) as any).Messages).toBe(2) },
      { client: 'pytest', path: `/api/v1/search?query=${encodeURIComponent('to:fix@x.test')}&start=0&limit=250`, status: 200, check: async (r) => expect(((await r.json()) as any).messages[0].ID).toBe(id) },
      { client: 'pytest', path: `/api/v1/message/${id}/part/2`, status: 200, check: async (r) => expect(r.headers.get('content-disposition')).toBe('attachment; filename="data.csv"') },
      // testcontainers-mailpit (MailpitClient.java): no limit, /view, lower-case ids.
      { client: 'testcontainers', path: '/api/v1/messages', status: 200, check: async (r) => expect(Object.keys((await r.json()) as object)).toContain('unread') },
      { client: 'testcontainers', path: `/view/${id}.txt`, status: 200 },
      // codeception-email-mailpit: headers->{'X-Priority'} verbatim.
      { client: 'codeception', path: `/api/v1/message/${id}/headers`, status: 200, check: async (r) => expect(((await r.json()) as any)['X-Priority']).toEqual(['1']) },
      { client: 'codeception', path: `/api/v1/message/${id}`, status: 200, check: async (r) => expect(((await r.json()) as any).Attachments[0].FileName).toBe('data.csv') },
      // LibreSign/mailpit-client: pages on total, every attachment by PartID.
      { client: 'libresign', path: '/api/v1/messages?limit=1&start=1', status: 200, check: async (r) => expect(((await r.json()) as any).total).toBe(2) },
      // Corvan/mailpit-api-client: form-encoded bodies; the DELETE would delete everything on Mailpit.
      { client: 'corvan', method: 'DELETE', path: '/api/v1/messages', body: `ids=${id}`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, status: 400 },
      { client: 'corvan', method: 'PUT', path: '/api/v1/messages', body: `ids=${id}&read=true`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, status: 400 },
      { client: 'testcontainers', method: 'DELETE', path: '/api/v1/messages', body: JSON.stringify({ ids: [id] }), status: 200 },
      { client: 'libresign', path: `/api/v1/message/${id}`, status: 404 },
      { client: 'cypress', method: 'DELETE', path: `/api/v1/search?query=${encodeURIComponent('subject:Unrelated')}`, status: 200 },
      { client: 'cypress', method: 'DELETE', path: '/api/v1/messages', status: 200 },
      { client: 'pytest', path: '/api/v1/messages', status: 200, check: async (r) => expect(((await r.json()) as any).total).toBe(0) },
    ];
    for (const step of steps) {
      const r = await fetch(`${base}${step.path}`, { method: step.method ?? 'GET', headers: step.headers, body: step.body });
      if (r.status !== step.status) throw new Error(`${step.client}: ${step.method ?? 'GET'} ${step.path} answered ${r.status}, expected ${step.status}: ${await r.text()}`);
      await step.check?.(r);
    }
  });
});

describe('wait and the stream', () => {
  test('20 concurrent senders and 20 waiters, each for its own recipient: none missed, none twice; then a timeout with the cursor', async () => {
    const start = ((await (await fetch(`${base}/api/mailbox/v1/cursor`)).json()) as { cursor: string }).cursor;
    const PER = 3;
    const waiter = async (i: number) => {
      let cursor = start;
      const got: string[] = [];
      for (let k = 0; k < PER; k++) {
        const r = await fetch(`${base}/api/mailbox/v1/wait?after=${cursor}&rcpt=w${i}@x.test&timeout=60`);
        expect(r.status).toBe(200);
        const body = (await r.json()) as { messages: { Subject: string; RcptTo: string[] }[]; cursor: string };
        for (const m of body.messages) {
          expect(m.RcptTo).toEqual([`w${i}@x.test`]);
          got.push(m.Subject);
        }
        cursor = body.cursor;
      }
      const late = await fetch(`${base}/api/mailbox/v1/wait?after=${cursor}&rcpt=w${i}@x.test&timeout=1`);
      expect(late.status).toBe(404);
      const timeout = (await late.json()) as { error: string; cursor: string };
      expect(timeout.error).toBe('timeout');
      expect(Number(timeout.cursor)).toBeGreaterThanOrEqual(Number(cursor));
      return got;
    };
    const waiters = Array.from({ length: 20 }, (_, i) => waiter(i));
    const items: [string, string][] = [];
    for (let k = 0; k < PER; k++) for (let i = 0; i < 20; i++) items.push([`w${i}@x.test`, `w${i} #${k}`], ['noise@x.test', `noise ${i} ${k}`]);
    // Thread t sends items t, t+20, t+40…: each waiter's own messages come from one session, in order.
    await sendAll(items, 20);
    const results = await Promise.all(waiters);
    results.forEach((got, i) => expect(got).toEqual(Array.from({ length: PER }, (_, k) => `w${i} #${k}`)));
  }, 120_000);

  test('the SSE stream replays after a cursor, goes on live, and resumes from Last-Event-ID', async () => {
    const start = ((await (await fetch(`${base}/api/mailbox/v1/cursor`)).json()) as { cursor: string }).cursor;
    await sendAll([['sse@x.test', 'sse one'], ['sse@x.test', 'sse two']]);
    const events: { id: string; subject: string }[] = [];
    const controller = new AbortController();
    const reading = (async () => {
      const r = await fetch(`${base}/api/mailbox/v1/events?after=${start}&rcpt=sse@x.test`, { signal: controller.signal });
      expect(r.headers.get('content-type')).toBe('text/event-stream');
      await readSse(r.body!, ({ id, data }) => {
        if (id !== undefined && /^\d+$/.test(id)) events.push({ id, subject: (JSON.parse(data) as { Data: { Subject: string } }).Data.Subject });
        if (events.length === 3) controller.abort();
      });
    })().catch((e: Error) => {
      if (e.name !== 'AbortError') throw e;
    });
    while (events.length < 2) await Bun.sleep(20);
    await sendAll([['sse@x.test', 'sse three']]);
    await reading;
    expect(events.map((e) => e.subject)).toEqual(['sse one', 'sse two', 'sse three']);
    const resumed = await fetch(`${base}/api/mailbox/v1/events?rcpt=sse@x.test`, { headers: { 'Last-Event-ID': events[1].id }, signal: AbortSignal.timeout(1500) })
      .then((r) => r.text())
      .catch((e: Error) => e.name);
    expect(resumed).toBe('TimeoutError');
    const again = new AbortController();
    const r = await fetch(`${base}/api/mailbox/v1/events?rcpt=sse@x.test`, { headers: { 'Last-Event-ID': events[1].id }, signal: again.signal });
    const reader = r.body!.getReader();
    let text = '';
    while (!text.includes('sse three')) text += new TextDecoder().decode((await reader.read()).value);
    again.abort();
    expect(text).not.toContain('sse one');
    expect(text).not.toContain('sse two');
  }, 60_000);

  test('the SSE stream tells of read marks, tags and deletions as they are journalled, for the messages its filter passes', async () => {
    await sendAll([['change@x.test', 'change one'], ['change@x.test', 'change two'], ['other@x.test', 'change other']]);
    const one = await waitFor('subject:"change one"');
    const two = await waitFor('subject:"change two"');
    const other = await waitFor('subject:"change other"');
    const events: { event: string; id?: string; data: { Type: string; Data: Record<string, any> } }[] = [];
    const controller = new AbortController();
    const reading = (async () => {
      const r = await fetch(`${base}/api/mailbox/v1/events?rcpt=change@x.test`, { signal: controller.signal });
      await readSse(r.body!, ({ event, id, data }) => events.push({ event, id, data: JSON.parse(data) }));
    })().catch((e: Error) => {
      if (e.name !== 'AbortError') throw e;
    });
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 500 && !done(); i++) await Bun.sleep(20);
    };
    await until(() => events.length >= 2);
    expect(events.map((e) => [e.event, e.data.Data.Subject])).toEqual([
      ['new', 'change one'],
      ['new', 'change two'],
    ]);
    const put = (body: unknown) => fetch(`${base}/api/v1/messages`, { method: 'PUT', body: JSON.stringify(body) });
    expect((await put({ IDs: [other.ID], Read: true })).status).toBe(200);
    expect((await put({ IDs: [one.ID], Read: true })).status).toBe(200);
    expect((await fetch(`${base}/api/v1/tags`, { method: 'PUT', body: JSON.stringify({ IDs: [two.ID], Tags: ['urgent'] }) })).status).toBe(200);
    expect((await fetch(`${base}/api/v1/messages`, { method: 'DELETE', body: JSON.stringify({ IDs: [two.ID, other.ID] }) })).status).toBe(200);
    await until(() => events.length >= 5);
    controller.abort();
    await reading;
    // The other inbox's read mark is not this stream's; its deletion is (a deleted message matches nothing any more).
    expect(events.slice(2).map((e) => [e.event, e.id, e.data.Type, e.data.Data.ID ?? e.data.Data.IDs, e.data.Data.Read, e.data.Data.Tags])).toEqual([
      ['updated', undefined, 'updated', one.ID, true, []],
      ['updated', undefined, 'updated', two.ID, false, ['urgent']],
      ['deleted', undefined, 'deleted', [two.ID, other.ID], undefined, undefined],
    ]);
    expect(events.length).toBe(5);
  });

  test('the message, not marked read, with envelope, links and codes; the session and its replayable segment', async () => {
    await sendAll([['links@x.test', 'links and codes', `${MULTIPART}\r\n`, MULTIPART_BODY]]);
    const m = await waitFor('rcpt:links@x.test');
    const full = (await (await fetch(`${base}/api/mailbox/v1/message/${m.ID}`)).json()) as Record<string, any>;
    expect(full.Read).toBe(false);
    expect(full.Envelope.MailFrom).toBe('app@x.test');
    expect(full.Envelope.RcptTo).toEqual(['links@x.test']);
    expect(full.Envelope.ClientAddress).toBe('127.0.0.1');
    expect(full.Links).toEqual([{ URL: 'https://x.test/confirm?t=1', Text: 'confirm' }]);
    expect(full.Codes).toEqual(['739201']);
    const session = (await (await fetch(`${base}/api/mailbox/v1/message/${m.ID}/session`)).json()) as Record<string, any>;
    expect(session.Helo).toBeString();
    const segment = await (await fetch(`${base}/api/mailbox/v1/message/${m.ID}/session?format=smtp`)).text();
    expect(segment).toStartWith('EHLO ');
    expect(segment).toContain('RCPT TO:<links@x.test>\r\nDATA\r\n');
    expect(segment).toEndWith('\r\n.\r\n');
    const list = (await (await fetch(`${base}/api/mailbox/v1/inboxes`)).json()) as { Address: string; Total: number }[];
    expect(list.find((i) => i.Address === 'links@x.test')?.Total).toBe(1);
  });
});

describe('reading after a burst', () => {
  test('with nobody reading, a burst is indexed after it, and the first read after its last 250 lists all of it (mail-index.ts Rule 6)', async () => {
    // A serve of its own: no request has been made to it, so its index defers the burst.
    const own = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json'] });
    const ownBase = `http://127.0.0.1:${portOf((await listeningAddresses(own)).http[0])}`;
    const items = Array.from({ length: 300 }, (_, i): [string, string] => [`burst${i % 7}@x.test`, `burst ${i}`]);
    await sendAll(items, 4, own.port);
    const r = await fetch(`${ownBase}/api/v1/messages?limit=1`);
    expect(r.status).toBe(200);
    const page = (await r.json()) as { total: number; messages_count: number; messages: { Subject: string }[] };
    expect({ total: page.total, count: page.messages_count }).toEqual({ total: 300, count: 300 });
    const inboxes = (await (await fetch(`${ownBase}/api/mailbox/v1/inboxes`)).json()) as { Address: string; Total: number }[];
    expect(inboxes.filter((i) => i.Address.startsWith('burst')).reduce((n, i) => n + i.Total, 0)).toBe(300);
  });
});

describe("Mailpit's websocket", () => {
  test('/api/events: stats on connect, then new with the summary after the commit; a foreign Origin is refused', async () => {
    const ws = new WebSocket(`${base.replace('http:', 'ws:')}/api/events`);
    const frames: { Type: string; Data: any }[] = [];
    ws.onmessage = (event) => frames.push(JSON.parse(String(event.data)));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    while (frames.length === 0) await Bun.sleep(10);
    expect(frames[0].Type).toBe('stats');
    expect(Object.keys(frames[0].Data)).toEqual(['Total', 'Unread', 'Version']);
    await sendAll([['ws@x.test', 'over the websocket']]);
    const deadline = Date.now() + 10_000;
    while (!frames.some((f) => f.Type === 'new') && Date.now() < deadline) await Bun.sleep(10);
    const created = frames.find((f) => f.Type === 'new')!;
    expect(created.Data.Subject).toBe('over the websocket');
    const got = await fetch(`${base}/api/v1/message/${created.Data.ID}`);
    expect(got.status).toBe(200);
    ws.close();
    const cross = await fetch(`${base}/api/events`, { headers: { Origin: 'http://attacker.example', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } });
    expect(cross.status).toBe(403);
  });
});

describe('send and release through the relay', () => {
  test('with --relay to a second serve: send delivers locally, release queues for the relay and it arrives there', async () => {
    const far = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json'] });
    const near = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json', '--domain', 'near.test', '--relay', `smtp://127.0.0.1:${far.port}?tls=insecure`] });
    try {
      const nearBase = `http://127.0.0.1:${portOf((await listeningAddresses(near)).http[0])}`;
      const farBase = `http://127.0.0.1:${portOf((await listeningAddresses(far)).http[0])}`;
      const webui = (await (await fetch(`${nearBase}/api/v1/webui`)).json()) as { MessageRelay: { Enabled: boolean } };
      expect(webui.MessageRelay.Enabled).toBe(true);
      const sent = await fetch(`${nearBase}/api/v1/send`, { method: 'POST', body: JSON.stringify({ From: { Email: 'app@near.test' }, To: [{ Email: 'dev@near.test' }], Subject: 'to release' }) });
      const { ID } = (await sent.json()) as { ID: string };
      expect((await fetch(`${nearBase}/api/v1/message/${ID}/release`, { method: 'POST', body: '{"To":[]}' })).status).toBe(400);
      const released = await fetch(`${nearBase}/api/v1/message/${ID}/release`, { method: 'POST', body: '{"To":["qa@far.test"]}' });
      expect(await released.text()).toBe('ok');
      const arrived = await fetch(`${farBase}/api/mailbox/v1/wait?rcpt=qa@far.test&timeout=30`);
      expect(arrived.status).toBe(200);
      expect(((await arrived.json()) as { messages: { Subject: string }[] }).messages[0].Subject).toBe('to release');
    } finally {
      await near.cleanup();
      await far.cleanup();
    }
  }, 60_000);
});

describe('security and bad input', () => {
  test('a foreign Host and a foreign Origin are refused; /view serves mail HTML under the sandbox CSP', async () => {
    const port = new URL(base).port;
    const r = await runPython(
      `import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1])); c.request('GET', '/api/v1/messages', headers={'Host': 'rebind.attacker.example'}); print(c.getresponse().status)`,
      [port],
    );
    expect(r.stdout.trim()).toBe('403');
    const cross = await fetch(`${base}/api/v1/messages`, { headers: { Origin: 'http://attacker.example' } });
    expect(cross.status).toBe(403);
    expect(await cross.text()).toBe('Blocked due to CORS violation\n');
    await sendAll([['xss@x.test', 'script in html', `${MULTIPART}\r\n`, MULTIPART_BODY]]);
    const m = await waitFor('rcpt:xss@x.test');
    const view = await fetch(`${base}/view/${m.ID}.html`);
    expect(view.headers.get('content-security-policy')).toBe(CSP);
    expect(view.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await view.text()).toContain('<script>alert(document.cookie)</script>');
  });

  test('bad ids, bad queries, bad cursors, huge and malformed bodies: each a clear 4xx', async () => {
    const cases: [string, RequestInit | undefined, number][] = [
      ['/api/v1/message/nonexistent', undefined, 404],
      ['/api/v1/message/..%2F..%2Fetc%2Fpasswd/raw', undefined, 404],
      ['/api/mailbox/v1/message/bad-id!', undefined, 400],
      ['/api/v1/search?query=', undefined, 400],
      ['/api/mailbox/v1/wait?after=abc', undefined, 400],
      ['/api/mailbox/v1/wait?rcpt=not-an-address', undefined, 400],
      ['/api/v1/messages', { method: 'PUT', body: '{"Read":' }, 400],
      ['/api/v1/messages', { method: 'DELETE', body: 'x'.repeat(6 * 1024 * 1024) }, 413],
      ['/api/mailbox/v1/faults', { method: 'PUT', body: '{"rules":[{"stage":"nowhere"}]}' }, 400],
      ['/api/v1/nothing-here', undefined, 404],
    ];
    for (const [path, init, status] of cases) {
      const r = await fetch(`${base}${path}`, init);
      const text = await r.text();
      if (r.status !== status) throw new Error(`${init?.method ?? 'GET'} ${path}: ${r.status} ${text}, expected ${status}`);
      expect(text).not.toMatch(/at .*\.ts:\d+/);
    }
  });
});

afterAll(async () => {
  await server?.cleanup();
});
