import t from 'tap';
import { checkName, compileRemap, isFileName, remapCandidates, rootRelative, tokenValue } from './paths.js';

t.test('names are checked as a sentence says', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['a plain name passes', 'boot.scr.uimg', 'ok:boot.scr.uimg'],
    ['a nested name passes', 'pxelinux.cfg/01-aa-bb', 'ok:pxelinux.cfg/01-aa-bb'],
    ['backslashes are separators', 'EFI\\BOOT\\BOOTAA64.EFI', 'ok:EFI/BOOT/BOOTAA64.EFI'],
    ['"." and empty components drop', './a//b/./c', 'ok:a/b/c'],
    ['../ is refused', '../etc/passwd', 'dotdot'],
    ['a/../../ is refused', 'a/../../etc/passwd', 'dotdot'],
    ['a ".." even inside the root is refused', 'a/../b', 'dotdot'],
    ['backslash ".." is refused', '..\\..\\etc\\passwd', 'dotdot'],
    ['a trailing ".." is refused', 'a/..', 'dotdot'],
    ['/etc/passwd is absolute', '/etc/passwd', 'absolute'],
    ['\\ at the start is absolute', '\\etc\\passwd', 'absolute'],
    ['NUL is refused', 'a\0b', 'nul'],
    ['256 octets is too long', 'a'.repeat(256), 'too-long'],
    ['255 octets passes', 'a'.repeat(255), `ok:${'a'.repeat(255)}`],
    ['only dots and slashes is the root, a directory', './/.', 'ok:./'],
    ['"." is the root', '.', 'ok:./'],
    ['a trailing / names a directory, never file a', 'a/', 'ok:a/'],
    ['a trailing /. names a directory', 'a/.', 'ok:a/'],
    ['a trailing // names a directory', 'a//', 'ok:a/'],
    ['a trailing \\ names a directory', 'a\\', 'ok:a/'],
    ['a nested trailing / names a directory', 'd/f/', 'ok:d/f/'],
    ['a leading ./ drops', './a', 'ok:a'],
    ['"..." is a plain name', '...', 'ok:...'],
    ['an encoded form stays a literal name', '..%2f..%2fetc%2fpasswd', 'ok:..%2f..%2fetc%2fpasswd'],
  ];
  for (const [sentence, name, want] of cases) {
    const got = checkName(name);
    t.equal(got.ok ? `ok:${got.path}` : got.reason, want, sentence);
  }
});

t.test('a config may name files, not directories', async (t) => {
  for (const name of ['Image', 'gen/7/Image', './Image']) t.ok(isFileName(name), name);
  for (const name of ['Image/', 'gen/7/', 'gen/.', '.', '../Image', '']) t.notOk(isFileName(name), name);
});

t.test('a requested name is read from the root: leading / and \\ drop, .. stays refused', async (t) => {
  t.equal(rootRelative('/grub/grub.cfg'), 'grub/grub.cfg', 'GRUB\'s prefix /grub');
  t.equal(rootRelative('\\EFI\\BOOT\\BOOTAA64.EFI'), 'EFI\\BOOT\\BOOTAA64.EFI');
  t.equal(rootRelative('//a'), 'a');
  t.equal(rootRelative('a/b'), 'a/b', 'a relative name as it is');
  t.equal(rootRelative('/'), '.', '"/" alone is the root, not an empty name');
  t.equal(rootRelative(''), '', 'an empty name stays empty');
  t.match(checkName(rootRelative('/../etc/passwd')), { ok: false, reason: 'dotdot' });
  t.match(checkName(rootRelative('/etc/passwd')), { ok: true, path: 'etc/passwd' }, 'inside the root');
});

t.test('per-client tokens come from the lease', async (t) => {
  const client = { ip: '10.20.0.5', mac: '52:54:00:aa:bb:07', hostname: 'node07' };
  t.equal(tokenValue('iphex', client), '0A140005');
  t.equal(tokenValue('mac-', client), '52-54-00-aa-bb-07');
  t.equal(tokenValue('hostname', { ip: '1.2.3.4', hostname: '../../x' }), null, 'a hostile hostname is no token');
  t.equal(tokenValue('mac', { ip: '1.2.3.4' }), null, 'no lease, no MAC');
});

t.test('remap candidates', async (t) => {
  const rules = compileRemap([
    { match: '^pxelinux\\.cfg/default$', replace: 'pxelinux.cfg/01-{mac-}' },
    { match: '^boot\\.scr\\.uimg$', replace: 'nodes/{hostname}/boot.scr.uimg' },
    { match: '^/(.*)$', replace: '$1' },
  ]);
  const leased = { ip: '10.20.0.5', mac: '52:54:00:aa:bb:07', hostname: 'node07' };
  t.same(remapCandidates('boot.scr.uimg', rules, leased), [
    { name: 'nodes/node07/boot.scr.uimg', fallThrough: true }, { name: 'boot.scr.uimg', fallThrough: false },
  ], 'per-node script first, then the shared one');
  t.same(remapCandidates('boot.scr.uimg', rules, { ip: '10.20.0.9' }), [{ name: 'boot.scr.uimg', fallThrough: false }], 'no lease: the rule does not apply');
  t.same(remapCandidates('pxelinux.cfg/default', rules, leased)[0], { name: 'pxelinux.cfg/01-52-54-00-aa-bb-07', fallThrough: true });
  t.same(remapCandidates('/boot/Image', rules, leased), [{ name: 'boot/Image', fallThrough: false }], 'a rule without tokens is final');
  const dollar = compileRemap([{ match: '^x$', replace: '{hostname}' }]);
  t.same(remapCandidates('x', dollar, { ip: '1.1.1.1', hostname: 'a-b' })[0]?.name, 'a-b');
});
