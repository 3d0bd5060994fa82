import type dgram from 'node:dgram';
import net from 'node:net';
import type { Upstream } from './config.js';
import type { Clock } from '../../lib/clock.js';
import type { Random } from '../../lib/random.js';
import type { Counters } from '../../lib/counters.js';
import { asciiLower, encodeName, nameKey, parentName, readName } from './name.js';
import { questionHash, type ForwardCache, type CachedAnswer, type CacheEntry } from './cache.js';
import type { ForwardQuery, UdpReplier } from './answerer.js';
import { forwardedReply, type Transport } from './handler.js';
import { HEADER_SIZE, RCODE, UDP_PAYLOAD_MAX, decodeMessage, scanMessage, type DnsMessage, type DnsRecord, type MessageScan, type Question } from './wire.js';
import { rcodeReply, type FastQuery } from './fast.js';
import type { ReplySink } from './fast-send.js';
import { UpstreamUdp, type UpstreamWaiter } from './upstream-udp.js';
import type { MissTrace } from './miss-trace.js';
import { LogLimiter, type Logger } from '../../lib/log.js';

// Forwarding to upstream resolvers (shell: owns sockets and timers). Each upstream query goes out
// with a random ID from one of a few sockets on kernel-chosen ports, each closed after a few dozen
// queries (upstream-udp.ts; RFC 5452); a reply counts only if
// it comes from the upstream's address and port, carries that ID, is a response, and repeats our
// question. A truncated reply is asked again over TCP. SERVFAIL, REFUSED or silence moves on to the
// next upstream; when every upstream failed the client gets SERVFAIL, within `timeoutMs` in all.
// Identical questions in flight share one upstream query.

export interface ForwarderOptions {
  upstreams: readonly Upstream[];
  /** Conditional forwarding: questions for `name` or below go to its upstreams (longest name wins). */
  domains?: ReadonlyArray<{ name: string; upstreams: readonly Upstream[] }>;
  timeoutMs: number;
  /** The answering process's cache: hits off the fast path are served from it, upstream answers go in. */
  cache: ForwardCache;
  clock: Clock;
  random: Random;
  counters: Counters;
  /**
   * Bound on client queries waiting for an upstream answer at once in this process (its part of
   * `forward.maxInFlight`: `inFlightShares`; `setMaxInFlight` moves it); past it a query gets
   * SERVFAIL at once, counted as `dns.forward.overload` and said (`log`) at most once per 10 s.
   */
  maxInFlight: number;
  /** Where a query past `maxInFlight` is said (warn `dns.forward_overload`, at most once per 10 s). */
  log?: Logger;
  /**
   * Called with every answer the cache took (the daemon sends it to the workers, a worker to the
   * daemon: `wireOf` it only when it is passed on, mostly it is not; SHARED_ENTRIES_PER_SECOND).
   */
  onCached?: (entry: CacheEntry) => void;
  /**
   * Whether this process is behind on its queries (`DnsAnswerer.backlogged`): a new miss then gets SERVFAIL
   * at once, counted as `dns.forward.busy`, rather than adding an upstream round trip's work to a
   * queue that is already growing. Questions already in flight are still joined.
   */
  busy?: () => boolean;
  /** Where each miss's time went, for bench:dns (miss-trace.ts; null or absent: not traced). */
  trace?: MissTrace | null;
}

/** An upstream's answer as the askers get it, and the cache entry it was stored as (null: not cached). */
export interface Resolved extends CachedAnswer {
  /**
   * Read it only in the callback that delivers the answer: an entry the cache removes later holds
   * another answer once reused (cache.ts), so after an await it may no longer be this one.
   */
  entry: CacheEntry | null;
}

/** A query as it arrived, when it has the fast path's shape (one uncompressed question). */
export interface RawQuery {
  msg: Uint8Array;
  /** Scanned by `scanQuery` (a copy: the answerer reuses its own). */
  fq: FastQuery;
}

/** An upstream's reply that matches our query: its bytes and their scan (records decoded only when asked). */
interface UpstreamReply {
  bytes: Uint8Array;
  scan: MessageScan;
}

/**
 * An upstream's answer as `resolve` gives it: the askers of a cached answer are answered from the
 * entry's bytes, so the records are decoded only for an asker off the fast path or an answer that
 * was not cached (a miss decoded nothing but its question: a decode per miss was a fifth of the
 * worker's allocations, bench:dns miss runs).
 */
class UpstreamAnswer implements Resolved {
  rcode = 0;
  entry: CacheEntry | null = null;
  #bytes: Uint8Array = NO_BYTES;
  #records: CachedAnswer | null = null;

