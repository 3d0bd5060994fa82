import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Lab, deleteNamespace, isRoot, which } from './netns.js';

// Deleting lab namespaces: one already gone (a test that deleted it itself, a second cleanup, a
// leftover from no earlier run) is quietly nothing to do; `ip netns del` printed "Cannot remove
// namespace file ... No such file or directory" into the test output for each. One that is there
// and cannot be deleted is an error, said and not swallowed.

const NS = `lhonsd${process.pid % 100000}`;
const support = fileURLToPath(new URL('../test/support/netns.js', import.meta.url));
const ip = (args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
const listed = (ns: string): boolean => ip(['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === ns);

/** Runs `body` (an ES module's text, with `vethNamespace` and `deleteNamespace` imported) in a node of its own: its output and status. */
function inChild(body: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { vethNamespace, deleteNamespace } from ${JSON.stringify(support)};\n${body}`], { encoding: 'utf8', timeout: 30_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

if (!isRoot() || !which('ip')) {
  process.stderr.write('\n*** SKIPPED lib/netns.test: needs root and ip (network namespaces)\n');
  t.pass('SKIPPED: needs root and ip');
} else {
  t.teardown(() => {
    try { deleteNamespace(NS); } catch { /* said by the test that made it fail */ }
    rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
  });

  t.test('a test namespace made, torn down twice, made again: nothing on stderr', async (t) => {
    const r = inChild(`
const teardowns = [];
const fakeTest = { teardown: (fn) => teardowns.push(fn) };
vethNamespace(fakeTest, ${JSON.stringify(NS)}, 'lhonsd0', 'lhonsd1');
for (const fn of teardowns) fn();
for (const fn of teardowns) fn();
deleteNamespace(${JSON.stringify(NS)});
`);
    t.equal(r.status, 0, 'it ran');
    t.equal(r.stderr, '', 'nothing said for the namespace that was already gone');
    t.notOk(listed(NS), 'the namespace is gone');
    t.notOk(existsSync(`/etc/netns/${NS}`), 'its resolv.conf directory too');
  });

  t.test('a namespace that is there and cannot be deleted fails the teardown, named', async (t) => {
    // The namespace's file replaced by a directory with a file in it: `ip netns del` cannot remove it.
    const r = inChild(`
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
const teardowns = [];
vethNamespace({ teardown: (fn) => teardowns.push(fn) }, ${JSON.stringify(NS)}, 'lhonsd0', 'lhonsd1');
execFileSync('ip', ['netns', 'del', ${JSON.stringify(NS)}]);
mkdirSync('/run/netns/${NS}');
writeFileSync('/run/netns/${NS}/keep', '');
try { for (const fn of teardowns) fn(); console.log('no error'); } catch (err) { console.log('threw: ' + err.message); }
rmSync('/run/netns/${NS}', { recursive: true, force: true });
`);
    t.equal(r.status, 0, `it ran (${r.stderr.trim()})`);
    t.match(r.stdout, new RegExp(`threw: could not delete network namespace ${NS}: `), 'the teardown throws, naming the namespace and why');
    t.notOk(existsSync(`/run/netns/${NS}`), 'the stand-in is removed');
    t.notOk(existsSync(`/etc/netns/${NS}`), 'the resolv.conf directory is removed all the same');
  });

  t.test('deleteNamespace: gone is nothing to do; a real failure throws with ip\'s words', async (t) => {
    t.doesNotThrow(() => deleteNamespace(`${NS}x`), 'a namespace never made');
    mkdirSync(`/run/netns/${NS}`, { recursive: true });
    writeFileSync(`/run/netns/${NS}/keep`, '');
    try {
      t.throws(() => deleteNamespace(NS), new RegExp(`could not delete network namespace ${NS}: .*(Is a directory|Directory not empty|Device or resource busy)`));
    } finally {
      rmSync(`/run/netns/${NS}`, { recursive: true, force: true });
    }
  });

  t.test('a lab whose namespace someone deleted first is destroyed quietly', async (t) => {
    const lab = await Lab.create('lho');
    ip(['netns', 'del', lab.switchNs]);
    await t.resolves(lab.destroy(), 'no error for the namespace already gone');
    t.notOk(listed(lab.switchNs), 'and nothing left');
  });
}
