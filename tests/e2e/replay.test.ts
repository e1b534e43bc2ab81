/**
 * `mailbox replay` end to end: mail recorded by one `dist/mailbox serve` (smtplib and raw BDAT)
 * is replayed into a second serve, Postfix's smtp-sink and aiosmtpd, and must arrive byte for
 * byte (trace headers aside): dot-leading lines, 8-bit text, a BDAT-recorded message. Then damaged
 * and truncated segments, --expect against a server that refuses one recipient, --failed-out and
 * its replay, mbox and Maildir files written by Python's mailbox module, --data --id, --json,
 * --transcript, and that no source file ever changes. All peers on loopback, ephemeral ports.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dotUnstuff } from '../../src/core/data.ts';
import { scanSegmentFile } from '../../src/replay/segment-reader.ts';
import { startSmtpSink, type SmtpSinkHandle } from '../helpers/postfix.ts';
import { startAiosmtpd, type AiosmtpdPeer } from '../helpers/send-peers.ts';
import {
  cleanupServesAfterAll,
  MAILBOX_BIN,
  makeTempDir,
  runCommand,
  runPython,
  smtpDialogue,
  startServe,
  type ServeHandle,
  type TempDir,
} from './harness.ts';

cleanupServesAfterAll();

interface Sent {
  readonly from: string;
  readonly to: readonly string[];
  /** The message as the client meant it (CRLF lines, not dot-stuffed). */
  readonly bytes: Buffer;
}

const CORPUS: Sent[] = [
  {
    from: 'alice@example.test',
    to: ['bob@example.test', 'carol@example.test'],
    bytes: Buffer.from('From: alice@example.test\r\nTo: bob@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nafter a line of one dot\r\n'),
  },
  {
    from: 'alice@example.test',
    to: ['dave@example.test'],
    bytes: Buffer.from('Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÉté à Zürich — ünïcödé, 日本語\r\n', 'utf8'),
  },
  {
    from: 'erin@example.test',
    to: ['frank@example.test'],
    bytes: Buffer.from('Subject: chunked\r\n\r\n.a dot line sent with BDAT\r\nsecond line\r\n'),
  },
  {
    from: 'alice@example.test',
    to: ['grace@example.test', 'mallory@other.test'],
    bytes: Buffer.from('Subject: two domains\r\n\r\nfor grace, and for mallory elsewhere\r\n'),
  },
];
/** The third message goes to the recorder in two BDAT chunks (RFC 3030). */
const BDAT_INDEX = 2;

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Removes leading trace fields: Received (every hop) and smtp-sink's X-Client-…/X-Helo/X-Mail/X-Rcpt-Args. */
function withoutTrace(text: string): string {
  const lines = text.split(/(?<=\n)/);
  let i = 0;
  while (i < lines.length && /^(?:Received|X-Client-Addr|X-Client-Proto|X-Helo-Args|X-Mail-Args|X-Rcpt-Args):/i.test(lines[i])) {
    i++;
    while (i < lines.length && /^[ \t]/.test(lines[i])) i++;
  }
  return lines.slice(i).join('');
}

const lf = (b: Uint8Array | string) => Buffer.from(b).toString('utf8').replace(/\r\n/g, '\n');

/** Messages in a serve's spool, oldest first: envelope and the message without trace fields. */
function spoolMessages(dataDir: string): { from: string; to: string[]; text: string }[] {
  const dir = join(dataDir, 'segments');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.smtp'))
    .sort()
    .flatMap((n) => [...scanSegmentFile(join(dir, n))])
    .flatMap((e) => (e.kind === 'record'
      ? [{
          from: e.record.envelope.sender === null ? '' : `${e.record.envelope.sender.local}@${e.record.envelope.sender.domain}`,
          to: e.record.envelope.recipients.map((r) => `${r.mailbox.local}@${r.mailbox.domain}`),
          text: withoutTrace(Buffer.from(dotUnstuff(e.stuffed)).toString('utf8')),
        }]
      : []));
}

async function replay(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCommand([MAILBOX_BIN, 'replay', ...args], { timeoutMs: 30_000 });
}

const SMTPLIB = String.raw`
import base64, json, smtplib, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP('127.0.0.1', port, timeout=30)
for m in json.load(open(path)):
    body = base64.b64decode(m['b64'])
    s.sendmail(m['from'], m['to'], body, mail_options=['BODY=8BITMIME'] if any(b > 127 for b in body) else [])
s.quit()
`;

