import t from 'tap';
import { escapeText, html, raw } from './html.js';

// Proves every interpolated value is inert text: markup characters, attribute breakouts, control
// characters, long names and broken UTF-16 all come out as escaped text.

t.test('markup and attribute breakouts become entities', async (t) => {
  t.equal(html`<td>${'<script>alert(1)</script>'}</td>`.text, '<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>');
  t.equal(html`<a title="${'"><img src=x onerror=alert(1)>'}">x</a>`.text, '<a title="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">x</a>');
  t.equal(escapeText("it's & <b>"), 'it&#39;s &amp; &lt;b&gt;');
});

t.test('control characters are shown, not passed through', async (t) => {
  t.equal(escapeText('a\u0000b\u0007c\u001bd\u007f\u0085'), 'a\\x00b\\x07c\\x1bd\\x7f\\x85');
  t.equal(escapeText('line\nbreak'), 'line\\x0abreak');
});

t.test('invalid UTF-8 and lone surrogates stay text', async (t) => {
  const decoded = new TextDecoder().decode(Uint8Array.from([0x68, 0xff, 0xfe, 0x69]));
  t.equal(escapeText(decoded), 'h\ufffd\ufffdi', 'decoder replacement characters kept');
  t.equal(escapeText('a\ud800b'), 'a\ufffdb', 'lone high surrogate');
  t.equal(escapeText('a\udc00b'), 'a\ufffdb', 'lone low surrogate');
  t.equal(escapeText('\ud83d\ude00'), '\ud83d\ude00', 'a valid pair is kept');
});

t.test('255-byte names pass whole and escaped', async (t) => {
  const long = '<'.repeat(255);
  t.equal(escapeText(long), '&lt;'.repeat(255));
});

t.test('nesting: Html values and arrays are not escaped twice; null and false render nothing', async (t) => {
  const inner = html`<b>${'x<y'}</b>`;
  t.equal(html`<p>${inner}${[html`<i>1</i>`, '<2>']}${null}${undefined}${false}${0}</p>`.text, '<p><b>x&lt;y</b><i>1</i>&lt;2&gt;0</p>');
  t.equal(html`${raw('<hr>')}`.text, '<hr>');
});
