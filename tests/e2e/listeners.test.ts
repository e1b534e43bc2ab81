// End to end: listener flags with port 0, and a listener that cannot bind.
import { expect, test } from 'bun:test';
import { connect as tlsConnect } from 'node:tls';
import { MAILBOX_BIN, cleanupServesAfterAll, makeTempDir, listeningAddresses, runCommand, startServe } from './harness.ts';
import { readGreeting } from '../helpers/ports.ts';

cleanupServesAfterAll();

/** The greeting of an implicit-TLS listener (the self-signed certificate is not checked). */
function readTlsGreeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {});
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.endsWith('\r\n')) {
        socket.end('QUIT\r\n');
        resolve(text);
      }
    });
    socket.on('error', reject);
  });
}

test('--listen and --listen-tls take port 0: the ports bound are in the listening line, and answer', async () => {
  const server = await startServe({ args: ['--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0', '--log', 'json'] });
  const listening = await listeningAddresses(server);
  expect(listening.smtp.length).toBe(2);
  expect(listening.smtps.length).toBe(1);
  const [, ephemeral] = listening.smtp;
  const [smtps] = listening.smtps;
  for (const address of [ephemeral, smtps]) expect(address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
  expect(await readGreeting('127.0.0.1', Number(ephemeral.split(':')[1]))).toStartWith('220 ');
  expect(await readTlsGreeting(Number(smtps.split(':')[1]))).toStartWith('220 ');
  expect((await server.stop()).exitCode).toBe(0);
});

test('a listener that cannot bind stops serve with one line naming the flag, exit 71', async () => {
  const server = await startServe();
  const dir = await makeTempDir();
  try {
    for (const flag of ['--listen', '--listen-tls']) {
      const r = await runCommand([MAILBOX_BIN, 'serve', '--pop3', 'off', '--imap', 'off', '--http', 'off', flag, `127.0.0.1:${server.port}`, '--data', dir.path], { timeoutMs: 15_000 });
      expect(r.code).toBe(71);
      const lines = r.stderr.trim().split('\n');
      expect(lines.length).toBe(1);
      expect(lines[0]).toBe(`mailbox: cannot listen on 127.0.0.1:${server.port}: the address is in use (EADDRINUSE); change ${flag}`);
    }
  } finally {
    await dir.remove();
    await server.cleanup();
  }
});
