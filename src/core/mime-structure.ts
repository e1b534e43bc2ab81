/**
 * @module The structure of a stored message (RFC 2045, RFC 2046): its MIME tree with IMAP part
 * numbers, each entity's header and body as byte ranges of the message, and the sizes and line
 * counts IMAP's BODYSTRUCTURE reports. Nothing is decoded here; a part's bytes are read by range.
 * Rule 1: never throws and never reads outside the input; malformed input yields a tree anyway and
 *         names what was wrong in `defects`.
 * Rule 2: linear in the input: every level scans its own range once, and nesting stops at
 *         MAX_MIME_DEPTH, below which multiparts and messages are leaves.
 * Rule 3: bare LF is accepted as a line ending wherever CRLF is (spooled mail is CRLF, but
 *         imported or replayed mail may not be); ranges always exclude the line ending that
 *         belongs to a delimiter (RFC 2046 §5.1.1).
 */

/** Nesting beyond this depth is not split further (Dovecot and Python cap it too). */
export const MAX_MIME_DEPTH = 40;

export type MimeDefect =
  | 'header-not-terminated'
  | 'bad-header-line'
  | 'bad-content-type'
  | 'multipart-without-boundary'
  | 'no-delimiter'
  | 'no-close-delimiter'
  | 'encoded-message'
  | 'too-deep';

