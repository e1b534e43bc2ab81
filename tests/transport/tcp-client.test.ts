/**
 * The TCP client adapter against tiny scripted SMTP servers on ephemeral loopback ports:
 * a Bun.listen server for plain SMTP, and node:net + tls.TLSSocket for STARTTLS (BUN.md §1).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { requirePeers } from '../helpers/capabilities.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket, createSecureContext, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Socket, TCPSocketListener } from 'bun';
import type { OutgoingTransaction } from '../../src/core/client-session.ts';
import { ClientFailure } from '../../src/core/errors.ts';
import { renderTranscript, type TranscriptEntry } from '../../src/core/transcript.ts';
import { formatPeer, openSmtpClient } from '../../src/transport/tcp-client.ts';
import { findFreePort } from '../helpers/ports.ts';
import { mailbox } from '../helpers/mailbox.ts';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

function tx(to: string[], message = 'Subject: hi\n\n.dot line\nbody\n'): OutgoingTransaction {
  return { sender: mailbox('alice@example.org'), recipients: to.map(mailbox), message: ENCODER.encode(message) };
}

interface ScriptOptions {
  greeting?: string;
  keywords?: string[];
  /** Recipients answered with 550. */
  reject?: string[];
  /** Stop answering after this verb (the client must time out). */
  silentAfter?: string;
  /** Close the connection when this verb arrives. */
  closeOn?: string;
}

interface ScriptedServer {
  port: number;
  /** Command lines received, per connection. */
  sessions: string[][];
  /** Messages received (dot-unstuffed, CRLF kept). */
  messages: string[];
  /** Bytes of each read, to see pipelined groups. */
  reads: string[];
  stop(): void;
}

/** A small SMTP server driven by a script; enough to exercise the client, nothing more. */
function startScriptedServer(options: ScriptOptions = {}): ScriptedServer {
  const sessions: string[][] = [];
  const messages: string[] = [];
  const reads: string[] = [];
  interface Conn {
    buffer: string;
    inData: boolean;
    lines: string[];
    silent: boolean;
    accepted: number;
  }
  const keywords = options.keywords ?? ['PIPELINING', 'SIZE 10000000', '8BITMIME', 'ENHANCEDSTATUSCODES'];
  const reply = (conn: Conn, verb: string, arg: string): string => {
    switch (verb) {
      case 'EHLO':
        return ['mx.test greets you', ...keywords].map((l, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
      case 'HELO':
        return '250 mx.test\r\n';
      case 'MAIL':
        return '250 2.1.0 Sender OK\r\n';
      case 'RCPT': {
        const address = /<([^>]*)>/.exec(arg)?.[1] ?? '';
        if (options.reject?.includes(address)) return '550 5.1.1 No such user\r\n';
        conn.accepted++;
        return '250 2.1.5 Recipient OK\r\n';
      }
      case 'DATA':
        return conn.accepted > 0 ? '354 Go ahead\r\n' : '554 5.5.1 No valid recipients\r\n';
      case 'RSET':
        conn.accepted = 0;
        return '250 2.0.0 Reset\r\n';
      case 'QUIT':
        return '221 2.0.0 Bye\r\n';
      default:
        return '500 5.5.2 What?\r\n';
    }
  };
  const server: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buffer: '', inData: false, lines: [], silent: false, accepted: 0 };
        sessions.push(socket.data.lines);
        socket.write(options.greeting ?? '220 mx.test ESMTP scripted\r\n');
      },
      data(socket: Socket<Conn>, bytes) {
        const conn = socket.data;
        const text = DECODER.decode(bytes);
        reads.push(text);
        conn.buffer += text;
        let out = '';
        for (;;) {
          if (conn.inData) {
            const end = conn.buffer.indexOf('\r\n.\r\n');
            const atStart = conn.buffer.startsWith('.\r\n');
            if (end < 0 && !atStart) break;
            const body = atStart ? '' : conn.buffer.slice(0, end + 2);
            conn.buffer = conn.buffer.slice(atStart ? 3 : end + 5);
            conn.inData = false;
            messages.push(body.replace(/^\./gm, ''));
            conn.accepted = 0;
            if (!conn.silent) out += `250 2.0.0 OK queued as M${messages.length}\r\n`;
            continue;
          }
          const lf = conn.buffer.indexOf('\r\n');
          if (lf < 0) break;
          const line = conn.buffer.slice(0, lf);
          conn.buffer = conn.buffer.slice(lf + 2);
          conn.lines.push(line);
          const verb = line.split(' ')[0].toUpperCase();
          if (verb === options.closeOn) {
            socket.end();
            return;
          }
          const answer = conn.silent ? '' : reply(conn, verb, line.slice(verb.length + 1));
          out += answer;
          if (verb === options.silentAfter) conn.silent = true;
          if (answer.startsWith('354')) conn.inData = true;
        }
        if (out) socket.write(out);
      },
    },
  });
  return { port: server.port, sessions, messages, reads, stop: () => server.stop(true) };
}

