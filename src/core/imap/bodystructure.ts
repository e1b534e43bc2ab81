/**
 * @module FETCH BODY and BODYSTRUCTURE (RFC 3501 §7.4.2 body grammar), and BODY[section] for
 * sections with part numbers (RFC 3501 §6.4.5), both from the MIME tree of core/mime-structure.ts.
 * Rule 1: sizes are of the body in its transfer encoding with CRLF line endings, as BODY[n]
 *         sends it; line counts are given for text and message/rfc822 parts only (§7.4.2).
 * Rule 2: a tree the splitter could not read whole still yields a structure that follows the
 *         grammar: a multipart without parts, or an encoded message/rfc822, is shown as a leaf.
 */
import { findMimePart, parseHeaderFields, type MimeEntity } from '../mime-structure.ts';
import { writeEnvelope, type HeaderFields } from './envelope.ts';
import { headerLength, filterHeaderFields, type Section } from './fetch.ts';
import type { ResponseBuilder } from './format.ts';

/** The header fields of an entity, for ENVELOPE: first value by lower-case name. */
export function entityHeaderFields(message: Uint8Array, entity: MimeEntity): HeaderFields {
  const byName = new Map<string, string>();
  for (const f of parseHeaderFields(message, entity.headerStart, entity.headerEnd)) {
    const name = f.name.toLowerCase();
    if (!byName.has(name)) byName.set(name, f.value);
  }
  return { first: (name) => byName.get(name) ?? null };
}

/** RFC 3501 §9 body-fld-param: "(" name SP value … ")" or NIL. */
function writeParams(b: ResponseBuilder, params: Readonly<Record<string, string>>): void {
  const entries = Object.entries(params);
  if (entries.length === 0) {
    b.raw('NIL');
    return;
  }
  b.raw('(');
  entries.forEach(([name, value], i) => {
    if (i > 0) b.raw(' ');
    b.string(name.toUpperCase()).raw(' ').string(value);
  });
  b.raw(')');
}

/** body-fld-dsp SP body-fld-lang SP body-fld-loc: the extension fields both part kinds end with. */
function writeDispositionLanguageLocation(b: ResponseBuilder, e: MimeEntity): void {
  if (e.disposition === null) b.raw('NIL');
  else {
    b.raw('(').string(e.disposition.type.toUpperCase()).raw(' ');
    writeParams(b, e.disposition.params);
    b.raw(')');
  }
  b.raw(' ');
  const languages = e.language === null ? [] : e.language.split(',').map((l) => l.trim()).filter((l) => l !== '');
  if (languages.length === 0) b.raw('NIL');
  else if (languages.length === 1) b.string(languages[0]);
  else {
    b.raw('(');
    languages.forEach((l, i) => (i > 0 ? b.raw(' ').string(l) : b.string(l)));
    b.raw(')');
  }
  b.raw(' ').nstring(e.location);
}

/** The size BODY[n] sends: the stored body with every bare LF counted as CRLF. */
function octets(e: MimeEntity): number {
  return e.bodyBytes + e.bodyBareLfs;
}

function writeEntity(b: ResponseBuilder, message: Uint8Array, e: MimeEntity, extensible: boolean): void {
  if (e.type === 'multipart' && e.children.length > 0) {
    // RFC 3501 §9 body-type-mpart: 1*body SP media-subtype [SP body-ext-mpart].
    b.raw('(');
    for (const child of e.children) writeEntity(b, message, child, extensible);
    b.raw(' ').string(e.subtype.toUpperCase());
    if (extensible) {
      b.raw(' ');
      writeParams(b, e.params);
      b.raw(' ');
      writeDispositionLanguageLocation(b, e);
    }
    b.raw(')');
    return;
  }
  const params: Record<string, string> = { ...e.params };
  // RFC 2045 §5.2: text without a charset is us-ascii; clients are told so.
  if (e.type === 'text' && params.charset === undefined) params.charset = 'us-ascii';
  b.raw('(').string(e.type.toUpperCase()).raw(' ').string(e.subtype.toUpperCase()).raw(' ');
  writeParams(b, params);
  b.raw(' ').nstring(e.contentId).raw(' ').nstring(e.description).raw(' ').string(e.transferEncoding.toUpperCase()).raw(` ${octets(e)}`);
  const inner = e.message;
  if (inner !== null && e.type === 'message') {
    // RFC 3501 §9 body-type-msg: … SP envelope SP body SP body-fld-lines.
    b.raw(' ');
    writeEnvelope(b, entityHeaderFields(message, inner));
    b.raw(' ');
    writeEntity(b, message, inner, extensible);
    b.raw(` ${e.bodyLines}`);
  } else if (e.type === 'text') {
    b.raw(` ${e.bodyLines}`);
  }
  if (extensible) {
    // RFC 3501 §9 body-ext-1part: body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]].
    b.raw(' ').nstring(e.md5).raw(' ');
    writeDispositionLanguageLocation(b, e);
  }
  b.raw(')');
}

/**
 * Writes FETCH BODYSTRUCTURE (`extensible` true) or BODY (false) for a message and its tree
 * (parseMimeStructure of the same bytes).
 */
export function writeBodyStructure(b: ResponseBuilder, message: Uint8Array, root: MimeEntity, extensible: boolean): void {
  writeEntity(b, message, root, extensible);
}

/**
 * The octets of BODY[section] for a section with part numbers, or null when the message has no
 * such section. RFC 3501 §6.4.5: "n" is the part's body; "n.MIME" its MIME header; HEADER,
 * HEADER.FIELDS (.NOT) and TEXT after part numbers address the message inside a message/rfc822 part.
 */
export function partSection(message: Uint8Array, root: MimeEntity, section: Section): Uint8Array | null {
  const part = findMimePart(root, section.part.join('.'));
  if (part === null) return null;
  switch (section.text) {
    case null:
      return message.subarray(part.bodyStart, part.bodyEnd);
    case 'MIME':
      return withBlankLine(message, part);
    case 'HEADER':
    case 'HEADER.FIELDS':
    case 'HEADER.FIELDS.NOT': {
      const inner = part.message;
      if (inner === null) return null;
      const header = withBlankLine(message, inner);
      return section.text === 'HEADER' ? header : filterHeaderFields(header, section.fields, section.text === 'HEADER.FIELDS.NOT');
    }
    case 'TEXT': {
      const inner = part.message;
      if (inner === null) return null;
      return message.subarray(inner.bodyStart, inner.bodyEnd);
    }
    default: {
      const never: never = section.text;
      return never;
    }
  }
}

/** An entity's header fields and the blank line that ends them. */
function withBlankLine(message: Uint8Array, e: MimeEntity): Uint8Array {
  const header = message.subarray(e.headerStart, e.bodyStart);
  return header.subarray(0, headerLength(header));
}
