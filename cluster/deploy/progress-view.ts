import type { Job, JobNode } from '../rootfs-state.js';
import type { LiveProgress } from './jobs.js';

// What `lanctl deploy` prints per node: the live line (state, bytes, %, rate, ETA) and the summary
// table's rows. Pure: the job from the log and the leader's live progress come in.

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** One line for a node: "c1  running  12.0 MiB  45%  12.34MB/s  ETA 0:00:03". */
export function progressLine(n: JobNode, live: LiveProgress | undefined): string {
  const name = n.name.padEnd(12);
  if (n.state === 'running' && live?.phase === 'overlay') return `${name} running  overlay files`;
  if (n.state === 'running' && live?.progress) {
    const p = live.progress;
    return `${name} running  ${formatBytes(p.bytes).padStart(9)}  ${String(p.percent).padStart(3)}%  ${p.rate.padStart(11)}  ETA ${p.eta}`;
  }
  if (n.state === 'done') return `${name} done     ${formatBytes(n.total ?? n.bytes).padStart(9)}  sent ${formatBytes(n.sent)}`;
  if (n.state === 'failed' || n.state === 'interrupted') return `${name} ${n.state.padEnd(8)} ${n.error ?? ''}`;
  return `${name} ${n.state}`;
}

export function summaryRows(job: Job): string[][] {
  return job.nodes.map((n) => [
    n.name, n.state, formatBytes(n.total ?? n.bytes), formatBytes(n.sent),
    n.error ?? (n.state === 'done' ? (job.dryRun ? 'dry run: nothing changed' : 'synced and verified') : '-')
      + (n.removed === true ? ' (removed from the inventory meanwhile: not recorded)' : ''),
  ]);
}
