/**
 * @module What a test wants out of a message: every link (HTML hrefs with their text, bare URLs in
 * text) and the one-time codes (4–8 digits, or 6–8 letters and digits with at least one of each)
 * that stand near a word such as "code", "OTP" or "verification", in several languages.
 * Rule 1: a candidate counts only near a code word, and never when it is part of a date, a time,
 *         a phone number, a price, an amount, a URL or a year, or when an order/invoice/phone word
 *         stands nearer to it than the code word does.
 * Rule 2: pure and linear; text and HTML are read the same way (HTML through core/html-text).
 */
import { htmlToText, scanHtml } from './html-text.ts';

export interface ExtractedLink {
  readonly url: string;
  /** The anchor's text (or an image's alt), or the URL itself for a bare URL. */
  readonly text: string;
}

export interface MessageBodies {
  readonly text?: string;
  readonly html?: string;
}

/** Links in document order, HTML first; the same URL with the same text is listed once. */
export function extractLinks(bodies: MessageBodies): ExtractedLink[] {
  const out: ExtractedLink[] = [];
  const seen = new Set<string>();
  const add = (url: string, text: string) => {
    const u = url.trim();
    if (u === '' || /^javascript:/i.test(u)) return;
    const t = text.replace(/[\s\u00a0]+/g, ' ').trim();
    const key = `${u}\u0000${t}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ url: u, text: t });
  };
  if (bodies.html !== undefined) {
    let open: { href: string; text: string } | null = null;
    for (const token of scanHtml(bodies.html)) {
      if (token.kind === 'text') {
        if (open !== null) open.text += token.text;
        else for (const url of findUrls(token.text)) add(url.url, url.url);
      } else if (token.name === 'a') {
        if (open !== null) add(open.href, open.text);
        open = token.closing || token.attrs.href === undefined ? null : { href: token.attrs.href, text: '' };
      } else if (token.name === 'img' && open !== null && token.attrs.alt) {
        open.text += ` ${token.attrs.alt} `;
      } else if (token.name === 'area' && !token.closing && token.attrs.href !== undefined) {
        add(token.attrs.href, token.attrs.alt ?? '');
      }
    }
    if (open !== null) add(open.href, open.text);
  }
  if (bodies.text !== undefined) {
    for (const m of bodies.text.matchAll(/\[([^\]\n]{1,200})\]\((https?:\/\/[^\s)]+)\)/g)) add(m[2], m[1]);
    for (const url of findUrls(bodies.text)) add(url.url, url.url);
  }
  return out;
}

/** http(s) and www. URLs in plain text, with trailing punctuation and unbalanced brackets cut. */
function findUrls(text: string): { url: string; start: number; end: number }[] {
  const out: { url: string; start: number; end: number }[] = [];
  for (const m of text.matchAll(/\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi)) {
    const url = m[0];
    // Counted once, then kept up to date as the end moves left, so a URL is trimmed in linear time.
    const open: Record<string, number> = { ')': count(url, '('), ']': count(url, '['), '}': count(url, '{') };
    const close: Record<string, number> = { ')': count(url, ')'), ']': count(url, ']'), '}': count(url, '}') };
    let end = url.length;
    for (;;) {
      const last = url[end - 1];
      if (/[.,;:!?'"*>]/.test(last)) end--;
      else if (last in close && open[last] < close[last]) {
        close[last]--;
        end--;
      } else break;
    }
    const trimmed = url.slice(0, end);
    if (/^(?:https?:\/\/|www\.)./i.test(trimmed)) out.push({ url: trimmed, start: m.index, end: m.index + trimmed.length });
  }
  return out;
}

function count(s: string, c: string): number {
  let n = 0;
  for (const ch of s) if (ch === c) n++;
  return n;
}

/**
 * Words that announce a code. Latin words must start a word; compounds that end in "code" in
 * German and Dutch are listed whole. CJK terms match anywhere.
 */
const CODE_WORDS = new RegExp(
  [
    '(?<![\\p{L}\\p{N}])(?:',
    [
      'codes?', 'otp', 'one[- ]time', 'passcode', 'password', 'passwort', 'pin', 'verification', 'verify', 'verifying',
      'confirmation', 'confirm', 'security', 'login', 'sign[- ]in', '2fa', 'mfa', 'two[- ]factor', 'authentication', 'authenticator', 'token', 'magic',
      'bestätigungscode', 'sicherheitscode', 'einmalcode', 'anmeldecode', 'verifizierungscode', 'best[aä]tigung', 'einmalpasswort',
      'vérification', 'verificación', 'verificação', 'verifica', 'verificatie', 'verificatiecode', 'beveiligingscode', 'inlogcode',
      'código', 'codice', 'senha', 'contraseña', 'mot de passe', 'kod', 'kodu', 'doğrulama', 'weryfikacyjny', 'jednorazowy', 'engångskod', 'verifieringskod',
      'код', 'пароль', 'подтверждения',
    ].join('|'),
    ')(?![\\p{L}])',
    '|認証コード|確認コード|ワンタイム|验证码|驗證碼|校验码|动态码|인증',
  ].join(''),
  'giu',
);

/** Words that say a number is something else, when nearer than the code word. */
const OTHER_WORDS = /(?<![\p{L}])(?:order|invoice|ref|reference|account|acct|tracking|ticket|phone|tel|telephone|fax|mobile|zip|postcode|postal|zipcode|booking|reservation|customer|case|id no|no\.|nr\.?|bestellung|rechnung|commande|facture|pedido|factura|ordine|fattura|заказ|tel\.?)(?![\p{L}])/giu;

const MONTHS = /(?<![\p{L}])(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![\p{L}])\.?\s*$/iu;

/** How far a code word may stand before (or after) a code, in characters. */
const BEFORE_CHARS = 80;
const AFTER_CHARS = 40;

/**
 * One-time codes, best first: nearest a code word, a code after its word before one before it.
 * Text and HTML are both read; a code found in both is listed once.
 */
export function extractCodes(bodies: MessageBodies): string[] {
  const scored = new Map<string, number>();
  for (const text of [bodies.text, bodies.html === undefined ? undefined : htmlToText(bodies.html)]) {
    if (text === undefined || text === '') continue;
    for (const c of codesIn(text)) scored.set(c.code, Math.min(scored.get(c.code) ?? Infinity, c.score));
  }
  return [...scored.entries()].sort((a, b) => a[1] - b[1]).map(([code]) => code);
}

function codesIn(raw: string): { code: string; score: number }[] {
  // URLs and e-mail addresses are blanked (same length, so positions hold): their digits are not codes.
  let text = raw;
  for (const u of findUrls(raw)) text = text.slice(0, u.start) + ' '.repeat(u.end - u.start) + text.slice(u.end);
  // The lookbehind starts a match only where a run starts, so a long run is scanned once.
  text = text.replace(/(?<![\p{L}\p{N}._%+-])[\p{L}\p{N}._%+-]+@[\p{L}\p{N}.-]+/gu, (m) => ' '.repeat(m.length));

  const words = [...text.matchAll(CODE_WORDS)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
  if (words.length === 0) return [];
  const others = [...text.matchAll(OTHER_WORDS)].map((m) => ({ start: m.index, end: m.index + m[0].length }));

  const found: { code: string; score: number }[] = [];
  // A run of digits and separators is read whole, so a phone number, a date, an amount or a time
  // is seen as one thing instead of yielding its pieces.
  for (const m of text.matchAll(/(?<![\p{L}\p{N}])(?:\p{N}+(?:[ \-./:,]\p{N}+)*|[\p{L}\p{N}]+)(?![\p{L}\p{N}])/gu)) {
    const cluster = m[0];
    const start = m.index;
    const end = start + cluster.length;
    const code = candidate(cluster, text, start, end);
    if (code === null) continue;
    const before = distanceBefore(words, start);
    const after = distanceAfter(words, end);
    if (before > BEFORE_CHARS && after > AFTER_CHARS) continue;
    const distance = Math.min(before, after === Infinity ? Infinity : after * 2);
    const otherBefore = distanceBefore(others, start);
    if (otherBefore < before && otherBefore < 25) continue;
    found.push({ code, score: distance });
  }
  return found;
}

/** Characters from the end of the last word that ends at or before `at`; words are in order. */
function distanceBefore(words: readonly { start: number; end: number }[], at: number): number {
  let lo = 0;
  let hi = words.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].end <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? Infinity : at - words[lo - 1].end;
}

/** Characters to the start of the first word that starts at or after `at`. */
function distanceAfter(words: readonly { start: number; end: number }[], at: number): number {
  let lo = 0;
  let hi = words.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].start < at) lo = mid + 1;
    else hi = mid;
  }
  return lo === words.length ? Infinity : words[lo].start - at;
}

/** The code a cluster holds, or null when it is not one (see Rule 1). */
function candidate(cluster: string, text: string, start: number, end: number): string | null {
  const prev = text.slice(Math.max(0, start - 3), start);
  const next = text.slice(end, end + 4);
  // Currency, percent, a sign or a '#' next to it: an amount, a phone number, a colour or a reference.
  if (/[$€£¥₹+#]\s?$|[\p{Sc}]\s?$/u.test(prev) || /^\s?(?:[%€$£¥₹\p{Sc}]|usd|eur|gbp|kr\b|chf)/iu.test(next)) return null;
  // "(555) 123-4567": what follows an area code in brackets is a phone number.
  if (/\)\s?$/.test(prev)) return null;
  if (/^\d+$/.test(cluster)) {
    if (cluster.length < 4 || cluster.length > 8) return null;
    if (/^(?:19|20)\d\d$/.test(cluster) && !/(?:code|otp|pin|kod|código|codice)\s*(?:is|:|ist|est|es|é|è)?\s*$/iu.test(text.slice(Math.max(0, start - 20), start))) return null;
    if (MONTHS.test(text.slice(Math.max(0, start - 12), start)) || /^\s*(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)/i.test(next + text.slice(end + 4, end + 8))) return null;
    if (/^[:.]\d/.test(text.slice(end, end + 2)) || /\d[:.]$/.test(text.slice(Math.max(0, start - 2), start))) return null;
    return cluster;
  }
  // "123 456" and "123-456": a six-digit code shown in two halves.
  const halves = /^(\d{3,4})[ -](\d{3,4})$/.exec(cluster);
  if (halves !== null) return halves[1] + halves[2];
  if (/^[A-Za-z0-9]{6,8}$/.test(cluster) && /\d/.test(cluster) && /[A-Za-z]/.test(cluster)) {
    // Mixed codes are written in capitals or as typed; a word with a number glued on is rarer than
    // a code, but a CSS colour or a hex id is not a code.
    if (/^[0-9a-f]{6}$/i.test(cluster) && /#\s?$/.test(prev)) return null;
    if (/^(?:\d+(?:st|nd|rd|th|am|pm|px|kb|mb|gb|ms|min|h))$/i.test(cluster)) return null;
    return cluster;
  }
  return null;
}
