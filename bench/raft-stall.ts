// bench: leadership changes per stall of the members' own processes. Three lanha members
// (test/scenarios/raft/member.ts: the daemon's StateLog, WAL and transport, the default timers:
// election timeout 250-370 ms, heartbeat 40 ms) and three etcd members with the same election
// timeout and heartbeat (the anchor) run side by side on 127.0.0.1 high ports. Each stall freezes
// processes with SIGSTOP and wakes them with SIGCONT (in a random order): `leader` the leader's
// alone, `all` every member's at once (a loaded machine that runs them all, as CI does). After each
// stall, and a settle time, every member is asked for the term and the leader: a stall after which
// the term moved cost an election (the VIP and DHCP follow the leader). A leader stalled longer than
// its followers' election timeout is replaced by any Raft (they heard nothing from it), so
// `leader` stalls are kept inside the window where only the stalled leader's own reading of its
// stall moved leadership.
//   node dist/bench/raft-stall.js
// Env: STALLS (10) per kind, KINDS (leader:300,all:400,all:1000: kind:ms), SETTLE_MS (1500),
// ETCD (1; 0 runs lanha alone). Every process is started here and stopped by PID.
// RESULT raft.stall.<kind>_<ms>ms.elections lanha=<stalls that moved the term> etcd=<same>
// ratio=<lanha/etcd> unit=per_<STALLS>_stalls better=lower; INFO lines: the leader moved, and
// lanha's stall holds (status stability.stallHolds: held, averted), when the build has them.
import { loadavg } from 'node:os';
import { localCluster, type LocalCluster } from '../test/scenarios/raft/cluster-harness.js';
import { startEtcdCluster, agent, type EtcdCluster } from './etcd-cluster.js';

const STALLS = Number(process.env['STALLS'] ?? 10);
const KINDS = (process.env['KINDS'] ?? 'leader:300,all:400,all:1000').split(',').map((k) => {
  const [kind, ms] = k.split(':');
  if ((kind !== 'leader' && kind !== 'all') || !(Number(ms) > 0)) throw new Error(`KINDS: "${k}" is not leader:<ms> or all:<ms>`);
  return { kind, ms: Number(ms) };
});
const SETTLE_MS = Number(process.env['SETTLE_MS'] ?? 1500);
const ELECTION_MS = 250;
const HEARTBEAT_MS = 40;

interface View { leader: string | null; term: number }
interface Stack {
  name: string;
  pids(): number[];
  leaderPid(): Promise<number | undefined>;
  view(): Promise<View>;
  holds?(): Promise<{ held: number; averted: number } | null>;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function lanhaStack(cluster: LocalCluster): Stack {
  const statuses = (): Promise<Array<Record<string, unknown> | null>> => Promise.all(cluster.members.map((m) => m.status().then((s) => s as unknown as Record<string, unknown>, () => null)));
  return {
    name: 'lanha',
    pids: () => cluster.members.map((m) => m.pid!),
    leaderPid: async () => {
      const sts = await statuses();
      let best: { pid: number; term: number } | undefined;
      sts.forEach((s, i) => { if (s?.['role'] === 'leader' && (best === undefined || Number(s['term']) > best.term)) best = { pid: cluster.members[i]!.pid!, term: Number(s['term']) }; });
      return best?.pid;
    },
    view: async () => {
      const sts = (await statuses()).filter((s): s is Record<string, unknown> => s !== null);
      const term = Math.max(...sts.map((s) => Number(s['term'])));
      const leader = sts.find((s) => s['role'] === 'leader' && Number(s['term']) === term);
      return { leader: leader ? String(leader['leader']) : null, term };
    },
    holds: async () => {
      const sts = await statuses();
      let held = 0, averted = 0, seen = false;
      for (const s of sts) {
        const h = (s?.['stability'] as { stallHolds?: { held: number; averted: number } } | undefined)?.stallHolds;
        if (h) { seen = true; held += h.held; averted += h.averted; }
      }
      return seen ? { held, averted } : null;
    },
    stop: () => cluster.cleanup(),
  };
}

function etcdStack(etcd: EtcdCluster): Stack {
  return {
    name: 'etcd',
    pids: () => etcd.procs.map((p) => p.pid!),
    leaderPid: async () => etcd.procs[await etcd.leaderIndex()]!.pid,
    view: async () => {
      const vs = (await etcd.views()).filter((v): v is { leader: string; term: number } => v !== null);
      const term = Math.max(...vs.map((v) => v.term));
      return { leader: vs.find((v) => v.term === term)?.leader ?? null, term };
    },
    stop: () => etcd.stop(),
  };
}

/** SIGSTOP `pids`, wait `ms`, SIGCONT them in a random order. */
async function stall(pids: number[], ms: number): Promise<void> {
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    await sleep(ms);
  } finally {
    for (const pid of [...pids].sort(() => Math.random() - 0.5)) process.kill(pid, 'SIGCONT');
  }
}

