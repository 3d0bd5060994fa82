import t from 'tap';
import { Fsm, type Lease } from '../../cluster/fsm.js';
import { parseConfig } from '../../config/index.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { explain, simulate, type ExplainInput } from './explain.js';
import { configFindings, doctorFindings, UNSTABLE_EVENTS, type DoctorInput } from './doctor.js';
import { Stability, type StabilityReport } from '../../cluster/stability.js';
import { configPoolUsage } from './doctor.js';
import type { MemberView } from '../../cluster/member-status.js';

// explain on fixed states: subnet choice, reservation by MAC and by client-id (with the
// client-id-differs-from-MAC flag), boot rules with the deciding field, option sources, the lease's
// log index; DNS zone and source or forwarding; garbage and unknown MACs. Then doctor's findings.

const CONFIG = `
node: { name: lan-a, address: 10.50.0.2 }
dhcp:
  serverId: 10.50.0.1
  subnets:
    - subnet: 10.50.0.0/24
      pools: [10.50.0.100-10.50.0.103]
      router: [10.50.0.254]
      dns: [10.50.0.1]
      domain: lab.lan
      leaseTime: 1h
      options: { "26": 1400 }
      reservations:
        - { mac: "52:54:00:00:00:99", ip: 10.50.0.9, hostname: node09 }
        - { clientId: "01:52:54:00:00:00:77", ip: 10.50.0.7 }
        - { mac: "52:54:00:00:00:98", ip: 10.50.0.101 }
  boot:
    - { name: ipxe-script, match: { userClass: iPXE }, bootfile: boot.ipxe }
    - { name: uefi, match: { arch: [7, 9] }, bootfile: ipxe.efi }
    - { name: pis, match: { raspberryPi: true }, bootfile: start4.elf }
dns:
  forward: { upstreams: ["10.0.0.53"], allow: ["10.50.0.0/24"] }
  zones: [{ name: lab.lan, leases: true, records: ["ns A 10.50.0.1", "db A 10.50.0.20"] }]
`;

const NOW = 1_000_000_000_000;

function input(): ExplainInput & { fsm: Fsm } {
  const config = parseConfig(CONFIG);
  const fsm = new Fsm();
  fsm.apply(5, { at: NOW - 1000, by: 'lan-b', command: { type: 'lease.grant', ip: parseIpv4('10.50.0.100')!, mac: '52:54:00:12:34:56', subnet: '10.50.0.0/24', leaseMs: 3_600_000, hostname: 'web', clientId: 'ff00112233' } });
  fsm.apply(6, { at: NOW - 500, command: { type: 'node.boot', mac: '52:54:00:12:34:56', event: 'tftp', detail: 'ipxe.efi 1024 bytes' } });
  return {
    fsm, config,
    leases: { lease: (ip) => fsm.lease(ip), leaseByMac: (m) => fsm.leaseByMac(m), leaseByClientId: (c) => fsm.leaseByClientId(c), all: () => fsm.leases() },
    bootEvents: (m) => fsm.bootEvents(m),
    records: [
      { zone: 'lab.lan', name: 'lab.lan', type: 'SOA', ttl: 300, data: '...', source: 'soa' },
      { zone: 'lab.lan', name: 'ns.lab.lan', type: 'A', ttl: 300, data: '10.50.0.1', source: 'static' },
      { zone: 'lab.lan', name: 'web.lab.lan', type: 'A', ttl: 300, data: '10.50.0.100', source: 'lease' },
      { zone: '0.50.10.in-addr.arpa', name: '100.0.50.10.in-addr.arpa', type: 'PTR', ttl: 300, data: 'web.lab.lan.', source: 'reverse' },
    ],
    nowMs: NOW,
  };
}

t.test('a leased MAC: subnet, lease index, client-id flag, history, options with sources', async (t) => {
  const r = explain(input(), '52-54-00-12-34-56');
  t.ok(r.ok);
  if (!r.ok || r.dhcp === null) return;
  t.equal(r.kind, 'mac');
  t.equal(r.dhcp.subnet.id, '10.50.0.0/24');
  t.match(r.dhcp.subnet.why, 'node.address 10.50.0.2 is inside 10.50.0.0/24');
  t.equal(r.dhcp.lease?.ip, '10.50.0.100');
  t.equal(r.dhcp.lease?.index, 5, 'committed at log index 5');
  t.equal(r.dhcp.lease?.ackedBy, 'lan-b', 'the leader that proposed the grant, and so sent the ACK');
  t.match(r.dhcp.history[0]?.detail, 'log index 5, ACKed by lan-b');
  t.match(r.dhcp.reservation.notes[0], 'client-id ff00112233, which is not "01" + its MAC');
  t.same(r.dhcp.history.map((h) => h.event), ['dhcp', 'tftp']);
  const opt = (code: number): { value: string; source: string } | undefined => r.dhcp!.options.find((o) => o.code === code);
  t.equal(opt(3)?.value, '10.50.0.254');
  t.equal(opt(3)?.source, 'dhcp.subnets[0].router');
  t.equal(opt(26)?.source, 'dhcp.subnets[0].options.26');
  t.equal(opt(54)?.source, 'dhcp.serverId');
  t.equal(opt(51)?.value, '3600 s');
  const uefi = r.dhcp.boot.rules.find((b) => b.rule === 'uefi');
  t.equal(uefi?.matched, false);
  t.match(uefi?.deciding, 'not stored with the lease', 'arch is unknown for a real lease, and it says so');
});

