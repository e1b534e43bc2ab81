// End to end: the RFC 5321 points that depend on how serve is wired — the bare Postmaster with
// --domain and --postmaster, 452 past --max-recipients against pipelining and non-pipelining
// clients, and the transparency dot through a real client — checked in the spool afterwards.
import { describe, expect, test } from 'bun:test';
import { openSpool, type MessageInfo } from '../../src/spool/spool.ts';
import { cleanupServesAfterAll, runPython, smtpDialogue, startServe, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const quietLog = { info() {}, warn() {}, error() {} };

/** Stops the server and returns what its spool holds: each message's info and bytes. */
async function stopAndRead(server: ServeHandle): Promise<{ info: MessageInfo; text: string }[]> {
  expect((await server.stop()).exitCode).toBe(0);
  const spool = await openSpool({ dir: server.dataDir, hostname: 'test', now: Date.now, log: quietLog });
  try {
    const out = [];
    for (const info of spool.list()) out.push({ info, text: Buffer.from(await spool.readMessage(info.id)).toString('latin1') });
    return out;
  } finally {
    await spool.close();
  }
}

const rcptLines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `RCPT TO:<r${from + i}@mail.test>\r\n`).join('');
const codes = (reply: string | null) => (reply ?? '').split('\r\n').filter(Boolean).map((l) => l.slice(0, 9));

