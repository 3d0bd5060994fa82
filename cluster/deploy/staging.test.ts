// The node side of a staged sync, run here with sh on scratch directories (what the node's login
// shell runs over ssh): the staging plan beside the destination, the prepare script (a switch cut
// off between its renames put back, other generations' staging and an old tree removed, in place for
// a symlink, excluded paths carried in as hard links), and the switch (the staged tree becomes the
// destination, the old one goes; a first deploy is one rename). The same inside a destination that
// is a mount point (its top-level entries switched, a switch cut after any move finished by the
// next prepare). Each under the host's sh and coreutils and under a BusyBox userland, also one
// whose mv has no -T (the scripts used `mv -T` for every rename: every switch failed there).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PREPARE_SCRIPT, SWITCH_INSIDE_SCRIPT, SWITCH_SCRIPT, carryFilters, fromMountTable, mountTablePath, nodeScriptCommand, parsePrepared, posixQuote, prepareArgs, rootfsRsyncArgs, stagingPlan, stagingPlans } from './rsync.js';
import { busyboxUserland } from '../../test/support/busybox.js';

const GEN = 'ab'.repeat(32);
const GEN2 = 'cd'.repeat(32);

/** A node's userland: the PATH its shell runs with (undefined: this machine's). */
interface Userland { name: string; path?: string }

const scratch = mkdtempSync(join(tmpdir(), 'lanha staging userlands '));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
const USERLANDS: Userland[] = [{ name: 'sh and coreutils' }];
for (const [name, mvWithoutT] of [['BusyBox', false], ['BusyBox whose mv has no -T', true]] as const) {
  const bin = busyboxUserland(join(scratch, name.replace(/\W+/g, '-')), { mvWithoutT });
  if (bin === null) process.stderr.write(`\n*** SKIPPED the ${name} userland: busybox or rsync is not installed (apt-get install busybox rsync)\n`);
  else USERLANDS.push({ name, path: bin });
}

