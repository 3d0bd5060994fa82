// The node side of a staged sync, run here with sh on scratch directories (what the node's login
// shell runs over ssh): the staging plan beside the destination, the prepare script (a switch cut
// off between its renames put back, other generations' staging and an old tree removed, in place for
// a symlink, excluded paths carried in as hard links), and the switch (the staged tree becomes the
// destination, the old one goes; a first deploy is one rename).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PREPARE_SCRIPT, SWITCH_SCRIPT, carryFilters, nodeScriptCommand, parsePrepared, posixQuote, rootfsRsyncArgs, stagingPlan } from './rsync.js';

const GEN = 'ab'.repeat(32);

/** Runs `script` with `args` the way the node does: through a shell parsing nodeScriptCommand's string. */
function onNode(script: string, args: readonly string[]): string {
  return execFileSync('sh', ['-c', nodeScriptCommand(script, args)], { encoding: 'utf8' });
}

t.test('the staging plan sits beside the destination; / has none', async (t) => {
  t.same(stagingPlan('/srv/root/', GEN), { dest: '/srv/root', staging: `/srv/.root.lanha-new-${GEN.slice(0, 12)}`, prefix: '/srv/.root.lanha-new-', old: '/srv/.root.lanha-old' });
  t.same(stagingPlan('/rootfs', GEN)?.staging, `/.rootfs.lanha-new-${GEN.slice(0, 12)}`);
  t.equal(stagingPlan('/', GEN), undefined);
  t.equal(stagingPlan('relative/dir', GEN), undefined);
  t.same(parsePrepared('x\nlanha-mode staging\n'), { mode: 'staging' });
  t.same(parsePrepared('lanha-mode in-place /srv/root is a mount point\n'), { mode: 'in-place', why: '/srv/root is a mount point' });
  t.equal(parsePrepared('Welcome!\n'), undefined);
  t.equal(posixQuote("it's"), `'it'\\''s'`);
  t.same(carryFilters(['/keep/', '*.log']), ['--filter=+ /keep/', '--filter=+ /keep/***', '--filter=+ *.log', '--filter=+ *.log/***']);
  const args = rootfsRsyncArgs({ source: '/s/gen', target: { node: 'c1', host: '10.0.0.5', port: 22, user: 'root' }, destination: '/srv/.root.lanha-new-x', linkDest: '/srv/root/', ssh: { knownHostsFile: '/k' } });
  t.ok(args.includes('--link-dest=/srv/root'), 'unchanged files are linked from the live tree');
  t.notOk(args.includes('--delay-updates'), 'no holding directories inside a staging directory');
  t.equal(args[args.length - 1], '10.0.0.5:/srv/.root.lanha-new-x/');
});

t.test('prepare and switch on scratch directories', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lanha staging '));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plan = stagingPlan(join(dir, 'root'), GEN)!;
  const args = [plan.dest, plan.staging, plan.old, plan.prefix];

  // First deploy: no tree yet; prepare says staging; the switch is one rename.
  t.same(parsePrepared(onNode(PREPARE_SCRIPT, args)), { mode: 'staging' });
  mkdirSync(join(plan.staging, 'a'), { recursive: true });
  writeFileSync(join(plan.staging, 'a/f'), 'generation 1\n');
  onNode(SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old]);
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 1\n');
  t.same(readdirSync(dir), ['root'], 'nothing beside the tree');

  // Leftovers: another generation's staging and an old tree go; a switch cut off between its two
  // renames (no tree, the old one whole) is put back first.
  const other = `${plan.prefix}${'cd'.repeat(6)}`;
  mkdirSync(join(other, 'x'), { recursive: true });
  execFileSync('mv', ['-T', plan.dest, plan.old]);
  t.same(parsePrepared(onNode(PREPARE_SCRIPT, args)), { mode: 'staging' });
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 1\n', 'the old tree is back where the node boots from');
  t.notOk(existsSync(other), 'the staging of another generation is removed');

  // Excluded paths are carried into the staging directory as hard links; the rest is left to the sync.
  mkdirSync(join(plan.dest, 'keep/sub'), { recursive: true });
  writeFileSync(join(plan.dest, 'keep/sub/data'), 'the node\'s own\n');
  writeFileSync(join(plan.dest, 'x.log'), 'log\n');
  onNode(PREPARE_SCRIPT, [...args, ...carryFilters(['/keep/', '*.log'])]);
  t.equal(readFileSync(join(plan.staging, 'keep/sub/data'), 'utf8'), 'the node\'s own\n');
  t.equal(statSync(join(plan.staging, 'keep/sub/data')).ino, statSync(join(plan.dest, 'keep/sub/data')).ino, 'a hard link, not a copy');
  t.ok(existsSync(join(plan.staging, 'x.log')));
  t.notOk(existsSync(join(plan.staging, 'a/f')), 'what is not excluded comes from the sync');

  // The switch of a tree over an existing one: the new tree in place, the old one removed.
  mkdirSync(join(plan.staging, 'a'), { recursive: true });
  writeFileSync(join(plan.staging, 'a/f'), 'generation 2\n');
  onNode(SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old]);
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 2\n');
  t.equal(readFileSync(join(plan.dest, 'keep/sub/data'), 'utf8'), 'the node\'s own\n');
  t.same(readdirSync(dir), ['root'], 'no staging or old tree left');

  // A switch with no staging directory fails and changes nothing.
  t.throws(() => onNode(SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old]));
  t.equal(readFileSync(join(plan.dest, 'a/f'), 'utf8'), 'generation 2\n');

  // A destination that is a symlink is synced in place (renaming it would replace the link).
  const linked = stagingPlan(join(dir, 'link'), GEN)!;
  symlinkSync(plan.dest, linked.dest);
  t.same(parsePrepared(onNode(PREPARE_SCRIPT, [linked.dest, linked.staging, linked.old, linked.prefix])), { mode: 'in-place', why: `${linked.dest} is a symlink` });
});
