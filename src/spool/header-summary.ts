/**
 * @module The header summary a listing shows: From, To, Cc, Subject, Date and Message-ID, as
 * written (unfolded, RFC 5322 §2.2.3; encoded words left for the reader to decode).
 * Rule 1: pure; it reads the header section of a stored (dot-stuffed) message, which only
 *         differs from the message in lines that start with "." (none of these fields do).
 * Rule 2: the first field of each name wins (RFC 5322 §3.6 allows one of each); values are
 *         capped so a hostile header cannot bloat an index.
 */
import { parseRawMessage } from '../message/raw-message.ts';

export interface HeaderSummary {
  readonly from: string;
  readonly to: string;
  readonly cc: string;
  readonly subject: string;
  readonly date: string;
  readonly messageId: string;
}

/** The bytes of a message's start that hold its summary fields in all but hostile messages. */
export const SUMMARY_HEAD_BYTES = 64 * 1024;
/** RFC 5322 §2.1.1: a line is at most 998 characters; an unfolded field may be longer. */
const VALUE_CHARS = 998;

const FIELDS: Readonly<Record<string, keyof HeaderSummary>> = Object.freeze({
  from: 'from',
  to: 'to',
  cc: 'cc',
  subject: 'subject',
  date: 'date',
  'message-id': 'messageId',
});

/** The summary of a message from its first bytes (the header section, or SUMMARY_HEAD_BYTES of it). */
export function headerSummary(head: Uint8Array): HeaderSummary {
  const bytes = head.length > SUMMARY_HEAD_BYTES ? head.subarray(0, SUMMARY_HEAD_BYTES) : head;
  const out: Record<keyof HeaderSummary, string> = { from: '', to: '', cc: '', subject: '', date: '', messageId: '' };
  const seen = new Set<string>();
  for (const field of parseRawMessage(bytes).fields) {
    const key = FIELDS[field.name.toLowerCase()];
    if (key === undefined || seen.has(key)) continue;
    seen.add(key);
    out[key] = field.value.length > VALUE_CHARS ? field.value.slice(0, VALUE_CHARS) : field.value;
  }
  return out;
}
