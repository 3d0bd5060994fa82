import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, requireLab, type LabHost } from '../support/netns.js';
import { LANCTL } from '../support/paths.js';
import { oldLanctl } from '../support/old-build.js';
import { runLanctl } from '../support/daemon.js';
import { callDaemon } from '../../lib/control-client.js';
import { FaultLab, sleep, type FaultOutcome } from './fault-lab.js';
import { VIP, type VipNode } from './vip-lab.js';
import { perfdhcpAcks } from './dhcp-lab.js';

// A rolling upgrade and a downgrade of a running cluster, as an operator does it: lan-a, lan-b and
// the witness start on the previous release (UPGRADE_FROM, built from git history), udhcpc clients
// acquire and renew throughout with perfdhcp beside them (60 MACs, DORA and renewals), and members are replaced one at a time on the same state
// directories: the witness (down until the leader's snapshot passed it, so it is caught up from a
// snapshot the other version sent), the follower, `lanctl failover` to it, the old leader; then
// back the same way. After each step the fault suite's checkers run (fault-lab.ts): no ACKed lease lost (the
// clients' view and each server's own ACK audit), no member exited, one VIP holder, every member at
// the same applied index and state hash; the DHCP gap of each step is printed. Without the release
// in git history (a shallow CI clone) or when its build fails, the test skips loudly; LANHA_UPGRADE_FROM
// may name a lanctl.js of any earlier build instead.

const UPGRADE_FROM = '488a078';
/** cluster.snapshotEntries of the lab: small, so that a member down for a step is caught up from a snapshot. */
const SNAPSHOT_ENTRIES = 300;
t.setTimeout(900_000);

/** The previous release's lanctl.js: built from `git archive` with this tree's node_modules, or null with why not. */
function previousLanctl(): { path: string | null; why: string; cleanup: () => void } {
  return oldLanctl(UPGRADE_FROM, process.env['LANHA_UPGRADE_FROM'], 'LANHA_UPGRADE_FROM');
}

