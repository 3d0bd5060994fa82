// `lanctl deploy rootfs` against real sshd servers in network namespaces (each with its own host key
// and its own /srv/root): the tree arrives with hardlinks and xattrs, each node gets its own overlay
// (hostname, machine-id, hosts) that --delete leaves alone, a rerun moves almost nothing, a node
// whose key is not the pinned one gets nothing, a full disk fails with words, a killed sshd fails
// the node (it keeps N-1) and `deploy resume` finishes it, and Ctrl-C on lanctl interrupts the job.
// A second job reuses each node's ssh master from the first (no new login), and says so in its timings.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, linkSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { requireLab, withLab } from '../support/netns.js';
import { runLanctl, serveDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { callDaemonOk } from '../../lib/control-client.js';
import { makeKey, startSshd, type TestSshd } from '../support/node-sshd.js';

// Many lanctl runs and real ssh transfers: far over tap's default per-file limit on a loaded 2-core box.
t.setTimeout(600_000);

interface JobView { job: { state: string; nodes: Array<{ name: string; state: string; sent?: number; error?: string; exit?: number }>; timings?: { nodes: Record<string, { sshReused?: boolean; transferMs?: number }> } } }

t.test('deploy rootfs to sshd namespaces', async (t) => {
  if (!requireLab(t, ['sshd', 'ssh', 'ssh-keygen', 'rsync', 'getfattr', 'setfattr', 'tc'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-deploy-lab-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withLab(async (lab) => {
    const lan = await lab.addHost('lan', '10.77.0.1/24');
    const names = ['c1', 'c2', 'c3', 'c4'];
    const hosts = [];
    for (const [i, name] of names.entries()) hosts.push(await lab.addHost(name, `10.77.0.${11 + i}/24`));
    const clientKey = join(dir, 'deploy_ed25519');
    const clientPub = makeKey(clientKey);
    const roots = names.map((n) => join(dir, 'roots', n));
    for (const r of roots) mkdirSync(r, { recursive: true });
    const sshd: TestSshd[] = [];
    for (const [i, name] of names.entries()) {
      // c4's /srv/root is a 96 KiB tmpfs (the tree is ~190 KB): the disk-full case.
      sshd.push(await startSshd(lab, hosts[i]!, join(dir, 'sshd', name), name === 'c4' ? { tmpfsSize: '96k', authorizedKeys: [clientPub] } : { root: roots[i]!, authorizedKeys: [clientPub] }));
    }
    // c3 is pinned to c1's key: its real key does not match, so nothing may reach it.
    const pinned: Record<string, string> = { c1: sshd[0]!.hostKey, c2: sshd[1]!.hostKey, c3: sshd[0]!.hostKey, c4: sshd[3]!.hostKey };
    const config = join(dir, 'lanha.yaml');
    writeFileSync(config, `node: { name: lan-a, address: 10.77.0.1, stateDir: ${dir}/state, controlSocket: ${dir}/lanha.sock }
deploy:
  user: root
  identityFile: ${clientKey}
  parallel: 2
  targets:
${names.map((n, i) => `    - { name: ${n}, host: 10.77.0.${11 + i}, groups: [${n === 'c1' || n === 'c2' ? 'rack' : 'other'}] }`).join('\n')}
  hostKeys:
${Object.entries(pinned).map(([n, k]) => `    ${n}: "${k}"`).join('\n')}
  rootfs: { destination: /srv/root }
`);
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    mkdirSync(join(tree, 'usr/bin'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(tree, 'usr/bin', `tool${i}`), randomBytes(2000 + i * 100));
    linkSync(join(tree, 'usr/bin/tool1'), join(tree, 'usr/bin/tool1-link'));
    symlinkSync('tool2', join(tree, 'usr/bin/tool2-alias'));
    writeFileSync(join(tree, 'etc/hostname'), 'template\n');
    writeFileSync(join(tree, 'etc/motd'), 'generation 1\n');
    writeFileSync(join(tree, 'aaa'), 'generation 1\n'); // sent first: before 'big' in rsync's order
    execFileSync('setfattr', ['-n', 'user.lanha', '-v', 'kept', join(tree, 'etc/motd')]);

    const daemon = await serveDaemon(config, { command: ['ip', 'netns', 'exec', lan.ns, process.execPath, LANCTL], timeoutMs: 60_000 });
    t.teardown(() => daemon.stop());
    const lanctl = (...args: string[]) => runLanctl([...args, '--config', config], { timeoutMs: 120_000 });
    const job = async (id: string): Promise<JobView['job']> => JSON.parse((await lanctl('deploy', 'jobs', id, '--json')).stdout) as JobView['job'];
    const jobId = (out: string): string => /^job (\S+)$/m.exec(out)![1]!;
    const list = async (): Promise<{ generations: Array<{ id: string }>; nodes: Array<{ name: string; boot: string; running: string | null }> }> => JSON.parse((await lanctl('rootfs', 'list', '--json')).stdout);

    const commit1 = await lanctl('rootfs', 'commit', tree, '--json');
    t.equal(commit1.code, 0, commit1.stderr);
    const gen1 = (JSON.parse(commit1.stdout) as { generation: string }).generation;

    const dry = await lanctl('deploy', 'rootfs', '--to', 'rack', '--dry-run');
    t.equal(dry.code, 0, dry.stderr + dry.stdout);
    t.notOk(existsSync(join(roots[0]!, 'etc/motd')), 'a dry run changes nothing');

    const first = await lanctl('deploy', 'rootfs', '--to', 'rack');
    t.equal(first.code, 0, first.stderr + first.stdout);
    t.match(first.stdout, /NODE\s+RESULT/);
    for (const [i, name] of ['c1', 'c2'].entries()) {
      const r = roots[i]!;
      t.equal(readFileSync(join(r, 'usr/bin/tool7')).equals(readFileSync(join(tree, 'usr/bin/tool7'))), true, `${name}: content`);
      t.equal(statSync(join(r, 'usr/bin/tool1')).ino, statSync(join(r, 'usr/bin/tool1-link')).ino, `${name}: hardlink kept`);
      t.match(execFileSync('getfattr', ['--absolute-names', '-n', 'user.lanha', '--only-values', join(r, 'etc/motd')], { encoding: 'utf8' }), 'kept', `${name}: xattr kept`);
      t.equal(readFileSync(join(r, 'etc/hostname'), 'utf8'), `${name}\n`, `${name}: overlay hostname`);
      t.match(readFileSync(join(r, 'etc/machine-id'), 'utf8'), /^[0-9a-f]{32}\n$/);
      t.match(readFileSync(join(r, 'etc/hosts'), 'utf8'), /10\.77\.0\.13\tc3/);
    }
    t.not(readFileSync(join(roots[0]!, 'etc/machine-id'), 'utf8'), readFileSync(join(roots[1]!, 'etc/machine-id'), 'utf8'));

    writeFileSync(join(roots[0]!, 'stray'), 'not in the generation');
    const rerun = await lanctl('deploy', 'rootfs', '--to', 'rack');
    t.equal(rerun.code, 0, rerun.stderr);
    const rerunJob = await job(jobId(rerun.stdout));
    t.notOk(existsSync(join(roots[0]!, 'stray')), '--delete removed a stray file');
    t.equal(readFileSync(join(roots[0]!, 'etc/hostname'), 'utf8'), 'c1\n', 'and kept the overlay');
    for (const n of rerunJob.nodes) t.ok((n.sent ?? Infinity) < 40_000, `${n.name}: a rerun with no change sends little (${n.sent} bytes, tree ~190 KB)`);
    t.same(Object.entries(rerunJob.timings?.nodes ?? {}).map(([node, n]) => [node, n.sshReused]).sort(), [['c1', true], ['c2', true]],
      'the rerun went over the ssh masters the first job left up: no new key exchange and login');
    t.ok(Object.values(rerunJob.timings!.nodes).every((n) => typeof n.transferMs === 'number'), 'the job reports its time per phase');

    const wrong = await lanctl('deploy', 'rootfs', '--to', 'c3');
    t.equal(wrong.code, 1);
    t.match(wrong.stdout, /c3\s+failed\s.*host key mismatch/);
    const wrongJson = await lanctl('deploy', 'rootfs', '--to', 'c3', '--json');
    t.equal(wrongJson.code, 1, 'with --json too, a failed node exits 1');
    const wrongJob = JSON.parse(wrongJson.stdout) as JobView['job'];
    t.same([wrongJob.state, wrongJob.nodes.map((n) => [n.name, n.state])], ['failed', [['c3', 'failed']]], '--json prints the ended job, nothing else');
    t.match(wrongJob.nodes[0]!.error ?? '', /^host key mismatch on c3: it offered SHA256:\S+, the pinned key is SHA256:\S+; nothing was sent \(rsync exit (12|255)\)\. If the node was reinstalled, check it and run `lanctl nodes trust c3 --replace`$/,
      'the result names both keys and the command that re-pins (trust without --replace refuses a changed key)');
    t.same(execFileSync('find', [roots[2]!, '-mindepth', '1'], { encoding: 'utf8' }), '', 'nothing reached c3');

    const full = await lanctl('deploy', 'rootfs', '--to', 'c4');
    t.equal(full.code, 1);
    const fullJob = await job(jobId(full.stdout));
    t.match(fullJob.nodes[0]!.error ?? '', /disk is full|No space left|rsync exit (11|12|23)/, 'disk full is explained');

    // Generation 2 with a 3 MB file; c2's link slowed to ~1 MB/s so the sync can be cut mid-way.
    writeFileSync(join(tree, 'big'), randomBytes(3 << 20));
    appendFileSync(join(tree, 'etc/motd'), 'generation 2\n');
    writeFileSync(join(tree, 'aaa'), 'generation 2\n');
    rmSync(join(tree, 'usr/bin/tool49'));
    const commit2 = await lanctl('rootfs', 'commit', tree, '--json');
    const gen2 = (JSON.parse(commit2.stdout) as { generation: string }).generation;
    const port = lab.bridgePort(2);
    t.equal((await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port, 'root', 'tbf', 'rate', '8mbit', 'burst', '32kbit', 'latency', '400ms'])).code, 0);
    const started = await lanctl('deploy', 'rootfs', '--to', 'c2', '--detach');
    const cut = jobId(started.stdout);
    for (let i = 0; i < 150; i++) {
      const live = (await callDaemonOk(join(dir, 'lanha.sock'), 'GET', `/v1/deploy/jobs?job=${cut}`)) as { live: Array<{ progress?: { bytes: number } }> };
      if ((live.live[0]?.progress?.bytes ?? 0) > 300_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await sshd[1]!.kill();
    let cutJob = await job(cut);
    for (let i = 0; i < 100 && cutJob.state === 'running'; i++) { await new Promise((r) => setTimeout(r, 200)); cutJob = await job(cut); }
    t.equal(cutJob.state, 'failed', 'sshd killed mid-transfer: the job fails');
    t.match(cutJob.nodes[0]!.error ?? '', /^the ssh connection to c2 was lost mid-transfer \((Broken pipe|Connection reset by peer); rsync exit (10|12|255)\)|rsync exit (10|12|255|30): /);
    let view = await list();
    t.equal(view.nodes.find((n) => n.name === 'c2')?.boot, gen1, 'c2 keeps N-1 for boot');
    // What c2 boots must be what its disk holds: a cut sync leaves N-1 whole, no file of N in place
    // (rsync --delay-updates keeps them aside until every file arrived) and nothing of N-1 deleted.
    t.equal(readFileSync(join(roots[1]!, 'aaa'), 'utf8'), 'generation 1\n', 'c2: a file of N sent before the cut is not in place');
    t.ok(existsSync(join(roots[1]!, 'usr/bin/tool49')), 'c2: a file N drops is still there');
    t.notOk(existsSync(join(roots[1]!, 'big')), 'c2: the file cut mid-way is not in place');
    sshd[1] = await startSshd(lab, hosts[1]!, join(dir, 'sshd', 'c2b'), { root: roots[1]!, authorizedKeys: [clientPub], hostKeyFile: join(dir, 'sshd', 'c2', 'ssh_host_ed25519_key') });
    await lab.execSwitch('tc', ['qdisc', 'del', 'dev', port, 'root']);
    const resumed = await lanctl('deploy', 'resume', cut);
    t.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    view = await list();
    t.equal(view.nodes.find((n) => n.name === 'c2')?.boot, gen2, 'resume finished: c2 boots N');
    t.equal(readFileSync(join(roots[1]!, 'big')).length, 3 << 20);
    t.equal(readFileSync(join(roots[1]!, 'aaa'), 'utf8'), 'generation 2\n');
    t.notOk(existsSync(join(roots[1]!, 'usr/bin/tool49')), 'the resume deleted what N dropped');
    t.same(execFileSync('find', [roots[1]!, '-name', '.~tmp~'], { encoding: 'utf8' }), '', 'and left no holding directory');

    // Ctrl-C on `lanctl deploy`: the daemon ends the rsync children; the job is interrupted.
    await lab.execSwitch('tc', ['qdisc', 'add', 'dev', lab.bridgePort(1), 'root', 'tbf', 'rate', '8mbit', 'burst', '32kbit', 'latency', '400ms']);
    const cli = spawn(process.execPath, [LANCTL, 'deploy', 'rootfs', '--to', 'c1', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    cli.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    for (let i = 0; i < 100 && !/c1\s+running/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
    cli.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => cli.once('exit', (c) => resolve(c)));
    t.equal(code, 1, out);
    t.match(out, /job \S+: interrupted/);
    const interrupted = await job(jobId(out));
    t.equal(interrupted.state, 'interrupted');
    t.equal(interrupted.nodes[0]!.state, 'interrupted');
    const ps = execFileSync('ps', ['-eo', 'ppid,comm'], { encoding: 'utf8' });
    t.notOk(ps.split('\n').some((l) => l.trim().startsWith(`${daemon.child.pid} `) && l.includes('rsync')), 'no rsync child left under the daemon');

    // A detached job (its CLI gone) is stopped with lanctl deploy cancel. c1's link is made slower still:
    // the run Ctrl-C stopped left part of the tree in place, and on a loaded machine the rest went over
    // at 8 Mbit/s before the cancel came (the job had ended: done).
    await lab.execSwitch('tc', ['qdisc', 'change', 'dev', lab.bridgePort(1), 'root', 'tbf', 'rate', '256kbit', 'burst', '32kbit', 'latency', '400ms']);
    const detached = await lanctl('deploy', 'rootfs', '--to', 'c1', '--detach', '--json');
    const detachedId = (JSON.parse(detached.stdout) as { job: string }).job;
    for (let i = 0; i < 100 && (await job(detachedId)).nodes[0]!.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 100));
    const cancel = await lanctl('deploy', 'cancel', detachedId);
    t.equal(cancel.code, 0, cancel.stderr);
    t.match(cancel.stdout, new RegExp(`c1\\s+interrupted[\\s\\S]*job ${detachedId}: interrupted — \`lanctl deploy resume ${detachedId}\` completes it`));
    t.equal((await job(detachedId)).state, 'interrupted', 'the log shows it stopped');
    // Not rsync's "exit 20: stopped by a signal", which only said that the daemon ended its child.
    t.match((await job(detachedId)).nodes[0]!.error ?? '', /^the job was stopped \(`lanctl deploy cancel`, or Ctrl-C on the lanctl following it\) while c1 was syncing: its rsync was ended, and the node keeps its previous generation whole/);
    const again = await lanctl('deploy', 'cancel', detachedId);
    t.equal(again.code, 1);
    t.match(again.stderr, `job ${detachedId} already ended: interrupted`);
    const unknown = await lanctl('deploy', 'cancel', 'nope');
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, 'no deploy job nope (lanctl deploy jobs lists them)');
    t.equal((await lanctl('deploy', 'cancel')).code, 2, 'no JOB: usage');
    t.ok(lab.resolvConfUnchanged());
  });
});