export interface MimeDisposition {
  /** Lower-cased: "inline", "attachment", or whatever the sender wrote. */
  readonly type: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * One MIME entity: a header and a body. `path` is its IMAP section number (RFC 3501 §6.4.5):
 * "" for the message itself, "1", "1.2" for parts; the message inside a message/rfc822 part at
 * "2" has path "2" too (its header is section "2.HEADER"), and its parts are "2.1", "2.2"…
 */
export interface MimeEntity {
  readonly path: string;
  /** Lower-cased type and subtype (RFC 2045 §5.1: they are case-insensitive). */
  readonly type: string;
  readonly subtype: string;
  /** Lower-cased names; RFC 2231 continuations joined and charset-decoded values. */
  readonly params: Readonly<Record<string, string>>;
  readonly disposition: MimeDisposition | null;
  /** Content-ID as written, angle brackets included, or null. */
  readonly contentId: string | null;
  readonly description: string | null;
  readonly language: string | null;
  readonly location: string | null;
  readonly md5: string | null;
  /** Lower-cased Content-Transfer-Encoding; "7bit" when absent (RFC 2045 §6.1). */
  readonly transferEncoding: string;
  /** [headerStart, headerEnd) is the header fields; the blank line after them is not included. */
  readonly headerStart: number;
  readonly headerEnd: number;
  /** [bodyStart, bodyEnd) is the encoded body. */
  readonly bodyStart: number;
  readonly bodyEnd: number;
  /** Encoded body size in octets as stored. */
  readonly bodyBytes: number;
  /** Lines in the body: line endings, plus one for an unterminated last line. */
  readonly bodyLines: number;
  /** Line endings in the body that are a bare LF: add them to bodyBytes for the CRLF size. */
  readonly bodyBareLfs: number;
  /** Parts of a multipart, in order; empty for other types. */
  readonly children: readonly MimeEntity[];
  /** The encapsulated message of a message/rfc822 (or message/global) part, else null. */
  readonly message: MimeEntity | null;
  readonly defects: readonly MimeDefect[];
}

/** A header field with its value unfolded; the name keeps its case. */
export interface HeaderField {
  readonly name: string;
  readonly value: string;
}

const CR = 13;
const LF = 10;
const DASH = 45;
const SP = 32;
const TAB = 9;
const COLON = 58;

const UTF8 = new TextDecoder('utf-8');
const ENCODER = new TextEncoder();

interface Bounds {
  readonly headerEnd: number;
  readonly bodyStart: number;
  readonly defect: MimeDefect | null;
}

/**
 * Splits a message into its MIME tree. `bytes` is the message as stored, dot-unstuffed.
 * Never throws.
 */
export function parseMimeStructure(bytes: Uint8Array): MimeEntity {
  return parseEntity(bytes, 0, bytes.length, '', 0, false, true);
}

/**
 * The entity that IMAP's BODY[section] addresses by `path` ("1.2"), or null. For a message that
 * is not multipart, part "1" is its body (RFC 3501 §6.4.5), so the message itself is returned.
 */
export function findMimePart(root: MimeEntity, path: string): MimeEntity | null {
  if (path === '') return root;
  let current = root;
  let isMessage = true;
  const steps = path.split('.');
  for (let i = 0; i < steps.length; i++) {
    if (!/^[1-9][0-9]{0,5}$/.test(steps[i])) return null;
    const n = Number(steps[i]);
    if (i > 0 && current.message !== null) {
      current = current.message;
      isMessage = true;
    }
    if (current.type === 'multipart' && current.children.length > 0) {
      if (n > current.children.length) return null;
      current = current.children[n - 1];
      isMessage = false;
    } else if (isMessage && n === 1) {
      isMessage = false;
    } else {
      return null;
    }
  }
  return current;
}

/** Every entity of the tree, depth first, the encapsulated messages included. */
export function listMimeEntities(root: MimeEntity): MimeEntity[] {
  const out: MimeEntity[] = [];
  const stack: MimeEntity[] = [root];
  while (stack.length > 0) {
    const e = stack.pop()!;
    out.push(e);
    if (e.message !== null) stack.push(e.message);
    for (let i = e.children.length - 1; i >= 0; i--) stack.push(e.children[i]);
  }
  return out;
}

/**
 * The header fields in [start, end), unfolded (RFC 5322 §2.2.3), in order. Lines that are not
 * fields are skipped. Values are decoded as UTF-8 (RFC 6532), invalid sequences replaced.
 */
export function parseHeaderFields(bytes: Uint8Array, start: number, end: number): HeaderField[] {
  const fields: HeaderField[] = [];
  let name: string | null = null;
  let value = '';
  let pos = start;
  while (pos < end) {
    const nl = indexOfLf(bytes, pos, end);
    const lineEnd = nl < 0 ? end : nl;
    const contentEnd = lineEnd > pos && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    const first = bytes[pos];
    if (first === SP || first === TAB) {
      if (name !== null) value += decodeText(bytes, pos, contentEnd);
    } else {
      if (name !== null) fields.push({ name, value: value.trim() });
      name = null;
      const colon = fieldColon(bytes, pos, contentEnd);
      if (colon > pos) {
        name = decodeText(bytes, pos, colon).trimEnd();
        value = decodeText(bytes, colon + 1, contentEnd);
      }
    }
    pos = lineEnd + 1;
  }
  if (name !== null) fields.push({ name, value: value.trim() });
  return fields;
}

/** UTF-8 text of a byte range; short ASCII ranges (nearly every header line) skip TextDecoder. */
function decodeText(bytes: Uint8Array, start: number, end: number): string {
  if (end - start > 256) return UTF8.decode(bytes.subarray(start, end));
  let out = '';
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b >= 128) return UTF8.decode(bytes.subarray(start, end));
    out += String.fromCharCode(b);
  }
  return out;
}

