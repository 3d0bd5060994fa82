import { formatTable } from '../../lib/table.js';

// The Raft part of `lanctl status` (text form): where the log stands, and on a leader each member's
// replication progress. The JSON form carries the whole StateLog status unchanged.

export interface RaftStatusBody {
  appliedIndex?: number;
  lastIndex?: number;
  snapshotIndex?: number;
  leaseValid?: boolean;
  members?: { voters: string[]; learners: string[]; witnesses: string[] };
  progress?: Record<string, { match: number; next: number; state: string; active: boolean }>;
  storage?: { dir: string; batches: number; fsyncs: number; fsyncP99Ms?: number | null; error: string | null };
  stateHash?: string;
}

export function formatRaftStatus(c: RaftStatusBody): string {
  if (c.lastIndex === undefined) return '';
  const lines = [
    `raft: applied ${c.appliedIndex ?? 0}, last ${c.lastIndex}, snapshot ${c.snapshotIndex ?? 0}, leader lease ${c.leaseValid === true ? 'valid' : 'not held'}`
      + (c.storage ? `, ${c.storage.fsyncs} fsyncs in ${c.storage.batches} batches (${c.storage.dir})` : '')
      + (c.storage?.fsyncP99Ms != null ? `, fsync p99 ${c.storage.fsyncP99Ms} ms` : ''),
  ];
  if (c.storage?.error) lines.push(`STORAGE FAILED: ${c.storage.error} (this node accepts no writes until restarted)`);
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
  return text;
}
