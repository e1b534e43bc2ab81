/**
 * @module DNS stub resolver over node:dgram (TCP when an answer is truncated), for one server.
 * BUN.md §4: Bun's node:dns cannot tell NXDOMAIN from NODATA; mail routing needs that difference
 * (a missing domain is permanent, a domain without MX falls back to its address), so this file
 * asks the server itself and keeps every outcome apart: answer, NODATA, NXDOMAIN, SERVFAIL,
 * REFUSED, timeout.
 * Rule 1: it talks only to the one server it was given; each lookup is asked once per resolver.
 * Rule 2: it never throws for a DNS problem: every lookup resolves with a status and evidence.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { connect as connectTcp } from 'node:net';
import { decodeMessage, DnsFormatError, encodeQuery, formatRecord, rcodeName, RR_TYPE, type DnsMessage, type DnsRecord } from './packet.ts';

export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

export type LookupType = 'MX' | 'A' | 'AAAA';

/**
 * 'answer': records of the asked type. 'nodata': the name exists without such records.
 * 'nxdomain': the name does not exist. 'servfail', 'refused', 'timeout', 'error': the question
 * could not be answered now; never a verdict about the name.
 */
export type LookupStatus = 'answer' | 'nodata' | 'nxdomain' | 'servfail' | 'refused' | 'timeout' | 'error';

export interface Lookup {
  readonly name: string;
  readonly type: LookupType;
  readonly status: LookupStatus;
  /** Records of the asked type, in the order the server gave them. */
  readonly records: readonly DnsRecord[];
  /** Everything in the answer section (CNAMEs included), zone-file style, for evidence. */
  readonly answers: readonly string[];
  /** One line: "NOERROR, 2 records", "NXDOMAIN", "no answer from 127.0.0.1:53 in 2 s (2 tries)". */
  readonly detail: string;
}

export interface ResolverOptions {
  readonly server: DnsServer;
  /** How long one try waits for an answer. */
  readonly timeoutMs: number;
  /** Tries over UDP before the lookup is reported as a timeout (resolv.conf's "attempts"). */
  readonly attempts: number;
  /** At most this many questions in flight at once. */
  readonly maxInFlight?: number;
}

const DEFAULT_MAX_IN_FLIGHT = 32;
const TCP_LENGTH_OCTETS = 2;

