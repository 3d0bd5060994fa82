// Bench helper (not a test): the CPU one DHCP exchange costs inside the daemon, without sockets. A
// DhcpHandler on the durable single-node Raft log (its WAL in a temporary directory, fdatasync and
// all), with the daemon's ACK audit ring and journal on every ACK, CLIENTS clients bound first; then
// rounds of OPS exchanges of each kind, INFLIGHT at a time, the kinds interleaved round by round:
//   offer    DISCOVER -> OFFER from a bound client (perfdhcp's DORA of known clients; no log entry)
//   ack      REQUEST (renewing: ciaddr, no 50/54) -> ACK through the log (a lease.grant entry)
//   cached   the same REQUEST -> ACK from the lease cache (cacheThreshold 0.25; no log entry)
// The requests are perfdhcp's (options 53, 55 [1 28 2 3 15 6 12]), encoded once before the run.
// Figure: the process's CPU time (every thread: the WAL's fdatasyncs run on libuv's pool) per
// exchange, median of the rounds after the first (JIT warm-up); shipped V8 flags via NODE_FLAGS.
//   node [flags] dist/bench/dhcp-handler-cpu.js
// Env: KINDS (offer,ack,cached), ROUNDS (5), OPS (2000), INFLIGHT (1: one exchange at a time, as at
// perfdhcp's 100-200/s, where each ACK gets its own fdatasync; 64: a burst sharing them), CLIENTS
// (2000), ROGUE (1: the handler with the rogue-server watch, as the daemon has it). ONLY=<kind> with OPS=<n> runs one warm-up round of that kind and then n exchanges, and
// prints nothing but `DONE`: for instruction counts (bench/dhcp-handler-instr.sh runs it under
// callgrind twice and takes the difference). PROFILE=<kind> writes a CPU profile of that kind's
// rounds to dhcp-<kind>.cpuprofile.
// Prints: RESULT dhcp.handler.cpu_us_per_<kind> lanha=<us> anchor=NA ratio=NA unit=us better=lower inflight=.. rounds=..
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { parseConfig } from '../config/index.js';
import { silentLogger } from '../lib/log.js';
import { systemClock } from '../lib/clock.js';
import { seededRandom } from '../lib/random.js';
import { formatIpv4 } from '../lib/ipv4.js';
import { RaftStateLog } from '../cluster/raft-state-log.js';
import { logNowMs } from '../cluster/state-log.js';
import { AckLedger, type AckRecord } from '../cluster/ack-audit.js';
import { AckJournal } from '../cluster/ack-journal.js';
import { DhcpHandler } from '../services/dhcp/server.js';
import { probeMacFor } from '../services/dhcp/rogue.js';
import { BootOp, decodeDhcp, emptyMessage, encodeDhcp } from '../services/dhcp/wire.js';
import { DhcpOption, MessageType } from '../services/dhcp/options.js';

const KINDS = ['offer', 'ack', 'cached'] as const;
type Kind = typeof KINDS[number];
const env = process.env;
const only = env['ONLY'] as Kind | undefined;
const kinds = only !== undefined ? [only] : (env['KINDS'] ?? KINDS.join(',')).split(',').filter((k): k is Kind => (KINDS as readonly string[]).includes(k));
const rounds = only !== undefined ? 1 : Math.max(2, Math.min(50, Number(env['ROUNDS'] ?? 5)));
const ops = Math.max(1, Math.min(100_000, Number(env['OPS'] ?? 2000)));
const inFlight = Math.max(1, Math.min(1024, Number(env['INFLIGHT'] ?? 1)));
const clients = Math.max(1, Math.min(60_000, Number(env['CLIENTS'] ?? 2000)));
const profile = env['PROFILE'] as Kind | undefined;

const config = (cacheThreshold: number): string => `
node: { name: n1, address: 10.99.0.1 }
dhcp:
  cacheThreshold: ${cacheThreshold}
  rateLimit: { perMac: 1000000, global: 1000000 }
  subnets:
    - subnet: 10.99.0.0/16
      pools: [10.99.1.0-10.99.255.250]
      router: [10.99.0.1]
      dns: [10.99.0.1]
      domain: lab.lan
      leaseTime: 1h
`;

