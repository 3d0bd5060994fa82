// A node that goes silent mid-transfer (its link taken down: no FIN, no RST, nothing) behind a slow
// link: both the push (ssh2) and the rootfs sync (rsync over the node's ssh master) notice it after
// the keepalive limit, 5 s keepalives with 3 unanswered (20 s), not at the 60 s step or rsync
// timeout, and the node's result says that the connection went silent and for how long; with the
// link back, a resume completes each job. Then the daemon is killed with its ssh master to the node
// up: the master outlives it, and the next daemon start ends it through its control socket.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab, type NodeView } from '../support/deploy-lab.js';
import { callDaemonOk } from '../../lib/control-client.js';

t.setTimeout(480_000);

/** The PID `ssh -O check` reports for the master behind `socket`, or undefined when none answers. */
function masterPid(socket: string): number | undefined {
  const r = spawnSync('ssh', ['-O', 'check', '-o', `ControlPath=${socket}`, 'lanha-test'], { encoding: 'utf8' });
  const m = /Master running \(pid=(\d+)\)/.exec(`${r.stdout}${r.stderr}`);
  return r.status === 0 && m ? Number(m[1]) : undefined;
}

/** True while `pid` runs (a zombie waiting for its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

t.test('a node gone silent mid-transfer: push and rootfs sync say so after the keepalive limit', async (t) => {
  await withDeployLab(t, { subnet: 84, nodes: ['c1'], tools: ['ssh', 'rsync', 'sha256sum', 'tc'], name: 'lanha-silent-node-' }, async (d) => {
    const root = join(d.dir, 'root-c1');
    mkdirSync(root, { recursive: true });
    const sshd = await d.sshd('c1', { root });
    const deployLines = `  pushRoot: /srv/root
  hostKeys:
    c1: "${sshd.hostKey}"
  rootfs: { destination: /srv/root }
`;
    let daemon = await d.serve(deployLines);

    /** Slows c1's link, starts a job with `start`, takes the link down 200 KB into the transfer, and returns c1's result; the link is back after. */
    const silencedMidway = async (start: string[]): Promise<NodeView> => {
      await d.shape('c1', '1mbit', '400ms');
      const job = d.jobId((await d.lanctl(...start, '--to', 'c1', '--detach')).stdout);
      for (let i = 0; i < 150; i++) {
        const live = (await callDaemonOk(join(d.dir, 'lanha.sock'), 'GET', `/v1/deploy/jobs?job=${job}`)) as { live: Array<{ progress?: { bytes: number } }> };
        if ((live.live[0]?.progress?.bytes ?? 0) > 200_000) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await d.linkUp('c1', false);
      const view = await d.settle(job);
      process.stderr.write(`${start.join(' ')}: ${JSON.stringify(view.nodes)}\n`);
      await d.linkUp('c1', true);
      await d.unshape('c1');
      t.equal(view.nodes[0]!.state, 'failed');
      const resumed = await d.lanctl('deploy', 'resume', job);
      t.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
      return view.nodes[0]!;
    };

    // Push: the link goes down while the file is on the wire.
    const big = join(d.dir, 'big.bin');
    writeFileSync(big, randomBytes(2 << 20));
    const pushed = await silencedMidway(['deploy', 'push', big]);
    t.match(pushed.error, /^c1: the connection went silent for 20 s while writing \/srv\/root\/\.big\.bin\.lanha-[0-9a-f]{8} at \d+: nothing came back from the node, not even an answer to the ssh keepalives sent every 5 s/,
      'noticed by the keepalive limit (not the 60 s step bound), and the message says so');
    t.ok(readFileSync(join(root, 'big.bin')).equals(readFileSync(big)), 'the resumed push put the whole file in place');

    // rootfs: rsync over the node's ssh master; the master's keepalives notice, and the node's result says why rsync failed.
    const tree = join(d.dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'motd'), 'silent node\n');
    writeFileSync(join(tree, 'big'), randomBytes(3 << 20));
    t.equal((await d.lanctl('rootfs', 'commit', tree)).code, 0);
    const synced = await silencedMidway(['deploy', 'rootfs']);
    t.match(synced.error, /^the connection went silent for 20 s: nothing came back from the node, not even an answer to the ssh keepalives sent every 5 s .*\(rsync exit \d+\)/,
      'the master\'s keepalives noticed it (not rsync\'s 60 s timeout), and the result says so');
    t.ok(readFileSync(join(root, 'big')).equals(readFileSync(join(tree, 'big'))), 'the resumed sync put the tree in place');

    // The resumed sync left the node's ssh master up for the next job. A daemon killed now does not take it along.
    const sockets = join(d.dir, 'state', 'deploy', 'ssh');
    const socket = join(sockets, readdirSync(sockets)[0]!);
    const pid = masterPid(socket);
    t.ok(pid !== undefined, 'the node\'s ssh master is up');
    t.teardown(() => { if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGTERM'); });
    await daemon.stop('SIGKILL');
    t.equal(masterPid(socket), pid, 'it outlived the killed daemon');
    daemon = await d.serve(deployLines);
    for (let i = 0; i < 50 && pid !== undefined && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    t.notOk(pid !== undefined && alive(pid), 'the next daemon start ended it');
    t.notOk(existsSync(socket), 'and removed its control socket');
    t.match(daemon.logs(), /"event":"deploy\.ssh\.stale_master"/);
  });
});
