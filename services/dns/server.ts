import dgram from 'node:dgram';
import net from 'node:net';
import type { LanhaConfig } from '../../lib/config.js';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import type { Random } from '../../lib/random.js';
import { Counters } from '../../lib/counters.js';
import { serviceAddresses } from '../../lib/listen.js';
import { cidrContains, formatCidr, parseIpv4, type Cidr } from '../../lib/ipv4.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { RunningService, ServiceContext, ServiceStatus } from '../registry.js';
import type { DnsConfig } from './config.js';
import { FastAnswers, fastReply, scanQuery, type FastQuery } from './fast.js';
import { Forwarder } from './forward.js';
import { forwardedReply, handleQuery, prebuiltAnswer, type Transport } from './handler.js';
import { ResponseRateLimiter } from './rrl.js';
import { buildZoneSet, type LeaseName, type ZoneSet } from './zone.js';
import type { DnsMessage } from './wire.js';

// The DNS shell: one UDP socket and one TCP listener per served address (never a wildcard: Node
// cannot choose a reply's source address), the zone store rebuilt from config + replicated state,
// the prebuilt-answer fast path, forwarding, rate limiting, counters and logs.

export interface DnsServiceOptions {
  config: LanhaConfig;
  log: Logger;
  clock: Clock;
  random: Random;
  state: StateLog;
}

type Reply = (bytes: Uint8Array) => void;

const PER_CONNECTION_PENDING_MAX = 64;
const REBUILD_SPACING_MS = 100;
const ALLOW_CACHE_MAX = 4096;

export class DnsServer implements RunningService {
  readonly name = 'dns';
  readonly counters = new Counters();
  #cfg: DnsConfig;
  #config: LanhaConfig;
  #log: Logger;
  #clock: Clock;
  #state: StateLog;
  #zones: ZoneSet;
  #fast = new FastAnswers();
  #fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  /** Served address -> its UDP socket and TCP listener. */
  #bound = new Map<string, { udp: dgram.Socket; tcp: net.Server | null; port: number }>();
  #connections = new Set<net.Socket>();
  #forwarder: Forwarder | null = null;
  #allow: readonly Cidr[];
  #allowCache = new Map<string, boolean>();
  #rrl: ResponseRateLimiter | null;
  #limiter = new LogLimiter();
  #unsubscribe: (() => void) | null = null;
  #rebuildTimer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  #lastRebuild = -Infinity;
  #lastWarnings = new Set<string>();
  /** Hot-path counters kept as plain fields (a Map update per packet costs more than the answer). */
  #queries = 0;
  #fastHits = 0;

