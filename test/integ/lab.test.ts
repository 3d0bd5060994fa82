import t from 'tap';
import { execFileSync } from 'node:child_process';
import { requireLab, withLab } from '../support/netns.js';

// The namespace lab itself: hosts on one bridge reach each other, names carry the lh prefix, each
// host has its own resolv.conf, and everything is gone afterwards.
t.test('lab hosts talk over the bridge and are cleaned up', async (t) => {
  if (!requireLab(t, ['ping'])) return;
  let names: string[] = [];
  await withLab(async (lab) => {
    const a = await lab.addHost('a', '10.199.0.1/24');
    const b = await lab.addHost('b', '10.199.0.2/24');
    names = [lab.switchNs, a.ns, b.ns];
    for (const n of names) t.match(n, /^lh/, `${n} has the lh prefix`);
    const ping = await a.exec('ping', ['-c', '1', '-W', '2', '10.199.0.2']);
    t.equal(ping.code, 0, `a reaches b: ${ping.stderr}`);
    const resolv = await a.exec('cat', ['/etc/resolv.conf']);
    t.match(resolv.stdout, 'lanha test lab', 'the namespace sees its own resolv.conf');
    const child = b.spawn('sleep', ['30']);
    t.ok(child.pid, 'a process started in b');
    t.ok(lab.resolvConfUnchanged(), 'host resolv.conf untouched');
  });
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of names) t.notMatch(left, n, `${n} deleted`);
});
