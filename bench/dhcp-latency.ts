// Bench helper (not a test): paced DORA exchanges acting as a relay agent (giaddr = our address, so
// replies come back to us on port 67), recording each exchange's 4-way time (DISCOVER sent -> ACK
// received) to report the median and p99, which perfdhcp does not give (it prints the average).
//   node dist/bench/dhcp-latency.js SERVER LOCAL RATE COUNT [MAC_BASE_BYTE] [CONTROL_SOCKET]
// Prints one JSON line: {sent, acked, p50Ms, p99Ms, meanMs, offerP50Ms, offerP99Ms (DISCOVER sent ->
// OFFER), requestP50Ms, requestP99Ms (REQUEST sent -> ACK), slowest: the 5 slowest exchanges as
// [n (0 = first sent), 4-way ms, DISCOVER->OFFER ms]}. Bounded: COUNT exchanges, 3 s timeout each.
// Then a burst of renewals (RENEW_BURST=0 skips it): every lease just acquired renewed at once
// (REQUEST with ciaddr, RFC 2131 §4.3.2 RENEWING, relayed like the rest), and a second JSON line
// {renewSent, renewAcked, renewBurstMs (first sent -> last ACK)}; with lanha's CONTROL_SOCKET (a
// unix socket: reachable from the client namespace) also renewFsyncs and renewFsyncsPerAck, the WAL
// fdatasyncs the burst took (group commit: renewals in flight together share them).
import { createSocket } from 'node:dgram';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp } from '../services/dhcp/wire.js';
import { DhcpOption } from '../services/dhcp/options.js';
import { parseIpv4 } from '../lib/ipv4.js';
import { callDaemon } from '../lib/control-client.js';
import { percentile } from './stats.js';

const [server = '10.99.0.1', local = '10.99.0.2', rateText = '100', countText = '500', baseText = '7', controlSocket] = process.argv.slice(2);
const rate = Math.min(Number(rateText), 5000);
const count = Math.min(Number(countText), 100_000);
const giaddr = parseIpv4(local)!;
const started = new Map<number, { n: number; t0: number; mac: number[]; requestAt?: number }>();
/** Leases acquired: the client's MAC and its address, for the renewal burst. */
const bound: Array<{ mac: number[]; ip: number }> = [];
const renewing = new Set<number>();
let renewAcked = 0;
let renewStartedAt = 0;
let renewLastAt = 0;
const times: number[] = [];
/** REQUEST sent -> ACK received: the commit (the StateLog's propose) plus one round trip. */
const requestTimes: number[] = [];
/** DISCOVER sent -> OFFER received: no commit (an offer writes nothing durable). */
const offerTimes: number[] = [];
/** Per exchange: [n, 4-way ms, DISCOVER->OFFER ms]. */
const exchanges: Array<[number, number, number]> = [];
// A deep receive buffer: the renewal burst's ACKs arrive together (the default ~200 KiB holds ~90).
const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });

function packet(xid: number, mac: number[], type: number, extra: Array<[number, Uint8Array]> = [], ciaddr = 0): Uint8Array {
  const m = emptyMessage();
  m.ciaddr = ciaddr;
  m.op = BootOp.Request;
  m.xid = xid;
  m.hops = 1;
  m.giaddr = giaddr;
  m.chaddr.set(mac);
  m.options.set(DhcpOption.MessageType, Uint8Array.of(type));
  m.options.set(DhcpOption.ClientIdentifier, Uint8Array.from([1, ...mac]));
  for (const [code, data] of extra) m.options.set(code, data);
  return encodeDhcp(m, 548);
}

