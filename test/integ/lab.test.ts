import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

// A lab left by a test process that never reached its finally: tap ends a timed-out test with
// process exit (the exit hook removes the lab), and a SIGKILL leaves it for the next withLab's sweep.
t.test('a lab is removed when its process exits without destroy(), and swept when it was killed', async (t) => {
  if (!requireLab(t, ['sleep'])) return;
  const netnsJs = new URL('../../lib/netns.js', import.meta.url).href;
  const child = (end: string): { stdout: string } => {
    // The child makes a lab with one host and a process in it, prints the names, then ends as told.
    const script = `const { Lab } = await import(${JSON.stringify(netnsJs)});
const lab = await Lab.create();
const h = await lab.addHost('x', '10.198.0.1/24');
h.spawn('sleep', ['60']);
process.stdout.write(JSON.stringify([lab.switchNs, h.ns]) + '\\n', () => { ${end} });`;
    return { stdout: execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 }) };
  };
  const listed = (): string => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

  const exited = JSON.parse(child('process.exit(0);').stdout) as string[];
  for (const n of exited) t.notMatch(listed(), n, `${n} deleted by the exit hook`);

  let killed: string[] = [];
  try {
    child('process.kill(process.pid, "SIGKILL");');
  } catch (error) {
    killed = JSON.parse(String((error as { stdout?: string }).stdout).trim()) as string[];
  }
  t.equal(killed.length, 2, `the killed child made ${killed.join(', ')}`);
  for (const n of killed) t.match(listed(), n, `${n} still there after the SIGKILL`);
  await withLab(async () => undefined); // its sweep
  for (const n of killed) t.notMatch(listed(), n, `${n} swept by the next withLab`);
  t.notOk(existsSync(`/etc/netns/${killed[0]}`), 'and its /etc/netns directory');
});
