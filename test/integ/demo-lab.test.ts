// `lanctl demo --once --json` as root: the namespace lab (lhd*) passes every check (leases from
// dhclient, dig on the VIP and both nodes, TFTP/NTP on the VIP, failover and kill -9 with no ACKed
// lease lost, rejoin), and afterwards no lhd- namespace or link is left (test labs are lh + hex).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
  let out: {
    ok: boolean; mode: string; logs?: string | null; steps: Array<{ step: string; ok: boolean; detail: string }>; gaps: Record<string, Array<{ protocol: string; gapMs: number }>>;
    daemonView: { node: string; gaps: Array<{ protocol: string; method: string; seconds: number }>; ackAudit: { lostTotal: number; lastAudit: { checked: number; lost: number } | null } } | null;
    electionView: { node: string; gaps: Array<{ protocol: string; method: string; seconds: number }> } | null;
    rejoinAudit: { node: string; ackAudit: { lostTotal: number; lastAudit: { checked: number; lost: number } | null } } | null;
  } | null = null;
  try { out = JSON.parse(r.stdout); } catch { /* shown below */ }
  t.equal(r.code, 0, `exit 0: ${r.stdout.slice(-3000)}${r.stderr.slice(-2000)}`);
  // A failed demo keeps the members' logs: show their leadership and VIP events, so a failure in CI
  // can be read without a rerun.
  if (out?.logs) {
    for (const f of readdirSync(out.logs)) {
      const lines = readFileSync(join(out.logs, f), 'utf8').split('\n').filter((l) => /"event":"(raft\.|vip\.(guard|takeover|released|acquire|failover)|daemon\.)/.test(l) || l.startsWith('---'));
      t.comment(`${f}:\n${lines.slice(-60).map((l) => l.slice(0, 400)).join('\n')}`);
    }
  }
  t.equal(out?.mode, 'lab');
  t.ok(out?.steps.every((s) => s.ok), 'every step passed');
  t.same(Object.keys(out?.gaps ?? {}).sort(), ['failover', 'kill9']);
  t.same(out?.gaps['failover']?.map((g) => g.protocol), ['dns', 'ntp', 'tftp', 'dhcp']);
  // The old holder's own view of the same failover: its probes of the VIP and the audit of its ACKs.
  const view = out?.daemonView;
  t.same(view?.gaps.filter((g) => g.method === 'probe').map((g) => g.protocol).sort(), ['dns', 'ntp', 'tftp', 'vip'], 'the old holder probed DNS, NTP and TFTP on the VIP');
  t.ok(view?.gaps.every((g) => g.seconds >= 0 && g.seconds < 10), `probed gaps within the window: ${JSON.stringify(view?.gaps.map((g) => [g.protocol, g.method, g.seconds]))}`);
  t.equal(view?.gaps.find((g) => g.protocol === 'dhcp')?.method, 'derived', 'DHCP stays derived');
  t.equal(view?.ackAudit.lostTotal, 0, 'the ACK audit: none lost');
  t.ok((view?.ackAudit.lastAudit?.checked ?? 0) >= 2, `the audit checked the leases it ACKed (${view?.ackAudit.lastAudit?.checked})`);
  // After the kill -9 the survivor probed its own VIP from the moment it stopped following the dead leader.
  t.same(out?.electionView?.gaps.filter((g) => g.method === 'probe').map((g) => g.protocol).sort(), ['dns', 'ntp', 'tftp', 'vip'], `the survivor's election gaps are probed: ${JSON.stringify(out?.electionView?.gaps.map((g) => [g.protocol, g.method, g.seconds]))}`);
  // The node killed with kill -9 audits, after it rejoined, the leases it ACKed before it died (its journal).
  t.equal(out?.rejoinAudit?.ackAudit.lostTotal, 0, `${out?.rejoinAudit?.node}: none lost after kill -9 and rejoin`);
  t.ok((out?.rejoinAudit?.ackAudit.lastAudit?.checked ?? 0) >= 1, `it checked the ACKs it sent before the kill (${out?.rejoinAudit?.ackAudit.lastAudit?.checked})`);
  // The kernel removes a deleted namespace's veth peers a moment after `ip netns del` returns.
  let left = lhd();
  for (let i = 0; i < 50 && left.length > 0; i++) { await new Promise((r) => setTimeout(r, 100)); left = lhd(); }
  t.same(left, [], 'no lhd- namespace or link afterwards (within 5 s)');
});
