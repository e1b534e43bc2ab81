/**
 * Private Postfix peers for tests and the benchmark: a whole Postfix instance (`postfix -c DIR`)
 * and Postfix's `smtp-sink`, each on a loopback address and an ephemeral port.
 * Rules: nothing here reads or writes /etc/postfix or /var/spool/postfix. Each instance has its own
 * config, queue, data and log under one temp dir, listens on loopback only, has no port 25 unless
 * asked, and stop() waits until every process of it is gone.
 *
 * How the private instance runs (measured with Postfix 3.7, Debian 12, as root): `postfix -c DIR
 * start` accepts a non-default config directory without `alternate_config_directories` in the
 * default main.cf (that list is only checked by the set-gid postdrop/postqueue), and its
 * `check-fatal` step creates the queue directories with the right owners. data_directory must be
 * owned by mail_owner (master.lock). The first start of a fresh queue takes ~2.5 s, later ones ~0.2 s.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startBackground, type Background } from './background.ts';
import { findFreePort, waitForGreeting } from './ports.ts';

const POSTFIX = '/usr/sbin/postfix';
const SMTP_SINK = '/usr/sbin/smtp-sink';

/**
 * Synchronous last-resort stoppers for peers still running when the process exits (a test
 * runner killed on timeout, Ctrl-C in the bench): a daemonized Postfix master would outlive us.
 */
const lastResort = new Map<string, () => void>();
process.on('exit', () => {
  for (const stop of lastResort.values()) stop();
});

/** Why a private Postfix cannot run here, or undefined when it can. */
export function postfixUnavailableReason(): string | undefined {
  if (!existsSync(POSTFIX)) return `${POSTFIX} is missing (run scripts/install-peers)`;
  if (process.getuid?.() !== 0) return 'a private Postfix instance needs root';
  if (lookupUser('postfix') === undefined) return 'the postfix user does not exist';
  return undefined;
}

/** Why smtp-sink cannot run here, or undefined when it can. */
export function smtpSinkUnavailableReason(): string | undefined {
  return existsSync(SMTP_SINK) ? undefined : `${SMTP_SINK} is missing (run scripts/install-peers)`;
}

export type PostfixMode =
  /** Accept, queue durably (cleanup fsyncs before smtpd says 250), then deliver to discard(8). */
  | 'discard'
  /** Accept, queue, then relay every message over SMTP to `relayTo`. */
  | 'relay'
  /** Accept and queue, then keep every message in the hold queue (inspect it with messages()). */
  | 'hold'
  /**
   * Accept mail for `maildirRecipients` only, and deliver it with virtual(8) to one Maildir per
   * recipient: `maildir/DOMAIN/LOCAL/new/` under the instance's dir (handle.maildir), as nobody.
   */
  | 'maildir';

export interface StartPostfixOptions {
  /** Loopback address of the smtpd listener (default 127.0.0.1; any 127.0.0.x works). */
  address?: string;
  /** Port of the smtpd listener (default: a free ephemeral port). */
  port?: number;
  mode?: PostfixMode;
  /** 'relay' mode: next hop as HOST:PORT, e.g. "127.0.0.1:2525" (no MX lookup). */
  relayTo?: string;
  /** 'maildir' mode: the addresses ("local@domain") it takes mail for; others get 550. */
  maildirRecipients?: string[];
  /** Also listen on ADDRESS:25 (default false). */
  port25?: boolean;
  /**
   * Also run an implicit-TLS smtpd (RFC 8314, smtpd_tls_wrappermode) on this port; 0 picks a free
   * one. It needs smtpd_tls_cert_file and smtpd_tls_key_file in `mainCf`.
   */
  implicitTlsPort?: number;
  /** Extra main.cf settings; they win over the generated ones. */
  mainCf?: Record<string, string>;
  /**
   * More files to write under the config dir before the start, by relative path (e.g.
   * 'sasl/smtpd.conf': Debian's Postfix reads Cyrus SASL config from $config_directory/sasl).
   */
  configFiles?: Record<string, string>;
}

