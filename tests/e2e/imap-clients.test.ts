// End to end: dist/mailbox serve's IMAP read by more real clients — fetchmail over IMAP into a
// local MDA, mutt in a terminal (tmux) reading a MIME message, imapflow (npm) idling (RFC 2177) —
// and each login's state kept apart: two users, two sessions of one user, a users-file name that
// reads several addresses (issue 13 §2).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { requirePeers } from '../helpers/capabilities.ts';
import { MAILBOX_BIN, cleanupServesAfterAll, fetchmailAll, listeningAddresses, makeTempDir, portOf, runCommand, runPython, sendWithSmtplib, startServe, type ServeHandle } from './harness.ts';

cleanupServesAfterAll();

const TMUX = '/usr/bin/tmux';
const PLAIN = 'From: app@sender.test\r\nTo: erin@x.test\r\nSubject: for fetchmail\r\nMessage-ID: <fetch@sender.test>\r\n\r\nfetched over IMAP\r\n.dot line\r\n';
/** multipart/mixed: a quoted-printable UTF-8 text part and a base64 attachment. */
const MIME = [
  'From: Reporter <app@sender.test>',
  'To: frank@x.test',
  'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= with a report',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Hallo, sch=C3=B6ne Gr=C3=BC=C3=9Fe aus dem Test.',
  '--b1',
  'Content-Type: application/octet-stream; name="report.bin"',
  'Content-Disposition: attachment; filename="report.bin"',
  'Content-Transfer-Encoding: base64',
  '',
  'AAECAwQFBgcICQ==',
  '--b1--',
  '',
].join('\r\n');

interface ImapServer extends ServeHandle {
  readonly imap: number;
}

async function startImapServe(args: string[] = []): Promise<ImapServer> {
  const server = await startServe({ args: ['--imap', '127.0.0.1:0', '--pop3', 'off', '--log', 'json', ...args] });
  const listening = await listeningAddresses(server);
  return Object.assign(server, { imap: portOf(listening.imap[0]) });
}

