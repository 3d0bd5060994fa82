import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createMetrics, type MetricsView } from './metrics.js';
import { OpsTracker } from './tracker.js';
import { LatencyWindow } from '../../lib/latency.js';
import type { Lease } from '../../cluster/fsm.js';
import { haveTools } from '../../test/support/tools.js';

// Metric-name rules on the whole output (lanha_ prefix, base units, _total exactly on counters, no
// client labels by default), values read at scrape time, hostile host names escaped in the opt-in
// per-client series, and `promtool check metrics` when it is installed.

const HOSTILE = '<script>"\\\n\u0007';

function view(over: Partial<MetricsView> = {}): MetricsView {
  const leases: Lease[] = [{ ip: 0x0a00000a, mac: '52:54:00:00:00:01', hostname: HOSTILE, subnet: '10.0.0.0/24', state: 'bound', grantedAt: 0, expiresAt: 10_000_000, changedAt: 0, index: 7 }];
  return {
    node: 'lan-a', version: '0.1.0',
    cluster: () => ({ mode: 'cluster', role: 'leader', leader: 'lan-a', term: 4, commitIndex: 20, appliedIndex: 20, lastIndex: 21, leaseValid: true, progress: { 'lan-a': { match: 21 }, 'lan-b': { match: 15 } }, storage: { fsyncs: 9, batches: 5 } }),
    services: () => [
      { name: 'dhcp', status: { offers: 2, counters: { 'received.discover': 3, 'sent.ack': 2, 'dropped.rate-limited.mac': 1, 'lease.reused': 1, 'rogue.offers': 4, 'rogue.requests': 1, 'rapid-commit.acked': 2, 'ignored.bootp-unknown': 3, 'received.bootp': 5 },
        clients: [{ subnet: '10.0.0.0/24', clients: 'known', unknownPool: null, ignored: 7 }, { subnet: '10.0.1.0/24', clients: 'all', unknownPool: null, ignored: 0 }], rogue: { probe: null, servers: [{ serverId: '10.0.0.9' }] } } },
      { name: 'vip', status: { address: '10.0.0.1/24', held: true, acquisitions: 1, renewals: 5, garps: 2, releases: 0 } },
      { name: 'ntp', status: { synchronised: true, stratum: 3, rootDelayMs: 1.5, rootDispersionMs: 2, sources: [{ name: '10.0.0.3:123', kind: 'peer', reach: '377', offsetMs: -0.25 }], kernelStamps: { used: { kernel: 4, kernel_waited: 7, estimate_timeout: 1, estimate_busy: 0 } } } },
      { name: 'dns', status: { serial: 12, forwardCache: 4, counters: { 'dns.queries': 40, 'dns.forward.cache_hit': 3, 'dns.workers.exited': 1 } } },
      { name: 'tftp', status: { counters: { 'tftp.transfers_started': 2, 'tftp.workers_exited': 2, 'tftp.transfers_lost': 5 }, cache: { bytes: 3145728, chunks: 3, hits: 41, misses: 5, pinned: 1 } } },
    ],
    pools: () => [{ subnet: '10.0.0.0/24', pools: [{ subnet: '10.0.0.0/24', pool: '10.0.0.100-10.0.0.199', size: 100, assigned: 91, declined: 1, reservedInside: 0, ratio: 0.91 }], reservedOutside: 2, reservations: 2, leases: { bound: 91, declined: 1, released: 0, expired: 0 } }],
    leases: () => leases,
    tracker: new OpsTracker(),
    findings: () => [{ id: 'dhcp.pool-usage', severity: 'error', evidence: 'x', fix: 'y' }],
    nowMs: () => 1000,
    enabled: new Set(['dhcp', 'dns', 'tftp', 'ntp', 'vip']),
    ackAudit: () => ({ recorded: 12, capacity: 4096, audits: 2, lastAudit: null, lostTotal: 0, lost: [], due: false }),
    ...over,
  };
}

function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

