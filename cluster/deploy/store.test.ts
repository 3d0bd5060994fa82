// The generation store: a committed tree verifies; the quick check (stat digest recorded at the last
// verification) catches a change even when size and mtime are put back (ctime moves), and names the
// path; prune drops a generation with its manifest and cache.
import t from 'tap';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '../../test/support/netns.js';
import { commitTree, generationDir, pruneStore, storedGenerations, verifyGeneration } from './store.js';

t.test('commit, quick and full verify, tamper detection, prune', async (t) => {
  if (!which('rsync')) { process.stderr.write('\n*** SKIPPED store test: rsync is not installed (apt-get install rsync)\n'); t.pass('SKIPPED: no rsync'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/a'), 'aaaa');
  const state = join(dir, 'state');
  const { id, created } = await commitTree(tree, state);
  t.ok(created);
  t.same(storedGenerations(state), [id]);
  t.same(await verifyGeneration(state, id, { quick: true }), [], 'quick: untouched since commit');
  t.same(await verifyGeneration(state, id), [], 'full');

  const file = join(generationDir(state, id), 'etc/a');
  const { mtime } = statSync(file);
  truncateSync(file, 0);
  appendFileSync(file, 'aaab'); // same size
  utimesSync(file, mtime, mtime); // and the old mtime
  const changes = await verifyGeneration(state, id, { quick: true });
  t.same(changes.map((c) => `${c.path} (${c.what})`), ['etc/a (content)'], 'the ctime moved: rehashed, the path named');

  t.same(pruneStore(state, new Set()), [id]);
  t.same(readdirSync(join(state, 'rootfs')), [], 'tree, manifest and cache gone');
  t.notOk(existsSync(generationDir(state, id)));
});
