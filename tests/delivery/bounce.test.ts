// Delivery status notifications (src/delivery/bounce.ts): RFC 3464 reports, RFC 6533 for
// SMTPUTF8 mail, RET and --bounce-size-limit, NOTIFY per recipient. Each report is read back with
// Python's email package, as a mail client would read it.
import { expect, test } from 'bun:test';
import { join } from 'node:path';
import { dotUnstuff } from '../../src/core/data.ts';
import type { Envelope, Recipient } from '../../src/core/envelope.ts';
import { reply } from '../../src/core/reply.ts';
import { buildDeliveryReport, reportCommit, statusOf, wantsReport, type DeliveryReportInput, type ReportedRecipient } from '../../src/delivery/bounce.ts';
import { requirePeers } from '../helpers/capabilities.ts';
import { mailbox } from '../helpers/mailbox.ts';

const ENCODER = new TextEncoder();
const READER = join(import.meta.dir, '..', 'helpers', 'dsn-report.py');
const ARRIVAL = Date.UTC(2026, 11, 1, 9, 30, 0);
const NOW = ARRIVAL + 5 * 86_400_000;

interface Parsed {
  type: string;
  reportType: string;
  from: string;
  to: string;
  subject: string;
  autoSubmitted: string;
  defects: string[];
  parts: string[];
  human: string;
  perMessage: Record<string, string>;
  recipients: Record<string, string>[];
  original: { type: string; subject: string; body: string | null };
}

