// bench helper: where a forwarder's cache misses spend their time, read from a packet capture on the
// loopback (pcap, as tcpdump -w or dumpcap -P write it). Each forwarded miss is four datagrams with
// kernel timestamps: the client's query in, the forwarder's query to the upstream, the upstream's
// reply, the answer out. So the time is split, for any forwarder alike (lanha, dnsmasq, unbound),
// into: in (query arrived -> upstream query sent: the forwarder's queue and its work), up (the
// upstream's part), out (upstream reply arrived -> answer sent); own = in + out, the forwarder's
// part of the latency. Unlike dnsperf's figure it leaves out dnsperf's own wait for a core.
//   node dist/bench/dns-stages.js FILE FORWARDER_PORT UPSTREAM_PORT
// Prints `STAGES answered=N forwarded=N unanswered=N total_p50=.. total_p99=.. in_p50=.. in_p99=..
// up_p50=.. up_p99=.. out_p50=.. out_p99=.. own_p50=.. own_p99=.. other_p99=..` (ms; "other": answers
// sent without an upstream query, e.g. shed with SERVFAIL). Unique question names pair a client
// query with its upstream query; client queries and answers pair by (client port, ID).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { asciiLower, readName } from '../services/dns/name.js';

interface Miss { name: string; queryMs: number; answerMs?: number; upQueryMs?: number; upReplyMs?: number }

/** Linux capture link types -> bytes before the IP header. */
const LINK_HEADER: Record<number, number> = { 0: 4, 1: 14, 101: 0, 12: 0, 113: 16, 276: 20 };

/** The question's name, lower case (forwarders may vary its case toward the upstream); '' when it does not read. */
function questionName(d: Uint8Array, p: number): string {
  const n = readName(d, p);
  return n === null ? '' : asciiLower(n.name);
}

/** Each client query the capture saw answered, with its upstream query's and reply's times when it had one. */
export interface CapturedMiss extends Miss { answerMs: number; upQ?: number; upR?: number }

export function stages(file: string, forwarderPort: number, upstreamPort: number): Record<string, number> {
  return summary(captured(file, forwarderPort, upstreamPort));
}

export interface Capture { misses: CapturedMiss[]; unanswered: number }

export function captured(file: string, forwarderPort: number, upstreamPort: number): Capture {
  const b = readFileSync(file);
  if (b.length < 24) return { misses: [], unanswered: 0 };
  const magicLe = b.readUInt32LE(0);
  const le = magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d;
  const magic = le ? magicLe : b.readUInt32BE(0);
  const nano = magic === 0xa1b23c4d;
  const u32 = (at: number): number => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const skip = LINK_HEADER[u32(20)] ?? 14;
  const open = new Map<string, Miss>();
  const done: Miss[] = [];
  const upstream = new Map<string, { q?: number; r?: number }>();
  for (let off = 24; off + 16 <= b.length;) {
    const tMs = u32(off) * 1000 + u32(off + 4) / (nano ? 1e6 : 1e3);
    const caplen = u32(off + 8);
    const ip = off + 16 + skip;
    off += 16 + caplen;
    if (off > b.length || ip + 28 > off || (b[ip]! >> 4) !== 4 || b[ip + 9] !== 17) continue;
    const udp = ip + (b[ip]! & 15) * 4;
    const sport = b.readUInt16BE(udp), dport = b.readUInt16BE(udp + 2);
    const d = b.subarray(udp + 8, off);
    if (d.length < 12) continue;
    const id = d.readUInt16BE(0);
    if (dport === forwarderPort) {
      open.set(`${sport}:${id}`, { name: questionName(d, 12), queryMs: tMs });
    } else if (sport === forwarderPort) {
      const m = open.get(`${dport}:${id}`);
      if (m !== undefined) { open.delete(`${dport}:${id}`); m.answerMs = tMs; done.push(m); }
    } else if (dport === upstreamPort) {
      const name = questionName(d, 12);
      const u = upstream.get(name) ?? {};
      u.q ??= tMs;
      upstream.set(name, u);
    } else if (sport === upstreamPort) {
      const u = upstream.get(questionName(d, 12));
      if (u !== undefined) u.r ??= tMs;
    }
  }
  const out: CapturedMiss[] = [];
  for (const m of done) {
    const u = upstream.get(m.name);
    const c: CapturedMiss = { ...m, answerMs: m.answerMs! };
    if (u?.q !== undefined && u.r !== undefined && u.q >= m.queryMs && u.r <= m.answerMs!) { c.upQ = u.q; c.upR = u.r; }
    out.push(c);
  }
  return { misses: out, unanswered: open.size };
}

const pct = (a: number[], p: number): number => {
  if (a.length === 0) return NaN;
  a.sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(a.length * p))]!;
};

