import type dgram from 'node:dgram';
import net from 'node:net';
import type { Upstream } from './config.js';
import type { Clock } from '../../lib/clock.js';
import type { Random } from '../../lib/random.js';
import type { Counters } from '../../lib/counters.js';
import { asciiLower, nameKey, parentName, readName } from './name.js';
import { wireOf, type ForwardCache, type CachedAnswer, type CacheEntry } from './cache.js';
import type { ForwardQuery } from './answerer.js';
import { forwardedReply } from './handler.js';
import { HEADER_SIZE, RCODE, UDP_PAYLOAD_MAX, decodeMessage, emptyMessage, encodeMessage, scanMessage, type DnsMessage, type DnsRecord, type MessageScan, type Question } from './wire.js';
import { rcodeReply, type FastQuery } from './fast.js';
import { UpstreamUdp, type UpstreamWaiter } from './upstream-udp.js';
import type { MissTrace } from './miss-trace.js';

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
   * Bound on client queries waiting for an upstream answer at once (dnsmasq's dns-forward-max);
   * past it a query gets SERVFAIL at once, counted as `dns.forward.overload`.
   */
  maxInFlight: number;
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
  readonly rcode: number;
  entry: CacheEntry | null = null;
  #bytes: Uint8Array;
  #records: CachedAnswer | null = null;

  constructor(reply: UpstreamReply) {
    this.rcode = reply.scan.rcode;
    this.#bytes = reply.bytes;
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

/**
 * One question in flight upstream: its askers and where its attempts stand. A plain object the
 * upstream sockets route replies to and the forwarder's one deadline list times out (a miss used to
 * allocate ~1.4 KB of closures, a slot object and a timer per attempt: bench/dns-miss-alloc.ts).
 */
class Flight implements UpstreamWaiter {
  upstreamId = 0;
  upstreamSocket: object | null = null;
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

  constructor(
    readonly key: string,
    readonly q: Question,
    /** The asker's question bytes, sent upstream as they are (null: encoded from `q`). */
    readonly question: Uint8Array | null,
    readonly ups: readonly Upstream[],
    readonly preferred: number,
    readonly started: number,
    readonly attempts: number,
    readonly perAttempt: number,
    readonly askers: Array<(answer: Resolved) => void>,
    readonly onReply: (f: Flight, msg: Buffer, rinfo: dgram.RemoteInfo) => void,
  ) {}

  onUpstreamReply(msg: Buffer, rinfo: dgram.RemoteInfo): void { this.onReply(this, msg, rinfo); }
}

export class Forwarder {
  readonly cache: ForwardCache;
  #o: ForwarderOptions;
  /** Question key -> the upstream query in flight for it and its askers. */
  #inFlight = new Map<string, Flight>();
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
  readonly #onReply = (f: Flight, msg: Buffer, rinfo: dgram.RemoteInfo): void => this.#udpReply(f, msg, rinfo);
  readonly #expire = (): void => this.#expired();

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.cache = options.cache;
    this.#upstreamUdp = new UpstreamUdp({ random: options.random, onUnmatched: () => options.counters.inc('dns.forward.mismatched') });
    this.#domains = new Map((options.domains ?? []).map((d) => [nameKey(d.name), d.upstreams]));
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

  static key(q: Question): string {
    return `${asciiLower(q.name)}|${q.type}|${q.class}`;
  }

  /** Client queries waiting for an upstream answer now (at most `maxInFlight`). */
  get inFlight(): number { return this.#waiting; }

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

  /**
   * `resolve` for the answering path: `done` gets the answer (at once when there is one now). A
   * miss makes no promise and no closure of its own: its askers wait in its flight (see Flight).
   */
  resolveTo(q: Question, raw: RawQuery | undefined, done: (answer: Resolved) => void): void {
    if (raw === undefined) {
      const cached = this.cache.get(q, this.#o.clock.monotonicMs());
      if (cached !== null) {
        this.#o.counters.inc('dns.forward.cache_hit');
        done({ ...cached, entry: null });
        return;
      }
    }
    if (this.#closed || this.#waiting >= this.#o.maxInFlight) {
      this.#o.counters.inc('dns.forward.overload');
      this.#o.trace?.shed(this.#o.clock.monotonicMs());
      done(servfail());
      return;
    }
    const key = Forwarder.key(q);
    const flight = this.#inFlight.get(key);
    if (flight !== undefined) {
      this.#waiting++;
      flight.askers.push(done);
      return;
    }
    if (this.#o.busy?.() === true) {
      this.#o.counters.inc('dns.forward.busy');
      this.#o.trace?.shed(this.#o.clock.monotonicMs());
      done(servfail());
      return;
    }
    this.#o.counters.inc('dns.forward.cache_miss');
    const ups = this.upstreamsFor(q.name);
    const attempts = Math.max(ups.length, 2);
    const f = new Flight(key, q, raw === undefined ? null : raw.msg.subarray(HEADER_SIZE, raw.fq.qEnd), ups, this.#preferred.get(ups) ?? 0,
      this.#o.clock.monotonicMs(), attempts, Math.max(100, Math.floor(this.#o.timeoutMs / attempts)), [done], this.#onReply);
    // The asker is in the flight before the query starts: a send that fails at once answers it now.
    this.#inFlight.set(key, f);
    this.#waiting++;
    this.#attempt(f);
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
    if (!this.#upstreamUdp.send(f, this.#query(f.q, f.question, f.upstreamId), up.port, up.address)) this.#attemptEnded(f, null);
  }

  /** A datagram with `f`'s ID on its socket: counted and ignored unless it answers `f`'s query. */
  #udpReply(f: Flight, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const up = f.ups[f.index]!;
    if (rinfo.address !== up.address || rinfo.port !== up.port) { this.#o.counters.inc('dns.forward.spoofed'); return; }
    const scan = checkReply(msg, f.upstreamId, f.q, f.question);
    if (scan === null) { this.#o.counters.inc('dns.forward.mismatched'); return; }
    // Where a miss's time goes: the upstream's part (send to reply read, this process's wake-up
    // included), summed in microseconds with the replies counted, so processes add up.
    f.replyMs = this.#o.clock.monotonicMs();
    this.#o.counters.inc('dns.forward.upstream_replies');
    this.#o.counters.inc('dns.forward.upstream_wait_us', Math.round((f.replyMs - f.sentMs) * 1000));
    this.#attemptEnded(f, { bytes: msg, scan });
  }

  /** `f`'s UDP attempt is over (null: timed out or failed): TC goes on over TCP, else on to `#replied`. */
  #attemptEnded(f: Flight, reply: UpstreamReply | null): void {
    this.#upstreamUdp.release(f);
    this.#unschedule(f);
    if (reply !== null && (reply.bytes[2]! & 0x02) !== 0) { // TC
      const tcpLeft = this.#o.timeoutMs - (this.#o.clock.monotonicMs() - f.started);
      if (tcpLeft > 0) { void this.#tcp(f.ups[f.index]!, f.q, f.question, tcpLeft).then((r) => this.#replied(f, r)); return; }
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

  /** The upstreams' reply to `f`'s question (null: none good): cached, then every asker told. */
  #answered(f: Flight, reply: UpstreamReply | null): void {
    this.#inFlight.delete(f.key);
    const askers = f.askers;
    this.#waiting -= askers.length;
    let answer: Resolved;
    if (reply === null) {
      answer = servfail();
    } else {
      const a = new UpstreamAnswer(reply);
      if (!this.#closed) {
        a.entry = this.cache.store(f.q, reply.bytes, a, this.#o.clock.monotonicMs(), reply.scan);
        if (a.entry !== null) this.#o.onCached?.(a.entry);
      }
      answer = a;
    }
    for (const done of askers) {
      try {
        done(answer);
      } catch {
        this.#o.counters.inc('dns.forward.answer_failed'); // one asker's reply must not cost the others theirs
      }
    }
    if (reply !== null) this.#o.trace?.miss(f.q.name, f.started, f.sentMs, f.replyMs, this.#o.clock.monotonicMs());
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

  /** Our query with ID `id`: RD, the question (the asker's bytes when we have them), an OPT. */
  #query(q: Question, question: Uint8Array | null, id: number): Uint8Array {
    if (question !== null) return queryBytes(id, question);
    const m = emptyMessage(id);
    m.rd = true;
    m.questions = [q];
    m.edns = { udpSize: UDP_PAYLOAD_MAX, extendedRcode: 0, version: 0, dnssecOk: false, options: [] };
    return encodeMessage(m).bytes;
  }

  #tcp(up: Upstream, q: Question, question: Uint8Array | null, timeoutMs: number): Promise<UpstreamReply | null> {
    return new Promise((resolve) => {
      const id = this.#o.random.int(65536);
      const bytes = this.#query(q, question, id);
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
        const scan = checkReply(bytes, id, q, question);
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

/**
 * Each of `processes` answering processes (the daemon and its UDP workers) forwards its own cache
 * misses and may keep this many waiting upstream: together at most `maxInFlight` (at least 1 each).
 */
export function inFlightShare(maxInFlight: number, processes: number): number {
  return Math.max(1, Math.floor(maxInFlight / Math.max(1, processes)));
}

/**
 * The answering process's forward step: the cache or the upstreams, then the reply for the asker,
 * made from the cached entry's bytes (or, for SERVFAIL, from the query's) when the query came with
 * its raw form (no encoding), else encoded from the records.
 */
export function forwardWith(forwarder: Forwarder, nodeName: string, clock: Clock): ForwardQuery {
  return (q, query, transport, send, raw) => {
    forwarder.resolveTo(q, raw, (a) => {
      if (raw !== undefined && a.entry !== null) send(forwarder.cache.reply(raw.msg, raw.fq, a.entry, clock.monotonicMs(), transport === 'tcp'));
      else if (raw !== undefined && a.rcode === RCODE.SERVFAIL) send(rcodeReply(raw.msg, raw.fq, RCODE.SERVFAIL, true)); // shed or failed: cheap
      else {
        // A query routed from its bytes is decoded only now, for an answer that was not cached.
        const d = query ?? decodedQuery(raw!.msg);
        send(d === null ? rcodeReply(raw!.msg, raw!.fq, RCODE.SERVFAIL, true) : forwardedReply(d, { nodeName, transport }, a.rcode, a.answers, a.authority, a.additional));
      }
    });
  };
}

function decodedQuery(msg: Uint8Array): DnsMessage | null {
  const d = decodeMessage(msg);
  return d.ok ? d.value : null;
}

/** A query for `question` (name, type, class as on the wire) with ID `id`, RD and an OPT (RFC 6891). */
export function queryBytes(id: number, question: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + question.length + 11);
  out[0] = id >> 8; out[1] = id & 0xff;
  out[2] = 0x01; // RD
  out[5] = 1; // QDCOUNT
  out[11] = 1; // ARCOUNT: the OPT
  out.set(question, HEADER_SIZE);
  const at = HEADER_SIZE + question.length;
  out[at + 2] = 41; // root owner, TYPE OPT
  out[at + 3] = UDP_PAYLOAD_MAX >> 8; out[at + 4] = UDP_PAYLOAD_MAX & 0xff;
  return out;
}

/**
 * The reply's scan if it answers our query: a message the decoder accepts, same ID, QR set, our
 * question (case-insensitive). `question`: the question's bytes as we sent them, compared as bytes
 * first; only when they differ (another case is fine, a compressed name too) is the name decoded.
 */
export function checkReply(msg: Uint8Array, id: number, q: Question, question: Uint8Array | null = null): MessageScan | null {
  if (msg.length < HEADER_SIZE || (msg[2]! & 0x80) === 0 || ((msg[0]! << 8) | msg[1]!) !== id || msg[4] !== 0 || msg[5] !== 1) return null;
  const scan = scanMessage(msg);
  if (scan === null) return null;
  if (question !== null && sameQuestionBytes(msg, question)) return scan;
  const name = readName(msg, HEADER_SIZE);
  if (name === null) return null;
  const at = name.end;
  if (((msg[at]! << 8) | msg[at + 1]!) !== q.type || ((msg[at + 2]! << 8) | msg[at + 3]!) !== q.class) return null;
  return asciiLower(name.name) === asciiLower(q.name) ? scan : null;
}

/** Whether the question at the start of `msg`'s body is `question`'s bytes, letters of the name in any case. */
function sameQuestionBytes(msg: Uint8Array, question: Uint8Array): boolean {
  if (HEADER_SIZE + question.length > msg.length) return false;
  const nameLength = question.length - 4;
  for (let i = 0; i < question.length; i++) {
    let a = msg[HEADER_SIZE + i]!, b = question[i]!;
    if (i < nameLength) {
      if (a >= 0x41 && a <= 0x5a) a |= 0x20;
      if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    }
    if (a !== b) return false;
  }
  return true;
}

function servfail(): Resolved {
  return { rcode: RCODE.SERVFAIL, answers: [], authority: [], additional: [], entry: null };
}