function macOf(i: number): Uint8Array { return Uint8Array.of(0x02, 0x42, 0, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff); }

/** perfdhcp's DISCOVER / REQUEST: 53, 55 [1 28 2 3 15 6 12]; SELECTING adds 50 and 54, RENEWING sets ciaddr. */
function packet(type: number, i: number, xid: number, o: { requested?: number; serverId?: number; ciaddr?: number } = {}): Uint8Array {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = xid;
  m.chaddr.set(macOf(i));
  if (o.ciaddr !== undefined) m.ciaddr = o.ciaddr;
  m.options.set(DhcpOption.MessageType, Uint8Array.of(type));
  if (o.requested !== undefined) m.options.set(DhcpOption.RequestedIpAddress, Uint8Array.of(o.requested >>> 24, (o.requested >> 16) & 0xff, (o.requested >> 8) & 0xff, o.requested & 0xff));
  if (o.serverId !== undefined) m.options.set(DhcpOption.ServerIdentifier, Uint8Array.of(o.serverId >>> 24, (o.serverId >> 16) & 0xff, (o.serverId >> 8) & 0xff, o.serverId & 0xff));
  m.options.set(DhcpOption.ParameterRequestList, Uint8Array.of(1, 28, 2, 3, 15, 6, 12));
  return encodeDhcp(m, 548);
}

/** CPU ns of this process's main thread and of its other threads (libuv's pool: the fdatasyncs), from schedstat. */
function threadCpuNs(): { main: number; others: number } {
  let main = 0, others = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    let ns = 0;
    try { ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { continue; }
    if (tid === String(process.pid)) main += ns; else others += ns;
  }
  return { main, others };
}

