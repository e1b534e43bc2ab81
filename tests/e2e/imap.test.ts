// End to end: IMAP (RFC 3501, STARTTLS, implicit TLS RFC 8314, IDLE RFC 2177) of dist/mailbox
// serve, read by real clients: Python's imaplib and curl imap:// and imaps://. Mail goes in over
// SMTP with smtplib and with `mailbox send`; every address is a mailbox.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { requirePeers } from '../helpers/capabilities.ts';
import { MAILBOX_BIN, SYSTEM_PYTHON, cleanupServesAfterAll, makeTempDir, runCommand, listeningAddresses, portOf, runPython, sendWithSmtplib, startServe, type ServeHandle, type TempDir } from './harness.ts';

cleanupServesAfterAll();

const PASSWORD = 'correct horse battery staple';
const MESSAGE =
  'From: App <app@sender.test>\r\nTo: bob@x.test, carol@x.test\r\nSubject: imap e2e\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <one@sender.test>\r\n\r\nfirst line\r\n.a line starting with a dot\r\nlast line\r\n';
const SECOND = 'From: app@sender.test\r\nTo: bob@x.test\r\nSubject: second\r\n\r\nonly for bob\r\n';

interface ImapServer extends ServeHandle {
  readonly imap: number;
  readonly imaps: number;
}

/** Starts serve with IMAP and implicit-TLS IMAP on ephemeral ports; the ports from the listening line. */
async function startImapServe(args: string[] = [], dataDir?: string): Promise<ImapServer> {
  const server = await startServe({ args: ['--imap', '127.0.0.1:0', '--imap-tls', '127.0.0.1:0', '--log', 'json', ...args], dataDir });
  const listening = await listeningAddresses(server);
  return Object.assign(server, { imap: portOf(listening.imap[0]), imaps: portOf(listening.imaps[0]) });
}

const PRELUDE = `import imaplib, ssl, json, sys, re
I, IS = int(sys.argv[1]), int(sys.argv[2])
def unverified():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def login(user, password='any'):
    m = imaplib.IMAP4('127.0.0.1', I, timeout=20)
    m.login(user, password)
    return m
def text(data):
    return [d.decode('latin1') if isinstance(d, bytes) else [x.decode('latin1') for x in d] for d in data if d is not None]
`;