function summary(c: Capture): Record<string, number> {
  const done = c.misses;
  const total: number[] = [], inMs: number[] = [], up: number[] = [], out: number[] = [], own: number[] = [], other: number[] = [];
  for (const m of done) {
    const t = m.answerMs - m.queryMs;
    total.push(t);
    if (m.upQ !== undefined && m.upR !== undefined) {
      inMs.push(m.upQ - m.queryMs); up.push(m.upR - m.upQ); out.push(m.answerMs - m.upR); own.push(t - (m.upR - m.upQ));
    } else {
      other.push(t);
    }
  }
  return {
    answered: done.length, forwarded: own.length, unanswered: c.unanswered,
    total_p50: pct(total, 0.5), total_p99: pct(total, 0.99), in_p50: pct(inMs, 0.5), in_p99: pct(inMs, 0.99),
    up_p50: pct(up, 0.5), up_p99: pct(up, 0.99), out_p50: pct(out, 0.5), out_p99: pct(out, 0.99),
    own_p50: pct(own, 0.5), own_p99: pct(own, 0.99), other_p99: pct(other, 0.99),
  };
}

/** One answering process's trace (services/dns/miss-trace.ts), times in ms. */
interface ProcessTrace {
  misses: Map<string, { read: number; sent: number; reply: number; answered: number }>;
  /** Collections: start and end, in order. */
  gc: Array<[number, number]>;
  /** Schedstat samples: time, run ns, run-queue wait ns, in order. */
  sched: Array<[number, number, number]>;
}

function readTraces(dir: string): ProcessTrace[] {
  const out: ProcessTrace[] = [];
  for (const f of readdirSync(dir).filter((n) => n.startsWith('trace.'))) {
    const t: ProcessTrace = { misses: new Map(), gc: [], sched: [] };
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      const w = line.split(' ');
      if (w[0] === 'M' && w.length === 6) {
        t.misses.set(asciiLower(w[1]!), { read: Number(w[2]) / 1000, sent: Number(w[3]) / 1000, reply: Number(w[4]) / 1000, answered: Number(w[5]) / 1000 });
      } else if (w[0] === 'G' && w.length === 4) {
        const start = Number(w[1]) / 1000;
        t.gc.push([start, start + Number(w[2]) / 1000]);
      } else if (w[0] === 'R' && w.length === 4) {
        t.sched.push([Number(w[1]) / 1000, Number(w[2]), Number(w[3])]);
      }
    }
    t.gc.sort((a, b) => a[0] - b[0]);
    t.sched.sort((a, b) => a[0] - b[0]);
    out.push(t);
  }
  return out;
}

/** Milliseconds of the collections in `gc` that fall inside [a, b]. */
function gcWithin(gc: Array<[number, number]>, a: number, b: number): number {
  let ms = 0;
  for (const [s, e] of gc) {
    if (s >= b) break;
    if (e > a) ms += Math.min(e, b) - Math.max(s, a);
  }
  return ms;
}

/** A schedstat counter (column 1: run, 2: wait) at time `t`, ms, linear between samples. */
function schedAt(sched: Array<[number, number, number]>, col: 1 | 2, t: number): number {
  let lo = 0, hi = sched.length - 1;
  if (hi < 0) return 0;
  if (t <= sched[0]![0]) return sched[0]![col] / 1e6;
  if (t >= sched[hi]![0]) return sched[hi]![col] / 1e6;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (sched[mid]![0] <= t) lo = mid; else hi = mid; }
  const [t0, , ] = sched[lo]!, [t1] = sched[hi]!;
  const v0 = sched[lo]![col], v1 = sched[hi]![col];
  return (v0 + ((v1 - v0) * (t - t0)) / Math.max(1e-9, t1 - t0)) / 1e6;
}

/**
 * The forwarded misses of a capture joined, by question name, with the answering process's own
 * trace: each miss's own part (in + out on the wire) split into the wait in the socket queue before
 * the process read the query (qwait) or the upstream's reply (rwait) and its work on them (jsin,
 * jsout); and, for the slowest 1 % by own part, what the process did during their own part: ran
 * (CPU, its collections included: gc) or waited for a core (runq). skew: the capture's stamp of the
 * upstream query minus the process's own (the two clocks agree when it is a few microseconds).
 */
