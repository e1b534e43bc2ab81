/**
 * @module The untagged FETCH response for one message (RFC 3501 §7.4.2), from the items a FETCH
 * asked for (fetch.ts) and a view of the message.
 * Rule 1: the view's accessors are lazy; the writer calls bytes(), structure() and
 *         headerFields() only for items that need them, and fetchNeeds() tells the store ahead.
 * Rule 2: section data always goes out as a literal (or NIL for a section the message does not
 *         have), so message octets are passed through, never re-encoded.
 */
import type { MimeEntity } from '../mime-structure.ts';
import { partSection, writeBodyStructure } from './bodystructure.ts';
import { writeEnvelope, type HeaderFields } from './envelope.ts';
import { applyPartial, fetchResponseName, headerLength, topLevelSection, type FetchItem } from './fetch.ts';
import { formatInternalDate, ResponseBuilder } from './format.ts';

/** One message as FETCH sees it. */
export interface FetchMessage {
  readonly seq: number;
  readonly uid: number;
  /** The flags to show, \Recent included when this session sees the message as recent. */
  readonly flags: readonly string[];
  readonly internalDateMs: number;
  /** RFC822.SIZE: the exact size of bytes(). */
  readonly size: number;
  /** The message as stored, dot-unstuffed. */
  bytes(): Uint8Array;
  /** parseMimeStructure(bytes()), possibly cached by the store. */
  structure(): MimeEntity;
  /** The top-level header fields, for ENVELOPE; the store may answer from its summary. */
  headerFields(): HeaderFields;
}

/** What answering these items will read. */
export function fetchNeeds(items: readonly FetchItem[]): { bytes: boolean; structure: boolean; envelope: boolean } {
  let bytes = false;
  let structure = false;
  let envelope = false;
  for (const item of items) {
    switch (item.kind) {
      case 'ENVELOPE':
        envelope = true;
        break;
      case 'BODY':
      case 'BODYSTRUCTURE':
        bytes = true;
        structure = true;
        break;
      case 'RFC822':
      case 'RFC822.HEADER':
      case 'RFC822.TEXT':
        bytes = true;
        break;
      case 'BODY[]':
        bytes = true;
        if (item.section.part.length > 0) structure = true;
        break;
      case 'FLAGS':
      case 'UID':
      case 'INTERNALDATE':
      case 'RFC822.SIZE':
        break;
      default: {
        const never: never = item;
        return never;
      }
    }
  }
  return { bytes, structure, envelope };
}

function writeItem(b: ResponseBuilder, item: FetchItem, msg: FetchMessage): void {
  b.raw(`${fetchResponseName(item)} `);
  switch (item.kind) {
    case 'FLAGS':
      b.flagList(msg.flags);
      return;
    case 'UID':
      b.raw(String(msg.uid));
      return;
    case 'INTERNALDATE':
      b.raw(formatInternalDate(msg.internalDateMs));
      return;
    case 'RFC822.SIZE':
      b.raw(String(msg.size));
      return;
    case 'ENVELOPE':
      writeEnvelope(b, msg.headerFields());
      return;
    case 'BODY':
    case 'BODYSTRUCTURE':
      writeBodyStructure(b, msg.bytes(), msg.structure(), item.kind === 'BODYSTRUCTURE');
      return;
    case 'RFC822':
      b.literal(msg.bytes());
      return;
    case 'RFC822.HEADER':
    case 'RFC822.TEXT': {
      const bytes = msg.bytes();
      const h = headerLength(bytes);
      b.literal(item.kind === 'RFC822.HEADER' ? bytes.subarray(0, h) : bytes.subarray(h));
      return;
    }
    case 'BODY[]': {
      const bytes = msg.bytes();
      const data = item.section.part.length === 0 ? topLevelSection(bytes, item.section) : partSection(bytes, msg.structure(), item.section);
      if (data === null) b.raw('NIL');
      else b.literal(applyPartial(data, item.partial));
      return;
    }
    default: {
      const never: never = item;
      return never;
    }
  }
}

/** Writes "* seq FETCH (item value …)" CRLF, the items in the order asked. */
export function writeFetchResponse(b: ResponseBuilder, msg: FetchMessage, items: readonly FetchItem[]): void {
  b.raw(`* ${msg.seq} FETCH (`);
  items.forEach((item, i) => {
    if (i > 0) b.raw(' ');
    writeItem(b, item, msg);
  });
  b.raw(')\r\n');
}
