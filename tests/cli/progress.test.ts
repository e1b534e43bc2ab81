import { describe, expect, test } from 'bun:test';
import { formatProgressLine, ProgressLine } from '../../src/cli/progress.ts';
import { colorsFor } from '../../src/cli/render.ts';

const plain = colorsFor({ isTTY: false }, {});

describe('progress line', () => {
  test('count, share, rate, errors and time left', () => {
    expect(formatProgressLine(plain, { done: 3712, fraction: 0.375, elapsedMs: 3000, errors: 2 }, 'msg')).toBe(
      '[#########...............]   37%  3,712 msg  1,237 msg/s  2 errors  ETA 5s',
    );
    expect(formatProgressLine(plain, { done: 0, fraction: 0, elapsedMs: 0, errors: 1 }, 'msg')).toBe('[........................]    0%  0 msg  0 msg/s  1 error  ETA ?');
    expect(formatProgressLine(plain, { done: 10, fraction: 0.01, elapsedMs: 60_000, errors: 0 }, 'msg')).toEndWith('ETA 1h39m');
  });

  test('drawn on a terminal at most every 100 ms, erased before other output; never when piped', () => {
    let now = 0;
    const tty: string[] = [];
    const line = new ProgressLine({ isTTY: true, write: (t: string) => tty.push(t) }, {}, () => now);
    line.update(() => 'a');
    now = 50;
    line.update(() => 'b');
    now = 150;
    line.update(() => 'c');
    line.update(() => 'd', true);
    line.clear();
    line.clear();
    expect(tty).toEqual(['\r\x1b[Ka', '\r\x1b[Kc', '\r\x1b[Kd', '\r\x1b[K']);

    const piped: string[] = [];
    const quiet = new ProgressLine({ isTTY: false, write: (t: string) => piped.push(t) }, {}, () => now);
    quiet.update(() => 'x', true);
    quiet.clear();
    const dumb = new ProgressLine({ isTTY: true, write: (t: string) => piped.push(t) }, { TERM: 'dumb' }, () => now);
    dumb.update(() => 'x', true);
    expect(piped).toEqual([]);
  });
});
