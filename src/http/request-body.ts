/**
 * @module Request bodies and parameters as Mailpit reads them: JSON whose keys match without
 * regard to case (Go's encoding/json), bodies capped in size, numbers in the query string.
 * Rule: a body that is too large is 413 and one that is not JSON is 400, both before any
 *       handler acts on it; the `error` callback picks the body of the answer (Mailpit's
 *       routes answer text, ours JSON).
 */
import { HttpError } from './http-server.ts';

export type BodyError = (status: number, message: string) => HttpError;

/** Mailpit's routes answer errors as text/plain. */
export const textError: BodyError = (status, message) => new HttpError(status, `${message}\n`);

/**
 * The request body as text, at most `maxBytes`; null when there is none (no bytes at all).
 * A larger body is refused with 413 without reading the rest.
 */
export async function readBodyText(request: Request, maxBytes: number, error: BodyError = textError): Promise<string | null> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw error(413, `the request body is larger than ${maxBytes} bytes`);
  if (request.body === null) return null;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body) {
    total += chunk.length;
    if (total > maxBytes) throw error(413, `the request body is larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  if (total === 0) return null;
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** Parses a JSON body; throws 400 naming the problem when it is not JSON. null when there is no body. */
export async function readJsonBody(request: Request, maxBytes: number, error: BodyError = textError): Promise<unknown | null> {
  const text = await readBodyText(request, maxBytes, error);
  if (text === null || text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw error(400, `the request body is not JSON: ${(e as Error).message}`);
  }
}

/** The value under `key` in a JSON object, the key matched without regard to case; undefined when absent. */
export function field(object: unknown, key: string): unknown {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) return undefined;
  const record = object as Record<string, unknown>;
  if (key in record) return record[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(record)) if (k.toLowerCase() === lower) return record[k];
  return undefined;
}

/** A list of strings under `key`; undefined when absent or null, 400 when it is something else. */
export function stringList(object: unknown, key: string, error: BodyError = textError): string[] | undefined {
  const value = field(object, key);
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw error(400, `${key} must be a list of strings`);
  return value as string[];
}

/** A non-negative integer query parameter; `fallback` when absent or not a number (as Mailpit ignores it). */
export function intParam(url: URL, name: string, fallback: number): number {
  const text = url.searchParams.get(name);
  if (text === null || text.trim() === '') return fallback;
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}
