/**
 * `mailbox send` end to end: the compiled binary against aiosmtpd (STARTTLS, implicit TLS, AUTH
 * PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER, scripted refusals), Postfix smtpd with a
 * certificate (STARTTLS, CHUNKING, DSN), `mailbox serve`, and dnsmasq for --mx. What arrived is
 * read back with Python's email package. Every failure stage must exit with its documented code
 * and print exactly one line.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runCommand, startServe, type RunResult, type TempDir } from './harness.ts';
import { findFreePort } from '../helpers/ports.ts';
import { startPostfix } from '../helpers/postfix.ts';
import { makeCertificates, parseWithPython, startAiosmtpd, type AiosmtpdPeer, type Certificates } from '../helpers/send-peers.ts';
import { startDnsmasq } from '../helpers/verify-peers.ts';

cleanupServesAfterAll();

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex');

function send(args: string[], options: { stdin?: string | Uint8Array; env?: Record<string, string>; bin?: string } = {}): Promise<RunResult> {
  return runCommand([options.bin ?? MAILBOX_BIN, ...(options.bin ? [] : ['send']), ...args], { stdin: options.stdin, env: options.env, timeoutMs: 60_000 });
}

/** A failure prints exactly one line on standard error, "mailbox: …", and no stack trace. */
function oneLine(result: RunResult): string {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith('mailbox: ');
  expect(result.stderr).not.toMatch(/\bat .+:\d+:\d+|Error:/);
  return lines[0];
}

let tmp: TempDir;
let certs: Certificates;
const peers: AiosmtpdPeer[] = [];
let starttls: AiosmtpdPeer;
let implicit: AiosmtpdPeer;
let plain: AiosmtpdPeer;
let refusing: AiosmtpdPeer;
const USERS = { alice: 's3cret', 'alice@example.org': 's3cret' };
const TOKEN = 'ya29.good-token';

async function peer(name: string, options: Omit<Parameters<typeof startAiosmtpd>[0], 'dir'>): Promise<AiosmtpdPeer> {
  const dir = join(tmp.path, name);
  await mkdir(dir);
  const p = await startAiosmtpd({ dir, ...options });
  peers.push(p);
  return p;
}

beforeAll(async () => {
  tmp = await makeTempDir('mailbox-send-e2e-');
  certs = makeCertificates(tmp.path);
  [starttls, implicit, plain, refusing] = await Promise.all([
    peer('starttls', { tls: 'starttls', certificates: certs, requireStartTls: true, users: USERS, token: TOKEN }),
    // aiosmtpd counts only STARTTLS as TLS for auth_require_tls; this connection is TLS anyway.
    peer('implicit', { tls: 'implicit', certificates: certs, users: USERS, authRequireTls: false }),
    peer('plain', { users: USERS, authRequireTls: false }),
    peer('refusing', { rejectSenders: ['bad@example.org'], rejectRecipients: ['nobody@example.net', 'ghost@example.net'] }),
  ]);
});

afterAll(async () => {
  await Promise.all(peers.map((p) => p.stop()));
  await tmp?.remove();
});

