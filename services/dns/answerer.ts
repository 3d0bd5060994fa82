import type dgram from 'node:dgram';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { cidrContains, parseIpv4 } from '../../lib/ipv4.js';
import type { DnsConfig } from './config.js';
import { FastAnswers, fastReply, fastReplyInto, fastReplySize, scanQuery, type FastQuery } from './fast.js';
import { ForwardCache } from './cache.js';
import { handleQuery, prebuiltAnswer, type Transport } from './handler.js';
import { ResponseRateLimiter } from './rrl.js';
import { UdpBacklog, type BacklogRule } from '../../lib/udp-backlog.js';
import { DatagramSender, SEND_FAILED, onDatagram } from '../../lib/udp-direct.js';
import { ReplyBatch, turnEnd, type ReplySink } from './fast-send.js';
import type { ZoneSet } from './zone.js';
import { CLASS_ANY, CLASS_IN, HEADER_SIZE, T, type DnsMessage, type DnsRecord, type Question } from './wire.js';
import { NAME_MAX, readName } from './name.js';
import type { RawQuery } from './forward.js';
import type { MissTrace } from './miss-trace.js';

// What every process that answers DNS queries holds: the zones, the prebuilt-answer table, the
// forwarding allow list, rate limiting, counters. The daemon's DnsServer and each UDP worker
// process (udp-worker.ts) own one; only what to do with a query that must be forwarded differs
// (the daemon asks upstream; a worker hands the datagram to the daemon).

/** Delivers one reply; `more` says further messages for the same query follow (a zone transfer). */
export type Reply = (bytes: Uint8Array, more?: boolean) => void;
/**
 * A query for `q` our zones do not answer and the source may forward: `send` delivers the answer.
 * `raw`: the query's bytes when it has the fast path's shape and missed this process's forwarding
 * cache. `query`: the decoded query, null when it was routed from its bytes (then `raw` is set).
 */
export interface ForwardQuery {
  (q: Question, query: DnsMessage | null, transport: Transport, send: Reply, raw?: RawQuery, chain?: DnsRecord[]): void;
  /**
   * A fast-shaped UDP query routed from its bytes (`msg`, scanned as `fq`; both valid only during
   * the call), answered as `to.sendUdp(out, reply, port, address)`: the forwarder keeps what it
   * needs in the question's flight, so a miss makes no closure or query object of its own (absent:
   * the call above with `raw`).
   */
  udp?: (msg: Buffer, fq: FastQuery, to: UdpReplier, out: ReplySink, port: number, address: string) => void;
}

/** Sends a UDP reply through the rate limiter (`DnsAnswerer.sendUdp`). */
export interface UdpReplier {
  /** `alone`: a reply made outside the turn's reads of queries (a forwarded answer: `ReplySink.sendAlone`). */
  sendUdp(out: ReplySink, bytes: Uint8Array, port: number, address: string, alone?: boolean): void;
}

const ALLOW_CACHE_MAX = 4096;
/**
 * A queue of datagrams that has stood this long makes this process shed new forwarding misses
 * (SERVFAIL at once, `dns.forward.busy`), all but the fraction it admits: 100 ms, or 5 ms within a
 * second of the last shed (a flood still there). lib/udp-backlog.ts has the reasons, README
 * "Bounds" the measurements.
 */
export const BACKLOG_RULE: BacklogRule = { intervalMs: 100, targetMs: 5, memoryMs: 1000 };
/** How long the queues that drained had stood (counters `dns.udp.queue_stood.<ms>ms`: at least that long). */
const STOOD_MS = [5, 20, 50, 100] as const;
const STOOD_NAMES = STOOD_MS.map((ms) => `dns.udp.queue_stood.${ms}ms`);

export interface AnswererOptions {
  cfg: DnsConfig;
  nodeName: string;
  zones: ZoneSet;
  clock: Clock;
  log: Logger;
  /** How many processes answer from the same socket: each enforces its share of the rate limit. */
  processes?: number;
  /** Where queues that stood are recorded (bench:dns's diagnostic, miss-trace.ts). */
  trace?: MissTrace | null;
}

