/**
 * A process started for the length of a test: its stdout and stderr are collected as they come,
 * and stop() ends it with SIGTERM (SIGKILL after 5 s) and always awaits its exit (BUN.md §7).
 */
import type { Subprocess } from 'bun';

export interface Background {
  readonly proc: Subprocess<'ignore' | 'pipe', 'pipe', 'pipe'>;
  /** stdout and stderr so far, in arrival order. */
  output(): string;
  stop(): Promise<void>;
}

export function startBackground(argv: string[], options: { stdin?: 'ignore' | 'pipe' } = {}): Background {
  const proc = Bun.spawn(argv, { stdin: options.stdin ?? 'ignore', stdout: 'pipe', stderr: 'pipe' });
  const chunks: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) chunks.push(decoder.decode(chunk, { stream: true }));
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]).catch(() => {});
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(timer);
    }
    await proc.exited;
    await drained;
  };
  return { proc, output: () => chunks.join(''), stop };
}
