/**
 * @module The server's TLS certificate: read from --tls-cert/--tls-key, or the self-signed one
 * kept in the data directory (created once), checked and turned into a secure context.
 * Rule 1: every problem is one SetupError line naming the file (exit 78), never a stack trace.
 * Rule 2: the key file is written 0600 and replaced atomically (temporary file, then rename).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { SetupError } from '../exit-status.ts';
import { createSelfSigned } from './self-signed.ts';

/** Where the certificate comes from: files the operator named, or the data directory. */
export type CertificateSource =
  | { readonly kind: 'files'; readonly certFile: string; readonly keyFile: string }
  | { readonly kind: 'self-signed'; readonly dataDir: string; readonly hostname: string };

/** A loaded certificate, ready for node:tls (STARTTLS) and Bun.listen (implicit TLS). */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly context: SecureContext;
  /** SHA-256 fingerprint, colon-separated hex, as openssl x509 -fingerprint -sha256 prints it. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly notAfterMs: number;
  /** The self-signed certificate was created just now. */
  readonly created: boolean;
  readonly certFile: string;
}

/** Self-signed certificates are renewed this long before they expire. */
const RENEW_BEFORE_MS = 7 * 86_400_000;

/** Loads (or for 'self-signed', creates once) the certificate and key. */
export function loadTlsMaterial(source: CertificateSource, nowMs: number): TlsMaterial {
  if (source.kind === 'files') return fromPem(readPem(source.certFile, '--tls-cert'), readPem(source.keyFile, '--tls-key'), source.certFile, source.keyFile, false);
  const dir = join(source.dataDir, 'tls');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const existing = readIfPresent(certFile, keyFile);
  if (existing) {
    const material = fromPem(existing.cert, existing.key, certFile, keyFile, false);
    if (material.notAfterMs - RENEW_BEFORE_MS > nowMs) return material;
  }
  const fresh = createSelfSigned({ hostname: source.hostname, nowMs });
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomically(keyFile, fresh.key, 0o600);
    writeAtomically(certFile, fresh.cert, 0o644);
  } catch (error) {
    throw new SetupError(`cannot keep the self-signed certificate in ${dir}: ${reason(error)}`);
  }
  return fromPem(fresh.cert, fresh.key, certFile, keyFile, true);
}

function fromPem(cert: string, key: string, certFile: string, keyFile: string, created: boolean): TlsMaterial {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new SetupError(`${certFile}: not a PEM certificate (${reason(error)})`);
  }
  try {
    createPrivateKey(key);
  } catch (error) {
    throw new SetupError(`${keyFile}: not a PEM private key, or it is encrypted (${reason(error)})`);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key });
  } catch (error) {
    throw new SetupError(`${certFile} and ${keyFile} do not belong together: ${reason(error)}`);
  }
  return {
    cert,
    key,
    context,
    fingerprint: x509.fingerprint256,
    subject: x509.subject.replace(/\n/g, ', '),
    notAfterMs: Date.parse(x509.validTo),
    created,
    certFile,
  };
}

function readPem(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new SetupError(`${flag}: cannot read ${path}: ${reason(error)}`);
  }
}

function readIfPresent(certFile: string, keyFile: string): { cert: string; key: string } | null {
  try {
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return null;
    throw new SetupError(`cannot read the certificate in ${certFile}: ${reason(error)}`);
  }
}

function writeAtomically(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function reason(error: unknown): string {
  const e = error as { code?: string; message?: string };
  if (e?.code === 'ENOENT') return 'no such file';
  if (e?.code === 'EACCES') return 'permission denied';
  return (e?.message ?? String(error)).split('\n')[0];
}
