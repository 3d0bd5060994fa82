// The generation store: a committed tree verifies; the quick check (stat digest recorded at the last
// verification) catches a change even when size and mtime are put back (ctime moves), and names the
// path; prune drops a generation with its manifest and cache. A fake-super store (a daemon that is not root) keeps owners and devices in xattrs.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { which } from '../../test/support/netns.js';
import { commitTree, generationDir, PATH_BYTES_MAX, pruneStore, storedGenerations, sweepStoreLeftovers, verifyGeneration } from './store.js';
import { removeTreeSync } from '../../lib/remove-tree.js';

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

// deploy.fakeSuper: a daemon that is not root cannot chown, set set-id bits on others' files or make
// devices; rsync --fake-super keeps them in xattrs. Run here as root, where --fake-super behaves the
// same (rsync never sets the real values with it): the store holds faked attributes, the manifest
// and id are those of the real tree, and an rsync reading the store with --fake-super (as a deploy
// does) gives the real owners, modes, devices and xattrs back.
t.test('fake-super store: owners, set-id bits, devices and trusted xattrs survive, same id as a real store', async (t) => {
  const missing = ['rsync', 'getfattr', 'setfattr', 'mknod'].filter((tool) => !which(tool));
  if (missing.length > 0 || process.getuid?.() !== 0) {
    const why = missing.length > 0 ? `missing ${missing.join(', ')} (apt-get install rsync attr)` : 'needs root to make the tree (chown, mknod)';
    if (process.env['CI'] === 'true' && missing.length > 0) t.fail(`CI must run this test: ${why}`);
    else { process.stderr.write(`\n*** SKIPPED fake-super store test: ${why}\n`); t.pass(`SKIPPED: ${why}`); }
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-store-fake-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'usr/bin'), { recursive: true });
  mkdirSync(join(tree, 'dev'));
  writeFileSync(join(tree, 'usr/bin/su'), 'setuid tool');
  chownSync(join(tree, 'usr/bin/su'), 1234, 2345);
  chmodSync(join(tree, 'usr/bin/su'), 0o4755);
  execFileSync('mknod', ['-m', '666', join(tree, 'dev/null'), 'c', '1', '3']);
  execFileSync('setfattr', ['-n', 'trusted.lanha', '-v', 'kept', join(tree, 'usr/bin/su')]);
  execFileSync('setfattr', ['-n', 'user.plain', '-v', 'too', join(tree, 'usr/bin/su')]);

  const real = await commitTree(tree, join(dir, 'real'));
  const fakeState = join(dir, 'fake');
  const fake = await commitTree(tree, fakeState, { fakeSuper: true });
  t.equal(fake.id, real.id, 'the same tree is the same generation in a fake-super store');
  const stored = generationDir(fakeState, fake.id);
  t.not(statSync(join(stored, 'usr/bin/su')).uid, 1234, 'the store file does not carry the owner itself');
  t.ok(statSync(join(stored, 'dev/null')).isFile(), 'the device is kept as a plain file');
  t.match(execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', join(stored, 'usr/bin/su')], { encoding: 'utf8' }), /user\.rsync\.%stat="104755 0,0 1234:2345"/);
  t.same(await verifyGeneration(fakeState, fake.id), [], 'verifies against its manifest (faked attributes read back)');
  t.same(await verifyGeneration(fakeState, fake.id, { quick: true }), []);

  // What a deploy does: the sending rsync reads the store with --fake-super (-M--super: a local copy's receiver is "remote").
  const node = join(dir, 'node');
  execFileSync('rsync', ['-aHAX', '--numeric-ids', '--fake-super', '-M--super', `${stored}/`, `${node}/`]);
  const su = statSync(join(node, 'usr/bin/su'));
  t.same([su.uid, su.gid, su.mode & 0o7777], [1234, 2345, 0o4755], 'the node gets the real owner and set-uid bit');
  const devnull = statSync(join(node, 'dev/null'));
  t.ok(devnull.isCharacterDevice(), 'and a real device');
  t.equal(devnull.rdev, statSync(join(tree, 'dev/null')).rdev, 'with its numbers');
  const attrs = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', join(node, 'usr/bin/su')], { encoding: 'utf8' });
  t.match(attrs, /trusted\.lanha="kept"/);
  t.match(attrs, /user\.plain="too"/);
  t.notMatch(attrs, /user\.rsync\./, 'no fake-super bookkeeping reaches the node');
  t.same(pruneStore(fakeState, new Set()), [fake.id]);
  t.same(readdirSync(join(fakeState, 'rootfs')), [], 'the fake-super marker goes with the generation');
});

