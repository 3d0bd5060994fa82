import { degradedText, type DegradedView } from '../dhcp/degraded-config.js';
import { cidrContains, formatIpv4, type Ipv4 } from '../../lib/ipv4.js';
import type { LanhaConfig } from '../../config/index.js';
import type { Lease } from '../../cluster/fsm.js';
import type { StateLogStatus } from '../../cluster/state-log.js';
import type { StabilityReport } from '../../cluster/stability.js';
import { storageFullText, type StorageFull } from '../../cluster/raft/status-text.js';
import { BASE_LEVEL, commandLevel, levelHold, levelHoldText, logLevelText, memberLevels, type LevelHold, type LogLevelStatus } from '../../cluster/apply-level.js';
import { poolUsage, rangeText, type SubnetUsage } from '../dhcp/pool-usage.js';
import { memberRows, type LocalReport, type MemberView } from '../../cluster/member-status.js';
import { compareBootFiles } from './boot-files.js';
import type { RogueStatusBody } from '../dhcp/rogue-text.js';
import type { SubnetClients } from '../dhcp/pool-text.js';

// `lanctl doctor`: cross-checks an operator would otherwise do by hand, one finding per problem
// with its evidence and the command that fixes or shows more. Pure: the daemon gathers the state
// (or, with --offline, only the config is checked).

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  id: string;
  severity: Severity;
  evidence: string;
  fix: string;
}

export interface RecordRow { zone: string; name: string; type: string; ttl: number; data: string; source: string }

export interface DoctorInput {
  config: LanhaConfig;
  cluster: StateLogStatus;
  vip?: Record<string, unknown> | undefined;
  ntp?: Record<string, unknown> | undefined;
  /** The DNS and TFTP services' status (their worker counters). */
  dns?: Record<string, unknown> | undefined;
  tftp?: Record<string, unknown> | undefined;
  /** The DHCP service's status (its rogue-server watch). */
  dhcp?: Record<string, unknown> | undefined;
  pools: SubnetUsage[];
  leases: readonly Lease[];
  records?: readonly RecordRow[] | undefined;
  disk?: { freeBytes: number; totalBytes: number; dir: string } | undefined;
  /** This member's own report and what the others last reported (cluster/member-status.ts). */
  local?: LocalReport | undefined;
  members?: Record<string, MemberView> | undefined;
  nowMs: number;
}

export const LAG_WARN_ENTRIES = 1000;
/** Lease lapses plus leadership changes in the stability window (cluster/stability.ts) from which doctor warns. */
export const UNSTABLE_EVENTS = 6;

/** A leader with a valid lease is known: this node, or the leader it follows. */
export function hasQuorum(c: Pick<StateLogStatus, 'role' | 'leader'> & { leaseValid?: unknown }): boolean {
  if (c.role === 'leader') return c['leaseValid'] !== false;
  return c.leader !== null;
}
export const PEER_OFFSET_WARN_MS = 100;
export const PEER_OFFSET_ERROR_MS = 1000;
/** A member whose last report is older than this is called silent (reports come every second). */
export const MEMBER_SILENT_MS = 5000;
/**
 * WAL fsync p99 from which doctor warns: every DHCP ACK waits for one fsync on a majority. Only a
 * warning: a slow disk (or a loaded machine) delays answers but breaks nothing.
 */
export const WAL_FSYNC_WARN_MS = 100;

/** Checks of the config file alone (`lanctl doctor --offline`). */
export function configFindings(config: LanhaConfig): Finding[] {
  const out: Finding[] = [];
  const members = config.cluster?.members ?? [];
  if (members.length === 2 && !members.some((m) => m.role === 'witness')) {
    out.push({ id: 'cluster.no-witness', severity: 'warning', evidence: `members ${members.map((m) => m.name).join(', ')}: two voters and no witness; one failure stops DHCP allocations`, fix: 'add a member with role: witness to cluster.members on every node' });
  }
  const subnets = config.dhcp?.subnets ?? [];
  const byIp = new Map<Ipv4, string>();
  const byMac = new Map<string, string>();
  subnets.forEach((s, i) => {
    s.reservations.forEach((r, j) => {
      const where = `dhcp.subnets[${i}].reservations[${j}]`;
      const pool = s.pools.find((p) => r.ip >= p.first && r.ip <= p.last);
      if (pool !== undefined) {
        out.push({ id: 'dhcp.reservation-in-pool', severity: 'warning', evidence: `${where}: ${formatIpv4(r.ip)} (${r.mac ?? r.clientId}) is inside the dynamic pool ${rangeText(pool)}; it takes pool space and is counted there`, fix: `move the reservation outside ${rangeText(pool)} or shrink the pool in the config` });
      }
      if (!cidrContains(s.subnet, r.ip)) {
        out.push({ id: 'dhcp.reservation-outside-subnet', severity: 'error', evidence: `${where}: ${formatIpv4(r.ip)} is not in ${formatIpv4(s.subnet.network)}/${s.subnet.prefixLength}; the client never gets it`, fix: 'give the reservation an address of its subnet' });
      }
      const ipSeen = byIp.get(r.ip);
      if (ipSeen !== undefined) out.push({ id: 'dhcp.reservation-duplicate', severity: 'error', evidence: `${where} and ${ipSeen} both reserve ${formatIpv4(r.ip)}`, fix: 'keep one reservation per address' });
      else byIp.set(r.ip, where);
      if (r.mac !== undefined) {
        const macSeen = byMac.get(r.mac);
        if (macSeen !== undefined) out.push({ id: 'dhcp.reservation-duplicate', severity: 'error', evidence: `${where} and ${macSeen} both reserve for ${r.mac}`, fix: 'keep one reservation per MAC' });
        else byMac.set(r.mac, where);
      }
    });
  });
  const ranges = subnets.flatMap((s, i) => s.pools.map((p, j) => ({ p, where: `dhcp.subnets[${i}].pools[${j}]` })));
  for (let a = 0; a < ranges.length; a++) {
    for (let b = a + 1; b < ranges.length; b++) {
      const x = ranges[a]!, y = ranges[b]!;
      if (x.p.first <= y.p.last && y.p.first <= x.p.last) out.push({ id: 'dhcp.pool-overlap', severity: 'error', evidence: `${x.where} ${rangeText(x.p)} overlaps ${y.where} ${rangeText(y.p)}`, fix: 'make the pools disjoint' });
    }
  }
  return out;
}