  constructor(reply: UpstreamReply | null) {
    if (reply !== null) this.reset(reply);
  }

  /** Makes this the answer of `reply` (the forwarder's reused one: see `#answered`). */
  reset(reply: UpstreamReply): this {
    this.rcode = reply.scan.rcode;
    this.#bytes = reply.bytes;
    this.#records = null;
    this.entry = null;
    return this;
  }

  /** Forgets the reply's bytes (Node's receive buffer is not kept past its answer). */
  forget(): void {
    this.#bytes = NO_BYTES;
    this.#records = null;
    this.entry = null;
  }

  get answers(): DnsRecord[] { return this.#decoded().answers; }
  get authority(): DnsRecord[] { return this.#decoded().authority; }
  get additional(): DnsRecord[] { return this.#decoded().additional; }

  #decoded(): CachedAnswer {
    if (this.#records === null) {
      // The scan accepted these bytes, so the decoder does too (wire.test.ts); empty otherwise.
      const d = decodeMessage(this.#bytes);
      this.#records = d.ok ? d.value : { rcode: this.rcode, answers: [], authority: [], additional: [] };
    }
    return this.#records;
  }
}

/** Bytes of a flight's own copy of its first asker's query (a plain query takes ~30-80; a longer one gets a buffer for the flight). */
const FLIGHT_QUERY_BYTES = 320;
/** Flights kept for reuse at most (a process holds at most its share of `maxInFlight` at once). */
const FLIGHTS_FREE_MAX = 256;
const NO_UPSTREAMS: readonly Upstream[] = [];
const NO_BYTES = new Uint8Array(0);
/** Our OPT record (root owner, TYPE, size, extended RCODE, version, flags, RDLENGTH 0). */
const OPT_SIZE = 11;

/**
 * The reply to a query from its bytes (`length` of them, scanned as `fq`) and the answer it gets
 * (`decoded`: the query decoded, when the caller already has it; `sink`: where a UDP reply will be
 * sent, whose `buffer` a reply from a cache entry is written into, as a hit's is); see `forwardWith`.
 */
export type MakeReply = (msg: Uint8Array, length: number, fq: FastQuery, answer: Resolved, transport: Transport, decoded?: DnsMessage | null, sink?: ReplySink | null) => Uint8Array;

/**
 * One question in flight upstream: its askers and where its attempts stand. The upstream sockets
 * route replies to it and the forwarder's one deadline list times it out. A flight holds what a
 * miss needs while it waits, so the miss makes no other object that lives as long: a copy of the
 * first asker's query (not Node's receive buffer), the query's scan (it is the `FastQuery`), the
 * question (it is the `Question`; the name is decoded only when something asks for it) and, for a
 * query routed from its bytes over UDP, where its answer goes (no closure). Flights are reused: a
 * miss in flight when the worker's young generation is scavenged used to promote ~1.4 KB of such
 * objects to the old generation (bench/dns-miss-alloc.ts, services/dns/README.md).
 */
class Flight implements UpstreamWaiter, FastQuery, Question {
  upstreamId = 0;
  upstreamSocket: object | null = null;
  /** The scan of `query` (`FastQuery`) and its question's type and class. */
  qEnd = 0;
  ednsLimit = 0;
  hash = 0;
  type = 0;
  class = 0;
  /** The first asker's query (for a decoded one: a zeroed header and its question), `length` bytes of it. */
  query: Uint8Array;
  length = 0;
  readonly #own = new Uint8Array(FLIGHT_QUERY_BYTES);
  #name: string | null = null;
  ups: readonly Upstream[] = NO_UPSTREAMS;
  preferred = 0;
  started = 0;
  attempts = 0;
  perAttempt = 0;
  /** Attempts made so far, and the index in `ups` of the one under way. */
  tries = 0;
  index = 0;
  /** When the attempt under way was sent (for dns.forward.upstream_wait_us), and its reply read. */
  sentMs = 0;
  replyMs = 0;
  /** Place in the forwarder's deadline list (earliest first) while a UDP attempt waits. */
  deadline = 0;
  timed = false;
  prev: Flight | null = null;
  next: Flight | null = null;
  /** The next flight of the same bucket in the forwarder's in-flight table. */
  chain: Flight | null = null;
  /** Client queries waiting for this answer (joined ones included). */
  askers = 0;
  /** The first asker when it was routed from its bytes over UDP: its reply is made by `make` and sent through `to`. */
  to: UdpReplier | null = null;
  out: ReplySink | null = null;
  port = 0;
  address = '';
  make: MakeReply | null = null;
  /** The first asker otherwise (null: a UDP one above). */
  done: ((answer: Resolved) => void) | null = null;
  /** Askers that joined (null: none yet). */
  more: Array<(answer: Resolved) => void> | null = null;

  constructor(readonly onReply: (f: Flight, msg: Buffer, rinfo: dgram.RemoteInfo) => void) {
    this.query = this.#own;
  }

  /** The question's name, decoded from `query` the first time it is asked for (domains, the trace, the general cache path). */
  get name(): string {
    // The answerer routed the query only if this decodes (answerer.ts `#routable`).
    if (this.#name === null) this.#name = readName(this.query, HEADER_SIZE, this.qEnd - 4)?.name ?? '';
    return this.#name;
  }

  /** Takes `msg` (scanned as `fq`) as the flight's query: copied, so the caller's buffer is not kept. `name`: its name when already decoded. */
  setQuery(msg: Uint8Array, fq: FastQuery, name: string | null): void {
    const length = msg.length;
    this.query = length <= FLIGHT_QUERY_BYTES ? this.#own : new Uint8Array(length);
    this.query.set(msg);
    this.length = length;
    this.qEnd = fq.qEnd;
    this.ednsLimit = fq.ednsLimit;
    this.hash = fq.hash;
    const at = fq.qEnd - 4;
    this.type = (msg[at]! << 8) | msg[at + 1]!;
    this.class = (msg[at + 2]! << 8) | msg[at + 3]!;
    this.#name = name;
  }

  /** Forgets its askers and query, for reuse. */
  clear(): void {
    this.to = null; this.out = null; this.make = null; this.address = '';
    this.done = null; this.more = null;
    this.query = this.#own; this.#name = null;
    this.ups = NO_UPSTREAMS; this.chain = null;
  }

  onUpstreamReply(msg: Buffer, rinfo: dgram.RemoteInfo): void { this.onReply(this, msg, rinfo); }
}

export class Forwarder {
  readonly cache: ForwardCache;
  #o: ForwarderOptions;
  /**
   * Questions in flight upstream, by their hash (`FastQuery.hash`), chained per bucket; a fixed
   * array rather than a Map keyed by a string made per miss. Buckets: twice the cap, within 16-4096.
   */
  #table: Array<Flight | null>;
  #mask: number;
  /** Flights done with, for the next misses. */
  #free: Flight[] = [];
  /** Client queries waiting for an upstream answer (joined ones included). */
  #waiting = 0;
  /** TCP connections to upstreams (UDP queries share `#upstreamUdp`'s sockets). */
  #sockets = new Set<net.Socket>();
  #upstreamUdp: UpstreamUdp;
  #closed = false;
  /** Per upstream list: the index of the upstream that answered last, asked first next time. */
  #preferred = new Map<readonly Upstream[], number>();
  /** Domain key -> its upstreams. */
  #domains: Map<string, readonly Upstream[]>;
  /**
   * Flights waiting on a UDP attempt, earliest deadline first (attempts mostly end in send order,
   * so an insertion walks back from the tail a step or none), and the one timer for all of them,
   * armed for the earliest deadline; an answered flight leaves the list at once.
   */
  #head: Flight | null = null;
  #tail: Flight | null = null;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = 0;
  /** This process's bound on client queries waiting upstream (`maxInFlight`, moved by `setMaxInFlight`). */
  #limit: number;
  /** Once per 10 s: the overload warning. */
  #limiter = new LogLimiter(10_000, 1);
  readonly #onReply = (f: Flight, msg: Buffer, rinfo: dgram.RemoteInfo): void => this.#udpReply(f, msg, rinfo);
  /**
   * An upstream UDP reply's scan, the reply and, for a flight whose one asker is answered through
   * `make` (a UDP query routed from its bytes), its answer: one of each for every reply, each used
   * up before the next datagram is read (promise askers and joined ones get an answer of their own).
   */
  readonly #scan: MessageScan = { start: [], type: [], ttlAt: [], rcode: 0 };
  readonly #reply: UpstreamReply = { bytes: NO_BYTES, scan: this.#scan };
  readonly #answer = new UpstreamAnswer(null);
  readonly #expire = (): void => this.#expired();

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.#limit = options.maxInFlight;
    this.cache = options.cache;
    this.#upstreamUdp = new UpstreamUdp({ random: options.random, onUnmatched: () => options.counters.inc('dns.forward.mismatched') });
    this.#domains = new Map((options.domains ?? []).map((d) => [nameKey(d.name), d.upstreams]));
    let buckets = 16;
    while (buckets < 2 * options.maxInFlight && buckets < 4096) buckets *= 2;
    this.#table = new Array<Flight | null>(buckets).fill(null);
    this.#mask = buckets - 1;
  }

  /** The upstreams for a name: its longest configured domain's, else the default ones. */
  upstreamsFor(name: string): readonly Upstream[] {
    if (this.#domains.size > 0) {
      for (let n: string | null = nameKey(name); n !== null; n = parentName(n)) {
        const ups = this.#domains.get(n);
        if (ups !== undefined) return ups;
      }
    }
    return this.#o.upstreams;
  }

  /** Client queries waiting for an upstream answer now (at most `maxInFlight`). */
  get inFlight(): number { return this.#waiting; }

  /** This process's bound on `inFlight` now. */
  get maxInFlight(): number { return this.#limit; }

  /**
   * Moves the bound (the daemon's part grows while a worker holds none: `inFlightShares`). Queries
   * already waiting above a lowered bound are answered as they come; no new one waits until the
   * count is back under it.
   */
  setMaxInFlight(n: number): void {
    this.#limit = Math.max(1, n);
  }

  /** UDP attempts waiting for a reply now (each on the one deadline list). */
  get attemptsWaiting(): number {
    let n = 0;
    for (let f = this.#head; f !== null; f = f.next) n++;
    return n;
  }

  /**
   * Answers from the cache or the upstreams; never rejects (failures are SERVFAIL). `raw`: the query
   * as it arrived, already looked up in this cache by the fast path (so not again here); its
   * question bytes go upstream as they are.
   */
  resolve(q: Question, raw?: RawQuery): Promise<Resolved> | Resolved {
    let now = null as Resolved | null;
    let later: ((answer: Resolved) => void) | null = null;
    this.resolveTo(q, raw, (answer) => { if (later === null) now = answer; else later(answer); });
    return now ?? new Promise<Resolved>((resolve) => { later = resolve; });
  }

  /** `resolve` for the answering path: `done` gets the answer (at once when there is one now). */
  resolveTo(q: Question, raw: RawQuery | undefined, done: (answer: Resolved) => void): void {
    if (raw === undefined) {
      const cached = this.cache.get(q, this.#o.clock.monotonicMs());
      if (cached !== null) {
        this.#o.counters.inc('dns.forward.cache_hit');
        done({ ...cached, entry: null });
        return;
      }
    }
    if (this.#full()) { done(servfail()); return; }
    const query = raw ?? questionQuery(q);
    const flight = this.#find(query.msg, query.fq);
    if (flight !== null) { this.#join(flight, done); return; }
    if (this.#busy()) { done(servfail()); return; }
    const f = this.#flight(query.msg, query.fq, q.name);
    f.done = done;
    this.#start(f);
  }

  /**
   * A UDP query routed from its bytes (`msg`, scanned as `fq`; valid only during the call) that
   * missed the cache: the answer goes out as `to.sendUdp(out, make(...), port, address)`. The asker
   * is folded into the flight (no closure, no object of its own); one that joins a flight already
   * under way gets a copy of its query and a callback, as `resolveTo`'s askers do.
   */
  resolveUdp(msg: Uint8Array, fq: FastQuery, to: UdpReplier, out: ReplySink, port: number, address: string, make: MakeReply): void {
    if (this.#full()) { to.sendUdp(out, make(msg, msg.length, fq, servfail(), 'udp'), port, address); return; }
    const flight = this.#find(msg, fq);
    if (flight !== null) {
      const copy = Uint8Array.from(msg);
      const scan: FastQuery = { qEnd: fq.qEnd, ednsLimit: fq.ednsLimit, hash: fq.hash };
      this.#join(flight, (a) => to.sendUdp(out, make(copy, copy.length, scan, a, 'udp'), port, address, true));
      return;
    }
    if (this.#busy()) { to.sendUdp(out, make(msg, msg.length, fq, servfail(), 'udp'), port, address); return; }
    const f = this.#flight(msg, fq, null);
    f.to = to; f.out = out; f.port = port; f.address = address; f.make = make;
    this.#start(f);
  }

  /** Whether a query cannot wait now (closed, or `maxInFlight` waiting already): counted, traced, for SERVFAIL at once. */
  #full(): boolean {
    if (!this.#closed && this.#waiting < this.#limit) return false;
    this.#o.counters.inc('dns.forward.overload');
    const now = this.#o.clock.monotonicMs();
    this.#o.trace?.shed(now);
    if (!this.#closed && this.#o.log !== undefined && this.#limiter.allow('overload', now)) {
      // dnsmasq says the same ("Maximum number of concurrent DNS queries reached").
      this.#o.log.warn({ event: 'dns.forward_overload', waiting: this.#waiting, limit: this.#limit },
        `${this.#waiting} queries wait for upstream answers (this process's part of forward.maxInFlight): new misses get SERVFAIL; check that the upstreams answer, or raise forward.maxInFlight`);
    }
    return true;
  }

  /** Whether a new miss is shed because the process is backlogged (see `busy`): counted, traced. */
  #busy(): boolean {
    if (this.#o.busy?.() !== true) return false;
    this.#o.counters.inc('dns.forward.busy');
    this.#o.trace?.shed(this.#o.clock.monotonicMs());
    return true;
  }

  /** The flight asking the question of `msg` (scanned as `fq`; letters of the name in any case), or null. */
  #find(msg: Uint8Array, fq: FastQuery): Flight | null {
    for (let f: Flight | null = this.#table[fq.hash & this.#mask] ?? null; f !== null; f = f.chain) {
      if (f.hash === fq.hash && f.qEnd === fq.qEnd && sameQuestion(msg, HEADER_SIZE, f.query, HEADER_SIZE, fq.qEnd - HEADER_SIZE)) return f;
    }
    return null;
  }

  #join(f: Flight, done: (answer: Resolved) => void): void {
    this.#waiting++;
    f.askers++;
    (f.more ??= []).push(done);
  }

  /** A flight (reused when one is free) for a new miss of the question in `msg`, counted. */
  #flight(msg: Uint8Array, fq: FastQuery, name: string | null): Flight {
    this.#o.counters.inc('dns.forward.cache_miss');
    const f = this.#free.pop() ?? new Flight(this.#onReply);
    f.setQuery(msg, fq, name);
    const ups = this.#domains.size === 0 ? this.#o.upstreams : this.upstreamsFor(f.name);
    f.ups = ups;
    f.preferred = this.#preferred.get(ups) ?? 0;
    f.started = this.#o.clock.monotonicMs();
    f.attempts = Math.max(ups.length, 2);
    f.perAttempt = Math.max(100, Math.floor(this.#o.timeoutMs / f.attempts));
    f.tries = 0;
    f.index = 0;
    f.askers = 1;
    return f;
  }

  /** `f` into the in-flight table, its asker counted, its first attempt made. */
  #start(f: Flight): void {
    // The asker is in the flight before the query starts: a send that fails at once answers it now.
    const bucket = f.hash & this.#mask;
    f.chain = this.#table[bucket] ?? null;
    this.#table[bucket] = f;
    this.#waiting++;
    this.#attempt(f);
  }

  #remove(f: Flight): void {
    const bucket = f.hash & this.#mask;
    if (this.#table[bucket] === f) { this.#table[bucket] = f.chain; return; }
    for (let p: Flight | null = this.#table[bucket] ?? null; p !== null; p = p.chain) if (p.chain === f) { p.chain = f.chain; return; }
  }

  /** The next upstream for `f`, or SERVFAIL for its askers when attempts or time ran out. */
  #attempt(f: Flight): void {
    const now = this.#o.clock.monotonicMs();
    const left = this.#o.timeoutMs - (now - f.started);
    if (f.tries >= f.attempts || left <= 0 || this.#closed) {
      this.#o.counters.inc('dns.forward.servfail');
      this.#answered(f, null);
      return;
    }
    f.index = (f.preferred + f.tries) % f.ups.length;
    f.tries++;
    this.#o.counters.inc('dns.forward.upstream_query');
    const up = f.ups[f.index]!;
    f.sentMs = now;
    // Upstream addresses are IP literals (config.ts): a colon means IPv6.
    this.#upstreamUdp.take(up.address.includes(':') ? 6 : 4, f);
    this.#schedule(f, now + Math.min(f.perAttempt, left));
    // A send that fails later (only dgram's fallback path reports one) ends in the attempt's timeout.
    const bytes = this.#upstreamUdp.buffer(f, f.qEnd + OPT_SIZE);
    queryInto(bytes, f.upstreamId, f.query, HEADER_SIZE, f.qEnd);
    if (!this.#upstreamUdp.send(f, bytes, up.port, up.address)) this.#attemptEnded(f, null);
  }

  /** A datagram with `f`'s ID on its socket: counted and ignored unless it answers `f`'s query. */
  #udpReply(f: Flight, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const up = f.ups[f.index]!;
    if (rinfo.address !== up.address || rinfo.port !== up.port) { this.#o.counters.inc('dns.forward.spoofed'); return; }
    const scan = checkReply(msg, f.upstreamId, f, f.query, HEADER_SIZE, f.qEnd, this.#scan);
    if (scan === null) { this.#o.counters.inc('dns.forward.mismatched'); return; }
    // Where a miss's time goes: the upstream's part (send to reply read, this process's wake-up
    // included), summed in microseconds with the replies counted, so processes add up.
    f.replyMs = this.#o.clock.monotonicMs();
    this.#o.counters.inc('dns.forward.upstream_replies');
    this.#o.counters.inc('dns.forward.upstream_wait_us', Math.round((f.replyMs - f.sentMs) * 1000));
    const reply = this.#reply;
    reply.bytes = msg;
    this.#attemptEnded(f, reply);
    reply.bytes = NO_BYTES;
  }

  /** `f`'s UDP attempt is over (null: timed out or failed): TC goes on over TCP, else on to `#replied`. */
  #attemptEnded(f: Flight, reply: UpstreamReply | null): void {
    this.#upstreamUdp.release(f);
    this.#unschedule(f);
    if (reply !== null && (reply.bytes[2]! & 0x02) !== 0) { // TC
      const tcpLeft = this.#o.timeoutMs - (this.#o.clock.monotonicMs() - f.started);
      if (tcpLeft > 0) { void this.#tcp(f.ups[f.index]!, f, tcpLeft).then((r) => this.#replied(f, r)); return; }
      reply = null;
    }
    this.#replied(f, reply);
  }

  /** An attempt's reply (null: none): a good one (NOERROR, NXDOMAIN) answers `f`, else the next attempt. */
  #replied(f: Flight, reply: UpstreamReply | null): void {
    if (reply === null) { this.#o.counters.inc('dns.forward.upstream_timeout'); this.#attempt(f); return; }
    if (reply.scan.rcode !== RCODE.NOERROR && reply.scan.rcode !== RCODE.NXDOMAIN) { this.#o.counters.inc('dns.forward.upstream_error'); this.#attempt(f); return; }
    this.#preferred.set(f.ups, f.index);
    this.#answered(f, reply);
  }

  /** The upstreams' reply to `f`'s question (null: none good): cached, then every asker told; `f` is free again. */
  #answered(f: Flight, reply: UpstreamReply | null): void {
    this.#remove(f);
    this.#waiting -= f.askers;
    let answer: Resolved;
    if (reply === null) {
      answer = servfail();
    } else {
      const a = f.done === null && f.more === null ? this.#answer.reset(reply) : new UpstreamAnswer(reply);
      if (!this.#closed) {
        a.entry = this.cache.store(f, reply.bytes, a, this.#o.clock.monotonicMs(), reply.scan);
        if (a.entry !== null) this.#o.onCached?.(a.entry);
      }
      answer = a;
    }
    // One asker's reply must not cost the others theirs.
    if (f.to !== null) {
      try {
        f.to.sendUdp(f.out!, f.make!(f.query, f.length, f, answer, 'udp', null, f.out), f.port, f.address, true);
      } catch {
        this.#o.counters.inc('dns.forward.answer_failed');
      }
    }
    if (f.done !== null) this.#tell(f.done, answer);
    if (f.more !== null) for (const done of f.more) this.#tell(done, answer);
    if (reply !== null) this.#o.trace?.miss(f.name, f.started, f.sentMs, f.replyMs, this.#o.clock.monotonicMs());
    if (answer === this.#answer) this.#answer.forget();
    f.clear();
    if (this.#free.length < FLIGHTS_FREE_MAX) this.#free.push(f);
  }

  #tell(done: (answer: Resolved) => void, answer: Resolved): void {
    try {
      done(answer);
    } catch {
      this.#o.counters.inc('dns.forward.answer_failed');
    }
  }

  /** Puts `f` on the deadline list at `at`, arming the timer if it is now the earliest. */
  #schedule(f: Flight, at: number): void {
    f.deadline = at;
    f.timed = true;
    let after = this.#tail;
    while (after !== null && after.deadline > at) after = after.prev;
    f.prev = after;
    f.next = after === null ? this.#head : after.next;
    if (f.next !== null) f.next.prev = f; else this.#tail = f;
    if (after !== null) after.next = f; else this.#head = f;
    if (this.#timer === null || at < this.#timerAt) this.#arm(at);
  }

  #unschedule(f: Flight): void {
    if (!f.timed) return;
    f.timed = false;
    if (f.prev !== null) f.prev.next = f.next; else this.#head = f.next;
    if (f.next !== null) f.next.prev = f.prev; else this.#tail = f.prev;
    f.prev = f.next = null;
  }

  #arm(at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#expire, Math.max(1, Math.ceil(at - this.#o.clock.monotonicMs())));
  }

  /** The timer: every attempt past its deadline has timed out; then armed for the next deadline. */
  #expired(): void {
    this.#timer = null;
    const now = this.#o.clock.monotonicMs();
    for (let f = this.#head; f !== null && f.deadline <= now; f = this.#head) this.#attemptEnded(f, null);
    if (this.#head !== null && this.#timer === null) this.#arm(this.#head.deadline);
  }

  #tcp(up: Upstream, f: Flight, timeoutMs: number): Promise<UpstreamReply | null> {
    return new Promise((resolve) => {
      const id = this.#o.random.int(65536);
      const bytes = queryBytes(id, f.query, HEADER_SIZE, f.qEnd);
      const socket = net.connect({ host: up.address, port: up.port });
      this.#sockets.add(socket);
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (r: UpstreamReply | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#sockets.delete(socket);
        socket.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      socket.on('error', () => finish(null));
      socket.on('close', () => finish(null));
      socket.on('connect', () => {
        const frame = Buffer.alloc(2 + bytes.length);
        frame.writeUInt16BE(bytes.length, 0);
        frame.set(bytes, 2);
        socket.write(frame);
      });
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length > 65537) { finish(null); return; }
        if (buf.length < 2) return;
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) return;
        const bytes = buf.subarray(2, 2 + n);
        const scan = checkReply(bytes, id, f, f.query, HEADER_SIZE, f.qEnd);
        finish(scan === null ? null : { bytes, scan });
      });
    });
  }

  close(): void {
    this.#closed = true;
    // Attempts still waiting end now: their askers get SERVFAIL (#attempt sees the close).
    if (this.#timer !== null) { clearTimeout(this.#timer); this.#timer = null; }
    for (let f = this.#head; f !== null; f = this.#head) this.#attemptEnded(f, null);
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    this.#upstreamUdp.close();
  }
}

/** The part of `forward.maxInFlight` the daemon keeps for itself while workers read UDP (its TCP clients): an eighth. */
export const DAEMON_IN_FLIGHT_PART = 8;

/**
 * How the whole daemon's bound on client queries waiting upstream (`forward.maxInFlight`) is
 * shared: each of `workers` UDP worker processes (which read every UDP query while they run) may
 * hold `worker`; the daemon holds `daemon` while every worker holds its part (TCP, and UDP while it
 * stands in for a worker that is starting or silent), and the part of every worker that holds none
 * (not running, or not yet serving) on top: `daemonWith(holding)`. Together at most `maxInFlight`.
 * The old split, `maxInFlight / processes` each, gave a worker serving every UDP query half of it
 * and the daemon, which then reads none, the other half.
 */
export function inFlightShares(maxInFlight: number, workers: number): { worker: number; daemon: number; daemonWith: (holding: number) => number } {
  if (workers <= 0) return { worker: 0, daemon: maxInFlight, daemonWith: () => maxInFlight };
  const reserve = Math.max(1, Math.floor(maxInFlight / DAEMON_IN_FLIGHT_PART));
  const worker = Math.max(1, Math.floor((maxInFlight - reserve) / workers));
  const daemonWith = (holding: number): number => Math.max(1, maxInFlight - worker * Math.min(workers, Math.max(0, holding)));
  return { worker, daemon: daemonWith(workers), daemonWith };
}

/**
 * The answering process's forward step: the cache or the upstreams, then the reply for the asker,
 * made from the cached entry's bytes (or, for SERVFAIL, from the query's) when the query came with
 * its raw form (no encoding), else encoded from the records. Its `udp` takes a UDP query routed
 * from its bytes straight into a flight (`Forwarder.resolveUdp`).
 */
export function forwardWith(forwarder: Forwarder, nodeName: string, clock: Clock): ForwardQuery {
  const make: MakeReply = (msg, length, fq, a, transport, decoded = null, sink = null) => {
    if (a.entry !== null) {
      const cache = forwarder.cache, tcp = transport === 'tcp';
      if (sink === null) return cache.reply(msg, fq, a.entry, clock.monotonicMs(), tcp);
      // Written where it is sent from (a slot of the turn's batch): no buffer of its own, no copy.
      const out = sink.buffer(cache.replySize(fq, a.entry, tcp));
      cache.replyInto(out, msg, fq, a.entry, clock.monotonicMs(), tcp);
      return out;
    }
    if (a.rcode === RCODE.SERVFAIL) return rcodeReply(msg, fq, RCODE.SERVFAIL, true); // shed or failed: cheap
    // A query routed from its bytes is decoded only now, for an answer that was not cached.
    const d = decoded ?? decodedQuery(length === msg.length ? msg : msg.subarray(0, length));
    return d === null ? rcodeReply(msg, fq, RCODE.SERVFAIL, true) : forwardedReply(d, { nodeName, transport }, a.rcode, a.answers, a.authority, a.additional);
  };
  const forward: ForwardQuery = (q, query, transport, send, raw, chain) => {
    forwarder.resolveTo(q, raw, (a) => {
      send(raw !== undefined ? make(raw.msg, raw.msg.length, raw.fq, a, transport, query)
        : forwardedReply(query!, { nodeName, transport }, a.rcode, a.answers, a.authority, a.additional, chain));
    });
  };
  forward.udp = (msg, fq, to, out, port, address) => forwarder.resolveUdp(msg, fq, to, out, port, address, make);
  return forward;
}

function decodedQuery(msg: Uint8Array): DnsMessage | null {
  const d = decodeMessage(msg);
  return d.ok ? d.value : null;
}

/** A decoded query's question as a query routed from its bytes would carry it: a zeroed header, the name in the case asked, type, class. */
function questionQuery(q: Question): RawQuery {
  const name = encodeName(q.name);
  const msg = new Uint8Array(HEADER_SIZE + name.length + 4);
  msg.set(name, HEADER_SIZE);
  const at = HEADER_SIZE + name.length;
  msg[at] = q.type >> 8; msg[at + 1] = q.type & 0xff;
  msg[at + 2] = q.class >> 8; msg[at + 3] = q.class & 0xff;
  return { msg, fq: { qEnd: msg.length, ednsLimit: 0, hash: questionHash(msg.subarray(HEADER_SIZE), name.length) } };
}

/**
 * A query for the question in `bytes` from `start` to `end` (name, type, class as on the wire) with
 * ID `id`, RD and an OPT (RFC 6891).
 */
export function queryBytes(id: number, bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + end - start + OPT_SIZE);
  queryInto(out, id, bytes, start, end);
  return out;
}

/** `queryBytes` written into `out`, which is that many bytes long (a reused buffer: every byte of it is written). */
export function queryInto(out: Uint8Array, id: number, bytes: Uint8Array, start: number, end: number): void {
  const length = end - start;
  out[0] = id >> 8; out[1] = id & 0xff;
  out[2] = 0x01; // RD
  out[3] = 0;
  out[4] = 0; out[5] = 1; // QDCOUNT
  out[6] = 0; out[7] = 0; out[8] = 0; out[9] = 0;
  out[10] = 0; out[11] = 1; // ARCOUNT: the OPT
  for (let i = 0; i < length; i++) out[HEADER_SIZE + i] = bytes[start + i]!;
  const at = HEADER_SIZE + length;
  out[at] = 0; // root owner
  out[at + 1] = 0; out[at + 2] = 41; // TYPE OPT
  out[at + 3] = UDP_PAYLOAD_MAX >> 8; out[at + 4] = UDP_PAYLOAD_MAX & 0xff;
  for (let i = at + 5; i < at + OPT_SIZE; i++) out[i] = 0; // extended RCODE, version, flags, RDLENGTH
}

/**
 * The reply's scan if it answers our query: a message the decoder accepts, same ID, QR set, our
 * question (case-insensitive). `question` from `start` to `end`: the question's bytes as we sent
 * them, compared as bytes first; only when they differ (another case is fine, a compressed name
 * too) is the name decoded.
 */
export function checkReply(msg: Uint8Array, id: number, q: Question, question: Uint8Array | null = null, start = 0, end = question?.length ?? 0, into?: MessageScan): MessageScan | null {
  if (msg.length < HEADER_SIZE || (msg[2]! & 0x80) === 0 || ((msg[0]! << 8) | msg[1]!) !== id || msg[4] !== 0 || msg[5] !== 1) return null;
  const scan = scanMessage(msg, into);
  if (scan === null) return null;
  if (question !== null && HEADER_SIZE + end - start <= msg.length && sameQuestion(msg, HEADER_SIZE, question, start, end - start)) return scan;
  const name = readName(msg, HEADER_SIZE);
  if (name === null) return null;
  const at = name.end;
  if (((msg[at]! << 8) | msg[at + 1]!) !== q.type || ((msg[at + 2]! << 8) | msg[at + 3]!) !== q.class) return null;
  return asciiLower(name.name) === asciiLower(q.name) ? scan : null;
}

/**
 * Whether the `length` bytes of a question (name, type, class) at `aAt` in `a` and at `bAt` in `b`
 * are the same, letters of the name in any case (both within their arrays: the caller checks).
 */
function sameQuestion(a: Uint8Array, aAt: number, b: Uint8Array, bAt: number, length: number): boolean {
  const nameLength = length - 4;
  for (let i = 0; i < length; i++) {
    let x = a[aAt + i]!, y = b[bAt + i]!;
    if (i < nameLength) {
      if (x >= 0x41 && x <= 0x5a) x |= 0x20;
      if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    }
    if (x !== y) return false;
  }
  return true;
}

function servfail(): Resolved {
  return { rcode: RCODE.SERVFAIL, answers: [], authority: [], additional: [], entry: null };
}
