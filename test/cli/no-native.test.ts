// No native addons: .npmrc keeps npm from installing optional dependencies (ssh2's cpu-features)
// and from running install scripts (ssh2's node-gyp attempt), and node_modules holds no *.node file.
import t from 'tap';
import { readFileSync, readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT as ROOT } from '../support/paths.js';

t.test('.npmrc omits optional dependencies and runs no install scripts', async (t) => {
  const npmrc = readFileSync(join(ROOT, '.npmrc'), 'utf8').split('\n').map((l) => l.trim());
  t.ok(npmrc.includes('omit=optional'));
  t.ok(npmrc.includes('ignore-scripts=true'));
});

t.test('node_modules holds no *.node file (native addon)', async (t) => {
  const found: string[] = [];
  let files = 0;
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) continue;
      if (st.isDirectory()) walk(path);
      else { files++; if (name.endsWith('.node')) found.push(path); }
    }
  };
  walk(join(ROOT, 'node_modules'));
  t.ok(files > 1000, `walked ${files} files`);
  t.same(found, [], 'no native addon');
  t.ok(lstatSync(join(ROOT, 'node_modules/ssh2/package.json')).isFile(), 'ssh2 is installed');
});