export class DnsAnswerer implements UdpReplier {
  readonly counters = new Counters();
  /** Hot-path counters kept as plain fields (a Map update per packet costs more than the answer). */
  queries = 0;
  fastHits = 0;
  /** Forwarded names answered from this process's forwarding cache on the fast path. */
  forwardHits = 0;
  /** Answers to forwarded names, in wire form (null: no forwarding); see cache.ts. */
  readonly forwardCache: ForwardCache | null;
  #zones: ZoneSet;
  #nodeName: string;
  #clock: Clock;
  #log: Logger;
  #fast = new FastAnswers();
  #fq: FastQuery = { qEnd: 0, ednsLimit: 0, hash: 0 };
  #forwarding: boolean;
  #allow: DnsConfig['subnets'];
  #allowCache = new Map<string, boolean>();
  #lastAddress = '';
  #lastAllowed = false;
  #transferAllow: DnsConfig['subnets'];
  #transferCache = new Map<string, boolean>();
  #rrl: ResponseRateLimiter | null;
  #limiter = new LogLimiter();
  #trace: MissTrace | null;
  /** Datagrams left waiting in the sockets' queues turn after turn (see `backlogged`). */
  #backlog = new UdpBacklog(BACKLOG_RULE);
  /**
   * The clock when this turn of the event loop read its first datagram: the time the forwarding
   * cache answers a hit at (its TTLs move in whole seconds; the turn's reads last microseconds to
   * milliseconds), so a hit reads no clock of its own.
   */
  #turnMs = 0;
  readonly #endTurn = (): void => {
    const stood = this.#backlog.endTurn();
    if (stood < STOOD_MS[0]!) return;
    for (let i = 0; i < STOOD_MS.length && stood >= STOOD_MS[i]!; i++) this.counters.inc(STOOD_NAMES[i]!);
    this.#trace?.stood(this.#turnMs - stood, this.#turnMs);
  };

  constructor(o: AnswererOptions) {
    this.#zones = o.zones;
    this.#nodeName = o.nodeName;
    this.#clock = o.clock;
    this.#log = o.log;
    this.#trace = o.trace ?? null;
    this.#forwarding = o.cfg.forward !== undefined;
    this.forwardCache = o.cfg.forward === undefined ? null : new ForwardCache(o.cfg.forward.cacheSize);
    this.#allow = o.cfg.forward?.allow ?? [];
    this.#transferAllow = o.cfg.transfer?.allow ?? [];
    const rl = o.cfg.rateLimit;
    this.#rrl = rl === undefined ? null
      : new ResponseRateLimiter(Math.max(1, Math.ceil(rl.responsesPerSecond / (o.processes ?? 1))), rl.slip, rl.ipv4Prefix);
  }

  get zones(): ZoneSet { return this.#zones; }

  /** Serves `zones` from now on and forgets every prebuilt answer. */
  setZones(zones: ZoneSet): void {
    this.#zones = zones;
    this.#fast.clear();
  }

  /** Counters for status: the named ones plus the hot-path fields. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = { ...this.counters.toJSON(), 'dns.queries': this.queries, 'dns.fast_answers': this.fastHits };
    if (this.forwardHits > 0) out['dns.forward.cache_hit'] = (out['dns.forward.cache_hit'] ?? 0) + this.forwardHits;
    return out;
  }

  /**
   * Whether a new forwarding miss is shed now: datagrams have stood in this process's socket queues
   * long enough to be an overload (`BACKLOG_RULE`: every turn of the event loop for that long left
   * some behind), and it is not among the fraction the queue admits (lib/udp-backlog.ts: it falls
   * while the queue stands, rises as turns drain it). The forwarder answers a shed miss with
   * SERVFAIL at once, so the queue drains instead of growing, and asks upstream about as many as
   * the process can do.
   */
  backlogged(): boolean {
    return this.#backlog.shed(this.#clock.monotonicMs());
  }

  forwardAllowed(address: string): boolean {
    if (!this.#forwarding) return false;
    // The last source asked again (a client's burst): a string compare instead of a Map lookup.
    if (address === this.#lastAddress) return this.#lastAllowed;
    const allowed = inPrefixes(address, this.#allow, this.#allowCache);
    this.#lastAddress = address;
    this.#lastAllowed = allowed;
    return allowed;
  }

  transferAllowed(address: string): boolean {
    return this.#transferAllow.length > 0 && inPrefixes(address, this.#transferAllow, this.#transferCache);
  }

  /**
   * Answers every datagram arriving on the bound `socket` from now on (straight from its handle
   * where this Node allows, lib/udp-direct.ts). `forward` is called (rarely) for queries to send upstream.
   */
  serve(socket: dgram.Socket, forward: ForwardQuery): ReplySink {
    const sender = new DatagramSender(socket);
    // Through the handle, a turn's replies leave together after its reads (fast-send.ts); dgram's
    // fallback keeps every reply's bytes until sent, so there each goes at once.
    const out = sender.direct ? new ReplyBatch(sender, () => this.counters.inc('dns.udp.send_failed')) : sender;
    onDatagram(socket, (msg, rinfo) => this.udp(out, msg, rinfo, forward));
    return out;
  }

  /** One datagram from `rinfo` on `out`'s socket. `forward` is called (rarely) for queries to send upstream. */
  udp(out: ReplySink, msg: Buffer, rinfo: dgram.RemoteInfo, forward: ForwardQuery): void {
    this.queries++;
    if (this.#backlog.read(out)) {
      this.#turnMs = this.#clock.monotonicMs();
      this.#backlog.beginTurn(this.#turnMs);
      turnEnd.schedule(this.#endTurn);
    }
    // Source port 0 is no port a reply can go to (a forged datagram): each one was answered, failed
    // to send and counted as dns.udp.send_failed, the server's own failure.
    if (rinfo.port === 0) {
      this.counters.inc('dns.dropped.source-port-zero');
      this.#debug('source-port-zero', `${rinfo.address}:0`);
      return;
    }
    const fq = this.#fq;
    const shaped = scanQuery(msg, fq);
    if (shaped) {
      const e = this.#fast.get(msg, fq);
      if (e !== null) {
        this.fastHits++;
        // The reply is written into the sender's scratch area: it has left (or been copied) by the
        // time the next one is written.
        const bytes = out.buffer(fastReplySize(fq, e, false));
        fastReplyInto(bytes, msg, fq, e, this.forwardAllowed(rinfo.address), false);
        this.sendUdp(out, bytes, rinfo.port, rinfo.address);
        return;
      }
      const fc = this.forwardCache;
      if (fc !== null && this.forwardAllowed(rinfo.address)) {
        const now = this.#turnMs;
        const f = fc.lookup(msg, fq, now);
        if (f !== null) {
          this.forwardHits++;
          const bytes = out.buffer(fc.replySize(fq, f));
          fc.replyInto(bytes, msg, fq, f, now);
          this.sendUdp(out, bytes, rinfo.port, rinfo.address);
          return;
        }
        if (this.#routable(msg, fq)) {
          // `#lastAddress` equals rinfo.address (`forwardAllowed` just set or matched it) and is the
          // string of this source's first datagram in a row: the flight keeps no string of this one.
          if (forward.udp !== undefined) { forward.udp(msg, fq, this, out, rinfo.port, this.#lastAddress); return; }
          const q = this.#question(msg, fq);
          if (q !== null) { this.#forwardUdp(out, msg, rinfo, forward, q); return; }
        }
      }
    }
    this.#slowUdp(out, msg, rinfo, forward, shaped);
  }

  // The reply callbacks live in these two methods, not in `udp`: a function whose closures capture
  // its arguments allocates a context for them on every call, whichever branch it takes (56 bytes
  // per answer on the hit paths, which otherwise allocate nothing).
  #forwardUdp(out: ReplySink, msg: Buffer, rinfo: dgram.RemoteInfo, forward: ForwardQuery, q: Question): void {
    const fq = this.#fq;
    forward(q, null, 'udp', (reply) => this.sendUdp(out, reply, rinfo.port, rinfo.address), { msg, fq: { qEnd: fq.qEnd, ednsLimit: fq.ednsLimit, hash: fq.hash } });
  }

  #slowUdp(out: ReplySink, msg: Buffer, rinfo: dgram.RemoteInfo, forward: ForwardQuery, shaped: boolean): void {
    this.#slow(msg, rinfo.address, 'udp', (bytes) => this.sendUdp(out, bytes, rinfo.port, rinfo.address), shaped, forward);
  }

  /** Sends a UDP reply through the rate limiter; `alone`: see `UdpReplier`. */
  sendUdp(out: ReplySink, bytes: Uint8Array, port: number, address: string, alone = false): void {
    if (this.#rrl !== null) {
      const ip = parseIpv4(address);
      const verdict = this.#rrl.check(ip ?? address, this.#clock.monotonicMs());
      if (verdict === 'drop') { this.counters.inc('dns.rrl.dropped'); return; }
      if (verdict === 'slip') { this.counters.inc('dns.rrl.slipped'); bytes = truncatedCopy(bytes); }
    }
    // A forwarded answer can come back after its socket closed (the VIP went meanwhile): counted,
    // never thrown (dgram's send() throws ERR_SOCKET_DGRAM_NOT_RUNNING there).
    const r = alone && out.sendAlone !== undefined ? out.sendAlone(bytes, port, address) : out.send(bytes, port, address);
    if (r === SEND_FAILED) this.counters.inc('dns.udp.send_failed');
  }

  /** One query framed off a TCP connection from `address`, answered through `write`; false when it was dropped (nothing will be written). */
  tcp(msg: Buffer, address: string, write: Reply, forward: ForwardQuery): boolean {
    this.queries++;
    const fq = this.#fq;
    if (scanQuery(msg, fq)) {
      const e = this.#fast.get(msg, fq);
      if (e !== null) {
        this.fastHits++;
        write(fastReply(msg, fq, e, this.forwardAllowed(address), true));
        return true;
      }
      return this.#slow(msg, address, 'tcp', write, true, forward);
    }
    return this.#slow(msg, address, 'tcp', write, false, forward);
  }

  /**
   * Whether `handleQuery` would forward a fast-shaped query (`scanQuery`), read from its bytes:
   * class IN or ANY, not a transfer or OPT, a name within 255 bytes outside every zone of ours;
   * else the query takes the decoding path. A miss no longer decodes the whole
   * query (~1.2 KB and ~20 us a miss, bench/dns-miss-alloc.ts) to learn it is not ours.
   */
  #routable(msg: Buffer, fq: FastQuery): boolean {
    const nameEnd = fq.qEnd - 4;
    // Within NAME_MAX, scanQuery's labels (no pointers, none over 63) always decode (`#question`).
    if (nameEnd - HEADER_SIZE > NAME_MAX) return false;
    const type = (msg[nameEnd]! << 8) | msg[nameEnd + 1]!;
    const klass = (msg[nameEnd + 2]! << 8) | msg[nameEnd + 3]!;
    if ((klass !== CLASS_IN && klass !== CLASS_ANY) || type === T.AXFR || type === T.IXFR || type === T.OPT) return false;
    return !this.#zones.holdsWire(msg, HEADER_SIZE, nameEnd);
  }

  /** The question of a query `#routable` accepted, decoded (for a forwarder without `udp`). */
  #question(msg: Buffer, fq: FastQuery): Question | null {
    const nameEnd = fq.qEnd - 4;
    const name = readName(msg, HEADER_SIZE, nameEnd);
    return name === null ? null : { name: name.name, type: (msg[nameEnd]! << 8) | msg[nameEnd + 1]!, class: (msg[nameEnd + 2]! << 8) | msg[nameEnd + 3]! };
  }

  /** The general path: decode, answer, maybe prebuild for next time, maybe forward; false when the query is dropped (`send` is never called for it). */
  #slow(msg: Buffer, address: string, transport: Transport, send: Reply, fastShape: boolean, forward: ForwardQuery): boolean {
    const ctx = { zones: this.#zones, nodeName: this.#nodeName, forwardAllowed: this.forwardAllowed(address), transferAllowed: this.transferAllowed(address), transport };
    const d = handleQuery(msg, ctx);
    switch (d.kind) {
      case 'drop':
        this.counters.inc(`dns.dropped.${d.reason}`);
        this.#debug(d.reason, address);
        return false;
      case 'reply':
        if (d.reason !== undefined) {
          this.counters.inc(`dns.refused_or_error.${d.reason}`);
          if (d.reason !== 'not-ours') this.#debug(d.reason, address);
        }
        if (d.cacheable !== undefined && fastShape) this.#fast.add(msg, this.#fq, prebuiltAnswer(d.cacheable.query, d.cacheable.answer), d.rcode);
        send(d.bytes);
        return true;
      case 'forward': {
        // The fast path looked this question up in the forwarding cache just now (UDP; TCP below).
        // A CNAME chain's target is another question than the query's: asked by its decoded form.
        if (d.chain !== undefined) { forward(d.question, d.query, transport, send, undefined, d.chain); return true; }
        const fq = this.#fq;
        const raw = fastShape && transport === 'udp' ? { msg, fq: { qEnd: fq.qEnd, ednsLimit: fq.ednsLimit, hash: fq.hash } } : undefined;
        forward(d.question, d.query, transport, send, raw);
        return true;
      }
      case 'transfer':
        this.counters.inc('dns.transfers');
        this.#log.info({ event: 'dns.transfer', source: address, zone: d.zone, serial: this.#zones.serial, records: d.records, messages: d.messages.length },
          `zone ${d.zone} (serial ${this.#zones.serial}) transferred to ${address}: ${d.records} records in ${d.messages.length} messages`);
        d.messages.forEach((m, i) => send(m, i < d.messages.length - 1));
        return true;
    }
  }

  #debug(reason: string, address: string): void {
    if (this.#limiter.allow(reason, this.#clock.monotonicMs())) {
      this.#log.debug({ event: 'dns.bad_query', reason, source: address }, `query from ${address} refused or dropped: ${reason}`);
    }
  }
}

/** Whether `address` (IPv4, or IPv4-mapped IPv6) is inside one of `prefixes`; answers cached per address. */
function inPrefixes(address: string, prefixes: DnsConfig['subnets'], cache: Map<string, boolean>): boolean {
  let v = cache.get(address);
  if (v === undefined) {
    const ip = parseIpv4(address.startsWith('::ffff:') ? address.slice(7) : address);
    v = ip !== null && prefixes.some((c) => cidrContains(c, ip));
    if (cache.size >= ALLOW_CACHE_MAX) cache.clear();
    cache.set(address, v);
  }
  return v;
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
