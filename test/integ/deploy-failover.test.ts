// A deploy job survives the loss of its leader: two LAN members and a witness in namespaces, each LAN
// member with its own generation store (same stateDir path, its own directory) and an sshd; a compute
// node with an sshd. A commit on the leader reaches the other member (rootfs.verified there); then the
// leader is killed (the daemon and its rsync/ssh children, as a crash would) mid-transfer; the new
// leader shows the job `interrupted`, and `lanctl deploy resume` on it completes the node from its own
// verified copy. Then the new leader is cut off from the cluster mid-job: the member that lost the
// lead stops its rsync, and the resume on the member that took it completes the node.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { requireLab, withLab, type LabHost } from '../support/netns.js';
import { runLanctl, serveDaemon, type ServedDaemon } from '../support/daemon.js';
import { LANCTL } from '../support/paths.js';
import { callDaemonOk } from '../../lib/control-client.js';
import { descendants, makeKey, startSshd } from '../support/node-sshd.js';

// Many lanctl runs and real ssh transfers: far over tap's default per-file limit on a loaded 2-core box.
t.setTimeout(600_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('leader killed mid-deploy, the new leader resumes the job', async (t) => {
  if (!requireLab(t, ['sshd', 'ssh', 'ssh-keygen', 'rsync', 'tc'])) return;
  const dir = mkdtempSync(join(tmpdir(), 'lanha-deploy-failover-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withLab(async (lab) => {
    const a = await lab.addHost('a', '10.80.0.2/24');
    const b = await lab.addHost('b', '10.80.0.3/24');
    const w = await lab.addHost('w', '10.80.0.9/24');
    const c1 = await lab.addHost('c1', '10.80.0.11/24');
    writeFileSync(join(dir, 'cluster.key'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const key = join(dir, 'deploy_ed25519');
    const pub = makeKey(key);
    const servers: Array<{ name: string; host: LabHost; real: string; socket: string; config: string; daemon?: ServedDaemon; hostKey?: string }> = [
      { name: 'lan-a', host: a, real: join(dir, 'state-a'), socket: join(dir, 'lan-a.sock'), config: join(dir, 'lan-a.yaml') },
      { name: 'lan-b', host: b, real: join(dir, 'state-b'), socket: join(dir, 'lan-b.sock'), config: join(dir, 'lan-b.yaml') },
    ];
    for (const s of servers) {
      mkdirSync(s.real, { recursive: true });
      // Both members keep their store at /srv/lanha (the peer copy goes to the same path there).
      s.hostKey = (await startSshd(lab, s.host, join(dir, `sshd-${s.name}`), { authorizedKeys: [pub], binds: [{ source: s.real, target: '/srv/lanha' }] })).hostKey;
    }
    const root = join(dir, 'root-c1');
    mkdirSync(root);
    const node = await startSshd(lab, c1, join(dir, 'sshd-c1'), { root, authorizedKeys: [pub] });
    const members = `cluster:
  id: deploy-failover
  keyFile: ${dir}/cluster.key
  electionTimeout: 1500ms
  members:
    - { name: lan-a, address: 10.80.0.2, port: 7400, role: server }
    - { name: lan-b, address: 10.80.0.3, port: 7400, role: server }
    - { name: witness, address: 10.80.0.9, port: 7400, role: witness }
`;
    for (const s of servers) {
      writeFileSync(s.config, `node: { name: ${s.name}, role: server, address: ${s.host.address}, stateDir: /srv/lanha, controlSocket: ${s.socket} }
${members}deploy:
  user: root
  identityFile: ${key}
  targets:
    - { name: lan-a, host: 10.80.0.2 }
    - { name: lan-b, host: 10.80.0.3 }
    - { name: c1, host: 10.80.0.11 }
  hostKeys:
    lan-a: "${servers[0]!.hostKey}"
    lan-b: "${servers[1]!.hostKey}"
    c1: "${node.hostKey}"
  rootfs: { destination: /srv/root }
`);
    }
    const witnessConfig = join(dir, 'witness.yaml');
    writeFileSync(witnessConfig, `node: { name: witness, role: witness, address: 10.80.0.9, stateDir: ${dir}/state-w, controlSocket: ${dir}/witness.sock }\n${members}`);
    const serve = async (host: LabHost, config: string, real?: string): Promise<ServedDaemon> => {
      const script = real === undefined ? `exec "${process.execPath}" "${LANCTL}" "$@"`
        : `set -e; mount -t tmpfs tmpfs /srv; mkdir /srv/lanha; mount --bind '${real}' /srv/lanha; exec "${process.execPath}" "${LANCTL}" "$@"`;
      const d = await serveDaemon(config, { command: ['ip', 'netns', 'exec', host.ns, 'sh', '-c', script, 'sh'], timeoutMs: 60_000 });
      lab.track(d.child);
      return d;
    };
    const witness = await serve(w, witnessConfig);
    t.teardown(() => witness.stop());
    for (const s of servers) s.daemon = await serve(s.host, s.config, s.real);

    const role = async (socket: string): Promise<string> => {
      try {
        return ((await callDaemonOk(socket, 'GET', '/v1/status')) as { cluster: { role: string } }).cluster.role;
      } catch { return 'down'; }
    };
    let leader: (typeof servers)[number] | undefined;
    for (let i = 0; i < 100 && !leader; i++) {
      for (const s of servers) if (await role(s.socket) === 'leader') leader = s;
      if (!leader) await sleep(200);
    }
    t.ok(leader, 'a LAN member leads');
    const follower = servers.find((s) => s !== leader)!;
    // "No leader is known right now; try again in a second" is the documented transient answer while a
    // loaded machine delays heartbeats past the leader lease: do what it says, a few times.
    const lanctl = async (socket: string, ...args: string[]) => {
      for (let i = 0; ; i++) {
        const r = await runLanctl([...args, '--socket', socket], { timeoutMs: 120_000 });
        if (r.code === 0 || i === 10 || !/no leader is known right now/.test(r.stderr)) return r;
        await sleep(1000);
      }
    };

    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc/motd'), 'failover\n');
    // Generation N-1 first, on c1: what it keeps booting while N is cut off.
    const first = await lanctl(leader!.socket, 'rootfs', 'commit', tree, '--json');
    const gen0 = (JSON.parse(first.stdout) as { generation: string }).generation;
    t.equal((await lanctl(leader!.socket, 'deploy', 'rootfs', '--to', 'c1')).code, 0);
    writeFileSync(join(tree, 'big'), randomBytes(3 << 20));
    const commit = await lanctl(leader!.socket, 'rootfs', 'commit', tree, '--json');
    t.equal(commit.code, 0, commit.stderr);
    const gen = (JSON.parse(commit.stdout) as { generation: string }).generation;
    let verifiedOn: string[] = [];
    for (let i = 0; i < 150 && !verifiedOn.includes(follower.name); i++) {
      const list = JSON.parse((await lanctl(leader!.socket, 'rootfs', 'list', '--json')).stdout) as { generations: Array<{ id: string; verifiedOn: string[] }> };
      verifiedOn = list.generations.find((g) => g.id === gen)?.verifiedOn ?? [];
      if (!verifiedOn.includes(follower.name)) await sleep(200);
    }
    t.same(verifiedOn, ['lan-a', 'lan-b'], 'the leader copied the generation to the other member, which is verified');
    t.equal(readFileSync(join(follower.real, 'rootfs', gen, 'big')).length, 3 << 20, 'the copy is in the follower\'s own store');

    const port = lab.bridgePort(3);
    t.equal((await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port, 'root', 'tbf', 'rate', '8mbit', 'burst', '32kbit', 'latency', '400ms'])).code, 0);
    const started = await lanctl(leader!.socket, 'deploy', 'rootfs', '--to', 'c1', '--detach');
    t.equal(started.code, 0, started.stderr);
    const job = /^job (\S+)$/m.exec(started.stdout)![1]!;
    for (let i = 0; i < 150; i++) {
      const live = (await callDaemonOk(leader!.socket, 'GET', `/v1/deploy/jobs?job=${job}`)) as { live: Array<{ progress?: { bytes: number } }> };
      if ((live.live[0]?.progress?.bytes ?? 0) > 300_000) break;
      await sleep(100);
    }
    // The leader "crashes": its daemon and every rsync/ssh it started die at once.
    const pid = leader!.daemon!.child.pid!;
    for (const p of [pid, ...descendants(pid)]) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }

    let state = '';
    for (let i = 0; i < 150 && state !== 'interrupted'; i++) {
      const r = await lanctl(follower.socket, 'deploy', 'jobs', job, '--json');
      if (r.code === 0) state = (JSON.parse(r.stdout) as { state: string }).state;
      if (state !== 'interrupted') await sleep(200);
    }
    t.equal(state, 'interrupted', 'the new leader shows the cut-off job interrupted');
    t.equal(await role(follower.socket), 'leader');
    const before = JSON.parse((await lanctl(follower.socket, 'rootfs', 'list', '--json')).stdout) as { nodes: Array<{ name: string; boot: string | null }> };
    t.equal(before.nodes.find((n) => n.name === 'c1')?.boot, gen0, 'c1 keeps booting N-1, not the half-synced N');

    await lab.execSwitch('tc', ['qdisc', 'del', 'dev', port, 'root']);
    const resumed = await lanctl(follower.socket, 'deploy', 'resume', job);
    t.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    t.match(resumed.stdout, /c1\s+done/);
    t.ok(readFileSync(join(root, 'big')).equals(readFileSync(join(tree, 'big'))), 'c1 holds the generation, from the new leader\'s copy');
    const after = JSON.parse((await lanctl(follower.socket, 'rootfs', 'list', '--json')).stdout) as { nodes: Array<{ name: string; boot: string | null }> };
    t.equal(after.nodes.find((n) => n.name === 'c1')?.boot, gen);
    const final = JSON.parse((await lanctl(follower.socket, 'deploy', 'jobs', job, '--json')).stdout) as { state: string; member: string };
    t.same([final.state, final.member], ['done', follower.name]);

    // The leader cut off from the cluster mid-job (its link down past the election timeout; the
    // compute node sits on another port): the other member takes the lead, and the member that lost
    // it stops its rsync instead of syncing on, once its link is back, beside the new leader's resume.
    const back = leader!;
    back.daemon = await serve(back.host, back.config, back.real);
    for (let i = 0; i < 150 && await role(back.socket) !== 'follower'; i++) await sleep(200);
    writeFileSync(join(tree, 'big2'), randomBytes(8 << 20));
    const commit3 = await lanctl(follower.socket, 'rootfs', 'commit', tree, '--json');
    t.equal(commit3.code, 0, commit3.stderr);
    const gen3 = (JSON.parse(commit3.stdout) as { generation: string }).generation;
    for (let i = 0; i < 150; i++) {
      const list = JSON.parse((await lanctl(follower.socket, 'rootfs', 'list', '--json')).stdout) as { generations: Array<{ id: string; verifiedOn: string[] }> };
      if (list.generations.find((g) => g.id === gen3)?.verifiedOn.includes(back.name)) break;
      await sleep(200);
    }
    t.equal((await lab.execSwitch('tc', ['qdisc', 'add', 'dev', port, 'root', 'tbf', 'rate', '8mbit', 'burst', '32kbit', 'latency', '400ms'])).code, 0);
    const job3 = /^job (\S+)$/m.exec((await lanctl(follower.socket, 'deploy', 'rootfs', '--to', 'c1', '--detach')).stdout)![1]!;
    for (let i = 0; i < 150; i++) {
      const live = (await callDaemonOk(follower.socket, 'GET', `/v1/deploy/jobs?job=${job3}`)) as { live: Array<{ progress?: { bytes: number } }> };
      if ((live.live[0]?.progress?.bytes ?? 0) > 300_000) break;
      await sleep(100);
    }
    const rsyncs = (): number[] => descendants(follower.daemon!.child.pid!).filter((p) => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'rsync'; } catch { return false; } });
    t.ok(rsyncs().length > 0, 'the job\'s rsync runs on the leader');
    // The leader's own port, not c1's: its rsync to c1 goes over its veth to the bridge, so the cut
    // isolates it from the cluster and from c1 both (the rsync stalls, short of ssh's 20 s limit).
    const leaderPort = lab.bridgePort(servers.indexOf(follower));
    t.equal((await lab.execSwitch('ip', ['link', 'set', 'dev', leaderPort, 'down'])).code, 0);
    for (let i = 0; i < 100 && await role(back.socket) !== 'leader'; i++) await sleep(100);
    t.equal(await role(back.socket), 'leader', 'the other member took the lead');
    for (let i = 0; i < 100 && await role(follower.socket) === 'leader'; i++) await sleep(100);
    for (let i = 0; i < 30 && rsyncs().length > 0; i++) await sleep(100);
    t.same(rsyncs(), [], 'the member that lost the lead stopped its rsync within 3 s of stepping down');
    t.equal((await lab.execSwitch('ip', ['link', 'set', 'dev', leaderPort, 'up'])).code, 0);
    let state3 = '';
    for (let i = 0; i < 100 && state3 !== 'interrupted'; i++) {
      state3 = (JSON.parse((await lanctl(back.socket, 'deploy', 'jobs', job3, '--json')).stdout) as { state: string }).state;
      if (state3 !== 'interrupted') await sleep(200);
    }
    t.equal(state3, 'interrupted', 'the new leader shows the job interrupted');
    await lab.execSwitch('tc', ['qdisc', 'del', 'dev', port, 'root']);
    const resumed3 = await lanctl(back.socket, 'deploy', 'resume', job3);
    t.equal(resumed3.code, 0, resumed3.stderr + resumed3.stdout);
    t.ok(readFileSync(join(root, 'big2')).equals(readFileSync(join(tree, 'big2'))), 'the resume on the new leader completes c1');
    await back.daemon!.stop();
    await follower.daemon!.stop();
    t.ok(lab.resolvConfUnchanged());
  });
});