/** "127.0.0.1:53", "[::1]:53". */
export function formatServer(server: DnsServer): string {
  return isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

function randomId(): number {
  const id = new Uint16Array(1);
  crypto.getRandomValues(id);
  return id[0];
}

/** True when `message` answers `query` (RFC 5452 §4.3: same id, same question). */
function answers(message: DnsMessage, id: number, name: string, typeCode: number): boolean {
  const q = message.questions[0];
  return message.response && message.id === id && q !== undefined && q.typeCode === typeCode
    && q.name.toLowerCase() === name.toLowerCase().replace(/\.$/, '');
}

type Exchange = { kind: 'message'; message: DnsMessage } | { kind: 'timeout' } | { kind: 'error'; why: string };

/** One resolver per run: lookups are cached for its lifetime, so a batch asks each question once. */
export class DnsResolver {
  readonly server: DnsServer;
  readonly #options: ResolverOptions;
  readonly #cache = new Map<string, Promise<Lookup>>();
  readonly #waiting: (() => void)[] = [];
  #inFlight = 0;
  /** Questions actually sent (a cached lookup is not counted). */
  queriesSent = 0;

  constructor(options: ResolverOptions) {
    this.server = options.server;
    this.#options = options;
  }

  lookup(name: string, type: LookupType): Promise<Lookup> {
    const key = `${name.toLowerCase()} ${type}`;
    let found = this.#cache.get(key);
    if (found === undefined) {
      found = this.#limited(() => this.#resolve(name, type));
      this.#cache.set(key, found);
    }
    return found;
  }

  async #limited<T>(work: () => Promise<T>): Promise<T> {
    const max = this.#options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (this.#inFlight >= max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#inFlight++;
    try {
      return await work();
    } finally {
      this.#inFlight--;
      this.#waiting.shift()?.();
    }
  }

  async #resolve(name: string, type: LookupType): Promise<Lookup> {
    const typeCode = RR_TYPE[type];
    const base = { name, type } as const;
    let exchange: Exchange = { kind: 'timeout' };
    for (let attempt = 0; attempt < this.#options.attempts && exchange.kind === 'timeout'; attempt++) {
      exchange = await this.#askUdp(name, typeCode);
    }
    if (exchange.kind === 'message' && exchange.message.truncated) exchange = await this.#askTcp(name, typeCode);
    if (exchange.kind === 'timeout') {
      const seconds = this.#options.timeoutMs / 1000;
      const tries = this.#options.attempts === 1 ? '1 try' : `${this.#options.attempts} tries`;
      return { ...base, status: 'timeout', records: [], answers: [], detail: `no answer from ${formatServer(this.server)} within ${seconds} s (${tries})` };
    }
    if (exchange.kind === 'error') return { ...base, status: 'error', records: [], answers: [], detail: exchange.why };
    const message = exchange.message;
    const rcode = rcodeName(message.rcode);
    const all = message.answers.map(formatRecord);
    const records = message.answers.filter((r) => r.data.type === type);
    if (message.rcode === 3) return { ...base, status: 'nxdomain', records: [], answers: all, detail: rcode };
    if (message.rcode === 2) return { ...base, status: 'servfail', records: [], answers: all, detail: rcode };
    if (message.rcode === 5) return { ...base, status: 'refused', records: [], answers: all, detail: rcode };
    if (message.rcode !== 0) return { ...base, status: 'error', records: [], answers: all, detail: rcode };
    if (records.length === 0) return { ...base, status: 'nodata', records, answers: all, detail: `${rcode}, no ${type} records` };
    const count = records.length === 1 ? '1 record' : `${records.length} records`;
    return { ...base, status: 'answer', records, answers: all, detail: `${rcode}, ${count}` };
  }

  #askUdp(name: string, typeCode: number): Promise<Exchange> {
    const id = randomId();
    const query = encodeQuery(id, name, typeCode);
    const { host, port } = this.server;
    this.queriesSent++;
    return new Promise((resolve) => {
      const socket: UdpSocket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (result: Exchange) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.close();
        resolve(result);
      };
      const timer = setTimeout(() => finish({ kind: 'timeout' }), this.#options.timeoutMs);
      socket.on('message', (bytes: Buffer) => {
        let message: DnsMessage;
        try {
          message = decodeMessage(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        } catch (error) {
          // A datagram that is not an answer to us (spoofed, stale, garbage) is ignored; the timer still runs.
          if (error instanceof DnsFormatError) return;
          throw error;
        }
        if (answers(message, id, name, typeCode)) finish({ kind: 'message', message });
      });
      // A closed port may show up as an ICMP error on the socket: the server is not there; wait it out as a timeout.
      socket.on('error', () => {});
      socket.send(query, port, host, (error) => {
        if (error) finish({ kind: 'error', why: `cannot send to ${formatServer(this.server)}: ${error.message}` });
      });
    });
  }

  /** RFC 1035 §4.2.2 and RFC 7766: the same question over TCP, with a two-octet length prefix. */
  #askTcp(name: string, typeCode: number): Promise<Exchange> {
    const id = randomId();
    const query = encodeQuery(id, name, typeCode);
    this.queriesSent++;
    return new Promise((resolve) => {
      const socket = connectTcp({ host: this.server.host, port: this.server.port });
      let buffer = new Uint8Array(0);
      let done = false;
      const finish = (result: Exchange) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      const timer = setTimeout(() => finish({ kind: 'timeout' }), this.#options.timeoutMs);
      socket.on('connect', () => {
        const framed = new Uint8Array(TCP_LENGTH_OCTETS + query.length);
        new DataView(framed.buffer).setUint16(0, query.length);
        framed.set(query, TCP_LENGTH_OCTETS);
        socket.write(framed);
      });
      socket.on('data', (chunk: Buffer) => {
        const next = new Uint8Array(buffer.length + chunk.length);
        next.set(buffer, 0);
        next.set(chunk, buffer.length);
        buffer = next;
        if (buffer.length < TCP_LENGTH_OCTETS) return;
        const length = (buffer[0] << 8) | buffer[1];
        if (buffer.length < TCP_LENGTH_OCTETS + length) return;
        try {
          const message = decodeMessage(buffer.subarray(TCP_LENGTH_OCTETS, TCP_LENGTH_OCTETS + length));
          finish(answers(message, id, name, typeCode)
            ? { kind: 'message', message }
            : { kind: 'error', why: `${formatServer(this.server)} answered another question over TCP` });
        } catch (error) {
          if (!(error instanceof DnsFormatError)) throw error;
          finish({ kind: 'error', why: `a malformed answer from ${formatServer(this.server)} over TCP: ${error.message}` });
        }
      });
      socket.on('error', (error) => finish({ kind: 'error', why: `TCP to ${formatServer(this.server)} failed: ${error.message}` }));
      socket.on('close', () => finish({ kind: 'error', why: `${formatServer(this.server)} closed the TCP connection without an answer` }));
    });
  }
}
