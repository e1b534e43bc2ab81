// Messages handed to serve other than over SMTP, as the sendmail link (a login of this machine) and
// the HTTP API (a client) hand them in: one commit path, the Received line naming who, local
// recipients kept here and the others queued for the relay or refused without one.
import { afterEach, expect, test } from 'bun:test';
import { InputError } from '../../src/exit-status.ts';
import type { Logger } from '../../src/log.ts';
import { commitLocalMessage, localSubmitter, type Destinations } from '../../src/serve/local-submission.ts';
import { openSpool, type Spool } from '../../src/spool/spool.ts';
import { memoryLog, removeDir, tempDir } from '../spool/fixtures/messages.ts';

const T0 = 1_764_633_600_000;
const opened: { spool: Spool; dir: string }[] = [];
afterEach(async () => {
  for (const { spool, dir } of opened.splice(0)) {
    await spool.close();
    removeDir(dir);
  }
});

async function spoolFor(): Promise<Spool> {
  const dir = tempDir();
  const spool = await openSpool({ dir, hostname: 'mx.test', now: () => T0, log: memoryLog() });
  opened.push({ spool, dir });
  return spool;
}

const DEST: Destinations = { hostname: 'mx.test', domains: ['mx.test'], relays: false, maxMessageBytes: 1000 };
const ids = () => {
  let n = 0;
  return { now: () => T0, newId: () => `L${++n}` };
};
const MESSAGE = new TextEncoder().encode('Subject: hi\r\n\r\nhello\r\n');
const text = async (spool: Spool, id: string) => new TextDecoder().decode(await spool.readMessage(id));

test('from a login: a "by" Received line, local recipients kept, DSN options and 8-bit declared in the envelope', async () => {
  const spool = await spoolFor();
  const bytes = new TextEncoder().encode('Subject: caf\u00e9\r\n\r\nna\u00efve\r\n');
  const done = await commitLocalMessage(spool, { ...DEST, relays: true }, { sender: 'cron@mx.test', recipients: ['root@mx.test', ' <ops@far.test>', 'root@mx.test'], bytes, origin: { kind: 'login', user: 'cron job' }, dsn: { notify: ['FAILURE'], ret: 'HDRS', envid: 'e 1' } }, ids());
  expect(done.relayed.map((m) => `${m.local}@${m.domain}`)).toEqual(['ops@far.test']);
  const info = spool.get(done.id)!;
  expect(info.recipients.map((r) => [r.address, r.state.kind])).toEqual([['root@mx.test', 'local'], ['ops@far.test', 'pending']]);
  expect(info.envelope.mailParams).toEqual([{ name: 'BODY', value: '8BITMIME' }, { name: 'RET', value: 'HDRS' }, { name: 'ENVID', value: 'e+201' }]);
  expect(info.envelope.recipients[0].params).toEqual([{ name: 'NOTIFY', value: 'FAILURE' }]);
  expect(info.envelope.authUser).toBeNull();
  expect(await text(spool, done.id)).toStartWith('Received: by mx.test (mailbox, from user cron?job)\r\n\tid L1; ');
  expect(done.size).toBe((await spool.readMessage(done.id)).length);
});

test('from an HTTP client: an SMTP-style Received line from "api", its login as the AUTH identity, 7-bit mail declared so', async () => {
  const spool = await spoolFor();
  const done = await commitLocalMessage(spool, DEST, { sender: 'app@x.test', recipients: ['dev@mx.test'], bytes: MESSAGE, origin: { kind: 'client', client: '127.0.0.1', protocol: 'HTTP', user: 'alice' } }, ids());
  const info = spool.get(done.id)!;
  expect([info.envelope.body, info.envelope.mailParams, info.envelope.authUser]).toEqual(['7BIT', [], 'alice']);
  expect(await text(spool, done.id)).toStartWith('Received: from api ([127.0.0.1])\r\n\tby mx.test (mailbox) with HTTP id L1\r\n\tfor <dev@mx.test>;\r\n');
});

test('refusals are InputErrors with their sysexits code, and nothing is committed', async () => {
  const spool = await spoolFor();
  const login = { kind: 'login', user: 'u' } as const;
  const refused = async (message: Parameters<typeof commitLocalMessage>[2], dest = DEST) => {
    const error = await commitLocalMessage(spool, dest, message, ids()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    return [(error as InputError).code, (error as Error).message];
  };
  expect(await refused({ sender: null, recipients: ['ops@far.test'], bytes: MESSAGE, origin: login })).toEqual([67, 'ops@far.test is not in a local domain (mx.test) and serve relays nothing (no --relay)']);
  // A release relays every recipient, local ones too: it needs a relay.
  expect((await refused({ sender: 'a@mx.test', recipients: ['root@mx.test'], bytes: MESSAGE, origin: login, relayAll: true }))[0]).toBe(67);
  expect(await refused({ sender: 'not an address', recipients: ['root@mx.test'], bytes: MESSAGE, origin: login })).toEqual([65, expect.stringMatching(/^the sender not an address is not an address: /)]);
  expect(await refused({ sender: null, recipients: [], bytes: MESSAGE, origin: login })).toEqual([64, 'no recipients']);
  expect((await refused({ sender: null, recipients: ['root@mx.test'], bytes: new Uint8Array(2000).fill(97), origin: login }))[1]).toMatch(/more than serve's --max-size of 1000$/);
  expect(spool.stats().messages).toBe(0);
});

test("serve's submitter wakes the relay only for relayed mail and logs each message as accepted", async () => {
  const spool = await spoolFor();
  const lines: [string, Record<string, unknown>][] = [];
  const log = { info: (msg: string, fields: Record<string, unknown>) => lines.push([msg, fields]), warn() {}, error() {}, reopen() {}, close() {} } as unknown as Logger;
  let kicks = 0;
  const submit = localSubmitter({ dest: { ...DEST, relays: true }, spool, log, ...ids(), relay: { kick: () => void kicks++ } });
  const client = { kind: 'client', client: '127.0.0.1', protocol: 'HTTP', user: null } as const;
  await submit({ sender: 'app@x.test', recipients: ['dev@mx.test'], bytes: MESSAGE, origin: client });
  expect(kicks).toBe(0);
  const id = await submit({ sender: 'app@x.test', recipients: ['dev@mx.test'], bytes: MESSAGE, origin: client, relayAll: true });
  expect(kicks).toBe(1);
  expect(lines.at(-1)).toEqual(['accepted', { id, from: 'app@x.test', to: ['dev@mx.test'], size: spool.get(id)!.size, client: '127.0.0.1', user: undefined, via: 'HTTP', relay: ['dev@mx.test'] }]);
});
