// Bench helper (not a test): what one `lanctl leases --all --json` costs the daemon's event loop with
// COUNT leases (the GET /v1/leases route, then the JSON text the control server writes), ROUNDS
// times; prints RESULT dhcp.leases_list_ms (median route + JSON text, wall time, and each part's
// median) and RESULT dhcp.leases_list_hold_ms (median of the longest single hold of the event loop
// while they ran: a setImmediate chain beside the work, the longest gap between two of its turns).
// TEXT: `sliced` makes the text as the control server does (lib/slices.ts jsonInSlices), `whole` as
// it did before (one JSON.stringify). For an A/B of two builds pass the other build's
// leases-api.js as MODULE (and TEXT=whole for a build before jsonInSlices) and interleave runs:
//   node dist/bench/leases-list.js [COUNT=22000] [ROUNDS=7] [MODULE=../services/dhcp/leases-api.js] [TEXT=sliced|whole]
import type * as LeasesApi from '../services/dhcp/leases-api.js';
import type { Lease } from '../cluster/fsm.js';
import type { StateLog } from '../cluster/state-log.js';
import type { Clock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { median } from './stats.js';
import { byteLength, jsonInSlices } from '../lib/slices.js';

const [countText = '22000', roundsText = '7', moduleText = '../services/dhcp/leases-api.js', textMode = 'sliced'] = process.argv.slice(2);
const count = Math.max(1, Math.min(Number(countText), 1_000_000));
const rounds = Math.max(1, Math.min(Number(roundsText), 100));
const { leaseRoutes } = await import(moduleText) as typeof LeasesApi;
const random = seededRandom(1);
const nowMs = Date.UTC(2026, 11, 1);
const byIp = new Map<number, Lease>();
for (let i = 0; byIp.size < count; i++) {
  const ip = (10 << 24) + random.int(0xffffff);
  const mac = `52:54:00:${[16, 8, 0].map((s) => ((i >> s) & 255).toString(16).padStart(2, '0')).join(':')}`;
  byIp.set(ip, { ip, mac, subnet: '10.0.0.0/8', state: i % 3 === 0 ? 'expired' : 'bound', grantedAt: nowMs - 1_000, expiresAt: nowMs + 3_600_000, changedAt: nowMs, index: i, ackedBy: 'lan-a', hostname: `h${i}` });
}
const leases = [...byIp.values()];
const state = { fsm: { leases: () => leases }, logTimeMs: () => nowMs } as unknown as StateLog;
const clock = { wallMs: () => nowMs, monotonicMs: () => performance.now() } as unknown as Clock;
const route = leaseRoutes(state, clock)['GET /v1/leases']!;
const routeMs: number[] = [];
const textMs: number[] = [];
const holdMs: number[] = [];
let bytes = 0;
for (let r = 0; r < rounds; r++) {
  // The longest gap between two turns of a setImmediate chain while the work runs.
  let last = performance.now();
  let longest = 0;
  let ticking = true;
  const tick = (): void => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const t0 = performance.now();
  const answer = await route({ query: new URLSearchParams('all=1'), body: undefined } as Parameters<typeof route>[0]);
  const t1 = performance.now();
  bytes = textMode === 'whole' ? Buffer.byteLength(JSON.stringify(answer.body)) : byteLength((await jsonInSlices(answer.body))!);
  const t2 = performance.now();
  ticking = false;
  longest = Math.max(longest, t2 - last);
  textMs.push(t2 - t1);
  routeMs.push(t1 - t0);
  holdMs.push(longest);
  await new Promise((r) => setImmediate(r));
}
const total = routeMs.map((ms, i) => ms + textMs[i]!);
console.log(`RESULT dhcp.leases_list_ms lanha=${median(total).toFixed(1)} anchor=NA ratio=NA unit=ms better=lower leases=${count} route_ms=${median(routeMs).toFixed(1)} json_ms=${median(textMs).toFixed(1)} json_mib=${(bytes / 2 ** 20).toFixed(1)} rounds=${rounds} module=${moduleText}`);
console.log(`RESULT dhcp.leases_list_hold_ms lanha=${median(holdMs).toFixed(1)} anchor=NA ratio=NA unit=ms better=lower leases=${count} max=${Math.max(...holdMs).toFixed(1)} text=${textMode} rounds=${rounds} module=${moduleText}`);
