import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { formatIpv4 } from '../../lib/ipv4.js';
import type { Lease } from '../../cluster/fsm.js';
import type { StateLogStatus } from '../../cluster/state-log.js';
import type { SubnetUsage } from '../dhcp/pool-usage.js';
import { protocolGaps, type OpsTracker } from './tracker.js';
import type { LatencyWindow } from '../../lib/latency.js';
import type { MemberStatusSource } from '../../cluster/member-status.js';
import { hasQuorum, type Finding } from './doctor.js';
import type { AckAuditSummary } from '../../cluster/ack-audit.js';
import { fdUsage } from '../../lib/fd-exhaustion.js';
import { processLoopDelay, type LoopDelayWindow } from '../../lib/loop-delay.js';

// /metrics: Prometheus text from a private prom-client Registry. Nothing on a packet path writes
// here except the DHCP ACK histogram; every other value is read from the live state when scraped
// (collect callbacks). Naming (research/ux-ops.md §2): `lanha_` prefix, base units, `_total` only
// on counters, a state as one 0/1 gauge per value, no MAC/IP/hostname labels unless
// `http.perClientMetrics`.

export interface MetricsView {
  node: string;
  version: string;
  cluster(): StateLogStatus;
  services(): ReadonlyArray<{ name: string; status: Record<string, unknown> }>;
  pools(): SubnetUsage[];
  leases(): Iterable<Lease>;
  tracker: OpsTracker;
  findings(): Finding[];
  nowMs(): number;
  /** Services the config enables: only their metric families are registered. */
  enabled: ReadonlySet<string>;
  /** What the other members last reported about themselves. */
  members?: MemberStatusSource;
  /** The WAL's fsync durations (the Raft backend), observed into a histogram as they happen. */
  walFsync?: LatencyWindow | null;
  /** The audit of the ACKs this node sent (cluster/ack-audit.ts). */
  ackAudit?: () => AckAuditSummary;
}

export const RAFT_ROLES = ['leader', 'follower', 'candidate', 'learner', 'witness'] as const;
export const WAL_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
export const ACK_BUCKETS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

/** `received.discover` -> `discover`, `dropped.rate-limited.mac` -> `rate_limited_mac`. */
export function labelValue(text: string): string {
  return text.replace(/[^a-zA-Z0-9_]/g, '_');
}