function parseEntity(bytes: Uint8Array, start: number, end: number, path: string, depth: number, inDigest: boolean, isMessage: boolean): MimeEntity {
  const defects: MimeDefect[] = [];
  const bounds = findHeaderEnd(bytes, start, end);
  if (bounds.defect !== null) defects.push(bounds.defect);
  const firsts = new Map<string, string>();
  for (const f of parseHeaderFields(bytes, start, bounds.headerEnd)) {
    const key = f.name.toLowerCase();
    if (key.startsWith('content-') && !firsts.has(key)) firsts.set(key, f.value);
  }
  const first = (name: string): string | null => firsts.get(name) ?? null;

  // RFC 2045 §5.2: no Content-Type, or one that does not parse, means text/plain; us-ascii.
  // RFC 2046 §5.1.5: inside multipart/digest the default is message/rfc822.
  let type = inDigest ? 'message' : 'text';
  let subtype = inDigest ? 'rfc822' : 'plain';
  let params: Record<string, string> = inDigest ? {} : { charset: 'us-ascii' };
  const ctValue = first('content-type');
  if (ctValue !== null) {
    const ct = parseContentType(ctValue);
    if (ct === null) {
      defects.push('bad-content-type');
      type = 'text';
      subtype = 'plain';
      params = { charset: 'us-ascii' };
    } else {
      type = ct.type;
      subtype = ct.subtype;
      params = ct.params;
    }
  }
  const cte = first('content-transfer-encoding');
  const transferEncoding = cte === null || cte.trim() === '' ? '7bit' : stripComments(cte).trim().toLowerCase();
  const cdValue = first('content-disposition');
  let disposition: MimeDisposition | null = null;
  if (cdValue !== null) {
    const parsed = parseParameterized(cdValue);
    if (parsed !== null && parsed.value !== '') disposition = { type: parsed.value.toLowerCase(), params: parsed.params };
  }

  if (type === 'multipart' && (params.boundary === undefined || params.boundary === '')) {
    // RFC 2046 §5.1.1: the boundary parameter is required; without it nothing can be split.
    defects.push('multipart-without-boundary');
    type = 'text';
    subtype = 'plain';
    params = { charset: 'us-ascii' };
  }

  const bodyStart = bounds.bodyStart;
  let bodyEnd = end;
  let children: MimeEntity[] = [];
  let message: MimeEntity | null = null;
  if (type === 'multipart' || (type === 'message' && (subtype === 'rfc822' || subtype === 'global'))) {
    if (depth >= MAX_MIME_DEPTH) {
      defects.push('too-deep');
    } else if (type === 'multipart') {
      children = splitMultipart(bytes, bodyStart, bodyEnd, params.boundary, path, depth, subtype === 'digest', defects);
    } else if (transferEncoding === '7bit' || transferEncoding === '8bit' || transferEncoding === 'binary') {
      // RFC 3501 §6.4.5: the body of a message that is not multipart is its part 1, so a message
      // whose own type is message/rfc822 holds the next message at P.1; a part holds it at P.
      message = parseEntity(bytes, bodyStart, bodyEnd, isMessage ? childPath(path, 1) : path, depth + 1, false, true);
    } else {
      // RFC 2046 §5.2.1: a message/rfc822 body is never encoded; an encoded one stays opaque.
      defects.push('encoded-message');
    }
  }
  const counts = countLines(bytes, bodyStart, bodyEnd);
  return {
    path,
    type,
    subtype,
    params,
    disposition,
    contentId: first('content-id'),
    description: first('content-description'),
    language: first('content-language'),
    location: first('content-location'),
    md5: first('content-md5'),
    transferEncoding,
    headerStart: start,
    headerEnd: bounds.headerEnd,
    bodyStart,
    bodyEnd,
    bodyBytes: bodyEnd - bodyStart,
    bodyLines: counts.lines,
    bodyBareLfs: counts.bareLfs,
    children,
    message,
    defects,
  };
}

/**
 * RFC 5322 §2.1: the header ends at the first empty line. A line that is neither a field nor a
 * continuation also ends it (the body starts on that line), as lenient readers do.
 */
function findHeaderEnd(bytes: Uint8Array, start: number, end: number): Bounds {
  let pos = start;
  while (pos < end) {
    const nl = indexOfLf(bytes, pos, end);
    const lineEnd = nl < 0 ? end : nl;
    const contentEnd = lineEnd > pos && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    if (contentEnd === pos) return { headerEnd: pos, bodyStart: nl < 0 ? end : lineEnd + 1, defect: null };
    const first = bytes[pos];
    const continuation = (first === SP || first === TAB) && pos > start;
    if (!continuation && fieldColon(bytes, pos, contentEnd) <= pos) {
      return { headerEnd: pos, bodyStart: pos, defect: 'bad-header-line' };
    }
    if (nl < 0) return { headerEnd: end, bodyStart: end, defect: 'header-not-terminated' };
    pos = lineEnd + 1;
  }
  return { headerEnd: end, bodyStart: end, defect: pos === start ? null : 'header-not-terminated' };
}

/** RFC 5322 §3.6.8: a field name is printable ASCII except ":"; returns the colon, or -1. */
function fieldColon(bytes: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b === COLON) return i;
    if (b <= SP || b >= 127) {
      // Tolerate "Subject : x" (obsolete syntax, RFC 5322 §4.5.3): whitespace before the colon.
      let j = i;
      while (j < end && (bytes[j] === SP || bytes[j] === TAB)) j++;
      return j < end && bytes[j] === COLON && j > start && i > start ? j : -1;
    }
  }
  return -1;
}

