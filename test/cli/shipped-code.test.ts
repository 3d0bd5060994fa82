// The shipped code (bin, lib, config, cluster, services; tests excluded) never imports from test/:
// `lanctl demo` runs on an installed node, so its lab and daemon helpers live in lib/. Proven by
// reading every import specifier of the source files, and by loading the demo modules from dist.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT as ROOT } from '../support/paths.js';

const SHIPPED = ['bin', 'lib', 'config', 'cluster', 'services'];

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

t.test('no shipped source file imports from test/', async (t) => {
  const files = SHIPPED.flatMap((d) => sources(join(ROOT, d)));
  t.ok(files.length > 100, `read ${files.length} files`);
  const offenders: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
      if (/(^|\/)test\//.test(m[1]!)) offenders.push(`${relative(ROOT, file)} imports ${m[1]}`);
    }
  }
  t.same(offenders, [], 'imports of test code from shipped code');
});

t.test('the demo modules load from dist without test/ beside them', async (t) => {
  for (const m of ['bin/demo.js', 'bin/demo-lab.js', 'lib/netns.js', 'lib/serve-daemon.js']) {
    const mod = await import(join(ROOT, 'dist', m)) as Record<string, unknown>;
    t.ok(Object.keys(mod).length > 0, `${m} exports something`);
  }
});
