// npm run bench:raft -- lanha's Raft against etcd (Debian etcd-server), 3 members each on loopback,
// measured in one run with the same keep-alive HTTP/JSON client:
//   commit latency p50/p99 with 1 client, commits/s with 16 concurrent proposers (64-byte values),
//   leader kill -9 -> next successful commit, and (lanha) acknowledged writes lost across the kill;
//   and lanha's commit latency and throughput with mutual-TLS peer links against its cluster-key ones.
// Every process started here is stopped here by PID; all ports are 127.0.0.1 high ports.
// Env: SECS (12) seconds of load per figure and target, split over REPEAT (3) alternating rounds.
import http from 'node:http';
import { localCluster, type MemberProcess } from '../test/scenarios/raft/cluster-harness.js';
import { agent, post, startEtcdCluster } from './etcd-cluster.js';

const SECS = Number(process.env['SECS'] ?? 12);
const VALUE = 'x'.repeat(64);

type Api = 'etcd' | 'json';

function put(api: Api, url: string, key: string, timeoutMs = 5000): Promise<boolean> {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return api === 'etcd'
    ? post(url, '/v3/kv/put', JSON.stringify({ key: b64(key), value: b64(VALUE) }), timeoutMs).then((r) => r.ok)
    : post(url, '/put', JSON.stringify({ key, value: VALUE }), timeoutMs).then((r) => r.ok);
}

const pct = (a: number[], p: number): number => a[Math.min(a.length - 1, Math.floor(p * a.length))] ?? NaN;

async function load(api: Api, url: string, conc: number, secs: number, tag: string): Promise<{ perSec: number; p50: number; p99: number; errors: number }> {
  const lat: number[] = [];
  let errors = 0, n = 0;
  const t0 = performance.now(), end = t0 + secs * 1000;
  await Promise.all(Array.from({ length: conc }, async (_, w) => {
    while (performance.now() < end && errors < 10_000) {
      const s = performance.now();
      if (await put(api, url, `${tag}/${w}/${n++}`)) lat.push(performance.now() - s);
      else errors++;
    }
  }));
  const el = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { perSec: lat.length / el, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors };
}

/** One put every 10 ms round-robin over `urls` (200 ms timeout); kill -9 `kill` at 1.5 s; time to the next success. */
async function failover(api: Api, urls: string[], kill: () => void, acked: Set<string>): Promise<number> {
  const t0 = performance.now();
  let killT = 0, firstAfter = 0, i = 0;
  while (performance.now() - t0 < 15_000) {
    if (killT === 0 && performance.now() - t0 >= 1500) { kill(); killT = performance.now(); }
    const s = performance.now();
    const key = `failover/${i}`;
    const ok = await put(api, urls[i++ % urls.length]!, key, 200);
    if (ok) {
      acked.add(key);
      if (killT !== 0 && firstAfter === 0 && s >= killT) firstAfter = performance.now();
    }
    if (firstAfter !== 0 && performance.now() - firstAfter > 500) break;
    const w = 10 - (performance.now() - s);
    if (w > 0) await new Promise((r) => setTimeout(r, w));
  }
  return firstAfter === 0 ? NaN : firstAfter - killT;
}

interface Target {
  name: string;
  api: Api;
  /** Where the single client and the 16 proposers send (the current leader). */
  leaderUrl: () => Promise<string>;
  /** kill -9 the leader; returns the URLs of the survivors. */
  killLeader: () => Promise<{ kill: () => void; others: string[] }>;
  /** After the failover run: acknowledged keys missing on the new leader (lanha only). */
  lost?: (acked: Set<string>) => Promise<number>;
  stop: () => Promise<void>;
}

async function startEtcd(): Promise<Target> {
  const etcd = await startEtcdCluster(1000, 100);
  return {
    name: 'etcd', api: 'etcd',
    leaderUrl: async () => etcd.urls[await etcd.leaderIndex()]!,
    killLeader: async () => {
      const i = await etcd.leaderIndex();
      return { kill: () => etcd.procs[i]!.kill('SIGKILL'), others: etcd.urls.filter((_, j) => j !== i) };
    },
    stop: () => etcd.stop(),
  };
}

/** Three lanha members; `tls`: their peer links are mutual TLS (cluster.tls) instead of the shared key. */
async function startLanha(tls = false): Promise<Target> {
  const cluster = await localCluster(3, { http: true, tls });
  await Promise.all(cluster.members.map((m) => m.start()));
  await cluster.waitLeader(10_000);
  let killed: MemberProcess | undefined;
  return {
    name: tls ? 'lanha-tls' : 'lanha', api: 'json',
    leaderUrl: async () => `http://127.0.0.1:${(await cluster.waitLeader(5000)).httpPort}`,
    killLeader: async () => {
      const leader = await cluster.waitLeader(5000);
      killed = leader;
      return { kill: () => leader.child!.kill('SIGKILL'), others: cluster.members.filter((m) => m !== leader).map((m) => `http://127.0.0.1:${m.httpPort}`) };
    },
    lost: async (acked) => {
      const next = await cluster.waitLeader(5000, killed);
      const keys = new Set(await new Promise<string[]>((resolve) => {
        http.get({ host: '127.0.0.1', port: next.httpPort, path: '/keys', agent }, (res) => {
          let d = '';
          res.on('data', (c: Buffer) => { d += c.toString(); });
          res.on('end', () => resolve(JSON.parse(d) as string[]));
        }).on('error', () => resolve([]));
      }));
      return [...acked].filter((k) => !keys.has(k)).length;
    },
    stop: () => cluster.cleanup(),
  };
}

