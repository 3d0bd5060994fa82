import { formatTable } from '../../lib/table.js';
import type { StorageRefusal } from './wal.js';
import { logLevelText, type LogLevelStatus } from '../apply-level.js';

// The Raft part of `lanctl status` (text form): where the log stands, on a leader each member's
// replication progress, and the peer links' liveness (transport.ts: pings, links closed as dead,
// dials that timed out; one line per peer). The JSON form carries the whole StateLog status unchanged.

export interface RaftStatusBody {
  appliedIndex?: number;
  lastIndex?: number;
  snapshotIndex?: number;
  leaseValid?: boolean;
  members?: { voters: string[]; learners: string[]; witnesses: string[] };
  progress?: Record<string, { match: number; next: number; state: string; active: boolean }>;
  storage?: { dir: string; batches: number; fsyncs: number; fsyncP99Ms?: number | null; error: string | null; full?: StorageFull | null };
  /** Rebuilt after lost storage and not yet caught up by a leader: it does not vote or campaign. */
  rebuilding?: boolean;
  /** Applying stopped at an entry of a newer lanha (cluster/apply-level.ts): why, and what to do. */
  applyStopped?: string | null;
  /** The apply levels the entries this member applied need, and its snapshot index (cluster/apply-level.ts logLevelText). */
  logLevel?: LogLevelStatus;
  /** Rebuilding because a leader showed its state went back in time (RaftNode.amnesia). */
  amnesia?: { leader: string; term: number; acked: number; lastIndex: number; divergedAt?: number };
  /** Started with no state and no member file, and nothing yet shows the cluster had a log before it came. */
  fresh?: boolean;
  /** Present while the log ends below the highest commit index this member heard of (RaftNode.heardCommit). */
  heardCommit?: number;
  stateHash?: string;
  transport?: TransportStatusBody;
}

/** What cluster/raft/transport.ts status() reports (the fields shown here). */
export interface TransportStatusBody {
  peers?: Record<string, { connected?: boolean; inbound?: boolean; connects?: number; dropped?: number }>;
  counters?: Record<string, number>;
  liveness?: { pingMs: number; deadMs: number; dialMs: number };
  /** What secures the links (transport-channel.ts), and with TLS when the certificate and the CA end. */
  security?: 'tls' | 'cluster-key';
  tlsValidTo?: { cert: string; ca: string; cas?: number };
}

/** The peer links: one summary line of the liveness counters, then one line per peer. '' without a transport. */
export function formatPeerLinks(tr: TransportStatusBody | undefined): string {
  if (tr === undefined) return '';
  const n = (key: string): number => tr.counters?.[key] ?? 0;
  const live = tr.liveness;
  let text = `peer links: ${n('link.dead')} closed as dead (${n('link.dead.outbound')} outbound, ${n('link.dead.inbound')} inbound)`
    + `, ${n('dial-timeout')} dial timeouts, pings ${n('ping.sent')} sent / ${n('ping.received')} received`
    + (live ? ` (ping after ${live.pingMs} ms idle, dead after ${live.deadMs} ms silent)` : ' (liveness off)') + '\n';
  if (tr.security !== undefined) {
    const refused = Object.entries(tr.counters ?? {}).filter(([k]) => k.startsWith('rejected.')).reduce((sum, [, v]) => sum + v, 0);
    const until = tr.tlsValidTo ? ` (certificate until ${tr.tlsValidTo.cert.slice(0, 10)}, CA until ${tr.tlsValidTo.ca.slice(0, 10)})` : '';
    text += `  secured by ${tr.security === 'tls' ? `mutual TLS 1.3${until}` : 'the shared cluster key'}; ${refused} connections refused (rejected.* in --json)\n`;
  }
  for (const [id, p] of Object.entries(tr.peers ?? {})) {
    text += `  ${id}: outbound ${p.connected === true ? 'up' : 'down'}, inbound ${p.inbound === true ? 'up' : 'down'}, ${p.connects ?? 0} connects, ${p.dropped ?? 0} messages dropped\n`;
  }
  return text;
}

/** The file system of the Raft state is full (cluster/raft/README.md, "Out of space"). */
export interface StorageFull { forS: number; freeBytes: number | null; totalBytes: number | null; neededBytes: number; reason?: StorageRefusal }

