/**
 * @module Reading cac's flag values: a repeated flag arrives as an array, a flag without its value
 * as `true`, an absent one as undefined. Every command reads its flags through these.
 */
import { UsageError } from './exit-status.ts';

/** The one value of a flag that may be given once, or null when it is absent. */
export function single(value: unknown, flag: string): string | null {
  if (value === undefined || value === null || value === false) return null;
  if (Array.isArray(value)) throw new UsageError(`${flag} may be given once`);
  if (value === true) throw new UsageError(`${flag} needs a value`);
  return String(value);
}

/** A value that must be one of `allowed` (compared without regard to case), spelled as there. */
export function oneOf<T extends string>(value: string | null, allowed: readonly T[], flag: string): T | null {
  if (value === null) return null;
  const match = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (match === undefined) throw new UsageError(`${flag} ${value}: expected one of ${allowed.join(', ')}`);
  return match;
}

/** Every value of a flag that may repeat (none when absent). */
export function list(value: unknown): string[] {
  if (value === undefined || value === null || value === false) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}
