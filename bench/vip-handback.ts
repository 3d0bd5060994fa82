// bench: the VIP hand-back from a degraded holder to a leader, in the VIP timing simulation
// (test/sim/vip-sim.ts, scenario `degraded`: pauses, message delays, slow fsyncs): per leader held
// back on its partner's reports that then added the VIP, the ms from its first held-back tick to
// its acquire (wait: what the hand-back itself costs); per hand-back, the ms with no kernel holding
// the VIP between the degraded holding's end and the next leader's (gap: elections and pauses of
// the new leader included); per leader killed and restarted while its partner's machine is down,
// the ms from the restart to its holding the VIP (restart); and the seeds that saw two holders at
// once. Deterministic (seeded); no network, no root.
//   node dist/bench/vip-handback.js [SEEDS] [BASE]     (default 200 seeds from 1)
// One RESULT line for the old behaviour and one for the new:
//   RESULT vip-handback <before|now> seeds=N wait=.. waitP50=.. waitP90=.. waitMax=.. gap=.. gapP50=.. ... restart=.. restartP50=.. ... twoHolderSeeds=K
import { runVipSim, type VipSimOptions } from '../test/sim/vip-sim.js';
import { percentile } from './stats.js';

const seeds = Number(process.argv[2] ?? 200);
const base = Number(process.argv[3] ?? 1);

// before: the report at the next report tick and no start probe (the daemon until session 25); now: the defaults.
for (const [name, mode] of [['before', { releaseReport: 'tick', startProbe: false }], ['now', {}]] as const) {
  const gaps: number[] = [];
  const waits: number[] = [];
  const restarts: number[] = [];
  let two = 0;
  const started = performance.now();
  for (let seed = base; seed < base + seeds; seed++) {
    const options: VipSimOptions = { scenario: 'degraded', chaosMs: 40_000, ...mode };
    const r = runVipSim(seed, options);
    gaps.push(...r.handBackGapsMs);
    waits.push(...r.heldBackMs);
    restarts.push(...r.restartGapsMs);
    if (r.violations.some((v) => v.includes('two VIP holders'))) two++;
  }
  const line = (label: string, xs: number[]): string => {
    return `${label}=${xs.length} ${label}P50=${percentile(xs, 50)}ms ${label}P90=${percentile(xs, 90)}ms ${label}Max=${percentile(xs, 100)}ms`;
  };
  console.log(`RESULT vip-handback ${name} seeds=${seeds} ${line('wait', waits)} ${line('gap', gaps)} ${line('restart', restarts)} twoHolderSeeds=${two} (${Math.round(performance.now() - started)} ms)`);
}
