import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { VERSION, versionString } from './version.js';

t.test('the version names the commit of the build', async (t) => {
  t.equal(versionString('0.1.0', { commit: '9a0cc11e2b3f', dirty: false }), '0.1.0+g9a0cc11e2b3f');
  t.equal(versionString('0.1.0', { commit: '9a0cc11e2b3f', dirty: true }), '0.1.0+g9a0cc11e2b3f.dirty');
  t.equal(versionString('0.1.0', { commit: null, dirty: false }), '0.1.0', 'built outside git: the package version');
  t.equal(versionString('0.1.0', null), '0.1.0', 'no stamp file');
  t.equal(versionString('0.1.0', { commit: '$(rm -rf /)' }), '0.1.0', 'a stamp that is not a commit id is ignored');
  t.equal(versionString(undefined, null), '0.0.0');
});

t.test('this build is stamped with the checkout it was built from', async (t) => {
  const stamp = JSON.parse(readFileSync(new URL('../build.json', import.meta.url), 'utf8')) as { commit: string | null };
  let head: string | null = null;
  try {
    head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: new URL('../../', import.meta.url), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch { /* not a checkout */ }
  if (head === null) {
    t.equal(stamp.commit, null, 'built outside git');
    return;
  }
  // The tree may have moved on since the build (a commit after `npm run build`): the stamp is a commit of this history.
  t.match(VERSION, /^\d+\.\d+\.\d+\+g[0-9a-f]{12}(\.dirty)?$/, `VERSION ${VERSION}`);
  const known = execFileSync('git', ['cat-file', '-t', stamp.commit!], { cwd: new URL('../../', import.meta.url), encoding: 'utf8' }).trim();
  t.equal(known, 'commit', `the stamp ${stamp.commit} is a commit of this checkout`);
});