socket.on('message', (bytes) => {
  const d = decodeDhcp(bytes);
  if (!d.ok) return;
  const type = d.value.options.get(DhcpOption.MessageType)?.[0];
  if (type === 5 && renewing.delete(d.value.xid)) {
    renewAcked++;
    renewLastAt = performance.now();
    if (renewing.size === 0) void finishBurst();
    return;
  }
  const entry = started.get(d.value.xid);
  if (!entry) return;
  if (type === 2) {
    const yi = d.value.yiaddr;
    if (entry.requestAt !== undefined) return; // a repeated OFFER
    entry.requestAt = performance.now();
    offerTimes.push(entry.requestAt - entry.t0);
    socket.send(packet(d.value.xid, entry.mac, 3, [
      [DhcpOption.RequestedIpAddress, Uint8Array.of(yi >>> 24, (yi >>> 16) & 255, (yi >>> 8) & 255, yi & 255)],
      [DhcpOption.ServerIdentifier, d.value.options.get(DhcpOption.ServerIdentifier) ?? new Uint8Array(4)],
    ]), 67, server);
  } else if (type === 5) {
    const now = performance.now();
    times.push(now - entry.t0);
    if (entry.requestAt !== undefined) requestTimes.push(now - entry.requestAt);
    exchanges.push([entry.n, +(now - entry.t0).toFixed(3), +((entry.requestAt ?? now) - entry.t0).toFixed(3)]);
    bound.push({ mac: entry.mac, ip: d.value.yiaddr });
    started.delete(d.value.xid);
  }
});

socket.bind(67, local, () => {
  let sent = 0;
  const base = Number(baseText) & 0xff;
  const timer = setInterval(() => {
    if (sent >= count) {
      clearInterval(timer);
      setTimeout(finish, 3000);
      return;
    }
    const i = sent++;
    const mac = [0x02, base, (i >>> 16) & 255, (i >>> 8) & 255, i & 255, 0x01];
    const xid = (0x10000000 + i) >>> 0;
    started.set(xid, { n: i, t0: performance.now(), mac });
    socket.send(packet(xid, mac, 1), 67, server);
  }, 1000 / rate);
});

function finish(): void {
  const at = (list: number[], q: number): number => +percentile(list, q * 100).toFixed(3);
  const mean = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length);
  process.stdout.write(JSON.stringify({
    sent: count, acked: times.length, p50Ms: at(times, 0.5), p99Ms: at(times, 0.99), meanMs: +mean.toFixed(3),
    offerP50Ms: at(offerTimes, 0.5), offerP99Ms: at(offerTimes, 0.99),
    requestP50Ms: at(requestTimes, 0.5), requestP99Ms: at(requestTimes, 0.99),
    slowest: exchanges.sort((a, b) => b[1] - a[1]).slice(0, 5),
  }) + '\n');
  if (process.env['RENEW_BURST'] === '0' || bound.length === 0) { socket.close(); return; }
  void startBurst();
}

let fsyncsBefore: number | null = null;
let burstTimer: NodeJS.Timeout | undefined;

async function fsyncCount(): Promise<number | null> {
  if (controlSocket === undefined) return null;
  try {
    const body = (await callDaemon(controlSocket, 'GET', '/v1/status', undefined, 5000)).body as { cluster?: { storage?: { fsyncs?: number } } };
    return body.cluster?.storage?.fsyncs ?? null;
  } catch { return null; }
}

/** Every lease renewed at once; bounded: one REQUEST per lease, 5 s for the answers. */
async function startBurst(): Promise<void> {
  fsyncsBefore = await fsyncCount();
  renewStartedAt = performance.now();
  bound.forEach((b, i) => {
    const xid = (0x20000000 + i) >>> 0;
    renewing.add(xid);
    socket.send(packet(xid, b.mac, 3, [], b.ip), 67, server);
  });
  burstTimer = setTimeout(() => void finishBurst(), 5000);
}

let burstDone = false;
async function finishBurst(): Promise<void> {
  if (burstDone) return;
  burstDone = true;
  clearTimeout(burstTimer);
  const after = await fsyncCount();
  const fsyncs = fsyncsBefore === null || after === null ? null : after - fsyncsBefore;
  process.stdout.write(JSON.stringify({
    renewSent: bound.length, renewAcked, renewBurstMs: renewAcked === 0 ? null : +(renewLastAt - renewStartedAt).toFixed(3),
    renewFsyncs: fsyncs, renewFsyncsPerAck: fsyncs === null || renewAcked === 0 ? null : +(fsyncs / renewAcked).toFixed(4),
  }) + '\n');
  socket.close();
}