t.test('the IP and the host name lead to the same client; DNS says zone and source', async (t) => {
  const byIp = explain(input(), '10.50.0.100');
  t.ok(byIp.ok && byIp.dhcp?.mac === '52:54:00:12:34:56');
  t.ok(byIp.ok && byIp.dns[0]?.answers[0]?.source === 'reverse', 'the PTR and its source');
  const byName = explain(input(), 'web.lab.lan');
  t.ok(byName.ok);
  if (!byName.ok) return;
  t.equal(byName.dhcp?.mac, '52:54:00:12:34:56');
  t.equal(byName.dns[0]?.zone, 'lab.lan');
  t.same(byName.dns[0]?.answers, [{ type: 'A', ttl: 300, data: '10.50.0.100', source: 'lease' }]);
  const outside = explain(input(), 'example.org');
  t.ok(outside.ok && outside.dns[0]?.zone === null && /forwarded to 10\.0\.0\.53/.test(outside.dns[0]!.how));
  const nx = explain(input(), 'nothing.lab.lan');
  t.ok(nx.ok && /NXDOMAIN/.test(nx.dns[0]!.how));
});

t.test('garbage is a 400 with the accepted forms; an unknown MAC a 404 with the nearest', async (t) => {
  for (const q of ['', '<script>', 'zz:zz', '10.0.0.300/8', '-x-']) {
    const r = explain(input(), q);
    t.ok(!r.ok && r.status === 400 && /a MAC .* an IPv4 address .* a DNS name/.test(r.error), `"${q}" refused`);
  }
  const r = explain(input(), '52:54:00:12:34:57');
  t.ok(!r.ok && r.status === 404);
  if (r.ok) return;
  t.equal(r.nearest?.[0], '52:54:00:12:34:56', 'the nearest known MAC first');
  t.match(r.error, 'lanctl explain --simulate --mac 52:54:00:12:34:57');
});

t.test('--simulate runs the core on a synthetic DISCOVER and holds nothing', async (t) => {
  const i = input();
  const uefi = simulate(i, { mac: '52:54:00:aa:bb:cc', arch: 7 });
  t.ok(uefi.ok && uefi.dhcp !== null);
  if (!uefi.ok || uefi.dhcp === null) return;
  t.equal(uefi.dhcp.decision, 'OFFER 10.50.0.102', 'the first free pool address (.100 leased, .101 reserved)');
  t.match(uefi.dhcp.boot.result, 'uefi: bootfile ipxe.efi from 10.50.0.1');
  t.same(uefi.dhcp.boot.rules.map((r) => [r.rule, r.matched]), [['ipxe-script', false], ['uefi', true], ['pis', false]]);
  t.match(uefi.dhcp.boot.rules[0]!.deciding, 'option 77 user class [] lacks "iPXE"');
  t.match(uefi.dhcp.boot.rules[1]!.deciding, 'option 93 arch 7 in [7,9]');
  t.ok(uefi.dhcp.options.some((o) => o.code === 67 && o.value === 'ipxe.efi'));
  const again = simulate(i, { mac: '52:54:00:aa:bb:cd', arch: 7 });
  t.ok(again.ok && again.dhcp?.decision === 'OFFER 10.50.0.102', 'nothing was held by the first simulation');
  const ipxe = simulate(i, { mac: '52:54:00:aa:bb:cc', arch: 7, userClass: 'iPXE' });
  t.ok(ipxe.ok && /ipxe-script/.test(ipxe.dhcp!.boot.result), 'the first matching rule wins');
  const reserved = simulate(i, { mac: '52:54:00:00:00:99' });
  t.ok(reserved.ok && reserved.dhcp?.decision === 'OFFER 10.50.0.9 (reserved)');
  t.ok(reserved.ok && reserved.dhcp?.options.some((o) => o.code === 12 && o.value === 'node09'));
  t.match(reserved.ok && reserved.dhcp?.variants?.bootp, /^BOOTREPLY 10\.50\.0\.9 \(reserved\), a lease that never expires by itself$/, 'a reserved client is answered as a BOOTP client');
  t.match(uefi.dhcp.variants?.bootp, /^no reply: BOOTP client without a reserved address \(dhcp\.bootp\.dynamic is off\)$/, 'an unreserved one is not, with dynamic off');
  t.match(uefi.dhcp.variants?.rapidCommit, /option 80 ignored \(dhcp\.subnets\[\]\.rapidCommit is off for 10\.50\.0\.0\/24\)/);
  const dynamic = simulate({ ...i, config: parseConfig(CONFIG.replace('dhcp:\n', 'dhcp:\n  bootp: { dynamic: true }\n').replace('leaseTime: ', 'rapidCommit: true\n      leaseTime: ')) }, { mac: '52:54:00:aa:bb:ce' });
  t.match(dynamic.ok && dynamic.dhcp?.variants?.bootp, /^BOOTREPLY 10\.50\.0\.102 \(pool: bootp\.dynamic\)/, 'with bootp.dynamic: a pool address');
  t.match(dynamic.ok && dynamic.dhcp?.variants?.rapidCommit, /^ACK 10\.50\.0\.102 at once, after its grant commits/, 'with rapidCommit: an ACK at once');
  t.ok(dynamic.ok && dynamic.dhcp?.decision === 'OFFER 10.50.0.102', 'and the plain DISCOVER is still offered .102');
  const byId = simulate(i, { mac: '52:54:00:00:00:77', clientId: '01:52:54:00:00:00:77' });
  t.ok(byId.ok && byId.dhcp?.reservation.byClientId?.startsWith('10.50.0.7'), 'reservation by client-id');
  t.same(byId.ok && byId.dhcp?.reservation.notes, [], 'a client-id of 01 + MAC is not flagged');
  const otherId = simulate(i, { mac: '52:54:00:00:00:77' });
  t.ok(otherId.ok && otherId.dhcp?.reservation.byClientId === null);
  t.match(otherId.ok ? otherId.dhcp?.reservation.notes[0] : '', 'a reservation by client-id 01525400000077 mentions this MAC, but the client sends no client-id');
  const bad = simulate(i, { mac: 'nope' });
  t.ok(!bad.ok && bad.status === 400);
});

