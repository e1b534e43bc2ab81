/**
 * @module The sendmail link's delivery: the message goes to the local serve found through its
 * config file ($MAILBOX_CONFIG, else /etc/mailbox.conf when it exists, else serve's defaults):
 * over serve's control socket while it runs, or, while it is stopped, straight into its spool
 * under the spool's lock (as Postfix's maildrop), so a cron job's mail is never lost; serve
 * delivers it at its next start.
 * Rule: sendmail is silent on success (cron mails any output); a failure is one line and a
 *       sysexits code, 75 when trying again later may work.
 */
import { existsSync } from 'node:fs';
import { formatMailbox } from '../../core/address.ts';
import { buildServeConfig } from '../../config.ts';
import { InputError, type ExitCode } from '../../exit-status.ts';
import { queueRequest } from '../../queue/queue-access.ts';
import type { SendOptions } from './options.ts';
import { submissionIo, type SendDeps } from './run.ts';
import { buildSubmission } from '../../send/submission.ts';

/** The system-wide config file the sendmail link reads when $MAILBOX_CONFIG names none. */
export const SYSTEM_CONFIG = '/etc/mailbox.conf';
/** How long a message waits for a serve that is starting (or another sendmail) to let go of the spool. */
const LOCK_WAIT_MS = 30_000;

/** The config file of the local serve, or undefined for serve's defaults. */
export function localServeConfigFile(env: Record<string, string | undefined>): string | undefined {
  if (env.MAILBOX_CONFIG) return env.MAILBOX_CONFIG;
  return existsSync(SYSTEM_CONFIG) ? SYSTEM_CONFIG : undefined;
}

/** Hands the message to the local serve (or its spool); resolves with its spool id. */
export async function dropLocally(options: SendOptions, deps: SendDeps): Promise<{ id: string; via: 'serve' | 'spool'; messageId: string }> {
  const env = deps.env ?? {};
  const config = buildServeConfig({ config: localServeConfigFile(env), starttls: true }, env);
  // A sender nobody gave is the user at serve's host name (its config's `hostname`, else this
  // machine's name), as Postfix's sendmail takes myorigin, which is myhostname by default.
  const submission = await buildSubmission(options, { ...submissionIo(deps), hostname: () => config.hostname });
  const request = {
    op: 'submit',
    submission: {
      sender: submission.sender === null ? '' : formatMailbox(submission.sender),
      recipients: submission.recipients.map(formatMailbox),
      message: Buffer.from(submission.render(true)).toString('base64'),
      user: env.USER ?? env.LOGNAME ?? 'root',
      ...(options.dsn ? { dsn: options.dsn } : {}),
    },
  };
  const { response, via } = await queueRequest(config, request, { holder: 'sendmail', env, now: deps.now, waitMs: LOCK_WAIT_MS });
  if (!response.ok) throw new InputError(response.error, response.exit as ExitCode);
  const { id } = response.result as { id: string };
  if (options.verbose) deps.stderr.write(`queued as ${id} (${via === 'serve' ? 'by the running serve' : `in the spool ${config.dataDir}; serve delivers it when it starts`})\n`);
  return { id, via, messageId: submission.messageId };
}
