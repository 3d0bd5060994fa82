// A node with several host keys (a stock Debian sshd has RSA, ECDSA and Ed25519 keys) whose pinned
// key is not the Ed25519 one (pasted from `ssh-keyscan` into deploy.hostKeys, or a node that had only
// that key when it was trusted): ssh2 negotiates the key type it prefers, Ed25519, so `lanctl deploy
// push` failed with "host key mismatch" and `lanctl nodes trust` called the key changed, while rsync
// over OpenSSH (which asks for the types it knows for the host) worked. Every ssh2 connection now asks
// for the pinned key's type; real sshd in namespaces.
import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withDeployLab } from '../support/deploy-lab.js';

t.setTimeout(600_000);

t.test('an ECDSA or RSA pinned key on a node that also has an Ed25519 one', async (t) => {
  const nodes = ['c1', 'c2'];
  await withDeployLab(t, { subnet: 95, nodes, tools: ['ssh', 'rsync', 'sha256sum'], name: 'lanha-hostkey-types-' }, async (d) => {
    const roots: Record<string, string> = {};
    for (const n of nodes) { roots[n] = join(d.dir, `root-${n}`); mkdirSync(roots[n]!, { recursive: true }); }
    const s1 = await d.sshd('c1', { root: roots.c1!, moreHostKeyTypes: ['rsa', 'ecdsa'] });
    const s2 = await d.sshd('c2', { root: roots.c2!, moreHostKeyTypes: ['rsa', 'ecdsa'] });
    await d.serve(`  pushRoot: /srv/root\n  hostKeys:\n    c1: "${s1.moreHostKeys['ecdsa']}"\n    c2: "${s2.moreHostKeys['rsa']}"\n  rootfs: { destination: /srv/root }\n`);
    const file = join(d.dir, 'motd');
    writeFileSync(file, 'pushed\n');

    for (const node of nodes) {
      const push = await d.lanctl('deploy', 'push', file, '--to', node, '--dest', '/srv/root');
      t.equal(push.code, 0, `${node}: the push logs in with the pinned key's type: ${push.stdout}${push.stderr}`);
      t.equal(readFileSync(join(roots[node]!, 'motd'), 'utf8'), 'pushed\n');
      const trust = await d.lanctl('nodes', 'trust', node, '--yes');
      t.equal(trust.code, 0, `${node}: trust finds the pinned key: ${trust.stdout}${trust.stderr}`);
      t.match(trust.stdout, /already pinned/);
    }

    // rsync over OpenSSH, twice: the second job checks the kept connection's key, of the pinned type.
    const tree = join(d.dir, 'tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'v'), '1\n');
    t.equal((await d.lanctl('rootfs', 'commit', tree)).code, 0);
    for (const run of [1, 2]) {
      const r = await d.lanctl('deploy', 'rootfs', '--to', 'c1,c2');
      t.equal(r.code, 0, `rootfs deploy ${run}: ${r.stdout}${r.stderr}`);
    }
    t.ok(d.lab.resolvConfUnchanged());
  });
});
