// bench helper: the CPU our own JavaScript spends per UDP query on the two hit paths, without Node's
// UDP receive and send around it (which bench:dns and a profile of the worker show to be most of an
// answer's cost: services/dns/README.md). DnsAnswerer.udp is called with the bytes of 500 questions
// in turns of 32 (as libuv reads a socket; a turn ends with setImmediate), replies go to a sender
// that keeps nothing. `auth`: the names are in a zone of ours (the prebuilt-answer table);
// `hit`: they are forwarded names found in the forwarding cache (stored first, TTL 1 h);
// `both`: one answerer holding both (a forwarding daemon with zones), 500 names of each, rounds of
// the two paths interleaved (auth, hit, hit, auth, ...) in the one process, so the difference between
// the paths is measured on the same heap, JIT state and minute of the machine.
//   [ROUNDS=5] node dist/bench/dns-js-cost.js [auth|hit|both] [QUERIES per round (1000000)]
// Prints the median and lowest ns per query of ROUNDS rounds per path (after one warm-up round), and
// for `both` the median of the ROUNDS hit - auth differences of adjacent rounds: an A/B of the hit
// paths' JavaScript that a busy machine moves by a few per cent, not by the 2x a whole-daemon qps
// figure moves.
//
// EVICT_KIB=N (0: off) writes one byte in every 64 of an N KiB buffer before each query, as Node's
// receive path and the kernel do between two datagrams of the worker, so each lookup runs with cold
// caches as it does under load; the figure is then the median time of one `udp` call (performance.now()
// around each, its own cost included alike in both paths), not the process's CPU.
import type dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../config/index.js';
import { silentLogger } from '../lib/log.js';
import { systemClock } from '../lib/clock.js';
import type { DatagramSender } from '../lib/udp-direct.js';
import { DnsAnswerer } from '../services/dns/answerer.js';
import { buildZoneSet } from '../services/dns/zone.js';

const NAMES = 500;
const TURN = 32;

function question(name: string, id: number): Buffer {
  const q = Buffer.alloc(12 + name.length + 2 + 4);
  q.writeUInt16BE(id, 0); q[2] = 0x01; q[5] = 1;
  let o = 12;
  for (const l of name.split('.')) { q[o++] = l.length; o += q.write(l, o, 'ascii'); }
  q[o++] = 0; q[o + 1] = 1; q[o + 3] = 1;
  return q;
}