t.test('names follow the rules', async (t) => {
  const m = createMetrics(view(), { perClient: false });
  m.observeDhcpAck(0.004);
  const text = await m.text();
  const types = families(text);
  for (const name of ['lanha_raft_role', 'lanha_vip_held', 'lanha_dhcp_pool_utilization_ratio', 'lanha_dhcp_ack_duration_seconds', 'lanha_failover_gap_seconds', 'lanha_ntp_offset_seconds', 'lanha_raft_has_quorum', 'lanha_raft_leader_changes_total', 'lanha_dhcp_acked_leases_lost_total', 'lanha_dhcp_ack_audits_total']) {
    t.ok(types.has(name), `${name} exported`);
  }
  for (const [name, type] of types) {
    if (!name.startsWith('lanha_')) continue;
    t.equal(name.endsWith('_total'), type === 'counter', `${name}: _total exactly when a counter (${type})`);
    t.notMatch(name, /_(ms|milliseconds|percent|kb|mb)(_|$)/, `${name}: base units`);
  }
  t.notMatch(text, /[{,](mac|ip|hostname)="/, 'no client labels by default');
  t.match(text, 'lanha_raft_role{role="leader"} 1');
  t.match(text, '\nlanha_dhcp_acked_leases_lost_total 0\n', 'the ACK audit: lost leases');
  t.match(text, '\nlanha_dhcp_ack_audits_total 2\n');
  t.match(text, '\nlanha_dhcp_rogue_servers 1\n', 'other DHCP servers seen lately');
  t.match(text, '\nlanha_dhcp_rogue_offers_total 4\n');
  t.match(text, '\nlanha_dhcp_rogue_requests_total 1\n');
  t.match(text, '\nlanha_dhcp_acks_recorded 12\n');
  t.match(text, 'lanha_raft_role{role="follower"} 0');
  t.match(text, 'lanha_raft_peer_lag_entries{peer="lan-b"} 6');
  t.notMatch(text, 'peer="lan-a"', 'no lag series for the node itself');
  t.match(text, 'lanha_vip_held{address="10.0.0.1/24"} 1');
  t.match(text, 'lanha_dhcp_pool_utilization_ratio{subnet="10.0.0.0/24",pool="10.0.0.100-10.0.0.199"} 0.91');
  t.match(text, 'lanha_dhcp_packets_dropped_total{reason="rate_limited_mac"} 1');
  t.match(text, '\nlanha_dhcp_lease_reuses_total 1\n', 'ACKs from the lease cache (Kea: v4-lease-reuses)');
  t.match(text, '\nlanha_dhcp_rapid_commit_acks_total 2\n', 'Rapid Commit ACKs');
  t.match(text, '\nlanha_dhcp_bootp_ignored_total 3\n', 'BOOTP clients without a reservation, unanswered');
  t.match(text, 'lanha_dhcp_packets_received_total{type="bootp"} 5', 'BOOTREQUESTs among the packets received, by type');
  t.match(text, '\nlanha_dhcp_unknown_clients_ignored_total{subnet="10.0.0.0/24"} 7\n', 'inventory mode: unknown clients ignored, per subnet');
  t.notMatch(text, 'lanha_dhcp_unknown_clients_ignored_total{subnet="10.0.1.0/24"}', 'no ignored series for a subnet serving all clients');
  t.match(text, 'lanha_dhcp_subnet_known_clients_only{subnet="10.0.0.0/24"} 1');
  t.match(text, 'lanha_dhcp_subnet_known_clients_only{subnet="10.0.1.0/24"} 0');
  t.match(text, 'lanha_ntp_offset_seconds{source="peer:10.0.0.3:123"} -0.00025');
  t.match(text, 'lanha_ntp_source_reachability_ratio{source="peer:10.0.0.3:123"} 1');
  t.match(text, 'lanha_ntp_receive_stamps_total{source="kernel_waited"} 7');
  t.match(text, 'lanha_dhcp_ack_duration_seconds_count 1');
  t.match(text, '\nlanha_tftp_cache_bytes 3145728\n', 'the shared TFTP block cache: octets held');
  t.match(text, '\nlanha_tftp_cache_hits_total 41\n');
  t.match(text, '\nlanha_tftp_cache_misses_total 5\n');
  t.match(text, '\nlanha_tftp_worker_exits_total 2\n', 'transfer threads that crashed');
  t.match(text, '\nlanha_tftp_transfers_lost_total 5\n', 'and the transfers lost with them');
  t.match(text, '\nlanha_dns_worker_exits_total 1\n', 'DNS worker processes that stopped');
  t.match(text, 'lanha_doctor_findings{check="dhcp.pool-usage",severity="error"} 1');
  t.notMatch(text, /^nodejs_active_handles_total/m, 'the misnamed default gauges are gone');
});

t.test('values are read when scraped, not when registered', async (t) => {
  let term = 1;
  const m = createMetrics(view({ cluster: () => ({ mode: 'cluster', role: 'follower', leader: null, term, commitIndex: 0, appliedIndex: 0 }) }), { perClient: false, defaults: false });
  t.match(await m.text(), 'lanha_raft_term 1');
  term = 9;
  const text = await m.text();
  t.match(text, 'lanha_raft_term 9');
  t.match(text, 'lanha_raft_has_quorum 0', 'a follower without a leader has no quorum');
});

t.test('a VIP held degraded (dhcp.degraded, no quorum) is a series of its own', async (t) => {
  const vip = (degraded: boolean | undefined): MetricsView => view({ services: () => [{ name: 'vip', status: { address: '10.0.0.1/24', held: true, degraded, acquisitions: 1, renewals: 0, garps: 1, releases: 0 } }] });
  const held = await createMetrics(vip(true), { perClient: false, defaults: false }).text();
  t.match(held, 'lanha_vip_held{address="10.0.0.1/24"} 1');
  t.match(held, 'lanha_vip_held_degraded{address="10.0.0.1/24"} 1');
  t.match(await createMetrics(vip(false), { perClient: false, defaults: false }).text(), 'lanha_vip_held_degraded{address="10.0.0.1/24"} 0');
  t.notMatch(await createMetrics(vip(undefined), { perClient: false, defaults: false }).text(), 'lanha_vip_held_degraded{', 'no series from a daemon that does not say');
});

t.test('families of services that are off are not exported', async (t) => {
  const text = await createMetrics(view({ enabled: new Set(), services: () => [] }), { perClient: false, defaults: false }).text();
  t.notMatch(text, 'lanha_vip_');
  t.notMatch(text, 'lanha_dhcp_');
  t.notMatch(text, 'lanha_ntp_');
  t.match(text, 'lanha_raft_term');
});

t.test('per-client series are opt-in and escape hostile host names', async (t) => {
  const text = await createMetrics(view(), { perClient: true, defaults: false }).text();
  const line = text.split('\n').find((l) => l.startsWith('lanha_dhcp_lease_expiry_timestamp_seconds{'));
  t.ok(line, 'per-lease series present');
  t.equal(line, 'lanha_dhcp_lease_expiry_timestamp_seconds{mac="52:54:00:00:00:01",ip="10.0.0.10",hostname="<script>\\"\\\\\\n\u0007"} 10000');
  t.equal(text.split('\n').filter((l) => l.includes('<script>')).length, 1, 'the newline is escaped: the value stays on one line');
});

t.test('promtool accepts the output', async (t) => {
  if (!haveTools(t, ['promtool'], 'promtool checks (Debian prometheus)')) return;
  const text = await createMetrics(view(), { perClient: true }).text();
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
});

t.test('WAL fsync durations become a histogram as they happen', async (t) => {
  const wal = new LatencyWindow(8);
  const m = createMetrics(view({ walFsync: wal }), { perClient: false });
  for (const ms of [0.3, 0.8, 4, 120]) wal.record(ms);
  const text = await m.text();
  t.equal(families(text).get('lanha_raft_wal_fsync_duration_seconds'), 'histogram');
  t.match(text, /^lanha_raft_wal_fsync_duration_seconds_count 4$/m);
  t.match(text, /^lanha_raft_wal_fsync_duration_seconds_bucket\{le="0.001"\} 2$/m, 'two of the four within 1 ms');
  t.equal(wal.quantile(0.99), 120);
  t.equal(wal.quantile(0.5), 0.8);
});

t.test('the failover gap per protocol: a planned failover run here and the last election takeover', async (t) => {
  const tracker = new OpsTracker();
  const m = createMetrics(view({ tracker }), { perClient: false });
  t.notMatch(await m.text(), /^lanha_failover_gap_seconds\{/m, 'no failover yet: no series');
  tracker.failover({ from: 'lan-a', to: 'lan-b', leader: 'lan-b', gapMs: 60, parts: [['release', 5], ['vote', 12], ['lease wait', 3], ['ip addr', 30], ['sockets bound', 4], ['first GARP', 6]] }, 1000);
  tracker.entry({ index: 9, at: 2000, command: { type: 'vip.takeover', node: 'lan-a', term: 7, trigger: 'election', parts: [['detection', 400], ['vote', 20], ['lease wait', 100], ['ip addr', 10], ['sockets bound', 2], ['first GARP', 3]], totalMs: 535 } });
  const text = await m.text();
  const gap = (protocol: string, trigger: string, method = 'derived', from = text): number => Number(new RegExp(`^lanha_failover_gap_seconds\\{protocol="${protocol}",trigger="${trigger}",method="${method}"\\} (\\S+)$`, 'm').exec(from)?.[1]);
  t.equal(gap('vip', 'transfer'), 0.06);
  for (const p of ['dns', 'ntp', 'tftp']) t.equal(gap(p, 'transfer'), 0.06, `${p}: answers on the VIP from the first GARP`);
  t.equal(gap('dhcp', 'transfer'), 0.02, 'dhcp: release + vote + lease wait, before the address moves');
  t.equal(gap('vip', 'election'), 0.535);
  t.equal(gap('dhcp', 'election'), 0.52);
  t.equal(tracker.events.at(-1)?.kind, 'vip');
  // This node probed the VIP during the planned failover: DNS and NTP answered, TFTP did not.
  tracker.probed = { transfer: { at: 'a', trigger: 'transfer', from: 'lan-a', target: '10.0.0.1', since: 'VIP released here', gaps: [{ protocol: 'vip', seconds: 0.081, probes: 9 }, { protocol: 'dns', seconds: 0.081, probes: 4 }, { protocol: 'ntp', seconds: 0.09, probes: 4 }, { protocol: 'tftp', seconds: null, probes: 1 }] } };
  const probed = await m.text();
  t.equal(gap('vip', 'transfer', 'probe', probed), 0.081);
  t.equal(gap('dns', 'transfer', 'probe', probed), 0.081, 'dns: measured by the probe');
  t.equal(gap('ntp', 'transfer', 'probe', probed), 0.09);
  t.equal(gap('tftp', 'transfer', 'derived', probed), 0.06, 'tftp did not answer a probe: the derived figure, labelled so');
  t.equal(gap('dhcp', 'transfer', 'derived', probed), 0.02, 'dhcp is never probed');
  t.notMatch(probed, /protocol="dns",trigger="transfer",method="derived"/, 'one series per protocol and trigger');
});

t.test('event-loop lag gauges come from the process probe, per scrape, without a 10 ms monitor of prom-client\'s', async (t) => {
  const m = createMetrics(view(), { perClient: false });
  const value = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  const names = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((n) => `nodejs_eventloop_lag_${n}_seconds`);
  await new Promise((r) => setTimeout(r, 2200)); // an idle probe samples once a second
  const first = await m.text();
  for (const name of names) t.ok(value(first, name) >= 0, `${name} = ${value(first, name)}`);
  t.ok(value(first, 'nodejs_eventloop_lag_max_seconds') >= value(first, 'nodejs_eventloop_lag_p50_seconds'), 'max >= p50');
  t.equal(first.match(/^nodejs_eventloop_lag_p99_seconds /gm)?.length, 1, 'one series each');
  const second = await m.text();
  t.equal(value(second, 'nodejs_eventloop_lag_max_seconds'), 0, 'a scrape right after another: no samples in between');
  t.ok(Number.isFinite(value(second, 'nodejs_eventloop_lag_seconds')), "prom-client's own per-scrape lag stays");
});
