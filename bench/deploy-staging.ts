// bench:deploy-staging — what syncing into a staging directory and switching it in costs against
// syncing the live tree in place (the only way before, and still the way for a destination that is
// a symlink or has a file system mounted below it), on one tree of FILES small files (default 20,000
// in 200 directories). Three nodes in namespaces, the same config: c1's /srv/root is a plain
// directory (staged beside it, one rename), c2's is a mount point (staged inside it, its top-level
// entries switched), c3's is a symlink to a directory (in place). Per case (cold, no change, 1 %
// changed) the three are deployed one after the other, RUNS times (default 3), and the medians of
// the job's own timings are printed: transfer, prepare and switch (staged only), the whole node,
// and the lanctl command's wall time. Not a test. Needs root (network namespaces).
import { appendFileSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../test/support/deploy-lab.js';
import type { JobTimings } from '../cluster/deploy/jobs.js';
import { median } from './stats.js';

const RUNS = Number(process.env['RUNS'] ?? 3);
const FILES = Number(process.env['FILES'] ?? 20_000);
const DIRS = 200;

function makeTree(dir: string): string[] {
  const files: string[] = [];
  for (let d = 0; d < DIRS; d++) {
    const sub = join(dir, `usr/lib/pkg${d}`);
    mkdirSync(sub, { recursive: true });
    for (let i = 0; i < FILES / DIRS; i++) {
      const path = join(sub, `f${i}`);
      writeFileSync(path, `file ${d}/${i} `.repeat(1 + ((i * 7919) % 60)));
      files.push(path);
    }
  }
  return files;
}

interface Sample { wall: number; transfer: number; prepare: number; switch: number; node: number }

async function main(): Promise<void> {
  const failures: string[] = [];
  const teardowns: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => { teardowns.push(fn); }, skip: (...a: unknown[]) => { console.log('SKIPPED', ...a); }, fail: (...a: unknown[]) => { failures.push(String(a[0])); } };
  try {
    await withDeployLab(t, { subnet: 96, nodes: ['c1', 'c2', 'c3'], tools: ['ssh', 'rsync'], name: 'lanha-bench-staging-' }, async (d) => {
      const srv = join(d.dir, 'srv-c1');
      const root2 = join(d.dir, 'root-c2');
      const srv3 = join(d.dir, 'srv-c3');
      mkdirSync(srv);
      mkdirSync(root2);
      mkdirSync(join(srv3, 'real'), { recursive: true });
      symlinkSync('real', join(srv3, 'root'));
      const s1 = await d.sshd('c1', { srv });
      const s2 = await d.sshd('c2', { root: root2 });
      const s3 = await d.sshd('c3', { srv: srv3 });
      await d.serve(`  hostKeys:\n    c1: "${s1.hostKey}"\n    c2: "${s2.hostKey}"\n    c3: "${s3.hostKey}"\n  rootfs: { destination: /srv/root }\n`);
      const tree = join(d.dir, 'tree');
      const files = makeTree(tree);
      const results: Record<string, Record<string, Sample[]>> = {};
      for (const kase of ['cold', 'nochange', 'changed1pct']) {
        for (let run = 0; run < RUNS; run++) {
          if (kase === 'changed1pct') for (let i = run; i < files.length; i += 100) appendFileSync(files[i]!, `changed ${run}\n`);
          if (kase !== 'nochange' || run === 0) {
            const c = await d.lanctl('rootfs', 'commit', tree, '--json');
            if (c.code !== 0) throw new Error(c.stderr);
          }
          for (const node of run % 2 === 0 ? ['c1', 'c2', 'c3'] : ['c3', 'c2', 'c1']) {
            if (kase === 'cold') {
              // An empty node: the tree, and anything staged beside or inside it, removed.
              const top = node === 'c1' ? srv : node === 'c2' ? root2 : join(srv3, 'real');
              for (const e of readdirSync(top)) rmSync(join(top, e), { recursive: true, force: true });
            }
            const t0 = performance.now();
            const r = await d.lanctl('deploy', 'rootfs', '--to', node, '--json');
            const wall = performance.now() - t0;
            if (r.code !== 0) throw new Error(`${kase} ${node}: ${r.stdout}${r.stderr}`);
            const n = (JSON.parse(r.stdout) as { timings: JobTimings }).timings.nodes[node]!;
            const sample = { wall, transfer: n.transferMs ?? 0, prepare: n.prepareMs ?? 0, switch: n.switchMs ?? 0, node: (n.transferMs ?? 0) + (n.storeCheckMs ?? 0) + (n.switchMs ?? 0) };
            ((results[kase] ??= {})[`${node} ${n.mode}`] ??= []).push(sample);
            console.log(`${kase} run ${run} ${node} (${n.mode}): wall ${Math.round(wall)} ms, transfer ${sample.transfer} (prepare ${sample.prepare} of it), switch ${sample.switch}`);
          }
        }
      }
      console.log('\n| case | node | wall ms | transfer ms (prepare in it) | switch ms | node total ms |\n|---|---|---|---|---|---|');
      for (const [kase, byNode] of Object.entries(results)) {
        for (const [node, samples] of Object.entries(byNode)) {
          const m = (k: keyof Sample): number => Math.round(median(samples.map((s) => s[k])));
          console.log(`| ${kase} | ${node} | ${m('wall')} | ${m('transfer')} (${m('prepare')}) | ${m('switch')} | ${m('node')} |`);
        }
        const inPlace = byNode['c3 in-place'];
        for (const [label, staged] of [['staged', byNode['c1 staging']], ['inside', byNode['c2 inside']]] as const) {
          if (staged && inPlace) console.log(`RESULT deploy_staging.${kase}${label === 'inside' ? '_mount' : ''}_node_ms ${label}=${Math.round(median(staged.map((s) => s.node)))} in-place=${Math.round(median(inPlace.map((s) => s.node)))} ratio=${(median(staged.map((s) => s.node)) / median(inPlace.map((s) => s.node))).toFixed(2)} unit=ms better=lower`);
        }
      }
    });
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
  if (failures.length > 0) { console.error(failures.join('\n')); process.exitCode = 1; }
}

void main();
