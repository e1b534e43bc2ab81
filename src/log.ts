/**
 * @module Logging: one readable line per event, or one JSON object per line with --log json.
 * Rule: the logger is built in main and passed down; nothing logs through a global.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { colorsFor, formatValue, paintEvent, paintKey, type Level, type Paint } from './cli/render.ts';

export type Fields = Record<string, unknown>;

/** A client-supplied name as it may appear in a log line: printable and bounded. */
export function printable(text: string): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 97)}...` : clean;
}

export interface Logger {
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  error(event: string, fields?: Fields): void;
  /** Reopens the log file (SIGHUP), so that logrotate can move it away. */
  reopen(): void;
  close(): void;
}

/**
 * Told of every event the logger is given, before it is formatted: the /metrics counters are fed
 * here, so they count exactly what the log lines say.
 */
export type EventSink = (level: Level, event: string, fields: Fields) => void;

export interface LoggerOptions {
  readonly format: 'text' | 'json';
  /** A file to append to; standard error when absent. */
  readonly file?: string;
  readonly now: () => number;
  readonly env: Record<string, string | undefined>;
  readonly sink?: EventSink;
}

export function createLogger(options: LoggerOptions): Logger {
  let fd = options.file ? openSync(options.file, 'a') : 2;
  const paint: Paint = options.file ? colorsFor({ isTTY: false }, options.env) : colorsFor(process.stderr, options.env);

  function line(level: Level, event: string, fields: Fields = {}): string {
    const time = new Date(options.now()).toISOString();
    if (options.format === 'json') return `${JSON.stringify({ time, level, event, ...fields })}\n`;
    let text = `${paint.dim(time)} ${paintEvent(paint, level, event)}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      text += ` ${paintKey(paint, `${key}=`)}${formatValue(value)}`;
    }
    return `${text}\n`;
  }

  // Lines written in one turn of the event loop go out in one write: under load a write per
  // accepted message cost a tenth of the server's CPU.
  let buffered = '';
  let scheduled = false;
  function flush(): void {
    scheduled = false;
    if (buffered === '') return;
    const text = buffered;
    buffered = '';
    try {
      writeSync(fd, text);
    } catch {
      // A log that cannot be written must not stop mail; standard error is the last resort.
      if (fd !== 2) writeSync(2, text);
    }
  }
  function emit(level: Level, event: string, fields?: Fields): void {
    options.sink?.(level, event, fields ?? {});
    buffered += line(level, event, fields);
    if (level === 'error') return flush();
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }

  return {
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
    reopen() {
      flush();
      if (!options.file) return;
      const next = openSync(options.file, 'a');
      const previous = fd;
      fd = next;
      closeSync(previous);
    },
    close() {
      flush();
      if (fd !== 2) closeSync(fd);
      fd = 2;
    },
  };
}