/** cluster.backend etcd: endpoints that do not answer, and keys under the prefix lanha did not write. */
function etcdFindings(c: DoctorInput['cluster'], out: Finding[]): void {
  const e = c['etcd'] as { health?: Array<{ endpoint: string; ok: boolean; error: string | null }>; prefix?: string; skipped?: number; foreign?: number } | undefined;
  if (e === undefined) return;
  const health = e.health ?? [];
  const down = health.filter((h) => !h.ok);
  if (health.length > 0 && down.length === health.length) {
    out.push({ id: 'etcd.unreachable', severity: 'error', evidence: `no etcd endpoint answers (${down.map((h) => h.error ?? h.endpoint).join('; ')}): no DHCP answers and no writes; DNS, TFTP and NTP serve the last state`, fix: 'check the etcd cluster (etcdctl endpoint health) and the network from this node to cluster.etcd.endpoints' });
  } else {
    for (const h of down) out.push({ id: 'etcd.endpoint-down', severity: 'warning', evidence: `etcd ${h.endpoint} does not answer: ${h.error ?? ''}`, fix: `etcdctl --endpoints ${h.endpoint} endpoint health; the other endpoints are used meanwhile` });
  }
  if ((e.skipped ?? 0) + (e.foreign ?? 0) > 0) {
    out.push({ id: 'etcd.foreign-keys', severity: 'warning', evidence: `under ${e.prefix ?? 'the prefix'}: ${e.skipped ?? 0} log entries that do not decode and ${e.foreign ?? 0} keys lanha did not write (skipped)`, fix: 'give this site a prefix no other program writes under (cluster.etcd.prefix)' });
  }
}

