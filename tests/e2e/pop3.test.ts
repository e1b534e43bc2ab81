// End to end: POP3 (RFC 1939, STLS RFC 2595, implicit TLS RFC 8314) of dist/mailbox serve, read by
// real clients: Python's poplib, curl pop3:// and pop3s://, and fetchmail into a local MDA. Mail
// goes in over SMTP with smtplib; every address is a maildrop.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { requirePeers } from '../helpers/capabilities.ts';
import { MAILBOX_BIN, cleanupServesAfterAll, fetchmailAll, makeTempDir, runCommand, listeningAddresses, portOf, runPython, sendWithSmtplib, startServe, type ServeHandle, type TempDir } from './harness.ts';

cleanupServesAfterAll();

const PASSWORD = 'correct horse battery staple';
/** A message with a line starting with "." and one starting with "..": dot-stuffing both ways. */
const MESSAGE = 'From: app@sender.test\r\nTo: bob@x.test, carol@x.test\r\nSubject: pop3 e2e\r\n\r\nfirst line\r\n.a line starting with a dot\r\n..two dots\r\n.\tdot tab\r\nlast line\r\n';
const SECOND = 'From: app@sender.test\r\nTo: bob@x.test\r\nSubject: second\r\n\r\nonly for bob\r\n';

interface Pop3Server extends ServeHandle {
  readonly pop3: number;
  readonly pop3s: number;
}

/** Starts serve with POP3 and implicit-TLS POP3 on ephemeral ports; the ports from the listening line. */
async function startPop3Serve(args: string[] = []): Promise<Pop3Server> {
  const server = await startServe({ args: ['--pop3', '127.0.0.1:0', '--pop3-tls', '127.0.0.1:0', '--log', 'json', ...args] });
  const listening = await listeningAddresses(server);
  return Object.assign(server, { pop3: portOf(listening.pop3[0]), pop3s: portOf(listening.pop3s[0]) });
}

