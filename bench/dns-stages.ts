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
import { readFileSync } from 'node:fs';
import { asciiLower, readName } from '../services/dns/name.js';

interface Miss { name: string; queryMs: number; answerMs?: number; upQueryMs?: number; upReplyMs?: number }

/** Linux capture link types -> bytes before the IP header. */
const LINK_HEADER: Record<number, number> = { 0: 4, 1: 14, 101: 0, 12: 0, 113: 16, 276: 20 };

/** The question's name, lower case (forwarders may vary its case toward the upstream); '' when it does not read. */
function questionName(d: Uint8Array, p: number): string {
  const n = readName(d, p);
  return n === null ? '' : asciiLower(n.name);
}

export function stages(file: string, forwarderPort: number, upstreamPort: number): Record<string, number> {
  const b = readFileSync(file);
  if (b.length < 24) return {};
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
  const total: number[] = [], inMs: number[] = [], up: number[] = [], out: number[] = [], own: number[] = [], other: number[] = [];
  for (const m of done) {
    const t = m.answerMs! - m.queryMs;
    total.push(t);
    const u = upstream.get(m.name);
    if (u?.q !== undefined && u.r !== undefined && u.q >= m.queryMs && u.r <= m.answerMs!) {
      inMs.push(u.q - m.queryMs); up.push(u.r - u.q); out.push(m.answerMs! - u.r); own.push(t - (u.r - u.q));
    } else {
      other.push(t);
    }
  }
  const pct = (a: number[], p: number): number => {
    if (a.length === 0) return NaN;
    a.sort((x, y) => x - y);
    return a[Math.min(a.length - 1, Math.floor(a.length * p))]!;
  };
  return {
    answered: done.length, forwarded: own.length, unanswered: open.size,
    total_p50: pct(total, 0.5), total_p99: pct(total, 0.99), in_p50: pct(inMs, 0.5), in_p99: pct(inMs, 0.99),
    up_p50: pct(up, 0.5), up_p99: pct(up, 0.99), out_p50: pct(out, 0.5), out_p99: pct(out, 0.99),
    own_p50: pct(own, 0.5), own_p99: pct(own, 0.99), other_p99: pct(other, 0.99),
  };
}

if (process.argv[1]?.endsWith('dns-stages.js')) {
  const [file = '', fwd = '0', up = '0'] = process.argv.slice(2);
  let s: Record<string, number> = {};
  try { s = stages(file, Number(fwd), Number(up)); } catch { /* no capture: NA below */ }
  const fmt = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? 'NA' : Number.isInteger(v) ? String(v) : v.toFixed(3));
  const keys = ['answered', 'forwarded', 'unanswered', 'total_p50', 'total_p99', 'in_p50', 'in_p99', 'up_p50', 'up_p99', 'out_p50', 'out_p99', 'own_p50', 'own_p99', 'other_p99'];
  console.log(`STAGES ${keys.map((k) => `${k}=${fmt(s[k])}`).join(' ')}`);
}