export function inside(c: Capture, traceDir: string): Record<string, number> {
  const traces = readTraces(traceDir);
  interface Joined { own: number; qwait: number; jsin: number; rwait: number; jsout: number; skew: number; m: CapturedMiss; t: ProcessTrace }
  const joined: Joined[] = [];
  for (const m of c.misses) {
    if (m.upQ === undefined || m.upR === undefined) continue;
    for (const t of traces) {
      const r = t.misses.get(m.name);
      if (r === undefined) continue;
      joined.push({
        own: m.answerMs - m.queryMs - (m.upR - m.upQ), qwait: r.read - m.queryMs, jsin: r.sent - r.read, rwait: r.reply - m.upR,
        jsout: r.answered - r.reply, skew: (m.upQ - r.sent) * 1000, m, t,
      });
      break;
    }
  }
  const col = (k: 'qwait' | 'jsin' | 'rwait' | 'jsout' | 'skew', a: Joined[] = joined): number[] => a.map((j) => j[k]);
  const mean = (a: number[]): number => (a.length === 0 ? NaN : a.reduce((x, y) => x + y, 0) / a.length);
  const slow = [...joined].sort((x, y) => y.own - x.own).slice(0, Math.max(1, Math.ceil(joined.length / 100)));
  const during = (j: Joined, f: (a: number, b: number) => number): number => f(j.m.queryMs, j.m.upQ!) + f(j.m.upR!, j.m.answerMs);
  const wholeRun = (f: (t: ProcessTrace, a: number, b: number) => number): number => {
    if (c.misses.length === 0) return NaN;
    const a = c.misses[0]!.queryMs, b = c.misses[c.misses.length - 1]!.answerMs;
    let v = 0;
    for (const t of traces) v += f(t, a, b);
    return (v / Math.max(1e-9, b - a)) * 1000;
  };
  return {
    joined: joined.length, skew_us: pct(col('skew'), 0.5),
    qwait_p50: pct(col('qwait'), 0.5), qwait_p99: pct(col('qwait'), 0.99), jsin_p50: pct(col('jsin'), 0.5), jsin_p99: pct(col('jsin'), 0.99),
    rwait_p50: pct(col('rwait'), 0.5), rwait_p99: pct(col('rwait'), 0.99), jsout_p50: pct(col('jsout'), 0.5), jsout_p99: pct(col('jsout'), 0.99),
    slow_n: joined.length === 0 ? 0 : slow.length, slow_own: mean(slow.map((j) => j.own)),
    slow_qwait: mean(col('qwait', slow)), slow_jsin: mean(col('jsin', slow)), slow_rwait: mean(col('rwait', slow)), slow_jsout: mean(col('jsout', slow)),
    slow_ran: mean(slow.map((j) => during(j, (a, b) => schedAt(j.t.sched, 1, b) - schedAt(j.t.sched, 1, a)))),
    slow_gc: mean(slow.map((j) => during(j, (a, b) => gcWithin(j.t.gc, a, b)))),
    slow_runq: mean(slow.map((j) => during(j, (a, b) => schedAt(j.t.sched, 2, b) - schedAt(j.t.sched, 2, a)))),
    slow_in_gc: slow.length === 0 ? NaN : slow.filter((j) => during(j, (a, b) => gcWithin(j.t.gc, a, b)) > 0).length / slow.length,
    cpu_ms_per_s: wholeRun((t, a, b) => schedAt(t.sched, 1, b) - schedAt(t.sched, 1, a)),
    runq_ms_per_s: wholeRun((t, a, b) => schedAt(t.sched, 2, b) - schedAt(t.sched, 2, a)),
    gc_ms_per_s: wholeRun((t, a, b) => gcWithin(t.gc, a, b)),
  };
}

export const INSIDE_KEYS = ['joined', 'skew_us', 'qwait_p50', 'qwait_p99', 'jsin_p50', 'jsin_p99', 'rwait_p50', 'rwait_p99', 'jsout_p50', 'jsout_p99',
  'slow_n', 'slow_own', 'slow_qwait', 'slow_jsin', 'slow_rwait', 'slow_jsout', 'slow_ran', 'slow_gc', 'slow_runq', 'slow_in_gc', 'cpu_ms_per_s', 'runq_ms_per_s', 'gc_ms_per_s'];

if (process.argv[1]?.endsWith('dns-stages.js')) {
  const [file = '', fwd = '0', up = '0', traceDir] = process.argv.slice(2);
  let c: Capture = { misses: [], unanswered: 0 };
  try { c = captured(file, Number(fwd), Number(up)); } catch { /* no capture: NA below */ }
  const s = summary(c);
  const fmt = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? 'NA' : Number.isInteger(v) ? String(v) : v.toFixed(3));
  const keys = ['answered', 'forwarded', 'unanswered', 'total_p50', 'total_p99', 'in_p50', 'in_p99', 'up_p50', 'up_p99', 'out_p50', 'out_p99', 'own_p50', 'own_p99', 'other_p99'];
  let line = `STAGES ${keys.map((k) => `${k}=${fmt(s[k])}`).join(' ')}`;
  if (traceDir !== undefined) {
    let i: Record<string, number> = {};
    try { i = inside(c, traceDir); } catch { /* no trace: NA */ }
    line += ' ' + INSIDE_KEYS.map((k) => `${k}=${fmt(i[k])}`).join(' ');
  }
  console.log(line);
}
