/**
 * @module `mailbox send --interactive`: asks for the sender, the recipients, the subject and the
 * text in turn, as the original console client did; a sender or recipient the server refuses
 * is shown with the server's reason and asked for again.
 * Rule: each address is checked with its own short session that stops after MAIL or RCPT
 * (--quit-after), so nothing is sent until everything has been asked.
 */
import { UsageError } from '../../exit-status.ts';
import { createPrompter, type PromptInput, type Prompter } from '../../cli/prompt.ts';
import type { Mailbox } from '../../core/address.ts';
import { describeReply } from '../../core/reply.ts';
import { ComposeError, parseAddress, parseAddressList } from '../../message/compose.ts';
import { handOffToServer, type SessionPlan } from '../../delivery/handoff.ts';
import type { SendOptions } from './options.ts';
import { buildPlan, deliverSubmission, submissionIo, transcriptSink, type SendDeps, type SendSummary } from './run.ts';
import { buildSubmission, type Submission } from '../../send/submission.ts';

/** A probe submission: MAIL (and RCPT) only, never a message. */
function probe(sender: Mailbox, recipients: readonly Mailbox[]): Submission {
  return { sender, recipients, messageId: '', render: () => new Uint8Array(0) };
}

/** The server's verdict on an address: null when accepted, else the reason to show. */
async function check(options: SendOptions, plan: SessionPlan, sender: Mailbox, recipient: Mailbox | null): Promise<string | null> {
  const stage = recipient === null ? 'mail' : 'rcpt';
  const result = await handOffToServer(options.server!, probe(sender, [recipient ?? sender]), [recipient ?? sender], { ...plan, quitAfter: stage });
  if (result.failure !== null) {
    // The server could not be reached, or refused the session: there is nothing to ask again.
    if (result.failure.stage !== stage) throw result.failure;
    return result.failure.reply ? describeReply(result.failure.reply) : result.failure.message;
  }
  const reply = result.replies[0];
  if (recipient !== null && reply !== undefined && !reply.accepted) return describeReply(reply.reply);
  return null;
}

async function askAddress(prompter: Prompter, question: string, accept: (mailbox: Mailbox) => Promise<string | null>, allowEmpty: boolean): Promise<Mailbox | null> {
  for (;;) {
    const answer = await prompter.ask(question);
    if (answer === null) throw new UsageError('input ended before the message was complete');
    if (answer.trim() === '') {
      if (allowEmpty) return null;
      continue;
    }
    let mailbox: Mailbox;
    try {
      mailbox = parseAddress(answer).mailbox;
    } catch (error) {
      if (!(error instanceof ComposeError)) throw error;
      prompter.say(`  ${error.message}\n`);
      continue;
    }
    const refused = await accept(mailbox);
    if (refused === null) return mailbox;
    prompter.say(`  refused: ${refused}\n`);
  }
}

/** Asks for each field, checking addresses with the server, then sends. */
export async function runInteractive(options: SendOptions, deps: SendDeps): Promise<SendSummary> {
  if (options.mx || options.server === null) throw new UsageError('--interactive sends to one server: give --server (not --mx)');
  const stdin = deps.stdin;
  if (stdin.on === undefined || stdin.off === undefined || stdin.resume === undefined || stdin.pause === undefined) {
    throw new UsageError('--interactive needs standard input to read from');
  }
  const prompter = createPrompter(stdin as PromptInput, deps.stdout);
  const sink = transcriptSink(options, deps);
  let answers: SendOptions;
  let plan: SessionPlan;
  try {
    plan = await buildPlan(options, deps, sink.onEntry);
    prompter.say(`mailbox send: composing a message for ${options.server.host}:${options.server.port}\n`);
    const fromText = options.from ?? null;
    let sender: Mailbox;
    if (fromText !== null) sender = parseAddress(fromText).mailbox;
    else sender = (await askAddress(prompter, 'From: ', (m) => check(options, plan, m, null), false))!;
    const recipients: Mailbox[] = [...options.to, ...options.cc, ...options.bcc].flatMap(parseAddressList).map((a) => a.mailbox);
    if (recipients.length === 0) {
      prompter.say('Recipients, one per line; an empty line ends the list.\n');
      for (;;) {
        const next = await askAddress(prompter, 'To: ', (m) => check(options, plan, sender, m), recipients.length > 0);
        if (next === null) break;
        recipients.push(next);
      }
    }
    const subject = options.subject ?? (await prompter.ask('Subject: ')) ?? '';
    const body = options.body ?? (await prompter.readText('Message text; end with a line holding only "." (or Ctrl-D):\n'));
    const to = recipients.map((r) => `${r.local}@${r.domain}`);
    answers = { ...options, from: options.from ?? `${sender.local}@${sender.domain}`, to, cc: [], bcc: [], subject, body, interactive: false };
  } finally {
    prompter.close();
  }
  const submission = await buildSubmission(answers, submissionIo(deps));
  try {
    return await deliverSubmission(submission, answers, deps, plan);
  } finally {
    await sink.save();
  }
}
