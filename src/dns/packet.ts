/**
 * @module DNS messages (RFC 1035 §4): encode a query, decode a response. Pure: bytes in, values
 * out; no sockets and no clock. Only what mail routing needs is decoded in full (A, AAAA, MX,
 * CNAME); other records keep their type and length, so nothing in an answer is silently lost.
 * Rule: a malformed message is a reason in words (DnsFormatError), never a partial value.
 */

/** RR type codes (RFC 1035 §3.2.2, RFC 3596 §2.1 for AAAA). */
export const RR_TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, MX: 15, TXT: 16, AAAA: 28 } as const;
export type RrTypeName = keyof typeof RR_TYPE;

/** RFC 1035 §4.1.1 and RFC 6895 §2.3: response codes by number. */
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(RR_TYPE).map(([name, code]) => [code, name]));
const CLASS_IN = 1;
// RFC 1035 §2.3.4: labels are 63 octets or less, names 255 octets or less.
const MAX_LABEL_OCTETS = 63;
const MAX_NAME_OCTETS = 255;
// A compression pointer loop would never end; no real name needs more jumps than it has labels.
const MAX_POINTER_JUMPS = 127;
const HEADER_OCTETS = 12;

export type RecordData =
  | { readonly type: 'A'; readonly address: string }
  | { readonly type: 'AAAA'; readonly address: string }
  | { readonly type: 'MX'; readonly preference: number; readonly exchange: string }
  | { readonly type: 'CNAME'; readonly target: string }
  | { readonly type: 'other'; readonly typeCode: number; readonly length: number };

/** One resource record; `name` is written without the trailing dot, in the case it came in. */
export interface DnsRecord {
  readonly name: string;
  readonly ttl: number;
  readonly data: RecordData;
}

export interface DnsQuestion {
  readonly name: string;
  readonly typeCode: number;
}

export interface DnsMessage {
  readonly id: number;
  readonly response: boolean;
  /** TC: the answer did not fit in the UDP datagram (RFC 1035 §4.1.1); ask again over TCP. */
  readonly truncated: boolean;
  readonly rcode: number;
  readonly questions: readonly DnsQuestion[];
  readonly answers: readonly DnsRecord[];
  readonly authorities: readonly DnsRecord[];
}

export class DnsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsFormatError';
  }
}

/** "NXDOMAIN" for 3; "RCODE 9" for codes without a name here. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE ${rcode}`;
}

export function typeName(typeCode: number): string {
  return TYPE_NAMES.get(typeCode) ?? `TYPE${typeCode}`;
}

/**
 * A standard query with recursion desired (RFC 1035 §4.1.1), one question of class IN.
 * `name` must already be ASCII (IDNA A-labels); a trailing dot is ignored.
 */
export function encodeQuery(id: number, name: string, typeCode: number): Uint8Array {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l !== '');
  const encoded = labels.map((l) => new TextEncoder().encode(l));
  const nameOctets = encoded.reduce((n, l) => n + l.length + 1, 1);
  if (nameOctets > MAX_NAME_OCTETS) throw new DnsFormatError(`the name ${name} is longer than ${MAX_NAME_OCTETS} octets`);
  const out = new Uint8Array(HEADER_OCTETS + nameOctets + 4);
  const view = new DataView(out.buffer);
  view.setUint16(0, id & 0xffff);
  view.setUint16(2, 0x0100); // QR=0, OPCODE=QUERY, RD=1
  view.setUint16(4, 1); // QDCOUNT
  let at = HEADER_OCTETS;
  for (const label of encoded) {
    if (label.length > MAX_LABEL_OCTETS) throw new DnsFormatError(`a label of ${name} is longer than ${MAX_LABEL_OCTETS} octets`);
    out[at++] = label.length;
    out.set(label, at);
    at += label.length;
  }
  out[at++] = 0;
  view.setUint16(at, typeCode);
  view.setUint16(at + 2, CLASS_IN);
  return out;
}

/** Reads a possibly compressed name (RFC 1035 §4.1.4) at `offset`; returns it and where it ends. */
function readName(bytes: Uint8Array, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  let end = -1;
  let jumps = 0;
  let octets = 1;
  for (;;) {
    if (at >= bytes.length) throw new DnsFormatError('a name runs past the end of the message');
    const len = bytes[at];
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= bytes.length) throw new DnsFormatError('a compression pointer runs past the end of the message');
      if (++jumps > MAX_POINTER_JUMPS) throw new DnsFormatError('a compression pointer loop');
      if (end < 0) end = at + 2;
      at = ((len & 0x3f) << 8) | bytes[at + 1];
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError(`an unknown label type 0x${len.toString(16)}`);
    if (len === 0) {
      if (end < 0) end = at + 1;
      return { name: labels.join('.'), end };
    }
    if (at + 1 + len > bytes.length) throw new DnsFormatError('a label runs past the end of the message');
    octets += len + 1;
    if (octets > MAX_NAME_OCTETS) throw new DnsFormatError(`a name longer than ${MAX_NAME_OCTETS} octets`);
    // Labels are octets; mail hosts are ASCII, and anything else is shown as Latin-1 rather than dropped.
    let label = '';
    for (let i = at + 1; i <= at + len; i++) label += String.fromCharCode(bytes[i]);
    labels.push(label);
    at += 1 + len;
  }
}

