// Table tests of link and one-time-code extraction, including the numbers that must not be taken
// for codes: dates, times, years, phone numbers, prices, amounts, order numbers, URLs.
import { expect, test } from 'bun:test';
import { extractCodes, extractLinks } from '../../src/core/links-and-codes.ts';
import { htmlToText } from '../../src/core/html-text.ts';
import { seededRandom } from '../helpers/seeded-random.ts';

test.each<[string, { text?: string; html?: string }, { url: string; text: string }[]]>([
  ['hrefs with their text, entities decoded, whitespace collapsed', { html: '<p>Hi <a href="https://x.test/a?b=1&amp;c=2">Confirm\n  <b>your</b> e-mail</a> or <A HREF=\'https://x.test/unsub\'>unsubscribe</A></p>' }, [
    { url: 'https://x.test/a?b=1&c=2', text: 'Confirm your e-mail' },
    { url: 'https://x.test/unsub', text: 'unsubscribe' },
  ]],
  ['an image link takes its alt text; an unclosed anchor ends at the end', { html: '<a href="https://x.test/logo"><img src="cid:1" alt="Logo"></a><a href=https://x.test/open>open' }, [
    { url: 'https://x.test/logo', text: 'Logo' },
    { url: 'https://x.test/open', text: 'open' },
  ]],
  ['mailto and tel hrefs are links too; javascript: and empty hrefs are not', { html: '<a href="mailto:a@x.test">mail</a><a href="tel:+15551234567">call</a><a href="javascript:alert(1)">x</a><a href="">y</a><a name="top">z</a>' }, [
    { url: 'mailto:a@x.test', text: 'mail' },
    { url: 'tel:+15551234567', text: 'call' },
  ]],
  ['bare URLs in HTML text, not inside script or comments', { html: '<p>Go to https://x.test/page.</p><script>var u="https://evil.test"</script><!-- https://hidden.test -->' }, [
    { url: 'https://x.test/page', text: 'https://x.test/page' },
  ]],
  ['bare URLs in text, trailing punctuation and unbalanced brackets cut', { text: 'Visit https://x.test/a_(b). Or (https://x.test/c), "https://x.test/d"! www.x.test/e?f=1, <https://x.test/g>' }, [
    { url: 'https://x.test/a_(b)', text: 'https://x.test/a_(b)' },
    { url: 'https://x.test/c', text: 'https://x.test/c' },
    { url: 'https://x.test/d', text: 'https://x.test/d' },
    { url: 'www.x.test/e?f=1', text: 'www.x.test/e?f=1' },
    { url: 'https://x.test/g', text: 'https://x.test/g' },
  ]],
  ['markdown links keep their text; duplicates are listed once', { text: '[Reset password](https://x.test/reset?t=abc) and again https://x.test/reset?t=abc https://x.test/reset?t=abc' }, [
    { url: 'https://x.test/reset?t=abc', text: 'Reset password' },
    { url: 'https://x.test/reset?t=abc', text: 'https://x.test/reset?t=abc' },
  ]],
  ['HTML first, then text', { html: '<a href="https://x.test/h">H</a>', text: 'https://x.test/t' }, [
    { url: 'https://x.test/h', text: 'H' },
    { url: 'https://x.test/t', text: 'https://x.test/t' },
  ]],
  ['no links', { text: 'plain words, a@x.test, x.test' }, []],
])('links: %s', (_name, bodies, expected) => {
  expect(extractLinks(bodies)).toEqual(expected);
});

test.each<[string, string, string[]]>([
  ['digits after "code"', 'Your verification code is 483920.', ['483920']],
  ['digits before "is your code"', '739201 is your login code', ['739201']],
  ['a code on its own line after the sentence', 'Use this code to sign in:\n\n   5521  \n\nIt expires in 10 minutes.', ['5521']],
  ['OTP, upper case', 'OTP: 88451203', ['88451203']],
  ['letters and digits', 'Your one-time passcode: K7Q2ZP9', ['K7Q2ZP9']],
  ['a six-digit code in two halves', 'Your security code: 123 456', ['123456']],
  ['PIN', 'Your PIN is 0042', ['0042']],
  ['German', 'Ihr Bestätigungscode lautet 918273', ['918273']],
  ['French', 'Votre code de vérification : 564738', ['564738']],
  ['Spanish', 'Tu código de verificación es 302918', ['302918']],
  ['Portuguese', 'Seu código de verificação: 771234', ['771234']],
  ['Italian', 'Il tuo codice di verifica è 665544', ['665544']],
  ['Dutch', 'Je verificatiecode is 121314', ['121314']],
  ['Polish', 'Twój kod weryfikacyjny to 998877', ['998877']],
  ['Russian', 'Ваш код подтверждения: 246810', ['246810']],
  ['Japanese', '認証コード：135790', ['135790']],
  ['Chinese', '您的验证码是 864209，5分钟内有效', ['864209']],
  ['a year next to the code word is still a code when it is the code', 'Your code is 2024', ['2024']],
  ['two codes, nearest its code word first', 'Your login code: 482913 (or use the backup codes list, e.g.   1111)', ['482913', '1111']],
])('codes: %s', (_name, text, expected) => {
  expect(extractCodes({ text })).toEqual(expected);
});

