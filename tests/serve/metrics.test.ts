// /metrics counters are fed by the Logger's sink: each one counts the log lines of its events.
import { expect, test } from 'bun:test';
import { createLogger } from '../../src/log.ts';
import { ServeMetrics, replyClassOf, sessionsByProtocol, type MetricsSources } from '../../src/serve/metrics.ts';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sources = (over: Partial<MetricsSources> = {}): MetricsSources => ({
  sessions: () => sessionsByProtocol([]),
  spool: () => ({ messages: 0, bytes: 0, oldestMs: null }),
  queue: () => ({ pending: 0, deferred: 0, held: 0 }),
  now: () => 10_000,
  ...over,
});

/** The value of one sample line, or undefined when the exposition has none. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('log events through a real Logger are what the counters count', () => {
  const dir = mkdtempSync(join(tmpdir(), 'metrics-'));
  try {
    const metrics = new ServeMetrics();
    const log = createLogger({ format: 'json', file: join(dir, 'log'), now: () => 0, sink: metrics.sink });
    log.info('accepted', { id: 'A', from: 'a@x.test', to: ['b@x.test'], size: 120, client: '127.0.0.1' });
    log.info('accepted', { id: 'B', from: 'a@x.test', to: ['c@x.test'], size: 80, client: '127.0.0.1' });
    log.warn('rejected', { client: '127.0.0.1', command: 'rcpt TO:<b@x.test>', reply: '550 5.7.1 relaying denied', blame: undefined });
    log.warn('rejected', { client: '127.0.0.1', command: 'DATA', reply: '552 5.3.4 message too big' });
    log.warn('rejected', { client: '127.0.0.1', command: 'XYZZY-any-client-text', reply: '500 5.5.2 unknown' });
    log.error('not-stored', { id: 'C', reply: '452 4.3.1 spool full' });
    log.warn('refused', { protocol: 'pop3', client: '127.0.0.1', reply: 'too many' });
    log.warn('refused', { client: '127.0.0.1', reply: '421 4.7.0 too many connections' });
    log.warn('auth-failed', { user: 'u' });
    log.info('authenticated', { user: 'u' });
    log.info('delivered', { id: 'A' });
    log.info('deferred', { id: 'A' });
    log.close();
    const lines = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(12);

    const text = metrics.render(sources());
    expect(sample(text, 'mailbox_smtp_messages_total{result="accepted",class="2xx"}')).toBe(2);
    expect(sample(text, 'mailbox_smtp_messages_total{result="rejected",class="5xx"}')).toBe(1);
    expect(sample(text, 'mailbox_smtp_messages_total{result="not-stored",class="4xx"}')).toBe(1);
    expect(sample(text, 'mailbox_smtp_accepted_bytes_total')).toBe(200);
    expect(sample(text, 'mailbox_smtp_rejections_total{command="RCPT",class="5xx"}')).toBe(1);
    expect(sample(text, 'mailbox_smtp_rejections_total{command="DATA",class="5xx"}')).toBe(1);
    // A verb the client made up is not a label value: cardinality stays bounded.
    expect(sample(text, 'mailbox_smtp_rejections_total{command="other",class="5xx"}')).toBe(1);
    expect(text).not.toContain('XYZZY');
    expect(sample(text, 'mailbox_connections_refused_total{protocol="pop3"}')).toBe(1);
    expect(sample(text, 'mailbox_connections_refused_total{protocol="smtp"}')).toBe(1);
    expect(sample(text, 'mailbox_smtp_auth_total{result="failed"}')).toBe(1);
    expect(sample(text, 'mailbox_smtp_auth_total{result="ok"}')).toBe(1);
    expect(sample(text, 'mailbox_delivery_attempts_total{outcome="delivered"}')).toBe(1);
    expect(sample(text, 'mailbox_delivery_attempts_total{outcome="deferred"}')).toBe(1);
    expect(sample(text, 'mailbox_delivery_attempts_total{outcome="bounced"}')).toBe(0);
    // No address, id or client ever becomes a label.
    for (const leak of ['a@x.test', 'b@x.test', '127.0.0.1', '"A"', 'id=']) expect(text).not.toContain(leak);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gauges are read from the sources when scraped', () => {
  const metrics = new ServeMetrics();
  const text = metrics.render(
    sources({
      sessions: () =>
        sessionsByProtocol([
          { protocol: 'smtp', opened: 5, open: 1 },
          { protocol: 'smtp', opened: 2, open: 0 },
          { protocol: 'imap', opened: 1, open: 1 },
        ]),
      spool: () => ({ messages: 7, bytes: 4096, oldestMs: 4_000 }),
      queue: () => ({ pending: 3, deferred: 2, held: 1 }),
    }),
  );
  expect(sample(text, 'mailbox_sessions_total{protocol="smtp"}')).toBe(7);
  expect(sample(text, 'mailbox_sessions_open{protocol="smtp"}')).toBe(1);
  expect(sample(text, 'mailbox_sessions_total{protocol="pop3"}')).toBe(0);
  expect(sample(text, 'mailbox_sessions_open{protocol="imap"}')).toBe(1);
  expect(sample(text, 'mailbox_spool_messages')).toBe(7);
  expect(sample(text, 'mailbox_spool_bytes')).toBe(4096);
  expect(sample(text, 'mailbox_spool_oldest_message_age_seconds')).toBe(6);
  expect(sample(text, 'mailbox_queue_recipients{state="pending"}')).toBe(3);
  expect(sample(text, 'mailbox_queue_recipients{state="deferred"}')).toBe(2);
  expect(sample(text, 'mailbox_queue_recipients{state="held"}')).toBe(1);
  // Counters that saw no event yet are still there at 0, so rate() has a start.
  expect(sample(text, 'mailbox_smtp_messages_total{result="accepted",class="2xx"}')).toBe(0);
  expect(sample(text, 'mailbox_spool_oldest_message_age_seconds')).toBeGreaterThan(0);
  expect(sample(metrics.render(sources()), 'mailbox_spool_oldest_message_age_seconds')).toBe(0);
});

test('reply classes', () => {
  expect(replyClassOf('250 2.0.0 ok')).toBe('2xx');
  expect(replyClassOf('451 4.3.0 later')).toBe('4xx');
  expect(replyClassOf('554 5.7.1 no')).toBe('5xx');
  expect(replyClassOf('554')).toBe('5xx');
  expect(replyClassOf('5540 no')).toBe('other');
  expect(replyClassOf(undefined)).toBe('other');
});
