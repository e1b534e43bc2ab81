import { expect, test } from 'bun:test';
import { ConnectionLimits } from '../../src/transport/connection-limits.ts';
import { describeReply } from '../../src/core/reply.ts';

test('overall and per-address caps; exempt addresses skip only the per-address one', () => {
  const limits = new ConnectionLimits({ maxConnections: 4, maxPerAddress: 2, exempt: (a) => a === '127.0.0.1' });
  expect(limits.admit('192.0.2.1')).toBeNull();
  expect(limits.admit('192.0.2.1')).toBeNull();
  expect(describeReply(limits.admit('192.0.2.1')!)).toStartWith('421 4.7.0 Too many connections from your address');
  expect(limits.admit('127.0.0.1')).toBeNull();
  expect(limits.admit('127.0.0.1')).toBeNull();
  expect(limits.total).toBe(4);
  expect(describeReply(limits.admit('127.0.0.1')!)).toStartWith('421 4.7.0 Too many connections,');
  limits.release('192.0.2.1');
  expect(limits.admit('192.0.2.1')).toBeNull();
  // A release without an admit changes nothing.
  limits.release('198.51.100.9');
  expect(limits.total).toBe(4);
});