/** Runs `script` with `args` the way the node does: through a shell parsing nodeScriptCommand's string. */
function onNode(script: string, args: readonly string[], userland: Userland = USERLANDS[0]!, path?: string): string {
  const env = { ...process.env, ...(userland.path !== undefined ? { PATH: userland.path } : {}) };
  if (path !== undefined) env['PATH'] = `${path}:${env['PATH']}`;
  return execFileSync(userland.path !== undefined ? join(userland.path, 'sh') : 'sh', ['-c', nodeScriptCommand(script, args)], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
}

t.test('the staging plan sits beside the destination; / has none', async (t) => {
  t.same(stagingPlan('/srv/root/', GEN), { dest: '/srv/root', layout: 'beside', staging: `/srv/.root.lanha-new-${GEN.slice(0, 12)}`, prefix: '/srv/.root.lanha-new-', old: '/srv/.root.lanha-old' });
  t.same(stagingPlan('/rootfs', GEN)?.staging, `/.rootfs.lanha-new-${GEN.slice(0, 12)}`);
  t.equal(stagingPlan('/', GEN), undefined);
  t.same(stagingPlans('/mnt/root/', GEN)?.inside, { dest: '/mnt/root', layout: 'inside', staging: `/mnt/root/.lanha/new-${GEN.slice(0, 12)}`, prefix: '/mnt/root/.lanha/new-', old: '/mnt/root/.lanha/old' });
  t.same(stagingPlans('/', GEN), { beside: undefined, inside: { dest: '/', layout: 'inside', staging: `/.lanha/new-${GEN.slice(0, 12)}`, prefix: '/.lanha/new-', old: '/.lanha/old' } });
  t.equal(stagingPlans('/srv/../etc', GEN), undefined);
  t.same(parsePrepared('lanha-mode inside\n'), { mode: 'inside' });
  t.equal(stagingPlan('relative/dir', GEN), undefined);
  t.same(parsePrepared('x\nlanha-mode staging\n'), { mode: 'staging' });
  t.same(parsePrepared('lanha-mode in-place /srv/root is a mount point\n'), { mode: 'in-place', why: '/srv/root is a mount point' });
  t.equal(parsePrepared('Welcome!\n'), undefined);
  t.same(parsePrepared('lanha-mode below /srv/my\\040root/a\\134b\n'), { mode: 'in-place', why: 'a file system is mounted below it at /srv/my root/a\\b (a switch would move its files with the old tree)' });
  t.equal(mountTablePath('/srv/my root/t\tn\nb\\x'), '/srv/my\\040root/t\\011n\\012b\\134x', 'as the kernel writes /proc/mounts');
  t.equal(fromMountTable(mountTablePath('/srv/my root/t\tn\nb\\x\\040')), '/srv/my root/t\tn\nb\\x\\040');
  t.equal(posixQuote("it's"), `'it'\\''s'`);
  t.same(carryFilters(['/keep/', '*.log']), ['--filter=+ /keep/', '--filter=+ /keep/***', '--filter=+ *.log', '--filter=+ *.log/***']);
  const args = rootfsRsyncArgs({ source: '/s/gen', target: { node: 'c1', host: '10.0.0.5', port: 22, user: 'root' }, destination: '/srv/.root.lanha-new-x', linkDest: '/srv/root/', ssh: { knownHostsFile: '/k' } });
  t.ok(args.includes('--link-dest=/srv/root'), 'unchanged files are linked from the live tree');
  t.notOk(args.includes('--delay-updates'), 'no holding directories inside a staging directory');
  t.equal(args[args.length - 1], '10.0.0.5:/srv/.root.lanha-new-x/');
});

for (const userland of USERLANDS) t.test(`prepare and switch on scratch directories (${userland.name})`, async (t) => {
  const run = (script: string, args: readonly string[]): string => onNode(script, args, userland);
  const dir = mkdtempSync(join(tmpdir(), 'lanha staging '));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plans = stagingPlans(join(dir, 'root'), GEN)!;
  const plan = plans.beside!;
  const args = prepareArgs(plan, plans.inside);

  // First deploy: no tree yet; prepare says staging; the switch is one rename.
  t.same(parsePrepared(run(PREPARE_SCRIPT, args)), { mode: 'staging' });
  mkdirSync(join(plan.staging, 'a'), { recursive: true });
  writeFileSync(join(plan.staging, 'a/f'), 'generation 1\n');
  run(SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old]);
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 1\n');
  t.same(readdirSync(dir), ['root'], 'nothing beside the tree');

  // Leftovers: another generation's staging and an old tree go; a switch cut off between its two
  // renames (no tree, the old one whole) is put back first.
  const other = `${plan.prefix}${'cd'.repeat(6)}`;
  mkdirSync(join(other, 'x'), { recursive: true });
  renameSync(plan.dest, plan.old);
  t.same(parsePrepared(run(PREPARE_SCRIPT, args)), { mode: 'staging' });
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 1\n', 'the old tree is back where the node boots from');
  t.notOk(existsSync(other), 'the staging of another generation is removed');

  // Excluded paths are carried into the staging directory as hard links; the rest is left to the sync.
  mkdirSync(join(plan.dest, 'keep/sub'), { recursive: true });
  writeFileSync(join(plan.dest, 'keep/sub/data'), 'the node\'s own\n');
  writeFileSync(join(plan.dest, 'x.log'), 'log\n');
  run(PREPARE_SCRIPT, prepareArgs(plan, plans.inside, ['/keep/', '*.log']));
  t.equal(readFileSync(join(plan.staging, 'keep/sub/data'), 'utf8'), 'the node\'s own\n');
  t.equal(statSync(join(plan.staging, 'keep/sub/data')).ino, statSync(join(plan.dest, 'keep/sub/data')).ino, 'a hard link, not a copy');
  t.ok(existsSync(join(plan.staging, 'x.log')));
  t.notOk(existsSync(join(plan.staging, 'a/f')), 'what is not excluded comes from the sync');

  // The switch of a tree over an existing one: the new tree in place, the old one removed.
  mkdirSync(join(plan.staging, 'a'), { recursive: true });
  writeFileSync(join(plan.staging, 'a/f'), 'generation 2\n');
  run(SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old]);
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 2\n');
  t.equal(readFileSync(join(plan.dest, 'keep/sub/data'), 'utf8'), 'the node\'s own\n');
  t.same(readdirSync(dir), ['root'], 'no staging or old tree left');

  // A switch with no staging directory fails and changes nothing.
  t.throws(() => run(SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old]));
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 2\n');

  // A destination that is a symlink is synced in place (renaming it would replace the link).
  const linked = stagingPlans(join(dir, 'link'), GEN)!;
  symlinkSync(plan.dest, linked.inside.dest);
  t.same(parsePrepared(run(PREPARE_SCRIPT, prepareArgs(linked.beside!, linked.inside))), { mode: 'in-place', why: `${linked.inside.dest} is a symlink` });
  // Its path printed as it is: echo had read `\c` in it as "stop here" under dash and BusyBox.
  const oddLink = stagingPlans(join(dir, 'li\\cnk \\040'), GEN)!;
  symlinkSync(plan.dest, oddLink.inside.dest);
  t.same(parsePrepared(run(PREPARE_SCRIPT, prepareArgs(oddLink.beside!, oddLink.inside))), { mode: 'in-place', why: `${oddLink.inside.dest} is a symlink` });
});