/** Config checks plus the checks of the running state. */
export function doctorFindings(input: DoctorInput): Finding[] {
  const out = configFindings(input.config);
  const c = input.cluster;
  if (!hasQuorum(c)) {
    out.push({ id: 'raft.quorum', severity: 'error', evidence: `role ${c.role}, term ${c.term}, no leader known: no writes (leases, records) can commit`, fix: 'lanctl status on every member; start the members that are down' });
  }
  const stability = c['stability'] as StabilityReport | undefined;
  if (stability !== undefined && stability.leaseLapses + stability.leaderChanges >= UNSTABLE_EVENTS) {
    const pause = input.config.cluster?.pauseTolerance;
    out.push({
      id: 'raft.unstable', severity: 'warning',
      evidence: `in the last ${stability.windowS / 60} min this member's leader lease lapsed ${stability.leaseLapses} times and it gained or lost leadership ${stability.leaderChanges} times`
        + `${stability.longestStallMs > 0 ? ` (this process stalled up to ${stability.longestStallMs} ms)` : ''}: each lapse blinks the VIP, each election is a DHCP gap`,
      fix: `find what stalls the daemons (load: uptime, top; a slow disk: raft.wal-fsync), or let the timers ride out longer pauses: raise cluster.pauseTolerance${pause === undefined ? '' : ` (now ${pause} ms)`} above the stalls seen (lanctl config check prints the timers it gives)`,
    });
  }
  const storage = c['storage'] as { dir?: string; error?: string | null; full?: StorageFull | null } | undefined;
  if (storage?.full?.reason === 'read-only') out.push({ id: 'raft.storage-read-only', severity: 'error', evidence: storageFullText(storage.dir ?? 'node.stateDir', storage.full), fix: 'find why it went read-only (dmesg: an I/O or file-system error), repair it (stop lanha, fsck) or remount it read-write; lanha writes again by itself once it can' });
  else if (storage?.full?.reason === 'descriptors') out.push({ id: 'raft.storage-fd-exhausted', severity: 'error', evidence: storageFullText(storage.dir ?? 'node.stateDir', storage.full), fix: 'find what holds the daemon\'s descriptors (ls -l /proc/$(systemctl show -p MainPID --value lanha)/fd: TFTP transfers, DNS TCP, control connections) or raise LimitNOFILE= in the unit (systemctl edit lanha); lanha writes again by itself once it can open files, no restart is needed' });
  else if (storage?.full) out.push({ id: 'raft.storage-full', severity: 'error', evidence: storageFullText(storage.dir ?? 'node.stateDir', storage.full), fix: `free space there (du -sh ${storage.dir ?? 'node.stateDir'}/*, journald's and other logs on the same file system), or move node.stateDir to a larger one; no restart is needed` });
  else if (typeof c['applyStopped'] === 'string') out.push({ id: 'raft.entry-too-new', severity: 'error', evidence: c['applyStopped'], fix: 'install the lanha version the other members run on this member and systemctl restart lanha; it applies the entry and catches up' });
  else if (storage?.error) out.push({ id: 'raft.storage', severity: 'error', evidence: `the WAL failed: ${storage.error}; this node accepts no writes`, fix: 'free or repair the disk of node.stateDir, then systemctl restart lanha' });
  const logLevel = c['logLevel'] as LogLevelStatus | undefined;
  const needs = logLevel === undefined ? null : logLevelText(logLevel);
  if (needs !== null) {
    const last = Math.max(...logLevel!.spans.map((x) => x.last));
    out.push({ id: 'raft.log-level', severity: 'info', evidence: needs,
      fix: logLevel!.snapshotIndex >= last
        ? 'nothing to do; a rollback of this member to an older build starts from its snapshot'
        : `before rolling this member back to an older lanha, wait until lanctl status shows its snapshot at index ${last} or later (or leave it on this version); an older build started sooner stops at the first such entry, or (level 3 entries written before level 4) applies it in its older meaning` });
  }
  if (c['fresh'] === true) out.push({ id: 'raft.fresh', severity: 'warning', evidence: `this member started with no Raft state and no member file (role ${c.role}, term ${c.term}) and has not joined its cluster's log yet: it cannot tell a new cluster from one whose member it replaces, and votes as a new member would`, fix: 'a new cluster: start the other members (it joins once one is elected); a replacement for a member whose state was lost: stop lanha here, run lanctl cluster rejoin, start it again (cluster/raft/README.md, "A member with no state")' });
  else if (c['rebuilding'] === true && c['amnesia'] !== undefined) {
    const a = c['amnesia'] as { leader: string; term: number; acked: number; lastIndex: number };
    out.push({ id: 'raft.amnesia', severity: 'error', evidence: `this member's Raft state went back in time: ${a.leader} (leader of term ${a.term}) says it acknowledged entries up to ${a.acked}, and its log ended at ${a.lastIndex}: node.stateDir was restored from an old backup or copied back; it does not vote or campaign until caught up past ${a.acked}`, fix: 'let it catch up (raft.rebuilt says when it votes again); do not restore a member\'s raft directory from a backup again: to replace a damaged one, move it aside and start the member empty, it rebuilds from the leader' });
  } else if (c['rebuilding'] === true) out.push({ id: 'raft.rebuilding', severity: 'warning', evidence: `this member lost its Raft storage and is being rebuilt (role ${c.role}, term ${c.term}, applied ${String(c.appliedIndex)}): it does not vote or campaign until a leader has caught it up, so it does not count toward electing one`, fix: 'wait for it to catch up (log line raft.rebuilt says when it votes again); if no member leads, start the others: a rebuilt member cannot elect one' });
  const last = typeof c['lastIndex'] === 'number' ? c['lastIndex'] : null;
  const progress = c['progress'] as Record<string, { match: number; active: boolean }> | undefined;
  if (last !== null && progress !== undefined) {
    for (const [peer, p] of Object.entries(progress)) {
      if (peer === input.config.node.name) continue;
      const lag = last - p.match;
      if (!p.active) out.push({ id: 'raft.member-unreachable', severity: 'warning', evidence: `${peer} has not answered recently (match ${p.match}, last ${last})`, fix: `lanctl status on ${peer}; check its service and the network to it` });
      else if (lag > LAG_WARN_ENTRIES) out.push({ id: 'raft.lag', severity: 'warning', evidence: `${peer} is ${lag} entries behind (match ${p.match}, last ${last})`, fix: `lanctl status on ${peer}: a slow disk or link holds it back` });
    }
  }
  const peers = (c['transport'] as { peers?: Record<string, { connected?: boolean }> } | undefined)?.peers;
  for (const [peer, p] of Object.entries(peers ?? {})) {
    if (p.connected !== true && progress === undefined) out.push({ id: 'raft.peer-down', severity: 'warning', evidence: `no connection to ${peer}`, fix: `lanctl status on ${peer}; check that cluster.keyFile matches (with cluster.tls: lanctl config check on both, certificates from one CA) and its Raft port is reachable` });
  }
  tlsExpiryFindings(c['transport'], input.nowMs, out);
  etcdFindings(c, out);
  memberFindings(input, out);
  vipHolderFindings(input, out);
  walFindings(input, out);
  ackAuditFindings(input, out);
  bootFileFindings(input, out);
  if (input.vip !== undefined) {
    const held = input.vip['held'] === true;
    if (c.role === 'leader' && c['leaseValid'] !== false && !held) out.push({ id: 'vip.holder', severity: 'error', evidence: `this node leads but does not hold the VIP ${String(input.vip['address'])}`, fix: 'lanctl vip status; journalctl -u lanha for vip.acquire errors' });
    if (c.role !== 'leader' && held && input.vip['degraded'] === true) out.push({ id: 'vip.degraded', severity: 'warning', evidence: `this node holds the VIP ${String(input.vip['address'])} degraded (no quorum, alone on its segment): it yields when a quorum is back or another MAC answers ARP for it`, fix: 'bring the partner or the witness back (lanctl doctor raft.quorum)' });
    else if (c.role !== 'leader' && held) out.push({ id: 'vip.holder', severity: 'error', evidence: `this node holds the VIP ${String(input.vip['address'])} but is ${c.role}`, fix: 'lanctl vip release on this node' });
    if (c.role !== 'leader' && !held && c.leader === null) out.push({ id: 'vip.holder', severity: 'error', evidence: 'no leader, so no member holds the VIP: clients of the VIP get no answers', fix: 'restore quorum (see raft.quorum)' });
  }
  if (input.ntp !== undefined) {
    if (input.ntp['synchronised'] !== true) out.push({ id: 'ntp.unsynchronised', severity: 'error', evidence: `serving leap 3 / stratum ${String(input.ntp['stratum'])}: ${String(input.ntp['reason'])}`, fix: 'lanctl ntp status; set ntp.upstreams or ntp.localStratum' });
    const sources = Array.isArray(input.ntp['sources']) ? input.ntp['sources'] as Array<{ name: string; kind: string; offsetMs: number | null }> : [];
    for (const s of sources) {
      if (s.kind !== 'peer' || s.offsetMs === null) continue;
      const abs = Math.abs(s.offsetMs);
      if (abs >= PEER_OFFSET_WARN_MS) out.push({ id: 'ntp.peer-offset', severity: abs >= PEER_OFFSET_ERROR_MS ? 'error' : 'warning', evidence: `clock offset to ${s.name} is ${s.offsetMs.toFixed(1)} ms`, fix: 'lanctl ntp status on both nodes; give both the same ntp.upstreams' });
    }
  }
  for (const s of input.pools) {
    for (const p of s.pools) {
      if (p.ratio < 0.8) continue;
      const used = `is ${Math.round(p.ratio * 100)} % used (${p.assigned} of ${p.size})`;
      out.push(p.unknownPool === true
        ? { id: 'dhcp.pool-usage', severity: p.ratio >= 0.9 ? 'error' : 'warning', evidence: `unknownPool ${p.pool} of ${p.subnet} (unknown clients) ${used}`, fix: 'widen dhcp.subnets[].unknownPool or shorten unknownLeaseTime; lanctl nodes pending lists the netbooting ones, lanctl nodes accept MAC NAME makes one known' }
        : { id: 'dhcp.pool-usage', severity: p.ratio >= 0.9 ? 'error' : 'warning', evidence: `pool ${p.pool} of ${p.subnet} ${used}`, fix: 'widen dhcp.subnets[].pools or shorten leaseTime; lanctl leases --all shows who holds them' });
    }
  }
  leaseFindings(input, out);
  rogueFindings(input, out);
  unknownClientFindings(input, out);
  broadcastFindings(input, out);
  degradedFindings(input, out);
  workerFindings(input, out);
  if (input.disk !== undefined && input.disk.totalBytes > 0) {
    const free = input.disk.freeBytes / input.disk.totalBytes;
    if (free < 0.1) out.push({ id: 'disk.state-dir', severity: free < 0.02 ? 'error' : 'warning', evidence: `${input.disk.dir}: ${Math.round(free * 100)} % free (${Math.round(input.disk.freeBytes / 2 ** 20)} MiB)`, fix: `free space on the file system of ${input.disk.dir}` });
  }
  return out;
}

