// Table tests of reading mail HTML as text: tags, entities, skipped elements, broken markup.
import { expect, test } from 'bun:test';
import { decodeEntities, htmlToText, scanHtml } from '../../src/core/html-text.ts';

test.each<[string, string, string]>([
  ['blocks break lines, inline tags do not', '<p>Hello <b>World</b></p><div>second<br>third</div>', 'Hello World\nsecond\nthird'],
  ['script, style, head and comments are dropped', '<head><title>T</title><style>p{}</style></head><script>x<y</script><!-- c --><p>body</p>', 'body'],
  ['entities', '<p>a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39; &#x1F600; &nbsp;f &unknown; &copy</p>', 'a & b <c> "d" \'e\' 😀 f &unknown; ©'],
  ['a < not followed by a letter is text', '<p>1 < 2 and a <= b</p>', '1 < 2 and a <= b'],
  ['unterminated tag and comment end at the end', '<p>ok</p><a href="x', 'ok'],
  ['unterminated comment', 'before<!-- never closed <p>x</p>', 'before'],
  ['unterminated script', 'before<script>var a = "</p>"', 'before'],
  ['image alt text', '<p>see <img src="x.png" alt="the chart"> here</p>', 'see the chart here'],
  ['doctype and CDATA', '<!DOCTYPE html><![CDATA[x]]><p>y</p>', 'y'],
])('%s', (_name, html, text) => {
  expect(htmlToText(html)).toBe(text);
});

test('tags carry lower-cased names and decoded attributes, first duplicate wins', () => {
  expect(scanHtml('<A HREF="a?b=1&amp;c" href=second data-x=\'q\' checked>t</a>')).toEqual([
    { kind: 'tag', name: 'a', closing: false, attrs: { href: 'a?b=1&c', 'data-x': 'q', checked: '' } },
    { kind: 'text', text: 't' },
    { kind: 'tag', name: 'a', closing: true, attrs: {} },
  ]);
});

test('invalid numeric references become U+FFFD', () => {
  expect(decodeEntities('&#0;&#xD800;&#1114112;')).toBe('\ufffd\ufffd\ufffd');
});

test('linear on hostile input', () => {
  const hostile = '<a '.repeat(20000) + '<!--'.repeat(20000) + '&#'.repeat(20000);
  const t = htmlToText(hostile);
  expect(typeof t).toBe('string');
});