function typeOf(bytes: Uint8Array | undefined): number {
  if (bytes === undefined) return 0;
  const d = decodeDhcp(bytes);
  return d.ok ? (d.value.options.get(DhcpOption.MessageType)?.[0] ?? 0) : 0;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lanha-dhcp-cpu-'));
  const clock = systemClock;
  const state = await RaftStateLog.open({ id: 'n1', dir: join(dir, 'raft'), conf: { voters: ['n1'], learners: [], witnesses: [] }, clock, random: seededRandom(1), log: silentLogger });
  for (let i = 0; i < 500 && !state.isLeader(); i++) await new Promise((r) => setTimeout(r, 10));
  // The daemon's onAck (bin/daemon.ts): the audit ring and its journal, one write(2) per ACK.
  const ledger = new AckLedger();
  const journal = AckJournal.open(join(dir, 'acks.jsonl'), ledger.capacity);
  const onAck = (ack: AckRecord): void => { ledger.record(ack); journal.append(ack); };
  const handlerOf = (threshold: number): DhcpHandler => {
    const c = parseConfig(config(threshold));
    // ROGUE=1: with the rogue-server watch, as the daemon runs the handler (its probe-MAC check on
    // every packet, a look at every REQUEST's server id).
    const rogue = env['ROGUE'] === '1' ? { probeMac: probeMacFor('n1'), clock } : undefined;
    return new DhcpHandler({ config: c.dhcp!, state, nodeAddress: c.node.address, log: silentLogger, clock, onAck, rogue });
  };
  const plain = handlerOf(0);
  const caching = handlerOf(0.25);
  const serverId = plain.serverId;

  // Bind every client (DORA), a burst at a time.
  const ips: number[] = new Array<number>(clients).fill(0);
  for (let from = 0; from < clients; from += 64) {
    await Promise.all(Array.from({ length: Math.min(64, clients - from) }, async (_, k) => {
      const i = from + k;
      const offer = await plain.handle(packet(MessageType.Discover, i, i + 1), 'p', logNowMs(state, clock));
      const d = offer[0] === undefined ? null : decodeDhcp(offer[0].bytes);
      if (d === null || !d.ok) throw new Error(`client ${i}: no offer`);
      const ack = await plain.handle(packet(MessageType.Request, i, i + 1, { requested: d.value.yiaddr, serverId }), 'p', logNowMs(state, clock));
      if (typeOf(ack[0]?.bytes) !== MessageType.Ack) throw new Error(`client ${i}: no ACK`);
      ips[i] = d.value.yiaddr;
    }));
  }
  const discovers = ips.map((_, i) => packet(MessageType.Discover, i, 0x10000 + i));
  const renewals = ips.map((ip, i) => packet(MessageType.Request, i, 0x20000 + i, { ciaddr: ip }));
  const expected: Record<Kind, number> = { offer: MessageType.Offer, ack: MessageType.Ack, cached: MessageType.Ack };
  const run = async (kind: Kind, count: number): Promise<void> => {
    const handler = kind === 'cached' ? caching : plain;
    const input = kind === 'offer' ? discovers : renewals;
    let next = 0;
    let wrong = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const n = next++;
        const replies = await handler.handle(input[n % clients]!, 'p', logNowMs(state, clock));
        // Only checked now and then: decoding every reply would count the client's work as ours.
        if (n % 97 === 0 && typeOf(replies[0]?.bytes) !== expected[kind]) wrong++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    if (wrong > 0) throw new Error(`${kind}: ${wrong} sampled replies were not of the expected type`);
  };

  if (only !== undefined) {
    await run(only, Math.max(ops, 2000));
    await state.host.idle();
    process.stdout.write('MEASURE\n');
    await run(only, ops);
    await state.host.idle();
    process.stdout.write('DONE\n');
  } else {
    const session = profile === undefined ? null : new Session();
    if (session) { session.connect(); await session.post('Profiler.enable'); }
    const perKind = new Map<Kind, number[]>(kinds.map((k) => [k, []]));
    const cached0 = caching.counters.get('lease.reused');
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? kinds : [...kinds].reverse();
      for (const kind of order) {
        if (session && kind === profile && round > 0) await session.post('Profiler.start');
        const fsyncs0 = state.host.stats.fsyncs;
        const cpu0 = process.cpuUsage();
        const threads0 = threadCpuNs();
        const wall0 = performance.now();
        await run(kind, ops);
        await state.host.idle();
        const cpu = process.cpuUsage(cpu0);
        const wallUs = (performance.now() - wall0) * 1000 / ops;
        const threads = threadCpuNs();
        if (session && kind === profile && round > 0) {
          const { profile: p } = await session.post('Profiler.stop');
          writeFileSync(`dhcp-${kind}-${round}.cpuprofile`, JSON.stringify(p));
        }
        const us = (cpu.user + cpu.system) / ops;
        if (round > 0) perKind.get(kind)!.push(us);
        console.log(`STEP round=${round} kind=${kind} cpu_us_per_op=${us.toFixed(1)} user=${(cpu.user / ops).toFixed(1)} system=${(cpu.system / ops).toFixed(1)} main_thread=${((threads.main - threads0.main) / 1000 / ops).toFixed(1)} other_threads=${((threads.others - threads0.others) / 1000 / ops).toFixed(1)} wall_us_per_op=${wallUs.toFixed(0)} fsyncs_per_op=${((state.host.stats.fsyncs - fsyncs0) / ops).toFixed(2)}`);
      }
    }
    const reused = caching.counters.get('lease.reused') - cached0;
    if (kinds.includes('cached') && reused < ops * (rounds - 1)) throw new Error(`only ${reused} cached ACKs`);
    console.log(`load average: ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}; ${clients} clients bound, first lease ${formatIpv4(ips[0]!)}`);
    for (const [kind, list] of perKind) {
      const sorted = [...list].sort((a, b) => a - b);
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
      console.log(`RESULT dhcp.handler.cpu_us_per_${kind} lanha=${median.toFixed(1)} anchor=NA ratio=NA unit=us better=lower inflight=${inFlight} rounds=${list.map((v) => v.toFixed(1)).join(',')}`);
    }
  }
  journal.close();
  await state.close();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((error: unknown) => { console.error(error); process.exit(1); });