/** Degraded split-pool DHCP (services/dhcp/degraded-state.ts): alone now, a journal waiting, a merge conflict. */
function degradedFindings(input: DoctorInput, out: Finding[]): void {
  const d = input.dhcp?.['degraded'] as DegradedView | undefined;
  if (d === undefined) return;
  if (d.active) {
    out.push({ id: 'dhcp.degraded', severity: 'warning', evidence: degradedText(d).trim(), fix: `bring back a quorum (start ${d.partner} or the witness; lanctl status on them): DHCP then leaves degraded mode at once and the journal is merged into the log` });
  } else if (d.partnerAnswersArp !== null && d.partnerAnswersArp !== undefined) {
    out.push({ id: 'dhcp.degraded-partner-arp', severity: 'warning', evidence: `no quorum, ${d.partner}'s reports silent, but partner ${d.partnerAnswersArp} answers ARP: a cluster-link problem, not a dead partner; DHCP stays silent rather than go degraded beside a partner that may be serving`, fix: `check the cluster link to ${d.partner} (lanctl status there; cluster.members port reachable, keys or certificates, a firewall) and whether its lanha runs (systemctl status lanha on ${d.partner})` });
  }
  if (!d.active && d.journal.pending > 0) {
    // What holds the merge back, when it is the members' levels: said here, where the journal is.
    const hold = levelHoldOf(input);
    const merge = commandLevel({ type: 'lease.merge' });
    const held = hold !== null && merge >= hold.from && merge <= hold.to ? `; the merge is held back: ${levelHoldText(hold)}` : '';
    out.push({ id: 'dhcp.degraded-journal', severity: 'warning', evidence: `${d.journal.pending} bindings this member granted alone wait in ${d.journal.path} to be merged into the log${held}`, fix: held !== '' ? `lanctl status on ${hold!.behind.map((m) => m.name).join(' and ')}: start or reach it, or upgrade it to apply level ${merge}; once every member reports that level the leader merges the journal by itself` : `the leader merges them once every member reports apply level ${merge} (lanctl status: level column); dhcp.degraded_merge_waits in the log says why not yet` });
  }
  for (const [node, m] of Object.entries(d.merged)) {
    if (m.conflicts > 0) out.push({ id: 'dhcp.degraded-conflicts', severity: 'error', evidence: `merging ${node}'s degraded journals found ${m.conflicts} bindings that overlapped another client's (an address on two MACs: a bug by construction)`, fix: 'lanctl leases --all and doctor\'s dhcp.duplicate findings name the addresses; report it with the journal and the log' });
  }
}

/**
 * Unknown clients a subnet for known clients only (`clients: known`) left unanswered since start: a
 * machine that should netboot and was never added looks, from its side, like a dead DHCP server.
 */
function unknownClientFindings(input: DoctorInput, out: Finding[]): void {
  const clients = input.dhcp?.['clients'] as SubnetClients[] | undefined;
  for (const c of clients ?? []) {
    if (c.clients !== 'known' || c.ignored === 0) continue;
    out.push({
      id: 'dhcp.unknown-clients', severity: 'info',
      evidence: `${c.subnet} serves known clients only (clients: known) and left ${c.ignored} request${c.ignored === 1 ? '' : 's'} of unknown clients unanswered since this daemon started`,
      fix: 'lanctl nodes pending lists the netbooting ones: lanctl nodes accept MAC NAME (or a dhcp reservation) makes one known; an unknownPool would give the others a quarantine address instead',
    });
  }
}

/**
 * Boot rules served while replies to clients without an address go to the subnet broadcast (the
 * node has no address of its DHCP subnet to send 255.255.255.255 from): UEFI firmware drops
 * those OFFERs (services/dhcp/README.md, Replies) and never netboots, with no trace on this side.
 */
function broadcastFindings(input: DoctorInput, out: Finding[]): void {
  const to = input.dhcp?.['broadcastTo'];
  if (typeof to !== 'string' || to === '255.255.255.255' || (input.config.dhcp?.boot.length ?? 0) === 0) return;
  out.push({
    id: 'dhcp.broadcast', severity: 'warning',
    evidence: `DHCP replies to clients without an address go to ${to}, not 255.255.255.255: this node has no address of its DHCP subnet to send 255.255.255.255 from; UEFI PXE and HTTP boot firmware ignores such OFFERs, so UEFI machines never netboot (BIOS PXE, iPXE, U-Boot and Linux clients are not affected)`,
    fix: 'give this node an address on the DHCP subnet (node.address, or one on dhcp.interface): lanha binds it within 5 s, no restart (dhcp.broadcast_to in its log says when)',
  });
}