/**
 * RFC 2046 §5.1.1: splits [start, end) on lines "--boundary" (a close delimiter adds "--"),
 * optionally followed by whitespace. The line ending before a delimiter belongs to it. Text before
 * the first delimiter is the preamble and after the close delimiter the epilogue; both are dropped.
 */
function splitMultipart(
  bytes: Uint8Array,
  start: number,
  end: number,
  boundary: string,
  path: string,
  depth: number,
  digest: boolean,
  defects: MimeDefect[],
): MimeEntity[] {
  const marker = ENCODER.encode(`--${boundary}`);

  const children: MimeEntity[] = [];
  let partStart = -1;
  let closed = false;
  let sawDelimiter = false;
  let pos = start;
  while (pos < end) {
    const nl = indexOfLf(bytes, pos, end);
    const lineEnd = nl < 0 ? end : nl;
    const kind = delimiterKind(bytes, pos, lineEnd, marker);
    if (kind !== 'none') {
      sawDelimiter = true;
      if (partStart >= 0) {
        // The CRLF (or LF) before the delimiter line is part of the delimiter.
        let partEnd = pos;
        if (partEnd > partStart && bytes[partEnd - 1] === LF) partEnd--;
        if (partEnd > partStart && bytes[partEnd - 1] === CR) partEnd--;
        children.push(parseEntity(bytes, partStart, partEnd, childPath(path, children.length + 1), depth + 1, digest, false));
      }
      if (kind === 'close') {
        closed = true;
        partStart = -1;
        break;
      }
      partStart = nl < 0 ? end : lineEnd + 1;
    }
    pos = lineEnd + 1;
  }
  if (!sawDelimiter) defects.push('no-delimiter');
  else if (!closed) {
    defects.push('no-close-delimiter');
    if (partStart >= 0) children.push(parseEntity(bytes, partStart, end, childPath(path, children.length + 1), depth + 1, digest, false));
  }
  return children;
}

function childPath(parent: string, n: number): string {
  return parent === '' ? String(n) : `${parent}.${n}`;
}

function delimiterKind(bytes: Uint8Array, pos: number, lineEnd: number, marker: Uint8Array): 'none' | 'part' | 'close' {
  if (lineEnd - pos < marker.length) return 'none';
  for (let i = 0; i < marker.length; i++) if (bytes[pos + i] !== marker[i]) return 'none';
  let i = pos + marker.length;
  let kind: 'part' | 'close' = 'part';
  if (i + 1 < lineEnd && bytes[i] === DASH && bytes[i + 1] === DASH) {
    kind = 'close';
    i += 2;
  }
  // RFC 2046 §5.1.1: transport padding (linear whitespace) may follow the delimiter.
  for (; i < lineEnd; i++) {
    const b = bytes[i];
    if (b !== SP && b !== TAB && !(b === CR && i === lineEnd - 1)) return 'none';
  }
  return kind;
}

function indexOfLf(bytes: Uint8Array, from: number, end: number): number {
  const i = bytes.indexOf(LF, from);
  return i < 0 || i >= end ? -1 : i;
}

function countLines(bytes: Uint8Array, start: number, end: number): { lines: number; bareLfs: number } {
  let lines = 0;
  let bareLfs = 0;
  let pos = start;
  while (pos < end) {
    const nl = indexOfLf(bytes, pos, end);
    if (nl < 0) {
      lines++;
      break;
    }
    lines++;
    if (nl === start || bytes[nl - 1] !== CR) bareLfs++;
    pos = nl + 1;
  }
  return { lines, bareLfs };
}

/** RFC 822 comments "(…)", nested, outside quoted strings, removed. */
function stripComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < value.length) out += value[++i];
      else if (c === '"') quoted = false;
    } else if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '(') depth++;
    else {
      if (c === '"') quoted = true;
      out += c;
    }
  }
  return out;
}