/** What status and doctor say of a full state file system: where, how much is free, since when, what happens next. */
export function storageFullText(dir: string, full: StorageFull): string {
  if (full.reason === 'descriptors') return `this process has been out of file descriptors for ${full.forS} s and could not open a Raft file in ${dir}: this node accepts no writes (DHCP silent; DNS, TFTP, NTP serve); it writes again by itself once it can open files`;
  if (full.reason === 'read-only') return `the file system of ${dir} is read-only for ${full.forS} s (after an error, ext4 remounts so: see the kernel log, fsck): this node accepts no writes (DHCP silent; DNS, TFTP, NTP serve); it writes again by itself once it is writable`;
  const free = spaceText(full.freeBytes === null ? null : { freeBytes: full.freeBytes, totalBytes: full.totalBytes ?? 0 });
  return `the file system of ${dir} is full (${free}) for ${full.forS} s: this node accepts no writes (DHCP silent; DNS, TFTP, NTP serve); it writes again by itself once ${mibText(full.neededBytes)} are free`;
}

/** Free and total bytes of a file system, as an unprivileged process may use them. */
export interface DiskSpace { freeBytes: number; totalBytes: number }

/** "1.2 MiB". */
export function mibText(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** "1.2 MiB free of 8.0 MiB" (or "free space unknown"). */
export function spaceText(space: DiskSpace | null): string {
  return space === null ? 'free space unknown' : `${mibText(space.freeBytes)} free of ${mibText(space.totalBytes)}`;
}

export function formatRaftStatus(c: RaftStatusBody): string {
  if (c.lastIndex === undefined) return '';
  const lines = [
    `raft: applied ${c.appliedIndex ?? 0}, last ${c.lastIndex}, snapshot ${c.snapshotIndex ?? 0}, leader lease ${c.leaseValid === true ? 'valid' : 'not held'}`
      + (c.storage ? `, ${c.storage.fsyncs} fsyncs in ${c.storage.batches} batches (${c.storage.dir})` : '')
      + (c.storage?.fsyncP99Ms != null ? `, fsync p99 ${c.storage.fsyncP99Ms} ms` : ''),
  ];
  if (c.fresh === true) lines.push('FRESH: this member started with no Raft state; it votes only while nothing shows the cluster had a log before it came (replacing a lost member: stop it, run lanctl cluster rejoin)');
  else if (c.rebuilding === true && c.amnesia !== undefined) lines.push(`REBUILDING: this member's Raft state went back in time (restored from an old backup?): ${c.amnesia.leader} says it acknowledged up to ${c.amnesia.acked}, ${c.amnesia.divergedAt !== undefined ? `its entry ${c.amnesia.divergedAt} was of another term than the leader's` : `its log ended at ${c.amnesia.lastIndex}`}; it does not vote or campaign until caught up past ${c.amnesia.acked}`);
  else if (c.rebuilding === true) lines.push('REBUILDING: this member lost its Raft storage; it does not vote or campaign until a leader has caught it up');
  if (c.heardCommit !== undefined && c.heardCommit > c.lastIndex) {
    lines.push(`log behind: the cluster committed up to ${c.heardCommit} and this member's log ends at ${c.lastIndex}; it does not campaign, nor vote for a member whose log ends below ${c.heardCommit}, until a leader sends it the rest`
      + ' (a lagging member catches up by itself; one whose state directory was put back from a backup waits for a member that holds the entries)');
  }
  const full = c.storage?.full;
  if (full) lines.push(`STORAGE ${full.reason === 'read-only' ? 'READ-ONLY' : full.reason === 'descriptors' ? 'OUT OF FILE DESCRIPTORS' : 'FULL'}: ${storageFullText(c.storage!.dir, full)}`);
  else if (c.applyStopped) lines.push(`APPLY STOPPED: ${c.applyStopped}`);
  else if (c.storage?.error) lines.push(`STORAGE FAILED: ${c.storage.error} (this node accepts no writes until restarted)`);
  const needs = c.logLevel === undefined ? null : logLevelText(c.logLevel);
  if (needs !== null) lines.push(`log level: ${needs}`);
  if (c.stateHash) lines.push(`state hash: ${c.stateHash.slice(0, 16)}`);
  let text = lines.join('\n') + '\n';
  if (c.members) {
    const role = (id: string): string => (c.members!.witnesses.includes(id) ? 'witness' : c.members!.learners.includes(id) ? 'learner' : 'voter');
    const ids = [...c.members.voters, ...c.members.learners];
    text += '\n' + formatTable(['member', 'kind', 'match', 'next', 'replication', 'active'], ids.map((id) => {
      const p = c.progress?.[id];
      return [id, role(id), p ? String(p.match) : '-', p ? String(p.next) : '-', p?.state ?? '-', p ? (p.active ? 'yes' : 'no') : '-'];
    }));
  }
  const links = formatPeerLinks(c.transport);
  if (links !== '') text += '\n' + links;
  return text;
}