/** Waits until the stack has one leader that every answering member names (bounded). */
async function settled(s: Stack, timeoutMs = 10_000): Promise<View> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await s.view();
    if (v.leader !== null && (await s.leaderPid()) !== undefined) return v;
    if (performance.now() > end) return v;
    await sleep(50);
  }
}

console.log(`INFO start ${new Date().toISOString()} loadavg ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const stacks: Stack[] = [];
const lanhaCluster = await localCluster(3);
await Promise.all(lanhaCluster.members.map((m) => m.start()));
await lanhaCluster.waitLeader(10_000);
stacks.push(lanhaStack(lanhaCluster));
if (process.env['ETCD'] !== '0') {
  try {
    stacks.push(etcdStack(await startEtcdCluster(ELECTION_MS, HEARTBEAT_MS)));
  } catch (error) {
    console.log(`INFO etcd anchor unavailable: ${(error as Error).message}`);
  }
}
const counts = new Map<string, { elections: number; moved: number }>();
try {
  for (const { kind, ms } of KINDS) {
    // The stacks take turns stall by stall, so the machine's load weighs on both alike.
    for (let i = 0; i < STALLS; i++) {
      for (const s of stacks) {
        const before = await settled(s);
        const pids = kind === 'all' ? s.pids() : [await s.leaderPid()].filter((p): p is number => p !== undefined);
        await stall(pids, ms);
        await sleep(SETTLE_MS);
        const after = await settled(s);
        const key = `${s.name} ${kind}_${ms}ms`;
        const c = counts.get(key) ?? { elections: 0, moved: 0 };
        if (after.term !== before.term) c.elections++;
        if (after.leader !== before.leader) c.moved++;
        counts.set(key, c);
        console.log(`STEP ${s.name} ${kind}:${ms} #${i + 1} term ${before.term} -> ${after.term} leader ${before.leader} -> ${after.leader}`);
      }
    }
  }
  for (const s of stacks) {
    const h = await s.holds?.();
    if (h !== undefined) console.log(`INFO ${s.name} stall holds (summed over members): ${h === null ? 'not in this build' : `held ${h.held}, averted ${h.averted}`}`);
  }
} finally {
  for (const s of stacks) await s.stop();
  agent.destroy();
}
for (const { kind, ms } of KINDS) {
  const l = counts.get(`lanha ${kind}_${ms}ms`)!;
  const e = counts.get(`etcd ${kind}_${ms}ms`);
  const ratio = e === undefined || e.elections === 0 ? 'NA' : (l.elections / e.elections).toFixed(3);
  // An NA never stands alone (DESIGN.md): the line before says why.
  const fig = `raft.stall.${kind}_${ms}ms.elections`;
  if (e === undefined) console.log(`# ${fig}: etcd=NA: etcd was not run (ETCD=0)`);
  else if (e.elections === 0) console.log(`# ${fig}: ratio=NA: etcd's figure is 0 (lanha ${l.elections})`);
  console.log(`RESULT ${fig} lanha=${l.elections} etcd=${e?.elections ?? 'NA'} ratio=${ratio} unit=per_${STALLS}_stalls better=lower`);
  console.log(`INFO raft.stall.${kind}_${ms}ms.leader_moved lanha=${l.moved} etcd=${e?.moved ?? 'NA'}`);
}
console.log(`INFO end ${new Date().toISOString()} loadavg ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
