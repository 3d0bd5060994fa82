// Bench helper (not a test): paced DORA exchanges acting as a relay agent (giaddr = our address, so
// replies come back to us on port 67), recording each exchange's 4-way time (DISCOVER sent -> ACK
// received) to report the median and p99, which perfdhcp does not give (it prints the average).
//   node dist/bench/dhcp-latency.js SERVER LOCAL RATE COUNT [MAC_BASE_BYTE]
// Prints one JSON line: {sent, acked, p50Ms, p99Ms, meanMs, requestP50Ms, requestP99Ms (REQUEST sent -> ACK)}. Bounded: COUNT exchanges, 3 s timeout each.
import { createSocket } from 'node:dgram';
import { decodeDhcp, encodeDhcp, emptyMessage, BootOp } from '../services/dhcp/wire.js';
import { DhcpOption } from '../services/dhcp/options.js';
import { parseIpv4 } from '../lib/ipv4.js';

const [server = '10.99.0.1', local = '10.99.0.2', rateText = '100', countText = '500', baseText = '7'] = process.argv.slice(2);
const rate = Math.min(Number(rateText), 5000);
const count = Math.min(Number(countText), 100_000);
const giaddr = parseIpv4(local)!;
const started = new Map<number, { t0: number; mac: number[]; requestAt?: number }>();
const times: number[] = [];
/** REQUEST sent -> ACK received: the commit (the StateLog's propose) plus one round trip. */
const requestTimes: number[] = [];
const socket = createSocket('udp4');

function packet(xid: number, mac: number[], type: number, extra: Array<[number, Uint8Array]> = []): Uint8Array {
  const m = emptyMessage();
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
  const entry = started.get(d.value.xid);
  if (!entry) return;
  const type = d.value.options.get(DhcpOption.MessageType)?.[0];
  if (type === 2) {
    const yi = d.value.yiaddr;
    entry.requestAt = performance.now();
    socket.send(packet(d.value.xid, entry.mac, 3, [
      [DhcpOption.RequestedIpAddress, Uint8Array.of(yi >>> 24, (yi >>> 16) & 255, (yi >>> 8) & 255, yi & 255)],
      [DhcpOption.ServerIdentifier, d.value.options.get(DhcpOption.ServerIdentifier) ?? new Uint8Array(4)],
    ]), 67, server);
  } else if (type === 5) {
    const now = performance.now();
    times.push(now - entry.t0);
    if (entry.requestAt !== undefined) requestTimes.push(now - entry.requestAt);
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
    started.set(xid, { t0: performance.now(), mac });
    socket.send(packet(xid, mac, 1), 67, server);
  }, 1000 / rate);
});

function finish(): void {
  times.sort((a, b) => a - b);
  requestTimes.sort((a, b) => a - b);
  const at = (list: number[], q: number): number => list.length === 0 ? NaN : list[Math.min(list.length - 1, Math.floor(q * list.length))]!;
  const mean = times.reduce((a, b) => a + b, 0) / Math.max(1, times.length);
  process.stdout.write(JSON.stringify({
    sent: count, acked: times.length, p50Ms: +at(times, 0.5).toFixed(3), p99Ms: +at(times, 0.99).toFixed(3), meanMs: +mean.toFixed(3),
    requestP50Ms: +at(requestTimes, 0.5).toFixed(3), requestP99Ms: +at(requestTimes, 0.99).toFixed(3),
  }) + '\n');
  socket.close();
}
