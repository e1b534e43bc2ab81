// The web UI in a real browser (issue 12): Debian chromium driven by playwright-core against
// dist/mailbox serve --http. A message with HTML, an inline image, an attachment and a UTF-8
// subject, sent with `mailbox send`, appears in the open page without a reload; search and the
// inbox switcher find it; its <script> never runs; a remote image (from a loopback HTTP server
// this test runs) is fetched only once allowed; the attachment downloads byte for byte; dark mode
// and a phone-sized viewport are screenshot into test-output/web-ui/. At scale, the page opens on
// a store of 100,000 messages after transferring one page of summaries.
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { launchChromium, outputPath } from '../helpers/browser.ts';
import { MAILBOX_BIN, REPO_ROOT, cleanupServesAfterAll, listeningAddresses, makeTempDir, runCommand, startServe, type ServeHandle, type TempDir } from './harness.ts';

cleanupServesAfterAll();

/** A 2×2 PNG (red), the inline image. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg==',
  'base64',
);
const SUBJECT = 'Grüße aus Köln — 你好 ✓';
const RECIPIENT = 'ünïcode-inbox@example.test';
const RECIPIENT_ASCII = 'inbox-owner@example.test';

let browser: Browser;
let server: ServeHandle;
let base: string;
let work: TempDir;
let remote: ReturnType<typeof Bun.serve>;
/** Paths the loopback "remote" server was asked for, in order. */
const remoteHits: string[] = [];
let page: Page;
let attachment: Buffer;

beforeAll(async () => {
  browser = await launchChromium();
  work = await makeTempDir('mailbox-web-ui-');
  remote = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(request) {
      remoteHits.push(new URL(request.url).pathname);
      return new Response(PNG, { headers: { 'Content-Type': 'image/png' } });
    },
  });
  server = await startServe({ args: ['--http', '127.0.0.1:0', '--log', 'json'] });
  base = `http://${(await listeningAddresses(server)).http[0]}`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  remote?.stop(true);
  await work?.remove();
}, 60_000);

/**
 * Waits until `locator` matches exactly `count` elements (the page's CSP forbids the string
 * evaluation waitForFunction would use).
 */
async function waitForCount(locator: Locator, count: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await locator.count()) !== count && Date.now() < deadline) await Bun.sleep(50);
  expect(await locator.count()).toBe(count);
}

/** `mailbox send` to the server under test; it must succeed. */
async function send(args: string[]): Promise<void> {
  const r = await runCommand([MAILBOX_BIN, 'send', '--server', `127.0.0.1:${server.port}`, ...args]);
  expect({ exit: r.code, stderr: r.stderr }).toEqual({ exit: 0, stderr: '' });
}

test('a message sent with mailbox send appears in the open page without a reload', async () => {
  page = await browser.newPage();
  const navigations: string[] = [];
  page.on('framenavigated', (frame) => frame === page.mainFrame() && navigations.push(frame.url()));
  await page.goto(`${base}/`);
  await page.getByText('No mail yet.').waitFor();
  await page.getByText('● live').waitFor();

  const html = join(work.path, 'body.html');
  writeFileSync(
    html,
    `<html><body><h1 id="title">Hallo Köln</h1>
<p id="marker">script did not run</p>
<img id="inline" src="cid:logo" alt="logo">
<img id="remote" src="http://127.0.0.1:${remote.port}/remote.png" alt="remote">
<script>document.getElementById('marker').textContent = 'script ran'; try { top.postMessage('script ran', '*'); } catch (e) {} new Image().src = 'http://127.0.0.1:${remote.port}/script-ran';</script>
<p>Your code is 482913. <a href="https://app.example.test/confirm?token=abc123">Confirm</a></p>
</body></html>`,
  );
  attachment = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919 + (i >> 8)) & 0xff));
  writeFileSync(join(work.path, 'report.bin'), attachment);
  writeFileSync(join(work.path, 'logo.png'), PNG);
  await page.evaluate("window.addEventListener('message', (e) => { window.leaked = e.data; })");
  await send([
    '--from', 'Sender <sender@example.test>', '--to', RECIPIENT_ASCII, '--subject', SUBJECT,
    '--body', 'The text part: code 482913.', '--html', html,
    '--inline', `${join(work.path, 'logo.png')};cid=logo`, '--attach', `${join(work.path, 'report.bin')};type=application/octet-stream`,
  ]);
  await page.locator('.item .subject', { hasText: SUBJECT }).waitFor({ timeout: 15_000 });
  expect(navigations).toHaveLength(1);
  expect(await page.locator('.item').count()).toBe(1);
}, 60_000);