describe('RFC 5321 §4.5.1: Postmaster', () => {
  test('<Postmaster> with --domain and a host name outside it is kept for postmaster@ the first domain', async () => {
    const server = await startServe({ args: ['--domain', 'mail.test,other.test', '--hostname', 'mx.elsewhere.test'] });
    const d = await smtpDialogue(server.host, server.port, [
      'EHLO c.test\r\n',
      'MAIL FROM:<a@c.test>\r\n',
      'RCPT TO:<Postmaster>\r\n',
      'RCPT TO:<POSTMASTER>\r\n',
      'RCPT TO:<someone@mx.elsewhere.test>\r\n',
      'DATA\r\n',
      'Subject: to the postmaster\r\n\r\nhello\r\n.\r\n',
      'MAIL FROM:<a@c.test>\r\n',
      'RCPT TO:<PostMaster@OTHER.test>\r\n',
      'DATA\r\n',
      'Subject: to the other postmaster\r\n\r\nhello\r\n.\r\n',
      'QUIT\r\n',
    ]);
    expect(d.replies.map((r) => r?.slice(0, 9)), d.transcript).toEqual([
      '250-mx.el', '250 2.1.0', '250 2.1.5', '250 2.1.5', '550 5.7.1', '354 Start', '250 2.0.0', '250 2.1.0', '250 2.1.5', '354 Start', '250 2.0.0', '221 2.0.0',
    ]);
    const stored = await stopAndRead(server);
    expect(stored.map((m) => m.info.recipients.map((r) => r.address).join(' ')).sort()).toEqual(['PostMaster@OTHER.test', 'postmaster@mail.test postmaster@mail.test']);
    expect(stored.every((m) => m.info.envelope.recipients.every((r) => r.local))).toBe(true);
    await server.cleanup();
  });

  test('--postmaster: smtplib sends to <Postmaster> and the spool lists it under that mailbox', async () => {
    const server = await startServe({ args: ['--domain', 'mail.test', '--postmaster', 'hostmaster@mail.test'] });
    const r = await runPython(
      String.raw`
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30)
print(s.sendmail('a@c.test', ['Postmaster'], 'Subject: hi\r\n\r\nfor the postmaster\r\n'))
s.quit()`,
      [server.host, String(server.port)],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('{}');
    const stored = await stopAndRead(server);
    expect(stored.map((m) => m.info.recipients.map((r) => r.address))).toEqual([['hostmaster@mail.test']]);
    const spool = await openSpool({ dir: server.dataDir, hostname: 'test', now: Date.now, log: quietLog });
    try {
      expect(spool.list({ recipient: 'HostMaster@mail.test' }).length).toBe(1);
    } finally {
      await spool.close();
    }
    await server.cleanup();
  });
});

describe('RFC 5321 §4.5.3.1.10: recipients past --max-recipients', () => {
  test('a raw client pipelining 1,100 RCPTs gets 100 × 250 and 1,000 × 452 4.5.3, and DATA works for the 100', async () => {
    const server = await startServe({ args: ['--max-recipients', '100', '--domain', 'mail.test'] });
    const d = await smtpDialogue(server.host, server.port, [
      'EHLO c.test\r\n',
      { send: `MAIL FROM:<a@c.test>\r\n${rcptLines(0, 1100)}DATA\r\n`, replies: 1102 },
      'Subject: many\r\n\r\nbody\r\n.\r\n',
      'QUIT\r\n',
    ]);
    const got = codes(d.replies[1]);
    expect(got.length).toBe(1102);
    expect(got[0]).toBe('250 2.1.0');
    expect(got.slice(1, 101).every((c) => c === '250 2.1.5')).toBe(true);
    expect(got.slice(101, 1101).every((c) => c === '452 4.5.3')).toBe(true);
    expect(got[1101].slice(0, 3)).toBe('354');
    expect(d.replies[2]?.slice(0, 9)).toBe('250 2.0.0');
    expect(d.replies[3]?.slice(0, 9)).toBe('221 2.0.0');
    const stored = await stopAndRead(server);
    expect(stored.length).toBe(1);
    expect(stored[0].info.recipients.map((r) => r.address)).toEqual(Array.from({ length: 100 }, (_, i) => `r${i}@mail.test`));
    await server.cleanup();
  }, 120_000);

  test('past the 1,000 forgiven per transaction the 452s count toward --max-errors', async () => {
    const server = await startServe({ args: ['--max-recipients', '100', '--max-errors', '1', '--domain', 'mail.test'] });
    const d = await smtpDialogue(server.host, server.port, [
      'EHLO c.test\r\n',
      { send: `MAIL FROM:<a@c.test>\r\n${rcptLines(0, 1102)}`, replies: 1104 },
      // The server has closed: this gets no reply, and the dialogue sees the close.
      'NOOP\r\n',
    ]);
    expect(d.replies[2]).toBeNull();
    const got = codes(d.replies[1]);
    expect(got.slice(1, 101).every((c) => c === '250 2.1.5')).toBe(true);
    expect(got.slice(101, 1103).every((c) => c === '452 4.5.3')).toBe(true);
    expect(got.length).toBe(1104);
    expect(got[1103]).toBe('421 4.7.0');
    expect(d.closed).toBe(true);
    await server.cleanup();
  }, 120_000);

  test('smtplib (no pipelining) sends to 150 recipients: 50 refused with 452, the message goes to 100', async () => {
    const server = await startServe({ args: ['--max-recipients', '100', '--domain', 'mail.test'] });
    const r = await runPython(
      String.raw`
import json, smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30)
refused = s.sendmail('a@c.test', ['r%d@mail.test' % i for i in range(150)], 'Subject: many\r\n\r\nbody\r\n')
print(json.dumps(sorted(set(code for code, _ in refused.values())) + [len(refused)]))
s.quit()`,
      [server.host, String(server.port)],
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([452, 50]);
    const stored = await stopAndRead(server);
    expect(stored.map((m) => m.info.recipients.length)).toEqual([100]);
    await server.cleanup();
  }, 60_000);
});

describe('RFC 5321 §4.5.3.1.6: the transparency dot', () => {
  test('smtplib sends a 998-octet line starting with "." (999 on the wire); it is stored whole', async () => {
    const server = await startServe();
    const line = `.${'x'.repeat(997)}`;
    const r = await runPython(
      String.raw`
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=30)
print(s.sendmail('a@c.test', ['b@mailbox.test'], 'Subject: dot\r\n\r\n' + sys.argv[3] + '\r\n'))
s.quit()`,
      [server.host, String(server.port), line],
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('{}');
    const stored = await stopAndRead(server);
    expect(stored.length).toBe(1);
    expect(stored[0].text).toEndWith(`\r\nSubject: dot\r\n\r\n${line}\r\n`);
    await server.cleanup();
  });
});
