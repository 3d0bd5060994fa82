import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VipNode } from './vip-lab.js';
import type { Lab, LabHost } from '../support/netns.js';
import { runLanctl } from '../support/daemon.js';
import { fillDisk, sleep, type FaultLab } from './fault-lab.js';

// The faults of the failover suite (HA.md §4.2, issue 12), each as "break, wait, heal" on a
// FaultLab. Only processes the lab started are signalled, by PID. The wall-clock step of the leader
// runs the servers under libfaketime (LD_PRELOAD; Date.now() moves, process.hrtime and
// performance.now() do not): Linux time namespaces shift only CLOCK_MONOTONIC/BOOTTIME, and the
// shared host clock must never be stepped.

export interface Fault {
  name: string;
  /** Breaks something and heals it; may return what it saw go wrong meanwhile (the suite asserts none). */
  inject(fl: FaultLab, roles: { leader: VipNode; follower: VipNode }): Promise<void | string[]>;
  /**
   * The fault hits a non-leader only (kill -9 of the follower, of the witness): the leader keeps a
   * quorum, so it must keep the VIP and answer throughout (FaultOutcome.leaderHold), and its gap is
   * reported as `failover.leader_gap_ms.<leaderGapName>`.
   */
  leaderGapName?: string;
}

async function kill9AndRestart(fl: FaultLab, node: VipNode, downMs: number): Promise<void> {
  fl.kill(node, 'SIGKILL');
  await new Promise<void>((resolve) => { if (node.daemon!.child.exitCode !== null || node.daemon!.child.signalCode !== null) resolve(); else node.daemon!.child.once('exit', () => resolve()); });
  await sleep(downMs);
  await fl.restart(node);
}

/** SIGSTOP through `kill`, then SIGCONT `ms` later (also when the wait is cut short). */
export async function pauseFor(kill: (signal: NodeJS.Signals) => void, ms: number): Promise<void> {
  kill('SIGSTOP');
  try {
    await sleep(ms);
  } finally {
    kill('SIGCONT');
  }
}

/** A host's interface down for `ms`, then up again. */
export async function linkDownFor(host: LabHost, ifname: string, ms: number): Promise<void> {
  await host.exec('ip', ['link', 'set', 'dev', ifname, 'down']);
  try {
    await sleep(ms);
  } finally {
    await host.exec('ip', ['link', 'set', 'dev', ifname, 'up']);
  }
}

function pause(seconds: number): Fault {
  return { name: `sigstop_${seconds}s`, inject: (fl, { leader }) => pauseFor((signal) => fl.kill(leader, signal), seconds * 1000) };
}

/**
 * nft rules in the switch namespace dropping every frame between two bridge ports (table `table`,
 * rule file in `dir`); returns the heal.
 */
export async function cutPorts(lab: Lab, dir: string, pa: string, pb: string, table: string): Promise<() => Promise<void>> {
  const script = [
    `add table bridge ${table}`,
    `add chain bridge ${table} cutfwd { type filter hook forward priority 0; policy accept; }`,
    `add rule bridge ${table} cutfwd iifname ${pa} oifname ${pb} drop`,
    `add rule bridge ${table} cutfwd iifname ${pb} oifname ${pa} drop`,
  ].join('\n');
  const file = join(dir, `${table}.nft`);
  writeFileSync(file, script + '\n');
  const r = await lab.execSwitch('nft', ['-f', file]);
  if (r.code !== 0) throw new Error(`nft -f ${file}: ${r.stderr}`);
  return async () => { await lab.execSwitch('nft', ['delete', 'table', 'bridge', table]); };
}

/** The cut between the two servers' bridge ports. */
function cutServers(fl: FaultLab): Promise<() => Promise<void>> {
  return cutPorts(fl.lab, fl.c.dir, fl.lab.bridgePort(0), fl.lab.bridgePort(1), 'lhcut');
}

