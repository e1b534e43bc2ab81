// RFC 3501 §6.4.6 (STORE) and §2.3.2 (flags): the data item and flag list, and the change.
import { describe, expect, test } from 'bun:test';
import { CommandReader, type ImapValue } from '../../../src/core/imap/parser.ts';
import { applyStore, parseStoreAction } from '../../../src/core/imap/flags.ts';

function args(line: string): readonly ImapValue[] {
  const reader = new CommandReader({ maxLineBytes: 65536, maxLiteralBytes: 1000 });
  reader.feed(new TextEncoder().encode(`a STORE 1 ${line}\r\n`));
  const item = reader.next();
  if (item?.kind !== 'command') throw new Error(`not a command: ${JSON.stringify(item)}`);
  return item.command.args.slice(1);
}

describe('parseStoreAction (RFC 3501 §6.4.6)', () => {
  test.each([
    ['FLAGS (\\Seen)', { mode: 'set', silent: false, flags: ['\\Seen'] }],
    ['+FLAGS (\\seen \\DELETED $Label)', { mode: 'add', silent: false, flags: ['\\Seen', '\\Deleted', '$Label'] }],
    ['-flags.silent \\Flagged', { mode: 'remove', silent: true, flags: ['\\Flagged'] }],
    ['+FLAGS.SILENT \\Answered \\Draft', { mode: 'add', silent: true, flags: ['\\Answered', '\\Draft'] }],
    ['FLAGS ()', { mode: 'set', silent: false, flags: [] }],
    ['+FLAGS (work Work)', { mode: 'add', silent: false, flags: ['work'] }],
  ])('%s', (line, action) => expect(parseStoreAction(args(line))).toEqual({ ok: true, action } as never));

  test.each([
    ['FLAGS', 'FLAGS needs a flag list'],
    ['+FLAG (\\Seen)', '"+FLAG" is not FLAGS, +FLAGS or -FLAGS'],
    ['+FLAGS (\\Recent)', '\\Recent cannot be stored'],
    ['+FLAGS (\\Foo)', '"\\Foo" is not a flag'],
    ['+FLAGS ("x")', 'a flag is an atom like \\Seen or $Label'],
    ['"FLAGS" (\\Seen)', 'STORE needs FLAGS, +FLAGS or -FLAGS'],
  ])('BAD for %s', (line, why) => expect(parseStoreAction(args(line))).toEqual({ ok: false, why }));
});

describe('applyStore', () => {
  const act = (line: string) => {
    const r = parseStoreAction(args(line));
    if (!r.ok) throw new Error(r.why);
    return r.action;
  };
  test('FLAGS replaces, +FLAGS adds what is missing, -FLAGS removes case-insensitively', () => {
    expect(applyStore(['\\Seen', 'x'], act('FLAGS (\\Flagged)'))).toEqual(['\\Flagged']);
    expect(applyStore(['\\Seen'], act('+FLAGS (\\SEEN \\Deleted)'))).toEqual(['\\Seen', '\\Deleted']);
    expect(applyStore(['\\Seen', 'Work', '$x'], act('-FLAGS (work \\seen)'))).toEqual(['$x']);
  });
});