const servers: ScriptedServer[] = [];
function scripted(options?: ScriptOptions): ScriptedServer {
  const s = startScriptedServer(options);
  servers.push(s);
  return s;
}
afterAll(() => {
  for (const s of servers) s.stop();
});

// Replies come from this same process at once; the timeout only matters when a loaded machine stalls it.
const base = (port: number) => ({ host: '127.0.0.1', port, ehloName: 'client.test', timeoutMs: 10_000 });

describe('plain SMTP over TCP', () => {
  test('sends a message pipelined, per RFC 2920, and quits', async () => {
    const server = scripted();
    const client = await openSmtpClient(base(server.port));
    expect(client.peer).toBe(`127.0.0.1:${server.port}`);
    expect(client.extensions.has('PIPELINING')).toBe(true);
    const outcome = await client.send(tx(['bob@example.net', 'carol@example.net']));
    await client.quit();
    expect(outcome.ok).toBe(true);
    if (outcome.ok) expect(outcome.reply.lines[0]).toBe('OK queued as M1');
    expect(server.sessions[0]).toEqual([
      'EHLO client.test',
      'MAIL FROM:<alice@example.org> SIZE=32',
      'RCPT TO:<bob@example.net>',
      'RCPT TO:<carol@example.net>',
      'DATA',
      'QUIT',
    ]);
    // The group arrived in one read: the client wrote it in one write.
    expect(server.reads).toContain('MAIL FROM:<alice@example.org> SIZE=32\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n');
    expect(server.messages).toEqual(['Subject: hi\r\n\r\n.dot line\r\nbody\r\n']);
  });

  test('a rejected recipient is reported; the others get the message', async () => {
    const server = scripted({ reject: ['nobody@example.net'] });
    const client = await openSmtpClient(base(server.port));
    const outcome = await client.send(tx(['nobody@example.net', 'bob@example.net']));
    await client.quit();
    expect(outcome.ok).toBe(true);
    expect(outcome.recipients.map((r) => [r.mailbox.local, r.accepted, r.reply.code])).toEqual([
      ['nobody', false, 550],
      ['bob', true, 250],
    ]);
    expect(server.messages).toHaveLength(1);
  });

  test('all recipients rejected: failure at rcpt, RSET, and the next transaction still goes', async () => {
    const server = scripted({ reject: ['nobody@example.net'] });
    const client = await openSmtpClient(base(server.port));
    const [first, second] = await Promise.all([client.send(tx(['nobody@example.net'])), client.send(tx(['bob@example.net']))]);
    await client.quit();
    expect(first.ok).toBe(false);
    if (!first.ok) {
      expect(first.failure).toBeInstanceOf(ClientFailure);
      expect([first.failure.kind, first.failure.stage, first.failure.reply?.enhanced]).toEqual(['rejected', 'rcpt', '5.1.1']);
    }
    expect(second.ok).toBe(true);
    expect(server.sessions[0]).toContain('RSET');
    expect(server.messages).toHaveLength(1);
  });

  test('without PIPELINING the dialogue is lock-step', async () => {
    const server = scripted({ keywords: ['8BITMIME'] });
    const client = await openSmtpClient(base(server.port));
    expect((await client.send(tx(['bob@example.net']))).ok).toBe(true);
    await client.quit();
    expect(server.reads.some((r) => r.includes('MAIL') && r.includes('RCPT'))).toBe(false);
  });

  test('a large message arrives whole', async () => {
    const server = scripted();
    const client = await openSmtpClient(base(server.port));
    const body = Array.from({ length: 20_000 }, (_, i) => `${i % 7 === 0 ? '.' : ''}line ${i} ${'x'.repeat(40)}`).join('\n');
    const outcome = await client.send(tx(['bob@example.net'], `Subject: big\n\n${body}\n`));
    await client.quit();
    expect(outcome.ok).toBe(true);
    expect(server.messages[0]).toBe(`Subject: big\r\n\r\n${body.replaceAll('\n', '\r\n')}\r\n`);
  });

  test('the transcript callback sees every line, and renders', async () => {
    const server = scripted();
    const entries: TranscriptEntry[] = [];
    const client = await openSmtpClient({ ...base(server.port), onTranscript: (e) => entries.push(e) });
    await client.send(tx(['bob@example.net']));
    await client.quit();
    const lines = renderTranscript(entries);
    expect(lines[0]).toBe('S: 220 mx.test ESMTP scripted');
    expect(lines).toContain('C: RCPT TO:<bob@example.net>');
    expect(lines).toContain('C: [message: 4 lines, 33 bytes]');
    expect(lines.at(-1)).toBe('S: 221 2.0.0 Bye');
  });
});

