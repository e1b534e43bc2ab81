/**
 * @module Base64 (RFC 4648 §4) for the places SMTP uses it: SASL exchanges (RFC 4954 §4) and
 * RFC 2047 encoded-words. Pure; no Buffer, so the core stays free of Node and Bun APIs.
 */

const ENCODER = new TextEncoder();

export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Base64 of the UTF-8 bytes of `text`. */
export function encodeBase64Text(text: string): string {
  return encodeBase64(ENCODER.encode(text));
}

/** Decodes base64 leniently (surrounding space allowed); null when it is not base64. */
export function decodeBase64(text: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}
