// RFC 3030 end to end against dist/mailbox: BDAT chunks from 1 octet to 5 MB, BDAT 0 LAST,
// BDAT after a refused RCPT, and BDAT followed by DATA (refused). What BDAT delivered must come
// back from the spool byte for byte.
import { expect, test } from 'bun:test';
import { openSpool } from '../../src/spool/spool.ts';
import { cleanupServesAfterAll, smtpDialogue, startServe } from './harness.ts';

cleanupServesAfterAll();

const quietLog = { info() {}, warn() {}, error() {} };

function bdat(chunk: Uint8Array, last = false): Uint8Array {
  const head = new TextEncoder().encode(`BDAT ${chunk.length}${last ? ' LAST' : ''}\r\n`);
  const out = new Uint8Array(head.length + chunk.length);
  out.set(head);
  out.set(chunk, head.length);
  return out;
}

const text = (s: string) => new TextEncoder().encode(s);

test('BDAT chunks of 1 octet up to 5 MB arrive whole; 0 LAST ends; mixing and bad sequences are refused', async () => {
  const server = await startServe();
  const line = `${'0123456789'.repeat(9)}\r\n`;
  const big = text(line.repeat(Math.ceil((5 * 1024 * 1024) / line.length)));
  const header = text('Subject: chunked\r\n.leading dot stays\r\n\r\n');

  const d = await smtpDialogue(
    server.host,
    server.port,
    [
      'EHLO client.test\r\n',
      'MAIL FROM:<a@client.test>\r\n',
      'RCPT TO:<b@mailbox.test>\r\n',
      // Header one octet per chunk.
      ...Array.from(header, (b) => ({ send: bdat(new Uint8Array([b])), replies: 1 })),
      { send: bdat(big), replies: 1 },
      { send: bdat(new Uint8Array(0), true), replies: 1 },
      // BDAT after a refused RCPT: the chunk is read, then 503 (no valid recipients).
      'MAIL FROM:<a@client.test>\r\n',
      'RCPT TO:<not an address>\r\n',
      { send: bdat(text('ignored\r\n'), true), replies: 1 },
      'RSET\r\n',
      // BDAT then DATA in one transaction: DATA is refused.
      'MAIL FROM:<a@client.test>\r\n',
      'RCPT TO:<b@mailbox.test>\r\n',
      { send: bdat(text('part\r\n')), replies: 1 },
      'DATA\r\n',
      'QUIT\r\n',
    ],
    { replyTimeoutMs: 20_000 },
  );
  const replies = d.replies.map((r) => r ?? '(none)');
  expect(replies[0]).toContain('250-CHUNKING');
  const chunkReplies = replies.slice(3, 3 + header.length);
  expect(chunkReplies.every((r, i) => r.startsWith(`250 2.0.0 ${i + 1} octets received`))).toBe(true);
  expect(replies[3 + header.length]).toStartWith(`250 2.0.0 ${header.length + big.length} octets received`);
  const queued = /^250 2\.0\.0 OK queued as (\S+)/.exec(replies[4 + header.length]);
  expect(queued).not.toBeNull();
  const rest = replies.slice(5 + header.length);
  expect(rest[0]).toStartWith('250');
  expect(rest[1]).toStartWith('501 5.1.3');
  expect(rest[2]).toStartWith('503 5.5.1');
  expect(rest[3]).toStartWith('250');
  expect(rest[4]).toStartWith('250');
  expect(rest[5]).toStartWith('250');
  expect(rest[6]).toStartWith('250 2.0.0 6 octets received');
  expect(rest[7]).toStartWith('503 5.5.1');
  expect(rest[8]).toStartWith('221');

  expect((await server.stop()).exitCode).toBe(0);
  const spool = await openSpool({ dir: server.dataDir, hostname: 'test', now: Date.now, log: quietLog });
  try {
    expect(spool.list().length).toBe(1);
    const stored = await spool.readMessage(queued![1]);
    const expected = new Uint8Array(header.length + big.length);
    expected.set(header);
    expected.set(big, header.length);
    const body = stored.subarray(stored.length - expected.length);
    expect(Buffer.from(body).equals(Buffer.from(expected))).toBe(true);
    expect(new TextDecoder().decode(stored.subarray(0, 10))).toBe('Received: ');
  } finally {
    await spool.close();
    await server.cleanup();
  }
}, 60_000);