/** Runs an imaplib script with the IMAP port as I; it prints one JSON line. */
async function imaplib(port: number, body: string): Promise<any> {
  const code = `import imaplib, json, sys
I = int(sys.argv[1])
def login(user, password='any'):
    m = imaplib.IMAP4('127.0.0.1', I, timeout=20)
    m.login(user, password)
    return m
def text(data):
    return [d.decode('latin1') if isinstance(d, bytes) else [x.decode('latin1') for x in d] for d in data if d is not None]
${body}`;
  const r = await runPython(code, [String(port)], { timeoutMs: 60_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

function tmux(...args: string[]): string {
  const r = Bun.spawnSync([TMUX, ...args], { stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

describe('catch-all mode on loopback', () => {
  let server: ImapServer;
  const session = `mailbox-mutt-${process.pid}`;

  beforeAll(async () => {
    requirePeers('python3', 'fetchmail', 'mutt', 'tmux');
    server = await startImapServe();
    await sendWithSmtplib(server, 'app@sender.test', ['erin@x.test'], PLAIN);
    await sendWithSmtplib(server, 'app@sender.test', ['frank@x.test'], MIME);
  });
  afterAll(async () => {
    Bun.spawnSync([TMUX, 'kill-session', '-t', session], { stdout: 'ignore', stderr: 'ignore' });
    await server?.cleanup();
  });

  test('fetchmail over IMAP retrieves into a local MDA, then flags \\Deleted and expunges', async () => {
    const delivered = await fetchmailAll('imap', server.imap, 'erin@x.test');
    expect(delivered).toContain(`\n${PLAIN.replaceAll('\r\n', '\n')}`);
    const after = await imaplib(server.imap, `m = login('erin@x.test')\nprint(json.dumps({'exists': m.select('INBOX')[1][0].decode()}))`);
    expect(after.exists).toBe('0');
    expect(server.logs()).toContain('"event":"imap-expunged","user":"erin@x.test"');
  });

  test('mutt in tmux opens the INBOX over IMAP and reads a MIME message: decoded subject, text and the attachment', async () => {
    await using home = await makeTempDir();
    const muttrc = join(home.path, 'muttrc');
    writeFileSync(
      muttrc,
      [
        `set folder="imap://frank%40x.test@127.0.0.1:${server.imap}/"`,
        'set spoolfile="+INBOX"',
        'set imap_pass="any"',
        'set ssl_starttls=no',
        'set ssl_force_tls=no',
        'set header_cache=""',
        'set message_cachedir=""',
        'set charset="utf-8"',
        'set pager_stop=yes',
        'set mark_old=no',
        '',
      ].join('\n'),
    );
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', `env HOME=${home.path} LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen mutt -n -F ${muttrc}; sleep 60`);
    const waitFor = async (text: string): Promise<string> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const shown = tmux('capture-pane', '-p', '-t', session);
        if (shown.includes(text)) return shown;
        if (Date.now() > deadline) throw new Error(`mutt never showed ${JSON.stringify(text)}:\n${shown}`);
        await Bun.sleep(50);
      }
    };
    // The index: the subject decoded from its RFC 2047 words.
    await waitFor('Grüße with a report');
    tmux('send-keys', '-t', session, 'Enter');
    const pager = await waitFor('schöne Grüße aus dem Test.');
    expect(pager).toContain('report.bin');
    tmux('send-keys', '-t', session, 'q');
    await waitFor('Grüße with a report');
    tmux('send-keys', '-t', session, 'q');
    // mutt fetched BODY[]: the message is \Seen for frank, and for frank only.
    const flags = await imaplib(server.imap, `m = login('frank@x.test')\nm.select('INBOX')\nprint(json.dumps({'flags': text(m.fetch('1', '(FLAGS)')[1])}))`);
    expect(flags.flags[0]).toContain('\\Seen');
  });

  test('imapflow: IDLE sees a message sent by `mailbox send`; an expunge in one session of a login reaches the other, not another login', async () => {
    const client = (user: string) =>
      new ImapFlow({ host: '127.0.0.1', port: server.imap, secure: false, doSTARTTLS: false, auth: { user, pass: 'any' }, logger: false, emitLogs: false });
    const idler = client('gina@x.test');
    const other = client('gina@x.test');
    const henry = client('henry@x.test');
    try {
      for (const c of [idler, other, henry]) {
        await c.connect();
        await c.mailboxOpen('INBOX');
      }
      const events: { kind: string; at: number; value: unknown }[] = [];
      idler.on('exists', (data) => events.push({ kind: 'exists', at: performance.now(), value: data.count }));
      idler.on('expunge', (data) => events.push({ kind: 'expunge', at: performance.now(), value: data.seq }));
      const idling = idler.idle();
      await Bun.sleep(100);
      const sendAt = performance.now();
      const sent = await runCommand([MAILBOX_BIN, 'send', '--server', `127.0.0.1:${server.port}`, '--from', 'app@sender.test', '--to', 'gina@x.test,henry@x.test', '--subject', 'idle', '--body', 'pushed'], { timeoutMs: 60_000 });
      expect(sent.code).toBe(0);
      const sentAt = performance.now();
      const until = async (kind: string) => {
        const deadline = Date.now() + 10_000;
        while (!events.some((e) => e.kind === kind) && Date.now() < deadline) await Bun.sleep(10);
        return events.find((e) => e.kind === kind);
      };
      const exists = await until('exists');
      expect(exists?.value).toBe(1);
      console.log(`imapflow IDLE: EXISTS ${Math.round(exists!.at - sendAt)} ms after \`mailbox send\` started (the send took ${Math.round(sentAt - sendAt)} ms)`);
      // The other session of gina deletes the message; henry's copy stays.
      await other.noop();
      expect(await other.messageFlagsAdd('1:*', ['\\Deleted'], { uid: false })).toBe(true);
      await other.messageDelete('1:*');
      const expunged = await until('expunge');
      expect(expunged?.value).toBe(1);
      await henry.noop();
      const left = await henry.search({ all: true }, { uid: true });
      expect(left).toEqual([1]);
      const henryFlags = await henry.fetchOne('1', { flags: true, uid: true });
      expect(henryFlags && [...(henryFlags.flags ?? [])]).not.toContain('\\Deleted');
      void idling;
    } finally {
      for (const c of [idler, other, henry]) await c.logout().catch(() => c.close());
    }
  });
});

describe('with --domain and a users file', () => {
  test('a users-file name reads the addresses its line lists; each login\'s expunge is its own until every reader of an address expunged', async () => {
    requirePeers('python3');
    await using dir = await makeTempDir();
    const users = join(dir.path, 'users');
    const hash = await Bun.password.hash('pw');
    writeFileSync(users, `team:${hash} sales@x.test support@x.test\nalice:${hash}\nsales@x.test:${hash}\n`);
    const server = await startImapServe(['--domain', 'x.test', '--users', users, '--allow-insecure-auth']);
    try {
      await sendWithSmtplib(server, 'app@sender.test', ['sales@x.test'], 'Subject: to sales\r\n\r\nsales\r\n');
      await sendWithSmtplib(server, 'app@sender.test', ['support@x.test', 'alice@x.test'], 'Subject: to support and alice\r\n\r\nboth\r\n');
      const out = await imaplib(
        server.imap,
        `def subjects(m):
    return [x[1].decode().strip() for x in m.fetch('1:*', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')[1] if isinstance(x, tuple)]
team = login('team', 'pw')
team_exists = team.select('INBOX')[1][0].decode()
team_subjects = subjects(team)
alice = login('alice', 'pw')
alice_exists = alice.select('INBOX')[1][0].decode()
sales = login('sales@x.test', 'pw')
sales_exists = sales.select('INBOX')[1][0].decode()
team.store('1:2', '+FLAGS', '\\\\Deleted')
team.expunge()
alice.noop()
sales.noop()
after = {'team': login('team', 'pw').select('INBOX')[1][0].decode(), 'alice': alice.select('INBOX')[1][0].decode(), 'sales': sales.select('INBOX')[1][0].decode()}
sales.store('1', '+FLAGS', '\\\\Deleted')
sales.expunge()
refused = False
try:
    login('alice', 'wrong')
except imaplib.IMAP4.error:
    refused = True
print(json.dumps({'team_exists': team_exists, 'team_subjects': team_subjects, 'alice_exists': alice_exists, 'sales_exists': sales_exists, 'after': after, 'refused': refused}))`,
      );
      expect(out.team_exists).toBe('2');
      expect(out.team_subjects).toEqual(['Subject: to sales', 'Subject: to support and alice']);
      expect(out.alice_exists).toBe('1');
      expect(out.sales_exists).toBe('1');
      // The team's expunge is the team's: alice and the login sales@ still have theirs.
      expect(out.after).toEqual({ team: '0', alice: '1', sales: '1' });
      expect(out.refused).toBe(true);
      expect(server.logs()).toContain('"event":"imap-expunged","user":"sales@x.test"');
    } finally {
      await server.cleanup();
    }
  }, 60_000);
});

test('the connection caps count SMTP, POP3 and IMAP connections together', async () => {
  const server = await startServe({ args: ['--imap', '127.0.0.1:0', '--pop3', '127.0.0.1:0', '--max-connections', '2', '--log', 'json'] });
  try {
    const listening = await listeningAddresses(server);
    const greeting = (port: number) =>
      new Promise<{ socket: Socket; line: string }>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('error', reject);
        socket.once('data', (data) => resolve({ socket, line: data.toString('latin1').trimEnd() }));
      });
    const smtp = await greeting(server.port);
    const imap = await greeting(portOf(listening.imap[0]));
    expect(smtp.line).toStartWith('220 ');
    expect(imap.line).toStartWith('* OK ');
    // Two are open, one per protocol: the third is refused whatever it speaks.
    const pop3 = await greeting(portOf(listening.pop3[0]));
    expect(pop3.line).toStartWith('-ERR ');
    const imap2 = await greeting(portOf(listening.imap[0]));
    expect(imap2.line).toStartWith('* BYE ');
    for (const c of [smtp, imap, pop3, imap2]) c.socket.destroy();
  } finally {
    await server.cleanup();
  }
});

test('a deletion through the HTTP API reaches an idling IMAP session as EXPUNGE (RFC 3501 §7.4.1); the Mailpit read mark is not \\Seen', async () => {
  const server = await startServe({ args: ['--imap', '127.0.0.1:0', '--pop3', 'off', '--http', '127.0.0.1:0', '--log', 'json'] });
  const client = new ImapFlow({ host: '127.0.0.1', port: portOf((await listeningAddresses(server)).imap[0]), secure: false, doSTARTTLS: false, auth: { user: 'ida@x.test', pass: 'any' }, logger: false, emitLogs: false });
  try {
    const http = `http://${(await listeningAddresses(server)).http[0]}`;
    await sendWithSmtplib(server, 'app@sender.test', ['ida@x.test'], 'Subject: one\r\n\r\nfirst\r\n');
    await sendWithSmtplib(server, 'app@sender.test', ['ida@x.test'], 'Subject: two\r\n\r\nsecond\r\n');
    const ids = async (): Promise<{ ID: string; Subject: string }[]> => {
      for (let i = 0; i < 100; i++) {
        const list = (await (await fetch(`${http}/api/v1/messages`)).json()) as { messages: { ID: string; Subject: string }[] };
        if (list.messages.length === 2) return list.messages;
        await Bun.sleep(50);
      }
      throw new Error('the API never listed both messages');
    };
    const messages = await ids();
    await client.connect();
    await client.mailboxOpen('INBOX');
    // Read in the web UI: the API's read mark is not this login's \Seen.
    expect((await fetch(`${http}/api/v1/messages`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ IDs: messages.map((m) => m.ID), Read: true }) })).status).toBe(200);
    const flags = await client.fetchOne('1:2', { flags: true });
    expect(flags && [...(flags.flags ?? [])]).not.toContain('\\Seen');
    const expunged: number[] = [];
    client.on('expunge', (data) => expunged.push(data.seq ?? -1));
    void client.idle();
    await Bun.sleep(100);
    const one = messages.find((m) => m.Subject === 'one')!;
    expect((await fetch(`${http}/api/v1/messages`, { method: 'DELETE', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ IDs: [one.ID] }) })).status).toBe(200);
    const deadline = Date.now() + 10_000;
    while (expunged.length === 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(expunged).toEqual([1]);
  } finally {
    await client.logout().catch(() => client.close());
    await server.cleanup();
  }
});
