/**
 * `mailbox serve --relay mx` towards a private Postfix instance as the MX host of two domains:
 * its smtpd on port 25 of a random 127.x.y.z (found through dnsmasq), delivering with virtual(8)
 * to one Maildir per recipient. Each domain gets its own transaction carrying only its
 * recipients (Postfix's log: one queue id per domain, nrcpt 2 and 1), and every Maildir file is
 * the message byte for byte below the trace fields (Postfix's Return-Path, X-Original-To,
 * Delivered-To and Received, then the relay's Received).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { postfixUnavailableReason, startPostfix, waitForPostfixLog, type PostfixHandle } from '../helpers/postfix.ts';
import { startDnsmasq, verifyPeersUnavailableReason, type DnsmasqHandle } from '../helpers/verify-peers.ts';
import { cleanupServesAfterAll, runPython, startServe, waitForLog, type ServeHandle } from './harness.ts';
import { randomLoopbackNet } from './relay-peers.ts';

const unavailable = verifyPeersUnavailableReason() ?? postfixUnavailableReason();
cleanupServesAfterAll();

const MX = `${randomLoopbackNet()}.1`;
let dns: DnsmasqHandle | undefined;
let postfix: PostfixHandle | undefined;
let relay: ServeHandle;

beforeAll(async () => {
  if (unavailable) return;
  dns = await startDnsmasq(['mx-host=one.test,mx.pf.test,10', 'mx-host=two.test,mx.pf.test,10', `host-record=mx.pf.test,${MX}`]);
  postfix = await startPostfix({ address: MX, port25: true, mode: 'maildir', maildirRecipients: ['a@one.test', 'b@one.test', 'c@two.test'] });
  relay = await startServe({
    args: ['--relay', 'mx', '--dns', dns.server, '--hostname', 'relay.test', '--log', 'json', '--relay-timeout', '5s', '--retry-after', '1s', '--retry-max', '1s'],
  });
}, 60_000);

afterAll(async () => {
  if (unavailable) return;
  await relay?.cleanup();
  await postfix?.stop();
  await dns?.stop();
});

/** The one file in a recipient's Maildir (new/), once Postfix has delivered it. */
async function maildirFile(domain: string, local: string): Promise<string> {
  const dir = join(postfix!.maildir!, domain, local, 'new');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.length > 0) {
      expect(names.length).toBe(1);
      return readFile(join(dir, names[0]), 'latin1');
    }
    if (Date.now() > deadline) throw new Error(`nothing in ${dir}:\n${await postfix!.logs()}`);
    await Bun.sleep(100);
  }
}

describe.skipIf(unavailable !== undefined)('serve --relay mx to a private Postfix delivering to Maildirs', () => {
  test('one transaction per domain with only its recipients; each Maildir file is the message below the trace fields', async () => {
    const original = 'From: sender@relay.test\r\nTo: a@one.test, b@one.test, c@two.test\r\nSubject: To Postfix\r\nDate: Wed, 2 Dec 2026 08:00:00 +0000\r\nMessage-ID: <to-postfix@relay.test>\r\n\r\nLine one.\r\n..a line that starts with a dot\r\nEnd.\r\n';
    const sent = await runPython(
      `import smtplib, sys
with smtplib.SMTP('127.0.0.1', int(sys.argv[1])) as s:
    refused = s.sendmail('sender@relay.test', ['a@one.test', 'b@one.test', 'c@two.test'], sys.argv[2].encode())
    assert refused == {}, refused`,
      [String(relay.port), original],
    );
    expect(sent.stderr).toBe('');
    for (const to of ['a@one.test', 'b@one.test', 'c@two.test']) {
      await waitForLog(relay, new RegExp(`"event":"delivered"[^\\n]*"to":"${to.replace('.', '\\.')}"[^\\n]*"relay":"mx\\.pf\\.test\\[${MX.replaceAll('.', '\\.')}\\]:25"`));
    }

    // Postfix's log: which queue id each recipient was delivered from, and how many each carried.
    const log = await waitForPostfixLog(postfix!, /(status=sent[\s\S]*){3}/);
    const queueIdOf = (to: string) => new RegExp(`([0-9A-F]{6,}): to=<${to.replace('.', '\\.')}>, relay=virtual, [^\\n]*status=sent`).exec(log)?.[1];
    const [a, b, c] = ['a@one.test', 'b@one.test', 'c@two.test'].map(queueIdOf);
    expect(a).toBeDefined();
    expect(b).toBe(a);
    expect(c).toBeDefined();
    expect(c).not.toBe(a);
    expect(log).toMatch(new RegExp(`${a}: from=<sender@relay\\.test>, size=\\d+, nrcpt=2 `));
    expect(log).toMatch(new RegExp(`${c}: from=<sender@relay\\.test>, size=\\d+, nrcpt=1 `));

    // virtual(8) writes LF lines; below the trace fields the message is as it was sent.
    const sentLf = original.replaceAll('\r\n', '\n');
    for (const [domain, local] of [['one.test', 'a'], ['one.test', 'b'], ['two.test', 'c']]) {
      const text = await maildirFile(domain, local);
      const at = text.indexOf('From: sender@relay.test\n');
      expect(text.slice(at)).toBe(sentLf);
      const trace = text.slice(0, at).split('\n').filter((l) => l !== '' && !/^\s/.test(l)).map((l) => l.slice(0, l.indexOf(':')));
      expect(trace).toEqual(['Return-Path', 'X-Original-To', 'Delivered-To', 'Received', 'Received']);
      expect(text).toContain(`Delivered-To: ${local}@${domain}\n`);
      expect(text).toMatch(/\nReceived: from [^\n]+\n\tby relay\.test \(mailbox\) with ESMTP id \w+;\n/);
    }
  }, 60_000);
});
