/**
 * Smoke test of the e2e helpers and the Debian peers: smtp-sink and private Postfix instances
 * start on ephemeral loopback ports, accept a message from Python's smtplib and from swaks, and
 * stop without leaving a process behind. Without a peer (or root) its tests fail with the install line.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { CAPABILITIES, requirePeers } from '../helpers/capabilities.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, runCommand, runPython, runSwaks, smtpDialogue } from './harness.ts';
import {
  descendantsOf,
  isRunning,
  startPostfix,
  startSmtpSink,
} from '../helpers/postfix.ts';
import { findFreePort, isCompleteReply, waitForGreeting } from '../helpers/ports.ts';
import { makeCertificates } from '../helpers/send-peers.ts';


/** Sends one message with smtplib; prints the DATA reply code and text. */
const SEND_ONE = `
import smtplib, sys
host, port, sender, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
msg = "From: <%s>\\r\\nTo: <%s>\\r\\nSubject: peers smoke test\\r\\n\\r\\nmarker-1b2c3d\\r\\n" % (sender, rcpt)
with smtplib.SMTP(host, port, timeout=10) as s:
    s.ehlo("client.test")
    code, _ = s.mail(sender); assert code == 250, code
    code, _ = s.rcpt(rcpt); assert code == 250, code
    code, text = s.data(msg)
    print(code, text.decode())
`;

/** Sends one message over STARTTLS, then one over implicit TLS; prints each DATA reply code. */
const SEND_TLS = `
import smtplib, ssl, sys
host, port, implicit_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
msg = "Subject: peers TLS smoke test\\r\\n\\r\\nmarker-tls\\r\\n"
with smtplib.SMTP(host, port, timeout=10) as s:
    s.starttls(context=ctx)
    print("starttls", s.sendmail("a@client.test", ["b@far.test"], msg) or 250)
with smtplib.SMTP_SSL(host, implicit_port, timeout=10, context=ctx) as s:
    print("implicit", s.sendmail("a@client.test", ["b@far.test"], msg) or 250)
`;

/** PIDs started by the tests below, checked at the end. */
const started: number[] = [];

/** pgrep -x NAME, less zombies (init reaps orphaned Postfix daemons a little later). */
function livePids(name: string): number[] {
  const out = Bun.spawnSync(['pgrep', '-x', name], { stdout: 'pipe' }).stdout.toString();
  return out.split('\n').filter(Boolean).map(Number).filter(isRunning);
}

