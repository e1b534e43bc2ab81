// Outgoing preparation (core/outgoing.ts): parameters per recipient, checks against what the
// server offers, and the policy for what it lacks (refuse, strip, relay).
import { expect, test } from 'bun:test';
import { parseEhloLines } from '../../src/core/extensions.ts';
import { hasEightBit, prepareOutgoing, unstuffedSize, type OutgoingInput } from '../../src/core/outgoing.ts';
import { mailbox } from '../helpers/mailbox.ts';

const ENCODER = new TextEncoder();
const ext = (...keywords: string[]) => parseEhloLines(['mx.test', ...keywords]);

const tx: OutgoingInput = {
  sender: mailbox('a@example.org'),
  recipients: [
    { mailbox: mailbox('b@example.net'), params: { notify: ['SUCCESS'], orcpt: { type: 'rfc822', address: 'b@example.net' } } },
    mailbox('c@example.net'),
  ],
  dsn: { ret: 'FULL', envid: 'x=1' },
  message: ENCODER.encode('Subject: x\n\nbody\n'),
};

test('with DSN offered: RET and ENVID on MAIL, NOTIFY and ORCPT on their own RCPT', () => {
  const p = prepareOutgoing(tx, ext('SIZE 1000', 'DSN'), 'refuse');
  if (!p.ok) throw new Error('expected it to go');
  expect(p.prepared.mailParams).toBe(' SIZE=20 RET=FULL ENVID=x+3D1');
  expect(p.prepared.rcptParams).toEqual([' NOTIFY=SUCCESS ORCPT=rfc822;b@example.net', '']);
  expect([p.prepared.stripped, p.prepared.relayed]).toEqual([[], []]);
});

test('without DSN: refuse (send), strip (replay), relay (strip, and owe "relayed" to NOTIFY=SUCCESS recipients)', () => {
  const refused = prepareOutgoing(tx, ext('SIZE 1000'), 'refuse');
  expect(!refused.ok && [refused.status.code, refused.status.enhanced]).toEqual([554, '5.3.3']);
  const stripped = prepareOutgoing(tx, ext('SIZE 1000'), 'strip');
  expect(stripped.ok && [stripped.prepared.mailParams, stripped.prepared.rcptParams, stripped.prepared.stripped, stripped.prepared.relayed]).toEqual([' SIZE=20', ['', ''], ['DSN'], []]);
  const relayed = prepareOutgoing(tx, ext(), 'relay');
  expect(relayed.ok && relayed.prepared.relayed).toEqual([0]);
});

test('what no policy can strip is refused with its catalogue reply', () => {
  const eight = { ...tx, dsn: undefined, recipients: [mailbox('b@example.net')], message: ENCODER.encode('Grüße\n') };
  for (const policy of ['refuse', 'strip'] as const) {
    const p = prepareOutgoing(eight, ext(), policy);
    expect(!p.ok && p.status.enhanced).toBe('5.6.3');
  }
  // The relay converts what it can, and bounces a DKIM-signed message with 5.6.3 (RFC 6152 §3).
  const signed = prepareOutgoing({ ...eight, message: ENCODER.encode('DKIM-Signature: v=1; d=example.org\nSubject: x\n\nGrüße\n') }, ext(), 'relay');
  expect(!signed.ok && [signed.status.code, signed.status.enhanced]).toEqual([554, '5.6.3']);
  const big = prepareOutgoing({ ...eight, message: ENCODER.encode('x'.repeat(50)) }, ext('SIZE 10'), 'strip');
  expect(!big.ok && big.status.enhanced).toBe('5.3.4');
  const utf8 = prepareOutgoing({ ...eight, recipients: [mailbox('jörg@example.net')], message: ENCODER.encode('x\n') }, ext('8BITMIME'), 'relay');
  expect(!utf8.ok && utf8.status.enhanced).toBe('5.6.7');
  const never = prepareOutgoing({ ...tx, recipients: [{ mailbox: mailbox('b@example.net'), params: { notify: ['NEVER', 'SUCCESS'] } }] }, ext('DSN'), 'refuse');
  expect(!never.ok && never.status.lines[0]).toContain('NOTIFY=NEVER');
});

test('an SMTPUTF8 message with UTF-8 header fields goes with SMTPUTF8, or is refused with 5.6.9 (RFC 6532, RFC 6533)', () => {
  const headed = { sender: mailbox('a@example.org'), recipients: [mailbox('b@example.net')], smtpUtf8: true, message: ENCODER.encode('Subject: Grüße\r\n\r\nbody\r\n') };
  const refused = prepareOutgoing(headed, ext('8BITMIME'), 'relay');
  expect(!refused.ok && [refused.status.code, refused.status.enhanced]).toEqual([554, '5.6.9']);
  const sent = prepareOutgoing(headed, ext('8BITMIME', 'SMTPUTF8'), 'relay');
  expect(sent.ok && sent.prepared.mailParams).toBe(' BODY=8BITMIME SMTPUTF8');
  // ASCII header fields need no SMTPUTF8 (RFC 6531 §3.2: asked for only when needed), whatever the body holds.
  const asciiHeader = prepareOutgoing({ ...headed, message: ENCODER.encode('Subject: x\r\n\r\nGrüße\r\n') }, ext('8BITMIME'), 'relay');
  expect(asciiHeader.ok && asciiHeader.prepared.mailParams).toBe(' BODY=8BITMIME');
  // Without SMTPUTF8 on the way in, 8-bit header octets are not UTF-8 by promise: the 8-bit rules apply.
  const legacy = prepareOutgoing({ ...headed, smtpUtf8: false }, ext('8BITMIME'), 'relay');
  expect(legacy.ok && legacy.prepared.mailParams).toBe(' BODY=8BITMIME');
});

test('sizes and 8-bit detection', () => {
  expect([unstuffedSize(ENCODER.encode('..a\r\nb\r\n')), unstuffedSize(ENCODER.encode('a\n')), unstuffedSize(ENCODER.encode('.\r\n'))]).toEqual([7, -1, -1]);
  expect([hasEightBit(ENCODER.encode('plain ascii text, long enough for words')), hasEightBit(ENCODER.encode('ascii then é'))]).toEqual([false, true]);
});

test('the relay policy converts 8-bit data for a server without 8BITMIME, SIZE counting the converted message', () => {
  const eight = { ...tx, dsn: undefined, recipients: [mailbox('b@example.net')], message: ENCODER.encode('Subject: x\n\n.Grüße\n') };
  const p = prepareOutgoing(eight, ext('SIZE 1000'), 'relay');
  if (!p.ok) throw new Error(p.status.lines[0]);
  const expected = 'Subject: x\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n..Gr=C3=BC=C3=9Fe\r\n';
  expect([new TextDecoder().decode(p.prepared.stuffed), p.prepared.size, p.prepared.mailParams, p.prepared.converted]).toEqual([expected, expected.length - 1, ` SIZE=${expected.length - 1}`, true]);
  // With 8BITMIME the bytes go as they are.
  const as8 = prepareOutgoing(eight, ext('8BITMIME'), 'relay');
  expect(as8.ok && [as8.prepared.mailParams, as8.prepared.converted]).toEqual([' BODY=8BITMIME', false]);
  // The size limit applies to what would be sent: the converted message.
  const tooBig = prepareOutgoing(eight, ext(`SIZE ${expected.length - 2}`), 'relay');
  expect(!tooBig.ok && tooBig.status.enhanced).toBe('5.3.4');
});