/** Runs a poplib script given the POP3 ports as P and PS; the script prints one JSON line. */
async function poplib(server: Pop3Server, body: string): Promise<any> {
  const code = `import poplib, ssl, json, sys
P, PS = int(sys.argv[1]), int(sys.argv[2])
def unverified():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c
def whole(lines):
    return b''.join(l + b'\\r\\n' for l in lines).decode()
def login(user, password='any', port=None):
    p = poplib.POP3('127.0.0.1', port or P, timeout=20)
    p.user(user)
    p.pass_(password)
    return p
${body}`;
  const r = await runPython(code, [String(server.pop3), String(server.pop3s)], { timeoutMs: 60_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('catch-all mode on loopback', () => {
  let server: Pop3Server;

  beforeAll(async () => {
    requirePeers('python3', 'curl', 'fetchmail');
    server = await startPop3Serve();
    await sendWithSmtplib(server, 'app@sender.test', ['Bob@X.test', 'carol@x.test'], MESSAGE);
    await sendWithSmtplib(server, 'app@sender.test', ['bob@x.test'], SECOND);
  });
  afterAll(() => server?.cleanup());

  test('poplib: CAPA, USER/PASS with any password, STAT, LIST, UIDL, TOP, RETR byte-exact', async () => {
    const out = await poplib(
      server,
      `fresh = poplib.POP3('127.0.0.1', P, timeout=20)
capa = fresh.capa()
fresh.quit()
p = login('bob@x.test')
stat = p.stat()
listing = p.list()
uidl = p.uidl()
retr = p.retr(1)
top = p.top(1, 2)
second = p.retr(2)
p.quit()
again = login('BOB@x.test', 'another')
uidl_again = again.uidl()
again.quit()
print(json.dumps({'capa': sorted(capa), 'stat': stat, 'list': [l.decode() for l in listing[1]], 'uidl': [l.decode() for l in uidl[1]],
  'retr_status': retr[0].decode(), 'retr': whole(retr[1]), 'top': whole(top[1]), 'second': whole(second[1]), 'uidl_again': [l.decode() for l in uidl_again[1]]}))`,
    );
    expect(out.capa).toEqual(['AUTH-RESP-CODE', 'IMPLEMENTATION', 'PIPELINING', 'RESP-CODES', 'SASL', 'STLS', 'TOP', 'UIDL', 'USER']);
    // Our Received header comes first, then the message exactly as sent, dot lines included.
    expect(out.retr).toStartWith('Received: ');
    expect(out.retr).toEndWith(`\r\n${MESSAGE}`);
    expect(out.second).toEndWith(`\r\n${SECOND}`);
    const sizes = [Buffer.byteLength(out.retr), Buffer.byteLength(out.second)];
    expect(out.stat).toEqual([2, sizes[0] + sizes[1]]);
    expect(out.list).toEqual([`1 ${sizes[0]}`, `2 ${sizes[1]}`]);
    expect(out.retr_status).toBe(`+OK ${sizes[0]} octets`);
    // TOP 1 2: the header, the blank line, two lines of the body.
    expect(out.top).toBe(out.retr.slice(0, out.retr.indexOf('\r\n\r\n') + 4) + 'first line\r\n.a line starting with a dot\r\n');
    // UIDL: the message ids, in commit order, the same in the next session (and letter case of the login aside).
    expect(out.uidl.length).toBe(2);
    for (const line of out.uidl) expect(line).toMatch(/^[12] [\x21-\x7e]{1,70}$/);
    expect(out.uidl_again).toEqual(out.uidl);
    expect(server.logs()).toContain('"event":"pop3-login","user":"bob@x.test","client":"127.0.0.1","mechanism":"USER","tls":"none"');
  });

  test('a second session of the same login gets -ERR [IN-USE]; the lock is given back at QUIT and at a dropped connection', async () => {
    const out = await poplib(
      server,
      `first = login('bob@x.test')
try:
    login('Bob@X.TEST')
    second = 'logged in'
except poplib.error_proto as e:
    second = str(e)
other = login('carol@x.test')
other.quit()
first.quit()
after_quit = login('bob@x.test')
import socket, time
after_quit.sock.shutdown(socket.SHUT_RDWR)
after_quit.close()
for _ in range(100):
    try:
        after_drop = login('bob@x.test').stat()
        break
    except poplib.error_proto as e:
        after_drop = str(e)
        time.sleep(0.1)
print(json.dumps({'second': second, 'after_drop': after_drop}))`,
    );
    expect(out.second).toBe("b'-ERR [IN-USE] Maildrop is in use by another session'");
    expect(out.after_drop[0]).toBe(2);
  });

  test('STLS with poplib.stls(), then login and RETR over TLS; implicit TLS with POP3_SSL', async () => {
    const out = await poplib(
      server,
      `p = poplib.POP3('127.0.0.1', P, timeout=20)
p.stls(context=unverified())
cipher = p.sock.version()
caps = sorted(p.capa())
p.user('carol@x.test')
p.pass_('x')
retr = whole(p.retr(1)[1])
p.quit()
s = poplib.POP3_SSL('127.0.0.1', PS, context=unverified(), timeout=20)
implicit_caps = sorted(s.capa())
s.user('carol@x.test')
s.pass_('x')
implicit = whole(s.retr(1)[1])
s.quit()
print(json.dumps({'cipher': cipher, 'caps': caps, 'retr': retr, 'implicit_caps': implicit_caps, 'implicit': implicit}))`,
    );
    expect(out.cipher).toMatch(/^TLSv1\.[23]$/);
    expect(out.caps).not.toContain('STLS');
    expect(out.implicit_caps).not.toContain('STLS');
    expect(out.retr).toEndWith(`\r\n${MESSAGE}`);
    expect(out.implicit).toBe(out.retr);
  });

  test('bytes pipelined in clear after STLS are discarded (RFC 2595 §4): the USER sent with it is not seen after the handshake', async () => {
    const socket = connect({ host: '127.0.0.1', port: server.pop3 });
    let clear = '';
    const ready = new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        clear += chunk.toString('latin1');
        if (clear.includes('+OK Begin TLS')) {
          socket.removeAllListeners('data');
          resolve();
        }
      });
    });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('STLS\r\nUSER carol@x.test\r\n');
    await ready;
    const tls = tlsConnect({ socket, rejectUnauthorized: false });
    let secure = '';
    const lines = (count: number) =>
      new Promise<string>((resolve, reject) => {
        const check = () => secure.split('\r\n').length > count && resolve(secure);
        tls.on('data', (chunk: Buffer) => {
          secure += chunk.toString('latin1');
          check();
        });
        tls.on('error', reject);
        check();
      });
    await new Promise<void>((resolve) => tls.once('secureConnect', () => resolve()));
    tls.write('PASS x\r\nQUIT\r\n');
    const answer = await lines(2);
    tls.destroy();
    expect(clear).toMatch(/^\+OK [^\r]* POP3 mailbox ready\r\n\+OK Begin TLS negotiation\r\n$/);
    expect(answer).toMatch(/^-ERR PASS must follow USER\r\n\+OK [^\r]* signing off\r\n$/);
  });

  test('curl pop3:// lists and retrieves; pop3s:// too', async () => {
    const base = `pop3://127.0.0.1:${server.pop3}`;
    const list = await runCommand(['curl', '-sS', '--max-time', '20', '-u', 'carol@x.test:x', `${base}/`]);
    expect(list.stderr).toBe('');
    const retrieved = await runCommand(['curl', '-sS', '--max-time', '20', '-u', 'carol@x.test:x', `${base}/1`]);
    expect(retrieved.stdout).toStartWith('Received: ');
    expect(retrieved.stdout).toEndWith(`\r\n${MESSAGE}`);
    expect(list.stdout).toBe(`1 ${Buffer.byteLength(retrieved.stdout)}\r\n`);
    const secure = await runCommand(['curl', '-sS', '-k', '--max-time', '20', '-u', 'carol@x.test:x', `pop3s://127.0.0.1:${server.pop3s}/1`]);
    expect(secure.stdout).toBe(retrieved.stdout);
    const starttls = await runCommand(['curl', '-sS', '-k', '--ssl-reqd', '--max-time', '20', '-u', 'carol@x.test:x', `${base}/1`]);
    expect(starttls.stdout).toBe(retrieved.stdout);
    // curl logs in with SASL PLAIN (RFC 5034), as CAPA offers it.
    expect(server.logs()).toContain('"event":"pop3-login","user":"carol@x.test","client":"127.0.0.1","mechanism":"PLAIN","tls":"none"');
    expect(server.logs()).toMatch(/"event":"pop3-login","user":"carol@x\.test","client":"127\.0\.0\.1","mechanism":"PLAIN","tls":"TLSv1\.[23]"/);
  });

  test('DELE + QUIT expunges for that login only; fetchmail retrieves into a local MDA and deletes', async () => {
    const out = await poplib(
      server,
      `p = login('bob@x.test')
first_uid = p.uidl(1).split()[2].decode()
p.dele(1)
quit_reply = p.quit().decode()
q = login('bob@x.test')
bob = {'stat': q.stat(), 'uidl': [l.decode().split()[1] for l in q.uidl()[1]], 'retr': whole(q.retr(1)[1])}
q.quit()
c = login('carol@x.test')
carol = {'stat': c.stat(), 'uidl': [l.decode().split()[1] for l in c.uidl()[1]]}
c.quit()
print(json.dumps({'first_uid': first_uid, 'quit': quit_reply, 'bob': bob, 'carol': carol}))`,
    );
    expect(out.quit).toEndWith('signing off (1 message deleted)');
    expect(out.bob.stat[0]).toBe(1);
    expect(out.bob.uidl).not.toContain(out.first_uid);
    expect(out.bob.retr).toEndWith(`\r\n${SECOND}`);
    // The other recipient of the message still has it.
    expect(out.carol.stat[0]).toBe(1);
    expect(out.carol.uidl).toEqual([out.first_uid]);
    expect(server.logs()).toContain(`"event":"pop3-expunged","user":"bob@x.test","client":"127.0.0.1","ids":["${out.first_uid}"]`);

    const delivered = await fetchmailAll('pop3', server.pop3, 'carol@x.test');
    expect(delivered).toContain(`\n${MESSAGE.replaceAll('\r\n', '\n')}`);
    const after = await poplib(server, `c = login('carol@x.test')\nprint(json.dumps({'stat': c.stat()}))\nc.quit()`);
    expect(after.stat).toEqual([0, 0]);
  });
});

