// The Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats).
import { expect, test } from 'bun:test';
import { formatPrometheus } from '../../src/core/prometheus.ts';

test('HELP and TYPE lines, then one sample per label set', () => {
  const text = formatPrometheus([
    { name: 'x_total', help: 'Things.', type: 'counter', samples: [{ labels: { a: '1', b: 'two' }, value: 3 }, { labels: { a: '2', b: '' }, value: 0 }] },
    { name: 'y', help: 'A level.', type: 'gauge', samples: [{ value: 1.5 }] },
  ]);
  expect(text).toBe('# HELP x_total Things.\n# TYPE x_total counter\nx_total{a="1",b="two"} 3\nx_total{a="2",b=""} 0\n# HELP y A level.\n# TYPE y gauge\ny 1.5\n');
});

test('label values escape backslash, double quote and newline; HELP escapes backslash and newline', () => {
  const text = formatPrometheus([{ name: 'z', help: 'a\\b\nc', type: 'gauge', samples: [{ labels: { v: 'q"\\\n' }, value: NaN }] }]);
  expect(text).toBe('# HELP z a\\\\b\\nc\n# TYPE z gauge\nz{v="q\\"\\\\\\n"} NaN\n');
});

test('infinities and invalid names', () => {
  expect(formatPrometheus([{ name: 'i', help: 'h', type: 'gauge', samples: [{ value: Infinity }, { value: -Infinity }] }])).toContain('i +Inf\ni -Inf\n');
  expect(() => formatPrometheus([{ name: '1bad', help: 'h', type: 'gauge', samples: [] }])).toThrow('invalid metric name');
  expect(() => formatPrometheus([{ name: 'ok', help: 'h', type: 'gauge', samples: [{ labels: { 'bad-name': 'x' }, value: 1 }] }])).toThrow('invalid label name');
  expect(() => formatPrometheus([{ name: 'ok', help: 'h', type: 'gauge', samples: [{ labels: { __reserved: 'x' }, value: 1 }] }])).toThrow('invalid label name');
});
