// bench:deploy — `lanctl deploy rootfs` against the hand-written loop it replaces (one
// `rsync -aHAX --numeric-ids --delete -e ssh` per node, one after the other), in one run, on the
// same fixture and the same 4 sshd namespaces. Not a test. Cases: cold (empty nodes), no change,
// 1 % of the files changed, one node (cold); median of RUNS (default 5). Prints a table and RESULT
// lines. Needs root (network namespaces); `npm run bench:deploy` installs rsync/openssh/attr first (bench/anchors.sh).
// Env: RUNS (5), FILES (3000), MBYTES (40), PARALLEL (4 = deploy.parallel), CASES (all).
// Also prints where lanha's time goes per phase (the daemon's job timings, the rest is the CLI).
import { execFileSync } from 'node:child_process';
import { appendFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Lab, isRoot } from '../test/support/netns.js';
import { runLanctl, serveDaemon, type ServedDaemon } from '../test/support/daemon.js';
import { LANCTL } from '../test/support/paths.js';
import { makeKey, startSshd, type TestSshd } from '../test/support/node-sshd.js';
import { parseStats, shellQuote } from '../cluster/deploy/rsync.js';
import type { JobTimings } from '../cluster/deploy/jobs.js';
import { median } from './stats.js';

const RUNS = Number(process.env['RUNS'] ?? 5);
const FILES = Number(process.env['FILES'] ?? 3000);
const MBYTES = Number(process.env['MBYTES'] ?? 40);
const PARALLEL = Number(process.env['PARALLEL'] ?? 4);
const NODES = ['c1', 'c2', 'c3', 'c4'];
/** CASES=nochange,one_node runs only those cases (default: all). */
const CASES = process.env['CASES']?.split(',');

/** One lanha run's time by phase, ms: the CLI (start, request, following) is what the daemon's timings leave over. */
interface Phases { total: number; cli: number; check: number; startEntry: number; overlay: number; transfer: number; entries: number; jobEnd: number; reused: number; nodes: number }

function phasesOf(totalMs: number, t: JobTimings | undefined): Phases {
  const nodes = Object.values(t?.nodes ?? {});
  const max = (k: 'overlayMs' | 'transferMs' | 'entriesMs'): number => Math.max(0, ...nodes.map((n) => n[k] ?? 0));
  const slowest = nodes.reduce((a, n) => Math.max(a, (n.overlayMs ?? 0) + (n.transferMs ?? 0) + (n.entriesMs ?? 0)), 0);
  const daemon = t?.totalMs ?? 0;
  return {
    total: totalMs, cli: totalMs - daemon, check: t?.checkMs ?? 0, startEntry: (t?.startEntryMs ?? 0) - (t?.checkMs ?? 0),
    overlay: max('overlayMs'), transfer: max('transferMs'), entries: max('entriesMs'),
    jobEnd: Math.max(0, daemon - (t?.startEntryMs ?? 0) - slowest), reused: nodes.filter((n) => n.sshReused === true).length, nodes: nodes.length,
  };
}

function phaseText(p: Phases): string {
  return `cli ${Math.round(p.cli)} ms, check ${p.check}, start ${p.startEntry}, overlay ${p.overlay}, transfer ${p.transfer}, entries ${p.entries}, end ${Math.round(p.jobEnd)}, ssh reused ${p.reused}/${p.nodes}`;
}

/** The fixture: FILES files, MBYTES in total, 10 % of them hardlinks, 3 % with xattrs, some symlinks. */
function makeFixture(dir: string): void {
  const dirs = 30;
  const per = Math.ceil(FILES / dirs);
  const avg = Math.floor((MBYTES << 20) / (FILES * 0.9));
  let n = 0;
  for (let d = 0; d < dirs && n < FILES; d++) {
    const sub = join(dir, `usr/lib/pkg${d}`);
    mkdirSync(sub, { recursive: true });
    for (let i = 0; i < per && n < FILES; i++, n++) {
      const path = join(sub, `f${i}`);
      if (i % 10 === 9) { linkSync(join(sub, `f${i - 1}`), path); continue; }
      writeFileSync(path, randomBytes(Math.max(16, Math.floor(avg * (0.25 + ((i * 7919) % 150) / 100)))));
      if (i % 33 === 0) execFileSync('setfattr', ['-n', 'user.bench', '-v', `v${i}`, path]);
    }
  }
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc/motd'), 'bench\n');
}

/** Changes 1 % of the regular files (appends bytes), so each changed-1% run moves that much. */
function touchOnePercent(dir: string, round: number): void {
  const files: string[] = [];
  for (const d of readdirSync(join(dir, 'usr/lib'))) for (const f of readdirSync(join(dir, 'usr/lib', d))) files.push(join(dir, 'usr/lib', d, f));
  const step = 100;
  for (let i = round % step; i < files.length; i += step) appendFileSync(files[i]!, `changed in round ${round}\n`);
}