async function stopMember(node: VipNode): Promise<void> {
  const child = node.daemon!.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

interface Row { step: string; versions: string; outcome: FaultOutcome; levels: string; terms: [number, number]; perf: { acks: number; missing: string[]; superseded: number } }

/** perfdhcp from `host` to the VIP: 60 client MACs, 20 DORA/s plus 10 renewals/s, for `seconds`; resolves with the (ip, mac) pairs it saw ACKed. */
function perfdhcp(host: LabHost, seconds: number): Promise<Array<{ ip: string; mac: string }>> {
  const perf = host.spawn('perfdhcp', ['-4', '-l', host.ifname, '-r', '20', '-f', '10', '-R', '60', '-p', String(seconds), '-x', 'l', VIP]);
  let out = '';
  perf.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  perf.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((resolve) => perf.once('exit', () => resolve(perfdhcpAcks(out))));
}

/**
 * perfdhcp's ACKs that no server holds: the address's lease (any state: expired and released ones
 * stay a week) must still name that MAC on both servers, unless another MAC holds the address now
 * (reused after the first one's lease ran out: counted apart, not lost).
 */
async function perfMissing(servers: readonly VipNode[], acks: ReadonlyArray<{ ip: string; mac: string }>): Promise<{ missing: string[]; superseded: number }> {
  const missing: string[] = [];
  let superseded = 0;
  for (const server of servers) {
    const r = await callDaemon(server.socket, 'GET', '/v1/leases?all=1', undefined, 5000).catch(() => null);
    const rows = (r?.body as { leases?: Array<{ ip: string; mac: string; state: string }> } | undefined)?.leases;
    if (rows === undefined) { missing.push(`${server.name}: no lease list`); continue; }
    const byIp = new Map(rows.map((l) => [l.ip, l]));
    for (const a of acks) {
      const row = byIp.get(a.ip);
      if (row?.mac === a.mac) continue;
      if (row !== undefined) superseded++;
      else missing.push(`${server.name}: ${a.ip} ${a.mac}`);
    }
  }
  return { missing, superseded };
}

t.test('rolling upgrade and downgrade under DHCP clients: no ACKed lease lost, no crash, one state', async (t) => {
  if (!requireLab(t, ['udhcpc', 'perfdhcp', 'dig', 'arping', 'git', 'tar'])) return;
  const old = previousLanctl();
  if (old.path === null || !existsSync(old.path)) {
    process.stderr.write(`\n*** SKIPPED upgrade test: ${old.why || `${old.path} does not exist`}\n`);
    t.pass(`SKIPPED: ${old.why}`);
    return;
  }
  const lab = await Lab.create('lhup');
  const rows: Row[] = [];
  let fl: FaultLab | undefined;
  try {
    fl = await FaultLab.create(lab, { electionTimeout: '1500ms', lanctl: old.path, snapshotEntries: SNAPSHOT_ENTRIES });
    const f = fl;
    const version = (n: VipNode): string => (n.lanctl === LANCTL ? 'new' : 'old');
    const levels = async (): Promise<string> => {
      const r = await callDaemon(f.c.servers[0]!.socket, 'GET', '/v1/status', undefined, 3000).catch(() => null);
      const members = (r?.body as { members?: Array<{ name: string; applyLevel?: number | null; reported: boolean }> } | undefined)?.members;
      return members?.map((m) => `${m.name}=${m.applyLevel === undefined ? 'n/a' : m.applyLevel ?? (m.reported ? '-' : '?')}`).join(' ') ?? 'no status';
    };
    const swap = (pick: (roles: { leader: VipNode; follower: VipNode }) => VipNode, to: string) => async (roles: { leader: VipNode; follower: VipNode }): Promise<void> => {
      const node = pick(roles);
      await stopMember(node);
      node.lanctl = to;
      await f.restart(node);
    };
    const failover = async (roles: { leader: VipNode; follower: VipNode }): Promise<string[]> => {
      const r = await runLanctl(['failover', '--to', roles.follower.name, '--socket', roles.leader.socket], { timeoutMs: 30_000 });
      return r.code === 0 ? [] : [`lanctl failover on ${roles.leader.name} (${version(roles.leader)}) to ${roles.follower.name} (${version(roles.follower)}) failed (${r.code}): ${r.stderr.trim().slice(0, 300)}`];
    };
    const steps: Array<[string, (roles: { leader: VipNode; follower: VipNode }) => Promise<void | string[]>]> = [];
    // The witness comes back behind the leader's snapshot: the leader sends it the snapshot, so one
    // version installs a snapshot the other sent (records set and deleted on the leader meanwhile:
    // an entry each, nothing left in the state).
    const swapBehindSnapshot = (to: string) => async (roles: { leader: VipNode; follower: VipNode }): Promise<string[]> => {
      const w = f.c.witness;
      const at = (await f.view(w))?.appliedIndex ?? 0;
      await stopMember(w);
      const snapshotIndex = async (): Promise<number> => ((await callDaemon(roles.leader.socket, 'GET', '/v1/status', undefined, 3000).catch(() => null))?.body as { cluster?: { snapshotIndex?: number } } | undefined)?.cluster?.snapshotIndex ?? 0;
      const end = performance.now() + 90_000;
      let written = 0;
      // Bounded: at most 4000 entries and 90 s. The leader keeps 1000 entries behind a snapshot.
      while (await snapshotIndex() <= at + 1000 + SNAPSHOT_ENTRIES && written < 4000 && performance.now() < end) {
        await Promise.all(Array.from({ length: 20 }, (_, i) => callDaemon(roles.leader.socket, 'POST', i % 2 === 0 ? '/v1/dns/records' : '/v1/dns/records/delete',
          i % 2 === 0 ? { name: 'churn.lab.test', type: 'A', data: '10.66.1.1' } : { name: 'churn.lab.test', type: 'A' }, 5000).catch(() => null)));
        written += 20;
      }
      const reached = await snapshotIndex();
      w.lanctl = to;
      await f.restart(w);
      return reached > at + 1000 ? [] : [`the leader's snapshot (${reached}) did not pass the witness's index ${at} by 1000 after ${written} entries: no snapshot install rehearsed`];
    };
    for (const [dir, to] of [['upgrade', LANCTL], ['downgrade', old.path]] as const) {
      steps.push([`${dir} witness (caught up from a snapshot)`, swapBehindSnapshot(to)]);
      steps.push([`${dir} follower`, swap((r) => r.follower, to)]);
      steps.push([`${dir}: failover to the follower`, failover]);
      steps.push([`${dir} the old leader`, swap((r) => r.follower, to)]);
    }
    const perfHost = await lab.addHost('pf', '10.66.0.11/24');
    const term = async (): Promise<number> => Math.max(...await Promise.all(f.c.servers.map(async (n) => (await f.view(n).catch(() => null) as { term?: number } | null)?.term ?? 0)));
    for (const [name, inject] of steps) {
      const termBefore = await term();
      let perfAcks: Array<{ ip: string; mac: string }> = [];
      const outcome = await f.runFault(name, async (roles) => {
        const load = perfdhcp(perfHost, 20);
        await sleep(3000);
        const seen = await inject(roles);
        perfAcks = await load;
        return seen;
      });
      const perf = { acks: perfAcks.length, ...await perfMissing(f.c.servers, perfAcks) };
      const versions = f.members.map((m) => `${m.name}=${version(m)}`).join(' ');
      rows.push({ step: name, versions, outcome, levels: await levels(), terms: [termBefore, await term()], perf });
      t.comment(`${name} [${versions}] levels ${rows.at(-1)!.levels}: DHCP gap ${outcome.gaps.dhcp} ms, DNS ${outcome.gaps.dns} ms; terms ${termBefore} -> ${rows.at(-1)!.terms[1]}; udhcpc lost ${outcome.lostAcked.length}; perfdhcp ACKs ${perf.acks}, missing ${perf.missing.length}, reused ${perf.superseded}; audits ${outcome.audits.map((a) => `${a.server} checked ${a.checked ?? '-'} lost ${a.lost}`).join(', ')}`);
      t.ok(perf.acks > 0, `${name}: perfdhcp got ACKs through the step (${perf.acks})`);
      t.same(perf.missing, [], `${name}: every address perfdhcp saw ACKed is held for its MAC on both servers`);
      t.same(outcome.exited, [], `${name}: no member exited on its own`);
      t.same(outcome.lostAcked, [], `${name}: no ACKed lease lost (clients' view)`);
      t.same(outcome.audits.filter((a) => a.lost !== 0), [], `${name}: each server's own ACK audit finds none lost`);
      t.same(outcome.duplicates, [], `${name}: no address ACKed to two MACs`);
      t.same(outcome.faultFindings, [], `${name}: the step itself went through`);
      t.equal(outcome.twoHolderMs, 0, `${name}: never two VIP holders`);
      t.ok(outcome.converged, `${name}: same applied index and state hash everywhere (${outcome.detail.join('; ')})`);
    }
    const out = process.env['UPGRADE_REPORT'];
    if (out !== undefined) writeFileSync(out, JSON.stringify(rows, null, 2));
  } finally {
    if (t.counts.fail > 0) fl?.dumpLogs();
    await fl?.close();
    await lab.destroy();
    old.cleanup();
  }
  t.ok(lab.resolvConfUnchanged(), 'the host /etc/resolv.conf was not touched');
});