// Hostile names in a tree: newlines, leading dashes, backslashes, a FIFO, a device and hard links
// commit and verify like any other; bytes that are not UTF-8 (a name, a symlink's target) are
// refused with the source path named and the bytes shown, and leave nothing in the store. A link
// target decoded with U+FFFD would give two different trees one generation id.
t.test('odd names commit and verify; names and link targets that are not UTF-8 are refused by source path', async (t) => {
  if (!which('rsync')) { t.pass('SKIPPED: no rsync'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-store-odd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/-rf'), 'a');
  writeFileSync(join(tree, 'etc/new\nline'), 'b');
  writeFileSync(join(tree, 'etc/back\\slash'), 'c');
  linkSync(join(tree, 'etc/-rf'), join(tree, 'etc/--hard'));
  symlinkSync('/run', join(tree, 'var-run'));
  execFileSync('mkfifo', [join(tree, 'etc/fifo')]);
  if (process.getuid?.() === 0) execFileSync('mknod', [join(tree, 'etc/null'), 'c', '1', '3']);
  const state = join(dir, 'state');
  const { id } = await commitTree(tree, state);
  t.same(await verifyGeneration(state, id), [], 'verifies');
  t.ok(existsSync(join(generationDir(state, id), 'etc/new\nline')));

  const bad = Buffer.concat([Buffer.from(join(tree, 'etc/bad')), Buffer.from([0xff, 0xfe])]);
  writeFileSync(bad, 'd');
  await t.rejects(commitTree(tree, state), { message: `${tree}/etc/bad\\xff\\xfe: the file name is not UTF-8; rename it before committing the tree` });
  rmSync(bad);
  symlinkSync(Buffer.concat([Buffer.from('/run/'), Buffer.from([0xff])]), join(tree, 'badlink'));
  await t.rejects(commitTree(tree, state), { message: /badlink: the symlink's target is not UTF-8 \(\/run\/\\xff\); change it before committing the tree$/ });
  t.same(readdirSync(join(state, 'rootfs')).filter((n) => n.startsWith('.partial')), [], 'nothing half-made left in the store');
  t.same(storedGenerations(state), [id]);
});

// A daemon killed mid-commit leaves the partial copy in the store, one killed mid-copy to the peer its
// work directory, one killed mid-write a `.tmp` beside a manifest; nothing removed them (pruneStore
// only knows generation ids). The sweep at daemon start does, and says how much each held.
t.test('leftovers of cut-off commits, peer copies and durable writes are swept; generations are not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-store-sweep-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = join(dir, 'rootfs');
  const id = 'b'.repeat(64);
  mkdirSync(join(store, '.partial-0a1b2c3d', 'usr'), { recursive: true });
  writeFileSync(join(store, '.partial-0a1b2c3d', 'usr', 'tool'), Buffer.alloc(1500));
  mkdirSync(join(store, '.peer-lan-b'));
  writeFileSync(join(store, '.peer-lan-b', 'known_hosts'), 'x'.repeat(40));
  mkdirSync(join(store, id));
  writeFileSync(join(store, id, 'file'), 'kept');
  writeFileSync(join(store, `${id}.manifest`), 'kept');
  writeFileSync(join(store, `${id}.manifest.tmp`), 'y'.repeat(7));
  writeFileSync(join(store, 'notes.tmp'), 'not the store\'s');
  const swept = sweepStoreLeftovers(dir).map((s) => [s.path.slice(store.length + 1), s.bytes]).sort();
  t.same(swept, [['.partial-0a1b2c3d', 1500], ['.peer-lan-b', 40], [`${id}.manifest.tmp`, 7]]);
  t.same(readdirSync(store).sort(), [id, `${id}.manifest`, 'notes.tmp'].sort(), 'the generation and anything not the store\'s stay');
  writeFileSync(join(store, `${id}.verified.tmp`), 'z');
  t.same(pruneStore(dir, new Set()), [id], 'a dropped generation goes with its .tmp files');
  t.same(readdirSync(store), ['notes.tmp']);
});

/** Makes dir/<seg>/<seg>/... `depth` levels deep (by relative names: past PATH_MAX too) with a file at the bottom. */
function deepTree(dir: string, segment: string, depth: number): void {
  execFileSync('sh', ['-c', `mkdir -p "$1" && cd "$1" && i=0; while [ $i -lt ${depth} ]; do mkdir ${segment} && cd ${segment}; i=$((i+1)); done; echo deep > file`, 'sh', dir]);
}

// A tree whose deepest path fits where it was made but not in the store (node.stateDir/rootfs/<id>/
// is a longer prefix): the commit used to copy it into a shorter temporary name, rename that to the
// id, then fail on the first lstat with a bare ENAMETOOLONG, leaving a generation no entry named and
// no Node call could remove. The next commit's prune threw on it inside the log's apply, which ended
// the daemon, and so did every start after. Now the copy has the id's length, the commit is refused
// with the path and the room named and leaves the store empty, and trees past PATH_MAX are removed.
t.test('a path too long for the store is refused by name, nothing is left behind, and deep trees are pruned and swept', async (t) => {
  if (!which('rsync')) { t.pass('SKIPPED: no rsync'); return; }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-store-long-'));
  t.teardown(() => removeTreeSync(dir));
  const state = join(dir, 'state');
  const store = join(state, 'rootfs');
  const tree = join(dir, 't');
  // Fits under the old 17-character temporary name, not under the 64-character id.
  const room = PATH_BYTES_MAX - Buffer.byteLength(`${store}/${'0'.repeat(64)}/`);
  const segment = 'd'.repeat(99);
  const depth = Math.floor((room + 30) / 100);
  deepTree(tree, segment, depth);
  const longest = depth * 100 + 'file'.length;
  t.ok(longest > room && longest <= room + 47, `the deepest path (${longest} bytes) is just over the store's room (${room})`);
  await t.rejects(commitTree(tree, state), {
    message: new RegExp(`^${tree} holds a path too long for the generation store: d{56}\\.\\.\\.d{51}/file \\(${longest} bytes\\)\\. In the store every path is prefixed with ${store}/<id>/ \\(\\d+ bytes\\) and Linux refuses paths of 4096 bytes or more, so at most ${room} bytes fit: shorten it, or give node.stateDir a shorter path\\. Nothing was committed$`),
  });
  t.same(readdirSync(store), [], 'no generation, manifest or copy left in the store');

  const id = 'c'.repeat(64);
  deepTree(join(store, id), segment, 45);
  writeFileSync(join(store, `${id}.manifest`), 'x');
  t.same(pruneStore(state, new Set()), [id], 'a generation deeper than PATH_MAX is dropped');
  deepTree(join(store, `.partial-${'0'.repeat(55)}`), segment, 45);
  t.same(sweepStoreLeftovers(state).map((s) => s.path), [join(store, `.partial-${'0'.repeat(55)}`)], 'and so is a deep leftover copy');
  t.same(readdirSync(store), []);
});
