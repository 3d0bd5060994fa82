// bench helper: how many bytes of JavaScript heap one forwarded cache miss allocates in the process
// that answers it (what the DNS UDP worker's young generation fills with, so how often it stops to
// scavenge). The process under test runs the worker's own parts (DnsAnswerer, Forwarder, the
// upstream socket pool) on a loopback socket; a child process plays the clients and the upstream
// (so none of its allocations count). Young generation made large (64 MiB semi-spaces) so that no
// collection runs during the measured misses: the heap's growth over them is what they allocated.
//   node dist/bench/dns-miss-alloc.js [MISSES (5000)]
// WORKER_FLAGS="<V8 flags>" instead runs the measured process with those flags (the worker's, e.g.
// as shipped: `--max-semi-space-size=2 --no-parallel-scavenge`) and counts what
// its collector did over the misses: scavenges and old-generation pauses per 10,000 misses, their
// total and longest pause, and CPU per miss with the collections in it (an A/B of the worker's
// flags that does not hang on how busy the machine is, as a p99 does).
// RATE=N asks at N a second (dnsperf -Q, as bench:dns's miss runs: a datagram or two a turn of the
// event loop) instead of keeping WINDOW (20) in flight; CPU per miss is then what a paced load costs.
// With RATE it also prints the goodput: misses answered from upstream a second, and their latency
// at the client (p50, p99; SERVFAIL answers, the shed, left out): a flood's figure with RATE=20000.
// NOSHED=1 turns the shed and the in-flight cap off: every query read is a miss asked upstream.
// HITS=N asks N names over and over instead (the warm-up caches them): the same figures per
// forwarded cache hit, the path where Node's receive and send are most of the cost.
// PROFILE=1 also prints where the bytes went: V8's sampling heap profiler over the measured misses,
// bytes per miss by allocating function (the top 25). With SURVIVORS=1 only what is still alive at
// the end counts; SURVIVORS=1 PROMOTED=1 counts what outlived a scavenge (promoted to the old
// generation, alive or collected there since): what makes old-generation collections.
// The listing ends with the sum over every site (RESULT dns.forward.miss_<allocated|surviving|promoted>_bytes).
// CACHE_SIZE=N runs the forwarding cache with N entries (e.g. 1: what survives besides the cache).
// Prints `RESULT dns.forward.miss_alloc_bytes lanha=<bytes per miss> anchor=NA ...` (lanha only).
import { execFileSync, fork } from 'node:child_process';
import dgram from 'node:dgram';
import { getHeapSpaceStatistics } from 'node:v8';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Session } from 'node:inspector/promises';
import { parseConfig } from '../config/index.js';
import { silentLogger } from '../lib/log.js';
import { systemClock } from '../lib/clock.js';
import { cryptoRandom } from '../lib/random.js';
import { DnsAnswerer } from '../services/dns/answerer.js';
import { Forwarder, forwardWith, inFlightShares } from '../services/dns/forward.js';
import { buildZoneSet } from '../services/dns/zone.js';

const WARM = 3000;
const noShed = process.env['NOSHED'] === '1';
const WINDOW = 20;
const role = process.argv[2];