/** Runs an imaplib script given the IMAP ports as I and IS; the script prints one JSON line. */
async function imaplib(server: ImapServer, body: string, extra: string[] = []): Promise<any> {
  const r = await runPython(`${PRELUDE}${body}`, [String(server.imap), String(server.imaps), ...extra], { timeoutMs: 60_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('catch-all mode on loopback', () => {
  let server: ImapServer;

  beforeAll(async () => {
    requirePeers('python3', 'curl');
    server = await startImapServe();
    await sendWithSmtplib(server, 'app@sender.test', ['Bob@X.test', 'carol@x.test'], MESSAGE);
    await sendWithSmtplib(server, 'app@sender.test', ['bob@x.test'], SECOND);
  });
  afterAll(() => server?.cleanup());

  test('imaplib: CAPABILITY, LOGIN with any password, SELECT, FETCH byte-exact, UID SEARCH, STORE \\Seen kept for the next session', async () => {
    const out = await imaplib(
      server,
      `fresh = imaplib.IMAP4('127.0.0.1', I, timeout=20)
caps = sorted(fresh.capabilities)
fresh.logout()
m = login('bob@x.test')
sel = m.select('INBOX')
validity = m.untagged_responses.get('UIDVALIDITY', [b'0'])[0].decode()
typ, data = m.fetch('1', '(FLAGS UID RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])')
head, body = data[0]
second = m.fetch('2', '(BODY.PEEK[])')[1][0][1]
unseen = m.uid('SEARCH', 'UNSEEN')[1][0].decode()
subject = m.uid('SEARCH', 'SUBJECT', '"second"')[1][0].decode()
stored = text(m.store('1', '+FLAGS', '\\\\Seen')[1])
m.logout()
n = login('BOB@x.test', 'another')
n.select('INBOX')
again = text(n.uid('FETCH', '1:*', '(UID FLAGS)')[1])
validity_again = n.untagged_responses.get('UIDVALIDITY', [b'0'])[0].decode()
n.logout()
print(json.dumps({'caps': caps, 'exists': sel[1][0].decode(), 'head': head.decode('latin1'), 'body': body.decode('latin1'), 'second': second.decode('latin1'),
  'unseen': unseen, 'subject': subject, 'stored': stored, 'again': again, 'validity': validity, 'validity_again': validity_again}))`,
    );
    expect(out.caps).toEqual(['AUTH=PLAIN', 'ENABLE', 'ID', 'IDLE', 'IMAP4REV1', 'LITERAL+', 'NAMESPACE', 'SASL-IR', 'STARTTLS', 'UIDPLUS', 'UNSELECT']);
    expect(out.exists).toBe('2');
    // Our Received header, then the message exactly as sent; RFC822.SIZE is its length.
    expect(out.body).toStartWith('Received: ');
    expect(out.body).toEndWith(`\r\n${MESSAGE}`);
    expect(out.second).toEndWith(`\r\n${SECOND}`);
    expect(out.head).toContain(`RFC822.SIZE ${Buffer.byteLength(out.body)}`);
    // The first SELECT to see a message gets it \Recent (RFC 3501 §2.3.2); later sessions do not.
    expect(out.head).toMatch(/^1 \(FLAGS \(\\Recent\) UID 1 /);
    expect(out.head).toContain('ENVELOPE ("Tue, 01 Dec 2026 10:00:00 +0000" "imap e2e" (("App" NIL "app" "sender.test"))');
    expect(out.head).toContain('"<one@sender.test>")');
    expect(out.head).toMatch(/BODYSTRUCTURE \("TEXT" "PLAIN" \("CHARSET" "us-ascii"\) NIL NIL "7BIT" 52 3 /);
    expect(out.unseen).toBe('1 2');
    expect(out.subject).toBe('2');
    expect(out.stored).toEqual(['1 (FLAGS (\\Seen \\Recent))']);
    expect(out.again).toEqual(['1 (UID 1 FLAGS (\\Seen))', '2 (UID 2 FLAGS ())']);
    expect(Number(out.validity)).toBeGreaterThan(0);
    expect(out.validity_again).toBe(out.validity);
    expect(server.logs()).toContain('"event":"imap-login","user":"bob@x.test","client":"127.0.0.1","mechanism":"LOGIN","tls":"none"');
  });

  test('STORE \\Deleted and EXPUNGE: a second session of the login sees the EXPUNGE, another recipient keeps the message, UIDs stay', async () => {
    const out = await imaplib(
      server,
      `watcher = login('bob@x.test')
watcher.select('INBOX')
m = login('bob@x.test')
m.select('INBOX')
m.store('1', '+FLAGS', '(\\\\Deleted \\\\Flagged)')
typ, expunged = m.expunge()
m.logout()
typ, noop = watcher.noop()
seen_expunge = text(watcher.untagged_responses.pop('EXPUNGE', []))
left = text(watcher.uid('FETCH', '1:*', '(UID)')[1])
watcher.logout()
c = login('carol@x.test')
carol_exists = c.select('INBOX')[1][0].decode()
carol = text(c.fetch('1', '(UID FLAGS)')[1])
c.logout()
print(json.dumps({'expunged': text(expunged), 'seen_expunge': seen_expunge, 'left': left, 'carol_exists': carol_exists, 'carol': carol}))`,
    );
    expect(out.expunged).toEqual(['1']);
    expect(out.seen_expunge).toEqual(['1']);
    expect(out.left).toEqual(['1 (UID 2)']);
    expect(out.carol_exists).toBe('1');
    // Carol's flags are her own: Bob's \Seen, \Deleted and \Flagged are not hers.
    expect(out.carol).toEqual(['1 (UID 1 FLAGS (\\Recent))']);
    expect(server.logs()).toContain('"event":"imap-expunged","user":"bob@x.test","client":"127.0.0.1","uids":[1]');
  });

  test('STARTTLS with imaplib.starttls(), then LOGIN over TLS; implicit TLS with IMAP4_SSL', async () => {
    const out = await imaplib(
      server,
      `m = imaplib.IMAP4('127.0.0.1', I, timeout=20)
m.starttls(ssl_context=unverified())
cipher = m.sock.version()
caps = sorted(m.capabilities)
m.login('carol@x.test', 'x')
m.select('INBOX')
body = m.fetch('1', '(BODY.PEEK[])')[1][0][1].decode('latin1')
m.logout()
s = imaplib.IMAP4_SSL('127.0.0.1', IS, ssl_context=unverified(), timeout=20)
implicit_caps = sorted(s.capabilities)
s.login('carol@x.test', 'x')
s.select('INBOX')
implicit = s.fetch('1', '(BODY.PEEK[])')[1][0][1].decode('latin1')
s.logout()
print(json.dumps({'cipher': cipher, 'caps': caps, 'body': body, 'implicit_caps': implicit_caps, 'implicit': implicit}))`,
    );
    expect(out.cipher).toMatch(/^TLSv1\.[23]$/);
    expect(out.caps).not.toContain('STARTTLS');
    expect(out.implicit_caps).not.toContain('STARTTLS');
    expect(out.body).toEndWith(`\r\n${MESSAGE}`);
    expect(out.implicit).toBe(out.body);
    expect(server.logs()).toMatch(/"event":"imap-login","user":"carol@x\.test","client":"127\.0\.0\.1","mechanism":"LOGIN","tls":"TLSv1\.[23]"/);
  });

  test('IDLE: a message sent with `mailbox send` reaches the idling session as EXISTS', async () => {
    const code = `${PRELUDE}m = login('dave@x.test')
m.select('INBOX')
tag = m._new_tag()
m.send(tag + b' IDLE\\r\\n')
print('continuation', m.readline().decode().strip(), flush=True)
while True:
    line = m.readline().decode().strip()
    if line.endswith('EXISTS'):
        break
m.send(b'DONE\\r\\n')
done = m.readline().decode().strip()
m.logout()
print(json.dumps({'exists': line, 'done': done}))`;
    const proc = Bun.spawn([SYSTEM_PYTHON, '-c', code, String(server.imap), String(server.imaps)], { stdout: 'pipe', stderr: 'pipe' });
    try {
      const reader = proc.stdout.getReader();
      let out = '';
      while (!out.includes('\n')) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      expect(out).toStartWith('continuation + idling');
      const sent = await runCommand([MAILBOX_BIN, 'send', '--server', `127.0.0.1:${server.port}`, '--from', 'app@sender.test', '--to', 'dave@x.test', '--subject', 'idle', '--body', 'pushed'], { timeoutMs: 60_000 });
      expect(sent.code).toBe(0);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      expect(await proc.exited).toBe(0);
      const result = JSON.parse(out.trim().split('\n').at(-1)!);
      expect(result.exists).toBe('* 1 EXISTS');
      expect(result.done).toMatch(/^\S+ OK IDLE/);
    } finally {
      proc.kill();
    }
  });

  test('curl imap:// searches and fetches by UID; imaps:// and STARTTLS too', async () => {
    const base = `imap://127.0.0.1:${server.imap}`;
    const search = await runCommand(['curl', '-sS', '--max-time', '20', '-u', 'carol@x.test:x', `${base}/INBOX`, '-X', 'UID SEARCH ALL']);
    expect(search.stderr).toBe('');
    expect(search.stdout).toBe('* SEARCH 1\r\n');
    const fetched = await runCommand(['curl', '-sS', '--max-time', '20', '-u', 'carol@x.test:x', `${base}/INBOX;UID=1`]);
    expect(fetched.stdout).toStartWith('Received: ');
    expect(fetched.stdout).toEndWith(`\r\n${MESSAGE}`);
    const secure = await runCommand(['curl', '-sS', '-k', '--max-time', '20', '-u', 'carol@x.test:x', `imaps://127.0.0.1:${server.imaps}/INBOX;UID=1`]);
    expect(secure.stdout).toBe(fetched.stdout);
    const starttls = await runCommand(['curl', '-sS', '-k', '--ssl-reqd', '--max-time', '20', '-u', 'carol@x.test:x', `${base}/INBOX;UID=1`]);
    expect(starttls.stdout).toBe(fetched.stdout);
  });
});

test('a POP3 DELE + QUIT reaches a selected IMAP session of the login; UIDs and UIDVALIDITY survive a restart', async () => {
  requirePeers('python3');
  await using dir = await makeTempDir();
  let validity = '';
  const first = await startImapServe(['--pop3', '127.0.0.1:0'], dir.path);
  try {
    for (const subject of ['one', 'two', 'three']) await sendWithSmtplib(first, 'app@sender.test', ['erin@x.test'], `Subject: ${subject}\r\n\r\nbody\r\n`);
    const pop3 = portOf((await listeningAddresses(first)).pop3[0]);
    const out = await imaplib(
      first,
      `import poplib
w = login('erin@x.test')
w.select('INBOX')
p = poplib.POP3('127.0.0.1', int(sys.argv[3]), timeout=20)
p.user('erin@x.test')
p.pass_('x')
p.dele(2)
p.quit()
w.noop()
seen = text(w.untagged_responses.pop('EXPUNGE', []))
left = text(w.uid('FETCH', '1:*', '(UID)')[1])
validity = w.untagged_responses.get('UIDVALIDITY', [b'0'])[0].decode()
w.logout()
print(json.dumps({'seen': seen, 'left': left, 'validity': validity}))`,
      [String(pop3)],
    );
    expect(out.seen).toEqual(['2']);
    expect(out.left).toEqual(['1 (UID 1)', '2 (UID 3)']);
    validity = out.validity;
  } finally {
    await first.stop();
  }
  const after = await imaplibAt(dir.path);
  expect(after.uids).toEqual(['1 (UID 1)', '2 (UID 3)']);
  expect(after.next).toBe('4');
  expect(Number(validity)).toBeGreaterThan(0);
  expect(after.validity).toBe(validity);
});

/** Restarts serve on `dataDir` and reports the INBOX's UIDs as a new session sees them. */
async function imaplibAt(dataDir: string): Promise<any> {
  const again = await startImapServe([], dataDir);
  try {
    return await imaplib(
      again,
      `m = login('erin@x.test')
m.select('INBOX')
uids = text(m.uid('FETCH', '1:*', '(UID)')[1])
next_ = m.untagged_responses.get('UIDNEXT', [b'0'])[0].decode()
validity = m.untagged_responses.get('UIDVALIDITY', [b'0'])[0].decode()
m.logout()
print(json.dumps({'uids': uids, 'next': next_, 'validity': validity}))`,
    );
  } finally {
    await again.cleanup();
  }
}

describe('with --domain and a users file', () => {
  let dir: TempDir;
  let server: ImapServer;

  beforeAll(async () => {
    requirePeers('python3');
    dir = await makeTempDir();
    const usersFile = join(dir.path, 'users');
    const r = await runCommand([MAILBOX_BIN, 'users', 'add', 'alice@x.test', '--users', usersFile], { stdin: `${PASSWORD}\n` });
    expect(r.code).toBe(0);
    server = await startImapServe(['--domain', 'x.test', '--users', usersFile]);
    await sendWithSmtplib(server, 'app@sender.test', ['alice@x.test'], SECOND);
  });
  afterAll(async () => {
    await server?.cleanup();
    await dir?.remove();
  });

  test('LOGINDISABLED before TLS; after STARTTLS a wrong password is refused and the right one logs in', async () => {
    const out = await imaplib(
      server,
      `m = imaplib.IMAP4('127.0.0.1', I, timeout=20)
caps_clear = sorted(m.capabilities)
typ, data = m._simple_command('LOGIN', 'alice@x.test', 'x')
clear = typ + ' ' + data[0].decode()
m.starttls(ssl_context=unverified())
caps_tls = sorted(m.capabilities)
try:
    m.login('alice@x.test', 'wrong')
    wrong = 'accepted'
except imaplib.IMAP4.error as e:
    wrong = str(e)
right = m.login('alice@x.test', ${JSON.stringify(PASSWORD)})[0]
m.select('INBOX')
body = m.fetch('1', '(BODY.PEEK[])')[1][0][1].decode('latin1')
m.logout()
print(json.dumps({'caps_clear': caps_clear, 'clear': clear, 'caps_tls': caps_tls, 'wrong': wrong, 'right': right, 'body': body}))`,
    );
    expect(out.caps_clear).toContain('LOGINDISABLED');
    expect(out.caps_clear).not.toContain('AUTH=PLAIN');
    expect(out.clear).toBe('NO [PRIVACYREQUIRED] Log in after STARTTLS; cleartext passwords are refused without TLS');
    expect(out.caps_tls).toContain('AUTH=PLAIN');
    expect(out.caps_tls).not.toContain('LOGINDISABLED');
    expect(out.wrong).toContain('AUTHENTICATIONFAILED');
    expect(out.right).toBe('OK');
    expect(out.body).toEndWith(`\r\n${SECOND}`);
    expect(server.logs()).toContain('"event":"imap-login-failed","user":"alice@x.test","client":"127.0.0.1","mechanism":"LOGIN","reason":"bad-password"');
  });
});
