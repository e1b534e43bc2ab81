/**
 * Peers for `mailbox send` tests: an aiosmtpd server (tests/helpers/aiosmtpd-peer.py) with TLS,
 * AUTH and scripted refusals on an ephemeral loopback port; a throwaway CA and server
 * certificate made with openssl; and Python's email package as the independent reader of what
 * arrived.
 * Rule: every process is awaited when stopped; every file lives under a temp dir the caller removes.
 */
import { writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SYSTEM_PYTHON } from '../e2e/harness.ts';
import { startBackground } from './background.ts';
import { findFreePort, waitForGreeting } from './ports.ts';

const PEER_SCRIPT = join(import.meta.dir, 'aiosmtpd-peer.py');

export interface Certificates {
  /** The CA that signed the server certificate (for --tls-ca). */
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** A CA and a server certificate for 127.0.0.1 and localhost, valid for a day. */
export function makeCertificates(dir: string): Certificates {
  const run = (args: string[]) => {
    const r = Bun.spawnSync(['openssl', ...args], { cwd: dir, stdout: 'pipe', stderr: 'pipe' });
    if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr.toString()}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=mailbox test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/**
 * A certificate for one host name: signed by the CA of `certs` (made by makeCertificates in the
 * same directory), or self-signed. Files are named after the host.
 */
export function makeHostCertificate(dir: string, name: string, signer: 'ca' | 'self'): Omit<Certificates, 'ca'> & { readonly ca: string | null } {
  const run = (args: string[]) => {
    const r = Bun.spawnSync(['openssl', ...args], { cwd: dir, stdout: 'pipe', stderr: 'pipe' });
    if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr.toString()}`);
  };
  const ext = `${name}.ext`;
  writeFileSync(join(dir, ext), `subjectAltName=DNS:${name}\n`);
  if (signer === 'self') {
    run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`]);
    return { ca: null, cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  }
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', ext]);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

export interface AiosmtpdOptions {
  /** Where messages are saved (N.eml, N.json). */
  readonly dir: string;
  readonly host?: string;
  readonly port?: number;
  readonly tls?: 'none' | 'starttls' | 'implicit';
  readonly certificates?: Pick<Certificates, 'cert' | 'key'>;
  readonly requireStartTls?: boolean;
  /** Offer STARTTLS, but let every handshake fail (the server speaks only TLS 1.0). */
  readonly brokenTls?: boolean;
  /** user → password, for PLAIN, LOGIN and CRAM-MD5. */
  readonly users?: Record<string, string>;
  /** The one bearer token XOAUTH2 and OAUTHBEARER accept. */
  readonly token?: string;
  /** AUTH offered only over TLS (default true, aiosmtpd's default). */
  readonly authRequireTls?: boolean;
  readonly excludeMechanisms?: readonly string[];
  readonly rejectSenders?: readonly string[];
  readonly rejectRecipients?: readonly string[];
  readonly rejectData?: boolean;
}

export interface SavedMessage {
  readonly meta: { mail_from: string; rcpt_tos: string[]; mail_options: string[]; rcpt_options: string[][]; auth: string | null; tls: boolean };
  readonly bytes: Uint8Array;
}

export interface AiosmtpdPeer {
  readonly host: string;
  readonly port: number;
  /** Saved messages, oldest first. */
  messages(): Promise<SavedMessage[]>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startAiosmtpd(options: AiosmtpdOptions): Promise<AiosmtpdPeer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await findFreePort(host));
  const config = {
    dir: options.dir,
    host,
    port,
    tls: options.tls ?? 'none',
    cert: options.certificates?.cert,
    key: options.certificates?.key,
    require_starttls: options.requireStartTls ?? false,
    broken_tls: options.brokenTls ?? false,
    users: options.users ?? {},
    token: options.token,
    auth_require_tls: options.authRequireTls ?? true,
    exclude_mechanisms: options.excludeMechanisms ?? [],
    reject_senders: options.rejectSenders ?? [],
    reject_recipients: options.rejectRecipients ?? [],
    reject_data: options.rejectData ?? false,
  };
  const peer = startBackground([SYSTEM_PYTHON, PEER_SCRIPT, JSON.stringify(config)], { stdin: 'pipe' });
  const { proc, stop } = peer;
  const deadline = Date.now() + 15_000;
  while (!peer.output().includes('READY')) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`aiosmtpd peer did not start: ${peer.output()}`);
    }
    await Bun.sleep(20);
  }
  if (config.tls !== 'implicit') await waitForGreeting(host, port, { timeoutMs: 10_000 });
  return {
    host,
    port,
    async messages() {
      const names = (await readdir(options.dir)).filter((n) => n.endsWith('.json')).sort((a, b) => parseInt(a) - parseInt(b));
      return Promise.all(names.map(async (n) => ({
        meta: JSON.parse(await readFile(join(options.dir, n), 'utf8')),
        bytes: new Uint8Array(await readFile(join(options.dir, n.replace('.json', '.eml')))),
      })));
    },
    logs: () => peer.output(),
    stop,
  };
}

export interface ParsedPart {
  readonly type: string;
  readonly cte: string | null;
  readonly filename: string | null;
  readonly disposition: string | null;
  readonly cid: string | null;
  readonly sha256: string;
  readonly size: number;
  readonly text: string | null;
}

export interface ParsedMessage {
  readonly subject: string;
  readonly from: string;
  readonly to: string[];
  readonly cc: string[];
  readonly replyTo: string[];
  readonly headers: string[];
  readonly tree: string[];
  readonly parts: ParsedPart[];
  readonly defects: string[];
}

/** Python's email package (policy.default) walks the message and decodes every part. */
export function parseWithPython(bytes: Uint8Array): ParsedMessage {
  const script = `
import sys, json, email, hashlib
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
addr = lambda h: [str(a) for a in msg[h].addresses] if msg[h] else []
tree, parts, defects = [], [], [type(d).__name__ for d in msg.defects]
for h in msg.keys():
    defects += [type(d).__name__ for d in getattr(msg[h], "defects", [])]
for p in msg.walk():
    tree.append(p.get_content_type())
    defects += [type(d).__name__ for d in p.defects]
    if p.is_multipart():
        continue
    payload = p.get_payload(decode=True)
    parts.append({"type": p.get_content_type(), "cte": p["content-transfer-encoding"], "filename": p.get_filename(),
      "disposition": p.get_content_disposition(), "cid": p["content-id"], "sha256": hashlib.sha256(payload).hexdigest(),
      "size": len(payload), "text": p.get_content().replace("\\r\\n", "\\n") if p.get_content_maintype() == "text" else None})
print(json.dumps({"subject": str(msg["subject"]), "from": str(msg["from"]), "to": addr("to"), "cc": addr("cc"),
  "replyTo": addr("reply-to"), "headers": [k.lower() for k in msg.keys()], "tree": tree, "parts": parts, "defects": defects}))
`;
  const run = Bun.spawnSync([SYSTEM_PYTHON, '-c', script], { stdin: bytes, stdout: 'pipe', stderr: 'pipe' });
  if (run.exitCode !== 0) throw new Error(`python could not parse the message: ${run.stderr.toString()}`);
  return JSON.parse(run.stdout.toString());
}
