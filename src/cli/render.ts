/**
 * @module Human output: the only file that chooses picocolors styles. Colour only on a
 * terminal, never when piped or when NO_COLOR is set.
 */
import { createColors } from 'picocolors';
import type { Level, LineStyle } from '../log.ts';

export type Paint = ReturnType<typeof createColors>;

export function colorsFor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): Paint {
  const enabled = Boolean(stream.isTTY) && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  return createColors(enabled);
}

/** Colours a log line's event word by what it means. */
export function paintEvent(paint: Paint, level: Level, event: string): string {
  if (level === 'error') return paint.red(paint.bold(event));
  if (level === 'warn') return paint.yellow(event);
  if (event === 'accepted') return paint.green(event);
  return paint.cyan(event);
}

export function paintKey(paint: Paint, key: string): string {
  return paint.dim(key);
}

export function paintError(paint: Paint, text: string): string {
  return `${paint.red(paint.bold('mailbox:'))} ${text}`;
}

export function paintSuccess(paint: Paint, text: string): string {
  return paint.green(text);
}

/** The log's text lines styled for `stream` (a log file is never coloured). */
export function logLineStyle(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): LineStyle {
  const paint = colorsFor(stream, env);
  return { time: (text) => paint.dim(text), event: (level, event) => paintEvent(paint, level, event), key: (text) => paintKey(paint, text) };
}

/** `mailbox verify` verdict words: green, red, yellow, and plain dim for "unknown". */
export function paintVerdict(paint: Paint, verdict: 'deliverable' | 'undeliverable' | 'risky' | 'unknown', text: string = verdict): string {
  if (verdict === 'deliverable') return paint.green(text);
  if (verdict === 'undeliverable') return paint.red(paint.bold(text));
  if (verdict === 'risky') return paint.yellow(text);
  return paint.dim(text);
}

/** `mailbox replay` outcome words: green when sent, yellow when it may work later or went in part, red when refused. */
export function paintReplayVerdict(paint: Paint, verdict: 'sent' | 'partial' | 'temp' | 'perm', text: string = verdict): string {
  if (verdict === 'sent') return paint.green(text);
  if (verdict === 'perm') return paint.red(paint.bold(text));
  return paint.yellow(text);
}
