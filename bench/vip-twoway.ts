// bench: the VIP simulation (test/sim/vip-sim.ts) swept over seeds for one scenario, the hand-back
// probe of the VIP on (now) or off (before, `leaderProbe: false`): the seeds with two holders at
// once (any other violation listed apart), and for the degraded scenarios the no-holder gap from a
// degraded holding's end to a leader's holding (handBackGapsMs) and a held-back leader's wait.
// Mode `s27` (session 27's end): the probe on, the retake's rules of session 28 off (a newer term
// restarting its wait, the witness's report naming a leader as a quorum, the wait after a return
// while not degraded). For `partnerback` also the no-holder stretches within such returns per kind.
// Deterministic (seeded); no network, no root.
//   node dist/bench/vip-twoway.js SCENARIO [SEEDS] [BASE] [before|s27|now|noprobe]
// SCENARIO: twoway (degraded, half the returns with the cluster link cut both ways), degraded,
// lanhakill (degraded, half the cycles kill only the going server's lanha), partnerback (degraded,
// every return before the last 15 s a partner back on the LAN that cannot lead: never, late, flap),
// partnerdown (degraded, cycles with only the follower's machine down 8-16 s while pauses lapse the
// leader's lease: each re-acquire with the partner silent past 4 s waits for the probe; `noprobe`:
// without the hand-back probe, what it costs), chaos.
//   RESULT vip-twoway <scenario> <mode> seeds=N twoHolderSeeds=K [..] gap=.. gapP50=.. gapP90=.. gapMax=.. wait=.. ...
import { runVipSim, type VipSimOptions } from '../test/sim/vip-sim.js';
import { percentile } from './stats.js';

const scenario = process.argv[2] ?? 'twoway';
const seeds = Number(process.argv[3] ?? 200);
const base = Number(process.argv[4] ?? 1);
const mode = process.argv[5] ?? 'now';
const byScenario: Record<string, VipSimOptions> = {
  twoway: { scenario: 'degraded', chaosMs: 40_000, twoWayCut: 0.5 },
  degraded: { scenario: 'degraded', chaosMs: 40_000 },
  lanhakill: { scenario: 'degraded', chaosMs: 40_000, partnerLanhaKill: 0.5 },
  partnerback: { scenario: 'degraded', chaosMs: 40_000, partnerBack: 1 },
  partnerdown: { scenario: 'degraded', chaosMs: 40_000, partnerDown: 1 },
  chaos: {},
};
const options = byScenario[scenario];
if (options === undefined) throw new Error(`scenario ${scenario}: one of ${Object.keys(byScenario).join(', ')}`);
const gaps: number[] = [];
const waits: number[] = [];
const two: number[] = [];
const other: string[] = [];
let cuts = 0, probes = 0, answered = 0, retakes = 0, downs = 0;
const downGaps: number[] = [];
const backGaps: Record<string, number[]> = { never: [], late: [], flap: [] };
const backs: Record<string, number> = { never: 0, late: 0, flap: 0 };
const s28 = mode === 'now' || mode === 'noprobe' ? {} : { retakeTerm: false, witnessReports: false, retakeIdle: false, holdingProbe: false };
const started = performance.now();
for (let seed = base; seed < base + seeds; seed++) {
  const r = runVipSim(seed, { ...options, leaderProbe: mode !== 'before' && mode !== 'noprobe', lanYield: mode !== 'before', ...(mode === 'noprobe' ? {} : s28) });
  retakes += r.retakes;
  downs += r.partnerDowns;
  downGaps.push(...r.partnerDownGapsMs);
  for (const k of Object.keys(backs)) { backs[k]! += r.partnerBacks[k as 'never']; backGaps[k]!.push(...r.partnerBackGapsMs[k as 'never']); }
  gaps.push(...r.handBackGapsMs);
  waits.push(...r.heldBackMs);
  cuts += r.twoWayCuts;
  probes += r.leaderProbes;
  answered += r.leaderProbesAnswered;
  if (r.violations.some((v) => v.includes('two VIP holders'))) two.push(seed);
  else if (r.violations.length > 0) other.push(r.violations[0]!);
}
const line = (label: string, xs: number[]): string => `${label}=${xs.length} ${label}P50=${percentile(xs, 50)}ms ${label}P90=${percentile(xs, 90)}ms ${label}Max=${percentile(xs, 100)}ms`;
console.log(`RESULT vip-twoway ${scenario} ${mode} seeds=${seeds} base=${base} twoHolderSeeds=${two.length} [${two.join(',')}] otherViolations=${other.length} twoWayCuts=${cuts} leaderProbes=${probes} answered=${answered} ${line('gap', gaps)} ${line('wait', waits)} (${Math.round(performance.now() - started)} ms)`);
if (options.partnerDown !== undefined) console.log(`RESULT vip-twoway ${scenario} ${mode} downs=${downs} ${line('downGap', downGaps)} leaderProbes=${probes}`);
if (options.partnerBack !== undefined) console.log(`RESULT vip-twoway ${scenario} ${mode} retakes=${retakes} ${Object.keys(backs).map((k) => `${k}=${backs[k]} ${line(`${k}Gap`, backGaps[k]!)}`).join(' ')}`);
for (const o of other.slice(0, 5)) console.log(`# other: ${o}`);