/** Other DHCP servers on the network (services/dhcp/rogue-probe.ts), and a probe that cannot run. */
function rogueFindings(input: DoctorInput, out: Finding[]): void {
  const rogue = input.dhcp?.['rogue'] as RogueStatusBody | undefined;
  if (rogue === undefined) return;
  if (rogue.probe?.state === 'failing') {
    out.push({ id: 'dhcp.rogue-probe', severity: 'warning', evidence: `the rogue DHCP server probe cannot run: ${rogue.probe.problem}; only clients' REQUESTs naming another server are noticed`, fix: 'free udp port 68 on this node (a DHCP client holding it without SO_REUSEADDR), or turn the probe off with dhcp.rogueProbe.interval: 0' });
  }
  for (const s of rogue.servers) {
    const from = s.source === null ? '' : ` from ${s.source}${s.mac === null ? '' : ` (MAC ${s.mac})`}`;
    const offered = s.offered === null ? '' : ` offering ${s.offered}${s.bootfile === null ? '' : ` with boot file ${s.bootfile}`}`;
    const how = s.via.map((v) => (v === 'request' ? `client ${s.client ?? '?'} took its offer` : 'it answered the probe')).join(' and ');
    const find = s.mac !== null ? `the device with MAC ${s.mac} (the switch's MAC table; the first three octets name its maker)` : `the device at ${s.source ?? s.serverId} (arping ${s.source ?? s.serverId} gives its MAC)`;
    out.push({
      id: 'dhcp.rogue-server', severity: 'error',
      evidence: `another DHCP server answers on this network: server id ${s.serverId}${from}${offered}; ${how}; seen ${s.firstSeen} to ${s.lastSeen}. Clients taking its offers get its addresses, gateway and boot files`,
      fix: `find ${find} and turn its DHCP server off (a home router's LAN settings, a VM network's DHCP, a forgotten dnsmasq or Kea); if it belongs there, list ${s.serverId} in dhcp.rogueProbe.ignore`,
    });
  }
}

/**
 * Worker threads (TFTP) or processes (DNS) that stopped unasked or hung since the daemon started:
 * each was started again, but a second one is a bug to report (its stack is in the log).
 */
function workerFindings(input: DoctorInput, out: Finding[]): void {
  const count = (status: Record<string, unknown> | undefined, key: string): number => {
    const v = (status?.['counters'] as Record<string, unknown> | undefined)?.[key];
    return typeof v === 'number' ? v : 0;
  };
  const tftp = count(input.tftp, 'tftp.workers_exited');
  if (tftp > 0) {
    const hung = count(input.tftp, 'tftp.workers_hung');
    out.push({
      id: 'tftp.worker-exits', severity: 'warning',
      evidence: `${tftp} TFTP transfer thread(s) stopped unasked since the daemon started${hung > 0 ? ` (${hung} of them hung and ended)` : ''}, losing ${count(input.tftp, 'tftp.transfers_lost')} transfer(s); each was started again and the clients retried`,
      fix: 'journalctl -u lanha | grep -e tftp.worker_failed -e tftp.worker_exited -e tftp.worker_hung for the error and its stack, and report it',
    });
  }
  const dns = count(input.dns, 'dns.workers.exited');
  if (dns > 0) {
    const hung = count(input.dns, 'dns.workers.hung');
    out.push({
      id: 'dns.worker-exits', severity: 'warning',
      evidence: `${dns} DNS worker process(es) stopped unasked since the daemon started${hung > 0 ? ` (${hung} of them hung and killed)` : ''}; each was started again and the daemon answered meanwhile`,
      fix: 'journalctl -u lanha | grep -e dns.worker_exited -e dns.worker_hung, and report it',
    });
  }
}

/** What this member holds back for members below its apply level, over every configured member (null: nothing, or no reports). */
function levelHoldOf(input: DoctorInput): LevelHold | null {
  const local = input.local;
  if (local?.applyLevel === undefined) return null;
  const views = input.members ?? {};
  const configured = input.config.cluster?.members.map((m) => m.name) ?? [];
  return levelHold(memberLevels(memberRows([...new Set([local.node, ...configured, ...Object.keys(views)])], local, views)), local.applyLevel);
}

