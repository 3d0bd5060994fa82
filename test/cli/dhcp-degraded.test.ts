// Degraded split-pool DHCP end to end in daemons (no root: loopback, no VIP, so no ARP probe):
// lan-a, lan-b and a witness with dhcp.degraded on; lan-b and the witness stopped; lan-a answers
// nothing for the first 5 s without a quorum, then goes DEGRADED and answers a new client from its
// own half of the pool with a lease of at most MCLT, the grant fsync'd in its journal before the
// ACK; lanctl status says DEGRADED and the weakened promise. Then lan-b and the witness start again:
// the journal is merged into the log as one lease.merge entry (0 conflicts), lan-b's `lanctl leases`
// shows the binding, and lan-a's journal is cleared. The same config with degraded off stays silent.
// A member restarted alone on an empty state directory (rule 6) never goes degraded.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { startDaemon, type Daemon } from '../../bin/daemon.js';
import { dhcpProbe } from '../../services/dhcp/probe.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { freePorts, freeUdpPorts } from '../support/ports.js';
import { runLanctl } from '../support/daemon.js';
import { httpGetText } from '../support/http-get.js';
import { until } from '../support/state-log.js';
import { DEGRADED_JOURNAL_FILE, readJournal } from '../../services/dhcp/degraded-journal.js';

t.setTimeout(240_000);

const names = ['lan-a', 'lan-b', 'witness'] as const;