t.test('doctor: config findings and runtime findings', async (t) => {
  const i = input();
  const config = configFindings(i.config);
  t.same(config.map((f) => f.id), ['dhcp.reservation-in-pool'], 'the reservation inside the pool');
  t.match(config[0]!.evidence, '10.50.0.101');
  for (let n = 1; n <= 3; n++) i.fsm.apply(10 + n, { at: NOW - 100, command: { type: 'lease.grant', ip: parseIpv4(`10.50.0.10${n}`)!, mac: `52:54:00:00:01:0${n}`, subnet: '10.50.0.0/24', leaseMs: 3_600_000 } });
  const findings = doctorFindings({
    config: i.config,
    cluster: { mode: 'cluster', role: 'follower', leader: null, term: 3, commitIndex: 1, appliedIndex: 1 },
    ntp: { synchronised: false, stratum: 16, reason: 'no upstream answers', sources: [{ name: '10.50.0.3:123', kind: 'peer', offsetMs: 250 }] },
    vip: { held: false, address: '10.50.0.1/24' },
    pools: configPoolUsage(i.config, i.fsm.leases(), NOW),
    leases: [...i.fsm.leases()],
    records: [...i.records!, { zone: 'lab.lan', name: 'db.lab.lan', type: 'A', ttl: 300, data: '10.50.0.20', source: 'static' }, { zone: '0.50.10.in-addr.arpa', name: '0.50.10.in-addr.arpa', type: 'SOA', ttl: 300, data: '', source: 'soa' }],
    disk: { freeBytes: 1, totalBytes: 100, dir: '/var/lib/lanha' },
    nowMs: NOW,
  });
  const ids = findings.map((f) => `${f.id}:${f.severity}`);
  t.ok(ids.includes('raft.quorum:error'));
  t.ok(ids.includes('vip.holder:error'));
  t.ok(ids.includes('ntp.unsynchronised:error'));
  t.ok(ids.includes('ntp.peer-offset:warning'));
  t.ok(ids.includes('dhcp.pool-usage:error'), 'all 4 pool addresses used');
  t.ok(ids.includes('dhcp.reserved-address-taken:error'), '10.50.0.101 is reserved for another MAC');
  t.ok(ids.includes('dns.missing-ptr:info'), 'db.lab.lan has no PTR');
  t.ok(ids.includes('disk.state-dir:error'));
  t.notOk(ids.some((id) => id.includes('worker-exits')), 'no worker finding while no worker stopped');
  for (const f of findings) t.ok(f.fix.length > 0 && f.evidence.length > 0, `${f.id} has evidence and a fix`);
});

t.test('doctor and the pool usage count a known-only subnet\'s unknownPool as a pool of its own', async (t) => {
  const config = parseConfig(`
node: { name: lan-a, address: 10.60.0.2 }
dhcp:
  serverId: 10.60.0.1
  subnets:
    - subnet: 10.60.0.0/24
      clients: known
      pools: [10.60.0.100-10.60.0.149]
      unknownPool: 10.60.0.200-10.60.0.203
      reservations: [{ mac: "52:54:00:00:00:99", ip: 10.60.0.9 }]
`);
  const fsm = new Fsm();
  // Guests hold all four quarantine addresses; one known node holds a pool address.
  for (let n = 0; n < 4; n++) fsm.apply(10 + n, { at: NOW - 100, command: { type: 'lease.grant', ip: parseIpv4(`10.60.0.20${n}`)!, mac: `52:54:00:00:02:0${n}`, subnet: '10.60.0.0/24', leaseMs: 600_000 } });
  fsm.apply(20, { at: NOW - 100, command: { type: 'lease.grant', ip: parseIpv4('10.60.0.100')!, mac: '52:54:00:00:00:01', subnet: '10.60.0.0/24', leaseMs: 3_600_000 } });
  const usage = configPoolUsage(config, fsm.leases(), NOW);
  t.same(usage[0]!.pools.map((p) => [p.pool, p.assigned, p.size, p.unknownPool === true]), [['10.60.0.100-10.60.0.149', 1, 50, false], ['10.60.0.200-10.60.0.203', 4, 4, true]]);
  t.equal(usage[0]!.reservedOutside, 1, 'the reservation is outside the pools (the unknownPool counts as none of them)');
  const findings = doctorFindings({ config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 1, commitIndex: 1, appliedIndex: 1, leaseValid: true }, pools: usage, leases: [...fsm.leases()], nowMs: NOW });
  const full = findings.filter((f) => f.id === 'dhcp.pool-usage');
  t.equal(full.length, 1, 'one pool finding: the unknownPool, not the 2 % used pool');
  t.match(full[0], { severity: 'error', evidence: 'unknownPool 10.60.0.200-10.60.0.203 of 10.60.0.0/24 (unknown clients) is 100 % used (4 of 4)' });
  t.match(full[0]!.fix, 'unknownLeaseTime');
});

t.test('doctor names worker threads and processes that stopped unasked', async (t) => {
  const i = input();
  const findings = doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 1, appliedIndex: 1, leaseValid: true },
    pools: [], leases: [], nowMs: NOW,
    tftp: { counters: { 'tftp.workers_exited': 2, 'tftp.workers_hung': 1, 'tftp.transfers_lost': 3 } },
    dns: { counters: { 'dns.workers.exited': 1 } },
  });
  const tftp = findings.find((f) => f.id === 'tftp.worker-exits');
  t.match(tftp, { severity: 'warning' });
  t.match(tftp?.evidence, '2 TFTP transfer thread(s) stopped unasked since the daemon started (1 of them hung and ended), losing 3 transfer(s)');
  t.match(tftp?.fix, 'tftp.worker_exited');
  t.match(findings.find((f) => f.id === 'dns.worker-exits')?.evidence, '1 DNS worker process(es) stopped unasked');
});

