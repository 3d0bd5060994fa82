import t from 'tap';
import { linearRegExp, linearRegExpProblem } from './linear-regexp.js';

t.test('a pattern that backtracks exponentially runs in linear time', async (t) => {
  const r = linearRegExp('^(a+)+$');
  // With backtracking, 26 octets took 14 s here and each one more doubles it: with 10,000 this
  // would never return, and the test would end at its timeout instead.
  t.equal(r.test(`${'a'.repeat(10_000)}b`), false, 'answered');
  t.equal(r.test('aaaa'), true);
  t.equal('pxelinux.cfg/01-aa'.replace(linearRegExp('^pxelinux\\.cfg/(.*)$'), 'cfg/$1'), 'cfg/01-aa', 'captures and replacement work as usual');
  for (const p of ['^pxelinux\\.cfg/(.*)', '(.*)\\.efi$', '^([^/]+)/(.*)', '^(.*?)\\.cfg', '[A-F0-9]{8}', '^(?<name>.+)$', '(?:ab)+|c']) {
    t.equal(linearRegExpProblem(p), null, `the usual remap pattern ${p} is accepted`);
  }
});

t.test('what needs backtracking, or is no pattern, is refused with the reason', async (t) => {
  t.equal(linearRegExpProblem('^pxelinux\\.cfg/(.*)$'), null);
  t.match(linearRegExpProblem('(a)\\1'), /cannot run in linear time/);
  t.match(linearRegExpProblem('foo(?=bar)'), /cannot run in linear time \(backreferences such as \\1, lookaround/);
  t.match(linearRegExpProblem('(unclosed'), /is not a valid regular expression/);
  t.throws(() => linearRegExp('(a)\\1'));
});