/** Polls `check` until it holds; the deadline is generous for Postfix's queue manager on a loaded machine. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await Bun.sleep(100);
  }
  return check();
}

describe('ports', () => {
  test('findFreePort gives distinct bindable ports', async () => {
    const a = await findFreePort('127.0.0.1');
    const b = await findFreePort('127.0.0.2');
    expect(a).toBeGreaterThan(1023);
    expect(b).toBeGreaterThan(1023);
  });

  test('waitForGreeting gives up on a port nobody listens on', async () => {
    const port = await findFreePort();
    await expect(waitForGreeting('127.0.0.1', port, { timeoutMs: 300 })).rejects.toThrow(/no 220 greeting/);
  });

  test('isCompleteReply knows multi-line replies', () => {
    expect(isCompleteReply('250-a\r\n')).toBe(false);
    expect(isCompleteReply('250-a\r\n250 b\r\n')).toBe(true);
    expect(isCompleteReply('220 hi')).toBe(false);
  });
});

describe('smtp-sink', () => {
  beforeAll(() => requirePeers('smtp-sink', 'swaks', 'aiosmtpd'));

  test('accepts a message from smtplib and dumps it with dumpDir', async () => {
    await using dump = await makeTempDir('mailbox-sink-dump-');
    const sink = await startSmtpSink({ dumpDir: join(dump.path, 'mail') });
    started.push(sink.proc.pid);
    try {
      const sent = await runPython(SEND_ONE, ['127.0.0.1', String(sink.port), 'a@client.test', 'b@sink.test']);
      expect(sent.stderr).toBe('');
      expect(sent.stdout).toStartWith('250');
      const files = await sink.completeDumps(1);
      expect(files).toHaveLength(1);
      expect(await readFile(files[0]!, 'latin1')).toContain('marker-1b2c3d');
    } finally {
      await sink.stop();
    }
    expect(sink.proc.exitCode !== null || sink.proc.signalCode !== null).toBe(true);
  }, 30_000);

  test('smtpDialogue sends exact bytes and collects replies; swaks delivers', async () => {
    await using sink = await startSmtpSink({ address: '127.0.0.3' });
    started.push(sink.proc.pid);
    const result = await smtpDialogue(sink.address, sink.port, [
      'EHLO client.test\r\n',
      { send: 'MAIL FROM:<a@client.test>\r\nRCPT TO:<b@sink.test>\r\n', replies: 2 },
      'DATA\r\n',
      'Subject: raw\r\n\r\nbody\r\n.\r\n',
      'QUIT\r\n',
    ]);
    expect(result.greeting).toStartWith('220');
    expect(result.replies[0]).toMatch(/^250-/);
    expect(result.replies[1]).toMatch(/^250 .*\r\n250 /s);
    expect(result.replies[2]).toStartWith('354');
    expect(result.replies[3]).toStartWith('250');
    expect(result.replies[4]).toStartWith('221');
    expect(result.transcript).toContain('C: "DATA\\r\\n"');

    const swaks = await runSwaks([
      '--server', `${sink.address}:${sink.port}`,
      '--from', 'a@client.test', '--to', 'b@sink.test', '--helo', 'client.test',
      '--body', 'swaks body', '--timeout', '10',
    ]);
    expect(swaks.code).toBe(0);
    expect(swaks.stdout).toMatch(/\n -> \.\n<-  250 /);
  }, 30_000);
});

describe('private Postfix', () => {
  beforeAll(() => requirePeers('root', 'postfix'));

  test('discard mode: queues durably, discards, and stops cleanly on 127.0.0.2', async () => {
    const postfix = await startPostfix({ address: '127.0.0.2', mode: 'discard' });
    const master = postfix.masterPid();
    expect(master).toBeNumber();
    started.push(master!, ...descendantsOf(master!));
    try {
      const sent = await runPython(SEND_ONE, [postfix.address, String(postfix.port), 'a@client.test', 'b@far.test']);
      expect(sent.stderr).toBe('');
      expect(sent.stdout).toMatch(/^250 2\.0\.0 Ok: queued as \w+/);
      expect(await eventually(async () => /discard\[\d+\]: \w+: to=<b@far\.test>.*status=sent/.test(await postfix.logs()))).toBe(true);
      started.push(...descendantsOf(master!));
    } finally {
      await postfix.stop();
    }
    expect(postfix.masterPid()).toBeUndefined();
  }, 120_000);

  test('a certificate: STARTTLS on the listener, implicit TLS on implicitTlsPort', async () => {
    await using dir = await makeTempDir('mailbox-peers-tls-');
    const certs = makeCertificates(dir.path);
    await using postfix = await startPostfix({
      mode: 'discard',
      implicitTlsPort: 0,
      mainCf: { smtpd_tls_security_level: 'may', smtpd_tls_cert_file: certs.cert, smtpd_tls_key_file: certs.key },
    });
    started.push(postfix.masterPid()!);
    expect(postfix.implicitTlsPort).toBeNumber();
    expect(postfix.implicitTlsPort).not.toBe(postfix.port);
    const sent = await runPython(SEND_TLS, [postfix.address, String(postfix.port), String(postfix.implicitTlsPort)]);
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toBe('starttls 250\nimplicit 250\n');
    started.push(...descendantsOf(postfix.masterPid()!));
  }, 60_000);

  test('hold mode keeps the message; relay mode forwards to smtp-sink', async () => {
    await using dump = await makeTempDir('mailbox-relay-dump-');
    await using sink = await startSmtpSink({ dumpDir: join(dump.path, 'mail') });
    started.push(sink.proc.pid);
    await using hold = await startPostfix({ mode: 'hold' });
    await using relay = await startPostfix({ mode: 'relay', relayTo: `${sink.address}:${sink.port}` });
    for (const p of [hold, relay]) started.push(p.masterPid()!);

    const held = await runPython(SEND_ONE, [hold.address, String(hold.port), 'a@client.test', 'b@far.test']);
    expect(held.stdout).toStartWith('250');
    expect(await eventually(async () => (await hold.messages('hold')).length === 1)).toBe(true);

    const relayed = await runPython(SEND_ONE, [relay.address, String(relay.port), 'a@client.test', 'b@far.test']);
    expect(relayed.stdout).toStartWith('250');
    const files = await sink.completeDumps(1).catch(async (err) => {
      console.error(await relay.logs());
      throw err;
    });
    expect(files).toHaveLength(1);
    expect(await readFile(files[0]!, 'latin1')).toContain('marker-1b2c3d');
    for (const p of [hold, relay]) started.push(...descendantsOf(p.masterPid()!));
  }, 120_000);
});

afterAll(async () => {
  // Every smtp-sink, master and Postfix child these tests started must be gone. Postfix's children
  // exit after master signals them, on their own time: on a loaded machine, poll, then check.
  const leftovers = async () => {
    const running = new Set([...livePids('smtp-sink'), ...livePids('master'), ...livePids('smtpd'), ...livePids('qmgr')]);
    const check = await runCommand(['pgrep', '-f', 'mailbox-postfix-']);
    return {
      leaked: started.filter((pid) => running.has(pid)),
      instances: check.stdout.split('\n').filter(Boolean).map(Number).filter(isRunning),
    };
  };
  let left = await leftovers();
  for (const deadline = Date.now() + 10_000; (left.leaked.length > 0 || left.instances.length > 0) && Date.now() < deadline;) {
    await Bun.sleep(100);
    left = await leftovers();
  }
  expect(left.leaked).toEqual([]);
  expect(left.instances).toEqual([]);
}, 30_000);

test('scripts/install-peers installs the package of every capability the tests check', async () => {
  const script = await readFile(join(import.meta.dir, '../../scripts/install-peers'), 'utf8');
  const listed = new Set(/^packages=\(([^)]*)\)$/m.exec(script)?.[1].split(/\s+/) ?? []);
  const needed = Object.values(CAPABILITIES).flatMap((c) => [...c.packages]);
  expect(needed.filter((p) => !listed.has(p))).toEqual([]);
  expect(listed.size).toBeGreaterThan(5);
});