/** Cross-member checks from the members' own reports: config, version, clock, lag, silence. */
function memberFindings(input: DoctorInput, out: Finding[]): void {
  const local = input.local;
  const views = input.members ?? {};
  if (local === undefined) return;
  const rows = memberRows([local.node, ...Object.keys(views)], local, views);
  // A configured member never heard from counts as level 1: commands of this member's newer levels
  // wait for it (a lower level a member reports is cluster.apply-level-differs, below).
  const hold = levelHoldOf(input);
  const unheard = hold?.behind.filter((m) => m.version === null) ?? [];
  if (hold !== null && unheard.length > 0) {
    out.push({
      id: 'cluster.level-held', severity: 'warning', evidence: levelHoldText(hold),
      fix: `lanctl status on ${unheard.map((m) => m.name).join(' and ')}; check its service and the network to it. Nothing to do by hand once it reports: what waits is proposed then`,
    });
  }
  for (const [name, v] of Object.entries(views)) {
    const r = v.report;
    // Builds of one package version may apply different commands: the level says what each applies.
    const level = r.applyLevel ?? BASE_LEVEL;
    const localLevel = local.applyLevel ?? BASE_LEVEL;
    // A witness runs no services, so its file may well leave those blocks out: LAN nodes only.
    if (r.configHash !== local.configHash && r.role !== 'witness' && local.role !== 'witness') {
      out.push(level !== localLevel || r.version !== local.version ? {
        // The hash covers the settings each build fills in by default: a build that added one
        // hashes the same file differently, so between two builds it cannot tell a different file.
        id: 'cluster.config-differs', severity: 'info',
        evidence: `${name} (lanha ${r.version}, apply level ${level}) runs config ${r.configHash.slice(0, 12)}, ${local.node} (lanha ${local.version}, apply level ${localLevel}) runs ${local.configHash.slice(0, 12)}: expected while a rolling upgrade runs, since the hash includes the defaults of settings the file leaves out and a newer build may add such a setting; between two builds it cannot show whether the files differ`,
        fix: `finish the upgrade (cluster.apply-level-differs, cluster.version-differs); if the hashes still differ once every member runs the same build, copy the same lanha.yaml to every member (only node:, http: and interface names may differ); meanwhile compare the files themselves with diff`,
      } : { id: 'cluster.config-differs', severity: 'warning', evidence: `${name} runs config ${r.configHash.slice(0, 12)}, ${local.node} runs ${local.configHash.slice(0, 12)} (the hash leaves out node:, http: and interface names)`, fix: `copy the same lanha.yaml to every member (only node:, http: and interface names may differ), lanctl config check it, then systemctl restart lanha on ${name}` });
    }
    if (r.version !== local.version) {
      out.push({ id: 'cluster.version-differs', severity: 'warning', evidence: `${name} runs lanha ${r.version}, ${local.node} runs ${local.version}`, fix: 'install the same lanha version on every member (one at a time, lanctl failover first on the leader)' });
    }
    if (level !== localLevel) {
      const theirs = r.applyLevel === undefined ? `sends no apply level (a lanha from before apply levels: it applies level ${BASE_LEVEL})` : `runs apply level ${level}`;
      out.push({
        id: 'cluster.apply-level-differs', severity: 'warning',
        evidence: `${name} (lanha ${r.version}) ${theirs}, ${local.node} (lanha ${local.version}) runs apply level ${localLevel}: commands of level ${Math.min(level, localLevel) + 1} and above are refused until every member runs it`,
        fix: `finish the upgrade: install the newer lanha on ${level < localLevel ? name : local.node} (README, "Upgrading a cluster")`,
      });
    }
    const abs = Math.abs(v.clockOffsetMs);
    // A one-way estimate (before the first echo) includes the transit and any event-loop delay: wait for the round trip.
    if (abs >= PEER_OFFSET_WARN_MS && v.offsetMethod === 'round-trip') {
      const how = v.offsetMethod === 'round-trip' ? `measured over a ${v.roundTripMs} ms round trip` : 'one-way estimate';
      out.push({ id: 'cluster.clock-offset', severity: abs >= PEER_OFFSET_ERROR_MS ? 'error' : 'warning', evidence: `${name}'s clock is ${v.clockOffsetMs >= 0 ? '+' : ''}${v.clockOffsetMs} ms from ${local.node}'s (${how}); lease times and log stamps drift apart`, fix: `lanctl ntp status on ${local.node} and ${name}; give both the same ntp.upstreams` });
    }
    if (v.lastContactMs > MEMBER_SILENT_MS) {
      out.push({ id: 'cluster.member-silent', severity: 'warning', evidence: `no report from ${name} for ${Math.round(v.lastContactMs / 1000)} s (last at ${v.receivedAt})`, fix: `lanctl status on ${name}; check its service and the network to it` });
    }
    // Same applied index, same config: the zones must be the same, so a serial apart means they are not.
    if (r.dnsSerial != null && local.dnsSerial != null && r.dnsSerial !== local.dnsSerial && r.appliedIndex === local.appliedIndex && r.configHash === local.configHash) {
      out.push({ id: 'dns.serial-differs', severity: 'warning', evidence: `${name} serves DNS serial ${r.dnsSerial}, ${local.node} ${local.dnsSerial}, both at applied index ${r.appliedIndex}`, fix: `lanctl records --json on both and compare; systemctl restart lanha on the one that is wrong` });
    }
    if (rows.find((x) => x.name === name)?.sameState === false) {
      out.push({ id: 'cluster.state-differs', severity: 'error', evidence: `${name}'s replicated state differs from ${local.node}'s at the same applied index ${r.appliedIndex} (state hash ${r.stateHash?.slice(0, 12)} vs ${local.stateHash?.slice(0, 12)}): the replicas diverged`, fix: `stop lanha on the member that is wrong, move its node.stateDir/raft away and start it again: it reloads the state from the leader` });
    }
    const lag = rows.find((x) => x.name === name)?.lagEntries ?? 0;
    if (lag > LAG_WARN_ENTRIES) {
      out.push({ id: 'raft.member-lag', severity: 'warning', evidence: `${name} has applied ${r.appliedIndex}, ${lag} entries behind the highest commit index reported (${r.appliedIndex + lag})`, fix: `lanctl status on ${name}: a slow disk or link holds it back` });
    }
  }
}

/** Exactly one VIP holder among the members heard from lately (this one included). */
function vipHolderFindings(input: DoctorInput, out: Finding[]): void {
  const local = input.local;
  if (local === undefined || local.vipHeld == null) return;
  const all = [...(local.vipHeld ? [{ name: local.node, term: local.term }] : []), ...Object.entries(input.members ?? {})
    .filter(([, v]) => v.report.vipHeld === true && v.lastContactMs <= MEMBER_SILENT_MS).map(([name, v]) => ({ name, term: v.report.term }))];
  // A report is up to a second old: right after a failover the old holder's last one still says it
  // holds the VIP, in the older term. Two holders in the newest term are what cannot be.
  const newest = Math.max(...all.map((h) => h.term));
  const holders = all.filter((h) => h.term === newest).map((h) => h.name);
  if (holders.length > 1) {
    out.push({ id: 'vip.holders', severity: 'error', evidence: `${holders.join(' and ')} all say they hold the VIP: clients get answers from either`, fix: `lanctl vip status on each; lanctl vip release on every one that is not the leader` });
  }
}