/** Files under `dir` with their contents (symlinks as "-> target"), for comparing whole trees. */
function tree(dir: string, skip: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`;
      if (skip.includes(p)) continue;
      const st = lstatSync(join(dir, p));
      if (st.isSymbolicLink()) out[p] = `-> ${readlinkSync(join(dir, p))}`;
      else if (st.isDirectory()) { out[`${p}/`] = ''; walk(p); } else out[p] = readFileSync(join(dir, p), 'utf8');
    }
  };
  walk('');
  return out;
}

/** Writes generation `n` of a small root tree into `dir`: top-level dirs, a usr-merge symlink, a dot file, entries only one generation has. */
function writeGeneration(dir: string, n: 1 | 2): void {
  for (const sub of ['etc', 'usr/bin']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'etc/os-release'), `generation ${n}\n`);
  writeFileSync(join(dir, 'usr/bin/tool'), `tool ${n}\n`);
  symlinkSync('usr/bin', join(dir, 'bin'));
  writeFileSync(join(dir, '.hidden'), `hidden ${n}\n`);
  if (n === 1) { mkdirSync(join(dir, 'only1')); writeFileSync(join(dir, 'only1/f'), 'one\n'); } else writeFileSync(join(dir, 'only2'), 'two\n');
}

// The cut loop under this machine's userland and the BusyBox one without -T (the most limited).
for (const userland of USERLANDS.filter((u, i) => i === 0 || i === USERLANDS.length - 1)) t.test(`inside a mount point: top-level entries switched, a cut after any move finished by the next prepare (${userland.name})`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha inside '));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Empty beside paths stand for a mount point (the script cannot be shown one here without root).
  const plans = stagingPlans(join(dir, 'root'), GEN2)!;
  const inside = plans.inside;
  const args = ['' + inside.dest, '', '', '', inside.staging, inside.old, inside.prefix, mountTablePath(inside.dest)];
  const expected1 = (() => { const g = join(dir, 'g1'); mkdirSync(g); writeGeneration(g, 1); return tree(g); })();
  const expected2 = (() => { const g = join(dir, 'g2'); mkdirSync(g); writeGeneration(g, 2); return tree(g); })();

  // The node holds generation 1 at the top of its partition, and its own file under an excluded path.
  const fresh = (): void => {
    rmSync(inside.dest, { recursive: true, force: true });
    mkdirSync(inside.dest);
    writeGeneration(inside.dest, 1);
    mkdirSync(join(inside.dest, 'keep'));
    writeFileSync(join(inside.dest, 'keep/data'), 'the node\'s own\n');
  };
  fresh();
  const filters = carryFilters(['/keep/']);
  const stage = (): void => {
    t.same(parsePrepared(onNode(PREPARE_SCRIPT, [...args, ...filters], userland)), { mode: 'inside' });
    t.equal(readFileSync(join(inside.staging, 'keep/data'), 'utf8'), 'the node\'s own\n', 'the excluded path is carried into the staging directory');
    t.notOk(existsSync(join(inside.staging, '.lanha')), 'the staging directory does not hold itself');
    // The sync: generation 2 into the staging directory, what it does not hold deleted, /keep/ left alone.
    execFileSync('rsync', ['-a', '--checksum', '--delete', '--filter=- /keep/', `--link-dest=${inside.dest}`, `${join(dir, 'g2')}/`, `${inside.staging}/`]);
  };
  stage();
  t.same(tree(inside.dest, ['.lanha', 'keep', 'keep/data']), expected1, 'nothing of the live tree changed before the switch');
  onNode(SWITCH_INSIDE_SCRIPT, [inside.dest, inside.staging, inside.old], userland);
  t.same(tree(inside.dest, ['keep', 'keep/data']), expected2, 'generation 2 whole, generation 1\'s own entries gone, no .lanha left');
  t.equal(readFileSync(join(inside.dest, 'keep/data'), 'utf8'), 'the node\'s own\n');

  // A switch cut after each number of moves (mv stops working: the node lost power there), then
  // the next deploy's prepare: the tree is generation 2 whole every time.
  const counter = join(dir, 'counter');
  const cutBin = join(dir, 'cut-bin');
  mkdirSync(cutBin);
  writeFileSync(join(cutBin, 'mv'), [
    '#!/bin/sh',
    `n=$(cat '${counter}'); [ "$n" -gt 0 ] || exit 1; echo $((n - 1)) > '${counter}'`,
    `PATH='${userland.path ?? process.env['PATH']}' exec mv "$@"`, '',
  ].join('\n'), { mode: 0o755 });
  let cuts = 0;
  for (let moves = 0; moves < 20; moves++) {
    fresh();
    stage();
    writeFileSync(counter, String(moves));
    let cut = false;
    try { onNode(SWITCH_INSIDE_SCRIPT, [inside.dest, inside.staging, inside.old], userland, cutBin); } catch { cut = true; }
    if (!cut) break; // every move made: nothing left to cut
    cuts++;
    writeFileSync(counter, '1000');
    const mixed = tree(inside.dest, ['.lanha', 'keep', 'keep/data']);
    if (moves > 1) t.notSame(mixed, expected1, `cut after ${moves - 1} moves: the tree is no longer generation 1`);
    // The next deploy (of any generation) runs the prepare first.
    onNode(PREPARE_SCRIPT, [...args.slice(0, 4), `${inside.prefix}${'ef'.repeat(6)}`, ...args.slice(5)], userland, cutBin);
    // The first mv writes the marker: cut there, nothing moved, and generation 1 stays.
    t.same(tree(inside.dest, ['.lanha', 'keep', 'keep/data']), moves === 0 ? expected1 : expected2, moves === 0 ? 'cut before the marker: generation 1 untouched' : `cut after ${moves - 1} moves: the next prepare finished the switch`);
    t.equal(readFileSync(join(inside.dest, 'keep/data'), 'utf8'), 'the node\'s own\n');
    t.same(readdirSync(join(inside.dest, '.lanha')), [], 'the marker, the old tree and the spent staging directory are gone');
  }
  t.ok(cuts >= 6, `the switch was cut at ${cuts} points`);
});

// /proc/mounts writes a space, tab, newline and backslash in a mount point's path as \040, \011,
// \012, \134. The prepare script matched those fields against the destination as it stands, so a
// file system mounted below `/srv/my root` went unseen (staged beside: the switch would have moved
// that file system's files with the old tree and removed them). A destination named with a literal
// `\040` must not take the mount below its sibling `x y` for its own. Real mounts, in a mount
// namespace of the test's own (gone when it ends).
for (const userland of USERLANDS.filter((u, i) => i === 0 || i === USERLANDS.length - 1)) t.test(`mounts below a destination whose path the mount table escapes (${userland.name})`, async (t) => {
  if (process.getuid?.() !== 0) {
    process.stderr.write('\n*** SKIPPED mounts below destinations with spaces: needs root (mount, unshare -m)\n');
    t.pass('skipped: not root');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'lanha mounts '));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const spaced = join(dir, 'srv x', 'my root');
  const odd = join(dir, 'tab\there back\\slash');
  const literal = join(dir, 'x\\040y');
  const mountPoint = join(dir, 'mnt root');
  for (const p of [join(spaced, 'data dir'), join(odd, 'sub'), literal, join(dir, 'x y', 'sub'), mountPoint]) mkdirSync(p, { recursive: true });
  const mounts = [join(spaced, 'data dir'), join(odd, 'sub'), join(dir, 'x y', 'sub'), mountPoint];
  const dests = [spaced, odd, literal, mountPoint];
  const shell = userland.path !== undefined ? join(userland.path, 'sh') : 'sh';
  const path = userland.path ?? process.env['PATH']!;
  const script = [
    ...mounts.map((m) => `mount -t tmpfs lhk-staging ${posixQuote(m)} || exit 90`),
    ...dests.map((d) => {
      const plans = stagingPlans(d, GEN)!;
      return `PATH=${posixQuote(path)} ${posixQuote(shell)} -c ${posixQuote(nodeScriptCommand(PREPARE_SCRIPT, prepareArgs(plans.beside!, plans.inside)))} || exit 91; echo lhk-end`;
    }),
  ].join('\n');
  const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const said = out.split('lhk-end\n').slice(0, dests.length).map((o) => parsePrepared(o));
  const below = (m: string): { mode: 'in-place'; why: string } => ({ mode: 'in-place', why: `a file system is mounted below it at ${m} (a switch would move its files with the old tree)` });
  t.same(said[0], below(join(spaced, 'data dir')), 'a mount below a destination with a space in its path: in place');
  t.same(said[1], below(join(odd, 'sub')), 'a tab and a backslash in the path: the same');
  t.same(said[2], { mode: 'staging' }, 'a literal \\040 in the destination\'s name is not the mount below its sibling "x y"');
  t.same(said[3], { mode: 'inside' }, 'a mount point whose path has a space: staged inside it');
  t.notOk(existsSync(join(spaced, 'data dir', '.lanha')), 'nothing written into the mounted file system');
});