const TOKEN = /^[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+$/;

/** RFC 2045 §5.1: type "/" subtype *(";" parameter); null when the type itself does not parse. */
export function parseContentType(value: string): { type: string; subtype: string; params: Record<string, string> } | null {
  const parsed = parseParameterized(value);
  if (parsed === null) return null;
  const slash = parsed.value.indexOf('/');
  if (slash < 0) return null;
  const type = parsed.value.slice(0, slash).trim().toLowerCase();
  const subtype = parsed.value.slice(slash + 1).trim().toLowerCase();
  if (!TOKEN.test(type) || !TOKEN.test(subtype)) return null;
  return { type, subtype, params: parsed.params };
}

/**
 * A header value with parameters: `value *(";" name "=" (token / quoted-string))`, comments
 * removed, names lower-cased, RFC 2231 continuations and charsets decoded. Bad parameters are
 * skipped; the first of duplicate names wins.
 */
export function parseParameterized(raw: string): { value: string; params: Record<string, string> } | null {
  const text = stripComments(raw);
  const parts = splitOutsideQuotes(text);
  const value = parts[0].trim();
  const simple: Record<string, string> = {};
  const sections = new Map<string, { index: number; encoded: boolean; text: string }[]>();
  for (let i = 1; i < parts.length; i++) {
    const eq = parts[i].indexOf('=');
    if (eq < 0) continue;
    const name = parts[i].slice(0, eq).trim().toLowerCase();
    let v = parts[i].slice(eq + 1).trim();
    if (name === '') continue;
    if (v.startsWith('"')) v = unquote(v);
    // RFC 2231 §3-4: name*N is a continuation, a trailing "*" marks charset'lang'%XX encoding.
    const m = /^([^*]+)\*(?:(\d+)\*?|)$/.exec(name);
    if (m !== null) {
      const base = m[1];
      const index = m[2] === undefined ? 0 : Number(m[2]);
      const list = sections.get(base) ?? [];
      if (!sections.has(base)) sections.set(base, list);
      if (index < 1000 && !list.some((s) => s.index === index)) list.push({ index, encoded: name.endsWith('*'), text: v });
    } else if (!(name in simple)) {
      simple[name] = v;
    }
  }
  const params: Record<string, string> = Object.create(null);
  for (const [name, list] of sections) {
    list.sort((a, b) => a.index - b.index);
    params[name] = decode2231(list);
  }
  for (const name of Object.keys(simple)) if (!(name in params)) params[name] = simple[name];
  return { value, params: { ...params } };
}

function splitOutsideQuotes(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      current += c;
      if (c === '\\' && i + 1 < text.length) current += text[++i];
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      current += c;
    } else if (c === ';') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

function unquote(v: string): string {
  let out = '';
  for (let i = 1; i < v.length; i++) {
    const c = v[i];
    if (c === '\\' && i + 1 < v.length) out += v[++i];
    else if (c === '"') break;
    else out += c;
  }
  return out;
}

/** RFC 2231 §4: the first encoded section carries charset'language'; %XX escapes are octets. */
function decode2231(list: readonly { index: number; encoded: boolean; text: string }[]): string {
  let charset = '';
  const octets: number[] = [];
  let out = '';
  const flush = () => {
    if (octets.length === 0) return;
    out += decodeCharset(Uint8Array.from(octets), charset);
    octets.length = 0;
  };
  list.forEach((section, i) => {
    let text = section.text;
    if (section.encoded && i === 0) {
      const first = text.indexOf("'");
      const second = first < 0 ? -1 : text.indexOf("'", first + 1);
      if (second >= 0) {
        charset = text.slice(0, first).toLowerCase();
        text = text.slice(second + 1);
      }
    }
    if (!section.encoded) {
      flush();
      out += text;
      return;
    }
    for (let k = 0; k < text.length; k++) {
      const c = text.charCodeAt(k);
      if (c === 37 && /^[0-9A-Fa-f]{2}$/.test(text.slice(k + 1, k + 3))) {
        octets.push(parseInt(text.slice(k + 1, k + 3), 16));
        k += 2;
      } else octets.push(c & 0xff);
    }
  });
  flush();
  return out;
}

function decodeCharset(bytes: Uint8Array, charset: string): string {
  try {
    return new TextDecoder((charset === '' ? 'utf-8' : charset) as ConstructorParameters<typeof TextDecoder>[0]).decode(bytes);
  } catch {
    return UTF8.decode(bytes);
  }
}