describe('failures', () => {
  test('connection refused names host:port, kind and stage connect', async () => {
    const port = await findFreePort();
    const error = await openSmtpClient(base(port)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientFailure);
    const failure = error as ClientFailure;
    expect([failure.kind, failure.stage]).toEqual(['connect', 'connect']);
    expect(failure.message).toBe(`cannot connect to 127.0.0.1:${port}: connection refused`);
  });

  test('a 554 greeting rejects the open with the reply', async () => {
    const server = scripted({ greeting: '554 5.3.2 No service\r\n' });
    const error = (await openSmtpClient(base(server.port)).catch((e: unknown) => e)) as ClientFailure;
    expect([error.kind, error.stage, error.reply?.code]).toEqual(['rejected', 'greeting', 554]);
    // The QUIT reaches the server in its own time: wait for a line, then check it is the only one.
    for (const deadline = Date.now() + 10_000; (server.sessions[0]?.length ?? 0) === 0 && Date.now() < deadline;) await Bun.sleep(5);
    expect(server.sessions[0]).toEqual(['QUIT']);
  });

  test('a server that stops answering times out at the stage it went silent in', async () => {
    const server = scripted({ silentAfter: 'MAIL' });
    // Every reply before the silence must beat the timeout too: 1.5 s leaves a loaded machine room.
    const client = await openSmtpClient({ ...base(server.port), timeoutMs: 1500 });
    const started = performance.now();
    const outcome = await client.send(tx(['bob@example.net']));
    // It gave up by itself rather than hang; the bound is loose, as a loaded machine fires timers late.
    expect(performance.now() - started).toBeLessThan(15_000);
    // MAIL was answered, the RCPT was not.
    expect(!outcome.ok && [outcome.failure.kind, outcome.failure.stage, outcome.failure.message]).toEqual(['connect', 'rcpt', 'no reply within 1.5 s']);
    await client.quit();
  });

  test('a server that hangs up mid-transaction fails it', async () => {
    const server = scripted({ closeOn: 'DATA', keywords: [] });
    const client = await openSmtpClient(base(server.port));
    const outcome = await client.send(tx(['bob@example.net']));
    expect(!outcome.ok && [outcome.failure.kind, outcome.failure.stage]).toEqual(['connect', 'data']);
    await client.quit();
  });

  test('formatPeer brackets IPv6 addresses', () => {
    expect(formatPeer('::1', 25)).toBe('[::1]:25');
    expect(formatPeer('mx.example', 587)).toBe('mx.example:587');
  });
});

