// The client core paired with the server core, with no socket between them (after h11's
// ConnectionPair): what one writes the other reads. Transactions with per-recipient DSN
// parameters (RFC 3461 §4: NOTIFY and ORCPT travel with their recipient) go through both, with
// PIPELINING and CHUNKING as the server offers them, and arrive as they were sent.
import { describe, expect, test } from 'bun:test';
import { formatMailbox } from '../../src/core/address.ts';
import { ClientSession, type AnyTransaction, type ClientOptions, type ClientStep, type TransactionOutcome } from '../../src/core/client-session.ts';
import { decodeXtext } from '../../src/core/command.ts';
import { dotUnstuff } from '../../src/core/data.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import { DEFAULT_LIMITS } from '../../src/core/limits.ts';
import { ServerSession, type ServerConfig, type Step } from '../../src/core/server-session.ts';
import { mailbox } from '../helpers/mailbox.ts';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

interface Arrived {
  readonly envelope: Envelope;
  readonly body: string;
}

/** A client and a server core wired back to back; every message the server commits is kept. */
class ConnectionPair {
  readonly client: ClientSession;
  readonly server: ServerSession;
  readonly arrived: Arrived[] = [];
  readonly outcomes: TransactionOutcome[] = [];
  readonly wire: string[] = [];
  closed = false;
  #now = 1_000_000;

  constructor(client: Partial<ClientOptions> = {}, server: Partial<ServerConfig> = {}) {
    let ids = 0;
    const config: ServerConfig = {
      hostname: 'mx.test',
      postmaster: mailbox('postmaster@mx.test'),
      localDomains: null,
      relay: false,
      trusted: false,
      clientAddress: '192.0.2.1',
      tls: 'none',
      requireTls: false,
      auth: null,
      newId: () => `ID${++ids}`,
      limits: DEFAULT_LIMITS,
      ...server,
    };
    this.server = new ServerSession(config, this.#now);
    this.client = new ClientSession({ ehloName: 'client.test', ...client });
    this.#toClient(this.server.greet(this.#now));
  }

  /** Client output goes to the server, whose replies go back, until both are quiet. */
  drive(step: ClientStep): void {
    this.#fromClient(step);
  }

  #fromClient(step: ClientStep): void {
    for (const event of step.events) if (event.kind === 'outcome') this.outcomes.push(event.outcome);
    if (step.close) this.closed = true;
    for (const chunk of step.out) {
      const bytes = typeof chunk === 'string' ? ENCODER.encode(chunk) : chunk;
      this.wire.push(`C: ${DECODER.decode(bytes)}`);
      this.#toClient(this.server.receive(bytes, this.#now));
    }
  }

  #toClient(step: Step): void {
    for (const event of step.events) {
      if (event.kind !== 'message') continue;
      this.arrived.push({ envelope: event.envelope, body: DECODER.decode(dotUnstuff(event.stuffed)) });
      this.#toClient(this.server.resolve(event.requestId, { ok: true }, this.#now));
    }
    if (step.out.length > 0) {
      this.wire.push(`S: ${step.out}`);
      this.#fromClient(this.client.receive(ENCODER.encode(step.out)));
    }
  }
}

const param = (params: readonly { name: string; value: string | null }[], name: string) => params.find((p) => p.name === name)?.value ?? null;

function transactions(): AnyTransaction[] {
  return [
    {
      sender: mailbox('alice@example.org'),
      recipients: [
        { mailbox: mailbox('bob@example.net'), params: { notify: ['SUCCESS', 'FAILURE'], orcpt: { type: 'rfc822', address: 'Bob+list=x@example.net' } } },
        { mailbox: mailbox('carol@example.net'), params: { notify: ['NEVER'] } },
        mailbox('dave@example.net'),
      ],
      dsn: { ret: 'HDRS', envid: 'env 1+2', notify: ['DELAY'] },
      message: ENCODER.encode('Subject: one\n\n.leading dot\nbody\n'),
    },
    { sender: null, recipients: [{ mailbox: mailbox('erin@example.com'), params: { notify: ['FAILURE'] } }], message: ENCODER.encode('Subject: two\n\nbounce\n') },
  ];
}

describe('client core ⇄ server core, no sockets', () => {
  for (const chunking of [false, true]) {
    test(`per-recipient NOTIFY and ORCPT reach the server, each on its own RCPT (${chunking ? 'BDAT' : 'DATA'})`, () => {
      const pair = new ConnectionPair({ chunking });
      for (const tx of transactions()) pair.drive(pair.client.send(tx));
      pair.drive(pair.client.quit());

      expect(pair.outcomes.map((o) => o.ok)).toEqual([true, true]);
      expect(pair.closed).toBe(true);
      expect(pair.wire.join('\n')).toMatch(chunking ? /(^|\n)(C: )?BDAT \d+ LAST\r\n/ : /(^|\n)(C: )?DATA\r\n/);
      expect(pair.arrived).toHaveLength(2);

      const [first, second] = pair.arrived.map((a) => a.envelope);
      expect(param(first.mailParams, 'RET')).toBe('HDRS');
      expect(decodeXtext(param(first.mailParams, 'ENVID')!)).toBe('env 1+2');
      expect(first.recipients.map((r) => [formatMailbox(r.mailbox), param(r.params, 'NOTIFY'), param(r.params, 'ORCPT')])).toEqual([
        ['bob@example.net', 'SUCCESS,FAILURE', 'rfc822;Bob+2Blist+3Dx@example.net'],
        ['carol@example.net', 'NEVER', null],
        // No NOTIFY of its own: the transaction's default.
        ['dave@example.net', 'DELAY', null],
      ]);
      expect(decodeXtext('Bob+2Blist+3Dx@example.net')).toBe('Bob+list=x@example.net');
      expect(second.sender).toBeNull();
      expect(second.recipients.map((r) => [formatMailbox(r.mailbox), param(r.params, 'NOTIFY')])).toEqual([['erin@example.com', 'FAILURE']]);
      expect(pair.arrived[0].body).toEndWith('Subject: one\r\n\r\n.leading dot\r\nbody\r\n');
    });
  }

  test('a server without DSN (the server core always offers it, so this one is scripted): send refuses with 5.3.3, replay and the relay strip', () => {
    const outcome = (policy: 'refuse' | 'strip' | 'relay') => {
      const client = new ClientSession({ ehloName: 'client.test', outgoing: policy });
      client.receive(ENCODER.encode('220 mx.test ESMTP\r\n'));
      client.receive(ENCODER.encode('250-mx.test\r\n250 PIPELINING\r\n'));
      const step = client.send(transactions()[0]);
      const out = step.out.map((c) => (typeof c === 'string' ? c : '')).join('');
      const failed = step.events.flatMap((e) => (e.kind === 'outcome' && !e.outcome.ok ? [e.outcome.failure] : []));
      return { out, failed };
    };
    const refused = outcome('refuse');
    expect(refused.failed.map((f) => [f.status.code, f.status.enhanced, f.permanent])).toEqual([[554, '5.3.3', true]]);
    for (const policy of ['strip', 'relay'] as const) {
      const { out, failed } = outcome(policy);
      expect(failed).toEqual([]);
      expect(out).toBe('MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\nRCPT TO:<dave@example.net>\r\nDATA\r\n');
    }
  });
});
