// npm run bench:backend (not a test): one DIAG line per DORA pass, to tell a low pass's cause
// apart: lanha's side (leadership lapsed or lost, proposals shed or failed, requests dropped while
// not leading, the watch stalled, where the ACKs' time went) and, on the etcd backend, etcd's own
// (leader changes, WAL fsyncs and how many took over 256 ms, slow applies, failed proposals; from
// the members' /metrics before and after the pass).
//   node dist/bench/backend-diag.js BACKEND PASS LANHA_LOG [METRICS_BEFORE METRICS_AFTER] < status.json
// Unreadable input gives NA fields, never a crash.
import { readFileSync } from 'node:fs';

type Json = Record<string, unknown>;

function readText(path: string | undefined): string {
  if (path === undefined) return '';
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function parseJson(text: string): Json {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v as Json : {};
  } catch {
    return {};
  }
}

const obj = (v: unknown): Json => (typeof v === 'object' && v !== null ? v as Json : {});
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const show = (v: number | null, digits = 0): string => (v === null ? 'NA' : v.toFixed(digits));

/** Sums of the Prometheus samples named (all members' scrapes concatenated), keyed by name{labels}. */
export function sumMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (cut <= 0) continue;
    const value = Number(line.slice(cut + 1));
    if (!Number.isFinite(value)) continue;
    const name = line.slice(0, cut);
    out.set(name, (out.get(name) ?? 0) + value);
  }
  return out;
}

/** etcd's side of a pass: deltas of its members' counters between two scrapes. */
export function etcdDelta(before: string, after: string): string {
  if (after === '') return 'etcd=NA';
  const a = sumMetrics(before);
  const b = sumMetrics(after);
  const d = (name: string): number => (b.get(name) ?? 0) - (a.get(name) ?? 0);
  const fsyncs = d('etcd_disk_wal_fsync_duration_seconds_count');
  const fsyncS = d('etcd_disk_wal_fsync_duration_seconds_sum');
  const slowFsyncs = fsyncs - d('etcd_disk_wal_fsync_duration_seconds_bucket{le="0.256"}');
  const commits = d('etcd_disk_backend_commit_duration_seconds_count');
  const slowCommits = commits - d('etcd_disk_backend_commit_duration_seconds_bucket{le="0.256"}');
  return [
    `etcd_leader_changes=${d('etcd_server_leader_changes_seen_total')}`,
    `etcd_fsyncs=${fsyncs}`,
    `etcd_fsync_mean_ms=${fsyncs > 0 ? ((fsyncS * 1000) / fsyncs).toFixed(1) : 'NA'}`,
    `etcd_fsyncs_over_256ms=${slowFsyncs}`,
    `etcd_commits_over_256ms=${slowCommits}`,
    `etcd_slow_applies=${d('etcd_server_slow_apply_total')}`,
    `etcd_proposals_failed=${d('etcd_server_proposals_failed_total')}`,
    `etcd_heartbeat_failures=${d('etcd_server_heartbeat_send_failures_total')}`,
  ].join(' ');
}

/** lanha's side of a pass: its log's leadership events, the DHCP drop counters, the ACK stages. */
export function lanhaSide(backend: string, status: Json, log: string): string {
  const count = (event: string): number => log.split(`"event":"${event}"`).length - 1;
  const dhcp = obj(obj(status['services'])['dhcp']);
  const counters = obj(dhcp['counters']);
  const stages = obj(dhcp['ackStages']);
  const stage = (name: string, field: 'p50Ms' | 'p99Ms'): string => show(num(obj(stages[name])[field]), 1);
  const fields = [
    `acks=${show(num(counters['sent.ack']))}`,
    `not_leader_drops=${show(num(counters['dropped.not-leader']) ?? 0)}`,
    `propose_failed=${show(num(counters['propose.failed']) ?? 0)}`,
    // Every other DHCP counter (received, offers, NAKs, silent, allocation failures...): where requests went.
    Object.entries(counters).filter(([k, v]) => !['sent.ack', 'dropped.not-leader', 'propose.failed'].includes(k) && num(v) !== null && num(v) !== 0)
      .map(([k, v]) => `${k}=${show(num(v))}`).join(' '),
    // Addresses bound at the end: fewer than ACKs when perfdhcp's clients came back (renewal-like REQUESTs).
    `bound=${show(Array.isArray(dhcp['pools']) ? (dhcp['pools'] as unknown[]).reduce<number>((n, p) => n + (num(obj(p)['used']) ?? 0), 0) : null)}`,
    `ack_p50_ms=${stage('total', 'p50Ms')} ack_p99_ms=${stage('total', 'p99Ms')}`,
    `queue_p99_ms=${stage('queue', 'p99Ms')} persist_p99_ms=${stage('persist', 'p99Ms')} commit_p99_ms=${stage('commit', 'p99Ms')}`,
  ];
  if (backend === 'etcd') {
    const e = obj(obj(status['cluster'])['etcd']);
    const txns = num(e['txns']);
    const commands = num(e['txnCommands']);
    fields.push(
      `lease_lapsed=${count('etcd.lease_lapsed')} leadership_lost=${count('etcd.leadership_lost')} lease_lost=${count('etcd.lease_lost')} etcd_errors_logged=${count('etcd.error')}`,
      `keepalive_failures=${show(num(e['keepAliveFailures']))} shed=${show(num(e['shed']))} conflicts=${show(num(e['conflicts']))}`,
      `watch_stalls=${show(num(e['staleWatches']))} watch_restarts=${show(num(e['watchRestarts']))}`,
      `per_txn=${txns !== null && commands !== null && txns > 0 ? (commands / txns).toFixed(2) : 'NA'}`,
    );
  } else {
    fields.push(`lease_lapsed=${count('raft.lease_lapsed')}`);
  }
  return fields.join(' ');
}

function main(): void {
  const [backend = '?', pass = '?', logPath, before, after] = process.argv.slice(2);
  const status = parseJson(readText('/dev/stdin'));
  const line = [`DIAG ${backend} pass=${pass}`, lanhaSide(backend, status, readText(logPath))];
  if (backend === 'etcd') line.push(etcdDelta(readText(before), readText(after)));
  console.log(line.join(' '));
}

main();
