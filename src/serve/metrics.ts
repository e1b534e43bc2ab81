/**
 * @module What `/metrics` reports. Counters are fed by the Logger's event sink, so each one counts
 * exactly the log lines of its events (accepted, rejected, not-stored, refused…); gauges (open
 * sessions, the spool, the relay queue) are read from the running services when scraped, from
 * what they already keep: a scrape walks no spool.
 * Rule: labels come from small fixed sets (protocol, reply class, SMTP verb, outcome), never from
 * an address, a message or any other value a client chooses, so cardinality stays bounded.
 */
import { VERBS } from '../core/command.ts';
import { PROMETHEUS_CONTENT_TYPE, formatPrometheus, type MetricFamily, type Sample } from '../core/prometheus.ts';
import type { HttpRoute } from '../http/http-server.ts';
import type { EventSink, Fields } from '../log.ts';
import type { QueuedKind } from '../spool/spool.ts';

/** What the gauges read at scrape time. */
export interface MetricsSources {
  /** Sessions opened since start and open now, per listener protocol. */
  sessions(): readonly { readonly protocol: string; readonly opened: number; readonly open: number }[];
  spool(): { readonly messages: number; readonly bytes: number; readonly oldestMs: number | null };
  /** Recipients the relay still owes an attempt, by state: counters the spool keeps, not a walk. */
  queue(): Readonly<Record<QueuedKind, number>>;
  now(): number;
}

const PROTOCOLS = new Set(['smtp', 'pop3', 'imap']);
const QUEUED_KINDS: readonly QueuedKind[] = ['pending', 'deferred', 'held'];
const SMTP_VERBS: ReadonlySet<string> = new Set(VERBS);
/** Delivery attempt outcomes, as the relay logs them: one line per attempt and recipient. */
const DELIVERY_OUTCOMES = new Set(['delivered', 'deferred', 'bounced']);

/** "2xx", "4xx" or "5xx" from a reply as the log writes it ("550 5.7.1 …"). */
export function replyClassOf(reply: unknown): string {
  const match = typeof reply === 'string' ? /^([245])\d\d(?: |$)/.exec(reply) : null;
  return match ? `${match[1]}xx` : 'other';
}

function protocolOf(fields: Fields): string {
  const p = fields.protocol;
  return typeof p === 'string' && PROTOCOLS.has(p) ? p : 'smtp';
}

/** A counter family: label values joined into one key. */
class Counter {
  readonly #values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    /** Label sets shown as 0 before their first event, so a rate() has a starting point. */
    initial: readonly (readonly string[])[] = labelNames.length === 0 ? [[]] : [],
  ) {
    for (const labels of initial) this.add(labels, 0);
  }

  add(labels: readonly string[], by = 1): void {
    const key = labels.join('\u0000');
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }

  family(): MetricFamily {
    const samples: Sample[] = [];
    for (const [key, value] of [...this.#values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const parts = key.split('\u0000');
      samples.push({ labels: Object.fromEntries(this.labelNames.map((n, i) => [n, parts[i]])), value });
    }
    return { name: this.name, help: this.help, type: 'counter', samples };
  }
}

export class ServeMetrics {
  readonly #messages = new Counter('mailbox_smtp_messages_total', 'Messages answered at the end of DATA, by result (accepted, rejected, not-stored) and reply class.', ['result', 'class'], [['accepted', '2xx']]);
  readonly #acceptedBytes = new Counter('mailbox_smtp_accepted_bytes_total', 'Bytes of the messages accepted.', []);
  readonly #rejections = new Counter('mailbox_smtp_rejections_total', 'SMTP commands answered with 4xx or 5xx, by command and reply class.', ['command', 'class']);
  readonly #refused = new Counter('mailbox_connections_refused_total', 'Connections refused before a session started (limits, untrusted), by protocol.', ['protocol']);
  readonly #tlsFailed = new Counter('mailbox_tls_failures_total', 'TLS handshakes that failed, by protocol.', ['protocol']);
  readonly #auth = new Counter('mailbox_smtp_auth_total', 'SMTP AUTH attempts, by result.', ['result']);
  readonly #deliveries = new Counter('mailbox_delivery_attempts_total', 'Relay delivery attempts per recipient, by outcome (delivered, deferred, bounced).', ['outcome'], [['delivered'], ['deferred'], ['bounced']]);
  readonly #errors = new Counter('mailbox_internal_errors_total', 'Internal errors (each one a bug report), by protocol.', ['protocol']);