test.each<[string, string]>([
  ['no code word at all', 'We shipped 3 items on 2024-05-01, total 129.99'],
  ['a date', 'Your code was sent on 2024-01-02 at 10:30'],
  ['a US date', 'Verification requested 01/02/2024'],
  ['a date with a month name', 'Code requested on 12 March 2025'],
  ['a year', 'Security notice © 2026 Example Inc.'],
  ['a time', 'Your login at 12:45 from a new device'],
  ['a phone number', 'Questions about your code? Call +1 555 123 4567'],
  ['a phone number with an area code', 'Verification help: (555) 123-4567'],
  ['a dashed phone number', 'Login support 555-123-4567'],
  ['a price', 'Your code unlocks $1299 of savings'],
  ['an amount', 'Verification fee: 1,250.00 EUR'],
  ['a euro amount', 'Confirmation: 4500 € paid'],
  ['a percentage', 'Use code SAVE to get 2500% more'],
  ['an order number nearer than the code word', 'Your confirmation for order 55667788 is below.'],
  ['an invoice number', 'Verification of invoice #20251234'],
  ['digits in a URL', 'Verify here: https://x.test/verify/839201?u=123456'],
  ['digits in an e-mail address', 'Your code was sent to user483920@x.test'],
  ['a CSS colour', 'security #a1b2c3'],
  ['too short or too long', 'Your code is 123 or 123456789'],
  ['an ordinary word', 'Your verification is complete. Welcome aboard!'],
  ['a postcode is not a code word', 'Postcode 12345'],
  ['a barcode is not a code word', 'barcode 99887766'],
])('no code: %s', (_name, text) => {
  expect(extractCodes({ text })).toEqual([]);
});

test('codes in HTML are read from its text; text and HTML together list a code once', () => {
  // A code drawn one digit per element reads as one code; head, style and title are not text.
  const html = '<html><head><style>.code{color:#123456}</style><title>Code 999999</title></head><body><p>Your verification code</p><div class="code"><b>4</b><b>8</b>&#x33;<b>9</b></div><p>Ref. 2026</p></body></html>';
  expect(extractCodes({ html })).toEqual(['4839']);
  const html2 = '<p>Your verification code is</p><h1 style="letter-spacing:4px">551903</h1>';
  expect(extractCodes({ html: html2 })).toEqual(['551903']);
  expect(extractCodes({ html: html2, text: 'Your verification code is 551903' })).toEqual(['551903']);
});

test('fuzz: random text and HTML never throw; every code and bare URL comes from the input', () => {
  const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
  console.log(`links-and-codes fuzz seed ${SEED}`);
  const r = seededRandom(SEED);
  const pieces = ['code', ' ', '\n', '123456', '12', '-', '/', ':', '<a href="', 'https://x.test/', '">', '</a>', '<', '>', '&amp;', '&#', 'OTP', '(', ')', '+1', '$', '2024', 'A1B2C3', '.', ',', '验证码', 'www.', '<!--', '<script>', '"', "'", '[t](', 'é'];
  for (let i = 0; i < 3000; i++) {
    let input = '';
    for (let n = Math.floor(r() * 40); n > 0; n--) input += pieces[Math.floor(r() * pieces.length)];
    const asText = { codes: extractCodes({ text: input }), links: extractLinks({ text: input }) };
    const asHtml = { codes: extractCodes({ html: input }), links: extractLinks({ html: input }) };
    const flat = input.replace(/[\s-]/g, '');
    const flatHtml = htmlToText(input).replace(/[\s-]/g, '');
    for (const c of asText.codes) expect({ seed: SEED, i, c, ok: flat.includes(c) }).toEqual({ seed: SEED, i, c, ok: true });
    for (const c of asHtml.codes) expect({ seed: SEED, i, c, ok: flatHtml.includes(c) }).toEqual({ seed: SEED, i, c, ok: true });
    for (const l of asText.links) expect(input.includes(l.url)).toBe(true);
  }
  const hostile = 'code 1 '.repeat(50000) + '<a href=x>'.repeat(20000) + `https://x.test/${')'.repeat(100000)}${'.'.repeat(100000)}`;
  expect(Array.isArray(extractCodes({ text: hostile, html: hostile }))).toBe(true);
});
