/**
 * @module Reading mail HTML as text: a forgiving tag scanner, character references, and the plain
 * text of a document (for search, snippets and code extraction). Not a sanitizer: what it returns
 * is text, never markup to render.
 * Rule: one pass, linear in the input; unterminated tags, comments and raw-text elements end at the
 * end of the input instead of failing.
 */

export type HtmlToken =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'tag'; readonly name: string; readonly closing: boolean; readonly attrs: Readonly<Record<string, string>> };

/** Elements whose content is not text (HTML §13.1.2 raw text, plus head and title metadata). */
const SKIPPED = new Set(['script', 'style', 'head', 'title', 'template', 'noscript']);
/** Elements that break a line when rendered as text. */
const BLOCKS = new Set(['br', 'p', 'div', 'tr', 'li', 'ul', 'ol', 'table', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'pre', 'hr', 'section', 'article', 'header', 'footer', 'td', 'th', 'dt', 'dd']);

/**
 * Splits HTML into text runs and tags. Text is decoded; attribute names are lower-cased and values
 * decoded. Comments, doctypes and the content of script/style/head are dropped.
 */
export function scanHtml(html: string): HtmlToken[] {
  const tokens: HtmlToken[] = [];
  let pos = 0;
  const n = html.length;
  while (pos < n) {
    const lt = html.indexOf('<', pos);
    if (lt < 0) {
      tokens.push({ kind: 'text', text: decodeEntities(html.slice(pos)) });
      break;
    }
    if (lt > pos) tokens.push({ kind: 'text', text: decodeEntities(html.slice(pos, lt)) });
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      pos = end < 0 ? n : end + 3;
      continue;
    }
    const next = html.charCodeAt(lt + 1);
    const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    if (next === 33 || next === 63) {
      // <!DOCTYPE …>, <![CDATA[…]]> and <?…?> are not text.
      const end = html.indexOf('>', lt);
      pos = end < 0 ? n : end + 1;
      continue;
    }
    const closing = next === 47;
    if (!isLetter(closing ? html.charCodeAt(lt + 2) : next)) {
      tokens.push({ kind: 'text', text: '<' });
      pos = lt + 1;
      continue;
    }
    const parsed = parseTag(html, lt + (closing ? 2 : 1));
    tokens.push({ kind: 'tag', name: parsed.name, closing, attrs: parsed.attrs });
    pos = parsed.end;
    if (!closing && SKIPPED.has(parsed.name)) {
      const close = indexOfCloseTag(html, parsed.name, pos);
      pos = close < 0 ? n : close;
    }
  }
  return tokens;
}

function indexOfCloseTag(html: string, name: string, from: number): number {
  const lower = `</${name}`;
  let at = from;
  for (;;) {
    const i = html.indexOf('</', at);
    if (i < 0) return -1;
    if (html.slice(i, i + lower.length).toLowerCase() === lower) return i;
    at = i + 2;
  }
}

function parseTag(html: string, start: number): { name: string; attrs: Record<string, string>; end: number } {
  const n = html.length;
  let i = start;
  while (i < n && !/[\s/>]/.test(html[i])) i++;
  const name = html.slice(start, i).toLowerCase();
  const attrs: Record<string, string> = {};
  while (i < n) {
    while (i < n && /[\s/]/.test(html[i])) i++;
    if (i >= n) break;
    if (html[i] === '>') return { name, attrs, end: i + 1 };
    const nameStart = i;
    while (i < n && !/[\s/>=]/.test(html[i])) i++;
    const attr = html.slice(nameStart, i).toLowerCase();
    while (i < n && /\s/.test(html[i])) i++;
    let value = '';
    if (html[i] === '=') {
      i++;
      while (i < n && /\s/.test(html[i])) i++;
      const q = html[i];
      if (q === '"' || q === "'") {
        const end = html.indexOf(q, i + 1);
        value = html.slice(i + 1, end < 0 ? n : end);
        i = end < 0 ? n : end + 1;
      } else {
        const vs = i;
        while (i < n && !/[\s>]/.test(html[i])) i++;
        value = html.slice(vs, i);
      }
    }
    if (attr !== '' && !(attr in attrs)) attrs[attr] = decodeEntities(value);
  }
  return { name, attrs, end: n };
}

const NAMED: Readonly<Record<string, string>> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®', trade: '™',
  hellip: '…', mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«', raquo: '»',
  euro: '€', pound: '£', yen: '¥', cent: '¢', middot: '·', bull: '•', zwnj: '\u200c', zwj: '\u200d', shy: '\u00ad',
  eacute: 'é', egrave: 'è', agrave: 'à', aacute: 'á', uuml: 'ü', ouml: 'ö', auml: 'ä', szlig: 'ß', ccedil: 'ç', ntilde: 'ñ',
};

/** HTML character references: the common named ones, decimal and hexadecimal. Others stay as typed. */
export function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});?/g, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : '\ufffd';
    }
    return NAMED[ref.toLowerCase()] ?? NAMED[ref] ?? whole;
  });
}

/** The readable text of an HTML document: block elements break lines, spaces collapse per line. */
export function htmlToText(html: string): string {
  let out = '';
  for (const t of scanHtml(html)) {
    if (t.kind === 'text') out += t.text;
    else if (BLOCKS.has(t.name)) out += '\n';
    else if (t.name === 'img' && t.attrs.alt) out += ` ${t.attrs.alt} `;
  }
  return out
    .split('\n')
    .map((line) => line.replace(/[\s\u00a0\u200b\u200c\u200d\u00ad]+/g, ' ').trim())
    .filter((line) => line !== '')
    .join('\n');
}
