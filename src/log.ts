/**
 * @module Logging: one readable line per event, or one JSON object per line with --log json.
 * Rule: the logger is built in main and passed down; nothing logs through a global.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export type Fields = Record<string, unknown>;
export type Level = 'info' | 'warn' | 'error';

/** How a text line's parts are styled; the colours are the CLI's (cli/render.ts's logLineStyle). */
export interface LineStyle {
  time(text: string): string;
  event(level: Level, event: string): string;
  key(text: string): string;
}

const PLAIN: LineStyle = { time: (text) => text, event: (_level, event) => event, key: (text) => text };

/** A value as it appears in a key=value log line: quoted when it has spaces or quotes. */
export function formatValue(value: unknown): string {
  const text = Array.isArray(value) ? value.join(',') : String(value);
  return /[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text;
}

/** A client-supplied name as it may appear in a log line: printable and bounded. */
export function printable(text: string): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 97)}...` : clean;
}

/**
 * The JSON form of a line: time, level and event, then the fields in their order, as
 * JSON.stringify({ time, level, event, ...fields }) gives it, without copying the fields (a field
 * named time, level or event takes that place, as in the spread).
 */
export function jsonLine(time: string, level: Level, event: string, fields: Fields): string {
  if (Object.hasOwn(fields, 'time') || Object.hasOwn(fields, 'level') || Object.hasOwn(fields, 'event')) {
    return JSON.stringify({ time, level, event, ...fields });
  }
  const head = `{"time":${JSON.stringify(time)},"level":"${level}","event":${JSON.stringify(event)}`;
  const rest = JSON.stringify(fields);
  return rest === '{}' ? `${head}}` : `${head},${rest.slice(1)}`;
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
  /** Plain text when absent. */
  readonly style?: LineStyle;
  readonly sink?: EventSink;
}

export function createLogger(options: LoggerOptions): Logger {
  let fd = options.file ? openSync(options.file, 'a') : 2;
  const style = options.style ?? PLAIN;

  // A busy relay logs many lines per millisecond: the time's text is made once per millisecond.
  let lastMs = NaN;
  let lastTime = '';
  function timeText(): string {
    const ms = options.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastTime = new Date(ms).toISOString();
    }
    return lastTime;
  }

  function line(level: Level, event: string, fields: Fields = {}): string {
    const time = timeText();
    if (options.format === 'json') return `${jsonLine(time, level, event, fields)}\n`;
    let text = `${style.time(time)} ${style.event(level, event)}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      text += ` ${style.key(`${key}=`)}${formatValue(value)}`;
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
