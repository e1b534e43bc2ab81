// Log lines: the JSON form is byte for byte what JSON.stringify of the spread object gives, and
// each line carries its own time.
import { afterEach, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, jsonLine, type Fields } from '../src/log.ts';

const TIME = '2026-12-02T14:00:00.000Z';

test.each<[string, Fields]>([
  ['no fields', {}],
  ['fields in their order', { id: 'm1', to: 'a@b.example', delay: 0.5, dsn: '2.0.0', reply: '250 2.0.0 "Ok" \\ queued' }],
  ['undefined fields left out', { id: 'm1', tls: undefined, next: undefined }],
  ['only undefined fields', { tls: undefined }],
  ['nested values', { list: ['a', 'b'], reply: { code: 250, lines: ['OK'] } }],
  ['a field named event', { event: 'other', id: 'm1' }],
  ['a field named time', { id: 'm1', time: 'then' }],
  ['a field named level', { level: 'debug' }],
])('jsonLine: %s', (_what, fields) => {
  for (const event of ['delivered', 'relay "x" \u00e9\n']) {
    expect(jsonLine(TIME, 'warn', event, fields)).toBe(JSON.stringify({ time: TIME, level: 'warn', event, ...fields }));
  }
});

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test('each line has the time it was logged at, in either format', () => {
  for (const format of ['json', 'text'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'mailbox-log-'));
    dirs.push(dir);
    const file = join(dir, 'log');
    let now = Date.parse(TIME);
    const log = createLogger({ format, file, now: () => now });
    log.info('a', { n: 1 });
    log.info('b', { n: 2 });
    now += 1;
    log.warn('c');
    now += 1000;
    log.error('d', { n: 4 });
    log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const times = ['2026-12-02T14:00:00.000Z', '2026-12-02T14:00:00.000Z', '2026-12-02T14:00:00.001Z', '2026-12-02T14:00:01.001Z'];
    if (format === 'json') {
      expect(lines.map((l) => JSON.parse(l))).toEqual([
        { time: times[0], level: 'info', event: 'a', n: 1 },
        { time: times[1], level: 'info', event: 'b', n: 2 },
        { time: times[2], level: 'warn', event: 'c' },
        { time: times[3], level: 'error', event: 'd', n: 4 },
      ]);
    } else {
      expect(lines).toEqual([`${times[0]} a n=1`, `${times[1]} b n=2`, `${times[2]} c`, `${times[3]} d n=4`]);
    }
  }
});
