/**
 * `mailbox send` against Postfix's smtp-sink on an ephemeral loopback port: the message must
 * arrive whole and parse cleanly with Python's email package; failures must name the stage.
 * Without smtp-sink every test fails with the line that installs it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cac } from 'cac';
import { describeError, exitCodeFor, EXIT } from '../../src/cli/exit-codes.ts';
import { register, runSend, parseSendFlags, type SendDeps } from '../../src/commands/send.ts';
import { ClientFailure } from '../../src/core/errors.ts';
import { startSmtpSink, type SmtpSinkHandle } from '../helpers/postfix.ts';


interface Captured {
  deps: SendDeps;
  stdout: string[];
  stderr: string[];
}

function capture(stdinText: string | null = null): Captured {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const encoder = new TextEncoder();
  let n = 0;
  const stdin: SendDeps['stdin'] = {
    isTTY: stdinText === null,
    async *[Symbol.asyncIterator]() {
      if (stdinText !== null) yield encoder.encode(stdinText);
    },
  };
  return {
    stdout,
    stderr,
    deps: {
      now: () => Date.UTC(2026, 10, 27, 9, 30, 0),
      stdin,
      stdout: { write: (t: string | Uint8Array) => stdout.push(typeof t === 'string' ? t : new TextDecoder().decode(t)) },
      stderr: { write: (t: string) => stderr.push(t) },
      hostname: () => 'client.test',
      newId: () => `e2e${++n}.${process.pid}`,
    },
  };
}

/** Python's email package reads one dump; smtp-sink's own X- headers and Received come first. */
function parseDump(bytes: Uint8Array): Record<string, unknown> {
  const script = `
import sys, json, email
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
print(json.dumps({
  "mail_args": str(msg["x-mail-args"]),
  "rcpt_args": [str(v) for v in msg.get_all("x-rcpt-args", [])],
  "helo": str(msg["x-helo-args"]),
  "subject": str(msg["subject"]),
  "from": str(msg["from"]),
  "to": [a.addr_spec for a in msg["to"].addresses],
  "message_id": str(msg["message-id"]),
  "cte": str(msg["content-transfer-encoding"]),
  "body": msg.get_content().replace("\\r\\n", "\\n").rstrip("\\n"),
  "defects": [type(d).__name__ for d in msg.defects],
}))
`;
  const run = Bun.spawnSync(['python3', '-c', script], { stdin: bytes, stdout: 'pipe', stderr: 'pipe' });
  if (run.exitCode !== 0) throw new Error(`python3 could not parse the dump: ${run.stderr.toString()}`);
  return JSON.parse(run.stdout.toString());
}

