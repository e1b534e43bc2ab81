// The settings table: every serve setting is a flag with help, a config-file key and a README row,
// and a value means the same from the command line as from the file.
import { afterAll, expect, test } from 'bun:test';
import { cac } from 'cac';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from '../../src/commands/serve.ts';
import { buildServeConfig, readConfigFile } from '../../src/config.ts';
import { SERVE_SETTINGS, formatFlag, type SettingName } from '../../src/serve/settings.ts';
import { SetupError } from '../../src/cli/exit-codes.ts';

const env = { HOME: '/home/test' };
const dir = mkdtempSync(join(tmpdir(), 'mailbox-settings-'));
afterAll(() => rmSync(dir, { recursive: true }));
const sampleFile = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

/** A value for every setting the file may hold; a switch's value is the opposite of its default. */
const SAMPLES: Record<Exclude<SettingName, 'config'>, string[]> = {
  listen: ['127.0.0.1:2525', '[::1]:0'],
  data: ['/srv/spool'],
  hostname: ['mx.example.test'],
  domain: ['example.test', 'example.org'],
  postmaster: ['hostmaster@example.test'],
  'max-size': ['10M'],
  'max-recipients': ['150'],
  'max-errors': ['5'],
  'command-timeout': ['90s'],
  'data-timeout': ['2m'],
  'max-messages': ['100'],
  'max-age': ['7d'],
  'bounce-size-limit': ['64K'],
  'delay-warning': ['4h'],
  log: ['json'],
  'log-file': ['/var/log/mailbox.log'],
  'shutdown-timeout': ['5s'],
  'listen-tls': ['127.0.0.1:0', '127.0.0.2:465'],
  pop3: ['127.0.0.1:0', '[::1]:1110'],
  'pop3-tls': ['127.0.0.1:0', '127.0.0.2:995'],
  imap: ['127.0.0.1:0', '[::1]:1143'],
  'imap-tls': ['127.0.0.1:0', '127.0.0.2:993'],
  http: ['127.0.0.1:0', '[::1]:8025'],
  'http-insecure': ['yes'],
  'tls-cert': ['/etc/cert.pem'],
  'tls-key': ['/etc/key.pem'],
  starttls: ['no'],
  'require-tls': ['yes'],
  users: ['/etc/mailbox-users'],
  'allow-insecure-auth': ['yes'],
  'auth-any': ['yes'],
  trust: ['10.0.0.0/8', '192.0.2.7'],
  'max-connections': ['100'],
  'max-connections-per-ip': ['3'],
  faults: ['/etc/mailbox-faults.json'],
  relay: ['smtp://relay.example.test:2525', 'smtps://relay2.example.test'],
  'relay-domain': ['backup.example.test'],
  'relay-recipients': [sampleFile('relay-recipients', 'alice\nbob@backup.example.test\n')],
  route: ['slow.example.test=smtp://127.0.0.2:2525', 'fast.example.test=mx'],
  'tls-policy': ['bank.example.test=verify', 'corp.example.test=require'],
  'relay-ca': [sampleFile('relay-ca.pem', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n')],
  'relay-password-file': [sampleFile('relay-password', 'secret\n')],
  dns: ['127.0.0.1:5353'],
  workers: ['3'],
  'relay-concurrency': ['4'],
  'relay-cool-off': ['1m'],
  'relay-timeout': ['10s'],
  'retry-after': ['1m'],
  'retry-max': ['30m'],
  'queue-lifetime': ['2d'],
  'max-hops': ['30'],
};

function serveCommand() {
  const cli = cac('mailbox');
  register(cli, { env, now: () => 0, signals: () => ({ stop: new Promise(() => {}), urgent: new Promise(() => {}), onHangup() {} }) });
  return { cli, command: cli.commands.find((c) => c.name === 'serve')! };
}

test('the serve command declares exactly the table, each flag with its help text', () => {
  const { command } = serveCommand();
  expect(command.options.map((o) => [o.rawName, o.description])).toEqual(SERVE_SETTINGS.map((s) => [formatFlag(s), s.help]));
  expect(formatFlag(SERVE_SETTINGS.find((s) => s.name === 'starttls')!)).toBe('--no-starttls');
  expect(formatFlag(SERVE_SETTINGS.find((s) => s.name === 'listen')!)).toBe('--listen <host:port>');
});

test('every setting has a README row', () => {
  const readme = readFileSync(join(import.meta.dir, '../../README.md'), 'utf8');
  const rows = readme.split('\n').filter((l) => l.startsWith('| `--'));
  for (const s of SERVE_SETTINGS) {
    const flag = s.value === null && s.onByDefault ? `--no-${s.name}` : `--${s.name}`;
    expect({ flag, row: rows.some((r) => new RegExp(`\`${flag}[ \`]`).test(r)) }).toEqual({ flag, row: true });
  }
});

test('a value means the same on the command line as in the config file', () => {
  for (const [name, values] of Object.entries(SAMPLES)) {
    const setting = SERVE_SETTINGS.find((s) => s.name === name)!;
    const file = join(dir, `${name}.conf`);
    writeFileSync(file, values.map((v) => `${name} ${v}\n`).join(''));
    const argv =
      setting.value === null
        ? [formatFlag(setting)]
        : values.flatMap((v) => [`--${name}`, v]);
    // --tls-cert and --tls-key go together.
    const pair = name === 'tls-cert' ? ['tls-key', '/etc/key.pem'] : name === 'tls-key' ? ['tls-cert', '/etc/cert.pem'] : null;
    if (pair) {
      writeFileSync(file, `${name} ${values[0]}\n${pair[0]} ${pair[1]}\n`);
      argv.push(`--${pair[0]}`, pair[1]);
    }
    const { cli } = serveCommand();
    cli.parse(['bun', 'mailbox', 'serve', ...argv], { run: false });
    const fromFlags = buildServeConfig(cli.options, env);
    const fromFile = buildServeConfig({ config: file, starttls: true }, env);
    const defaults = buildServeConfig({ starttls: true }, env);
    expect({ name, same: Bun.deepEquals(fromFlags, fromFile) }).toEqual({ name, same: true });
    expect({ name, changed: !Bun.deepEquals(fromFile, defaults) }).toEqual({ name, changed: true });
  }
});

test('the file: repeatable settings repeat, others are set once, switches take yes or no, --config is no key', () => {
  const file = join(dir, 'rules.conf');
  for (const s of SERVE_SETTINGS) {
    if (!s.inFile) continue;
    const value = s.value === null ? 'yes' : (SAMPLES[s.name as keyof typeof SAMPLES][0] ?? 'x');
    writeFileSync(file, `${s.name} ${value}\n${s.name} ${value}\n`);
    if (s.repeats) expect(readConfigFile(file).get(s.name)).toEqual([value, value]);
    else expect(() => readConfigFile(file)).toThrow(SetupError);
  }
  writeFileSync(file, 'require-tls maybe\n');
  expect(() => readConfigFile(file)).toThrow(SetupError);
  writeFileSync(file, `config ${file}\n`);
  expect(() => readConfigFile(file)).toThrow('unknown setting "config"');
  expect(Object.keys(SAMPLES).sort()).toEqual(SERVE_SETTINGS.filter((s) => s.inFile).map((s) => s.name).sort());
});