function formatIpv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function readRecord(bytes: Uint8Array, view: DataView, offset: number): { record: DnsRecord | null; end: number } {
  const { name, end: nameEnd } = readName(bytes, offset);
  if (nameEnd + 10 > bytes.length) throw new DnsFormatError('a record header runs past the end of the message');
  const typeCode = view.getUint16(nameEnd);
  const klass = view.getUint16(nameEnd + 2);
  const ttl = view.getUint32(nameEnd + 4);
  const length = view.getUint16(nameEnd + 8);
  const start = nameEnd + 10;
  const end = start + length;
  if (end > bytes.length) throw new DnsFormatError(`a ${typeName(typeCode)} record runs past the end of the message`);
  // EDNS OPT pseudo-records and other classes carry no mail routing data.
  if (klass !== CLASS_IN) return { record: null, end };
  const rdata = bytes.subarray(start, end);
  let data: RecordData;
  if (typeCode === RR_TYPE.A) {
    if (length !== 4) throw new DnsFormatError(`an A record of ${length} octets`);
    data = { type: 'A', address: formatIpv4(rdata) };
  } else if (typeCode === RR_TYPE.AAAA) {
    if (length !== 16) throw new DnsFormatError(`an AAAA record of ${length} octets`);
    data = { type: 'AAAA', address: formatIpv6(rdata) };
  } else if (typeCode === RR_TYPE.MX) {
    if (length < 3) throw new DnsFormatError(`an MX record of ${length} octets`);
    const exchange = readName(bytes, start + 2);
    if (exchange.end !== end) throw new DnsFormatError('an MX record whose exchange does not fill it');
    data = { type: 'MX', preference: view.getUint16(start), exchange: exchange.name };
  } else if (typeCode === RR_TYPE.CNAME) {
    data = { type: 'CNAME', target: readName(bytes, start).name };
  } else {
    data = { type: 'other', typeCode, length };
  }
  return { record: { name, ttl, data }, end };
}

/** Decodes a whole message; throws DnsFormatError when it is malformed. */
export function decodeMessage(bytes: Uint8Array): DnsMessage {
  if (bytes.length < HEADER_OCTETS) throw new DnsFormatError(`a message of ${bytes.length} octets, shorter than its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = view.getUint16(2);
  const counts = [view.getUint16(4), view.getUint16(6), view.getUint16(8)];
  let at = HEADER_OCTETS;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const { name, end } = readName(bytes, at);
    if (end + 4 > bytes.length) throw new DnsFormatError('a question runs past the end of the message');
    questions.push({ name, typeCode: view.getUint16(end) });
    at = end + 4;
  }
  const truncated = (flags & 0x0200) !== 0;
  const sections: DnsRecord[][] = [[], []];
  records: for (let s = 0; s < 2; s++) {
    for (let i = 0; i < counts[s + 1]; i++) {
      let read: { record: DnsRecord | null; end: number };
      try {
        read = readRecord(bytes, view, at);
      } catch (error) {
        // A truncated message (RFC 1035 §4.1.1 TC) may end inside a record: keep what is whole.
        if (truncated && error instanceof DnsFormatError) break records;
        throw error;
      }
      if (read.record !== null) sections[s].push(read.record);
      at = read.end;
    }
  }
  return {
    id: view.getUint16(0),
    response: (flags & 0x8000) !== 0,
    truncated,
    rcode: flags & 0x000f,
    questions,
    answers: sections[0],
    authorities: sections[1],
  };
}

/** Zone-file style, as dig prints it: "example.org. 300 IN MX 10 mx1.example.org." */
export function formatRecord(record: DnsRecord): string {
  const head = `${record.name}. ${record.ttl} IN`;
  const data = record.data;
  switch (data.type) {
    case 'A':
    case 'AAAA':
      return `${head} ${data.type} ${data.address}`;
    case 'MX':
      return `${head} MX ${data.preference} ${data.exchange}.`;
    case 'CNAME':
      return `${head} CNAME ${data.target}.`;
    case 'other':
      return `${head} ${typeName(data.typeCode)} (${data.length} octets)`;
    default:
      data satisfies never;
      return head;
  }
}