/** A throwaway self-signed certificate for "localhost", made with openssl. */
function makeCertificate(dir: string): { key: string; cert: string } {
  requirePeers('openssl');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

describe('TLS', () => {
  let dir = '';
  let pem: { key: string; cert: string } = { key: '', cert: '' };
  const netServers: (Server | TlsServer)[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailbox-tls-'));
    pem = makeCertificate(dir);
  });
  afterAll(() => {
    for (const s of netServers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Answers one line-based dialogue on a socket (plain or TLS); returns the lines it read. */
  function converse(socket: NetSocket | TLSSocket, keywords: string[], onStartTls?: () => void): string[] {
    const lines: string[] = [];
    let buffer = '';
    let inData = false;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (;;) {
        if (inData) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          buffer = buffer.slice(end + 5);
          inData = false;
          socket.write('250 2.0.0 queued\r\n');
          continue;
        }
        const lf = buffer.indexOf('\r\n');
        if (lf < 0) return;
        const line = buffer.slice(0, lf);
        buffer = buffer.slice(lf + 2);
        lines.push(line);
        const verb = line.split(' ')[0];
        if (verb === 'EHLO') socket.write(['mx.test', ...keywords].map((l, i, a) => `250${i === a.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
        else if (verb === 'STARTTLS' && onStartTls) {
          socket.removeAllListeners('data');
          socket.write('220 2.0.0 Ready to start TLS\r\n');
          onStartTls();
          return;
        } else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go\r\n');
        } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
        else socket.write('250 2.0.0 OK\r\n');
      }
    });
    return lines;
  }

  async function startTlsServer(): Promise<{ port: number; plain: string[][]; secure: string[][] }> {
    const plain: string[][] = [];
    const secure: string[][] = [];
    const context = createSecureContext({ key: pem.key, cert: pem.cert });
    const server = createServer((socket) => {
      socket.write('220 mx.test ESMTP\r\n');
      plain.push(
        converse(socket, ['PIPELINING', 'STARTTLS'], () => {
          const tls = new TLSSocket(socket, { isServer: true, secureContext: context });
          secure.push(converse(tls, ['PIPELINING', 'AUTH PLAIN']));
        }),
      );
    });
    netServers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as { port: number }).port, plain, secure };
  }

  test('STARTTLS upgrades, says EHLO again and sends over TLS (RFC 3207)', async () => {
    const server = await startTlsServer();
    const entries: TranscriptEntry[] = [];
    const client = await openSmtpClient({
      ...base(server.port),
      host: 'localhost',
      tls: 'starttls',
      tlsSettings: { ca: pem.cert },
      onTranscript: (e) => entries.push(e),
    });
    expect(client.tls).toBe(true);
    expect(client.extensions.has('AUTH')).toBe(true);
    expect(client.extensions.has('STARTTLS')).toBe(false);
    expect((await client.send(tx(['bob@example.net']))).ok).toBe(true);
    await client.quit();
    expect(server.plain[0]).toEqual(['EHLO client.test', 'STARTTLS']);
    expect(server.secure[0].slice(0, 2)).toEqual(['EHLO client.test', 'MAIL FROM:<alice@example.org>']);
    expect(renderTranscript(entries)).toContain('@ tls');
  });

  test('an untrusted certificate fails the STARTTLS handshake with kind tls', async () => {
    const server = await startTlsServer();
    const error = (await openSmtpClient({ ...base(server.port), host: 'localhost', tls: 'starttls' }).catch((e: unknown) => e)) as ClientFailure;
    expect(error).toBeInstanceOf(ClientFailure);
    expect([error.kind, error.stage]).toEqual(['tls', 'starttls']);
  });

  test('implicit TLS (RFC 8314) talks TLS from the first byte', async () => {
    const server = createTlsServer({ key: pem.key, cert: pem.cert }, (socket) => {
      socket.write('220 mx.test ESMTP\r\n');
      converse(socket, ['PIPELINING']);
    });
    netServers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client = await openSmtpClient({ ...base(port), host: 'localhost', tls: 'implicit', tlsSettings: { ca: pem.cert } });
    expect(client.tls).toBe(true);
    expect((await client.send(tx(['bob@example.net']))).ok).toBe(true);
    await client.quit();
  });
});