/** What doctor measured besides its findings: each member's WAL fsync p99 (null: not known). */
export function doctorMeasured(input: Pick<DoctorInput, 'local' | 'members'>): { walFsyncP99Ms: Record<string, number | null> } {
  const wal: Record<string, number | null> = {};
  if (input.local !== undefined) wal[input.local.node] = input.local.walFsyncP99Ms;
  for (const [name, v] of Object.entries(input.members ?? {})) wal[name] = v.report.walFsyncP99Ms;
  return { walFsyncP99Ms: wal };
}

function walFindings(input: DoctorInput, out: Finding[]): void {
  for (const [name, p99] of Object.entries(doctorMeasured(input).walFsyncP99Ms)) {
    if (p99 === null || p99 < WAL_FSYNC_WARN_MS) continue;
    out.push({ id: 'raft.wal-fsync', severity: 'warning', evidence: `${name}: WAL fsync p99 ${p99} ms over its last fsyncs; every DHCP ACK waits for one`, fix: `move node.stateDir of ${name} to a faster disk (an SD card's fsync is slow; a USB SSD is not)` });
  }
}

/** A member whose ACK audit (cluster/ack-audit.ts) found ACKed leases missing from the committed log: the durability promise broke. */
function ackAuditFindings(input: DoctorInput, out: Finding[]): void {
  const reports: Array<[string, LocalReport]> = [
    ...(input.local === undefined ? [] : [[input.local.node, input.local] as [string, LocalReport]]),
    ...Object.entries(input.members ?? {}).map(([name, v]) => [name, v.report] as [string, LocalReport]),
  ];
  for (const [name, r] of reports) {
    const a = r.ackAudit;
    if (a == null || a.lostTotal === 0) continue;
    out.push({
      id: 'dhcp.acked-leases-lost', severity: 'error',
      evidence: `${name}'s ACK audit found ${a.lostTotal} lease(s) it ACKed missing from the committed log after a leadership change: clients hold addresses the cluster does not know`,
      fix: `lanctl status --json on ${name} (ackAudit.lost names them); keep every member's log (journalctl -u lanha) and node.stateDir for a bug report; lanctl leases release the addresses if another client got them`,
    });
  }
}

function bootFileFindings(input: DoctorInput, out: Finding[]): void {
  const here = input.local?.bootFiles;
  if (here === null || here === undefined) return;
  const node = input.local!.node;
  for (const [name, v] of Object.entries(input.members ?? {})) {
    const theirs = v.report.bootFiles;
    if (theirs === null || theirs.digest === here.digest) continue; // a witness serves no files
    if (v.bootFiles === null || here.files === undefined) {
      out.push({ id: 'boot.files-differ', severity: 'warning', evidence: `the boot files of ${name} (${theirs.count}) and ${node} (${here.count}) differ; ${name}'s list has not arrived yet`, fix: 'lanctl doctor again in a few seconds' });
      continue;
    }
    const d = compareBootFiles(here.files, v.bootFiles);
    const list = (paths: string[]): string => paths.slice(0, 5).join(', ') + (paths.length > 5 ? `, ... (${paths.length})` : '');
    if (d.differ.length > 0) out.push({ id: 'boot.files-differ', severity: 'error', evidence: `${d.differ.length} boot file(s) differ (sha256) between ${node} and ${name}: ${list(d.differ)}; a node boots differently depending on who holds the VIP`, fix: `copy the right tree to the other node, e.g. rsync -a --checksum ROOT/ ${name}:ROOT/` });
    if (d.onlyHere.length > 0) out.push({ id: 'boot.files-missing', severity: 'error', evidence: `${d.onlyHere.length} boot file(s) on ${node} are missing on ${name}: ${list(d.onlyHere)}`, fix: `copy them to ${name} (same path under its tftp.root / boot.root)` });
    if (d.onlyThere.length > 0) out.push({ id: 'boot.files-missing', severity: 'error', evidence: `${d.onlyThere.length} boot file(s) on ${name} are missing on ${node}: ${list(d.onlyThere)}`, fix: `copy them to ${node} (same path under its tftp.root / boot.root)` });
  }
}

