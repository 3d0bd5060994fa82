// `lanctl demo --once --json` as root: the namespace lab (lhd*) passes every check (leases from
// dhclient, dig on the VIP and both nodes, TFTP/NTP on the VIP, failover and kill -9 with no ACKed
// lease lost, rejoin), and afterwards no lhd- namespace or link is left (test labs are lh + hex).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { runLanctl } from '../support/daemon.js';
import { requireLab } from '../support/netns.js';

function lhd(): string[] {
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith('lhd-'));
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n.startsWith('lhd-'));
  return [...ns, ...links];
}

// A loaded 2-core machine (several test runs at once) needs more than the default 120 s per file.
t.setTimeout(300_000);

t.test('lanctl demo builds the rack, fails over, and leaves nothing behind', async (t) => {
  if (!requireLab(t, ['dhclient', 'dig'])) return;
  t.same(lhd(), [], 'no demo lab before');
  const r = await runLanctl(['demo', '--once', '--json'], { timeoutMs: 180_000 });
  let out: { ok: boolean; mode: string; steps: Array<{ step: string; ok: boolean; detail: string }>; gaps: Record<string, Array<{ protocol: string; gapMs: number }>> } | null = null;
  try { out = JSON.parse(r.stdout); } catch { /* shown below */ }
  t.equal(r.code, 0, `exit 0: ${r.stdout.slice(-3000)}${r.stderr.slice(-2000)}`);
  t.equal(out?.mode, 'lab');
  t.ok(out?.steps.every((s) => s.ok), 'every step passed');
  t.same(Object.keys(out?.gaps ?? {}).sort(), ['failover', 'kill9']);
  t.same(out?.gaps['failover']?.map((g) => g.protocol), ['dns', 'ntp', 'tftp', 'dhcp']);
  // The kernel removes a deleted namespace's veth peers a moment after `ip netns del` returns.
  let left = lhd();
  for (let i = 0; i < 50 && left.length > 0; i++) { await new Promise((r) => setTimeout(r, 100)); left = lhd(); }
  t.same(left, [], 'no lhd- namespace or link afterwards (within 5 s)');
});