export const FAULTS: readonly Fault[] = [
  { name: 'kill9_leader', inject: (fl, { leader }) => kill9AndRestart(fl, leader, 2000) },
  { name: 'kill9_follower', leaderGapName: 'kill_follower', inject: (fl, { follower }) => kill9AndRestart(fl, follower, 2000) },
  { name: 'kill9_witness', leaderGapName: 'kill_witness', inject: (fl) => kill9AndRestart(fl, fl.c.witness, 2000) },
  pause(0.5),
  pause(2),
  pause(10),
  { name: 'link_down_leader', inject: (_fl, { leader }) => linkDownFor(leader.host, leader.host.ifname, 3000) },
  {
    name: 'cut_a_b',
    async inject(fl) {
      const heal = await cutServers(fl);
      try {
        await sleep(4000);
      } finally {
        await heal();
      }
    },
  },
  {
    // +1 h, then 1 h behind, then right again, with the clients renewing meanwhile. Log time is the
    // leader's: it must slew, not jump (cluster/log-time.ts), and nothing that measures durations
    // on the leader may read the wall clock.
    name: 'clock_step_leader',
    async inject(fl, { leader }) {
      const from = leader.daemon!.logs().length;
      try {
        fl.c.stepWallClock(leader, 3600);
        await sleep(8000);
        fl.c.stepWallClock(leader, -3600);
        await sleep(8000);
      } finally {
        fl.c.stepWallClock(leader, 0);
      }
      await sleep(2500); // libfaketime reads the offset at most once a second
      // A step must not expire live leases (the sweep judged expiry on the wall clock). That it does
      // not delete the VIP either (the guard did on each forward step) is guard.test.ts's to prove:
      // here a real stall of the loaded test machine expires the guard too, rightly.
      const events = leader.daemon!.logs().slice(from).split('\n').filter((l) => /"event":"(dhcp\.lease\.expired|dhcp\.expire\.failed)"/.test(l));
      return events.map((l) => `${leader.name} logged ${l.slice(0, 240)}`);
    },
  },
  {
    // The follower's clock an hour ahead, then leadership handed to it (lanctl failover): a leader
    // elected while its clock is already wrong. Log time must follow the quorum's clock (the other
    // two members', from the member reports: cluster/log-time.ts), not its own, or every lease it
    // grants or renews would end an hour late (the suite's farExpiry checker) and live leases
    // would be judged on a clock an hour ahead.
    name: 'clock_ahead_new_leader',
    async inject(fl, { leader, follower }) {
      const findings: string[] = [];
      try {
        fl.c.stepWallClock(follower, 3600);
        // libfaketime rereads the offset within 2 s; the member reports (one a second) then carry it.
        await sleep(4000);
        // On a loaded machine leadership may move on its own meanwhile: hand it over from whoever
        // leads, up to three times, until the member whose clock is ahead leads.
        const tries: string[] = [];
        let now = { leader };
        for (let i = 0; i < 3 && now.leader !== follower; i++) {
          const r = await runLanctl(['failover', '--to', follower.name, '--socket', now.leader.socket], { timeoutMs: 30_000 });
          if (r.code !== 0) tries.push(`lanctl failover --to ${follower.name} on ${now.leader.name} failed (${r.code}): ${r.stderr.trim().slice(0, 200)}`);
          now = await fl.steady();
        }
        if (now.leader !== follower) findings.push(`${follower.name}, whose clock is ahead, never led: ${tries.join('; ')}`);
        // Let every client renew on the new leader (renewTime 5 s) while its clock is still ahead.
        await sleep(7000);
        findings.push(...(await fl.farExpiry()).map((l) => `while ${follower.name}'s clock was an hour ahead: ${l}`));
      } finally {
        fl.c.stepWallClock(follower, 0);
      }
      await sleep(2500); // libfaketime reads the offset at most once a second
      return findings;
    },
  },
  {
    name: 'restart_all',
    async inject(fl) {
      const all = fl.members;
      for (const n of all) fl.kill(n, 'SIGKILL');
      await sleep(500);
      // Random order, random gaps: the cluster must form whoever comes back first.
      const order = all.map((n) => ({ n, k: Math.random() })).sort((x, y) => x.k - y.k).map((x) => x.n);
      for (const n of order) {
        await fl.restart(n);
        await sleep(Math.floor(Math.random() * 1000));
      }
    },
  },
  {
    name: 'disk_full_leader',
    async inject(fl, { leader }) {
      const free = await fillDisk(`${fl.c.dir}/${leader.name}`);
      try {
        // The WAL writes zeros up to 64 KiB ahead of its tail (Wal.#prefill), and its last tmpfs page
        // has room too, so renewals alone (every few seconds) take minutes to reach the write that
        // fails. Log entries from an operator get there at once: inventory imports of 300 nodes (a
        // few hundred bytes each) until one fails; that write fails, the leader fences itself, and
        // the other server takes over.
        const start = performance.now();
        for (let round = 0; round < 8; round++) {
          const lines = Array.from({ length: 300 }, (_, i) => `dhcp-host=02:fd:${round.toString(16).padStart(2, '0')}:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')},fill${round}-${i}`);
          const file = join(fl.c.dir, `fill-${round}.conf`);
          writeFileSync(file, `${lines.join('\n')}\n`);
          const r = await runLanctl(['nodes', 'import', file, '--socket', leader.socket], { timeoutMs: 20_000 });
          if (r.code !== 0) break;
        }
        await fl.c.waitSample((s) => s.holders.length === 1 && s.holders[0] !== leader.name, 30_000, start);
      } finally {
        free();
      }
      // A member whose write failed exits by itself (status 1) for its service manager to restart
      // it; the suite restarts it here (the kill covers a member that has not exited yet).
      await kill9AndRestart(fl, leader, 500);
    },
  },
];

/**
 * Faults run only when named (FAULTS=...), not by the suite in `npm test`. `idle_control`: no fault
 * (the yardstick for the leader's gap). `cut_a_b_slow_witness`:
 * the A-B cut while the witness, the one member left to make a majority, stalls (SIGSTOP 2.5 s,
 * SIGCONT 0.3 s, eight times): what a machine at load 17-20 did to it in the bench:failover round
 * that counted 6 ACKed leases lost. A REQUEST taken in a 0.3 s window commits only when the witness
 * runs again, so its ACK leaves seconds after the entry's log time.
 */
export const EXTRA_FAULTS: readonly Fault[] = [
  // Nothing broken for as long as a kill -9 round keeps its member down: the leader's gap here is
  // what the load on the machine alone costs it, the yardstick for failover.leader_gap_ms.kill_*.
  { name: 'idle_control', leaderGapName: 'none', inject: () => sleep(2500) },
  {
    name: 'cut_a_b_slow_witness',
    async inject(fl) {
      const heal = await cutServers(fl);
      const witness = fl.c.witness.daemon!.child;
      try {
        await sleep(500);
        for (let i = 0; i < 8; i++) {
          witness.kill('SIGSTOP');
          try {
            await sleep(2500);
          } finally {
            witness.kill('SIGCONT');
          }
          await sleep(300);
        }
      } finally {
        witness.kill('SIGCONT');
        await heal();
      }
    },
  },
];
