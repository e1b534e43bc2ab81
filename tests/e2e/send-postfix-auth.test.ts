/**
 * `mailbox send` against a private Postfix smtpd that authenticates with Cyrus SASL (a sasldb in
 * the test's own dir, PLAIN and LOGIN): STARTTLS and implicit TLS (smtps://), each followed by
 * AUTH, and a wrong password. Postfix relays only for authenticated clients here, holds what it
 * accepts, and records the SASL login in the Received header and its log; both are checked.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAILBOX_BIN, makeTempDir, runCommand, type RunResult, type TempDir } from './harness.ts';
import { startPostfix, waitForPostfixLog, type PostfixHandle } from '../helpers/postfix.ts';
import { makeCertificates, type Certificates } from '../helpers/send-peers.ts';

const SASLPASSWD2 = '/usr/sbin/saslpasswd2';
/** smtpd_sasl_local_domain: Cyrus looks up and Postfix records the login as alice@mailbox.test. */
const REALM = 'mailbox.test';
const USER = 'alice';
const PASSWORD = 's3cret';

function send(args: string[]): Promise<RunResult> {
  return runCommand([MAILBOX_BIN, 'send', ...args], { timeoutMs: 60_000 });
}

/** A failure prints exactly one line on standard error, "mailbox: …", and no stack trace. */
function oneLine(result: RunResult): string {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith('mailbox: ');
  // Postfix's own 535 text says "Error: authentication failed", so only a thrown error's name counts.
  expect(result.stderr).not.toMatch(/\bat .+:\d+:\d+|^\w*Error:/m);
  return lines[0];
}

/**
 * The sasldb for smtpd (which runs as the postfix user) in a private dir, and the Cyrus SASL
 * config (smtpd.conf) that points at it.
 */
async function makeSasldb(dir: string): Promise<string> {
  await mkdir(dir, { mode: 0o755 });
  const sasldb = join(dir, 'sasldb2');
  const created = Bun.spawnSync([SASLPASSWD2, '-c', '-p', '-f', sasldb, '-u', REALM, USER], {
    stdin: new TextEncoder().encode(PASSWORD), stdout: 'pipe', stderr: 'pipe',
  });
  if (created.exitCode !== 0) throw new Error(`saslpasswd2 failed (${created.exitCode}): ${created.stderr.toString()}`);
  const owned = Bun.spawnSync(['chown', 'postfix', sasldb], { stdout: 'pipe', stderr: 'pipe' });
  if (owned.exitCode !== 0) throw new Error(`chown postfix ${sasldb}: ${owned.stderr.toString()}`);
  return ['pwcheck_method: auxprop', 'auxprop_plugin: sasldb', 'mech_list: PLAIN LOGIN', `sasldb_path: ${sasldb}`, ''].join('\n');
}

let tmp: TempDir;
let certs: Certificates;
let postfix: PostfixHandle;

/** The held message whose Subject is `subject`, as postcat prints it (envelope, headers, body). */
async function heldMessage(subject: string): Promise<string> {
  for (const id of await postfix.messages('hold')) {
    const text = Bun.spawnSync(['postcat', '-c', postfix.configDir, '-q', id], { stdout: 'pipe', stderr: 'pipe' }).stdout.toString();
    if (text.includes(`Subject: ${subject}\n`)) return text;
  }
  throw new Error(`no held message with Subject: ${subject} (held: ${(await postfix.messages('hold')).join(' ')})`);
}