t.test('doctor names another DHCP server on the network, with how to find it, and a probe that cannot listen', async (t) => {
  const i = input();
  const base: DoctorInput = { config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 1, appliedIndex: 1, leaseValid: true }, pools: [], leases: [], nowMs: NOW };
  const server = { serverId: '10.0.0.9', source: '10.0.0.9', mac: '52:54:00:aa:bb:cc', offered: '10.0.0.201', bootfile: 'wrong.efi', nextServer: null, client: '52:54:00:00:00:07', via: ['probe', 'request'], offers: 3, requests: 1, firstSeen: '2026-12-03T18:00:00.000Z', lastSeen: '2026-12-03T18:02:00.000Z' };
  const findings = doctorFindings({ ...base, dhcp: { rogue: { probe: { state: 'failing', intervalMs: 60_000, problem: 'cannot listen on udp 0.0.0.0:68 for OFFERs: EADDRINUSE' }, servers: [server] } } });
  const rogue = findings.find((f) => f.id === 'dhcp.rogue-server');
  t.match(rogue, { severity: 'error' });
  t.match(rogue?.evidence, 'server id 10.0.0.9 from 10.0.0.9 (MAC 52:54:00:aa:bb:cc) offering 10.0.0.201 with boot file wrong.efi; it answered the probe and client 52:54:00:00:00:07 took its offer');
  t.match(rogue?.fix, 'the device with MAC 52:54:00:aa:bb:cc');
  t.match(rogue?.fix, 'turn its DHCP server off');
  t.match(rogue?.fix, 'dhcp.rogueProbe.ignore');
  t.match(findings.find((f) => f.id === 'dhcp.rogue-probe'), { severity: 'warning', evidence: /EADDRINUSE/ });
  const quiet = doctorFindings({ ...base, dhcp: { rogue: { probe: { state: 'probing', intervalMs: 60_000, problem: null }, servers: [] } } });
  t.notOk(quiet.some((f) => f.id.startsWith('dhcp.rogue')), 'nothing seen, probe running: no finding');
});

t.test('doctor across members: version, clock offset, silence and lag from their own reports', async (t) => {
  const i = input();
  const local = { node: 'lan-a', version: '0.2.0', configHash: 'same', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 5000, appliedIndex: 5000, lastIndex: 5000, walFsyncP99Ms: 1, bootFiles: null };
  const view = (over: Omit<Partial<MemberView>, 'report'> & { report?: Partial<MemberView['report']> }): MemberView => ({
    receivedAt: new Date(NOW).toISOString(), lastContactMs: 300, clockOffsetMs: 2, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: null, ...over,
    report: { ...local, node: 'x', role: 'follower', sentWallMs: NOW, echo: null, ...over.report },
  });
  const findings = doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 5000, appliedIndex: 5000, leaseValid: true },
    pools: [], leases: [], nowMs: NOW, local,
    members: {
      'lan-b': view({ report: { node: 'lan-b', version: '0.1.0', appliedIndex: 3000 }, clockOffsetMs: -1500.5 }),
      'lan-c': view({ report: { node: 'lan-c' }, clockOffsetMs: 900, offsetMethod: 'one-way', roundTripMs: null }),
      witness: view({ report: { node: 'witness' }, lastContactMs: 9000, clockOffsetMs: 120 }),
    },
  });
  const ids = findings.filter((f) => !f.id.startsWith('dhcp.')).map((f) => `${f.id}:${f.severity}`).sort();
  t.same(ids, ['cluster.clock-offset:error', 'cluster.clock-offset:warning', 'cluster.member-silent:warning', 'cluster.version-differs:warning', 'raft.member-lag:warning']);
  t.match(findings.find((f) => f.id === 'cluster.version-differs')?.evidence, 'lan-b runs lanha 0.1.0, lan-a runs 0.2.0');
  t.match(findings.find((f) => f.severity === 'error')?.evidence, "lan-b's clock is -1500.5 ms from lan-a's (measured over a 1 ms round trip)");
  t.match(findings.find((f) => f.id === 'raft.member-lag')?.evidence, 'lan-b has applied 3000, 2000 entries behind');
});

t.test('doctor across members: which member runs which apply level, and a member whose applying stopped at a newer entry', async (t) => {
  const i = input();
  const local = { node: 'lan-a', version: '0.1.0', configHash: 'same', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, lastIndex: 50, walFsyncP99Ms: 1, bootFiles: null, applyLevel: 2 };
  const view = (report: Partial<MemberView['report']>): MemberView => ({
    receivedAt: '', lastContactMs: 300, clockOffsetMs: 0, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: null,
    report: { ...local, role: 'follower', sentWallMs: NOW, echo: null, ...report },
  });
  const cluster = { mode: 'cluster' as const, role: 'leader' as const, leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, leaseValid: true };
  const run = (members: Record<string, MemberView>): string[] => doctorFindings({ config: i.config, cluster, pools: [], leases: [], nowMs: NOW, local, members })
    .filter((f) => f.id.startsWith('cluster.')).map((f) => `${f.id}: ${f.evidence}`);
  t.same(run({ 'lan-b': view({ node: 'lan-b', applyLevel: 2 }) }), [], 'same level: nothing');
  const { applyLevel: _level, ...before } = local;
  const older = view({ node: 'witness', role: 'witness' });
  older.report = { ...before, node: 'witness', role: 'witness', sentWallMs: NOW, echo: null };
  t.same(run({ witness: older }), [
    'cluster.apply-level-differs: witness (lanha 0.1.0) sends no apply level (a lanha from before apply levels: it applies level 1), lan-a (lanha 0.1.0) runs apply level 2: commands of level 2 and above are refused until every member runs it',
  ], 'the same package version, an older build: the level tells them apart');
  const stopped = doctorFindings({ config: i.config, cluster: { ...cluster, role: 'follower' as const, applyStopped: "entry 51 cannot be applied: a 'dhcp.future' command ..." }, pools: [], leases: [], nowMs: NOW })
    .filter((f) => f.id.startsWith('raft.'));
  t.same(stopped.map((f) => [f.id, f.severity]), [['raft.entry-too-new', 'error']]);
  t.match(stopped[0]?.fix, 'install the lanha version the other members run');
});

