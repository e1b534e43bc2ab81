/**
 * @module SASL for SMTP AUTH (RFC 4954), both sides, as pure functions: the client's choice of
 * mechanism and its responses (PLAIN RFC 4616, LOGIN, CRAM-MD5 RFC 2195, XOAUTH2, OAUTHBEARER
 * RFC 7628), and the server's reading of responses (strict base64, PLAIN's three fields, LOGIN's
 * prompts). The sessions keep the exchange's state; this file knows the mechanisms.
 * Rule: pure; crypto (HMAC-MD5) is given by the adapter, and secrets never leave in a return
 * value meant for a transcript.
 */
import { decodeBase64, encodeBase64Text } from './base-encoding.ts';

/** SASL mechanisms the client speaks (RFC 4616, draft LOGIN, RFC 2195, XOAUTH2, RFC 7628). */
export type SaslMechanism = 'PLAIN' | 'LOGIN' | 'CRAM-MD5' | 'XOAUTH2' | 'OAUTHBEARER';
export const SASL_MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER'];

export interface ClientAuth {
  readonly username: string;
  /** A password (PLAIN, LOGIN, CRAM-MD5) or an OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER). */
  readonly secret: string;
  readonly secretKind: 'password' | 'token';
  /** Absent: the best mechanism the server offers for this kind of secret. */
  readonly mechanism?: SaslMechanism;
  /** A secret may go over a connection without TLS (the user said so). */
  readonly allowCleartext?: boolean;
  /** RFC 7628 §3.1: the host and port OAUTHBEARER names. */
  readonly host?: string;
  readonly port?: number;
}

/** HMAC-MD5 (RFC 2104) for CRAM-MD5, given by the adapter: the core computes no crypto itself. */
export type HmacMd5 = (key: Uint8Array, data: Uint8Array) => Uint8Array;

// Preference when the user names no mechanism. With TLS the password is protected anyway and
// PLAIN is the one every server has; without TLS CRAM-MD5 at least keeps the password off the wire.
const PASSWORD_MECHANISMS_TLS: readonly SaslMechanism[] = ['PLAIN', 'LOGIN', 'CRAM-MD5'];
const PASSWORD_MECHANISMS_CLEAR: readonly SaslMechanism[] = ['CRAM-MD5', 'PLAIN', 'LOGIN'];
const TOKEN_MECHANISMS: readonly SaslMechanism[] = ['OAUTHBEARER', 'XOAUTH2'];
const TOKEN_ONLY: ReadonlySet<SaslMechanism> = new Set(['XOAUTH2', 'OAUTHBEARER']);