test('search with the API query language finds it, and a miss says so', async () => {
  await send(['--from', 'other@example.test', '--to', 'someone-else@example.test', '--subject', 'unrelated', '--body', 'nothing here']);
  await page.locator('.item').nth(1).waitFor();
  const search = page.getByRole('searchbox', { name: 'Search' });
  await page.keyboard.press('/');
  expect(await page.evaluate("document.activeElement.getAttribute('aria-label')")).toBe('Search');
  await search.fill('subject:Köln has:attachment');
  await search.press('Enter');
  await waitForCount(page.locator('.item'), 1);
  expect(await page.locator('.item .subject').textContent()).toContain(SUBJECT);
  await search.fill('subject:"no such thing"');
  await search.press('Enter');
  await page.getByText('No message matches').waitFor();
  await search.fill('');
  await search.press('Enter');
  await waitForCount(page.locator('.item'), 2);
}, 60_000);

test('the inbox switcher lists every envelope recipient and shows the message under its own', async () => {
  const inbox = page.getByRole('combobox', { name: 'Inbox' });
  await inbox.waitFor();
  const options = await inbox.locator('option').allTextContents();
  expect(options.some((o) => o.startsWith(RECIPIENT_ASCII))).toBe(true);
  expect(options.some((o) => o.startsWith('someone-else@example.test'))).toBe(true);
  await inbox.selectOption(RECIPIENT_ASCII);
  await waitForCount(page.locator('.item'), 1);
  expect(await page.locator('.item .subject').textContent()).toContain(SUBJECT);
  await inbox.selectOption('');
  await waitForCount(page.locator('.item'), 2);
}, 60_000);

test("the HTML is sandboxed: its script never runs, the inline image shows, a remote image waits for the switch", async () => {
  // Keyboard: the inbox switcher gave the keys back (Escape would too); the newest is the
  // "unrelated" one, j moves to ours, Enter opens it.
  await page.keyboard.press('Escape');
  await page.locator('.item.selected[data-index="0"]').waitFor();
  await page.keyboard.press('j');
  await page.locator('.item.selected[data-index="1"]').waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.msg-subject', { hasText: SUBJECT }).waitFor();
  const iframe = page.locator('iframe.mail-html');
  expect(await iframe.getAttribute('sandbox')).not.toContain('allow-scripts');
  expect(await iframe.getAttribute('sandbox')).not.toContain('allow-same-origin');
  const frame = page.frameLocator('iframe.mail-html');
  await frame.locator('#title').waitFor();
  expect(await frame.locator('#title').textContent()).toBe('Hallo Köln');
  // No allow-same-origin: the page cannot even read the frame's document.
  expect(await page.evaluate("document.querySelector('iframe.mail-html').contentDocument === null")).toBe(true);
  const inline = frame.locator('#inline');
  await inline.waitFor();
  const loaded = Date.now() + 10_000;
  while (Date.now() < loaded && (await inline.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)) !== 2) await Bun.sleep(50);
  expect(await inline.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(2);
  expect(await frame.locator('#marker').textContent()).toBe('script did not run');
  expect(await page.evaluate('window.leaked')).toBeUndefined();
  expect(remoteHits).toEqual([]);
  expect(await page.getByText('remote content is blocked').count()).toBe(1);

  await page.getByLabel('Load remote images').check();
  await page.frameLocator('iframe.mail-html').locator('#title').waitFor();
  const deadline = Date.now() + 10_000;
  while (!remoteHits.includes('/remote.png') && Date.now() < deadline) await Bun.sleep(50);
  expect(remoteHits).toEqual(['/remote.png']);
  expect(await page.frameLocator('iframe.mail-html').locator('#marker').textContent()).toBe('script did not run');
}, 60_000);

test('the attachment downloads byte for byte; text, headers, source and parts are shown', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('.attachments a', { hasText: 'report.bin' }).click()]);
  const saved = outputPath('web-ui', 'report.bin');
  await download.saveAs(saved);
  expect(Buffer.compare(readFileSync(saved), attachment)).toBe(0);

  await page.getByRole('tab', { name: 'Text' }).click();
  await page.locator('pre.text-part', { hasText: 'The text part: code 482913.' }).waitFor();
  await page.getByRole('tab', { name: 'Headers' }).click();
  await page.locator('table.headers th', { hasText: 'Subject' }).waitFor();
  await page.getByRole('tab', { name: 'Source' }).click();
  await page.locator('pre.source', { hasText: 'Content-Type: multipart/' }).waitFor();
  await page.getByRole('tab', { name: 'Parts' }).click();
  await page.locator('.part-tree', { hasText: 'report.bin' }).waitFor();
  expect(await page.locator('.part-tree').textContent()).toContain('cid:logo');
}, 60_000);

