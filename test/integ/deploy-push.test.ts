// `lanctl deploy push` (ssh2 + SFTP) and `lanctl nodes trust` against real sshd servers in network
// namespaces: trust prints the fingerprint exactly as ssh-keygen -lf; files land whole (temp name,
// fsync, sha256, atomic rename) with their mode, and --then runs; a changed host key is refused by
// trust and by push, which sends nothing (sshd never sees a login); a destination escaping the push
// root or through a symlink is refused; a push cut off after its first file resumes with the rest only.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { withDeployLab } from '../support/deploy-lab.js';
import { makeKey } from '../support/node-sshd.js';
import { callDaemonOk } from '../../lib/control-client.js';

// Many lanctl runs and real ssh transfers: far over tap's default per-file limit on a loaded 2-core box.
t.setTimeout(600_000);

t.test('push and trust over ssh2 with pinned keys', async (t) => {
  await withDeployLab(t, { subnet: 78, nodes: ['c1'], tools: ['sha256sum', 'tc'], name: 'lanha-push-lab-' }, async (d) => {
    const { dir, lanctl } = d;
    const root = join(dir, 'root-c1');
    mkdirSync(join(root, 'opt'), { recursive: true });
    symlinkSync('/tmp', join(root, 'link'));
    let sshd = await d.sshd('c1', { root }, 'sshd1');
    const daemon = await d.serve('  pushRoot: /srv/root\n');
    const app = join(dir, 'app.bin');
    writeFileSync(app, randomBytes(300_000));
    chmodSync(app, 0o755);
    writeFileSync(join(dir, 'conf.txt'), 'v1\n');

    const unpinned = await lanctl('deploy', 'push', app, '--to', 'c1', '--dest', 'opt');
    t.equal(unpinned.code, 1);
    t.match(unpinned.stderr, /no pinned host key for c1: nothing was sent/);

    const trust = await lanctl('nodes', 'trust', 'c1', '--yes');
    t.equal(trust.code, 0, trust.stderr);
    const keygen = execFileSync('ssh-keygen', ['-lf', join(dir, 'sshd1', 'ssh_host_ed25519_key.pub')], { encoding: 'utf8' }).split(' ')[1]!;
    t.match(trust.stdout, `offers ssh-ed25519 ${keygen}\n`, 'the fingerprint as ssh-keygen -lf prints it');
    t.match(trust.stdout, `pinned ${keygen} for c1`);
    t.match((await lanctl('nodes', 'trust', 'c1', '--yes')).stdout, /already pinned/);

    const push = await lanctl('deploy', 'push', app, join(dir, 'conf.txt'), '--to', 'c1', '--dest', 'opt', '--then', 'cp /srv/root/opt/conf.txt /srv/root/then-ran');
    t.equal(push.code, 0, push.stderr + push.stdout);
    t.ok(readFileSync(join(root, 'opt/app.bin')).equals(readFileSync(app)), 'content');
    t.equal(statSync(join(root, 'opt/app.bin')).mode & 0o777, 0o755, 'mode');
    t.equal(readFileSync(join(root, 'then-ran'), 'utf8'), 'v1\n', '--then ran after the files were in place');
    t.same(readdirSync(join(root, 'opt')).sort(), ['app.bin', 'conf.txt'], 'no temporary file left');
    writeFileSync(join(dir, 'conf.txt'), 'v2\n');
    t.equal((await lanctl('deploy', 'push', join(dir, 'conf.txt'), '--to', 'c1', '--dest', '/srv/root/opt')).code, 0);
    t.equal(readFileSync(join(root, 'opt/conf.txt'), 'utf8'), 'v2\n', 'an existing file is replaced (posix-rename)');

    const escape = await lanctl('deploy', 'push', app, '--to', 'c1', '--dest', '../../etc');
    t.equal(escape.code, 1);
    t.match(escape.stderr, /escapes the push root \/srv\/root/);
    const viaLink = await lanctl('deploy', 'push', app, '--to', 'c1', '--dest', 'link');
    t.equal(viaLink.code, 1, viaLink.stdout);
    t.match(viaLink.stdout, /goes through a symlink/);
    t.notOk(existsSync('/tmp/app.bin') && statSync('/tmp/app.bin').size === 300_000 && readFileSync('/tmp/app.bin').equals(readFileSync(app)), 'nothing went through the symlink');

    // An interrupted push resumes with what was not sent: two files, the link slowed so the second
    // (4 MB) is cut off after the first is in place; resume sends only the second.
    const small = join(dir, 'a-first.txt');
    const big = join(dir, 'big.bin');
    writeFileSync(small, 'first\n');
    writeFileSync(big, randomBytes(4 << 20));
    await d.shape('c1', '4mbit', '400ms');
    const detached = await lanctl('deploy', 'push', small, big, '--to', 'c1', '--dest', 'opt', '--detach');
    t.equal(detached.code, 0, detached.stderr);
    const pushJob = d.jobId(detached.stdout);
    const jobView = () => d.view(pushJob);
    let view = await jobView();
    for (let i = 0; i < 300 && !(view.nodes[0]!.installed ?? []).includes('a-first.txt'); i++) { await new Promise((r) => setTimeout(r, 100)); view = await jobView(); }
    t.same(view.nodes[0]!.installed, ['a-first.txt'], 'the first file is in place and the log says so');
    const firstInode = statSync(join(root, 'opt/a-first.txt')).ino;
    await callDaemonOk(join(dir, 'lanha.sock'), 'POST', '/v1/deploy/cancel', { job: pushJob }, 60_000);
    view = await jobView();
    t.equal(view.state, 'interrupted', 'cancelled mid-way: the job is interrupted');
    t.notOk(existsSync(join(root, 'opt/big.bin')), 'the second file is not in place');
    await d.unshape('c1');
    const resumedPush = await lanctl('deploy', 'resume', pushJob);
    t.equal(resumedPush.code, 0, resumedPush.stderr + resumedPush.stdout);
    view = await jobView();
    t.equal(view.state, 'done');
    t.same(view.nodes[0]!.installed, ['a-first.txt', 'big.bin']);
    t.equal(statSync(join(root, 'opt/a-first.txt')).ino, firstInode, 'the file already in place was not sent again');
    t.ok(readFileSync(join(root, 'opt/big.bin')).equals(readFileSync(big)), 'the rest arrived whole');
    t.equal(view.nodes[0]!.sent, 4 << 20, 'the resumed run sent the second file only');
    t.same(readdirSync(join(root, 'opt')).filter((f) => f.includes('.lanha-')), [], 'no temporary file of the cut-off transfer left');
    t.equal((await lanctl('deploy', 'resume', pushJob)).code, 1, 'a done job is not resumed');

    // The node is "reinstalled": same address, new host key.
    await sshd.stop();
    const newKeyDir = join(dir, 'sshd2');
    mkdirSync(newKeyDir);
    makeKey(join(newKeyDir, 'ssh_host_ed25519_key'));
    sshd = await d.sshd('c1', { root, hostKeyFile: join(newKeyDir, 'ssh_host_ed25519_key') }, 'sshd2');
    const changed = await lanctl('nodes', 'trust', 'c1', '--yes');
    t.equal(changed.code, 1);
    t.match(changed.stderr, /host key of c1 CHANGED: pinned SHA256:\S+, offered SHA256:\S+\. Refused \(logged\)/);
    t.match(daemon.logs(), /"event":"deploy.hostkey.changed"/);
    writeFileSync(join(dir, 'conf.txt'), 'v3\n');
    const refused = await lanctl('deploy', 'push', join(dir, 'conf.txt'), '--to', 'c1', '--dest', 'opt');
    t.equal(refused.code, 1);
    t.match(refused.stdout, /c1\s+failed\s+host key mismatch on c1: it offered SHA256:\S+, the pinned key is SHA256:\S+; nothing was sent/);
    t.equal(readFileSync(join(root, 'opt/conf.txt'), 'utf8'), 'v2\n', 'nothing was sent');
    t.notMatch(sshd.log(), /Accepted publickey/, 'sshd never saw a login with the wrong key');

    t.equal((await lanctl('nodes', 'trust', 'c1', '--yes', '--replace')).code, 0);
    t.equal((await lanctl('deploy', 'push', join(dir, 'conf.txt'), '--to', 'c1', '--dest', 'opt')).code, 0);
    t.equal(readFileSync(join(root, 'opt/conf.txt'), 'utf8'), 'v3\n', 'after --replace the push goes through');
    t.match(sshd.log(), /Accepted publickey/);
    t.ok(d.lab.resolvConfUnchanged());
  });
});
