/**
 * @module `mailbox send` (and `sendmail`): flags → SendOptions → src/send/run.ts. Composes a
 * message (or takes one whole), sends it to a server or the recipients' MX hosts, and prints
 * one line per delivery; `-v` prints the SMTP dialogue to standard error as it happens.
 * Rule: no protocol logic here. Failures are thrown (UsageError, InputError, ClientFailure) and
 * main.ts turns them into one line and a sysexits code.
 */
import type { CAC } from 'cac';
import { addConnectionOptions } from '../cli/connection-options.ts';
import { DEFAULT_SERVER, parseSendFlags } from './send/options.ts';
import { runInteractive } from './send/interactive.ts';
import { dropLocally } from './send/local-drop.ts';
import { runSend, type SendDeps, type SendSummary } from './send/run.ts';

export type { SendDeps, SendSummary } from './send/run.ts';
export { parseSendFlags, parseServer } from './send/options.ts';
export { runSend } from './send/run.ts';

export function register(cli: CAC, deps: SendDeps): void {
  const command = cli
    .command('send [...recipients]', 'Send a message over SMTP (by default to the local `mailbox serve`); also `sendmail`')
    .option('--from <address>', 'Sender, "Name <addr>" or addr (required unless -t, --eml or --interactive)')
    .option('--to <address>', 'Recipient; repeat or comma-separate (arguments are recipients too)', { type: [String] })
    .option('--cc <address>', 'Copy recipient; repeat or comma-separate', { type: [String] })
    .option('--bcc <address>', 'Hidden recipient: in the envelope, in no header', { type: [String] })
    .option('--reply-to <address>', 'Reply-To address; repeat or comma-separate', { type: [String] })
    .option('--subject <text>', 'Subject; non-ASCII is encoded (RFC 2047)')
    .option('--body <text>', 'Message text (default: standard input when it is not a terminal)')
    .option('--body-file <file>', 'Message text from a file')
    .option('--html <file>', 'An HTML version of the text (multipart/alternative)')
    .option('--attach <file>', 'Attach FILE[;type=TYPE][;name=NAME]; repeat for several', { type: [String] })
    .option('--inline <file>', 'Inline image FILE[;type=TYPE][;cid=ID] for the HTML (src="cid:ID", default ID: the file name)', { type: [String] })
    .option('--header <field>', 'Extra header "Name: value"; repeat for several', { type: [String] })
    .option('--eml <file>', 'Send this message file as it is (envelope from its headers unless given)')
    .option('-t', 'sendmail -t: the message is on standard input; recipients also from its To/Cc/Bcc')
    .option('-i', 'sendmail -i/-oi: a line with a single "." does not end the message')
    .option('-f <sender>', 'sendmail -f: the envelope sender')
    .option('-F <name>', 'sendmail -F: the full name for a From header the message lacks')
    .option('--dry-run', 'Print the envelope and the message instead of sending')
    .option('--server <url>', `smtp://, smtp+starttls://, smtps://HOST[:PORT] or HOST:PORT (default $MAILBOX_SERVER or ${DEFAULT_SERVER})`)
    .option('--mx', "Deliver straight to each recipient domain's MX hosts (STARTTLS when offered, certificates not checked unless --tls starttls or --tls-ca)")
    .option('--dns <server>', 'DNS server for --mx, IP[:PORT] (default: /etc/resolv.conf)')
    .option('--port <port>', 'SMTP port for --mx (default 25)');
  addConnectionOptions(command)
    .option('--notify <list>', 'DSN: NEVER, or SUCCESS,FAILURE,DELAY (RFC 3461)')
    .option('--ret <what>', 'DSN: return FULL message or HDRS only')
    .option('--envid <id>', 'DSN: envelope id')
    .option('--quit-after <stage>', 'Stop with QUIT after connect, ehlo, tls, auth, mail or rcpt (testing servers)')
    .option('--no-chunking', 'Use DATA even when the server offers CHUNKING (BDAT)')
    .option('-v, --verbose', 'Print the SMTP dialogue (C:/S: lines) to standard error')
    .option('--transcript <file>', 'Write the SMTP dialogue to FILE (secrets shown as <redacted>)')
    .option('--json', 'Print the result as JSON: per-recipient replies, TLS, capabilities, timings')
    .option('--interactive', 'Ask for sender, recipients, subject and text in turn')
    .option('--sendmail', 'Behave as sendmail (as when run through a link named sendmail): the message is on standard input')
    .example('mailbox send --from me@example.org --to you@example.net --subject Hi --body "Hello"')
    .example('mailbox send --server smtp+starttls://smtp.example.net --user me --from me@example.net --to you@example.org --attach report.pdf < note.txt')
    .example('mailbox send --mx --from me@example.org --to you@example.net --body hi -v')
    .example('printf "To: you@example.net\\nSubject: cron\\n\\nDone.\\n" | mailbox send -t -i')
    .action(async (recipients: string[], flags: Record<string, unknown>): Promise<SendSummary> => {
      const options = parseSendFlags(flags, recipients, deps.env ?? {});
      // The sendmail link hands mail to the local serve, or to its spool while serve is stopped
      // (send/local-drop.ts); --server or $MAILBOX_SERVER sends over SMTP instead.
      if (options.sendmail && flags.server === undefined && !deps.env?.MAILBOX_SERVER && !options.mx && !options.dryRun) {
        const dropped = await dropLocally(options, deps);
        return { messageId: dropped.messageId, results: [] };
      }
      return options.interactive ? runInteractive(options, deps) : runSend(options, deps);
    });
}