t.test('doctor across members: a configured member never heard from holds commands of a newer level back, and doctor says which and why', async (t) => {
  const i = input();
  const config = { ...i.config, cluster: { ...i.config.cluster, members: [{ name: 'lan-a' }, { name: 'lan-b' }, { name: 'witness', role: 'witness' }] } } as unknown as typeof i.config;
  const local = { node: 'lan-a', version: '0.1.0', configHash: 'same', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, lastIndex: 50, walFsyncP99Ms: 1, bootFiles: null, applyLevel: 2 };
  const view = (report: Partial<MemberView['report']>): MemberView => ({
    receivedAt: '', lastContactMs: 300, clockOffsetMs: 0, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: null,
    report: { ...local, role: 'follower', sentWallMs: NOW, echo: null, ...report },
  });
  const cluster = { mode: 'cluster' as const, role: 'leader' as const, leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, leaseValid: true };
  const held = (members: Record<string, MemberView>, over: Partial<typeof local> = {}) => doctorFindings({ config, cluster, pools: [], leases: [], nowMs: NOW, local: { ...local, ...over }, members }).filter((f) => f.id === 'cluster.level-held');
  const waiting = held({ 'lan-b': view({ node: 'lan-b' }) });
  t.same(waiting.map((f) => f.severity), ['warning'], 'the witness unheard from: one finding');
  t.match(waiting[0]?.evidence, 'commands of apply level 2 (lease.merge: a lone member\'s degraded DHCP journal merged into the leases');
  t.match(waiting[0]?.evidence, 'witness has sent no report since this node started');
  t.match(waiting[0]?.fix, 'lanctl status on witness; check its service and the network to it');
  t.same(held({ 'lan-b': view({ node: 'lan-b' }), witness: view({ node: 'witness', role: 'witness' }) }), [], 'every member heard at level 2: nothing');
  t.same(held({ 'lan-b': view({ node: 'lan-b' }) }, { applyLevel: 1 }), [], 'a member of level 1 holds nothing back');
  // A degraded journal waiting on this member: its finding says what holds the merge back.
  const degraded = { enabled: true, active: false, since: null, mcltMs: 3_600_000, ownHalf: ['10.50.0.100-10.50.0.149'], partner: 'lan-b', promise: '', notDegradedBecause: 'the cluster has a quorum', partnerAnswersArp: null as string | null,
    journal: { path: '/var/lib/lanha/dhcp-degraded.journal', id: 'j1', pending: 7 }, merged: {}, counters: {} };
  const journal = (members: Record<string, MemberView>) => doctorFindings({ config, cluster, pools: [], leases: [], nowMs: NOW, local, members, dhcp: { degraded } }).find((f) => f.id === 'dhcp.degraded-journal');
  const waitingJournal = journal({ 'lan-b': view({ node: 'lan-b' }) });
  t.match(waitingJournal?.evidence, '7 bindings this member granted alone wait in /var/lib/lanha/dhcp-degraded.journal to be merged into the log; the merge is held back: commands of apply level 2 (lease.merge');
  t.match(waitingJournal?.evidence, 'witness has sent no report since this node started');
  t.match(waitingJournal?.fix, 'lanctl status on witness: start or reach it, or upgrade it to apply level 2');
  const notHeld = journal({ 'lan-b': view({ node: 'lan-b' }), witness: view({ node: 'witness', role: 'witness' }) });
  t.notMatch(notHeld?.evidence, 'held back', 'every member at level 2: the journal waits for something else');
  t.match(notHeld?.fix, 'dhcp.degraded_merge_waits in the log says why not yet');
  // The partner's host answers ARP while its reports are silent: doctor says why this member stays out.
  const arp = doctorFindings({ config, cluster, pools: [], leases: [], nowMs: NOW, local, members: {}, dhcp: { degraded: { ...degraded, partnerAnswersArp: '10.50.0.3', journal: { ...degraded.journal, pending: 0 } } } }).find((f) => f.id === 'dhcp.degraded-partner-arp');
  t.match(arp?.evidence, 'partner 10.50.0.3 answers ARP: a cluster-link problem, not a dead partner', 'doctor: partner answers ARP');
  t.match(arp?.fix, 'check the cluster link to lan-b');
});

t.test('doctor across members: a config hash that differs between two builds is expected during the upgrade, between one build a warning', async (t) => {
  const i = input();
  const local = { node: 'lan-a', version: '0.1.0', configHash: 'a'.repeat(64), role: 'leader', leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, lastIndex: 50, walFsyncP99Ms: 1, bootFiles: null, applyLevel: 2 };
  const view = (report: Partial<MemberView['report']>): MemberView => ({
    receivedAt: '', lastContactMs: 300, clockOffsetMs: 0, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: null,
    report: { ...local, role: 'follower', sentWallMs: NOW, echo: null, ...report },
  });
  const cluster = { mode: 'cluster' as const, role: 'leader' as const, leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, leaseValid: true };
  const differs = (members: Record<string, MemberView>) => doctorFindings({ config: i.config, cluster, pools: [], leases: [], nowMs: NOW, local, members }).find((f) => f.id === 'cluster.config-differs');
  // The same file read by a build that added a setting with a default: another hash.
  const { applyLevel: _level, ...before } = local;
  const older = view({});
  older.report = { ...before, node: 'lan-b', role: 'follower', configHash: 'b'.repeat(64), sentWallMs: NOW, echo: null };
  const mixed = differs({ 'lan-b': older });
  t.equal(mixed?.severity, 'info', 'mixed levels: not a warning for the whole length of the upgrade');
  t.match(mixed?.evidence, `lan-b (lanha 0.1.0, apply level 1) runs config bbbbbbbbbbbb, lan-a (lanha 0.1.0, apply level 2) runs aaaaaaaaaaaa: expected while a rolling upgrade runs`);
  t.match(mixed?.evidence, 'the hash includes the defaults of settings the file leaves out');
  t.match(mixed?.fix, 'if the hashes still differ once every member runs the same build, copy the same lanha.yaml');
  const same = differs({ 'lan-b': view({ node: 'lan-b', configHash: 'b'.repeat(64) }) });
  t.equal(same?.severity, 'warning', 'one build, two hashes: two files, a warning as before');
  t.notMatch(same?.evidence, 'expected');
  t.equal(differs({ 'lan-b': view({ node: 'lan-b' }) }), undefined, 'the same hash: nothing');
});