/** RFC 5801 §4: "," and "=" in a GS2 authzid are written =2C and =3D. */
function gs2Name(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** What the client's choice depends on besides the credentials. */
export interface MechanismContext {
  /** The mechanisms the server lists after AUTH in EHLO (any case). */
  readonly offered: readonly string[];
  readonly tls: boolean;
  /** The server offers STARTTLS (for the hint when AUTH is missing before TLS). */
  readonly startTlsOffered: boolean;
  /** An HMAC-MD5 function is at hand, so CRAM-MD5 can be used. */
  readonly cramMd5: boolean;
}

/** The mechanism to use, or the reason there is none (one line for the user). */
export function chooseMechanism(auth: ClientAuth, context: MechanismContext): { readonly mechanism: SaslMechanism } | { readonly why: string } {
  const offered = new Set(context.offered.map((m) => m.toUpperCase()));
  if (offered.size === 0) {
    const hint = !context.tls && context.startTlsOffered ? ' before TLS; it may after STARTTLS (--tls starttls)' : '';
    return { why: `the server does not offer AUTH${hint}` };
  }
  const list = [...offered].join(' ');
  if (auth.mechanism !== undefined) {
    if (!offered.has(auth.mechanism)) return { why: `the server offers AUTH ${list}, not ${auth.mechanism}` };
    if (TOKEN_ONLY.has(auth.mechanism) !== (auth.secretKind === 'token')) {
      return { why: `${auth.mechanism} needs ${TOKEN_ONLY.has(auth.mechanism) ? 'a token' : 'a password'}, and a ${auth.secretKind} was given` };
    }
    return { mechanism: auth.mechanism };
  }
  const order = auth.secretKind === 'token' ? TOKEN_MECHANISMS : context.tls ? PASSWORD_MECHANISMS_TLS : PASSWORD_MECHANISMS_CLEAR;
  const usable = order.filter((m) => offered.has(m) && (m !== 'CRAM-MD5' || context.cramMd5));
  return usable[0] !== undefined ? { mechanism: usable[0] } : { why: `the server offers AUTH ${list}, none of which takes a ${auth.secretKind}` };
}

/** RFC 4954 §4: the initial response that goes with the command, saving a round trip; null: none. */
export function initialResponse(auth: ClientAuth, mechanism: SaslMechanism): string | null {
  switch (mechanism) {
    case 'PLAIN':
      // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
      return encodeBase64Text(`\0${auth.username}\0${auth.secret}`);
    case 'XOAUTH2':
      return encodeBase64Text(`user=${auth.username}\x01auth=Bearer ${auth.secret}\x01\x01`);
    case 'OAUTHBEARER': {
      // RFC 7628 §3.1: gs2-header, then key=value pairs separated by ^A, ending ^A^A.
      const host = auth.host !== undefined ? `host=${auth.host}\x01` : '';
      const port = auth.port !== undefined ? `port=${auth.port}\x01` : '';
      return encodeBase64Text(`n,a=${gs2Name(auth.username)},\x01${host}${port}auth=Bearer ${auth.secret}\x01\x01`);
    }
    case 'LOGIN':
    case 'CRAM-MD5':
      return null;
    default:
      mechanism satisfies never;
      return null;
  }
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/**
 * The answer to the step-th 334 challenge (base64 text as the server sent it): the response, or
 * null to cancel with "*"; `note` is what an error status said (XOAUTH2, OAUTHBEARER).
 */
export function challengeResponse(
  auth: ClientAuth,
  mechanism: SaslMechanism,
  step: number,
  challenge: string,
  hmacMd5: HmacMd5 | undefined,
): { readonly response: string | null; readonly note?: string } {
  switch (mechanism) {
    case 'LOGIN':
      // The LOGIN draft: the server asks "Username:", then "Password:" (base64), in that order.
      if (step === 0) return { response: encodeBase64Text(auth.username) };
      if (step === 1) return { response: encodeBase64Text(auth.secret) };
      return { response: null };
    case 'CRAM-MD5': {
      // RFC 2195 §2: username SP hex(HMAC-MD5(password, challenge)).
      const decoded = decodeBase64(challenge);
      if (step > 0 || decoded === null || hmacMd5 === undefined) return { response: null };
      const digest = hmacMd5(ENCODER.encode(auth.secret), decoded);
      return { response: encodeBase64Text(`${auth.username} ${hex(digest)}`) };
    }
    case 'XOAUTH2':
    case 'OAUTHBEARER': {
      // A 334 here carries an error status in JSON; RFC 7628 §3.2.3: the client answers ^A
      // (XOAUTH2 takes an empty line) and the server ends the exchange with a failure.
      const status = decodeBase64(challenge);
      const note = status !== null ? `${mechanism} error status: ${DECODER.decode(status)}` : undefined;
      return { response: mechanism === 'OAUTHBEARER' ? 'AQ==' : '', note };
    }
    case 'PLAIN':
      // The initial response was sent; a server that asks again gets the same.
      return { response: step === 0 ? encodeBase64Text(`\0${auth.username}\0${auth.secret}`) : null };
    default:
      mechanism satisfies never;
      return { response: null };
  }
}

// ---- server side ----

const UTF8 = new TextDecoder('utf-8');

/** A SASL response (RFC 4954 §4): strict base64 of UTF-8 text, where "=" alone is empty. */
export function decodeSaslText(text: string): string | null {
  const t = text.trim();
  if (t === '=') return '';
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) return null;
  const bytes = decodeBase64(t);
  return bytes === null ? null : UTF8.decode(bytes);
}

/** RFC 4616 §2: message = [authzid] NUL authcid NUL passwd; null when it is not one. */
export function parsePlainMessage(decoded: string): { readonly authzid: string; readonly authcid: string; readonly password: string } | null {
  const parts = decoded.split('\u0000');
  if (parts.length !== 3 || parts[1] === '') return null;
  return { authzid: parts[0], authcid: parts[1], password: parts[2] };
}

/** The LOGIN draft's challenges, base64 as they go on the wire. */
export const LOGIN_PROMPTS = Object.freeze({ username: encodeBase64Text('Username:'), password: encodeBase64Text('Password:') });
