/**
 * @module Content-Transfer-Encoding decoding (RFC 2045 §6): a MIME part's body bytes as the
 * sender meant them. Pure.
 * Rule: lenient, as readers must be with mail in the wild: base64 skips characters outside its
 *       alphabet (RFC 2045 §6.8) and stops at padding; quoted-printable keeps a malformed "="
 *       sequence as written (§6.7, note 1); unknown encodings are returned as stored.
 */

const B64 = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

/** Decodes `bytes` by `encoding` ("base64", "quoted-printable"; anything else is identity). */
export function decodeTransferEncoding(bytes: Uint8Array, encoding: string): Uint8Array {
  switch (encoding.toLowerCase()) {
    case 'base64':
      return decodeBase64Body(bytes);
    case 'quoted-printable':
      return decodeQuotedPrintable(bytes);
    default:
      return bytes;
  }
}

/** RFC 2045 §6.8: every character outside the alphabet is ignored; "=" ends the data. */
export function decodeBase64Body(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.floor((bytes.length * 3) / 4) + 3);
  let n = 0;
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    if (b === 61) break;
    const v = B64[b];
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 65 && b <= 70) return b - 55;
  if (b >= 97 && b <= 102) return b - 87;
  return -1;
}

/** RFC 2045 §6.7: "=XX" is an octet, "=" at the end of a line is a soft line break. */
export function decodeQuotedPrintable(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b !== 61) {
      out[n++] = b;
      continue;
    }
    // A soft line break: "=" then optional trailing white space, then CRLF or LF.
    let j = i + 1;
    while (j < bytes.length && (bytes[j] === 32 || bytes[j] === 9)) j++;
    if (j < bytes.length && bytes[j] === 13 && bytes[j + 1] === 10) {
      i = j + 1;
      continue;
    }
    if (j < bytes.length && bytes[j] === 10) {
      i = j;
      continue;
    }
    if (j >= bytes.length) break;
    const hi = i + 2 < bytes.length ? hexValue(bytes[i + 1]) : -1;
    const lo = hi >= 0 ? hexValue(bytes[i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else {
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}