t.test('doctor across members: two VIP holders, DNS serials apart at the same applied index', async (t) => {
  const i = input();
  const local = { node: 'lan-a', version: 'v', configHash: 'same', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, lastIndex: 50, walFsyncP99Ms: 1, bootFiles: null, dnsSerial: 7, vipHeld: true };
  const view = (report: Partial<MemberView['report']>, lastContactMs = 300): MemberView => ({
    receivedAt: '', lastContactMs, clockOffsetMs: 0, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: null,
    report: { ...local, role: 'follower', sentWallMs: NOW, echo: null, ...report },
  });
  const run = (members: Record<string, MemberView>): string[] => doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, leaseValid: true }, pools: [], leases: [], nowMs: NOW, local, members,
  }).filter((f) => f.id.startsWith('vip.') || f.id.startsWith('dns.')).map((f) => `${f.id}: ${f.evidence}`);
  t.same(run({ 'lan-b': view({ node: 'lan-b', vipHeld: false, dnsSerial: 7 }) }), [], 'one holder, same serial');
  t.same(run({ 'lan-b': view({ node: 'lan-b', vipHeld: true, dnsSerial: 9 }) }), [
    'dns.serial-differs: lan-b serves DNS serial 9, lan-a 7, both at applied index 50',
    'vip.holders: lan-a and lan-b all say they hold the VIP: clients get answers from either',
  ]);
  t.same(run({ 'lan-b': view({ node: 'lan-b', vipHeld: true, dnsSerial: 9, appliedIndex: 49 }, 9000) }), [], 'a silent member and a serial one entry behind are no evidence');
  t.same(run({ 'lan-b': view({ node: 'lan-b', vipHeld: true, term: 4 }) }), [], "the old holder's last report from before a failover (older term) is no second holder");
  const diverged = doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 50, appliedIndex: 50, leaseValid: true }, pools: [], leases: [], nowMs: NOW,
    local: { ...local, stateHash: 'a'.repeat(64) }, members: { 'lan-b': view({ node: 'lan-b', vipHeld: false, stateHash: 'b'.repeat(64) }) },
  }).filter((f) => f.id === 'cluster.state-differs');
  t.equal(diverged.length, 1);
  t.match(diverged[0]?.evidence, "lan-b's replicated state differs from lan-a's at the same applied index 50");
});

t.test('doctor: an IP with two MACs, bound twice or declined (another device answers ARP for it)', async (t) => {
  const i = input();
  const lease = (ip: string, mac: string, state: 'bound' | 'declined'): Lease => ({ ip: parseIpv4(ip)!, mac, subnet: '10.50.0.0/24', state, grantedAt: NOW - 10, expiresAt: NOW + 60_000, changedAt: NOW - 10 });
  const findings = doctorFindings({
    config: i.config, cluster: { mode: 'single-node', role: 'leader', leader: null, term: 1, commitIndex: 1, appliedIndex: 1 }, pools: [], nowMs: NOW,
    leases: [lease('10.50.0.101', '52:54:00:00:00:01', 'bound'), lease('10.50.0.101', '52:54:00:00:00:02', 'bound'), lease('10.50.0.102', '52:54:00:00:00:03', 'declined')],
  });
  const ids = findings.filter((f) => f.id === 'dhcp.ip-two-macs' || f.id === 'dhcp.address-in-use');
  t.same(ids.map((f) => `${f.id}:${f.severity}`), ['dhcp.ip-two-macs:error', 'dhcp.address-in-use:warning']);
  t.match(ids[0]!.evidence, '10.50.0.101 is bound to 52:54:00:00:00:01 and 52:54:00:00:00:02');
  t.match(ids[1]!.evidence, '10.50.0.102 was declined by 52:54:00:00:00:03');
});

t.test('doctor on cluster.backend etcd: every endpoint down is an error, one down a warning, foreign keys a warning', async (t) => {
  const i = input();
  const etcd = (health: Array<{ endpoint: string; ok: boolean; error: string | null }>, foreign = 0): ReturnType<typeof doctorFindings> => doctorFindings({
    config: i.config, pools: [], leases: [], nowMs: NOW,
    cluster: { mode: 'cluster', backend: 'etcd', role: 'leader', leader: 'lan-a', term: 7, commitIndex: 9, appliedIndex: 9, leaseValid: true, etcd: { health, prefix: '/lanha/r1/', skipped: 0, foreign } },
  });
  const ids = (f: ReturnType<typeof doctorFindings>): string[] => f.filter((x) => x.id.startsWith('etcd.')).map((x) => `${x.id}:${x.severity}`);
  t.same(ids(etcd([{ endpoint: 'http://e1:2379', ok: true, error: null }])), [], 'healthy: nothing');
  const all = etcd([{ endpoint: 'http://e1:2379', ok: false, error: 'etcd http://e1:2379: ECONNREFUSED' }, { endpoint: 'http://e2:2379', ok: false, error: 'etcd http://e2:2379: no answer within 5000 ms' }]);
  t.same(ids(all), ['etcd.unreachable:error']);
  t.match(all.find((f) => f.id === 'etcd.unreachable')?.evidence, /ECONNREFUSED.*no answer within 5000 ms\): no DHCP answers/);
  t.same(ids(etcd([{ endpoint: 'http://e1:2379', ok: false, error: 'x' }, { endpoint: 'http://e2:2379', ok: true, error: null }], 2)), ['etcd.endpoint-down:warning', 'etcd.foreign-keys:warning']);
});