/** Reads each message with Python's email package (one python3 run for them all). */
function readWithPython(...messages: Uint8Array[]): Parsed[] {
  requirePeers('python3');
  const stdin = ENCODER.encode(JSON.stringify(messages.map((m) => Buffer.from(m).toString('base64'))));
  const r = Bun.spawnSync(['python3', READER], { stdin, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return JSON.parse(r.stdout.toString()) as Parsed[];
}

const rcpt = (address: string, params: Recipient['params'] = []): Recipient => ({ mailbox: mailbox(address), local: false, params });

function envelope(over: Partial<Envelope> = {}): Envelope {
  return {
    sender: mailbox('alice@sender.test'),
    mailParams: [{ name: 'RET', value: 'FULL' }, { name: 'ENVID', value: 'QQ+2B123' }],
    recipients: [
      rcpt('bob@far.test', [{ name: 'ORCPT', value: 'rfc822;Bob+2Bx@far.test' }]),
      rcpt('carol@far.test'),
      rcpt('dave@near.test', [{ name: 'NOTIFY', value: 'SUCCESS,FAILURE' }]),
    ],
    utf8: false,
    body: '7BIT',
    declaredSize: null,
    authUser: null,
    ...over,
  };
}

const ORIGINAL = ENCODER.encode('Received: from x\r\nSubject: Quarterly figures\r\nFrom: alice@sender.test\r\n\r\nThe figures are attached.\r\n');
const bounced550: ReportedRecipient = {
  rcptIndex: 0,
  action: 'failed',
  reply: reply(550, '5.1.1', '<bob@far.test>: Recipient address rejected: User unknown'),
  remoteMta: 'mx1.far.test',
  lastAttemptMs: NOW - 1000,
};

function input(over: Partial<DeliveryReportInput> = {}): DeliveryReportInput {
  return {
    id: 'mhx3k2a9c00q4f7z',
    envelope: envelope(),
    arrivalMs: ARRIVAL,
    nowMs: NOW,
    reportingMta: 'relay.sender.test',
    recipients: [bounced550],
    message: ORIGINAL,
    returnLimitBytes: 1_000_000,
    ...over,
  };
}

test('a failure report is multipart/report with every RFC 3464 field, and RET=FULL returns the message', () => {
  const report = buildDeliveryReport(input());
  if (report === null) throw new Error('expected a report');
  expect([report.to, report.utf8, report.eightBit, report.reported]).toEqual([mailbox('alice@sender.test'), false, false, [0]]);
  const [p] = readWithPython(report.message);
  expect(p.defects).toEqual([]);
  expect([p.type, p.reportType, p.parts]).toEqual(['multipart/report', 'delivery-status', ['text/plain', 'message/delivery-status', 'message/rfc822']]);
  expect([p.from, p.to, p.subject, p.autoSubmitted]).toEqual(['Mail Delivery System <MAILER-DAEMON@relay.sender.test>', 'alice@sender.test', 'Undelivered Mail Returned to Sender', 'auto-replied']);
  // RFC 3464 §2.2: per-message fields; the ENVID comes back xtext-decoded (§2.2.1).
  expect(p.perMessage).toEqual({
    'Original-Envelope-Id': 'QQ+123',
    'Reporting-MTA': 'dns; relay.sender.test',
    'X-Mailbox-Queue-ID': 'mhx3k2a9c00q4f7z',
    'Arrival-Date': 'Tue, 1 Dec 2026 09:30:00 +0000',
  });
  // RFC 3464 §2.3: per-recipient fields; Original-Recipient only where ORCPT was given (§2.3.1).
  expect(p.recipients).toEqual([
    {
      'Original-Recipient': 'rfc822; Bob+x@far.test',
      'Final-Recipient': 'rfc822; bob@far.test',
      Action: 'failed',
      Status: '5.1.1',
      'Remote-MTA': 'dns; mx1.far.test',
      'Diagnostic-Code': 'smtp; 550 5.1.1 <bob@far.test>: Recipient address rejected: User unknown',
      'Last-Attempt-Date': 'Sun, 6 Dec 2026 09:29:59 +0000',
    },
  ]);
  expect(p.original).toEqual({ type: 'message/rfc822', subject: 'Quarterly figures', body: 'The figures are attached.\n' });
  expect(p.human).toContain('<bob@far.test> could not be delivered (mx1.far.test said: 550 5.1.1');
});

test('RET=FULL above --bounce-size-limit, RET=HDRS and no RET return the header only (text/rfc822-headers)', () => {
  const cases: Partial<DeliveryReportInput>[] = [
    { returnLimitBytes: ORIGINAL.length - 1 },
    { envelope: envelope({ mailParams: [{ name: 'RET', value: 'HDRS' }] }) },
    { envelope: envelope({ mailParams: [] }) },
  ];
  const [atLimit, ...parsed] = readWithPython(...[{ returnLimitBytes: ORIGINAL.length }, ...cases].map((over) => buildDeliveryReport(input(over))!.message));
  for (const p of parsed) {
    expect([p.parts[2], p.original]).toEqual(['text/rfc822-headers', { type: 'text/rfc822-headers', subject: 'Quarterly figures', body: null }]);
    expect(p.human).toContain('The header of the message is attached.');
  }
  // Exactly at the limit the whole message still goes.
  expect(atLimit.parts[2]).toBe('message/rfc822');
});

test('a bounce is never bounced: the null sender gets no report', () => {
  expect(buildDeliveryReport(input({ envelope: envelope({ sender: null }) }))).toBeNull();
  expect(wantsReport(envelope({ sender: null }), rcpt('bob@far.test'), 'failed')).toBe(false);
});

test('RFC 3461 §4.1: NOTIFY per recipient decides what is reported', () => {
  const e = envelope();
  const never = rcpt('x@far.test', [{ name: 'NOTIFY', value: 'NEVER' }]);
  const success = rcpt('x@far.test', [{ name: 'NOTIFY', value: 'SUCCESS' }]);
  const delay = rcpt('x@far.test', [{ name: 'NOTIFY', value: 'delay' }]);
  const none = rcpt('x@far.test');
  const table: [Recipient, boolean, boolean, boolean, boolean][] = [
    // recipient, failed, delayed, delivered, relayed
    [never, false, false, false, false],
    [success, false, false, true, true],
    [delay, false, true, false, false],
    [none, true, true, false, false],
  ];
  for (const [r, failed, delayed, delivered, relayed] of table) {
    expect([wantsReport(e, r, 'failed'), wantsReport(e, r, 'delayed'), wantsReport(e, r, 'delivered'), wantsReport(e, r, 'relayed')]).toEqual([failed, delayed, delivered, relayed]);
  }
  // NOTIFY=NEVER on the only failed recipient: no report at all.
  const onlyNever = envelope({ recipients: [never] });
  expect(buildDeliveryReport(input({ envelope: onlyNever }))).toBeNull();
});

test('NOTIFY=SUCCESS: "delivered" for local delivery and "relayed" past a next hop without DSN, headers only', () => {
  const report = buildDeliveryReport(input({
    recipients: [
      { rcptIndex: 2, action: 'delivered', reply: reply(250, '2.0.0', 'kept in a local mailbox') },
      { rcptIndex: 0, action: 'relayed', reply: reply(250, '2.0.0', 'Ok: queued as 4F7Z'), remoteMta: 'mx1.far.test' },
    ],
  }));
  if (report === null) throw new Error('expected a report');
  // Bob did not ask for SUCCESS, so only Dave is reported.
  expect(report.reported).toEqual([2]);
  const [p] = readWithPython(report.message);
  expect(p.subject).toBe('Successful Mail Delivery Report');
  expect(p.recipients).toEqual([{ 'Final-Recipient': 'rfc822; dave@near.test', Action: 'delivered', Status: '2.0.0', 'Diagnostic-Code': 'X-mailbox; 250 2.0.0 kept in a local mailbox' }]);
  expect(p.parts[2]).toBe('text/rfc822-headers');

  const relayed = buildDeliveryReport(input({
    envelope: envelope({ recipients: [rcpt('bob@far.test', [{ name: 'NOTIFY', value: 'SUCCESS' }])] }),
    recipients: [{ rcptIndex: 0, action: 'relayed', reply: reply(250, '2.0.0', 'Ok: queued as 4F7Z'), remoteMta: 'mx1.far.test' }],
  }));
  const [q] = readWithPython(relayed!.message);
  expect([q.recipients[0].Action, q.recipients[0].Status, q.recipients[0]['Remote-MTA']]).toEqual(['relayed', '2.0.0', 'dns; mx1.far.test']);
});

test('a delay warning says delayed, when the relay gives up, and keeps the message header only', () => {
  const report = buildDeliveryReport(input({
    recipients: [{ rcptIndex: 1, action: 'delayed', reply: reply(451, '4.7.1', 'Greylisted, try again later'), remoteMta: 'mx1.far.test', lastAttemptMs: NOW, willRetryUntilMs: ARRIVAL + 5 * 86_400_000 }],
  }));
  const [p] = readWithPython(report!.message);
  expect(p.subject).toBe('Delayed Mail (still being retried)');
  expect(p.recipients[0]).toEqual({
    'Final-Recipient': 'rfc822; carol@far.test',
    Action: 'delayed',
    Status: '4.7.1',
    'Remote-MTA': 'dns; mx1.far.test',
    'Diagnostic-Code': 'smtp; 451 4.7.1 Greylisted, try again later',
    'Last-Attempt-Date': 'Sun, 6 Dec 2026 09:30:00 +0000',
    'Will-Retry-Until': 'Sun, 6 Dec 2026 09:30:00 +0000',
  });
  expect(p.parts[2]).toBe('text/rfc822-headers');
});

test('RFC 6533: an SMTPUTF8 message gets message/global-delivery-status, utf-8 addresses and message/global', () => {
  const original = ENCODER.encode('Subject: Grüße\r\nFrom: jörg@sender.test\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHallo, schöne Grüße.\r\n');
  const report = buildDeliveryReport(input({
    envelope: envelope({ sender: mailbox('jörg@sender.test'), utf8: true, recipients: [rcpt('zoë@fär.test')] }),
    message: original,
    recipients: [{ rcptIndex: 0, action: 'failed', reply: reply(550, '5.1.1', 'no such user'), remoteMta: 'mx.fär.test' }],
  }));
  if (report === null) throw new Error('expected a report');
  expect([report.utf8, report.eightBit]).toEqual([true, true]);
  const [p] = readWithPython(report.message);
  expect([p.reportType, p.parts, p.to]).toEqual(['global-delivery-status', ['text/plain', 'message/global-delivery-status', 'message/global'], 'jörg@sender.test']);
  expect(p.recipients[0]['Final-Recipient']).toBe('utf-8; zoë@fär.test');
  expect(p.original).toEqual({ type: 'message/global', subject: 'Grüße', body: 'Hallo, schöne Grüße.\n' });
  // Headers only: message/global-headers (RFC 6533 §6.4).
  const [headers] = readWithPython(buildDeliveryReport(input({
    envelope: envelope({ sender: mailbox('jörg@sender.test'), utf8: true, mailParams: [], recipients: [rcpt('zoë@fär.test')] }),
    message: original,
    recipients: [{ rcptIndex: 0, action: 'failed', reply: reply(550, '5.1.1', 'no such user') }],
  }))!.message);
  expect(headers.parts[2]).toBe('message/global-headers');
  expect(headers.original.subject).toBe('Grüße');
});

test('the report is queued from the null sender to the original sender, dot-stuffed for the spool', () => {
  const withDot = ENCODER.encode('Subject: dots\r\n\r\n.leading dot\r\n');
  const report = buildDeliveryReport(input({ message: withDot }))!;
  const commit = reportCommit(report, { id: 'bounce1', timeMs: NOW, local: true });
  expect(commit.envelope.sender).toBeNull();
  expect(commit.envelope.recipients).toEqual([{ mailbox: mailbox('alice@sender.test'), local: true, params: [] }]);
  expect([commit.envelope.body, commit.size]).toEqual(['7BIT', report.message.length]);
  expect(dotUnstuff(commit.stuffed)).toEqual(report.message);
  expect(new TextDecoder().decode(commit.stuffed)).toContain('\r\n..leading dot\r\n');
});

test('status: the enhanced code, or the class of the code alone (RFC 3464 §2.3.4)', () => {
  expect([statusOf(reply(550, '5.7.1', 'x')), statusOf(reply(421, undefined, 'x')), statusOf(reply(250, 'bogus', 'x'))]).toEqual(['5.7.1', '4.0.0', '2.0.0']);
});

test('a long remote reply is folded, and control characters and (in an ASCII report) 8-bit text are not passed through', () => {
  const long = reply(550, '5.7.1', `${'word '.repeat(40)}bad\u0007bell ünïcode`);
  const report = buildDeliveryReport(input({ recipients: [{ ...bounced550, reply: long }] }))!;
  const text = new TextDecoder().decode(report.message);
  const diagnostic = text.slice(text.indexOf('Diagnostic-Code:'), text.indexOf('Last-Attempt-Date:'));
  expect(diagnostic.split('\r\n').filter((l) => l !== '').every((l) => l.length <= 78)).toBe(true);
  expect(report.eightBit).toBe(false);
  expect(readWithPython(report.message)[0].recipients[0]['Diagnostic-Code']).toBe(`smtp; 550 5.7.1 ${'word '.repeat(40)}bad bell ?n?code`);
});