export interface PostfixHandle {
  address: string;
  port: number;
  /** The implicit-TLS listener's port, when one was asked for. */
  implicitTlsPort?: number;
  /** Root of this instance: conf/, queue/, data/ and maillog live under it. */
  dir: string;
  configDir: string;
  queueDir: string;
  /** 'maildir' mode: the base of the Maildirs (DOMAIN/LOCAL/ under it). */
  maildir?: string;
  /** PID of this instance's master(8) process, or undefined when it is not running. */
  masterPid(): number | undefined;
  /** This instance's log (maillog_file). */
  logs(): Promise<string>;
  /** Queue ids in the given queue (default hold). */
  messages(queue?: 'hold' | 'incoming' | 'active' | 'deferred'): Promise<string[]>;
  /** `postfix stop`, waits for every process of the instance to exit, then removes its dir. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts a private Postfix instance and resolves once its smtpd greets with 220. */
export async function startPostfix(options: StartPostfixOptions = {}): Promise<PostfixHandle> {
  const unavailable = postfixUnavailableReason();
  if (unavailable !== undefined) throw new Error(`cannot start Postfix: ${unavailable}`);
  const address = options.address ?? '127.0.0.1';
  if (!address.startsWith('127.')) throw new Error(`private Postfix listens on loopback only, not ${address}`);
  const mode = options.mode ?? 'discard';
  if (mode === 'relay' && options.relayTo === undefined) throw new Error("mode 'relay' needs relayTo: 'HOST:PORT'");
  const port = options.port ?? (await findFreePort(address));
  const postfixUser = lookupUser('postfix')!;

  const dir = await mkdtemp(join(tmpdir(), 'mailbox-postfix-'));
  // Postfix daemons run as the postfix user and must traverse to the queue and the log.
  await chmod(dir, 0o755);
  const configDir = join(dir, 'conf');
  const queueDir = join(dir, 'queue');
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'maillog');
  await mkdir(configDir);
  await mkdir(queueDir, { mode: 0o755 });
  await mkdir(dataDir, { mode: 0o700 });
  await chown(dataDir, postfixUser.uid, postfixUser.gid);

  const transport = mode === 'relay' ? `smtp:[${options.relayTo!.replace(/:(\d+)$/, ']:$1')}` : 'discard';
  let maildir: string | undefined;
  const maildirCf: Record<string, string> = {};
  if (mode === 'maildir') {
    const recipients = options.maildirRecipients ?? [];
    if (recipients.length === 0 || !recipients.every((r) => /^[^@\s]+@[^@\s]+$/.test(r))) throw new Error("mode 'maildir' needs maildirRecipients: local@domain addresses");
    const domains = [...new Set(recipients.map((r) => r.slice(r.indexOf('@') + 1)))];
    const nobody = lookupUser('nobody');
    if (nobody === undefined) throw new Error("mode 'maildir' delivers as nobody, and there is no such user");
    maildir = join(dir, 'maildir');
    await mkdir(maildir, { mode: 0o755 });
    await chown(maildir, nobody.uid, nobody.gid);
    Object.assign(maildirCf, {
      virtual_transport: 'virtual',
      virtual_mailbox_domains: domains.join(' '),
      virtual_mailbox_base: maildir,
      // "DOMAIN/LOCAL/": the trailing slash makes it a Maildir (virtual(8) takes no regexp substitution here).
      virtual_mailbox_maps: 'texthash:$config_directory/virtual-mailboxes',
      virtual_uid_maps: `static:${nobody.uid}`,
      virtual_gid_maps: `static:${nobody.gid}`,
      // A Maildir file holds one message: message_size_limit is its limit (0: none of its own).
      virtual_mailbox_limit: '0',
      // Header rewriting is for local submitters; the relay's mail is to arrive as it was sent.
      local_header_rewrite_clients: '',
    });
  }
  const main: Record<string, string> = {
    compatibility_level: '3.6',
    config_directory: configDir,
    queue_directory: queueDir,
    data_directory: dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: 'postfix.mailbox.test',
    mydomain: 'mailbox.test',
    myorigin: '$myhostname',
    mydestination: '',
    // Postfix refuses an inet_interfaces address that no interface carries (127.0.0.2 is routed
    // to lo but not assigned to it); the master.cf listener below names the address instead.
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    smtpd_recipient_restrictions: 'permit_mynetworks, reject',
    smtpd_client_restrictions: mode === 'hold' ? 'check_client_access static:HOLD' : '',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    local_transport: transport,
    default_transport: transport,
    relay_transport: transport,
    virtual_transport: transport,
    ...maildirCf,
    // Relay mode talks to a test server on a loopback port: no DNS and no TLS.
    smtp_dns_support_level: 'disabled',
    smtp_tls_security_level: 'none',
    smtpd_tls_security_level: 'none',
    biff: 'no',
    append_dot_mydomain: 'no',
    smtpd_banner: '$myhostname ESMTP',
    message_size_limit: '52428800',
    maillog_file: logFile,
    maillog_file_prefixes: dir,
    ...options.mainCf,
  };
  const services = [`${address}:${port} inet n - n - - smtpd`];
  if (options.port25) services.push(`${address}:25 inet n - n - - smtpd`);
  const implicitTlsPort = options.implicitTlsPort === 0 ? await findFreePort(address) : options.implicitTlsPort;
  if (implicitTlsPort !== undefined) {
    services.push(`${address}:${implicitTlsPort} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt`);
  }
  await writeFile(join(configDir, 'main.cf'), `${Object.entries(main).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
  await writeFile(join(configDir, 'master.cf'), `${[...services, ...MASTER_CF_SERVICES].join('\n')}\n`);
  const configFiles = { ...options.configFiles };
  if (mode === 'maildir') {
    configFiles['virtual-mailboxes'] = options.maildirRecipients!.map((r) => `${r} ${r.slice(r.indexOf('@') + 1)}/${r.slice(0, r.indexOf('@'))}/\n`).join('');
  }
  for (const [path, text] of Object.entries(configFiles)) {
    if (path.startsWith('/') || path.split('/').includes('..')) throw new Error(`configFiles: ${path} is not inside the config dir`);
    await mkdir(dirname(join(configDir, path)), { recursive: true });
    await writeFile(join(configDir, path), text);
  }

  const handle: PostfixHandle = {
    address,
    port,
    implicitTlsPort,
    dir,
    configDir,
    queueDir,
    maildir,
    masterPid: () => readMasterPid(queueDir),
    logs: () => readFile(logFile, 'utf8').catch(() => ''),
    messages: async (queue = 'hold') => listQueue(join(queueDir, queue)),
    stop: () => stopPostfix(configDir, queueDir, dir),
    [Symbol.asyncDispose]: () => handle.stop(),
  };

  lastResort.set(dir, () => {
    Bun.spawnSync([POSTFIX, '-c', configDir, 'stop'], { stdout: 'ignore', stderr: 'ignore' });
  });
  const started = Bun.spawnSync([POSTFIX, '-c', configDir, 'start'], { stdout: 'pipe', stderr: 'pipe' });
  try {
    if (started.exitCode !== 0) {
      // Errors found before maillog_file is read go to syslog only: `postfix -c DIR check` shows them.
      throw new Error(`postfix -c ${configDir} start failed (${started.exitCode}): ${started.stderr.toString()}`
        + ` (errors before logging starts go to syslog; try postfix -c ${configDir} check)`);
    }
    await waitForGreeting(address, port, { timeoutMs: 20_000 });
  } catch (err) {
    const log = await handle.logs();
    await handle.stop();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n--- maillog ---\n${log}`);
  }
  return handle;
}

