// RFC 3501 §7.4.2: the ENVELOPE structure, with address groups, routes, and RFC 2047 words left encoded.
import { describe, expect, test } from 'bun:test';
import { ResponseBuilder } from '../../../src/core/imap/format.ts';
import { parseAddressList, writeEnvelope } from '../../../src/core/imap/envelope.ts';

function envelope(fields: Record<string, string>): string {
  const b = new ResponseBuilder();
  writeEnvelope(b, { first: (name) => fields[name] ?? null });
  return b.build().map((c) => (typeof c === 'string' ? c : new TextDecoder().decode(c))).join('');
}

describe('writeEnvelope (RFC 3501 §7.4.2)', () => {
  test('the RFC 3501 §8 example message', () => {
    expect(
      envelope({
        date: 'Wed, 17 Jul 1996 02:23:25 -0700 (PDT)',
        subject: 'IMAP4rev1 WG mtg summary and minutes',
        from: 'Terry Gray <gray@cac.washington.edu>',
        to: 'imap@cac.washington.edu',
        cc: 'minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>',
        'message-id': '<B27397-0100000@cac.washington.edu>',
      }),
    ).toBe(
      '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL "<B27397-0100000@cac.washington.edu>")',
    );
  });

  test('Sender and Reply-To are their own when present and not empty', () => {
    const e = envelope({ from: 'a@x.example', sender: 'b@x.example', 'reply-to': '  ' });
    expect(e).toBe('(NIL NIL ((NIL NIL "a" "x.example")) ((NIL NIL "b" "x.example")) ((NIL NIL "a" "x.example")) NIL NIL NIL NIL NIL)');
  });

  test('an empty header gives NIL everywhere', () => {
    expect(envelope({})).toBe('(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)');
  });

  test('RFC 2047 words stay encoded; 8-bit subjects go out as literals', () => {
    expect(envelope({ subject: '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=', from: '=?UTF-8?B?SsO8cmdlbg==?= <j@x.example>' })).toBe(
      '(NIL "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=" (("=?UTF-8?B?SsO8cmdlbg==?=" NIL "j" "x.example")) (("=?UTF-8?B?SsO8cmdlbg==?=" NIL "j" "x.example")) (("=?UTF-8?B?SsO8cmdlbg==?=" NIL "j" "x.example")) NIL NIL NIL NIL NIL)',
    );
    expect(envelope({ subject: 'grüße' })).toBe('(NIL {7}\r\ngrüße NIL NIL NIL NIL NIL NIL NIL NIL)');
  });
});

describe('parseAddressList (RFC 5322 §3.4 into RFC 3501 §7.4.2 addresses)', () => {
  const show = (value: string) => parseAddressList(value).map((a) => [a.name, a.adl, a.mailbox, a.host]);
  test('groups are a start marker with the name and an end marker', () => {
    expect(show('Team: a@x.example, "B B" <b@y.example>;, c@z.example')).toEqual([
      [null, null, 'Team', null],
      [null, null, 'a', 'x.example'],
      ['B B', null, 'b', 'y.example'],
      [null, null, null, null],
      [null, null, 'c', 'z.example'],
    ]);
    expect(show('undisclosed-recipients:;')).toEqual([
      [null, null, 'undisclosed-recipients', null],
      [null, null, null, null],
    ]);
  });
  test('source routes, quoted local parts, comments, domain literals, and a missing host', () => {
    expect(show('<@r1.example,@r2.example:u@h.example>')).toEqual([[null, '@r1.example,@r2.example', 'u', 'h.example']]);
    expect(show('"john doe"@x.example (comment)')).toEqual([[null, null, '"john doe"', 'x.example']]);
    expect(show('J. Q. Public <jqp@[192.0.2.1]>')).toEqual([['J. Q. Public', null, 'jqp', '[192.0.2.1]']]);
    expect(show('localonly')).toEqual([[null, null, 'localonly', '.MISSING-HOST-NAME.']]);
    expect(show('"Quoted \\"Name\\"" <q@x.example>')).toEqual([['Quoted "Name"', null, 'q', 'x.example']]);
  });
  test('a stray ")" is skipped (it once made the tokenizer loop)', () => {
    expect(show('a) b@x.example')).toEqual([[null, null, 'ab', 'x.example']]);
  });
  test('junk does not throw and keeps what it can', () => {
    expect(show('a@x.example, <<>>, ,,@, "unterminated')).toEqual([[null, null, 'a', 'x.example'], [null, null, '"unterminated"', '.MISSING-HOST-NAME.']]);
  });
});
