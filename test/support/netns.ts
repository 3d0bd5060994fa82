import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { deleteNamespace, isRoot, which } from '../../lib/netns.js';

// The lab itself lives in lib/netns.ts (`lanctl demo` builds its rack with it); this adds what only
// tests need: whether a lab test can run here, and the loud skip (or CI failure) when it cannot.

export { Lab, deleteNamespace, isRoot, stopChild, which, withLab, type ExecResult, type LabHost } from '../../lib/netns.js';

/**
 * Why a lab test cannot run here, or null when it can. In CI (CI=true, root, tools installed by
 * .ci/run) a missing tool is an error, not a skip: the caller should fail.
 */
export function labUnavailable(tools: readonly string[] = []): string | null {
  if (process.platform !== 'linux') return 'network-namespace tests need Linux';
  if (!isRoot()) return 'network-namespace tests need root (run `sudo npm test`, or let CI run them)';
  // A tool is a command looked up in PATH, or an absolute path (daemons such as systemd-networkd live outside PATH).
  const missing = ['ip', ...tools].filter((t) => (t.startsWith('/') ? !existsSync(t) : !which(t)));
  if (missing.length > 0) return `missing tools: ${missing.join(', ')} (apt-get install them; .ci/run does)`;
  return null;
}

interface TapLike {
  // tap's own signatures are overloaded; these are the calls made here.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  skip: (...args: any[]) => unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  fail: (...args: any[]) => unknown;
}

/**
 * For the top of a lab test: returns true when the test can run. Otherwise it skips loudly, or fails
 * under CI where every tool must be present.
 */
export function requireLab(t: TapLike, tools: readonly string[] = []): boolean {
  const reason = labUnavailable(tools);
  if (reason === null) return true;
  if (process.env['CI'] === 'true' && isRoot()) {
    t.fail(`CI must run this test but cannot: ${reason}`);
  } else {
    process.stderr.write(`\n*** SKIPPED lab test: ${reason}\n`);
    t.skip(`SKIPPED: ${reason}`);
  }
  return false;
}

/**
 * A network namespace of the test's own, with its own resolv.conf, `lo` up and a veth pair inside
 * it (`iface` and `peer`, both up, gone with the namespace); deleted, with the resolv.conf, at
 * the test's teardown. One left by an earlier run is deleted first; one already gone at the
 * teardown is quietly nothing to do; one that cannot be deleted fails the test.
 */
export function vethNamespace(t: { teardown(fn: () => void): void }, ns: string, iface: string, peer: string): void {
  const ip = (args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  deleteNamespace(ns);
  ip(['netns', 'add', ns]);
  t.teardown(() => {
    try { deleteNamespace(ns); } finally { rmSync(`/etc/netns/${ns}`, { recursive: true, force: true }); }
  });
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/resolv.conf`, 'nameserver 127.0.0.1\n');
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  ip(['-n', ns, 'link', 'add', iface, 'type', 'veth', 'peer', 'name', peer]);
  ip(['-n', ns, 'link', 'set', iface, 'up']);
  ip(['-n', ns, 'link', 'set', peer, 'up']);
}