describe('with --domain and a users file', () => {
  let dir: TempDir;
  let server: Pop3Server;

  beforeAll(async () => {
    requirePeers('python3');
    dir = await makeTempDir();
    const usersFile = join(dir.path, 'users');
    const r = await runCommand([MAILBOX_BIN, 'users', 'add', 'alice@x.test', '--users', usersFile], { stdin: `${PASSWORD}\n` });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    server = await startPop3Serve(['--domain', 'x.test', '--users', usersFile]);
    await sendWithSmtplib(server, 'app@sender.test', ['alice@x.test'], SECOND);
  });
  afterAll(async () => {
    await server?.cleanup();
    await dir?.remove();
  });

  test('USER is refused before TLS and left out of CAPA; after STLS a wrong password is refused and the right one logs in', async () => {
    const out = await poplib(
      server,
      `p = poplib.POP3('127.0.0.1', P, timeout=20)
caps_clear = sorted(p.capa())
try:
    p.user('alice@x.test')
    user_clear = 'accepted'
except poplib.error_proto as e:
    user_clear = str(e)
p.stls(context=unverified())
caps_tls = sorted(p.capa())
p.user('alice@x.test')
try:
    p.pass_('wrong')
    wrong = 'accepted'
except poplib.error_proto as e:
    wrong = str(e)
p.user('alice@x.test')
right = p.pass_(${JSON.stringify(PASSWORD)}).decode()
retr = whole(p.retr(1)[1])
p.quit()
print(json.dumps({'caps_clear': caps_clear, 'user_clear': user_clear, 'caps_tls': caps_tls, 'wrong': wrong, 'right': right, 'retr': retr}))`,
    );
    expect(out.caps_clear).not.toContain('USER');
    expect(out.caps_clear).toContain('STLS');
    expect(out.user_clear).toBe("b'-ERR [AUTH] Cleartext login needs TLS first: use STLS or the implicit TLS port'");
    expect(out.caps_tls).toContain('USER');
    expect(out.wrong).toBe("b'-ERR [AUTH] Invalid credentials'");
    expect(out.right).toStartWith('+OK Maildrop locked and ready, 1 message');
    expect(out.retr).toEndWith(`\r\n${SECOND}`);
    const logs = server.logs();
    expect(logs).toContain('"event":"pop3-login-failed","user":"alice@x.test","client":"127.0.0.1","mechanism":"USER","reason":"bad-password"');
    expect(logs).toMatch(/"event":"pop3-login","user":"alice@x\.test","client":"127\.0\.0\.1","mechanism":"USER","tls":"TLSv1\.[23]"/);
  });
});

test('a --pop3 or --pop3-tls address in use stops serve with one line naming the flag, exit 71', async () => {
  const taken = await startPop3Serve();
  await using dir = await makeTempDir();
  try {
    for (const [flag, port] of [['--pop3', taken.pop3], ['--pop3-tls', taken.pop3s]] as const) {
      const pop3 = flag === '--pop3' ? [] : ['--pop3', 'off'];
      const r = await runCommand([MAILBOX_BIN, 'serve', '--listen', '127.0.0.1:0', '--imap', 'off', '--http', 'off', ...pop3, flag, `127.0.0.1:${port}`, '--data', dir.path], { timeoutMs: 15_000 });
      expect(r.code).toBe(71);
      // What started before the bind (the spool, the index, the certificate) logged its lines; the failure is the last one.
      expect(r.stderr.trim().split('\n').at(-1)).toBe(`mailbox: cannot listen on 127.0.0.1:${port}: the address is in use (EADDRINUSE); change ${flag}`);
    }
  } finally {
    await taken.cleanup();
  }
});