function leaseFindings(input: DoctorInput, out: Finding[]): void {
  const bound = input.leases.filter((l) => l.state === 'bound' && l.expiresAt > input.nowMs);
  const byMac = new Map<string, Lease[]>();
  for (const l of bound) byMac.set(l.mac, [...(byMac.get(l.mac) ?? []), l]);
  const byIp = new Map<number, Set<string>>();
  for (const l of bound) byIp.set(l.ip, (byIp.get(l.ip) ?? new Set()).add(l.mac));
  for (const [ip, macs] of byIp) {
    if (macs.size > 1) out.push({ id: 'dhcp.ip-two-macs', severity: 'error', evidence: `${formatIpv4(ip)} is bound to ${[...macs].join(' and ')}`, fix: `lanctl explain ${formatIpv4(ip)}; lanctl leases release ${formatIpv4(ip)}` });
  }
  // A DECLINE means the client found the address answered by another device (ARP): two MACs on one IP on the wire.
  for (const l of input.leases) {
    if (l.state === 'declined' && l.expiresAt > input.nowMs) {
      out.push({ id: 'dhcp.address-in-use', severity: 'warning', evidence: `${formatIpv4(l.ip)} was declined by ${l.mac} at ${new Date(l.changedAt).toISOString()}: another device answers ARP for it; it stays out of the pool until ${new Date(l.expiresAt).toISOString()}`, fix: `find the device with arping ${formatIpv4(l.ip)} and give it an address outside the pool, or reserve ${formatIpv4(l.ip)} for it` });
    }
  }
  for (const [mac, list] of byMac) {
    if (list.length > 1) out.push({ id: 'dhcp.mac-two-leases', severity: 'warning', evidence: `${mac} holds ${list.map((l) => formatIpv4(l.ip)).join(' and ')}`, fix: `lanctl explain ${mac}; lanctl leases release IP for the stale one` });
  }
  for (const s of input.config.dhcp?.subnets ?? []) {
    for (const r of s.reservations) {
      const holder = bound.find((l) => l.ip === r.ip);
      if (holder !== undefined && r.mac !== undefined && holder.mac !== r.mac && (r.clientId === undefined || holder.clientId !== r.clientId)) {
        out.push({ id: 'dhcp.reserved-address-taken', severity: 'error', evidence: `${formatIpv4(r.ip)} is reserved for ${r.mac} but leased to ${holder.mac}`, fix: `lanctl leases release ${formatIpv4(r.ip)}` });
      }
    }
  }
  const records = input.records;
  if (records === undefined) return;
  const fixed = new Set(records.filter((x) => x.source === 'static' || x.source === 'operator').map((x) => x.name.toLowerCase()));
  for (const l of bound) {
    if (l.hostname === undefined) continue;
    const subnet = input.config.dhcp?.subnets.find((s) => cidrContains(s.subnet, l.ip));
    if (subnet?.domain === undefined) continue;
    const name = `${l.hostname}.${subnet.domain}`.toLowerCase();
    if (fixed.has(name)) out.push({ id: 'dns.lease-shadowed', severity: 'warning', evidence: `${l.mac} (${formatIpv4(l.ip)}) asks for ${name}, which a static or operator record already holds`, fix: `lanctl explain ${name}; rename the host or reserve it with another hostname` });
  }
  const reverseZones = new Set(records.filter((x) => x.type === 'SOA' && x.zone.endsWith('in-addr.arpa')).map((x) => x.zone));
  if (reverseZones.size === 0) return;
  const ptrs = new Set(records.filter((x) => x.type === 'PTR').map((x) => x.name.toLowerCase()));
  for (const a of records.filter((x) => x.type === 'A')) {
    const octets = a.data.split('.');
    if (octets.length !== 4) continue;
    const ptrName = `${[...octets].reverse().join('.')}.in-addr.arpa`;
    const zone = [...reverseZones].find((z) => ptrName.endsWith(`.${z}`));
    if (zone !== undefined && !ptrs.has(ptrName)) out.push({ id: 'dns.missing-ptr', severity: 'info', evidence: `${a.name} A ${a.data} has no PTR in ${zone}`, fix: `lanctl records set ${ptrName} PTR ${a.name}.` });
  }
}

/** Usage of the configured pools now (shared by doctor, /leases and /metrics). */
export function configPoolUsage(config: LanhaConfig, leases: Iterable<Lease>, nowMs: number): SubnetUsage[] {
  return poolUsage(config.dhcp?.subnets ?? [], leases, nowMs);
}

export function worstSeverity(findings: readonly Finding[]): Severity | null {
  if (findings.some((f) => f.severity === 'error')) return 'error';
  if (findings.some((f) => f.severity === 'warning')) return 'warning';
  return findings.length > 0 ? 'info' : null;
}

const TLS_EXPIRY_WARN_MS = 30 * 86_400_000;

/** The peer links' certificate or CA ending within 30 days (warning) or ended (error): every link then fails its TLS handshake. */
function tlsExpiryFindings(transport: unknown, nowMs: number, out: Finding[]): void {
  const validTo = (transport as { tlsValidTo?: { cert: string; ca: string; cas?: number } } | undefined)?.tlsValidTo;
  if (validTo === undefined) return;
  const rotating = (validTo.cas ?? 1) > 1;
  for (const [what, at] of [["this member's certificate", validTo.cert], ['the cluster CA', validTo.ca]] as const) {
    const leftMs = Date.parse(at) - nowMs;
    if (!(leftMs < TLS_EXPIRY_WARN_MS)) continue;
    if (what === 'the cluster CA' && rotating) {
      // A rotation under way: the CA ending is the old one, and finishing the rotation is the fix (not a new CA).
      out.push({
        id: 'raft.tls-expiry', severity: leftMs <= 0 ? 'error' : 'warning',
        evidence: `the oldest of the ${validTo.cas} CAs in cluster.tls.ca (a CA rotation under way) ${leftMs <= 0 ? 'ended' : 'ends'} ${at}: certificates it signed ${leftMs <= 0 ? 'are' : 'are then'} refused by every peer`,
        fix: 'finish the rotation: lanctl init --tls --renew for the members still on the old CA, then lanctl init --tls --finish-rotation (drops the old CA), copying the files and restarting the members one at a time (cluster/raft/README.md, Mutual TLS)',
      });
      continue;
    }
    out.push({
      id: 'raft.tls-expiry', severity: leftMs <= 0 ? 'error' : 'warning',
      evidence: leftMs <= 0
        ? `${what} for the Raft peer links (cluster.tls) ended ${at}: its peers refuse every link with it`
        : `${what} for the Raft peer links (cluster.tls) ends ${at}, in ${Math.ceil(leftMs / 86_400_000)} days: then its peers refuse every link with it`,
      fix: what === 'the cluster CA'
        ? (leftMs <= 0
          ? 'on the machine holding the CA key: lanctl init --tls --force --config FILE (a new CA), copy each member its files as printed, then restart every member (cluster/raft/README.md, Mutual TLS)'
          : 'before it ends, on the machine holding the CA key: lanctl init --tls --rotate-ca --config FILE, then --renew, then --finish-rotation, each followed by copying the files and restarting the members one at a time: no outage (cluster/raft/README.md, Mutual TLS)')
        : 'on the machine holding the CA key: lanctl init --tls --renew --member <this member> --config FILE (the CA kept), copy the files as printed, restart this member: no outage (cluster/raft/README.md, Mutual TLS)',
    });
  }
}