function counters(status: Record<string, unknown> | undefined): Record<string, number> {
  const c = status?.['counters'];
  return typeof c === 'object' && c !== null ? c as Record<string, number> : {};
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export interface LanhaMetrics {
  registry: Registry;
  /** REQUEST received -> ACK sent, including the Raft commit (the DHCP shell calls this). */
  observeDhcpAck(seconds: number): void;
  text(): Promise<string>;
  contentType: string;
}

export function createMetrics(view: MetricsView, options: { perClient: boolean; defaults?: boolean }): LanhaMetrics {
  const registry = new Registry();
  const r = [registry];
  const status = (name: string): Record<string, unknown> | undefined => view.services().find((s) => s.name === name)?.status;

  new Gauge({ name: 'lanha_build_info', help: 'Always 1: the version and node of this daemon.', labelNames: ['version', 'node'], registers: r,
    collect() { this.reset(); this.set({ version: view.version, node: view.node }, 1); } });
  new Gauge({ name: 'lanha_service_up', help: '1 for each service this daemon runs.', labelNames: ['service'], registers: r,
    collect() { this.reset(); for (const s of view.services()) this.set({ service: s.name }, 1); this.set({ service: 'http' }, 1); } });

  // ---- Raft ----
  new Gauge({ name: 'lanha_raft_role', help: 'This member\'s Raft role: 1 for the current one, 0 for the others.', labelNames: ['role'], registers: r,
    collect() { const role = view.cluster().role; for (const x of RAFT_ROLES) this.set({ role: x }, role === x ? 1 : 0); } });
  const scalar = (name: string, help: string, read: (c: StateLogStatus) => number | null): void => {
    new Gauge({ name, help, registers: r, collect() { this.reset(); const v = read(view.cluster()); if (v !== null) this.set(v); } });
  };
  scalar('lanha_raft_term', 'Current Raft term.', (c) => c.term);
  scalar('lanha_raft_commit_index', 'Highest log index known committed.', (c) => c.commitIndex);
  scalar('lanha_raft_applied_index', 'Highest log index applied to the state here.', (c) => c.appliedIndex);
  scalar('lanha_raft_last_index', 'Highest log index stored here.', (c) => num(c['lastIndex']));
  scalar('lanha_raft_has_quorum', '1 when a leader with a valid lease is known (this node, or the leader it follows).', (c) => (hasQuorum(c) ? 1 : 0));
  new Gauge({ name: 'lanha_raft_peer_lag_entries', help: 'On the leader: entries each member is behind this node\'s last index.', labelNames: ['peer'], registers: r,
    collect() {
      this.reset();
      const c = view.cluster();
      const last = num(c['lastIndex']);
      const progress = c['progress'] as Record<string, { match: number }> | undefined;
      if (last === null || progress === undefined) return;
      for (const [peer, p] of Object.entries(progress)) if (peer !== view.node) this.set({ peer }, Math.max(0, last - p.match));
    } });
  new Gauge({ name: 'lanha_raft_peer_connected', help: '1 when the outbound transport connection to the member is up.', labelNames: ['peer'], registers: r,
    collect() {
      this.reset();
      const peers = (view.cluster()['transport'] as { peers?: Record<string, { connected?: boolean }> } | undefined)?.peers ?? {};
      for (const [peer, p] of Object.entries(peers)) this.set({ peer }, p.connected === true ? 1 : 0);
    } });
  if (view.members) {
    const members = view.members;
    new Gauge({ name: 'lanha_raft_peer_last_contact_seconds', help: 'Seconds since each other member\'s last report about itself arrived (reports come every second).', labelNames: ['peer'], registers: r,
      collect() { this.reset(); for (const [peer, v] of Object.entries(members.members())) this.set({ peer }, v.lastContactMs / 1000); } });
    new Gauge({ name: 'lanha_peer_clock_offset_seconds', help: 'Each other member\'s clock minus this one\'s, from the stamps of their reports.', labelNames: ['peer'], registers: r,
      collect() { this.reset(); for (const [peer, v] of Object.entries(members.members())) this.set({ peer }, v.clockOffsetMs / 1000); } });
  }
  new Counter({ name: 'lanha_raft_leader_changes_total', help: 'Leader changes seen by this node since it started.', registers: r,
    collect() { this.reset(); this.inc(view.tracker.leaderChanges); } });
  new Counter({ name: 'lanha_raft_term_changes_total', help: 'Term changes (elections) seen by this node since it started.', registers: r,
    collect() { this.reset(); this.inc(view.tracker.termChanges); } });
  new Counter({ name: 'lanha_raft_wal_fsyncs_total', help: 'fsync calls of the Raft WAL.', registers: r,
    collect() { this.reset(); const s = view.cluster()['storage'] as { fsyncs?: number } | undefined; this.inc(s?.fsyncs ?? 0); } });
  new Counter({ name: 'lanha_raft_wal_batches_total', help: 'Append batches of the Raft WAL (group commit: entries share one fsync).', registers: r,
    collect() { this.reset(); const s = view.cluster()['storage'] as { batches?: number } | undefined; this.inc(s?.batches ?? 0); } });

  if (view.walFsync) {
    const fsync = new Histogram({ name: 'lanha_raft_wal_fsync_duration_seconds', help: 'Each fdatasync of the Raft WAL (one per append batch).', buckets: WAL_BUCKETS_S, registers: r });
    view.walFsync.subscribe((ms) => fsync.observe(ms / 1000));
  }

  // ---- VIP and failover ----
  if (view.enabled.has('vip')) {
    new Gauge({ name: 'lanha_vip_held', help: '1 while this node holds the VIP; summed over the members it must be 1.', labelNames: ['address'], registers: r,
      collect() { this.reset(); const v = status('vip'); if (v) this.set({ address: String(v['address']) }, v['held'] === true ? 1 : 0); } });
    new Gauge({ name: 'lanha_vip_held_degraded', help: '1 while this node holds the VIP degraded (no quorum, dhcp.degraded: HA.md 2.5 DEGRADED-SOLO).', labelNames: ['address'], registers: r,
      collect() { this.reset(); const v = status('vip'); if (v && v['degraded'] !== undefined) this.set({ address: String(v['address']) }, v['degraded'] === true ? 1 : 0); } });
    const vipCounter = (name: string, key: string, help: string): void => {
      new Counter({ name, help, registers: r, collect() { this.reset(); const v = num(status('vip')?.[key]); if (v !== null) this.inc(v); } });
    };
    vipCounter('lanha_vip_acquisitions_total', 'acquisitions', 'Times this node took the VIP.');
    vipCounter('lanha_vip_releases_total', 'releases', 'Times this node let the VIP go.');
    vipCounter('lanha_vip_renewals_total', 'renewals', 'Kernel-lifetime renewals of the VIP.');
    vipCounter('lanha_vip_garp_sent_total', 'garps', 'Gratuitous ARP bursts sent for the VIP.');
    new Gauge({ name: 'lanha_failover_gap_seconds', help: 'The last failover\'s gap per protocol: method="probe" the first answer to this node\'s probes of the VIP, "derived" from the parts the daemons timed; trigger="transfer" for a lanctl failover run on this node (from the release here), "election" for the last takeover after the leader went silent (from when the new holder last heard it).', labelNames: ['protocol', 'trigger', 'method'], registers: r,
      collect() { this.reset(); for (const g of protocolGaps(view.tracker.lastFailover, view.tracker.lastTakeover, view.tracker.probed)) this.set({ protocol: g.protocol, trigger: g.trigger, method: g.method }, g.seconds); } });
  }

  // ---- DHCP ----
  const ack = new Histogram({ name: 'lanha_dhcp_ack_duration_seconds', help: 'REQUEST received to ACK sent, including the Raft commit.', buckets: ACK_BUCKETS_S, registers: view.enabled.has('dhcp') ? r : [] });
  if (view.enabled.has('dhcp') && view.ackAudit !== undefined) {
    const audit = view.ackAudit;
    new Counter({ name: 'lanha_dhcp_acked_leases_lost_total', help: 'Leases this node ACKed whose log entry was not in the committed log after a leadership change (the ACK audit; the durability promise says 0).', registers: r,
      collect() { this.reset(); this.inc(audit().lostTotal); } });
    new Counter({ name: 'lanha_dhcp_ack_audits_total', help: 'ACK audits run after a leadership change (each checks the ACKs this node recorded).', registers: r,
      collect() { this.reset(); this.inc(audit().audits); } });
    new Gauge({ name: 'lanha_dhcp_acks_recorded', help: 'ACKs held for the audit (a bounded ring of the newest).', registers: r,
      collect() { this.set(audit().recorded); } });
  }
  if (view.enabled.has('dhcp')) {
    const dhcpCounter = (name: string, help: string, prefix: string, label: string): void => {
      new Counter({ name, help, labelNames: [label], registers: r,
        collect() {
          this.reset();
          for (const [k, v] of Object.entries(counters(status('dhcp')))) if (k.startsWith(prefix)) this.inc({ [label]: labelValue(k.slice(prefix.length)) }, v);
        } });
    };
    dhcpCounter('lanha_dhcp_packets_received_total', 'DHCP requests received, by message type.', 'received.', 'type');
    dhcpCounter('lanha_dhcp_packets_sent_total', 'DHCP replies sent, by message type.', 'sent.', 'type');
    dhcpCounter('lanha_dhcp_packets_dropped_total', 'DHCP packets dropped without a reply, by reason.', 'dropped.', 'reason');
    const dhcpTotal = (name: string, help: string, key: string): void => {
      new Counter({ name, help, registers: r, collect() { this.reset(); this.inc(counters(status('dhcp'))[key] ?? 0); } });
    };
    // Degraded split-pool mode (dhcp.degraded): 1 while this member answers DHCP alone, and its journal.
    const degraded = (): { active?: boolean; journal?: { pending?: number } } | undefined => status('dhcp')?.['degraded'] as { active?: boolean; journal?: { pending?: number } } | undefined;
    new Gauge({ name: 'lanha_dhcp_degraded', help: 'DHCP degraded split-pool mode (dhcp.degraded): 1 while this member answers alone from its half of the pools, ACKed leases durable on this node only.', registers: r,
      collect() { this.set(degraded()?.active === true ? 1 : 0); } });
    new Gauge({ name: 'lanha_dhcp_degraded_journal_records', help: 'Bindings in this member\'s degraded journal not merged into the log yet.', registers: r,
      collect() { this.set(degraded()?.journal?.pending ?? 0); } });
    dhcpTotal('lanha_dhcp_lease_reuses_total', 'REQUESTs ACKed from the committed lease with the lease time left, writing nothing (lease caching: dhcp.cacheThreshold, dhcp.cacheMaxAge; Kea\'s v4-lease-reuses).', 'lease.reused');
    const pool = (name: string, help: string, read: (p: SubnetUsage['pools'][number]) => number): void => {
      new Gauge({ name, help, labelNames: ['subnet', 'pool'], registers: r,
        collect() { this.reset(); for (const s of view.pools()) for (const p of s.pools) this.set({ subnet: p.subnet, pool: p.pool }, read(p)); } });
    };
    pool('lanha_dhcp_pool_addresses', 'Addresses in the dynamic pool (a known-only subnet\'s unknownPool is a pool of its own).', (p) => p.size);
    pool('lanha_dhcp_pool_addresses_assigned', 'Pool addresses bound to a client now.', (p) => p.assigned);
    pool('lanha_dhcp_pool_addresses_declined', 'Pool addresses in decline quarantine.', (p) => p.declined);
    pool('lanha_dhcp_pool_utilization_ratio', 'Assigned / size of the pool (0..1).', (p) => p.ratio);
    new Gauge({ name: 'lanha_dhcp_reserved_addresses', help: 'Reservations of the subnet, inside a pool or outside.', labelNames: ['subnet', 'placement'], registers: r,
      collect() {
        this.reset();
        for (const s of view.pools()) {
          this.set({ subnet: s.subnet, placement: 'outside_pool' }, s.reservedOutside);
          this.set({ subnet: s.subnet, placement: 'inside_pool' }, s.reservations - s.reservedOutside);
        }
      } });
    new Gauge({ name: 'lanha_dhcp_leases', help: 'Leases in the replicated state, by state.', labelNames: ['subnet', 'state'], registers: r,
      collect() { this.reset(); for (const s of view.pools()) for (const [state, n] of Object.entries(s.leases)) this.set({ subnet: s.subnet, state }, n); } });
    dhcpTotal('lanha_dhcp_rapid_commit_acks_total', 'DISCOVERs with option 80 answered by an ACK of a committed lease (Rapid Commit, RFC 4039; dhcp.subnets[].rapidCommit).', 'rapid-commit.acked');
    dhcpTotal('lanha_dhcp_bootp_ignored_total', 'BOOTREQUESTs of BOOTP clients without a reserved address that got no reply (dhcp.bootp.dynamic is off).', 'ignored.bootp-unknown');
    dhcpTotal('lanha_dhcp_offers_reclaimed_total', 'Outstanding offers taken back for a new client because the pool had no free address (a DISCOVER flood, or a pool too small).', 'offer.reclaimed');
    // Inventory mode (dhcp.subnets[].clients): which subnets serve known clients only, and the unknown clients they ignored.
    const modes = (): Array<{ subnet: string; clients: string; ignored: number }> => {
      const c = status('dhcp')?.['clients'];
      return Array.isArray(c) ? c as Array<{ subnet: string; clients: string; ignored: number }> : [];
    };
    new Gauge({ name: 'lanha_dhcp_subnet_known_clients_only', help: '1 when the subnet serves known clients only (clients: known: a reservation or an inventory node), else 0.', labelNames: ['subnet'], registers: r,
      collect() { this.reset(); for (const m of modes()) this.set({ subnet: m.subnet }, m.clients === 'known' ? 1 : 0); } });
    new Counter({ name: 'lanha_dhcp_unknown_clients_ignored_total', help: 'Requests of unknown clients that got no reply on a subnet for known clients only (clients: known, no unknownPool).', labelNames: ['subnet'], registers: r,
      collect() { this.reset(); for (const m of modes()) if (m.clients === 'known') this.inc({ subnet: m.subnet }, m.ignored); } });
    new Gauge({ name: 'lanha_dhcp_rogue_servers', help: 'Other DHCP servers (server ids not this site\'s, not in dhcp.rogueProbe.ignore) seen in the last few probe intervals, by the probe or by a client\'s REQUEST naming one.', registers: r,
      collect() { this.reset(); const servers = (status('dhcp')?.['rogue'] as { servers?: unknown[] } | undefined)?.servers; if (servers !== undefined) this.set(servers.length); } });
    new Counter({ name: 'lanha_dhcp_rogue_offers_total', help: 'OFFERs from other DHCP servers heard by the rogue probe.', registers: r,
      collect() { this.reset(); this.inc(counters(status('dhcp'))['rogue.offers'] ?? 0); } });
    new Counter({ name: 'lanha_dhcp_rogue_requests_total', help: 'Clients\' REQUESTs (SELECTING) naming another DHCP server: they took its offer.', registers: r,
      collect() { this.reset(); this.inc(counters(status('dhcp'))['rogue.requests'] ?? 0); } });
    new Gauge({ name: 'lanha_dhcp_offers_pending', help: 'Offers held in memory waiting for a REQUEST.', registers: r,
      collect() { this.reset(); const v = num(status('dhcp')?.['offers']); if (v !== null) this.set(v); } });
    if (options.perClient) {
        new Gauge({ name: 'lanha_dhcp_lease_expiry_timestamp_seconds', help: 'Per bound lease (opt-in: http.perClientMetrics): when it ends, Unix seconds.', labelNames: ['mac', 'ip', 'hostname'], registers: r,
          collect() {
            this.reset();
            const now = view.nowMs();
            for (const l of view.leases()) if (l.state === 'bound' && l.expiresAt > now) this.set({ mac: l.mac, ip: formatIpv4(l.ip), hostname: l.hostname ?? '' }, Math.round(l.expiresAt / 1000));
          } });
    }
  }

  // ---- DNS, TFTP ----
  const serviceCounter = (service: string, name: string, help: string, keys: Record<string, Record<string, string>>, labelName?: string): void => {
    new Counter({ name, help, labelNames: labelName === undefined ? [] : [labelName], registers: r,
      collect() {
        this.reset();
        const c = counters(status(service));
        if (status(service) === undefined) return;
        for (const [key, labels] of Object.entries(keys)) this.inc(labels, c[key] ?? 0);
      } });
  };
  if (view.enabled.has('dns')) {
    serviceCounter('dns', 'lanha_dns_queries_total', 'DNS queries received (UDP and TCP, workers included).', { 'dns.queries': {} });
    serviceCounter('dns', 'lanha_dns_cache_hits_total', 'Forwarded names answered from the cache.', { 'dns.forward.cache_hit': {} });
    serviceCounter('dns', 'lanha_dns_cache_misses_total', 'Forwarded names not in the cache.', { 'dns.forward.cache_miss': {} });
    serviceCounter('dns', 'lanha_dns_forward_errors_total', 'Forwarding failures, by reason.', {
      'dns.forward.upstream_timeout': { reason: 'timeout' }, 'dns.forward.servfail': { reason: 'servfail' },
      'dns.forward.spoofed': { reason: 'spoofed' }, 'dns.forward.overload': { reason: 'overload' }, 'dns.forward.upstream_error': { reason: 'error' },
    }, 'reason');
    serviceCounter('dns', 'lanha_dns_worker_exits_total', 'DNS UDP worker processes that stopped unasked (each is started again).', { 'dns.workers.exited': {} });
    serviceCounter('dns', 'lanha_dns_rrl_total', 'Responses withheld by rate limiting, by action.', { 'dns.rrl.dropped': { action: 'dropped' }, 'dns.rrl.slipped': { action: 'slipped' } }, 'action');
    new Gauge({ name: 'lanha_dns_zone_serial', help: 'SOA serial of the zones served here.', registers: r,
      collect() { this.reset(); const v = num(status('dns')?.['serial']); if (v !== null) this.set(v); } });
    new Gauge({ name: 'lanha_dns_cache_entries', help: 'Entries in the forwarding cache.', registers: r,
      collect() { this.reset(); const v = num(status('dns')?.['forwardCache']); if (v !== null) this.set(v); } });
  }
  if (view.enabled.has('tftp')) {
    serviceCounter('tftp', 'lanha_tftp_transfers_started_total', 'TFTP transfers started.', { 'tftp.transfers_started': {} });
    serviceCounter('tftp', 'lanha_tftp_sent_bytes_total', 'TFTP payload bytes sent.', { 'tftp.bytes_sent': {} });
    serviceCounter('tftp', 'lanha_tftp_retransmits_total', 'TFTP blocks sent again.', { 'tftp.retransmits': {} });
    serviceCounter('tftp', 'lanha_tftp_transfers_reclaimed_total', 'TFTP transfers never acknowledged for a retransmit interval, ended to give their slot to a new request, by the limit that was full.', {
      'tftp.reclaimed_unconfirmed': { limit: 'maxTransfers' }, 'tftp.reclaimed_unconfirmed_own': { limit: 'perClientTransfers' },
    }, 'limit');
    serviceCounter('tftp', 'lanha_tftp_worker_exits_total', 'TFTP transfer threads that stopped unasked (each is started again).', { 'tftp.workers_exited': {} });
    serviceCounter('tftp', 'lanha_tftp_transfers_lost_total', 'TFTP transfers lost with a transfer thread that stopped (their clients retry).', { 'tftp.transfers_lost': {} });
    serviceCounter('tftp', 'lanha_tftp_transfers_unacknowledged_total', 'TFTP transfers given up after their first OACK or DATA went unacknowledged through its retransmissions (spoofed or dead sources).', { 'tftp.unconfirmed_gave_up': {} });
    // The block cache every transfer thread shares (services/tftp/block-cache.ts): how much of it
    // holds file data, and whether boot files are served from it or read from disk again.
    const tftpCache = (key: string): number | null => num((status('tftp')?.['cache'] as Record<string, unknown> | undefined)?.[key]);
    new Gauge({ name: 'lanha_tftp_cache_bytes', help: 'Octets of files held in the TFTP block cache shared by every transfer thread (at most tftp.cacheMiB).', registers: r,
      collect() { this.reset(); const v = tftpCache('bytes'); if (v !== null) this.set(v); } });
    for (const [name, key, help] of [['lanha_tftp_cache_hits_total', 'hits', 'TFTP block cache lookups served without a read of their own.'], ['lanha_tftp_cache_misses_total', 'misses', 'TFTP block cache chunks read from disk (read-ahead included).']] as const) {
      new Counter({ name, help, registers: r, collect() { this.reset(); const v = tftpCache(key); if (v !== null) this.inc(v); } });
    }

  }

  // ---- NTP ----
  if (view.enabled.has('ntp')) {
    new Gauge({ name: 'lanha_ntp_synchronized', help: '1 when this node serves synchronised time (leap indicator not 3).', registers: r,
      collect() { this.reset(); const s = status('ntp'); if (s) this.set(s['synchronised'] === true ? 1 : 0); } });
    new Gauge({ name: 'lanha_ntp_stratum', help: 'Stratum this node serves.', registers: r,
      collect() { this.reset(); const v = num(status('ntp')?.['stratum']); if (v !== null) this.set(v); } });
    new Gauge({ name: 'lanha_ntp_offset_seconds', help: 'Offset of each time source (upstream or peer:<member>) to this node\'s clock.', labelNames: ['source'], registers: r,
      collect() {
        this.reset();
        for (const s of ntpSources(status('ntp'))) if (s.offsetMs !== null) this.set({ source: s.kind === 'peer' ? `peer:${s.name}` : s.name }, s.offsetMs / 1000);
      } });
    new Gauge({ name: 'lanha_ntp_source_reachability_ratio', help: 'Answers to the last 8 polls of each source (0..1).', labelNames: ['source'], registers: r,
      collect() {
        this.reset();
        for (const s of ntpSources(status('ntp'))) {
          const reach = Number.parseInt(s.reach, 8);
          if (Number.isFinite(reach)) this.set({ source: s.kind === 'peer' ? `peer:${s.name}` : s.name }, popcount(reach & 0xff) / 8);
        }
      } });
    new Gauge({ name: 'lanha_ntp_root_delay_seconds', help: 'Root delay this node serves.', registers: r,
      collect() { this.reset(); const v = num(status('ntp')?.['rootDelayMs']); if (v !== null) this.set(v / 1000); } });
    new Gauge({ name: 'lanha_ntp_root_dispersion_seconds', help: 'Root dispersion this node serves.', registers: r,
      collect() { this.reset(); const v = num(status('ntp')?.['rootDispersionMs']); if (v !== null) this.set(v / 1000); } });
    new Counter({ name: 'lanha_ntp_receive_stamps_total', help: 'Replies by where their receive stamp came from: the kernel capture (kernel, kernel_waited) or the wake-up estimate (estimate_timeout, estimate_busy).', labelNames: ['source'], registers: r,
      collect() {
        this.reset();
        const used = (status('ntp')?.['kernelStamps'] as { used?: Record<string, unknown> } | null | undefined)?.used;
        for (const [source, v] of Object.entries(used ?? {})) { const n = num(v); if (n !== null) this.inc({ source }, n); }
      } });

  }

  // ---- doctor ----
  new Gauge({ name: 'lanha_doctor_findings', help: 'Findings of the runtime checks (lanctl doctor), by check and severity.', labelNames: ['check', 'severity'], registers: r,
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const f of view.findings()) counts.set(`${f.id}\u0000${f.severity}`, (counts.get(`${f.id}\u0000${f.severity}`) ?? 0) + 1);
      for (const [key, n] of counts) { const [check, severity] = key.split('\u0000'); this.set({ check: check!, severity: severity! }, n); }
    } });

  if (options.defaults !== false) {
    // prom-client's event-loop gauges come from a monitorEventLoopDelay of its own, at a 10 ms
    // resolution unless told otherwise: 100 wake-ups a second of an idle daemon (bench:idle). Its
    // monitor is put to a minute; the same gauges are filled from this process's probe
    // (lib/loop-delay.ts: every 10 ms while the loop is busy), per scrape as prom-client's were.
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 60_000 });
    loopDelayGauges(registry);
    // Gauges that prom-client names with `_total`: promtool (rightly) refuses them; the same counts
    // stay available as nodejs_active_handles / _requests / _resources by type.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
    fdGauges(registry);
  }
  return {
    registry,
    observeDhcpAck: (seconds) => ack.observe(seconds),
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

/**
 * process_open_fds and process_max_fds from lib/fd-exhaustion.ts fdUsage, and lanha_fds_exhausted.
 * prom-client's read /proc and, when that failed for want of a descriptor, kept the values of the
 * scrape before: out of descriptors, the scrape showed the usage from before the shortage
 * (process_open_fds well below process_max_fds), so the one time an alert on their ratio should
 * fire it could not.
 */
function fdGauges(registry: Registry): void {
  for (const name of ['process_open_fds', 'process_max_fds']) registry.removeSingleMetric(name);
  // A scrape collects in registration order: the first reads /proc, the other two use that reading.
  let usage = fdUsage();
  new Gauge({ name: 'process_open_fds', help: 'Number of open file descriptors (out of them: the limit, at least that many).', registers: [registry],
    collect() { usage = fdUsage(); if (usage.open !== null) this.set(usage.open); } });
  new Gauge({ name: 'process_max_fds', help: 'Maximum number of open file descriptors (out of them: the limit last read).', registers: [registry],
    collect() { if (usage.limit !== null) this.set(usage.limit); } });
  new Gauge({ name: 'lanha_fds_exhausted', help: '1 when this process had no file descriptor left to read /proc with at this scrape.', registers: [registry],
    collect() { this.set(usage.short ? 1 : 0); } });
}

/** nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds from the process's loop-delay probe, over the time since the last scrape. */
function loopDelayGauges(registry: Registry): void {
  const fields = { min: 'minMs', max: 'maxMs', mean: 'meanMs', stddev: 'stddevMs', p50: 'p50Ms', p90: 'p90Ms', p99: 'p99Ms' } as const;
  for (const name of Object.keys(fields)) registry.removeSingleMetric(`nodejs_eventloop_lag_${name}_seconds`);
  const probe = processLoopDelay();
  let window: LoopDelayWindow = probe.takeWindow();
  for (const [name, field] of Object.entries(fields)) {
    new Gauge({ name: `nodejs_eventloop_lag_${name}_seconds`, help: `Event loop delay since the last scrape, ${name} (sampled every 10 ms while busy, every second while idle).`, registers: [registry],
      collect() {
        // A scrape collects in registration order: the first (min) takes the window, the rest read it.
        if (field === 'minMs') window = probe.takeWindow();
        this.set(window[field] / 1000);
      } });
  }
}

interface NtpSourceRow { name: string; kind: string; reach: string; offsetMs: number | null }

function ntpSources(s: Record<string, unknown> | undefined): NtpSourceRow[] {
  const list = s?.['sources'];
  return Array.isArray(list) ? list as NtpSourceRow[] : [];
}

function popcount(n: number): number {
  let c = 0;
  for (let x = n; x !== 0; x &= x - 1) c++;
  return c;
}