/**
 * Waits until the instance's log matches `pattern` (or `timeoutMs` passes) and returns the log.
 * Postfix's daemons log through postlogd, which writes the maillog in its own time: a line can
 * trail the reply that a client has already seen.
 */
export async function waitForPostfixLog(postfix: Pick<PostfixHandle, 'logs'>, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = await postfix.logs();
    if (pattern.test(log) || Date.now() >= deadline) return log;
    await Bun.sleep(50);
  }
}

/** master.cf services besides the smtpd listeners; chroot off, so nothing is copied anywhere. */
const MASTER_CF_SERVICES = [
  'pickup     unix  n - n 60    1 pickup',
  'cleanup    unix  n - n -     0 cleanup',
  'qmgr       unix  n - n 300   1 qmgr',
  'rewrite    unix  - - n -     - trivial-rewrite',
  'bounce     unix  - - n -     0 bounce',
  'defer      unix  - - n -     0 bounce',
  'trace      unix  - - n -     0 bounce',
  'verify     unix  - - n -     1 verify',
  'flush      unix  n - n 1000? 0 flush',
  'proxymap   unix  - - n -     - proxymap',
  'proxywrite unix  - - n -     1 proxymap',
  'showq      unix  n - n -     - showq',
  'error      unix  - - n -     - error',
  'retry      unix  - - n -     - error',
  'discard    unix  - - n -     - discard',
  'virtual    unix  - n n -     - virtual',
  'smtp       unix  - - n -     - smtp',
  'relay      unix  - - n -     - smtp',
  'anvil      unix  - - n -     1 anvil',
  'scache     unix  - - n -     1 scache',
  // smtpd and smtp need tlsmgr for TLS (PRNG seed, session cache) once a certificate is configured.
  'tlsmgr     unix  - - n 1000? 1 tlsmgr',
  'postlog    unix-dgram n - n - 1 postlogd',
];