test('dark mode and a phone-sized viewport, each with a screenshot', async () => {
  const dark = await browser.newPage({ colorScheme: 'dark' });
  await dark.goto(`${base}/`);
  await dark.locator('.item').first().waitFor();
  // The live stream starts from the store's cursor, which is past 0 now.
  await dark.getByText('● live').waitFor({ timeout: 15_000 });
  const background = await dark.evaluate('getComputedStyle(document.body).backgroundColor');
  expect(background).toBe('rgb(21, 23, 26)');
  await dark.screenshot({ path: outputPath('web-ui', 'dark.png') });
  await dark.close();

  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await phone.goto(`${base}/`);
  await phone.locator('.item').first().waitFor();
  expect(await phone.locator('.reader').isVisible()).toBe(false);
  expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await phone.screenshot({ path: outputPath('web-ui', 'phone-list.png') });
  await phone.locator('.item .subject', { hasText: SUBJECT }).tap();
  await phone.locator('.msg-subject').waitFor();
  expect(await phone.locator('.list').isVisible()).toBe(false);
  expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
  await phone.screenshot({ path: outputPath('web-ui', 'phone-message.png') });
  await phone.getByRole('button', { name: '← Back' }).tap();
  await phone.locator('.list').waitFor();
  await phone.close();
}, 60_000);

test('Delete removes the open message, and delete-all leaves the empty state', async () => {
  await page.keyboard.press('Delete');
  await waitForCount(page.locator('.item'), 1);
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete all' }).click();
  await page.getByText('No mail yet.').waitFor();
}, 60_000);

const SCALE = 100_000;

test(`at scale: the page opens on ${SCALE.toLocaleString('en')} messages after transferring one page of summaries`, async () => {
  const dir = join(work.path, 'scale');
  // scripts/spool-fill.ts writes through the spool writer (no SMTP); --starts 0: no timing runs.
  const fill = await runCommand(['bash', join(REPO_ROOT, 'scripts/bun'), join(REPO_ROOT, 'scripts/spool-fill.ts'), '--dir', dir, '--messages', String(SCALE), '--size', '400', '--starts', '0'], { timeoutMs: 300_000 });
  expect({ code: fill.code, stderr: fill.stderr }).toEqual({ code: 0, stderr: '' });
  const big = await startServe({ dataDir: dir, args: ['--http', '127.0.0.1:0', '--log', 'json'], greetingTimeoutMs: 120_000 });
  const url = `http://${(await listeningAddresses(big)).http[0]}`;
  // The index is built from the spool in the background: wait until it lists every message.
  const deadline = Date.now() + 480_000;
  let total = 0;
  while (Date.now() < deadline) {
    total = ((await (await fetch(`${url}/api/v1/messages?limit=1`)).json()) as { total: number }).total;
    if (total === SCALE) break;
    await Bun.sleep(500);
  }
  expect(total).toBe(SCALE);

  const scalePage = await browser.newPage();
  let summaries = 0;
  let apiBytes = 0;
  scalePage.on('response', async (response) => {
    if (!new URL(response.url()).pathname.startsWith('/api/')) return;
    const body = await response.body().catch(() => Buffer.alloc(0));
    apiBytes += body.length;
    try {
      const json = JSON.parse(body.toString()) as { messages?: unknown[] };
      summaries += json.messages?.length ?? 0;
    } catch {
      // Not JSON (an event stream): carries no summaries here.
    }
  });
  const opened = performance.now();
  await scalePage.goto(`${url}/`);
  await scalePage.locator('.item').nth(49).waitFor({ timeout: 30_000 });
  const paintMs = performance.now() - opened;
  const summariesAtPaint = summaries;
  expect(await scalePage.getByText(`1–50 of ${SCALE}`).count()).toBe(1);
  expect(summariesAtPaint).toBeLessThanOrEqual(300);
  expect(await scalePage.locator('.item').count()).toBe(50);
  // Older pages come one at a time.
  await scalePage.getByRole('button', { name: 'Older' }).click();
  await scalePage.getByText(`51–100 of ${SCALE}`).waitFor();
  console.log(`web UI at ${SCALE} messages: first list painted ${paintMs.toFixed(0)} ms after navigation, after ${summariesAtPaint} summaries; ${summaries} summaries and ${apiBytes} bytes of API responses with the second page`);
  await scalePage.close();
  await big.cleanup();
}, 590_000);
