import { describe, expect, test } from 'bun:test';
import { fromLineSender, isMbox, splitMbox } from '../../src/message/mbox.ts';

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1');

describe('splitMbox (RFC 4155, read as Python mailbox and mutt read it)', () => {
  const mbox = Buffer.from(
    'From alice@example.org Thu Nov 26 10:00:00 2026\nSubject: one\n\nbody one\n>From the start\n>>From twice\n\n' +
      'From MAILER-DAEMON Thu Nov 26 10:01:00 2026\nSubject: two\n\nbody two\n\n\n' +
      'From bob@example.org Thu Nov 26 10:02:00 2026\nSubject: three\n\nlast, no blank line after\n',
    'latin1',
  );

  test('one message per "From " line, the separating empty line dropped, ">From " unescaped once', () => {
    const messages = [...splitMbox(mbox)];
    expect(messages.map((m) => m.fromLine)).toEqual([
      'alice@example.org Thu Nov 26 10:00:00 2026',
      'MAILER-DAEMON Thu Nov 26 10:01:00 2026',
      'bob@example.org Thu Nov 26 10:02:00 2026',
    ]);
    expect(messages.map((m) => text(m.bytes))).toEqual([
      'Subject: one\n\nbody one\nFrom the start\n>From twice\n',
      'Subject: two\n\nbody two\n\n',
      'Subject: three\n\nlast, no blank line after\n',
    ]);
    expect(messages[1].offset).toBe(mbox.indexOf('From MAILER'));
  });

  test('CRLF files split the same way', () => {
    const crlf = Buffer.from(text(mbox).replace(/\n/g, '\r\n'), 'latin1');
    expect([...splitMbox(crlf)].map((m) => text(m.bytes))[1]).toBe('Subject: two\r\n\r\nbody two\r\n\r\n');
  });

  test('a message without any "From " line to escape is a view of the file, not a copy', () => {
    const file = Buffer.from('From a@b.example now\nSubject: x\n\ny\n');
    const [first] = [...splitMbox(file)];
    expect(first.bytes.buffer).toBe(file.buffer);
    expect(text(first.bytes)).toBe('Subject: x\n\ny\n');
  });

  test.each([
    ['alice@example.org Thu Nov 26 10:00:00 2026', 'alice@example.org'],
    ['<bob@example.org> Thu', 'bob@example.org'],
    ['MAILER-DAEMON Thu Nov 26', null],
    ['- Thu', null],
  ])('the sender of "From %s" is %p', (line, sender) => {
    expect(fromLineSender(line)).toBe(sender);
  });

  test('isMbox looks at the first bytes', () => {
    expect(isMbox(Buffer.from('From x'))).toBe(true);
    expect(isMbox(Buffer.from('EHLO x'))).toBe(false);
    expect(isMbox(Buffer.from('Fro'))).toBe(false);
  });
});
