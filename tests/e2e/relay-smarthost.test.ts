/**
 * `serve --relay smtp+starttls://user@host` end to end: aiosmtpd as the smarthost, STARTTLS with a
 * certificate for localhost signed by a CA given with --relay-ca, AUTH with the password from the
 * config file; a man in the middle with a self-signed certificate for the same name gets neither
 * the message nor the password (the message is deferred). A password on the command line is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, runCommand, sendWithSmtplib, startServe, waitForLog, type ServeHandle, type TempDir } from './harness.ts';
import { findFreePort } from '../helpers/ports.ts';
import { makeCertificates, makeHostCertificate, startAiosmtpd, type AiosmtpdPeer } from '../helpers/send-peers.ts';

cleanupServesAfterAll();

const PYTHON_READY = Bun.spawnSync([process.env.SYSTEM_PYTHON ?? '/usr/bin/python3', '-c', 'import aiosmtpd']).exitCode === 0;

let tmp: TempDir;
let smarthost: AiosmtpdPeer;
let mitm: AiosmtpdPeer;
let relay: ServeHandle;

beforeAll(async () => {
  if (!PYTHON_READY) return;
  tmp = await makeTempDir('mailbox-relay-smarthost-');
  const certs = makeCertificates(tmp.path);
  const fake = makeHostCertificate(tmp.path, 'localhost', 'self');
  await Promise.all([mkdir(join(tmp.path, 'smarthost')), mkdir(join(tmp.path, 'mitm'))]);
  const users = { relayuser: 'correct horse' };
  [smarthost, mitm] = await Promise.all([
    startAiosmtpd({ dir: join(tmp.path, 'smarthost'), tls: 'starttls', certificates: certs, users }),
    startAiosmtpd({ dir: join(tmp.path, 'mitm'), tls: 'starttls', certificates: fake, users }),
  ]);
  const config = join(tmp.path, 'mailbox.conf');
  await writeFile(
    config,
    [
      `relay smtp+starttls://relayuser:correct%20horse@localhost:${smarthost.port}`,
      `route mitm.test=smtp+starttls://relayuser:correct%20horse@localhost:${mitm.port}`,
      `relay-ca ${certs.ca}`,
      'relay-timeout 5s',
      'hostname relay.test',
      'log json',
      'http off',
    ].join('\n'),
    { mode: 0o600 },
  );
  relay = await startServe({ args: ['--config', config] });
}, 60_000);

afterAll(async () => {
  await relay?.cleanup();
  await Promise.all([smarthost?.stop(), mitm?.stop()]);
  await tmp?.remove();
});

describe.skipIf(!PYTHON_READY)('serve --relay with a smarthost', () => {
  test('over STARTTLS with a verified certificate, authenticated with the config file password', async () => {
    await sendWithSmtplib(relay, 'alice@relay.test', ['bob@example.org'], 'Subject: via the smarthost\r\n\r\nHello.\r\n');
    await waitForLog(relay, /"event":"delivered"[^\n]*bob@example\.org/);
    const [saved] = await smarthost.messages();
    expect(saved.meta.auth).toBe('relayuser');
    expect(saved.meta.tls).toBe(true);
    expect(saved.meta.rcpt_tos).toEqual(['bob@example.org']);
    expect(relay.logs()).not.toContain('correct horse');
    expect(relay.logs()).not.toContain('correct%20horse');
  }, 30_000);

  test('a man in the middle whose certificate is wrong gets neither the message nor the password', async () => {
    await sendWithSmtplib(relay, 'alice@relay.test', ['carol@mitm.test'], 'Subject: not for the middle\r\n\r\nSecret.\r\n');
    const logs = await waitForLog(relay, /"event":"deferred"[^\n]*carol@mitm\.test/);
    const line = logs.split('\n').find((l) => l.includes('"event":"deferred"') && l.includes('carol@mitm.test'))!;
    expect(JSON.parse(line.slice(line.indexOf('{'))).dsn).toMatch(/^4\.7\./);
    expect(await mitm.messages()).toEqual([]);
    expect(mitm.logs()).not.toMatch(/AUTH/);
  }, 30_000);

  test('a password on the command line is refused', async () => {
    const port = await findFreePort();
    const r = await runCommand([MAILBOX_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', join(tmp.path, 'argv'), '--relay', 'smtps://user:secret@localhost']);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('config file');
  });
});
