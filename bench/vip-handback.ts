// bench: the VIP hand-back from a degraded holder to a leader, in the VIP timing simulation
// (test/sim/vip-sim.ts, scenario `degraded`: pauses, message delays, slow fsyncs): per hand-back, the
// ms with no kernel holding the VIP between the degraded holding's end and the next leader's (gap:
// elections and pauses of the new leader included), per leader held back that then added it, the
// ms from its first held-back tick to its acquire (wait: what the hand-back itself costs), and the
// seeds that saw two holders at once. Deterministic (seeded); no network, no root.
//   node dist/bench/vip-handback.js [SEEDS] [BASE]     (default 200 seeds from 1)
// Prints, per way of sending the degraded holder's "let go" report, one RESULT line:
//   RESULT vip-handback <mode> seeds=N gaps=G gapP50=.. gapP90=.. gapMax=.. heldBack=H waitP50=.. waitP90=.. waitMax=.. twoHolderSeeds=K
import { runVipSim, type VipSimOptions } from '../test/sim/vip-sim.js';

const seeds = Number(process.argv[2] ?? 200);
const base = Number(process.argv[3] ?? 1);

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

for (const releaseReport of ['tick', 'at-once'] as const) {
  const gaps: number[] = [];
  const waits: number[] = [];
  let two = 0;
  const started = performance.now();
  for (let seed = base; seed < base + seeds; seed++) {
    const options: VipSimOptions = { scenario: 'degraded', chaosMs: 40_000, releaseReport };
    const r = runVipSim(seed, options);
    gaps.push(...r.handBackGapsMs);
    waits.push(...r.heldBackMs);
    if (r.violations.some((v) => v.includes('two VIP holders'))) two++;
  }
  gaps.sort((a, b) => a - b);
  waits.sort((a, b) => a - b);
  console.log(`RESULT vip-handback ${releaseReport} seeds=${seeds} gaps=${gaps.length} gapP50=${quantile(gaps, 0.5)}ms gapP90=${quantile(gaps, 0.9)}ms gapMax=${gaps.at(-1)}ms`
    + ` heldBack=${waits.length} waitP50=${quantile(waits, 0.5)}ms waitP90=${quantile(waits, 0.9)}ms waitMax=${waits.at(-1)}ms twoHolderSeeds=${two} (${Math.round(performance.now() - started)} ms)`);
}