t.test('doctor: a slow WAL fsync is a warning, however slow (a loaded machine must not fail doctor)', async (t) => {
  const i = input();
  const local = { node: 'lan-a', version: 'v', configHash: 'h', role: 'leader', leader: 'lan-a', term: 1, commitIndex: 1, appliedIndex: 1, lastIndex: 1, walFsyncP99Ms: 2500, bootFiles: null };
  const f = doctorFindings({ config: i.config, cluster: { mode: 'single-node', role: 'leader', leader: null, term: 1, commitIndex: 1, appliedIndex: 1 }, pools: [], leases: [], nowMs: NOW, local })
    .filter((x) => x.id === 'raft.wal-fsync');
  t.same(f.map((x) => x.severity), ['warning']);
  t.match(f[0]?.evidence, 'lan-a: WAL fsync p99 2500 ms');
});

t.test('doctor: a member whose ACK audit found ACKed leases lost is an error; 0 lost or no audit is nothing', async (t) => {
  const i = input();
  const local = { node: 'lan-a', version: 'v', configHash: 'h', role: 'leader', leader: 'lan-a', term: 3, commitIndex: 9, appliedIndex: 9, lastIndex: 9, walFsyncP99Ms: 1, bootFiles: null, ackAudit: { lostTotal: 0, audits: 2, checked: 14 } };
  const view = (ackAudit: { lostTotal: number; audits: number; checked: number | null } | null): MemberView => ({
    receivedAt: '', lastContactMs: 300, clockOffsetMs: 0, offsetMethod: 'round-trip', roundTripMs: 1, bootFiles: null,
    report: { ...local, node: 'lan-b', role: 'follower', ackAudit, sentWallMs: NOW, echo: null },
  });
  const run = (b: Parameters<typeof view>[0], a = local): string[] => doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 3, commitIndex: 9, appliedIndex: 9, leaseValid: true }, pools: [], leases: [], nowMs: NOW, local: a, members: { 'lan-b': view(b) },
  }).filter((f) => f.id === 'dhcp.acked-leases-lost').map((f) => `${f.severity}: ${f.evidence}`);
  t.same(run({ lostTotal: 0, audits: 1, checked: 6 }), [], 'none lost anywhere');
  t.same(run(null), [], 'a member without DHCP or an older version');
  t.same(run({ lostTotal: 2, audits: 1, checked: 6 }), ["error: lan-b's ACK audit found 2 lease(s) it ACKed missing from the committed log after a leadership change: clients hold addresses the cluster does not know"]);
  t.equal(run(null, { ...local, ackAudit: { lostTotal: 1, audits: 1, checked: 3 } }).length, 1, 'this node\'s own audit too');
});

t.test('doctor: leadership that keeps moving is a warning naming the lapses, the changes, the stalls and pauseTolerance', async (t) => {
  const i = input();
  const run = (stability: StabilityReport | undefined): ReturnType<typeof doctorFindings> => doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 9, commitIndex: 1, appliedIndex: 1, leaseValid: true, ...(stability ? { stability } : {}) },
    pools: [], leases: [], nowMs: NOW,
  }).filter((f) => f.id === 'raft.unstable');
  t.same(run(undefined), [], 'a backend without the report: nothing');
  t.same(run({ windowS: 600, leaseLapses: 2, leaderChanges: 3, longestStallMs: 120 }), [], `below ${UNSTABLE_EVENTS} events: nothing`);
  const f = run({ windowS: 600, leaseLapses: 11, leaderChanges: 7, longestStallMs: 1828 });
  t.same(f.map((x) => x.severity), ['warning']);
  t.match(f[0]?.evidence, /last 10 min .* lapsed 11 times .* leadership 7 times \(this process stalled up to 1828 ms\)/);
  t.match(f[0]?.fix, /raise cluster\.pauseTolerance/);
});

t.test('stability window: counts lapses and leadership changes of the last 10 minutes, and the longest stall among them', async (t) => {
  const s = new Stability();
  s.lapse(1_000, 900);
  s.leaderChange(2_000);
  s.lapse(400_000, 300);
  s.leaderChange(500_000);
  t.same(s.report(550_000), { windowS: 600, leaseLapses: 2, leaderChanges: 2, longestStallMs: 900 });
  t.same(s.report(602_500), { windowS: 600, leaseLapses: 1, leaderChanges: 1, longestStallMs: 300 }, 'the first lapse and change fell out of the window with their stall');
  for (let n = 0; n < 1000; n++) s.lapse(700_000 + n, 1);
  t.equal(s.report(701_000).leaseLapses, 256, 'at most 256 kept');
});

t.test('doctor: a member being rebuilt after lost storage says it does not vote yet', async (t) => {
  const i = input();
  const run = (rebuilding: boolean): Array<{ id: string; severity: string; evidence: string }> => doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'follower', leader: 'lan-b', term: 4, commitIndex: 10, appliedIndex: 10, ...(rebuilding ? { rebuilding: true } : {}) },
    pools: [], leases: [], nowMs: NOW,
  });
  const found = run(true).find((f) => f.id === 'raft.rebuilding');
  t.equal(found?.severity, 'warning');
  t.match(found?.evidence, 'it does not vote or campaign until a leader has caught it up');
  t.notOk(run(false).some((f) => f.id === 'raft.rebuilding'), 'not otherwise');
});

t.test('doctor: a member with no state that has not joined says what to do if it replaces a lost one', async (t) => {
  const i = input();
  const found = doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'follower', leader: null, term: 0, commitIndex: 0, appliedIndex: 0, rebuilding: true, fresh: true },
    pools: [], leases: [], nowMs: NOW,
  });
  const fresh = found.find((f) => f.id === 'raft.fresh');
  t.equal(fresh?.severity, 'warning');
  t.match(fresh?.evidence, 'cannot tell a new cluster from one whose member it replaces');
  t.match((fresh as { fix?: string } | undefined)?.fix, 'lanctl cluster rejoin');
  t.notOk(found.some((f) => f.id === 'raft.rebuilding'), 'not also reported as rebuilding');
});

