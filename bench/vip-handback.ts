// bench: the VIP hand-back from a degraded holder to a leader, in the VIP timing simulation
// (test/sim/vip-sim.ts, scenario `degraded`: pauses, message delays, slow fsyncs): per leader held
// back on its partner's reports that then added the VIP, the ms from its first held-back tick to
// its acquire (wait: what the hand-back itself costs); per hand-back, the ms with no kernel holding
// the VIP between the degraded holding's end and the next leader's (gap: elections and pauses of
// the new leader included); per leader killed and restarted while its partner's machine is down,
// the ms from the restart to its holding the VIP (restart); and the seeds that saw two holders at
// once; per cycle whose server went away, the ms until the one left held the VIP degraded (alone),
// and the cycles in which it never did (aloneNever). Deterministic (seeded); no network, no root.
//   node dist/bench/vip-handback.js [SEEDS] [BASE] [LANHA_KILL]   (default 200 seeds from 1; LANHA_KILL: the
//   share of cycles, 0-1, that kill only the going server's lanha, its machine up; default 0)
// One RESULT line per behaviour: before (session 25's start), s25 (session 25's end: the one-way
// link's silence read as a paused partner, a partner's address answering ARP keeping the member
// out whatever its ports say), now:
//   RESULT vip-handback <before|s25|now> seeds=N wait=.. waitP50=.. ... gap=.. gapP50=.. ... restart=.. ... alone=.. aloneP50=.. ... aloneNever=.. twoHolderSeeds=K
import { runVipSim, type VipSimOptions } from '../test/sim/vip-sim.js';
import { percentile } from './stats.js';

const seeds = Number(process.argv[2] ?? 200);
const base = Number(process.argv[3] ?? 1);
const lanhaKill = Number(process.argv[4] ?? 0);

// Session 28's retake rules (vip-twoway.ts `s27`) off too: the witness's report naming a leader alone
// lets a degraded member go on the returns these modes replay.
const s25 = { oneWayEvidence: false, portProbe: false, retakeTerm: false, witnessReports: false, retakeIdle: false } as const;
for (const [name, mode] of [['before', { releaseReport: 'tick', startProbe: false, ...s25 }], ['s25', s25], ['now', {}]] as const) {
  const gaps: number[] = [];
  const waits: number[] = [];
  const restarts: number[] = [];
  const alone: number[] = [];
  let two = 0, aloneNever = 0;
  const started = performance.now();
  for (let seed = base; seed < base + seeds; seed++) {
    const options: VipSimOptions = { scenario: 'degraded', chaosMs: 40_000, partnerLanhaKill: lanhaKill, ...mode };
    const r = runVipSim(seed, options);
    gaps.push(...r.handBackGapsMs);
    waits.push(...r.heldBackMs);
    restarts.push(...r.restartGapsMs);
    alone.push(...r.aloneGapsMs);
    aloneNever += r.aloneNever;
    if (r.violations.some((v) => v.includes('two VIP holders'))) two++;
  }
  const line = (label: string, xs: number[]): string => {
    return `${label}=${xs.length} ${label}P50=${percentile(xs, 50)}ms ${label}P90=${percentile(xs, 90)}ms ${label}Max=${percentile(xs, 100)}ms`;
  };
  console.log(`RESULT vip-handback ${name} seeds=${seeds} ${line('wait', waits)} ${line('gap', gaps)} ${line('restart', restarts)} ${line('alone', alone)} aloneNever=${aloneNever} twoHolderSeeds=${two} (${Math.round(performance.now() - started)} ms)`);
}
