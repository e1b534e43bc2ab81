/**
 * @module A self-signed X.509 v3 server certificate (RFC 5280), built with node:crypto alone.
 * Rule 1: Bun has no certificate builder and the npm ones are large (node-forge) or pull a
 *         WebCrypto polyfill in (@peculiar/x509), so this file holds a minimal DER encoder:
 *         only the ASN.1 types a certificate needs (ITU-T X.690 §8).
 * Rule 2: ECDSA P-256 with SHA-256 (RFC 5480, RFC 5758 §3.2); the public key is the SPKI DER
 *         that node:crypto exports, the signature the DER ECDSA-Sig-Value it produces.
 */
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

export interface SelfSignedOptions {
  /** Common name and first DNS subjectAltName. */
  readonly hostname: string;
  /** Start of validity, epoch ms; the certificate is back-dated an hour for clock skew. */
  readonly nowMs: number;
  readonly days?: number;
}

export interface SelfSigned {
  /** PEM "CERTIFICATE". */
  readonly cert: string;
  /** PEM "PRIVATE KEY" (PKCS #8). */
  readonly key: string;
}

// ITU-T X.690 universal tags.
const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** X.690 §8.1.3: definite length, short form below 128, else long form. */
function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const seq = (...items: Buffer[]) => tlv(TAG.sequence, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(TAG.set, Buffer.concat(items));
/** [n] EXPLICIT: a constructed context-specific tag around the whole encoding. */
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);

/** X.690 §8.19: the first two arcs share a byte, the rest are base-128 with continuation bits. */
function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [arcs[0] * 40 + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const groups = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  }
  return tlv(TAG.oid, Buffer.from(out));
}

/** X.690 §8.3: two's complement, so a positive number whose top bit is set gets a leading zero. */
function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(TAG.integer, trimmed[0] & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** A BIT STRING of whole octets: the first content octet counts unused bits (none here). */
const bitString = (bytes: Buffer, unusedBits = 0) => tlv(TAG.bitString, Buffer.concat([Buffer.from([unusedBits]), bytes]));

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(ms: number): Buffer {
  const iso = new Date(ms).toISOString(); // 2026-11-27T01:40:00.000Z
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z'; // 20261127014000Z
  const year = Number(iso.slice(0, 4));
  return year < 2050 ? tlv(TAG.utcTime, Buffer.from(digits.slice(2), 'ascii')) : tlv(TAG.generalizedTime, Buffer.from(digits, 'ascii'));
}

function name(commonName: string): Buffer {
  return seq(set(seq(oid(OID.commonName), tlv(TAG.utf8String, Buffer.from(commonName, 'utf8')))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(TAG.boolean, Buffer.from([0xff]))] : []), tlv(TAG.octetString, value));
}

/** RFC 5280 §4.2.1.6: dNSName is [2] IA5String, iPAddress [7] the address octets. */
function subjectAltNames(names: readonly string[]): Buffer {
  const general = names.map((n) => {
    const family = isIP(n);
    if (family === 4) return tlv(0x87, Buffer.from(n.split('.').map(Number)));
    if (family === 6) return tlv(0x87, ipv6Bytes(n));
    return tlv(0x82, Buffer.from(n, 'ascii'));
  });
  return seq(...general);
}

function ipv6Bytes(text: string): Buffer {
  const [head, tail = ''] = text.split('::');
  const part = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const left = part(head);
  const right = text.includes('::') ? part(tail) : [];
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** A DNS name usable in a certificate: LDH labels only; anything else falls back to localhost. */
function certificateHostname(hostname: string): string {
  const h = hostname.trim().toLowerCase().replace(/\.$/, '');
  return /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(h) ? h : 'localhost';
}

const pem = (label: string, der: Buffer) =>
  `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;

/**
 * Generates a key pair and a certificate for `hostname`, valid for `days` (default 365), with
 * subjectAltName DNS hostname and localhost, IP 127.0.0.1 and ::1, for TLS server use only.
 */
export function createSelfSigned(options: SelfSignedOptions): SelfSigned {
  const host = certificateHostname(options.hostname);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const notBefore = options.nowMs - 3_600_000;
  const notAfter = options.nowMs + (options.days ?? 365) * 86_400_000;
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 16 random ones, top bit cleared.
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value (the EC point).
  const point = publicKey.export({ format: 'jwk' });
  const rawPoint = Buffer.concat([Buffer.from([4]), Buffer.from(point.x!, 'base64url'), Buffer.from(point.y!, 'base64url')]);
  const keyId = createHash('sha1').update(rawPoint).digest();
  const algorithm = seq(oid(OID.ecdsaWithSha256));
  const altNames = [...new Set([host, 'localhost', '127.0.0.1', '::1'])];
  const extensions = seq(
    extension(OID.basicConstraints, true, seq()),
    // digitalSignature (bit 0) only: an ECDSA key signs the TLS handshake.
    extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)),
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
    extension(OID.subjectKeyIdentifier, false, tlv(TAG.octetString, keyId)),
    extension(OID.subjectAltName, false, subjectAltNames(altNames)),
  );
  const tbs = seq(
    explicit(0, tlv(TAG.integer, Buffer.from([2]))), // v3
    unsignedInteger(serial),
    algorithm,
    name(host),
    seq(time(notBefore), time(notAfter)),
    name(host),
    spki,
    explicit(3, extensions),
  );
  const signature = createSign('SHA256').update(tbs).sign(privateKey);
  const certificate = seq(tbs, algorithm, bitString(signature));
  return {
    cert: pem('CERTIFICATE', certificate),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