  constructor(o: DnsServiceOptions) {
    if (o.config.dns === undefined) throw new Error('dns is not configured');
    this.#cfg = o.config.dns;
    this.#config = o.config;
    this.#log = o.log;
    this.#clock = o.clock;
    this.#state = o.state;
    this.#allow = this.#cfg.forward?.allow ?? [];
    this.#rrl = this.#cfg.rateLimit === undefined ? null
      : new ResponseRateLimiter(this.#cfg.rateLimit.responsesPerSecond, this.#cfg.rateLimit.slip, this.#cfg.rateLimit.ipv4Prefix);
    if (this.#cfg.forward !== undefined) {
      this.#forwarder = new Forwarder({
        upstreams: this.#cfg.forward.upstreams, timeoutMs: this.#cfg.forward.timeout, cacheSize: this.#cfg.forward.cacheSize,
        clock: o.clock, random: o.random, counters: this.counters,
      });
    }
    this.#zones = this.#build();
  }

  get zones(): ZoneSet { return this.#zones; }

  async start(): Promise<void> {
    this.#unsubscribe = this.#state.fsm.subscribe((entry) => {
      const t = entry.command.type;
      if (t.startsWith('lease.') || t.startsWith('dns.')) this.#scheduleRebuild();
    });
    try {
      for (const address of serviceAddresses(this.#config, this.#cfg.listen)) await this.addAddress(address);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  status(): ServiceStatus {
    return {
      listening: [...this.#bound].flatMap(([a, b]) => [`udp ${a}:${b.port}`, ...(b.tcp ? [`tcp ${a}:${b.port}`] : [])]),
      serial: this.#zones.serial,
      zones: this.#zones.zones.map((z) => z.origin),
      counters: { ...this.counters.toJSON(), 'dns.queries': this.#queries, 'dns.fast_answers': this.#fastHits },
      tcpConnections: this.#connections.size,
      forwardCache: this.#forwarder?.cache.size ?? 0,
    };
  }

  readonly routes = {
    'GET /v1/dns/records': () => ({ status: 200, body: { serial: this.#zones.serial, records: this.#zones.list() } }),
  };

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#rebuildTimer !== null) { clearTimeout(this.#rebuildTimer as NodeJS.Timeout); clearImmediate(this.#rebuildTimer as NodeJS.Immediate); this.#rebuildTimer = null; }
    this.#forwarder?.close();
    for (const c of this.#connections) c.destroy();
    this.#connections.clear();
    await Promise.all([...this.#bound.keys()].map((a) => this.removeAddress(a)));
  }

  /**
   * Starts serving on one more address (UDP + TCP): the VIP when this node takes it. Binding the
   * address itself, never a wildcard, is what makes replies leave from the address asked.
   */
  async addAddress(address: string): Promise<void> {
    if (this.#bound.has(address)) return;
    const udp = await this.#bindUdp(address);
    const port = udp.address().port;
    let tcp: net.Server | null = null;
    try {
      if (this.#cfg.tcp) tcp = await this.#listenTcp(address, port);
    } catch (error) {
      udp.close();
      throw error;
    }
    this.#bound.set(address, { udp, tcp, port });
  }

  /** Stops serving on an address (the VIP when this node gives it up); open TCP connections to it end. */
  async removeAddress(address: string): Promise<void> {
    const b = this.#bound.get(address);
    if (b === undefined) return;
    this.#bound.delete(address);
    for (const c of this.#connections) if (c.localAddress === address || c.localAddress === `::ffff:${address}`) c.destroy();
    await Promise.all([
      new Promise<void>((resolve) => { try { b.udp.close(() => resolve()); } catch { resolve(); } }),
      b.tcp === null ? Promise.resolve() : new Promise<void>((resolve) => b.tcp!.close(() => resolve())),
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Zones

  #build(): ZoneSet {
    const fsm = this.#state.fsm;
    const reservations = new Map<string, string>();
    const reverseSubnets: Cidr[] = [];
    const domains = new Map<string, string>();
    for (const s of this.#config.dhcp?.subnets ?? []) {
      if (this.#cfg.reverseZones) reverseSubnets.push(s.subnet);
      if (s.domain !== undefined) domains.set(formatCidr(s.subnet), s.domain);
      for (const r of s.reservations) if (r.hostname !== undefined) {
        if (r.mac !== undefined) reservations.set(`mac:${r.mac}`, r.hostname);
        reservations.set(`ip:${r.ip}`, r.hostname);
      }
    }
    if (this.#cfg.reverseZones) reverseSubnets.push(...this.#cfg.subnets);
    const leaseNames: LeaseName[] = [];
    for (const l of fsm.leases()) {
      if (l.state !== 'bound' || l.expiresAt <= fsm.lastAt) continue;
      const reserved = reservations.get(`mac:${l.mac}`) ?? reservations.get(`ip:${l.ip}`);
      const domain = domains.get(l.subnet);
      if (l.hostname !== undefined) leaseNames.push({ ip: l.ip, hostname: l.hostname, grantedAt: l.grantedAt, source: 'lease', domain });
      else if (reserved !== undefined) leaseNames.push({ ip: l.ip, hostname: reserved, grantedAt: l.grantedAt, source: 'reservation', domain });
    }
    const zones = buildZoneSet({
      zones: this.#cfg.zones, reverseSubnets, leaseNames, operatorRecords: [...fsm.records()], serial: fsm.serial,
    });
    for (const w of zones.warnings) {
      if (!this.#lastWarnings.has(w)) this.#log.warn({ event: 'dns.zone_warning' }, w);
    }
    this.#lastWarnings = new Set(zones.warnings);
    return zones;
  }

  /**
   * A change is served at once (the next turn of the event loop) unless the zones were rebuilt in
   * the last REBUILD_SPACING_MS; then it waits out the rest, so a burst of leases costs a few
   * rebuilds a second rather than one per lease (a rebuild of a few thousand names takes ~15 ms).
   */
  #scheduleRebuild(): void {
    if (this.#rebuildTimer !== null) return;
    const wait = Math.max(0, this.#lastRebuild + REBUILD_SPACING_MS - this.#clock.monotonicMs());
    const run = (): void => {
      this.#rebuildTimer = null;
      this.rebuild();
    };
    this.#rebuildTimer = wait === 0 ? setImmediate(run) : setTimeout(run, wait);
  }

  /** Rebuilds the zones from config + replicated state now and forgets every prebuilt answer. */
  rebuild(): void {
    const before = this.#zones.serial;
    this.#lastRebuild = this.#clock.monotonicMs();
    this.#zones = this.#build();
    this.#fast.clear();
    this.#log.debug({ event: 'dns.zones_rebuilt', serial: this.#zones.serial, before }, 'zones rebuilt');
  }

  // -------------------------------------------------------------------------------------------
  // Sockets

  async #bindUdp(address: string): Promise<dgram.Socket> {
    const family = net.isIPv6(address) ? 6 : 4;
    // A larger receive buffer rides out bursts (the kernel caps it at net.core.rmem_max).
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family), recvBufferSize: 4 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => { socket.close(); reject(err); });
      socket.bind(this.#cfg.port, address, () => { socket.removeAllListeners('error'); resolve(); });
    });
    socket.on('error', (err) => {
      this.counters.inc('dns.udp.send_failed');
      if (this.#limiter.allow('udp-error', this.#clock.monotonicMs())) this.#log.warn({ event: 'dns.udp_error', address, err }, 'UDP socket error');
    });
    socket.on('message', (msg, rinfo) => this.#onUdp(socket, msg, rinfo));
    return socket;
  }

  async #listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer((conn) => this.#onTcp(conn));
    server.maxConnections = this.#cfg.maxTcpConnections;
    server.on('drop', () => this.counters.inc('dns.tcp.refused'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: address, exclusive: true }, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => this.#log.warn({ event: 'dns.tcp_error', address, err }, 'TCP listener error'));
    return server;
  }

  #forwardAllowed(address: string): boolean {
    if (this.#forwarder === null) return false;
    let v = this.#allowCache.get(address);
    if (v === undefined) {
      const ip = parseIpv4(address.startsWith('::ffff:') ? address.slice(7) : address);
      v = ip !== null && this.#allow.some((c) => cidrContains(c, ip));
      if (this.#allowCache.size >= ALLOW_CACHE_MAX) this.#allowCache.clear();
      this.#allowCache.set(address, v);
    }
    return v;
  }

  #onUdp(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.#queries++;
    const fq = this.#fq;
    const shaped = scanQuery(msg, fq);
    if (shaped) {
      const e = this.#fast.get(msg, fq);
      if (e !== null) {
        this.#fastHits++;
        const out = fastReply(msg, fq, e, this.#forwarder !== null && this.#forwardAllowed(rinfo.address), false);
        if (this.#rrl === null) socket.send(out, rinfo.port, rinfo.address); // errors surface as the socket's 'error' event
        else this.#sendUdp(socket, out, rinfo);
        return;
      }
    }
    this.#slow(msg, rinfo.address, 'udp', (bytes) => this.#sendUdp(socket, bytes, rinfo), shaped);
  }

  #sendUdp(socket: dgram.Socket, bytes: Uint8Array, rinfo: dgram.RemoteInfo): void {
    if (this.#rrl !== null) {
      const ip = parseIpv4(rinfo.address);
      const verdict = this.#rrl.check(ip ?? rinfo.address, this.#clock.monotonicMs());
      if (verdict === 'drop') { this.counters.inc('dns.rrl.dropped'); return; }
      if (verdict === 'slip') { this.counters.inc('dns.rrl.slipped'); bytes = truncatedCopy(bytes); }
    }
    socket.send(bytes, rinfo.port, rinfo.address);
  }

  /** The general path: decode, answer, maybe prebuild for next time, maybe forward. */
  #slow(msg: Buffer, address: string, transport: Transport, send: Reply, fastShape: boolean): void {
    const ctx = { zones: this.#zones, nodeName: this.#config.node.name, forwardAllowed: this.#forwardAllowed(address), transport };
    const d = handleQuery(msg, ctx);
    switch (d.kind) {
      case 'drop':
        this.counters.inc(`dns.dropped.${d.reason}`);
        this.#debug(d.reason, address);
        return;
      case 'reply':
        if (d.reason !== undefined) {
          this.counters.inc(`dns.refused_or_error.${d.reason}`);
          if (d.reason !== 'not-ours') this.#debug(d.reason, address);
        }
        if (d.cacheable !== undefined && fastShape) this.#fast.add(msg, this.#fq, prebuiltAnswer(d.cacheable.query, d.cacheable.answer), d.rcode);
        send(d.bytes);
        return;
      case 'forward':
        this.#forward(d.query, transport, send);
    }
  }

  #forward(query: DnsMessage, transport: Transport, send: Reply): void {
    const forwarder = this.#forwarder!;
    const result = forwarder.resolve(query.questions[0]!);
    const answer = (a: Awaited<typeof result>): void => {
      send(forwardedReply(query, { nodeName: this.#config.node.name, transport }, a.rcode, a.answers, a.authority, a.additional));
    };
    if (result instanceof Promise) result.then(answer, () => undefined);
    else answer(result);
  }

  #debug(reason: string, address: string): void {
    if (this.#limiter.allow(reason, this.#clock.monotonicMs())) {
      this.#log.debug({ event: 'dns.bad_query', reason, source: address }, `query from ${address} refused or dropped: ${reason}`);
    }
  }

  #onTcp(conn: net.Socket): void {
    this.#connections.add(conn);
    conn.setNoDelay(true);
    conn.setTimeout(this.#cfg.tcpIdleTimeout, () => { this.counters.inc('dns.tcp.idle_closed'); conn.destroy(); });
    conn.on('error', () => conn.destroy());
    conn.on('close', () => this.#connections.delete(conn));
    const address = conn.remoteAddress ?? '';
    let buf: Buffer | null = null;
    let pending = 0;
    const write: Reply = (bytes) => {
      pending--;
      if (conn.destroyed) return;
      const frame = Buffer.allocUnsafe(bytes.length + 2);
      frame[0] = bytes.length >> 8;
      frame[1] = bytes.length & 0xff;
      frame.set(bytes, 2);
      conn.write(frame);
      if (pending < PER_CONNECTION_PENDING_MAX && conn.isPaused()) conn.resume();
    };
    conn.on('data', (chunk: Buffer) => {
      buf = buf === null || buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let p = 0;
      while (buf.length - p >= 2) {
        const n = (buf[p]! << 8) | buf[p + 1]!;
        if (buf.length - p - 2 < n) break;
        const msg = buf.subarray(p + 2, p + 2 + n);
        p += 2 + n;
        this.#queries++;
        pending++;
        const fq = this.#fq;
        if (scanQuery(msg, fq)) {
          const e = this.#fast.get(msg, fq);
          if (e !== null) {
            this.#fastHits++;
            write(fastReply(msg, fq, e, this.#forwardAllowed(address), true));
            continue;
          }
          this.#slow(msg, address, 'tcp', write, true);
        } else {
          this.#slow(msg, address, 'tcp', write, false);
        }
      }
      buf = p === buf.length ? null : buf.subarray(p);
      // Many forwarded queries in flight on one connection: stop reading until some are answered.
      if (pending >= PER_CONNECTION_PENDING_MAX) conn.pause();
    });
  }
}

/** The TC=1 form of a reply: header and question only (used when rate limiting slips a reply). */
export function truncatedCopy(bytes: Uint8Array): Uint8Array {
  let p = 12;
  const qd = ((bytes[4] ?? 0) << 8) | (bytes[5] ?? 0);
  if (qd === 1) {
    while (p < bytes.length && bytes[p] !== 0 && bytes[p]! <= 63) p += bytes[p]! + 1;
    p = Math.min(bytes.length, p + 5);
  }
  const out = Uint8Array.from(bytes.subarray(0, Math.max(12, p)));
  out[2] = out[2]! | 0x02;
  if (qd !== 1) { out[4] = 0; out[5] = 0; }
  out.fill(0, 6, 12);
  return out;
}

export async function startDns(context: ServiceContext): Promise<RunningService> {
  const server = new DnsServer(context);
  await server.start();
  return server;
}

/**
 * dgram resolves every destination through `lookup` (dns.lookup by default: a deferred callback
 * per datagram even for an IP literal). Replies only ever go to the literal address a query came
 * from, so answer at once and let the send happen in the same tick.
 */
function literalLookup(family: 4 | 6): (address: string, options: unknown, callback: (err: Error | null, address: string, family: number) => void) => void {
  return (address, _options, callback) => callback(null, address, family);
}