function result(figure: string, lanha: number, anchor: number | undefined, unit: string, better: 'higher' | 'lower', digits = 2): void {
  const a = anchor === undefined || !Number.isFinite(anchor) ? 'NA' : anchor.toFixed(digits);
  const ratio = a === 'NA' || anchor === 0 ? 'NA' : (lanha / anchor!).toFixed(3);
  console.log(`RESULT ${figure} lanha=${lanha.toFixed(digits)} etcd=${a} ratio=${ratio} unit=${unit} better=${better}`);
}

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)] ?? NaN;

// Both clusters run side by side and the phases alternate (lanha, etcd, lanha, etcd, ...), so a
// busy neighbour on the shared machine weighs on both the same way; each figure is the median.
const REPEAT = Number(process.env['REPEAT'] ?? 3);
const lanha = await startLanha();
// The same members over mutual TLS, in the same alternation: commit latency and throughput of the
// two peer-link channels side by side (RESULT raft.tls.*, the cluster-key links as the anchor).
const lanhaTls = await startLanha(true).catch(async (error: unknown) => { await lanha.stop(); throw error; });
let etcd: Target | undefined;
try {
  etcd = await startEtcd();
} catch (error) {
  console.log(`INFO etcd anchor unavailable: ${(error as Error).message}`);
}
const targets = etcd ? [lanha, lanhaTls, etcd] : [lanha, lanhaTls];
const fig = new Map<string, { p50: number[]; p99: number[]; tput: number[]; failover: number[]; lost: number[] }>();
for (const t of targets) fig.set(t.name, { p50: [], p99: [], tput: [], failover: [], lost: [] });
try {
  for (let r = 0; r < REPEAT; r++) {
    for (const t of targets) {
      const url = await t.leaderUrl();
      const c1 = await load(t.api, url, 1, SECS / REPEAT, `c1r${r}`);
      const c16 = await load(t.api, url, 16, SECS / REPEAT, `c16r${r}`);
      const f = fig.get(t.name)!;
      f.p50.push(c1.p50); f.p99.push(c1.p99); f.tput.push(c16.perSec);
      console.log(`STEP ${t.name} run=${r} p50=${c1.p50.toFixed(2)} p99=${c1.p99.toFixed(2)} c16=${c16.perSec.toFixed(0)}/s errors=${c1.errors + c16.errors}`);
    }
  }
  for (const t of targets) {
    if (t === lanhaTls) continue;
    const acked = new Set<string>();
    const { kill, others } = await t.killLeader();
    const ms = await failover(t.api, others, kill, acked);
    fig.get(t.name)!.failover.push(ms);
    if (t.lost) {
      const lost = await t.lost(acked);
      fig.get(t.name)!.lost.push(lost);
      console.log(`INFO ${t.name}: ${acked.size} writes acknowledged around the kill, ${lost} missing on the new leader`);
    }
  }
} finally {
  for (const t of targets) await t.stop();
}
const l = fig.get('lanha')!, e = fig.get('etcd');
result('raft.commit_ms_p50', median(l.p50), e && median(e.p50), 'ms', 'lower');
result('raft.commit_ms_p99', median(l.p99), e && median(e.p99), 'ms', 'lower');
result('raft.commits_per_s_16', median(l.tput), e && median(e.tput), 'commits/s', 'higher', 0);
result('raft.failover_ms', median(l.failover), e && median(e.failover), 'ms', 'lower', 0);
const tl = fig.get('lanha-tls')!;
const versus = (figure: string, tls: number, key: number, unit: string, better: 'higher' | 'lower', digits = 2): void => {
  console.log(`RESULT ${figure} lanha=${tls.toFixed(digits)} cluster-key=${key.toFixed(digits)} ratio=${(tls / key).toFixed(3)} unit=${unit} better=${better}`);
};
versus('raft.tls.commit_ms_p50', median(tl.p50), median(l.p50), 'ms', 'lower');
versus('raft.tls.commit_ms_p99', median(tl.p99), median(l.p99), 'ms', 'lower');
versus('raft.tls.commits_per_s_16', median(tl.tput), median(l.tput), 'commits/s', 'higher', 0);
console.log(`RESULT raft.lost_acked lanha=${l.lost.reduce((a, b) => a + b, 0)} etcd=NA ratio=NA unit=count better=lower`);
agent.destroy();
