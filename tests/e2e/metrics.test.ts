// /metrics end to end (issue 12): dist/mailbox serve --http, mail sent with smtplib and a raw
// dialogue, then a scrape whose counters match the log lines and whose gauges match the spool.
// Also: the web UI is inside the binary (GET / and its files, gzip-compressed, under the UI's CSP).
import { expect, test } from 'bun:test';
import { MAILBOX_BIN, cleanupServesAfterAll, listeningAddresses, runCommand, sendWithSmtplib, smtpDialogue, startServe, waitForLog } from './harness.ts';
import { requirePeers } from '../helpers/capabilities.ts';
import { findFreePort } from '../helpers/ports.ts';

cleanupServesAfterAll();

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('a Prometheus scrape counts what the log says, by protocol and reply class', async () => {
  requirePeers('python3');
  const server = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json'] });
  const [http] = (await listeningAddresses(server)).http;
  const message = (n: number) => `From: a@x.test\r\nTo: b@x.test\r\nSubject: metrics ${n}\r\n\r\nbody ${n}\r\n`;
  await sendWithSmtplib(server, 'a@x.test', ['b@x.test'], message(1));
  await sendWithSmtplib(server, 'a@x.test', ['c@x.test', 'd@x.test'], message(2));
  // A RCPT before MAIL: 503 5.5.1, one rejection.
  const dialogue = await smtpDialogue(server.host, server.port, ['EHLO x\r\n', 'RCPT TO:<b@x.test>\r\n', 'QUIT\r\n']);
  expect(dialogue.replies[1]).toStartWith('503');
  const logs = await waitForLog(server, /"event":"rejected"/);

  const response = await fetch(`http://${http}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const text = await response.text();
  const accepted = logs.split('\n').filter((l) => l.includes('"event":"accepted"')).length;
  expect(accepted).toBe(2);
  expect(sample(text, 'mailbox_smtp_messages_total{result="accepted",class="2xx"}')).toBe(accepted);
  expect(sample(text, 'mailbox_smtp_rejections_total{command="RCPT",class="5xx"}')).toBe(1);
  expect(sample(text, 'mailbox_sessions_total{protocol="smtp"}')).toBeGreaterThanOrEqual(3);
  expect(sample(text, 'mailbox_sessions_total{protocol="pop3"}')).toBe(0);
  expect(sample(text, 'mailbox_spool_messages')).toBe(2);
  expect(sample(text, 'mailbox_spool_bytes')).toBeGreaterThan(200);
  expect(sample(text, 'mailbox_spool_oldest_message_age_seconds')).toBeGreaterThanOrEqual(0);
  expect(sample(text, 'mailbox_queue_recipients{state="pending"}')).toBe(0);
  // Bounded labels: no address or message id in any series.
  for (const leak of ['x.test', '127.0.0.1']) expect(text).not.toContain(leak);
  for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) expect(line).toMatch(/^[a-z_]+(\{[a-z_]+="[A-Za-z0-9_]+"(,[a-z_]+="[A-Za-z0-9_]+")*\})? [0-9.e+-]+$/);
}, 60_000);

test('the web UI is served from the binary: page, script and stylesheet, gzip-compressed, under the UI CSP', async () => {
  const server = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json'] });
  const [http] = (await listeningAddresses(server)).http;
  const page = await fetch(`http://${http}/`, { headers: { 'Accept-Encoding': 'gzip' } });
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  const html = await page.text();
  const script = /src="(\/ui\/app-[0-9a-z]+\.js)"/.exec(html)?.[1];
  const style = /href="(\/ui\/app-[0-9a-z]+\.css)"/.exec(html)?.[1];
  expect(script).toBeDefined();
  expect(style).toBeDefined();
  let transferred = 0;
  for (const path of ['/', script!, style!]) {
    const raw = await fetch(`http://${http}${path}`, { headers: { 'Accept-Encoding': 'gzip' }, decompress: false } as RequestInit);
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-encoding')).toBe('gzip');
    transferred += (await raw.arrayBuffer()).byteLength;
  }
  expect(transferred).toBeLessThanOrEqual(150 * 1024);
  const js = await fetch(`http://${http}${script}`);
  expect(js.headers.get('cache-control')).toContain('immutable');
  expect(await js.text()).toContain('/api/v1/messages');
  // Mailpit's address of a message in its UI is the same page.
  expect(await (await fetch(`http://${http}/view/AbC123`)).text()).toBe(html);
  expect((await fetch(`http://${http}/ui/nothing.js`)).status).toBe(404);
}, 60_000);

test('with the relay: delivery attempts by outcome and the queue by state', async () => {
  const smarthost = await startServe({ args: ['--log', 'json'] });
  const dead = await findFreePort('127.0.0.1');
  const server = await startServe({
    args: [
      '--http', '127.0.0.1:0', '--log', 'json',
      '--relay', `smtp://127.0.0.1:${smarthost.port}?tls=insecure`,
      '--route', `dead.test=smtp://127.0.0.1:${dead}`,
    ],
  });
  const [http] = (await listeningAddresses(server)).http;
  await sendWithSmtplib(server, 'a@x.test', ['b@remote.test'], 'From: a@x.test\r\nTo: b@remote.test\r\nSubject: relayed\r\n\r\nbody\r\n');
  await sendWithSmtplib(server, 'a@x.test', ['c@dead.test'], 'From: a@x.test\r\nTo: c@dead.test\r\nSubject: stuck\r\n\r\nbody\r\n');
  const logs = await waitForLog(server, /"event":"delivered"[\s\S]*"event":"deferred"|"event":"deferred"[\s\S]*"event":"delivered"/);
  const count = (event: string) => logs.split('\n').filter((l) => l.includes(`"event":"${event}"`)).length;
  // The attempt is logged, then journalled: the queue gauge follows the journal a moment later.
  let text = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await Bun.sleep(100)) {
    text = await (await fetch(`http://${http}/metrics`)).text();
    if (sample(text, 'mailbox_queue_recipients{state="deferred"}') === 1) break;
  }
  expect(sample(text, 'mailbox_delivery_attempts_total{outcome="delivered"}')).toBe(count('delivered'));
  expect(sample(text, 'mailbox_delivery_attempts_total{outcome="deferred"}')).toBe(count('deferred'));
  expect(count('delivered')).toBe(1);
  expect(count('deferred')).toBeGreaterThanOrEqual(1);
  expect(sample(text, 'mailbox_queue_recipients{state="deferred"}')).toBe(1);
  expect(sample(text, 'mailbox_queue_recipients{state="pending"}')).toBe(0);
  for (const leak of ['remote.test', 'dead.test']) expect(text).not.toContain(leak);

  // The same two copies as the web UI's Delivery tab reads them.
  const idOf = (event: string) => JSON.parse(logs.split('\n').find((l) => l.includes(`"event":"${event}"`))!).id as string;
  const deliveries = async (id: string) => {
    const response = await fetch(`http://${http}/api/mailbox/v1/message/${id}/deliveries`);
    expect(response.status).toBe(200);
    return (await response.json()) as { Rcpt: string; State: string; Attempts: number | null; NextAttempt: string | null; LastReply: string | null }[];
  };
  const [delivered] = await deliveries(idOf('delivered'));
  expect(delivered).toMatchObject({ Rcpt: 'b@remote.test', State: 'delivered' });
  expect(delivered.LastReply).toStartWith('250');
  const stuck = await deliveries(idOf('deferred'));
  expect(stuck).toHaveLength(1);
  expect(stuck[0]).toMatchObject({ Rcpt: 'c@dead.test', State: 'deferred' });
  expect(stuck[0].Attempts).toBeGreaterThanOrEqual(1);
  expect(Date.parse(stuck[0].NextAttempt!)).toBeGreaterThan(Date.now());
  expect(stuck[0].LastReply).toMatch(/^4\d\d /);
  expect((await fetch(`http://${http}/api/mailbox/v1/message/NoSuchId/deliveries`)).status).toBe(404);

  // The operator holds it (`mailbox queue hold`, over the control socket): the gauge says held.
  const held = await runCommand([MAILBOX_BIN, 'queue', 'hold', idOf('deferred'), '--data', server.dataDir]);
  expect({ code: held.code, stderr: held.stderr }).toEqual({ code: 0, stderr: '' });
  text = await (await fetch(`http://${http}/metrics`)).text();
  expect(sample(text, 'mailbox_queue_recipients{state="held"}')).toBe(1);
  expect(sample(text, 'mailbox_queue_recipients{state="deferred"}')).toBe(0);
}, 60_000);