  /** The Logger's sink: each event below is counted when its line is written. */
  readonly sink: EventSink = (_level, event, fields) => {
    switch (event) {
      case 'accepted':
        this.#messages.add(['accepted', '2xx']);
        if (typeof fields.size === 'number') this.#acceptedBytes.add([], fields.size);
        return;
      case 'not-stored':
        this.#messages.add(['not-stored', replyClassOf(fields.reply)]);
        return;
      case 'rejected': {
        // The log has the command line as sent ("RCPT TO:<…>"): its verb is the label.
        const verb = typeof fields.command === 'string' ? fields.command.split(/[ :]/, 1)[0].toUpperCase() : '';
        const command = SMTP_VERBS.has(verb) ? verb : 'other';
        const replyClass = replyClassOf(fields.reply);
        this.#rejections.add([command, replyClass]);
        if (command === 'DATA' || command === 'BDAT') this.#messages.add(['rejected', replyClass]);
        return;
      }
      case 'refused':
        this.#refused.add([protocolOf(fields)]);
        return;
      case 'tls-failed':
        this.#tlsFailed.add([protocolOf(fields)]);
        return;
      case 'authenticated':
        this.#auth.add(['ok']);
        return;
      case 'auth-failed':
        this.#auth.add(['failed']);
        return;
      case 'internal-error':
        this.#errors.add([protocolOf(fields)]);
        return;
      default:
        if (DELIVERY_OUTCOMES.has(event)) this.#deliveries.add([event]);
    }
  };

  /** The exposition text: the counters, then the gauges read from `sources` now. */
  render(sources: MetricsSources): string {
    const sessions = sources.sessions();
    const spool = sources.spool();
    const queue = sources.queue();
    const gauges: MetricFamily[] = [
      {
        name: 'mailbox_sessions_total',
        help: 'Sessions (connections) opened since start, by protocol.',
        type: 'counter',
        samples: sessions.map((s) => ({ labels: { protocol: s.protocol }, value: s.opened })),
      },
      {
        name: 'mailbox_sessions_open',
        help: 'Sessions open now, by protocol.',
        type: 'gauge',
        samples: sessions.map((s) => ({ labels: { protocol: s.protocol }, value: s.open })),
      },
      { name: 'mailbox_spool_messages', help: 'Messages in the spool (listed, not deleted).', type: 'gauge', samples: [{ value: spool.messages }] },
      { name: 'mailbox_spool_bytes', help: 'Bytes of the spool segments and the state journal.', type: 'gauge', samples: [{ value: spool.bytes }] },
      {
        name: 'mailbox_spool_oldest_message_age_seconds',
        help: 'Age of the oldest message in the spool (0 when it is empty).',
        type: 'gauge',
        samples: [{ value: spool.oldestMs === null ? 0 : Math.max(0, (sources.now() - spool.oldestMs) / 1000) }],
      },
      {
        name: 'mailbox_queue_recipients',
        help: 'Recipients the relay still owes an attempt, by state (pending, deferred, held by the operator).',
        type: 'gauge',
        samples: QUEUED_KINDS.map((state) => ({ labels: { state }, value: queue[state] })),
      },
    ];
    const counters = [this.#messages, this.#acceptedBytes, this.#rejections, this.#refused, this.#tlsFailed, this.#auth, this.#deliveries, this.#errors].map((c) => c.family());
    return formatPrometheus([...gauges, ...counters]);
  }
}

/** Counts sessions per protocol over the listeners, which know how many they opened and hold. */
export function sessionsByProtocol(listeners: readonly { readonly protocol: string; readonly opened: number; readonly open: number }[]): { protocol: string; opened: number; open: number }[] {
  const by = new Map<string, { protocol: string; opened: number; open: number }>();
  for (const protocol of ['smtp', 'pop3', 'imap']) by.set(protocol, { protocol, opened: 0, open: 0 });
  for (const l of listeners) {
    const row = by.get(l.protocol);
    if (!row) continue;
    row.opened += l.opened;
    row.open += l.open;
  }
  return [...by.values()];
}

/** GET /metrics on the HTTP server, behind the same auth as the API (the listener's). */
export function metricsRoute(metrics: ServeMetrics, sources: MetricsSources): HttpRoute {
  return {
    method: 'GET',
    path: '/metrics',
    handler: () => new Response(metrics.render(sources), { headers: { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Cache-Control': 'no-store' } }),
  };
}