describe('mailbox send → smtp-sink', () => {
  let dumpDir = '';
  let sink: SmtpSinkHandle;
  let plain: SmtpSinkHandle;
  const sinks: SmtpSinkHandle[] = [];

  beforeAll(async () => {
    requirePeers('smtp-sink');
    dumpDir = await mkdtemp(join(tmpdir(), 'mailbox-send-sink-'));
    // smtp-sink writes its dumps as nobody, who must be able to walk into this directory.
    await chmod(dumpDir, 0o755);
    sink = await startSmtpSink({ dumpDir: join(dumpDir, 'default'), extraArgs: ['-h', 'sink.test'] });
    // -8: no 8BITMIME, so non-ASCII text must go quoted-printable.
    plain = await startSmtpSink({ dumpDir: join(dumpDir, 'no8bit'), extraArgs: ['-h', 'sink.test', '-8'] });
    sinks.push(sink, plain);
  });

  afterAll(async () => {
    await Promise.all(sinks.map((s) => s.stop()));
    if (dumpDir) await rm(dumpDir, { recursive: true, force: true });
  });

  test('a UTF-8 message with a display name arrives whole, 8bit, and parses cleanly', async () => {
    const { deps, stdout } = capture();
    const summary = await runSend(
      parseSendFlags({
        from: 'José Núñez <jose@example.org>',
        to: ['bob@example.net', 'Carol <carol@example.net>'],
        subject: 'Réunion de lundi — ordre du jour',
        body: 'Bonjour à tous,\n.\nune ligne avec un point\n',
        header: ['X-Test: e2e'],
        server: `127.0.0.1:${sink.port}`,
        timeout: '10',
      }),
      deps,
    );
    const reply = summary.results[0].reply!;
    expect(stdout.join('')).toBe(`sent ${summary.messageId} to 2 recipients via 127.0.0.1:${sink.port}: ${reply.code} ${reply.enhanced} ${reply.lines.join(' / ')}\n`);
    const [file] = await sink.completeDumps(1);
    const parsed = parseDump(await readFile(file));
    expect(parsed).toEqual({
      // smtp-sink offers no SIZE, so none is declared; it records the arguments after the colon.
      mail_args: '<jose@example.org> BODY=8BITMIME',
      rcpt_args: ['<bob@example.net>', '<carol@example.net>'],
      helo: 'client.test',
      subject: 'Réunion de lundi — ordre du jour',
      from: 'José Núñez <jose@example.org>',
      to: ['bob@example.net', 'carol@example.net'],
      message_id: summary.messageId,
      cte: '8bit',
      body: 'Bonjour à tous,\n.\nune ligne avec un point',
      defects: [],
    });
  });

  test('without 8BITMIME the text goes quoted-printable; the body comes from stdin', async () => {
    const { deps } = capture('Grüße aus Köln\n');
    await runSend(parseSendFlags({ from: 'a@example.org', to: 'b@example.net', subject: 'qp', server: `127.0.0.1:${plain.port}` }), deps);
    const [file] = await plain.completeDumps(1);
    const parsed = parseDump(await readFile(file));
    expect([parsed.cte, parsed.body, parsed.defects]).toEqual(['quoted-printable', 'Grüße aus Köln', []]);
    expect(parsed.mail_args).not.toContain('BODY=');
  });

  test('through cac: repeated --to, -v prints the dialogue to stderr', async () => {
    const { deps, stdout, stderr } = capture();
    const cli = cac('mailbox');
    register(cli, deps);
    cli.help();
    cli.version('0.0.0');
    const before = (await sink.dumps()).length;
    cli.parse(['bun', 'mailbox', 'send', '--from', 'a@example.org', '--to', 'b@example.net', '--to', 'c@example.net', '--subject', 'cac', '--body', 'hi', '--server', `127.0.0.1:${sink.port}`, '-v'], { run: false });
    await cli.runMatchedCommand();
    expect(stdout.join('')).toMatch(/^sent <.+@example\.org> to 2 recipients via /);
    const transcript = stderr.join('');
    expect(transcript).toContain(`# connecting to 127.0.0.1:${sink.port}\n`);
    expect(transcript).toMatch(/^S: 220 sink\.test/m);
    expect(transcript).toContain('C: RCPT TO:<c@example.net>\n');
    expect(transcript).toMatch(/^C: \[message: \d+ lines, \d+ bytes\]$/m);
    expect(transcript).toMatch(/^S: 221 /m);
    await sink.completeDumps(before + 1);
  });

  test('rejected recipients fail at RCPT with the server reply, exit 67 (as sendmail for unknown users)', async () => {
    const rejecting = await startSmtpSink({ extraArgs: ['-f', 'RCPT'] });
    sinks.push(rejecting);
    const { deps } = capture();
    const error = await runSend(parseSendFlags({ from: 'a@example.org', to: 'b@example.net', body: 'x', server: `127.0.0.1:${rejecting.port}` }), deps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientFailure);
    expect(describeError(error)).toMatch(new RegExp(`^send via 127\\.0\\.0\\.1:${rejecting.port} failed: recipient rejected at RCPT: 5\\d\\d 5\\.\\d\\.\\d `));
    expect(exitCodeFor(error)).toBe(EXIT.noUser);
  });

  test('a server that is not there: connect failure naming host:port, exit 75', async () => {
    const gone = await startSmtpSink();
    await gone.stop();
    const { deps } = capture();
    const error = await runSend(parseSendFlags({ from: 'a@example.org', to: 'b@example.net', body: 'x', server: `127.0.0.1:${gone.port}` }), deps).catch((e: unknown) => e);
    expect(describeError(error)).toBe(`cannot connect to 127.0.0.1:${gone.port}: connection refused (at connect)`);
    expect(exitCodeFor(error)).toBe(EXIT.tempFail);
  });
});