async function main(): Promise<void> {
  if (!isRoot()) { console.error('bench:deploy needs root (network namespaces, sshd)'); process.exit(1); }
  const dir = mkdtempSync(join(tmpdir(), 'lanha-bench-deploy-'));
  const lab = await Lab.create();
  let daemon: ServedDaemon | undefined;
  const sshd: TestSshd[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> => (cleaned ??= (async () => {
    await daemon?.stop();
    for (const s of sshd) await s.stop();
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  })());
  // Ctrl-C or a timeout's SIGTERM still removes the namespaces and stops what was started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void cleanup().finally(() => process.exit(130)); });
  try {
    const lan = await lab.addHost('lan', '10.79.0.1/24');
    const hosts = [];
    for (const [i, n] of NODES.entries()) hosts.push(await lab.addHost(n, `10.79.0.${11 + i}/24`));
    const key = join(dir, 'deploy_ed25519');
    const pub = makeKey(key);
    const roots = NODES.map((n) => join(dir, 'roots', n));
    for (const [i, n] of NODES.entries()) {
      mkdirSync(roots[i]!, { recursive: true });
      sshd.push(await startSshd(lab, hosts[i]!, join(dir, 'sshd', n), { root: roots[i]!, authorizedKeys: [pub] }));
    }
    const fixture = join(dir, 'fixture');
    mkdirSync(fixture);
    makeFixture(fixture);
    const config = join(dir, 'lanha.yaml');
    writeFileSync(config, `node: { name: lan-a, address: 10.79.0.1, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock, logLevel: warn }
deploy:
  user: root
  identityFile: ${key}
  parallel: ${PARALLEL}
  targets:
${NODES.map((n, i) => `    - { name: ${n}, host: 10.79.0.${11 + i}, groups: [all] }`).join('\n')}
  hostKeys:
${NODES.map((n, i) => `    ${n}: "${sshd[i]!.hostKey}"`).join('\n')}
  rootfs: { destination: /srv/root }
`);
    // The loop's ssh pins keys the same way (a known_hosts file, StrictHostKeyChecking=yes).
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, NODES.map((n, i) => `10.79.0.${11 + i} ${sshd[i]!.hostKey}\n`).join(''));
    const sshCmd = ['ssh', '-i', key, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`].map(shellQuote).join(' ');

    // logLevel warn hides daemon.ready: serve with info, the bench reads no logs anyway.
    writeFileSync(config, execFileSync('sed', ['s/, logLevel: warn//', config], { encoding: 'utf8' }));
    daemon = await serveDaemon(config, { command: ['ip', 'netns', 'exec', lan.ns, process.execPath, LANCTL], timeoutMs: 30_000 });
    const lanctl = async (...args: string[]): Promise<string> => {
      const r = await runLanctl([...args, '--config', config], { timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`lanctl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    };
    const commit = async (): Promise<{ id: string; seconds: number }> => {
      const t0 = performance.now();
      const out = JSON.parse(await lanctl('rootfs', 'commit', fixture, '--json')) as { generation: string };
      return { id: out.generation, seconds: (performance.now() - t0) / 1000 };
    };
    const clear = (nodes: readonly number[]): void => { for (const i of nodes) for (const f of readdirSync(roots[i]!)) rmSync(join(roots[i]!, f), { recursive: true, force: true }); };
    const lanha = async (gen: string, nodes: readonly number[]): Promise<{ s: number; sent: number; phases: Phases }> => {
      const t0 = performance.now();
      const out = await lanctl('deploy', 'rootfs', gen.slice(0, 16), '--to', nodes.map((i) => NODES[i]).join(','));
      const s = (performance.now() - t0) / 1000;
      const id = /^job (\S+)$/m.exec(out)![1]!;
      const job = JSON.parse(await lanctl('deploy', 'jobs', id, '--json')) as { nodes: Array<{ sent?: number }>; timings?: JobTimings };
      return { s, sent: job.nodes.reduce((sum, n) => sum + (n.sent ?? 0), 0), phases: phasesOf(s * 1000, job.timings) };
    };
    const loop = async (nodes: readonly number[]): Promise<{ s: number; sent: number }> => {
      const script = nodes.map((i) => `rsync -aHAX --numeric-ids --delete --stats -e ${shellQuote(sshCmd)} ${fixture}/ root@10.79.0.${11 + i}:/srv/root/`).join(' && ');
      const t0 = performance.now();
      const r = await lan.exec('bash', ['-c', script], { timeoutMs: 600_000 });
      const s = (performance.now() - t0) / 1000;
      if (r.code !== 0) throw new Error(`rsync loop failed (${r.code}): ${r.stderr}`);
      const sent = r.stdout.split('Number of files:').slice(1).reduce((sum, part) => sum + (parseStats(part).sent ?? 0), 0);
      return { s, sent };
    };

    const all = NODES.map((_, i) => i);
    const results: Record<string, { lanha: number[]; loop: number[]; lanhaSent: number[]; loopSent: number[]; phases: Phases[] }> = {};
    const record = (name: string, a: { s: number; sent: number; phases: Phases }, b: { s: number; sent: number }): void => {
      const r = results[name] ??= { lanha: [], loop: [], lanhaSent: [], loopSent: [], phases: [] };
      r.lanha.push(a.s); r.loop.push(b.s); r.lanhaSent.push(a.sent); r.loopSent.push(b.sent); r.phases.push(a.phases);
      console.log(`  ${name} run ${r.lanha.length}: lanha ${a.s.toFixed(2)} s (${a.sent} B sent; ${phaseText(a.phases)}), rsync-loop ${b.s.toFixed(2)} s (${b.sent} B sent)`);
    };
    const wanted = (name: string): boolean => CASES === undefined || CASES.includes(name);

    const first = await commit();
    console.log(`fixture: ${FILES} files, ~${MBYTES} MB, hardlinks + xattrs; generation ${first.id.slice(0, 12)} committed in ${first.seconds.toFixed(2)} s`);
    const commitTimes: number[] = [];
    for (let run = 0; run < RUNS && wanted('cold'); run++) {
      clear(all); const a = await lanha(first.id, all);
      clear(all); const b = await loop(all);
      record('cold', a, b);
    }
    for (let run = 0; run < RUNS && wanted('nochange'); run++) {
      await lanha(first.id, all); // both start from an identical, synced tree
      const a = await lanha(first.id, all);
      const b = await loop(all);
      record('nochange', a, b);
    }
    for (let run = 0; run < RUNS && wanted('changed1pct'); run++) {
      // Same start for both: nodes synced to the current fixture; then 1 % changes.
      const before = await commit();
      await lanha(before.id, all);
      touchOnePercent(fixture, run);
      const c = await commit();
      commitTimes.push(c.seconds);
      const a = await lanha(c.id, all);
      await lanha(before.id, all);
      const b = await loop(all);
      record('changed1pct', a, b);
    }
    const last = (await commit()).id;
    for (let run = 0; run < RUNS && wanted('one_node'); run++) {
      clear([0]); const a = await lanha(last, [0]);
      clear([0]); const b = await loop([0]);
      record('one_node', a, b);
    }

    console.log('\ncase          lanha s   rsync-loop s   ratio   (median of ' + RUNS + ')');
    for (const [name, r] of Object.entries(results)) {
      const a = median(r.lanha), b = median(r.loop);
      console.log(`${name.padEnd(12)}  ${a.toFixed(2).padStart(7)}   ${b.toFixed(2).padStart(12)}   ${(a / b).toFixed(2)}`);
    }
    if (commitTimes.length > 0) console.log(`commit of a 1 %-changed tree (not in the deploy times above): median ${median(commitTimes).toFixed(2)} s`);
    console.log('\nwhere lanha\'s time goes, ms (median of ' + RUNS + '; per node: the slowest node):');
    console.log('case          total    cli    check  start-entry  overlay  transfer  result-entries  job-end  ssh reused');
    for (const [name, r] of Object.entries(results)) {
      const m = (k: keyof Phases): string => String(Math.round(median(r.phases.map((p) => Number(p[k]))))).padStart(k === 'total' ? 5 : 6);
      console.log(`${name.padEnd(12)}  ${m('total')}  ${m('cli')}  ${m('check')}  ${m('startEntry').padStart(11)}  ${m('overlay').padStart(7)}  ${m('transfer').padStart(8)}  ${m('entries').padStart(14)}  ${m('jobEnd').padStart(7)}  ${r.phases.map((p) => `${p.reused}/${p.nodes}`).join(' ')}`);
    }
    console.log('');
    for (const [name, r] of Object.entries(results)) {
      const a = median(r.lanha), b = median(r.loop);
      console.log(`RESULT deploy.${name}_s lanha=${a.toFixed(3)} rsync-loop=${b.toFixed(3)} ratio=${(a / b).toFixed(3)} unit=s better=lower`);
    }
    const c = results['changed1pct'];
    if (c !== undefined) {
      const sa = median(c.lanhaSent), sb = median(c.loopSent);
      console.log(`RESULT deploy.bytes_sent.changed1pct lanha=${sa} rsync-loop=${sb} ratio=${(sa / sb).toFixed(3)} unit=bytes better=lower`);
      console.log(`RESULT deploy.commit_changed1pct_s lanha=${median(commitTimes).toFixed(3)} rsync-loop=0 ratio=NA unit=s better=lower`);
    }
  } finally {
    await cleanup();
  }
}

await main();
