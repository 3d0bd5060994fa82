// bench helper: what a forwarding lanha was doing while its socket queue stood, from the miss traces
// bench:dns keeps with KEEP=DIR (services/dns/miss-trace.ts: Q, G, R, M and S records).
//   node dist/bench/dns-stalls.js DIR/trace [MIN_MS]
// For every queue that stood MIN_MS (default 20) or more, in the process that saw it: the span from
// the last sample of its event loop before the queue began (the 5 ms schedstat sampler is a timer:
// a gap in its samples is a loop that did not run) to the turn that drained it, and in that span the
// process's own CPU (ran), its wait for a core (runq), its collections (gc: count, longest, ms),
// the longest gap between two loop samples and what filled it (ran / runq / gc), and the misses read
// and shed. A line per stall and per process a verdict count: a stall is the machine's when the
// process waited for a core at least as long as it ran, a collection's when it collected for half
// the time it ran or more, else its own work (JavaScript, system calls). Queues that stood while no
// misses came (a hit run: dnsperf saturating the socket, where a queue stands by design; the sampler
// runs only while misses come) are only counted.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Trace {
  file: string;
  gc: Array<[number, number, number]>;
  sched: Array<[number, number, number]>;
  stood: Array<[number, number]>;
  reads: number[];
  sheds: number[];
  /** The trace's own writes: start, duration (ms). */
  writes: Array<[number, number]>;
}

function load(file: string): Trace {
  const t: Trace = { file, gc: [], sched: [], stood: [], reads: [], sheds: [], writes: [] };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const w = line.split(' ');
    // Trace times are wall-clock microseconds; here milliseconds.
    if (w[0] === 'G') t.gc.push([Number(w[1]) / 1000, Number(w[2]) / 1000, Number(w[3])]);
    else if (w[0] === 'R') t.sched.push([Number(w[1]) / 1000, Number(w[2]) / 1e6, Number(w[3]) / 1e6]);
    else if (w[0] === 'Q') t.stood.push([Number(w[1]) / 1000, Number(w[2]) / 1000]);
    else if (w[0] === 'M') t.reads.push(Number(w[2]) / 1000);
    else if (w[0] === 'S') t.sheds.push(Number(w[1]) / 1000);
    else if (w[0] === 'F') t.writes.push([Number(w[1]) / 1000, Number(w[2]) / 1000]);
  }
  for (const a of [t.gc, t.sched, t.stood]) a.sort((x, y) => x[0] - y[0]);
  t.reads.sort((x, y) => x - y);
  t.sheds.sort((x, y) => x - y);
  return t;
}

const count = (xs: number[], a: number, b: number): number => xs.filter((x) => x >= a && x <= b).length;

export function stalls(dir: string, minMs: number): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).filter((n) => n.startsWith('trace.')).sort()) {
    const t = load(join(dir, name));
    const verdicts = { machine: 0, gc: 0, own: 0, 'no misses': 0 };
    for (const [since, until] of t.stood) {
      if (until - since < minMs) continue;
      // The span: from the last loop sample before the queue began (the stall that filled it) to its end.
      let i0 = -1;
      for (let i = 0; i < t.sched.length && t.sched[i]![0] <= since; i++) i0 = i;
      let i1 = i0;
      while (i1 + 1 < t.sched.length && t.sched[i1 + 1]![0] <= until) i1++;
      if (i0 < 0 || i1 <= i0 || since - t.sched[i0]![0] > 200) {
        // No loop samples around it: no misses came (the sampler runs only while they do).
        verdicts['no misses']++;
        continue;
      }
      const a = t.sched[i0]!, b = t.sched[i1]!;
      const read = count(t.reads, a[0], b[0]), shed = count(t.sheds, a[0], b[0]);
      // Sampled, but no miss in it: a hit run's queue (a few misses of expiring names keep the sampler on).
      if (read + shed === 0) { verdicts['no misses']++; continue; }
      const span = b[0] - a[0], ran = b[1] - a[1], runq = b[2] - a[2];
      const gcs = t.gc.filter(([s, d]) => s + d >= a[0] && s <= b[0]);
      const gcMs = gcs.reduce((sum, g) => sum + g[1], 0);
      let gap = 0, gapRan = 0, gapRunq = 0, gapGc = 0;
      for (let i = i0; i < i1; i++) {
        const x = t.sched[i]!, y = t.sched[i + 1]!;
        if (y[0] - x[0] > gap) {
          gap = y[0] - x[0]; gapRan = y[1] - x[1]; gapRunq = y[2] - x[2];
          gapGc = t.gc.filter(([s, d]) => s + d >= x[0] && s <= y[0]).reduce((sum, g) => sum + g[1], 0);
        }
      }
      const verdict = runq >= ran ? 'machine' : gcMs >= ran / 2 ? 'gc' : 'own';
      verdicts[verdict]++;
      out.push(`${name} stood ${(until - since).toFixed(1)} ms: span ${span.toFixed(1)} ms ran ${ran.toFixed(1)} runq ${runq.toFixed(1)} `
        + `gc ${gcs.length} (${gcMs.toFixed(1)} ms, longest ${Math.max(0, ...gcs.map((g) => g[1])).toFixed(1)}, major ${gcs.filter((g) => g[2] === 1).length}); `
        + `longest loop gap ${gap.toFixed(1)} ms (ran ${gapRan.toFixed(1)} runq ${gapRunq.toFixed(1)} gc ${gapGc.toFixed(1)}); `
        + `trace writes ${t.writes.filter(([s0, d]) => s0 + d >= a[0] && s0 <= b[0]).reduce((sum, w) => sum + w[1], 0).toFixed(1)} ms; `
        + `misses read ${read} shed ${shed}: ${verdict}`);
    }
    const writes = t.writes.map((w) => w[1]).sort((x, y) => x - y);
    if (writes.length > 0) {
      out.push(`${name}: the trace's own writes ${writes.length}, ${writes.reduce((x, y) => x + y, 0).toFixed(1)} ms in all, `
        + `p50 ${writes[Math.floor(writes.length / 2)]!.toFixed(2)} ms, longest ${writes[writes.length - 1]!.toFixed(2)} ms`);
    }
    out.push(`${name}: stood >= ${minMs} ms ${t.stood.filter(([s, u]) => u - s >= minMs).length} times: while misses came: machine ${verdicts.machine}, gc ${verdicts.gc}, own ${verdicts.own}; while none came ${verdicts['no misses']}; misses shed ${t.sheds.length}`);
  }
  return out;
}

if (process.argv[1]?.endsWith('dns-stalls.js')) {
  const [dir = '.', min = '20'] = process.argv.slice(2);
  for (const line of stalls(dir, Number(min))) console.log(line);
}