async function stopPostfix(configDir: string, queueDir: string, dir: string): Promise<void> {
  const master = readMasterPid(queueDir);
  if (master !== undefined && isRunning(master)) {
    const family = [master, ...descendantsOf(master)];
    Bun.spawnSync([POSTFIX, '-c', configDir, 'stop'], { stdout: 'ignore', stderr: 'ignore' });
    // master(8) SIGTERMs its children and exits; give it 10 s, then kill what is left.
    if (!(await waitGone(family, 10_000))) {
      for (const pid of family) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      await waitGone(family, 5000);
    }
  }
  lastResort.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

function readMasterPid(queueDir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(join(queueDir, 'pid/master.pid'), 'utf8').trim(), 10);
    return Number.isFinite(pid) && isRunning(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function listQueue(path: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (at: string) => {
    for (const entry of await readdir(at, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await walk(join(at, entry.name));
      else found.push(entry.name);
    }
  };
  await walk(path);
  return found.sort();
}

export interface StartSmtpSinkOptions {
  address?: string;
  /** Default: a free ephemeral port. */
  port?: number;
  /** Keep one file per transaction here (smtp-sink -d); by default nothing is stored. */
  dumpDir?: string;
  /** Maximum simultaneous connections (smtp-sink -m, default 8192). */
  maxConnections?: number;
  /** Listen backlog (default 4096). */
  backlog?: number;
  /** More smtp-sink options, placed before the address (see man smtp-sink). */
  extraArgs?: string[];
}

export interface SmtpSinkHandle {
  address: string;
  port: number;
  proc: Background['proc'];
  dumpDir?: string;
  /** The dump files written so far (full paths, sorted); empty without dumpDir. */
  dumps(): Promise<string[]>;
  /**
   * Waits until at least `count` dumps exist and every one is complete, and returns them (paths,
   * sorted). smtp-sink creates a dump at MAIL and fills it while DATA arrives, ending it with an
   * empty line once the transaction is over, so a file that exists may still be partial.
   * Throws with smtp-sink's output after `timeoutMs`.
   */
  completeDumps(count: number, timeoutMs?: number): Promise<string[]>;
  logs(): string;
  /** SIGTERM (SIGKILL after 5 s) and await the exit. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts Postfix's smtp-sink (C, one process, answers 250 and stores nothing unless dumpDir). */
export async function startSmtpSink(options: StartSmtpSinkOptions = {}): Promise<SmtpSinkHandle> {
  const unavailable = smtpSinkUnavailableReason();
  if (unavailable !== undefined) throw new Error(`cannot start smtp-sink: ${unavailable}`);
  const address = options.address ?? '127.0.0.1';
  const port = options.port ?? (await findFreePort(address));
  const args = [SMTP_SINK];
  // As root smtp-sink insists on -u: it drops to that user after binding the socket.
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  args.push('-m', String(options.maxConnections ?? 8192));
  if (options.dumpDir !== undefined) {
    await mkdir(options.dumpDir, { recursive: true });
    await chmod(options.dumpDir, 0o777);
    if (process.getuid?.() === 0) await assertTraversable(options.dumpDir);
    args.push('-d', join(options.dumpDir, '%Y%m%d%H%M%S.'));
  }
  args.push(...(options.extraArgs ?? []), `${address}:${port}`, String(options.backlog ?? 4096));
  const sink = startBackground(args);
  const { proc } = sink;
  const key = `smtp-sink:${proc.pid}`;
  lastResort.set(key, () => proc.kill('SIGKILL'));
  const stop = async () => {
    lastResort.delete(key);
    await sink.stop();
  };
  const handle: SmtpSinkHandle = {
    address,
    port,
    proc,
    dumpDir: options.dumpDir,
    dumps: async () => {
      if (options.dumpDir === undefined) return [];
      return (await readdir(options.dumpDir)).map((name) => join(options.dumpDir!, name)).sort();
    },
    completeDumps: async (count, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const files = await handle.dumps();
        if (files.length >= count) {
          const texts = await Promise.all(files.map((f) => readFile(f, 'latin1')));
          if (texts.every((t) => t.endsWith('\n\n'))) return files;
        }
        if (Date.now() > deadline) throw new Error(`smtp-sink wrote ${files.length} complete or partial dumps, expected ${count}: ${sink.output()}`);
        await Bun.sleep(20);
      }
    },
    logs: () => sink.output(),
    stop,
    [Symbol.asyncDispose]: stop,
  };
  try {
    await waitForGreeting(address, port, {
      timeoutMs: 10_000,
      abort: () => (proc.exitCode !== null ? `smtp-sink exited (${proc.exitCode}): ${handle.logs()}` : undefined),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return handle;
}

/** smtp-sink writes dumps as `nobody`: every ancestor of the dump dir must be searchable by others. */
async function assertTraversable(path: string): Promise<void> {
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) {
      throw new Error(`smtp-sink runs as nobody and cannot reach ${path}: ${dir} lacks o+x (chmod 755 it)`);
    }
  }
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const fields = line.split(':');
      if (fields[0] === name) return { uid: Number(fields[2]), gid: Number(fields[3]) };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** True while `pid` exists and is not a zombie (a zombie has exited; only the wait() is pending). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** PIDs of every live descendant of `root`, from /proc. */
export function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(parent) ?? [];
      list.push(Number(name));
      children.set(parent, list);
    } catch {
      // the process exited while we looked
    }
  }
  const found: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    found.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return found;
}

async function waitGone(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pids.some(isRunning)) return true;
    await Bun.sleep(50);
  }
  return !pids.some(isRunning);
}
