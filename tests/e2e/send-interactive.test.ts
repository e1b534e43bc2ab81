/**
 * `mailbox send --interactive` through a pseudo-terminal: tmux runs the binary, send-keys types,
 * capture-pane reads the screen. A sender and a recipient the server refuses are shown with the
 * server's reason and asked for again; the message then arrives with what was typed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAILBOX_BIN, makeTempDir, type TempDir } from './harness.ts';
import { parseWithPython, startAiosmtpd, type AiosmtpdPeer } from '../helpers/send-peers.ts';

const TMUX = '/usr/bin/tmux';

function tmux(...args: string[]): string {
  const r = Bun.spawnSync([TMUX, ...args], { stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

describe('mailbox send --interactive in a terminal', () => {
  let tmp: TempDir;
  let server: AiosmtpdPeer;
  const session = `mailbox-send-${process.pid}`;

  beforeAll(async () => {
    requirePeers('tmux', 'aiosmtpd');
    tmp = await makeTempDir('mailbox-interactive-');
    await mkdir(join(tmp.path, 'in'));
    // AUTH in clear is offered for the password prompt test; CRAM-MD5 keeps the password off the wire.
    server = await startAiosmtpd({ dir: join(tmp.path, 'in'), rejectSenders: ['bad@example.org'], rejectRecipients: ['nobody@example.net'], users: { alice: 'pa55word' }, authRequireTls: false });
  });

  afterAll(async () => {
    for (const s of [session, `${session}-pw`]) Bun.spawnSync([TMUX, 'kill-session', '-t', s], { stdout: 'ignore', stderr: 'ignore' });
    await server?.stop();
    await tmp?.remove();
  });

  const screen = (name = session) => tmux('capture-pane', '-p', '-t', name);
  /** Waits until the screen shows `text` (count times; tmux trims trailing spaces), then returns it. */
  async function waitFor(text: string, count = 1, name = session): Promise<string> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const shown = screen(name);
      if (shown.split(text).length - 1 >= count) return shown;
      if (Date.now() > deadline) throw new Error(`the screen never showed ${JSON.stringify(text)} ×${count}:\n${shown}`);
      await Bun.sleep(25);
    }
  }
  const type = (text: string) => {
    if (text !== '') tmux('send-keys', '-t', session, '-l', text);
    tmux('send-keys', '-t', session, 'Enter');
  };

  test('a refused sender and a refused recipient are asked for again, with the server reason', async () => {
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '50', `${MAILBOX_BIN} send --interactive --server 127.0.0.1:${server.port}; echo "EXIT=$?"; sleep 60`);
    await waitFor('From:');
    type('bad@example.org');
    expect(await waitFor('  refused: 550 5.7.1 Sender <bad@example.org> not allowed here')).toBeDefined();
    await waitFor('From:', 2);
    type('Zoë <zoe@example.org>');
    await waitFor('To:');
    type('nobody@example.net');
    await waitFor('  refused: 550 5.1.1 <nobody@example.net>: no such user');
    await waitFor('To:', 2);
    type('bob@example.net');
    await waitFor('To:', 3);
    type('');
    await waitFor('Subject:');
    type('Grüße aus dem Terminal');
    await waitFor('Message text');
    type('first line');
    type('.');
    const done = await waitFor('EXIT=');
    expect(done).toMatch(/^sent <.+@example\.org> to 1 recipient via 127\.0\.0\.1:\d+: 250 2\.0\.0 OK saved as 1$/m);
    expect(done).toContain('EXIT=0');
    const [saved] = await server.messages();
    expect([saved.meta.mail_from, saved.meta.rcpt_tos]).toEqual(['zoe@example.org', ['bob@example.net']]);
    const parsed = parseWithPython(saved.bytes);
    expect([parsed.subject, parsed.parts[0].text]).toEqual(['Grüße aus dem Terminal', 'first line\n']);
  });

  test('--user without a password asks for it on the terminal, without echo', async () => {
    const name = `${session}-pw`;
    tmux('new-session', '-d', '-s', name, '-x', '120', '-y', '20', `${MAILBOX_BIN} send --server 127.0.0.1:${server.port} --user alice --from a@example.org --to b@example.net --body secret-test; echo "EXIT=$?"; sleep 60`);
    await waitFor('Password for alice:', 1, name);
    tmux('send-keys', '-t', name, '-l', 'pa55word');
    tmux('send-keys', '-t', name, 'Enter');
    const done = await waitFor('EXIT=', 1, name);
    expect(done).toContain('EXIT=0');
    expect(done).toMatch(/^sent <.+> to 1 recipient via /m);
    expect(done).not.toContain('pa55word');
    const saved = await server.messages();
    expect(saved[saved.length - 1].meta.auth).toBe('alice');
  });
});