describe('Postfix smtpd with Cyrus SASL (PLAIN, LOGIN)', () => {
  beforeAll(async () => {
    requirePeers('root', 'postfix', 'saslpasswd2', 'sasl-plain-login');
    tmp = await makeTempDir('mailbox-send-postfix-auth-');
    certs = makeCertificates(tmp.path);
    const smtpdConf = await makeSasldb(join(tmp.path, 'sasl'));
    postfix = await startPostfix({
      mode: 'hold',
      implicitTlsPort: 0,
      // Debian's Postfix reads Cyrus SASL config from $config_directory/sasl whatever
      // cyrus_sasl_config_path says; upstream Postfix honours cyrus_sasl_config_path.
      configFiles: { 'sasl/smtpd.conf': smtpdConf },
      mainCf: {
        smtpd_tls_security_level: 'may',
        smtpd_tls_cert_file: certs.cert,
        smtpd_tls_key_file: certs.key,
        smtpd_sasl_auth_enable: 'yes',
        smtpd_sasl_type: 'cyrus',
        smtpd_sasl_path: 'smtpd',
        cyrus_sasl_config_path: '$config_directory/sasl',
        smtpd_sasl_local_domain: REALM,
        smtpd_sasl_security_options: 'noanonymous',
        smtpd_tls_auth_only: 'yes',
        smtpd_sasl_authenticated_header: 'yes',
        // Only an authenticated client may send: a message held proves AUTH took effect.
        smtpd_relay_restrictions: 'permit_sasl_authenticated, reject',
        smtpd_recipient_restrictions: 'permit_sasl_authenticated, reject',
      },
    });
  }, 60_000);

  afterAll(async () => {
    await postfix?.stop();
    await tmp?.remove();
  });

  const cases: [string, () => string, string[], string][] = [
    ['STARTTLS + AUTH PLAIN', () => `smtp+starttls://127.0.0.1:${postfix.port}`, [], 'PLAIN'],
    ['STARTTLS + AUTH LOGIN (--auth LOGIN)', () => `smtp+starttls://127.0.0.1:${postfix.port}`, ['--auth', 'LOGIN'], 'LOGIN'],
    ['implicit TLS (smtps://) + AUTH PLAIN', () => `smtps://127.0.0.1:${postfix.implicitTlsPort}`, [], 'PLAIN'],
  ];
  for (const [name, server, extra, mechanism] of cases) {
    test(`${name}: accepted, held, Received names the authenticated user`, async () => {
      const subject = `sasl ${mechanism} ${server().startsWith('smtps') ? 'implicit' : 'starttls'}`;
      const r = await send(['--server', server(), '--tls-ca', certs.ca, '--user', USER, '--password', PASSWORD, ...extra,
        '--from', 'alice@example.org', '--to', 'bob@example.net', '--subject', subject, '--body', 'authenticated', '-v']);
      expect([r.code, r.stderr.split('\n').filter((l) => l.startsWith('mailbox:'))]).toEqual([0, []]);
      expect(r.stderr).toMatch(new RegExp(`^C: AUTH ${mechanism}\\b`, 'm'));
      expect(r.stderr).not.toContain(PASSWORD);
      if (server().startsWith('smtps')) expect(r.stderr).not.toContain('C: STARTTLS');
      else expect(r.stderr).toContain('C: STARTTLS\n');
      const queueId = /^sent .* 250 2\.0\.0 Ok: \d+ bytes queued as (\w+)/.exec(r.stdout)?.[1];
      expect(queueId).toBeString();

      const held = await heldMessage(subject);
      expect(held).toMatch(/^Received: from .*\n\s+\(Authenticated sender: alice@mailbox\.test\)\n\s+by postfix\.mailbox\.test \(Postfix\) with ESMTPSA id /m);
      expect(held).toContain(`named_attribute: sasl_method=${mechanism}\n`);
      // smtpd logs "QUEUEID: client=…, sasl_method=…, sasl_username=…": this message's line, not an earlier test's.
      const login = new RegExp(`${queueId}: client=.*, sasl_method=${mechanism}, sasl_username=alice@mailbox\\.test\\b`);
      expect(await waitForPostfixLog(postfix, login)).toMatch(login);
    }, 60_000);
  }

  test('a wrong password: exit 77, one line naming AUTH, nothing held', async () => {
    const before = await postfix.messages('hold');
    const r = await send(['--server', `smtp+starttls://127.0.0.1:${postfix.port}`, '--tls-ca', certs.ca, '--user', USER, '--password', 'wrong',
      '--from', 'alice@example.org', '--to', 'bob@example.net', '--subject', 'sasl wrong', '--body', 'refused']);
    expect(r.code).toBe(77);
    expect(oneLine(r)).toMatch(/authentication failed \(PLAIN\) at AUTH: 535 /);
    expect(await postfix.messages('hold')).toEqual(before);
    expect(await waitForPostfixLog(postfix, /SASL PLAIN authentication failed/)).toMatch(/SASL PLAIN authentication failed/);
  }, 60_000);
});
