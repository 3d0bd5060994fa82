// bench helper: the CPU our own JavaScript spends per UDP query on the two hit paths, without Node's
// UDP receive and send around it (which bench:dns and a profile of the worker show to be most of an
// answer's cost: services/dns/README.md). DnsAnswerer.udp is called with the bytes of 500 questions
// in turns of 32 (as libuv reads a socket; a turn ends with setImmediate), replies go to a sender
// that keeps nothing. `auth`: the names are in a zone of ours (the prebuilt-answer table);
// `hit`: they are forwarded names found in the forwarding cache (stored first, TTL 1 h).
//   node dist/bench/dns-js-cost.js [auth|hit] [QUERIES per round (1000000)]
// Prints the median and lowest ns per query of five rounds (after one warm-up round): an A/B of
// the hit paths' JavaScript that a busy machine moves by a few per cent, not by the 2x a whole-daemon
// qps figure moves.
import type dgram from 'node:dgram';
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

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'hit';
  const perRound = Number(process.argv[3] ?? 1_000_000);
  if (mode !== 'hit' && mode !== 'auth') throw new Error(`mode ${mode}: auth or hit`);
  const names = Array.from({ length: NAMES }, (_, i) => `n${String(i + 1).padStart(3, '0')}.h.fwd.test`);
  const records = names.map((n, i) => `        - "${n.slice(0, 6)} A 192.0.2.${i % 250 + 1}"`).join('\n');
  const zone = `  zones:\n    - name: fwd.test\n      ttl: 3600\n      primary: ns1.fwd.test\n      records:\n${records}\n`;
  const cfg = parseConfig(`
node: { name: bench, role: server, address: 127.0.0.1, stateDir: /nonexistent, controlSocket: /nonexistent.sock }
dns:
  listen: [127.0.0.1]
  forward: { upstreams: ["127.0.0.1:5353"], allow: [127.0.0.0/8] }
${mode === 'auth' ? zone : ''}`).dns!;
  const answerer = new DnsAnswerer({ cfg, nodeName: 'bench', clock: systemClock, log: silentLogger,
    zones: buildZoneSet({ zones: cfg.zones, reverseSubnets: [], leaseNames: [], operatorRecords: [], serial: 1 }) });
  const queries = names.map((n, i) => question(n, i + 1));
  if (mode === 'hit') {
    for (const q of queries) {
      const body = Buffer.alloc(q.length + 16);
      q.copy(body);
      body[2] = 0x81; body[3] = 0x80; body[7] = 1;
      body.set([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 7], q.length);
      if (!answerer.forwardCache!.insertWire({ key: Uint8Array.from(q.subarray(12)), body, ttlMs: 3_600_000 }, systemClock.monotonicMs())) throw new Error('not cached');
    }
  }
  let sent = 0;
  const scratch = Buffer.alloc(4096);
  const views: Buffer[] = [];
  const out = { buffer: (n: number) => (views[n] ??= scratch.subarray(0, n)), send: () => { sent++; return 1; } } as unknown as DatagramSender;
  const rinfo: dgram.RemoteInfo = { address: '127.0.0.1', family: 'IPv4', port: 40000, size: 0 };
  const forward = (): void => { throw new Error('a query was forwarded: the bench asks only names it answers'); };
  const round = async (calls: number): Promise<number> => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < calls;) {
      for (let k = 0; k < TURN; k++, i++) answerer.udp(out, queries[i % NAMES]!, rinfo, forward);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const c = process.cpuUsage(t0);
    return ((c.user + c.system) * 1000) / calls;
  };
  await round(perRound / 5);
  const ns: number[] = [];
  for (let r = 0; r < 5; r++) ns.push(await round(perRound));
  ns.sort((a, b) => a - b);
  if (sent !== answerer.queries || sent === 0) throw new Error(`${sent} replies sent for ${answerer.queries} queries`);
  console.log(`${mode}: ${ns[2]!.toFixed(1)} ns of JavaScript per query (median of 5 rounds of ${perRound}; lowest ${ns[0]!.toFixed(1)})`);
}

main().catch((e: unknown) => { console.error(e); process.exit(1); });
