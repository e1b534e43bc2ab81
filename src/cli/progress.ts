/**
 * @module A one-line progress bar for long runs on a terminal: done count, share, rate, errors
 * and time left. Drawn on standard error at most ten times a second, erased before any other
 * line is printed, and never drawn when standard error is not a terminal.
 * Rule: formatting is pure (formatProgressLine); ProgressLine only decides when to draw.
 */
import { paintKey, type Paint } from './render.ts';

const BAR_WIDTH = 24;
const REDRAW_MS = 100;

export interface ProgressState {
  readonly done: number;
  /** Share of the work done, 0 to 1 (by bytes of input read, when counts are not known ahead). */
  readonly fraction: number;
  readonly elapsedMs: number;
  readonly errors: number;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `[#########...............]  37%  3,712 msg  1,204 msg/s  2 errors  ETA 5s` */
export function formatProgressLine(paint: Paint, state: ProgressState, unit: string): string {
  const fraction = Math.min(1, Math.max(0, state.fraction));
  const filled = Math.round(fraction * BAR_WIDTH);
  const seconds = state.elapsedMs / 1000;
  const rate = seconds > 0 ? state.done / seconds : 0;
  const eta = fraction > 0 && seconds > 0 ? (seconds / fraction) * (1 - fraction) : Number.POSITIVE_INFINITY;
  const errors = state.errors === 1 ? '1 error' : `${state.errors.toLocaleString('en-US')} errors`;
  return [
    `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`,
    `${String(Math.floor(fraction * 100)).padStart(3)}%`,
    `${state.done.toLocaleString('en-US')} ${unit}`,
    `${Math.round(rate).toLocaleString('en-US')} ${unit}/s`,
    state.errors > 0 ? paint.yellow(errors) : paintKey(paint, errors),
    `ETA ${formatDuration(eta)}`,
  ].join('  ');
}

/** Draws the line on a terminal; a no-op elsewhere. */
export class ProgressLine {
  readonly #stream: { write(text: string): unknown };
  readonly #enabled: boolean;
  readonly #now: () => number;
  #shown = false;
  #lastDrawMs = -Infinity;

  constructor(stream: { write(text: string): unknown; readonly isTTY?: boolean }, env: Record<string, string | undefined>, now: () => number) {
    this.#stream = stream;
    this.#enabled = stream.isTTY === true && env.TERM !== 'dumb';
    this.#now = now;
  }

  /** Redraws when the last draw is old enough (or `force`). */
  update(render: () => string, force = false): void {
    if (!this.#enabled) return;
    const now = this.#now();
    if (!force && now - this.#lastDrawMs < REDRAW_MS) return;
    this.#lastDrawMs = now;
    this.#stream.write(`\r\x1b[K${render()}`);
    this.#shown = true;
  }

  /** Erases the line (before other output, and at the end). */
  clear(): void {
    if (!this.#shown) return;
    this.#stream.write('\r\x1b[K');
    this.#shown = false;
  }
}