async function cluster(t: { teardown(fn: () => Promise<void>): void }, degraded: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-degraded-'));
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const [r1, r2, r3, h1, h2] = await freePorts(5);
  const raftPorts = [r1!, r2!, r3!];
  const httpPorts: Record<string, number> = { 'lan-a': h1!, 'lan-b': h2! };
  const [d1, d2] = await freeUdpPorts(2);
  const dhcpPorts: Record<string, number> = { 'lan-a': d1!, 'lan-b': d2! };
  const configs = new Map<string, ReturnType<typeof parseConfig>>(names.map((name, i) => {
    const lan = name !== 'witness';
    return [name, parseConfig(`node: { name: ${name}, role: ${lan ? 'server' : 'witness'}, address: 127.0.0.1, stateDir: "${dir}/${name}", controlSocket: "${dir}/${name}.sock" }
cluster:
  id: degraded-test-${i}
  keyFile: "${keyFile}"
  electionTimeout: 1500ms
  members:
${names.map((n, j) => `    - { name: ${n}, address: 127.0.0.1, port: ${raftPorts[j]}${n === 'witness' ? ', role: witness' : ''} }`).join('\n')}
${lan ? `http: { listen: "127.0.0.1:${httpPorts[name]}" }
dhcp:
  port: ${dhcpPorts[name]}
  listen: 127.0.0.1
  degraded: { enabled: ${degraded}, mclt: 1m }
  subnets:
    - subnet: 127.0.0.0/8
      pools: [127.0.60.10-127.0.60.41]
      leaseTime: 1h
` : ''}`.replace(/id: degraded-test-\d/, 'id: degraded-test'))];
  }));
  const daemons = new Map<string, Daemon>();
  t.teardown(async () => {
    for (const d of [...daemons.values()].reverse()) await d.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const start = async (name: string): Promise<void> => { daemons.set(name, await startDaemon(configs.get(name)!, { log: silentLogger })); };
  const stop = async (name: string): Promise<void> => { await daemons.get(name)!.stop(); daemons.delete(name); };
  for (const name of names) await start(name);
  return { dir, dhcpPorts, httpPorts, daemons, start, stop };
}

/** The DHCP service's degraded mode, as its status says it. */
const degradedActive = (d: Daemon): boolean => (d.services.find((s) => s.name === 'dhcp')?.status()['degraded'] as { active?: boolean } | undefined)?.active === true;

t.test('lan-a alone goes degraded after 5 s, answers from its half with leases <= MCLT, and the journal merges when the others return', async (t) => {
  const c = await cluster(t, true);
  await until('lan-a leads', () => c.daemons.get('lan-a')!.state.isLeader() || c.daemons.get('lan-b')!.state.isLeader(), 30_000);
  // A client leased in normal mode first, from the leader.
  const leader = c.daemons.get('lan-a')!.state.isLeader() ? 'lan-a' : 'lan-b';
  const before = await dhcpProbe({ server: '127.0.0.1', port: c.dhcpPorts[leader]!, mac: '52:54:00:00:70:01', timeoutMs: 5000 });
  const half = leader === 'lan-a' ? [parseIpv4('127.0.60.10')!, parseIpv4('127.0.60.25')!] : [parseIpv4('127.0.60.26')!, parseIpv4('127.0.60.41')!];
  const got = parseIpv4(before.acked)!;
  t.ok(got >= half[0]! && got <= half[1]!, `the leader ${leader} gave ${before.acked} from its own half`);
  t.equal(before.leaseSeconds, 3600, 'normal mode: the subnet\'s lease time');
  await until('lan-b has applied the grant', () => c.daemons.get('lan-b')!.state.fsm.lease(got)?.mac === '52:54:00:00:70:01', 10_000);

  await c.stop('lan-b');
  await c.stop('witness');
  const stoppedAt = Date.now();
  const a = c.daemons.get('lan-a')!;
  // Without a quorum, and for the first 5 s, DHCP says nothing.
  await t.rejects(dhcpProbe({ server: '127.0.0.1', port: c.dhcpPorts['lan-a']!, mac: '52:54:00:00:70:02', timeoutMs: 1500 }), 'silent while the quorum is just gone');
  await until('lan-a goes degraded', () => degradedActive(a), 30_000).catch((error: unknown) => {
    t.comment(JSON.stringify(a.services.find((s) => s.name === 'dhcp')?.status()['degraded']), JSON.stringify(a.state.status()));
    throw error;
  });
  t.ok(Date.now() - stoppedAt >= 5000, `not before 5 s without a quorum (${Date.now() - stoppedAt} ms)`);
  const recorded = async (): Promise<{ recorded: number; lostTotal: number }> => ((await a.control.read('/v1/status', new URLSearchParams())).body as { ackAudit: { recorded: number; lostTotal: number } }).ackAudit;
  const recordedBefore = (await recorded()).recorded;
  const alone = await dhcpProbe({ server: '127.0.0.1', port: c.dhcpPorts['lan-a']!, mac: '52:54:00:00:70:03', timeoutMs: 5000 });
  t.equal((await recorded()).recorded, recordedBefore, 'the ACK audit does not take the degraded ACK (it is in the journal, not the log)');
  const aloneIp = parseIpv4(alone.acked)!;
  t.ok(aloneIp >= parseIpv4('127.0.60.10')! && aloneIp <= parseIpv4('127.0.60.25')!, `degraded lan-a gave ${alone.acked} from its own half (127.0.60.10-25)`);
  t.ok(alone.leaseSeconds !== null && alone.leaseSeconds <= 60, `lease time ${alone.leaseSeconds} s <= MCLT (60 s)`);
  const journal = readJournal(join(c.dir, 'lan-a', DEGRADED_JOURNAL_FILE));
  t.match(journal?.records, [{ ip: aloneIp, mac: '52:54:00:00:70:03', state: 'bound' }], 'the grant is in the journal on disk (written before the ACK)');
  const human = await runLanctl(['status', '--socket', `${c.dir}/lan-a.sock`]);
  t.match(human.stdout, /DEGRADED since .*ACKed leases durable on this node only/, 'lanctl status says DEGRADED and the weakened promise');
  const doctor = await runLanctl(['doctor', '--socket', `${c.dir}/lan-a.sock`]);
  t.match(doctor.stdout, /dhcp\.degraded/, 'doctor names it');
  t.match(await httpGetText(c.httpPorts['lan-a']!, '/'), /dhcp\.degraded.*DEGRADED since/s, 'the status page shows it (the doctor table)');
  t.match(await httpGetText(c.httpPorts['lan-a']!, '/metrics'), /^lanha_dhcp_degraded 1$/m, '/metrics: lanha_dhcp_degraded 1');
  t.match(await httpGetText(c.httpPorts['lan-a']!, '/metrics'), /^lanha_dhcp_degraded_journal_records 1$/m, '... and the journal\'s record');
  const leases = await runLanctl(['leases', '--socket', `${c.dir}/lan-a.sock`]);
  t.match(leases.stdout, alone.acked, 'lanctl leases on lan-a shows the degraded binding');

  const healedAt = Date.now();
  await c.start('witness');
  await c.start('lan-b');
  const b = c.daemons.get('lan-b')!;
  await until('the journal is merged into the log', () => b.state.fsm.lease(aloneIp)?.mac === '52:54:00:00:70:03', 60_000);
  t.comment(`merged ${Date.now() - healedAt} ms after lan-b and the witness started`);
  t.equal(b.state.fsm.degradedMerged('lan-a')?.conflicts, 0, 'merge conflicts: 0');
  const bLeases = await runLanctl(['leases', '--socket', `${c.dir}/lan-b.sock`]);
  t.match(bLeases.stdout, alone.acked, 'lan-b\'s lanctl leases shows the binding lan-a made alone');
  await until('lan-a clears its journal', () => (readJournal(join(c.dir, 'lan-a', DEGRADED_JOURNAL_FILE))?.records.length ?? 1) === 0, 30_000);
  t.ok(statSync(join(c.dir, 'lan-a', DEGRADED_JOURNAL_FILE)).size > 0, 'the journal file keeps its header');
  await until('lan-a left degraded', () => !degradedActive(a), 10_000);
  await until('replicas agree', () => a.state.fsm.hash() === b.state.fsm.hash(), 10_000);
  t.match(await httpGetText(c.httpPorts['lan-a']!, '/metrics'), /^lanha_dhcp_degraded 0$/m, '/metrics: lanha_dhcp_degraded 0 once merged');
  t.equal((await recorded()).lostTotal, 0, 'lan-a\'s ACK audit: 0 ACKed leases lost');
});

t.test('with dhcp.degraded off (the default) a member alone stays silent', async (t) => {
  const c = await cluster(t, false);
  await until('a LAN node leads', () => c.daemons.get('lan-a')!.state.isLeader() || c.daemons.get('lan-b')!.state.isLeader(), 30_000);
  await c.stop('lan-b');
  await c.stop('witness');
  await new Promise((r) => setTimeout(r, 7000));
  await t.rejects(dhcpProbe({ server: '127.0.0.1', port: c.dhcpPorts['lan-a']!, mac: '52:54:00:00:70:09', timeoutMs: 2000 }), 'no answer without a quorum');
});

t.test('a member whose state directory was lost does not go degraded (HA.md degraded rule 6)', async (t) => {
  const c = await cluster(t, true);
  await until('a LAN node leads', () => c.daemons.get('lan-a')!.state.isLeader() || c.daemons.get('lan-b')!.state.isLeader(), 30_000);
  for (const name of ['lan-b', 'witness', 'lan-a']) await c.stop(name);
  // A dead SD card: lan-a comes back with an empty state directory, alone.
  rmSync(join(c.dir, 'lan-a'), { recursive: true, force: true });
  await c.start('lan-a');
  const a = c.daemons.get('lan-a')!;
  await new Promise((r) => setTimeout(r, 8000));
  t.notOk(degradedActive(a), 'not degraded after 8 s alone');
  t.match(a.services.find((s) => s.name === 'dhcp')?.status()['degraded'], { notDegradedBecause: /rule 6/ }, 'and says why');
  await t.rejects(dhcpProbe({ server: '127.0.0.1', port: c.dhcpPorts['lan-a']!, mac: '52:54:00:00:70:0a', timeoutMs: 2000 }), 'DHCP stays silent');
});
