/**
 * @module Questions on a terminal: one line at a time, a secret without echo, a block of text
 * ended by a line holding "." or by end of input. Lives beside render.ts so that commands only
 * say what to ask (STYLE.md convention 7).
 * Rule: the prompter owns the input stream while it exists; close() hands it back.
 */

/** Where a command asks: its standard input, and standard error for the questions. */
export interface PromptIo {
  readonly stdin: PromptInput;
  readonly stderr: PromptOutput;
}

/** True when a person can answer (standard input is a terminal). */
export function isInteractive(io: PromptIo): boolean {
  return io.stdin.isTTY === true;
}

/**
 * A secret: asked without echo on a terminal; otherwise the first line of standard input, so
 * that scripts can pipe it. End of input gives "".
 */
export async function readSecret(io: PromptIo, question: string): Promise<string> {
  const prompter = createPrompter(io.stdin, io.stderr);
  try {
    return (isInteractive(io) ? await prompter.askSecret(question) : await prompter.ask('')) ?? '';
  } finally {
    prompter.close();
  }
}

export type PromptInput = { readonly isTTY?: boolean; setRawMode?(mode: boolean): unknown } & Pick<NodeJS.ReadableStream, 'on' | 'off' | 'resume' | 'pause'>;

export interface PromptOutput {
  write(text: string): unknown;
}

export interface Prompter {
  /** Asks and returns the answer without its line break; null at end of input. */
  ask(question: string): Promise<string | null>;
  /** Asks without echoing what is typed (a password); null at end of input or Ctrl-C. */
  askSecret(question: string): Promise<string | null>;
  /** Reads lines until one is "." alone or input ends; returns them joined with "\n". */
  readText(intro: string): Promise<string>;
  say(text: string): void;
  close(): void;
}

const DECODER = new TextDecoder();
const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = /[\u0008\u007f]/;

export function createPrompter(input: PromptInput, output: PromptOutput): Prompter {
  let buffer = '';
  let ended = false;
  let wake: (() => void) | null = null;
  const onData = (chunk: Uint8Array | string) => {
    buffer += typeof chunk === 'string' ? chunk : DECODER.decode(chunk, { stream: true });
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  input.on('data', onData);
  input.on('end', onEnd);
  input.resume();

  const waitForInput = () => new Promise<void>((resolve) => (wake = resolve)).then(() => (wake = null));

  async function readLine(): Promise<string | null> {
    for (;;) {
      const lf = buffer.search(/\r?\n|\r/);
      if (lf >= 0) {
        const line = buffer.slice(0, lf);
        buffer = buffer.slice(lf + (buffer.startsWith('\r\n', lf) ? 2 : 1));
        return line;
      }
      if (ended) {
        if (buffer === '') return null;
        const rest = buffer;
        buffer = '';
        return rest;
      }
      await waitForInput();
    }
  }

  /** Raw mode: characters arrive one by one and nothing is echoed. */
  async function readSecretLine(): Promise<string | null> {
    let secret = '';
    for (;;) {
      while (buffer.length > 0) {
        const c = buffer[0];
        buffer = buffer.slice(1);
        if (c === '\r' || c === '\n') return secret;
        if (c === CTRL_C || (c === CTRL_D && secret === '')) return null;
        if (BACKSPACE.test(c)) secret = secret.slice(0, -1);
        else secret += c;
      }
      if (ended) return secret === '' ? null : secret;
      await waitForInput();
    }
  }

  return {
    async ask(question) {
      output.write(question);
      return readLine();
    },
    async askSecret(question) {
      output.write(question);
      const raw = input.isTTY === true && typeof input.setRawMode === 'function';
      if (raw) input.setRawMode!(true);
      try {
        return raw ? await readSecretLine() : await readLine();
      } finally {
        if (raw) input.setRawMode!(false);
        output.write('\n');
      }
    },
    async readText(intro) {
      output.write(intro);
      const lines: string[] = [];
      for (let line = await readLine(); line !== null && line !== '.'; line = await readLine()) lines.push(line);
      return lines.length > 0 ? `${lines.join('\n')}\n` : '';
    },
    say(text) {
      output.write(text);
    },
    close() {
      input.off('data', onData);
      input.off('end', onEnd);
      input.pause();
    },
  };
}