describe('composing: what arrives has the intended structure', () => {
  test('STARTTLS, AUTH PLAIN, HTML, an inline image, attachments with non-ASCII names; Bcc absent', async () => {
    const png = Uint8Array.from({ length: 5000 }, (_, i) => (i * 131 + 7) & 255);
    const pdf = crypto.getRandomValues(new Uint8Array(70_000));
    writeFileSync(join(tmp.path, 'logo.png'), png);
    writeFileSync(join(tmp.path, 'report.pdf'), pdf);
    writeFileSync(join(tmp.path, 'page.html'), '<p>Grüße, voir <img src="cid:logo.png"></p>\n');
    writeFileSync(join(tmp.path, 'pass'), 's3cret\n');
    const transcript = join(tmp.path, 'starttls.transcript');
    const before = (await starttls.messages()).length;
    const r = await send([
      '--server', `smtp+starttls://127.0.0.1:${starttls.port}`, '--tls-ca', certs.ca, '--user', 'alice', '--password-file', join(tmp.path, 'pass'),
      '--from', 'Zoë Ångström <zoe@example.org>', '--to', 'Bob Müller <bob@example.net>, carol@example.net', '--cc', 'dave@example.net',
      '--bcc', 'secret@example.net', '--reply-to', 'replies@example.org', '--subject', 'Rapport trimestriel — été 2026 ✓',
      '--body', 'Bonjour,\nle rapport de l’été est joint.\n', '--html', join(tmp.path, 'page.html'), '--inline', join(tmp.path, 'logo.png'),
      '--attach', `${join(tmp.path, 'report.pdf')};name=Übersicht März.pdf`, '--transcript', transcript,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^sent <[^>]+@example\\.org> to 4 recipients via 127\\.0\\.0\\.1:${starttls.port}: 250 2\\.0\\.0 OK saved as \\d+\\n$`));
    const [saved] = (await starttls.messages()).slice(before);
    expect(saved.meta).toMatchObject({ mail_from: 'zoe@example.org', rcpt_tos: ['bob@example.net', 'carol@example.net', 'dave@example.net', 'secret@example.net'], auth: 'alice', tls: true });
    const m = parseWithPython(saved.bytes);
    expect(m.defects).toEqual([]);
    expect(m.subject).toBe('Rapport trimestriel — été 2026 ✓');
    expect(m.from).toBe('Zoë Ångström <zoe@example.org>');
    expect(m.to).toEqual(['Bob Müller <bob@example.net>', 'carol@example.net']);
    expect(m.cc).toEqual(['dave@example.net']);
    expect(m.replyTo).toEqual(['replies@example.org']);
    expect(m.headers).not.toContain('bcc');
    expect(new TextDecoder().decode(saved.bytes)).not.toContain('secret@example.net');
    expect(m.tree).toEqual(['multipart/mixed', 'multipart/alternative', 'text/plain', 'multipart/related', 'text/html', 'image/png', 'application/pdf']);
    const [text, html, image, attachment] = m.parts;
    expect([text.cte, text.text]).toEqual(['8bit', 'Bonjour,\nle rapport de l’été est joint.\n']);
    expect(html.text).toBe('<p>Grüße, voir <img src="cid:logo.png"></p>\n');
    expect([image.cte, image.disposition, image.cid, image.filename, image.sha256]).toEqual(['base64', 'inline', '<logo.png>', 'logo.png', sha256(png)]);
    expect([attachment.cte, attachment.disposition, attachment.filename, attachment.sha256]).toEqual(['base64', 'attachment', 'Übersicht März.pdf', sha256(pdf)]);
    // The transcript shows the dialogue, STARTTLS and AUTH, but never the credentials.
    const dialogue = readFileSync(transcript, 'utf8');
    expect(dialogue).toContain('C: STARTTLS\n');
    expect(dialogue).toContain('C: AUTH PLAIN <redacted>\n');
    expect(dialogue).not.toContain('s3cret');
    expect(dialogue).not.toContain(btoa('\0alice\0s3cret'));
  });

  test('a 200 KB binary attachment round-trips byte for byte, and a 25 MB one works', async () => {
    const small = crypto.getRandomValues(new Uint8Array(200_000));
    const big = new Uint8Array(25 * 1024 * 1024);
    for (let at = 0; at < big.length; at += 65536) crypto.getRandomValues(big.subarray(at, at + 65536));
    writeFileSync(join(tmp.path, 'small.bin'), small);
    writeFileSync(join(tmp.path, 'big.bin'), big);
    const before = (await plain.messages()).length;
    for (const name of ['small.bin', 'big.bin']) {
      const r = await send(['--server', `127.0.0.1:${plain.port}`, '--from', 'a@example.org', '--to', 'b@example.net', '--subject', name, '--body', 'see attachment', '--attach', join(tmp.path, name)]);
      expect([r.code, r.stderr]).toEqual([0, '']);
    }
    const saved = (await plain.messages()).slice(before);
    expect(saved).toHaveLength(2);
    const smallPart = parseWithPython(saved[0].bytes).parts[1];
    expect([smallPart.type, smallPart.cte, smallPart.size, smallPart.sha256]).toEqual(['application/octet-stream', 'base64', small.length, sha256(small)]);
    const bigPart = parseWithPython(saved[1].bytes).parts[1];
    expect([bigPart.size, bigPart.sha256]).toEqual([big.length, sha256(big)]);
  }, 120_000);

  test.each([
    ['--subject', 'Hi\r\nBcc: evil@example.net'],
    ['--subject', 'Hi\nBcc: evil@example.net'],
    ['--header', 'X-Tag: a\r\nBcc: evil@example.net'],
    ['--from', 'Eve\r\nBcc: evil@example.net <eve@example.org>'],
    ['--attach', `${'x'};name=a\r\nBcc: evil@example.net`],
  ])('header injection through %s is refused before connecting (exit 65)', async (flag, value) => {
    writeFileSync(join(tmp.path, 'x'), 'x');
    const before = (await plain.messages()).length;
    const base = ['--server', `127.0.0.1:${plain.port}`, ...(flag === '--from' ? [] : ['--from', 'a@example.org']), '--to', 'b@example.net', '--body', 'x'];
    const args = [...base, flag, flag === '--attach' ? value.replace(/^x/, join(tmp.path, 'x')) : value];
    const r = await send(args);
    expect(r.code).toBe(65);
    expect(oneLine(r)).toMatch(/line break/);
    expect(await plain.messages()).toHaveLength(before);
  });

  test('--dry-run prints the envelope and the message, and connects nowhere', async () => {
    const r = await send(['--server', '127.0.0.1:1', '--from', 'a@example.org', '--to', 'b@example.net', '--bcc', 'c@example.net', '--subject', 'dry', '--body', 'text', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith('MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nRCPT TO:<c@example.net>\n\nDate: ');
    expect(r.stdout).toContain('Subject: dry\r\n');
    expect(r.stdout).not.toContain('c@example.net>\r\n');
  });
});

describe('TLS and AUTH', () => {
  test('implicit TLS (smtps://) with AUTH LOGIN; --json reports TLS, AUTH, capabilities and timings', async () => {
    const r = await send(['--server', `smtps://127.0.0.1:${implicit.port}`, '--tls-ca', certs.ca, '--user', 'alice', '--password', 's3cret', '--auth', 'LOGIN', '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'hi', '--json']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const json = JSON.parse(r.stdout);
    expect(json.ok).toBe(true);
    const [d] = json.deliveries;
    expect(d.tls.version).toMatch(/^TLSv1\.[23]$/);
    expect(d.tls.cipher).not.toBe('');
    expect(d.auth).toBe('LOGIN');
    expect(d.capabilities).toHaveProperty('AUTH');
    expect(d.recipients).toEqual([{ address: 'b@example.net', accepted: true, reply: { code: 250, enhanced: '2.1.5', text: 'OK' } }]);
    expect(d.reply.code).toBe(250);
    expect(Object.keys(d.timingsMs)).toEqual(expect.arrayContaining(['connect', 'greeting', 'ehlo', 'auth', 'mail', 'rcpt', 'message']));
    const [saved] = (await implicit.messages()).slice(-1);
    expect(saved.meta.auth).toBe('alice');
  });

  test('CRAM-MD5 without TLS: preferred in clear, since the password never travels', async () => {
    const r = await send(['--server', `127.0.0.1:${plain.port}`, '--user', 'alice', '--password', 's3cret', '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'cram', '-v']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('C: AUTH CRAM-MD5\n');
    expect(r.stderr).toMatch(/^S: 235 /m);
    expect(r.stderr).not.toContain('s3cret');
    const [saved] = (await plain.messages()).slice(-1);
    expect(saved.meta.auth).toBe('alice');
  });

  test('PLAIN is not sent in clear unless --tls off says so', async () => {
    const refused = await send(['--server', `127.0.0.1:${plain.port}`, '--user', 'alice', '--password', 's3cret', '--auth', 'PLAIN', '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'x']);
    expect(refused.code).toBe(76);
    expect(oneLine(refused)).toContain('refusing to send the password for AUTH PLAIN without TLS');
    const allowed = await send(['--server', `127.0.0.1:${plain.port}`, '--tls', 'off', '--user', 'alice', '--password', 's3cret', '--auth', 'PLAIN', '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'x']);
    expect(allowed.code).toBe(0);
  });

  test('XOAUTH2 with a token the server checks; OAUTHBEARER from a token file', async () => {
    const good = await send(['--server', `smtp://127.0.0.1:${starttls.port}`, '--tls-ca', certs.ca, '--user', 'alice@example.org', '--token', TOKEN, '--auth', 'XOAUTH2', '--from', 'alice@example.org', '--to', 'b@example.net', '--body', 'oauth']);
    expect([good.code, good.stderr]).toEqual([0, '']);
    expect((await starttls.messages()).slice(-1)[0].meta.auth).toBe('alice@example.org');
    writeFileSync(join(tmp.path, 'token'), `${TOKEN}\n`);
    const bearer = await send(['--server', `smtp://127.0.0.1:${starttls.port}`, '--tls-ca', certs.ca, '--user', 'alice@example.org', '--token-file', join(tmp.path, 'token'), '--from', 'alice@example.org', '--to', 'b@example.net', '--body', 'oauth', '-v']);
    expect(bearer.code).toBe(0);
    expect(bearer.stderr).toContain('C: AUTH OAUTHBEARER <redacted>\n');
    const bad = await send(['--server', `smtp://127.0.0.1:${starttls.port}`, '--tls-ca', certs.ca, '--user', 'alice@example.org', '--token', 'expired', '--auth', 'XOAUTH2', '--from', 'alice@example.org', '--to', 'b@example.net', '--body', 'oauth']);
    expect(bad.code).toBe(77);
    expect(oneLine(bad)).toMatch(/authentication failed \(XOAUTH2\) at AUTH: 535 5\.7\.8 Invalid token$/);
  });

  test('an untrusted certificate is refused with what to do; --insecure skips the check', async () => {
    const refused = await send(['--server', `smtp+starttls://127.0.0.1:${starttls.port}`, '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'x']);
    expect(refused.code).toBe(76);
    expect(oneLine(refused)).toMatch(/TLS handshake failed: .*--tls-ca FILE.*--insecure/);
    const insecure = await send(['--server', `smtp+starttls://127.0.0.1:${starttls.port}`, '--insecure', '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'x']);
    expect(insecure.code).toBe(0);
  });
});

describe('every failure stage: its exit code and one clear line', () => {
  const msg = ['--body', 'x'];
  const ab = ['--from', 'a@example.org', '--to', 'b@example.net', ...msg];
  test.each([
    ['connect refused', async () => ['--server', `127.0.0.1:${await findFreePort()}`, ...ab], 75, /cannot connect to 127\.0\.0\.1:\d+: connection refused/],
    ['implicit TLS against a plain server', async () => ['--server', `127.0.0.1:${plain.port}`, '--tls', 'implicit', '--timeout', '5', ...ab], 76, /TLS handshake with .* failed: .*try --tls starttls/],
    ['STARTTLS required, not offered', async () => ['--server', `smtp+starttls://127.0.0.1:${plain.port}`, ...ab], 76, /does not offer STARTTLS.*--tls implicit/],
    ['plain SMTP against implicit TLS', async () => ['--server', `127.0.0.1:${implicit.port}`, '--tls', 'off', '--timeout', '2', ...ab], 75, /no reply within 2 s.*use --tls implicit/],
    ['AUTH failure', async () => ['--server', `smtp+starttls://127.0.0.1:${starttls.port}`, '--tls-ca', certs.ca, '--user', 'alice', '--password', 'wrong', ...ab], 77, /authentication failed \(PLAIN\) at AUTH: 535 /],
    ['sender refused', async () => ['--server', `127.0.0.1:${refusing.port}`, '--from', 'bad@example.org', '--to', 'b@example.net', ...msg], 69, /sender rejected at MAIL: 550 5\.7\.1 Sender <bad@example\.org> not allowed here/],
    ['all recipients refused', async () => ['--server', `127.0.0.1:${refusing.port}`, '--from', 'a@example.org', '--to', 'nobody@example.net', '--to', 'ghost@example.net', ...msg], 67, /all 2 recipients rejected at RCPT: 550 5\.1\.1 <nobody@example\.net>: no such user/],
  ] as [string, () => Promise<string[]>, number, RegExp][])('%s', async (_, args, code, line) => {
    const r = await send(await args());
    expect(r.code).toBe(code);
    expect(oneLine(r)).toMatch(line);
  });

  test('DATA rejected: exit 65', async () => {
    const rejecting = await peer('rejecting', { rejectData: true });
    const r = await send(['--server', `127.0.0.1:${rejecting.port}`, '--from', 'a@example.org', '--to', 'b@example.net', '--body', 'x']);
    expect(r.code).toBe(65);
    expect(oneLine(r)).toMatch(/message rejected at end of DATA: 554 5\.6\.0 Message refused by policy/);
  });

  test('some recipients refused: sent to the others, each refusal named, exit 0', async () => {
    const r = await send(['--server', `127.0.0.1:${refusing.port}`, '--from', 'a@example.org', '--to', 'ok@example.net,nobody@example.net', '--body', 'x']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('mailbox: recipient <nobody@example.net> rejected: 550 5.1.1 <nobody@example.net>: no such user\n');
    expect(r.stdout).toMatch(/^sent <.+> to 1 of 2 recipients via /);
  });

  test('--quit-after rcpt checks recipients and sends nothing', async () => {
    const before = (await refusing.messages()).length;
    const r = await send(['--server', `127.0.0.1:${refusing.port}`, '--from', 'a@example.org', '--to', 'ok@example.net,nobody@example.net', '--body', 'x', '--quit-after', 'rcpt']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`stopped after RCPT as asked, at 127.0.0.1:${refusing.port}\n  RCPT <ok@example.net>: 250 2.1.5 OK\n  RCPT <nobody@example.net>: 550 5.1.1 <nobody@example.net>: no such user\n`);
    expect(await refusing.messages()).toHaveLength(before);
  });
});

describe('sendmail compatibility', () => {
  test('through a link named sendmail, as cron and PHP call it: -t -i, message on stdin, Bcc dropped', async () => {
    const link = join(tmp.path, 'sendmail');
    if (!existsSync(link)) symlinkSync(MAILBOX_BIN, link);
    const before = (await plain.messages()).length;
    const message = 'From: "Cron Daemon" <root@example.org>\nTo: ops@example.net\nBcc: audit@example.net\nSubject: Cron <root@host> backup\n\nbackup done\n.\nstill the message\n';
    const r = await send(['-t', '-i'], { bin: link, stdin: message, env: { MAILBOX_SERVER: `127.0.0.1:${plain.port}` } });
    expect([r.code, r.stderr, r.stdout]).toEqual([0, '', expect.stringMatching(/^sent <.+@example\.org> to 2 recipients/)]);
    const [saved] = (await plain.messages()).slice(before);
    expect(saved.meta.rcpt_tos).toEqual(['ops@example.net', 'audit@example.net']);
    expect(saved.meta.mail_from).toBe('root@example.org');
    const parsed = parseWithPython(saved.bytes);
    expect(parsed.headers).not.toContain('bcc');
    expect(parsed.headers).toEqual(expect.arrayContaining(['date', 'message-id']));
    expect(parsed.parts[0].text).toBe('backup done\n.\nstill the message\n');
  });

  test('PHP mail() style: -f SENDER, recipients as arguments; without -i a lone "." ends the message', async () => {
    const link = join(tmp.path, 'sendmail');
    if (!existsSync(link)) symlinkSync(MAILBOX_BIN, link);
    const before = (await plain.messages()).length;
    const r = await send(['-fwww@example.org', '-FWeb Site', 'user@example.net'], { bin: link, stdin: 'Subject: Welcome\n\nHello.\n.\nnot sent\n', env: { MAILBOX_SERVER: `127.0.0.1:${plain.port}` } });
    expect(r.code).toBe(0);
    const [saved] = (await plain.messages()).slice(before);
    expect([saved.meta.mail_from, saved.meta.rcpt_tos]).toEqual(['www@example.org', ['user@example.net']]);
    const parsed = parseWithPython(saved.bytes);
    expect(parsed.from).toBe('Web Site <www@example.org>');
    expect(parsed.parts[0].text).toBe('Hello.\n');
  });

  test('mailbox send -t with a refused recipient exits 67 like sendmail', async () => {
    const r = await send(['-t', '--server', `127.0.0.1:${refusing.port}`], { stdin: 'From: a@example.org\nTo: nobody@example.net\n\nx\n' });
    expect(r.code).toBe(67);
    oneLine(r);
  });
});

describe('--eml and mailbox serve', () => {
  test('--eml sends a file as it is, its envelope from the headers; serve spools it', async () => {
    const serve = await startServe();
    const eml = join(tmp.path, 'saved.eml');
    writeFileSync(eml, 'From: a@example.org\nTo: b@example.net, Team: c@example.net, d@example.net;\nMessage-ID: <fixed@example.org>\nSubject: as is\n\nline\n.dot line\n');
    const r = await send(['--eml', eml, '--server', `127.0.0.1:${serve.port}`]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(new RegExp(`^sent <fixed@example\\.org> to 3 recipients via 127\\.0\\.0\\.1:${serve.port}: 250 `));
    const segments = readdirSync(join(serve.dataDir, 'segments')).map((f) => readFileSync(join(serve.dataDir, 'segments', f), 'utf8')).join('');
    expect(segments).toContain('RCPT TO:<d@example.net>');
    expect(segments).toContain('Message-ID: <fixed@example.org>\r\nSubject: as is\r\n\r\nline\r\n..dot line\r\n');
  });
});

describe('mailbox serve with TLS and AUTH', () => {
  test('STARTTLS and implicit TLS, AUTH PLAIN and LOGIN, against the certificate serve made', async () => {
    const data = await makeTempDir('mailbox-send-serve-');
    try {
      const added = await runCommand([MAILBOX_BIN, 'users', 'add', 'alice', '--data', data.path], { stdin: 's3cret\n' });
      expect(added.code).toBe(0);
      const tlsPort = await findFreePort();
      const serve = await startServe({ dataDir: data.path, args: ['--listen-tls', `127.0.0.1:${tlsPort}`] });
      const cert = join(data.path, 'tls', 'cert.pem');
      const message = ['--from', 'alice@example.org', '--to', 'bob@example.net', '--body', 'hello serve'];
      const starttls = await send(['--server', `smtp+starttls://127.0.0.1:${serve.port}`, '--tls-ca', cert, '--user', 'alice', '--password', 's3cret', ...message, '--json']);
      expect([starttls.code, starttls.stderr]).toEqual([0, '']);
      expect(JSON.parse(starttls.stdout).deliveries[0]).toMatchObject({ ok: true, auth: 'PLAIN', tls: { version: expect.stringMatching(/^TLSv1\.[23]$/) } });
      const implicitTls = await send(['--server', `smtps://127.0.0.1:${tlsPort}`, '--tls-ca', cert, '--user', 'alice', '--password', 's3cret', '--auth', 'LOGIN', ...message]);
      expect([implicitTls.code, implicitTls.stderr]).toEqual([0, '']);
      // --tls auto to a server on this machine: its self-signed certificate is accepted.
      const opportunistic = await send(['--server', `127.0.0.1:${serve.port}`, '--user', 'alice', '--password', 's3cret', ...message]);
      expect([opportunistic.code, opportunistic.stderr]).toEqual([0, '']);
      const wrong = await send(['--server', `127.0.0.1:${serve.port}`, '--user', 'alice', '--password', 'nope', ...message]);
      expect(wrong.code).toBe(77);
      oneLine(wrong);
      expect(serve.logs().match(/accepted .*user=alice/g)).toHaveLength(3);
      await serve.cleanup();
    } finally {
      await data.remove();
    }
  });
});

describe('--mx: recipients grouped per domain, MX order, implicit MX, null MX', () => {
  test('each domain goes to its best reachable MX; null MX and unknown domains fail clearly', async () => {
    const [mxPeer, implicitPeer] = await Promise.all([peer('mx-good', { host: '127.0.0.1' }), peer('mx-implicit', { host: '127.0.0.2', port: undefined })]);
    // Every host listens on the same port number (as on 25): the implicit-MX peer moves there.
    await implicitPeer.stop();
    const port = mxPeer.port;
    const implicitHost = await peer('mx-implicit-2', { host: '127.0.0.2', port });
    const dns = await startDnsmasq([
      // a.test: preference 10 is down (nothing on 127.0.0.3), 20 works.
      'mx-host=a.test,down.a.test,10', 'mx-host=a.test,up.a.test,20',
      'host-record=down.a.test,127.0.0.3', 'host-record=up.a.test,127.0.0.1',
      // b.test: no MX, an address: the implicit MX.
      'host-record=b.test,127.0.0.2',
      // n.test: the null MX of RFC 7505 (preference 0, exchange ".").
      'dns-rr=n.test,15,000000',
    ]);
    try {
      const r = await send(['--mx', '--dns', dns.server, '--port', String(port), '--timeout', '5', '--from', 'a@example.org', '--to', 'x@a.test,y@a.test', '--to', 'z@b.test', '--body', 'direct', '--json']);
      expect(r.code).toBe(0);
      const json = JSON.parse(r.stdout);
      expect(json.deliveries.map((d: { domain: string; server: string; ok: boolean }) => [d.domain, d.server, d.ok])).toEqual([
        ['a.test', `127.0.0.1:${port}`, true],
        ['b.test', `127.0.0.2:${port}`, true],
      ]);
      expect((await mxPeer.messages()).slice(-1)[0].meta.rcpt_tos).toEqual(['x@a.test', 'y@a.test']);
      expect((await implicitHost.messages()).slice(-1)[0].meta.rcpt_tos).toEqual(['z@b.test']);

      const none = await send(['--mx', '--dns', dns.server, '--port', String(port), '--from', 'a@example.org', '--to', 'x@n.test', '--body', 'x']);
      expect(none.code).toBe(69);
      expect(oneLine(none)).toContain('n.test accepts no mail (null MX, RFC 7505)');
      const missing = await send(['--mx', '--dns', dns.server, '--port', String(port), '--from', 'a@example.org', '--to', 'x@missing.test', '--body', 'x']);
      expect(missing.code).toBe(69);
      expect(oneLine(missing)).toContain('missing.test does not exist (NXDOMAIN)');
    } finally {
      await dns.stop();
    }
  });
});

describe('Postfix smtpd with a certificate', () => {
  test('STARTTLS verified against our CA, CHUNKING (BDAT) and DSN parameters', async () => {
    requirePeers('root', 'postfix');
    const postfix = await startPostfix({
      mainCf: {
        smtpd_tls_security_level: 'may',
        smtpd_tls_cert_file: certs.cert,
        smtpd_tls_key_file: certs.key,
      },
    });
    try {
      const r = await send(['--server', `smtp+starttls://127.0.0.1:${postfix.port}`, '--tls-ca', certs.ca, '--from', 'a@example.org', '--to', 'b@example.net', '--subject', 'Postfix', '--body', 'über TLS', '--notify', 'SUCCESS,FAILURE', '--ret', 'HDRS', '--envid', 'e2e-1', '-v']);
      expect([r.code, r.stderr.split('\n').filter((l) => l.startsWith('mailbox:'))]).toEqual([0, []]);
      expect(r.stderr).toContain('C: STARTTLS\n');
      expect(r.stderr).toMatch(/^C: MAIL FROM:<a@example\.org> SIZE=\d+ BODY=8BITMIME RET=HDRS ENVID=e2e-1$/m);
      expect(r.stderr).toContain('C: RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE\n');
      expect(r.stderr).toMatch(/^C: BDAT \d+ LAST$/m);
      expect(r.stdout).toMatch(/^sent .* 250 2\.0\.0 Ok: \d+ bytes queued as /);
    } finally {
      await postfix.stop();
    }
  }, 60_000);
});