/** Sends one message in two BDAT chunks, as a client that offers no DATA would. */
async function sendWithBdat(server: ServeHandle, m: Sent): Promise<void> {
  const cut = 11;
  const result = await smtpDialogue(server.host, server.port, [
    'EHLO bdat.client.test\r\n',
    `MAIL FROM:<${m.from}>\r\n`,
    ...m.to.map((t) => `RCPT TO:<${t}>\r\n`),
    Buffer.concat([Buffer.from(`BDAT ${cut}\r\n`), m.bytes.subarray(0, cut)]),
    Buffer.concat([Buffer.from(`BDAT ${m.bytes.length - cut} LAST\r\n`), m.bytes.subarray(cut)]),
    'QUIT\r\n',
  ]);
  expect(result.replies.slice(0, -1).every((r) => r !== null && r.startsWith('250'))).toBe(true);
}

describe('mailbox replay', () => {
  let tmp: TempDir;
  let recorder: ServeHandle;
  let segment: string;
  let recordedIds: string[] = [];

  beforeAll(async () => {
    tmp = await makeTempDir('mailbox-replay-e2e-');
    recorder = await startServe();
    const json = join(tmp.path, 'corpus.json');
    const send = (ms: Sent[]) => {
      writeFileSync(json, JSON.stringify(ms.map((m) => ({ from: m.from, to: m.to, b64: m.bytes.toString('base64') }))));
      return runPython(SMTPLIB, [String(recorder.port), json]);
    };
    expect((await send(CORPUS.slice(0, BDAT_INDEX))).code).toBe(0);
    await sendWithBdat(recorder, CORPUS[BDAT_INDEX]);
    expect((await send(CORPUS.slice(BDAT_INDEX + 1))).code).toBe(0);
    const segments = readdirSync(join(recorder.dataDir, 'segments')).filter((n) => n.endsWith('.smtp'));
    expect(segments).toHaveLength(1);
    segment = join(recorder.dataDir, 'segments', segments[0]);
    recordedIds = [...scanSegmentFile(segment)].flatMap((e) => (e.kind === 'record' ? [e.record.id] : []));
    expect(recordedIds).toHaveLength(CORPUS.length);
  });

  afterAll(async () => {
    await tmp?.remove();
  });

  test('the recording holds the corpus as sent (the reference for what follows)', () => {
    expect(spoolMessages(recorder.dataDir).map((m) => m.text)).toEqual(CORPUS.map((m) => m.bytes.toString('utf8')));
  });

  test('into a second serve (BDAT there, as it offers CHUNKING): same envelopes, same bytes; the source unchanged', async () => {
    const target = await startServe();
    const before = sha(segment);
    const r = await replay([segment, '--server', `127.0.0.1:${target.port}`, '-v']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('sent '))).toHaveLength(CORPUS.length);
    expect(r.stdout).toContain(`replayed ${CORPUS.length} transactions to 127.0.0.1:${target.port}`);
    expect(r.stdout).toMatch(/: 4 sent, 0 temporarily failed, 0 permanently failed/);
    const got = spoolMessages(target.dataDir);
    expect(got).toEqual(CORPUS.map((m) => ({ from: m.from, to: [...m.to], text: m.bytes.toString('utf8') })));
    expect(sha(segment)).toBe(before);
  });

  test('into Postfix smtp-sink (DATA, pipelined): every message arrives whole', async () => {
    requirePeers('smtp-sink');
    const sink: SmtpSinkHandle = await startSmtpSink({ dumpDir: join(tmp.path, 'sink') });
    try {
      const r = await replay([recorder.dataDir, '--server', `127.0.0.1:${sink.port}`, '-c', '2']);
      expect(r.code).toBe(0);
      const dumps = (await sink.completeDumps(CORPUS.length)).map((f) => readFileSync(f, 'utf8'));
      const texts = dumps.map((d) => withoutTrace(d).slice(0, -1)).sort();
      expect(texts).toEqual(CORPUS.map((m) => lf(m.bytes)).sort());
      const rcpts = dumps.map((d) => [...d.matchAll(/^X-Rcpt-Args: <(.*)>/gm)].map((x) => x[1]).join(',')).sort();
      expect(rcpts).toEqual(CORPUS.map((m) => m.to.join(',')).sort());
    } finally {
      await sink.stop();
    }
  });

  test('into aiosmtpd (lock-step, no PIPELINING): every message arrives whole', async () => {
    const dir = join(tmp.path, 'aiosmtpd');
    mkdirSync(dir);
    const peer: AiosmtpdPeer = await startAiosmtpd({ dir });
    try {
      const r = await replay([segment, '--server', `127.0.0.1:${peer.port}`, '--tls', 'off']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const got = await peer.messages();
      expect(got.map((m) => withoutTrace(Buffer.from(m.bytes).toString('utf8')))).toEqual(CORPUS.map((m) => m.bytes.toString('utf8')));
      expect(got.map((m) => m.meta.rcpt_tos)).toEqual(CORPUS.map((m) => [...m.to]));
    } finally {
      await peer.stop();
    }
  });

  test('a damaged checksum and a truncated segment: the intact transactions replay, the bad are reported with offset and reason', async () => {
    const records = [...scanSegmentFile(segment)].flatMap((e) => (e.kind === 'record' ? [e] : []));
    const damaged = join(tmp.path, 'damaged.smtp');
    copyFileSync(segment, damaged);
    const bytes = readFileSync(damaged);
    const second = records[1];
    bytes[second.record.bodyOffset + 5] ^= 0x01;
    writeFileSync(damaged, bytes);
    const truncated = join(tmp.path, 'truncated.smtp');
    copyFileSync(segment, truncated);
    const last = records[records.length - 1];
    truncateSync(truncated, last.offset + 40);
    const hashes = [sha(damaged), sha(truncated)];

    const target = await startServe();
    const r = await replay([damaged, truncated, '--server', `127.0.0.1:${target.port}`]);
    expect(r.code).toBe(65);
    const stderr = r.stderr.trim().split('\n');
    expect(stderr).toHaveLength(2);
    expect(stderr[0]).toMatch(new RegExp(`damaged\\.smtp at byte ${second.offset} \\(${second.record.bytes} bytes\\): checksum mismatch \\(stored [0-9a-f]{8}, computed [0-9a-f]{8}\\); skipped$`));
    expect(stderr[1]).toMatch(new RegExp(`truncated\\.smtp at byte ${last.offset} \\(40 bytes\\): truncated: the file ends inside this record; skipped$`));
    expect(r.stdout).toContain('2 damaged or unusable inputs skipped');
    const expected = [0, 2, 3, 0, 1, 2].map((i) => CORPUS[i].bytes.toString('utf8'));
    expect(spoolMessages(target.dataDir).map((m) => m.text)).toEqual(expected);
    expect([sha(damaged), sha(truncated)]).toEqual(hashes);
  });

  test('--expect 250 against a server refusing one recipient: exit 1, the reply quoted; --failed-out then replays only that', async () => {
    const strict = await startServe({ args: ['--domain', 'example.test'] });
    const failedOut = join(tmp.path, 'failed.smtp');
    const r = await replay([segment, '--server', `127.0.0.1:${strict.port}`, '--expect', '250', '--failed-out', failedOut]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^partial .* <alice@example\.test> → <grace@example\.test>,<mallory@other\.test>: 250 .*; refused <mallory@other\.test>: 550 5\.7\.1 /m);
    expect(r.stdout).toMatch(/differs from --expect: RCPT TO:<mallory@other\.test>: 550 5\.7\.1 /);
    expect(r.stdout).toContain('1 transaction differed from --expect 250');
    expect(r.stdout).toContain(`1 failed transaction written to ${failedOut}`);
    // The others arrived; the refused recipient did not.
    expect(spoolMessages(strict.dataDir).map((m) => m.to)).toEqual([['bob@example.test', 'carol@example.test'], ['dave@example.test'], ['frank@example.test'], ['grace@example.test']]);

    const retry = await startServe();
    const again = await replay([failedOut, '--server', `127.0.0.1:${retry.port}`, '--expect', '250']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('every reply matched --expect 250');
    expect(spoolMessages(retry.dataDir)).toEqual([{ from: 'alice@example.test', to: ['mallory@other.test'], text: CORPUS[3].bytes.toString('utf8') }]);

    // --failed-out never overwrites.
    const twice = await replay([segment, '--server', `127.0.0.1:${retry.port}`, '--failed-out', failedOut]);
    expect(twice.code).toBe(64);
    expect(twice.stderr).toContain('the file exists');
  });

  test('--data DIR --id ID replays one message from a running serve\'s spool, read-only; --json and --transcript', async () => {
    const target = await startServe();
    const transcript = join(tmp.path, 'replay.transcript');
    const before = sha(segment);
    const r = await replay(['--data', recorder.dataDir, '--id', recordedIds[BDAT_INDEX], '--server', `127.0.0.1:${target.port}`, '--json', '--transcript', transcript, '--rewrite-domain', 'example.test=staging.test']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(['transaction', 'summary']);
    expect(lines[0]).toMatchObject({ id: recordedIds[BDAT_INDEX], verdict: 'sent', sender: 'erin@staging.test', recipients: [{ address: 'frank@staging.test', accepted: true }] });
    expect(lines[1]).toMatchObject({ transactions: 1, sent: 1, tempFailed: 0, permFailed: 0 });
    expect(spoolMessages(target.dataDir)).toEqual([{ from: 'erin@staging.test', to: ['frank@staging.test'], text: CORPUS[BDAT_INDEX].bytes.toString('utf8') }]);
    const dialogue = readFileSync(transcript, 'utf8');
    expect(dialogue).toStartWith('# connection 1\n# connecting to');
    expect(dialogue).toContain('C: MAIL FROM:<erin@staging.test>');
    expect(dialogue).toMatch(/^S: 250 2\.0\.0 /m);
    expect(sha(segment)).toBe(before);
  });

  test('mbox and Maildir written by Python\'s mailbox module, and an .eml with --from/--to', async () => {
    const messages = [
      'From: Zoe <zoe@example.test>\nTo: yann@example.test\nCc: xavier@example.test\nSubject: first\n\nFrom the start of a line\n.a dot line\n',
      'From: zoe@example.test\nTo: walter@example.test\nSubject: =?utf-8?q?caf=C3=A9?=\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nCafé crème\n',
    ];
    const mbox = join(tmp.path, 'box.mbox');
    const maildir = join(tmp.path, 'Maildir');
    const script = String.raw`
import json, mailbox, sys
msgs = [m.encode('utf-8') for m in json.loads(sys.argv[3])]
box = mailbox.mbox(sys.argv[1])
for m in msgs: box.add(m)
box.flush(); box.close()
md = mailbox.Maildir(sys.argv[2], create=True)
for m in msgs: md.add(m)
`;
    const py = await runPython(script, [mbox, maildir, JSON.stringify(messages)]);
    expect(py.stderr).toBe('');
    // Python escapes the body's "From " line in the mbox (mboxo); replay must restore it.
    expect(readFileSync(mbox, 'utf8')).toContain('\n>From the start');

    for (const source of [mbox, maildir]) {
      const target = await startServe();
      const r = await replay([source, '--server', `127.0.0.1:${target.port}`]);
      expect(r.code).toBe(0);
      const got = spoolMessages(target.dataDir);
      const sorted = (xs: { text: string }[]) => xs.map((x) => lf(x.text)).sort();
      expect(sorted(got)).toEqual([...messages].sort());
      expect(got.map((m) => `${m.from} → ${m.to.join(',')}`).sort()).toEqual(['zoe@example.test → walter@example.test', 'zoe@example.test → yann@example.test,xavier@example.test']);
    }

    const eml = join(tmp.path, 'note.eml');
    writeFileSync(eml, 'Subject: no envelope in here\n\nhello\n');
    const target = await startServe();
    const bare = await replay([eml, '--server', `127.0.0.1:${target.port}`]);
    expect(bare.code).toBe(65);
    expect(bare.stderr).toContain('no sender: the header has no Return-Path or From (give --from)');
    const given = await replay([eml, '--server', `127.0.0.1:${target.port}`, '--from', 'ops@example.test', '--to', 'dev@example.test']);
    expect(given.code).toBe(0);
    expect(spoolMessages(target.dataDir)).toEqual([{ from: 'ops@example.test', to: ['dev@example.test'], text: 'Subject: no envelope in here\r\n\r\nhello\r\n' }]);
  });

  test('STARTTLS and AUTH with the flags send takes: the second serve records the user', async () => {
    const target = await startServe({ args: ['--auth-any'] });
    const r = await replay([segment, '--server', `127.0.0.1:${target.port}`, '--tls', 'starttls', '--insecure', '--user', 'replayer', '--password', 'secret', '--transcript', join(tmp.path, 'auth.transcript')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const records = [...scanSegmentFile(join(target.dataDir, 'segments', readdirSync(join(target.dataDir, 'segments')).find((n) => n.endsWith('.smtp'))!))];
    expect(records.map((e) => (e.kind === 'record' ? e.record.envelope.authUser : e.reason))).toEqual(CORPUS.map(() => 'replayer'));
    const dialogue = readFileSync(join(tmp.path, 'auth.transcript'), 'utf8');
    expect(dialogue).toContain('C: STARTTLS');
    expect(dialogue).toMatch(/^C: AUTH PLAIN <redacted>$/m);
    expect(dialogue).not.toContain('secret');
  });

  test('a server that cannot be reached: one line, exit 75, nothing read', async () => {
    const r = await replay([segment, '--server', '127.0.0.1:1']);
    expect(r.code).toBe(75);
    expect(r.stderr.trim().split('\n')).toEqual(['mailbox: cannot connect to 127.0.0.1:1: connection refused (at connect)']);
  });
});