/** The cached reply an upstream would give: the question, one A record pointing at it, TTL 1 h. */
function upstreamAnswer(q: Buffer): Buffer {
  const body = Buffer.alloc(q.length + 16);
  q.copy(body);
  body[2] = 0x81; body[3] = 0x80; body[7] = 1;
  body.set([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 7], q.length);
  return body;
}

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'hit';
  const perRound = Number(process.argv[3] ?? 1_000_000);
  const evictBytes = Number(process.env['EVICT_KIB'] ?? 0) * 1024;
  const rounds = Math.max(1, Number(process.env['ROUNDS'] ?? 5));
  if (mode !== 'hit' && mode !== 'auth' && mode !== 'both') throw new Error(`mode ${mode}: auth, hit or both`);
  // The same length for both sets of names (zon.test, fwd.test): the scan, hash and compare loops alike.
  const hitNames = Array.from({ length: NAMES }, (_, i) => `n${String(i + 1).padStart(3, '0')}.h.fwd.test`);
  const authNames = hitNames.map((n) => (mode === 'auth' ? n : n.replace('.fwd.test', '.zon.test')));
  const zoneName = mode === 'auth' ? 'fwd.test' : 'zon.test';
  const records = authNames.map((n, i) => `        - "${n.slice(0, 6)} A 192.0.2.${i % 250 + 1}"`).join('\n');
  const zone = `  zones:\n    - name: ${zoneName}\n      ttl: 3600\n      primary: ns1.${zoneName}\n      records:\n${records}\n`;
  const cfg = parseConfig(`
node: { name: bench, role: server, address: 127.0.0.1, stateDir: /nonexistent, controlSocket: /nonexistent.sock }
dns:
  listen: [127.0.0.1]
  forward: { upstreams: ["127.0.0.1:5353"], allow: [127.0.0.0/8] }
${mode !== 'hit' ? zone : ''}`).dns!;
  const answerer = new DnsAnswerer({ cfg, nodeName: 'bench', clock: systemClock, log: silentLogger,
    zones: buildZoneSet({ zones: cfg.zones, reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 }) });
  const hits = hitNames.map((n, i) => question(n, i + 1));
  const auths = authNames.map((n, i) => question(n, i + 1));
  if (mode !== 'auth') {
    for (const q of hits) {
      if (!answerer.forwardCache!.insertWire({ key: Uint8Array.from(q.subarray(12)), body: upstreamAnswer(q), ttlMs: 3_600_000 }, systemClock.monotonicMs())) throw new Error('not cached');
    }
  }
  let sent = 0;
  const scratch = Buffer.alloc(4096);
  const views: Buffer[] = [];
  const out = { buffer: (n: number) => (views[n] ??= scratch.subarray(0, n)), send: () => { sent++; return 1; } } as unknown as DatagramSender;
  const rinfo: dgram.RemoteInfo = { address: '127.0.0.1', family: 'IPv4', port: 40000, size: 0 };
  const forward = (): void => { throw new Error('a query was forwarded: the bench asks only names it answers'); };
  const evict = new Uint8Array(evictBytes);
  let evictRound = 0;
  /** ns per query of `calls` queries from `queries`: the process's CPU, or with EVICT_KIB the `udp` calls' own time. */
  const round = async (queries: Buffer[], calls: number): Promise<number> => {
    if (evictBytes === 0) {
      const t0 = process.cpuUsage();
      for (let i = 0; i < calls;) {
        for (let k = 0; k < TURN && i < calls; k++, i++) answerer.udp(out, queries[i % NAMES]!, rinfo, forward);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const c = process.cpuUsage(t0);
      return ((c.user + c.system) * 1000) / calls;
    }
    const each = new Float64Array(calls);
    for (let i = 0; i < calls;) {
      for (let k = 0; k < TURN && i < calls; k++, i++) {
        const v = ++evictRound & 0xff;
        for (let b = 0; b < evictBytes; b += 64) evict[b] = v;
        const t0 = performance.now();
        answerer.udp(out, queries[i % NAMES]!, rinfo, forward);
        each[i] = performance.now() - t0;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The median call: a call the machine preempted (or a collection ran in) says nothing of the path.
    return each.sort()[calls >> 1]! * 1e6;
  };
  const line = (name: string, ns: number[]): string => {
    const s = [...ns].sort((a, b) => a - b);
    return `${name}: ${s[s.length >> 1]!.toFixed(1)} ns of JavaScript per query (median of ${rounds} rounds of ${perRound}; lowest ${s[0]!.toFixed(1)})`;
  };
  const cold = evictBytes > 0 ? `, ${evictBytes / 1024} KiB written before each query` : '';
  if (mode !== 'both') {
    const queries = mode === 'hit' ? hits : auths;
    await round(queries, perRound / 5);
    const ns: number[] = [];
    for (let r = 0; r < rounds; r++) ns.push(await round(queries, perRound));
    if (sent !== answerer.queries || sent === 0) throw new Error(`${sent} replies sent for ${answerer.queries} queries`);
    console.log(line(mode, ns) + cold);
    return;
  }
  await round(auths, perRound / 5);
  await round(hits, perRound / 5);
  const a: number[] = [];
  const h: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // auth, hit, hit, auth, ...: each path first in turn.
    if (r % 2 === 0) { a.push(await round(auths, perRound)); h.push(await round(hits, perRound)); }
    else { h.push(await round(hits, perRound)); a.push(await round(auths, perRound)); }
  }
  if (sent !== answerer.queries || answerer.forwardHits !== (perRound / 5 + rounds * perRound) || answerer.fastHits + NAMES !== answerer.forwardHits) {
    throw new Error(`${sent} replies for ${answerer.queries} queries, ${answerer.fastHits} prebuilt, ${answerer.forwardHits} cached`);
  }
  const d = h.map((x, i) => x - a[i]!).sort((x, y) => x - y);
  console.log(line('auth', a) + cold);
  console.log(line('hit', h) + cold);
  const quartiles = `${d[d.length >> 2]!.toFixed(1)} .. ${d[(3 * d.length) >> 2]!.toFixed(1)}`;
  console.log(`hit - auth: ${d[d.length >> 1]!.toFixed(1)} ns per query (median of ${rounds} adjacent pairs; quartiles ${quartiles})`);
}

main().catch((e: unknown) => { console.error(e); process.exit(1); });
