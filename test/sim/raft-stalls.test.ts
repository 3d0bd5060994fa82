import t from 'tap';
import { runSim } from './raft-sim.js';

// Stalls of the members' own processes and nothing else (simulator faults 'stalls': the leader's
// process, a follower's, or every member's at once, for 0.5-4 election timeouts, on a network
// without loss), each seed run twice: with the host as it was (the stall's ticks fed one by one,
// acting before what arrived meanwhile is stepped) and as it is (RaftNode.catchUp holds the
// timeouts they reach). Both must keep every safety check; the hold must cost fewer elections.
// The counts are printed (the deterministic twin of bench/raft-stall.ts).

const SEEDS = 150;

t.test(`stalls only, ${SEEDS} seeds: every safety check holds with and without the hold, and the hold saves elections`, async (t) => {
  const total = { before: 0, after: 0, stallsBefore: 0, stallsAfter: 0, held: 0, averted: 0 };
  const byKind = new Map<string, { stalls: [number, number]; elections: [number, number] }>();
  const failures: string[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const before = runSim(seed, { faults: 'stalls', stallHold: false, chaosMs: 12_000 });
    const after = runSim(seed, { faults: 'stalls', chaosMs: 12_000 });
    for (const r of [before, after]) if (r.violations.length > 0) failures.push(`${r.violations.join('; ')} (hold ${r === after})`);
    // The first election is the cluster's start; every later one followed a stall.
    total.before += before.elections - 1;
    total.after += after.elections - 1;
    total.stallsBefore += before.stalls;
    total.stallsAfter += after.stalls;
    for (const [i, r] of [[0, before], [1, after]] as const) {
      for (const [kind, c] of Object.entries(r.stallElections)) {
        const k = byKind.get(kind) ?? { stalls: [0, 0], elections: [0, 0] };
        k.stalls[i] += c.stalls;
        k.elections[i] += c.elections;
        byKind.set(kind, k);
      }
    }
    total.held += after.stallHolds.held;
    total.averted += after.stallHolds.averted;
    if (failures.length >= 5) break;
  }
  t.same(failures, [], 'no safety violation, and a caught-up leader after healing, either way');
  t.ok(total.stallsBefore > SEEDS && total.stallsAfter > SEEDS, `${total.stallsBefore} / ${total.stallsAfter} stalls`);
  t.ok(total.after < total.before, `elections after a stall: ${total.before} fed as ticks on time (${(total.before / total.stallsBefore).toFixed(2)} per stall), ${total.after} with the hold (${(total.after / total.stallsAfter).toFixed(2)} per stall)`);
  for (const [kind, k] of [...byKind].sort()) {
    t.comment(`${kind} stalls: ${(k.elections[0] / k.stalls[0]).toFixed(2)} elections per stall before (${k.elections[0]} / ${k.stalls[0]}), ${(k.elections[1] / k.stalls[1]).toFixed(2)} with the hold (${k.elections[1]} / ${k.stalls[1]})`);
  }
  const rate = (i: 0 | 1): number => {
    const all = [...byKind].filter(([kind]) => kind.startsWith('all '));
    return all.reduce((a, [, k]) => a + k.elections[i], 0) / Math.max(1, all.reduce((a, [, k]) => a + k.stalls[i], 0));
  };
  t.ok(rate(1) < rate(0), `stalls of every member at once (a loaded machine running them all): ${rate(0).toFixed(2)} elections per stall before, ${rate(1).toFixed(2)} with the hold`);
  t.ok(total.averted > 0, `the hold averted ${total.averted} of the ${total.held} timeouts it held`);
});