t.test('--simulate on a subnet for known clients only: an unknown MAC gets no reply, an inventory node its offer, an unknownPool no bootfile', async (t) => {
  const i = input();
  i.config = parseConfig(CONFIG.replace('      reservations:\n', '      clients: known\n      reservations:\n'));
  i.fsm.apply(7, { at: NOW, command: { type: 'node.add', name: 'n1', mac: '52:54:00:aa:bb:01' } });
  i.leases = { ...i.leases, inventory: i.fsm.inventory };
  const stranger = simulate(i, { mac: '52:54:00:aa:bb:cc', arch: 7 });
  t.match(stranger.ok ? stranger.dhcp?.decision : '', 'no reply: unknown client on a subnet for known clients only');
  const node = simulate(i, { mac: '52:54:00:aa:bb:01', arch: 7 });
  t.equal(node.ok ? node.dhcp?.decision : '', 'OFFER 10.50.0.102');
  i.config = parseConfig(CONFIG.replace('      reservations:\n', '      clients: known\n      unknownPool: 10.50.0.200-10.50.0.209\n      reservations:\n'));
  const guest = simulate(i, { mac: '52:54:00:aa:bb:cc', arch: 7 });
  t.equal(guest.ok ? guest.dhcp?.decision : '', 'OFFER 10.50.0.200');
  t.match(guest.ok ? guest.dhcp?.boot.result : '', 'unknownPool): no bootfile');
  t.notOk(guest.ok && guest.dhcp?.options.some((o) => o.code === 67), 'no option 67 in the trace');
});

t.test('doctor warns when boot rules are served but replies without an address go to the subnet broadcast (UEFI ignores them)', async (t) => {
  const i = input();
  const base: DoctorInput = { config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 1, appliedIndex: 1, leaseValid: true }, pools: [], leases: [], nowMs: NOW };
  t.ok((i.config.dhcp?.boot.length ?? 0) > 0, 'the config has boot rules');
  const found = doctorFindings({ ...base, dhcp: { broadcastTo: '10.0.0.255' } }).filter((f) => f.id === 'dhcp.broadcast');
  t.equal(found.length, 1);
  t.match(found[0], { severity: 'warning' });
  t.match(found[0]?.evidence, 'go to 10.0.0.255, not 255.255.255.255');
  t.match(found[0]?.fix, 'an address on the DHCP subnet');
  t.same(doctorFindings({ ...base, dhcp: { broadcastTo: '255.255.255.255' } }).filter((f) => f.id === 'dhcp.broadcast'), [], 'nothing when UEFI can hear the replies');
  const noBoot = { ...i.config, dhcp: { ...i.config.dhcp!, boot: [] } };
  t.same(doctorFindings({ ...base, config: noBoot, dhcp: { broadcastTo: '10.0.0.255' } }).filter((f) => f.id === 'dhcp.broadcast'), [], 'nothing without boot rules');
});

t.test('doctor says when a subnet for known clients only left unknown clients unanswered, and how to let one in', async (t) => {
  const i = input();
  const base: DoctorInput = { config: i.config, cluster: { mode: 'cluster', role: 'leader', leader: 'lan-a', term: 5, commitIndex: 1, appliedIndex: 1, leaseValid: true }, pools: [], leases: [], nowMs: NOW };
  const clients = [
    { subnet: '10.0.0.0/24', clients: 'known', unknownPool: null, ignored: 4 },
    { subnet: '10.0.1.0/24', clients: 'known', unknownPool: null, ignored: 0 },
    { subnet: '10.0.2.0/24', clients: 'all', unknownPool: null, ignored: 0 },
  ];
  const found = doctorFindings({ ...base, dhcp: { clients } }).filter((f) => f.id === 'dhcp.unknown-clients');
  t.equal(found.length, 1, 'only the subnet that ignored someone');
  t.match(found[0], { severity: 'info' });
  t.match(found[0]?.evidence, '10.0.0.0/24 serves known clients only (clients: known) and left 4 requests of unknown clients unanswered');
  t.match(found[0]?.fix, 'lanctl nodes accept MAC NAME');
  t.same(doctorFindings(base).filter((f) => f.id === 'dhcp.unknown-clients'), [], 'nothing without a DHCP status');
});

t.test('an inventory node with an address is named as the reservation, in a simulation and for its MAC', async (t) => {
  const i = input();
  i.fsm.apply(7, { at: NOW, command: { type: 'node.add', name: 'pi03', mac: '52:54:00:aa:bb:03', ip: parseIpv4('10.50.0.150')! } });
  i.leases = { ...i.leases, inventory: i.fsm.inventory };
  const sim = simulate(i, { mac: '52:54:00:aa:bb:03' });
  t.equal(sim.ok ? sim.dhcp?.decision : '', 'OFFER 10.50.0.150 (reserved)');
  t.equal(sim.ok ? sim.dhcp?.reservation.byMac : '', '10.50.0.150, inventory node pi03 (lanctl nodes show pi03)', 'not "reservation by MAC: none" beside a reserved offer');
  const stranger = simulate(i, { mac: '52:54:00:aa:bb:cc' });
  t.equal(stranger.ok ? stranger.dhcp?.reservation.byMac : 'x', null, 'a MAC no node has: none');
});

t.test('doctor: a VIP held degraded is a warning that says so, not the error of a follower holding it', async (t) => {
  const i = input();
  const at = (vip: Record<string, unknown>) => doctorFindings({
    config: i.config, cluster: { mode: 'cluster', role: 'follower', leader: null, term: 5, commitIndex: 1, appliedIndex: 1 },
    pools: [], leases: [], nowMs: NOW, vip,
  });
  const degraded = at({ held: true, degraded: true, address: '10.50.0.1/24' });
  t.match(degraded.find((f) => f.id === 'vip.degraded'), { severity: 'warning', evidence: /holds the VIP 10\.50\.0\.1\/24 degraded/ });
  t.notOk(degraded.some((f) => f.id === 'vip.holder'), 'no vip.holder error');
  const plain = at({ held: true, address: '10.50.0.1/24' });
  t.match(plain.find((f) => f.id === 'vip.holder'), { severity: 'error' }, 'a follower holding it without the flag is still an error');
});