/** The child: an upstream answering every A question with 192.0.2.3, and clients asking unique names. */
async function peer(): Promise<void> {
  const upstream = dgram.createSocket('udp4');
  upstream.on('message', (q, rinfo) => {
    let p = 12;
    while (p < q.length && q[p] !== 0) p += q[p]! + 1;
    const qEnd = p + 5;
    const r = Buffer.alloc(qEnd + 16);
    q.copy(r, 0, 0, qEnd);
    r[2] = 0x81; r[3] = 0x80; r[7] = 1; r[10] = 0; r[11] = 0; // QR RD RA, one answer, no OPT
    r.set([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 3], qEnd);
    upstream.send(r, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve));
  const client = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
  let target = 0;
  const rate = Number(process.env['RATE'] ?? 0);
  process.on('message', (m: { t: string; from?: number; count?: number; port?: number }) => {
    if (m.t === 'port') target = m.port!;
    if (m.t !== 'ask') return;
    // Each name once, WINDOW outstanding; answered (or 2 s of silence) ends the batch.
    let next = m.from!, answered = 0;
    const start = performance.now();
    const end = m.from! + m.count!;
    const hits = Number(process.env['HITS'] ?? 0);
    const ask = (): void => {
      const name = `m${hits > 0 ? next++ % hits : next++}.m.fwd.test`;
      const labels = name.split('.');
      const q = Buffer.alloc(12 + name.length + 2 + 4);
      q.writeUInt16BE(next & 0xffff, 0); q[2] = 0x01; q[5] = 1;
      sentMs[next & 0xffff] = performance.now();
      let o = 12;
      for (const l of labels) { q[o++] = l.length; o += q.write(l, o, 'ascii'); }
      q[o++] = 0; q[o + 1] = 1; q[o + 3] = 1;
      client.send(q, target, '127.0.0.1');
    };
    // RATE: the time from each query to its answer, for the answers that are not SERVFAIL (the misses
    // asked upstream: their latency; by the query's ID, which wraps after 65,536, well after its answer).
    const sentMs = new Float64Array(65536);
    const took: number[] = [];
    const done = (): void => {
      took.sort((a, b) => a - b);
      const at = (q: number): number => took[Math.min(took.length - 1, Math.floor(took.length * q))] ?? NaN;
      process.send!({ t: 'done', answered, good: took.length, p50: at(0.5), p99: at(0.99), seconds: (performance.now() - start) / 1000 });
    };
    let idle = setTimeout(done, 2000);
    client.removeAllListeners('message');
    client.on('message', (r: Buffer) => {
      answered++;
      if (rate > 0 && (r[3]! & 0x0f) !== 2) took.push(performance.now() - sentMs[r.readUInt16BE(0)]!);
      clearTimeout(idle);
      if (answered === m.count) { done(); return; }
      idle = setTimeout(done, 2000);
      if (rate === 0 && next < end) ask();
    });
    if (rate === 0) { for (let i = 0; i < WINDOW && next < end; i++) ask(); return; }
    // RATE: asked at that many a second from the batch's start (as dnsperf -Q), whatever is answered.
    const tick = (): void => {
      const due = Math.min(end, m.from! + Math.floor(((performance.now() - start) * rate) / 1000));
      while (next < due) ask();
      if (next < end) setTimeout(tick, 1);
    };
    tick();
  });
  process.send!({ t: 'upstream', port: (upstream.address()).port });
}

function heapUsed(): number {
  return getHeapSpaceStatistics().reduce((n, s) => n + s.space_used_size, 0);
}

async function main(): Promise<void> {
  const misses = Number(process.argv[3] ?? 5000);
  const child = fork(fileURLToPath(import.meta.url), ['peer'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (): Promise<{ t: string; port?: number; answered?: number; good?: number; p50?: number; p99?: number; seconds?: number }> => new Promise((resolve) => child.once('message', resolve));
  const up = await next();
  const config = parseConfig(`
node: { name: bench, role: server, address: 127.0.0.1, stateDir: /nonexistent, controlSocket: /nonexistent.sock }
dns:
  listen: [127.0.0.1]
  forward: { upstreams: ["127.0.0.1:${up.port}"], allow: [127.0.0.0/8]${process.env["CACHE_SIZE"] === undefined ? "" : `, cacheSize: ${process.env["CACHE_SIZE"]}`} }
`);
  const cfg = config.dns!;
  const answerer = new DnsAnswerer({ cfg, nodeName: 'bench', clock: systemClock, log: silentLogger,
    zones: buildZoneSet({ zones: [], reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 }) });
  const f = cfg.forward!;
  const forwarder = new Forwarder({
    upstreams: f.upstreams, domains: f.domains, timeoutMs: f.timeout, cache: answerer.forwardCache!,
    // NOSHED=1: every query asked upstream (no backlog shed, no cap), so CPU per query read is CPU
    // per miss whatever the machine's load does to the queue (an A/B of the miss path's cost).
    maxInFlight: noShed ? 1 << 20 : inFlightShares(f.maxInFlight, 1).worker, clock: systemClock, random: cryptoRandom, counters: answerer.counters,
    onCached: () => undefined, busy: noShed ? () => false : () => answerer.backlogged(),
  });
  const forward = forwardWith(forwarder, 'bench', systemClock);
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  answerer.serve(socket, forward);
  child.send({ t: 'port', port: socket.address().port });
  let gcs = 0, minor = 0, major = 0, gcMs = 0, minorMs = 0, gcMaxMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcs++;
      if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) { minor++; minorMs += e.duration; } else major++;
      gcMs += e.duration; gcMaxMs = Math.max(gcMaxMs, e.duration);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  // Warm up (the JIT, the socket pool), then measure from a collected heap.
  child.send({ t: 'ask', from: 0, count: WARM });
  const warm = await next();
  (globalThis as { gc?: () => void }).gc!();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const profile = process.env['PROFILE'] === '1' ? new Session() : null;
  if (profile !== null) {
    profile.connect();
    await profile.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: process.env['SURVIVORS'] !== '1' || process.env['PROMOTED'] === '1', includeObjectsCollectedByMinorGC: process.env['SURVIVORS'] !== '1' });
  }
  const gcsBefore = gcs;
  minor = 0; major = 0; gcMs = 0; minorMs = 0; gcMaxMs = 0;
  const before = heapUsed();
  const counted = (): number[] => { const c = answerer.counters; return [answerer.queries, c.get('dns.forward.cache_miss'), c.get('dns.forward.busy'), c.get('dns.forward.overload'), c.get('dns.forward.servfail')]; };
  const countedBefore = counted();
  const cpu = process.cpuUsage();
  child.send({ t: 'ask', from: WARM, count: misses });
  const run = await next();
  const after = heapUsed();
  const used = process.cpuUsage(cpu);
  const [read = 0, asked = 0, busy = 0, overload = 0, servfail = 0] = counted().map((n, i) => n - countedBefore[i]!);
  if (profile !== null) {
    const { profile: p } = await profile.post('HeapProfiler.stopSampling');
    const bySite = new Map<string, number>();
    const walk = (n: typeof p.head): void => {
      const f = n.callFrame;
      const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`;
      const self = n.selfSize;
      if (self > 0) bySite.set(site, (bySite.get(site) ?? 0) + self);
      for (const c of n.children) walk(c);
    };
    walk(p.head);
    for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${String(Math.round(bytes / misses)).padStart(6)} B/miss  ${site}`);
    let total = 0;
    for (const bytes of bySite.values()) total += bytes;
    const kept = process.env['SURVIVORS'] !== '1' ? 'allocated' : process.env['PROMOTED'] === '1' ? 'promoted' : 'surviving';
    console.log(`${String(Math.round(total / misses)).padStart(6)} B/miss  in all (${kept}, sampled)`);
    console.log(`RESULT dns.forward.miss_${kept}_bytes lanha=${Math.round(total / misses)} anchor=NA ratio=NA unit=B better=lower`);
    profile.disconnect();
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  const collections = gcs - gcsBefore;
  observer.disconnect();
  forwarder.close(); socket.close(); child.kill();
  const per = Math.round((after - before) / misses);
  const flags = process.env['WORKER_FLAGS'];
  if (flags !== undefined) {
    const k = 10_000 / misses;
    // What this process did with the queries that reached it (a busy machine loses some on the way).
    console.log(`read ${read} queries, ${asked} asked upstream, shed ${busy} (busy) + ${overload} (overload), ${servfail} upstream failures; CPU ${((used.user + used.system) / read).toFixed(1)} us per query read (user ${(used.user / read).toFixed(1)}, system ${(used.system / read).toFixed(1)})`);
    if (Number(process.env['RATE'] ?? 0) > 0) {
      // Goodput under a flood: the misses answered from upstream a second, and their latency at the client.
      console.log(`at ${process.env['RATE']}/s: ${run.good} answered from upstream in ${run.seconds!.toFixed(2)} s (${Math.round(run.good! / run.seconds!)}/s), their latency p50 ${run.p50!.toFixed(2)} ms p99 ${run.p99!.toFixed(2)} ms; SERVFAIL ${run.answered! - run.good!}`);
      console.log(`RESULT dns.forward.flood_goodput_qps lanha=${Math.round(run.good! / run.seconds!)} anchor=NA ratio=NA unit=qps better=higher`);
    }
    console.log(`flags ${flags}: ${run.answered}/${misses} answered; per 10,000 misses ${(minor * k).toFixed(1)} scavenges, ${(major * k).toFixed(1)} old-generation pauses (${major} in all), ${(gcMs * k).toFixed(0)} ms of GC (scavenges ${(minorMs * k).toFixed(0)}); longest ${gcMaxMs.toFixed(2)} ms; CPU ${((used.user + used.system) / misses).toFixed(1)} us per miss (user ${(used.user / misses).toFixed(1)}, system ${(used.system / misses).toFixed(1)})`);
    console.log(`RESULT dns.forward.miss_gc_ms_per_10k lanha=${(gcMs * k).toFixed(1)} anchor=NA ratio=NA unit=ms better=lower`);
    return;
  }
  const what = Number(process.env['HITS'] ?? 0) > 0 ? 'hit' : 'miss';
  const whats = `${what === 'hit' ? 'hits' : 'misses'}`;
  console.log(`${whats} answered: warm-up ${warm.answered}/${WARM}, measured ${run.answered}/${misses}; collections during them ${collections}; upstream queries ${answerer.counters.toJSON()['dns.forward.upstream_query'] ?? 0}`);
  console.log(`CPU of this process per ${what} (no collection counted): ${((used.user + used.system) / misses).toFixed(1)} us`);
  if (collections > 0 || run.answered !== misses) console.log(`the figure below is not valid: a collection ran or ${whats} went unanswered`);
  console.log(`RESULT dns.forward.${what}_alloc_bytes lanha=${collections > 0 ? 'NA' : per} anchor=NA ratio=NA unit=B better=lower`);
}

if (role === 'peer') {
  void peer();
} else if (role === 'measure') {
  void main();
} else {
  // Re-run with the flags the measurement needs.
  const flags = process.env['WORKER_FLAGS']?.trim().split(/\s+/).filter((f) => f !== '') ?? ['--min-semi-space-size=64', '--max-semi-space-size=64'];
  const out = execFileSync(process.execPath, ['--expose-gc', ...flags, fileURLToPath(import.meta.url), 'measure', process.argv[2] ?? '5000'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(out);
}
