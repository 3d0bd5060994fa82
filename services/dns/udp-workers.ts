import { fork, type ChildProcess } from 'node:child_process';
import type dgram from 'node:dgram';
import type { LevelWithSilent } from 'pino';
import type { Logger } from '../../lib/log.js';
import type { DnsConfig } from './config.js';
import type { ZoneSetInput } from './zone.js';
import type { WireEntry } from './cache.js';
import { dnsWorkerNodeFlagsFromEnv, type ProcessMemory } from '../../lib/memory.js';
import { FdShortage, isFdExhaustion } from '../../lib/fd-exhaustion.js';

// UDP worker processes: the processes that read the daemon's UDP sockets. Node 20 has no
// SO_REUSEPORT for dgram and worker threads cannot take a socket, but a child process can be handed
// the daemon's bound socket over IPC, and a reply sent from it leaves from the same address and
// port. Once a worker serves a socket the daemon stops reading it (`onReaders`, lib/udp-reading.ts):
// two processes reading one socket are both woken by every datagram, which cost a cache hit
// 116 us of CPU instead of 72-85 (services/dns/README.md). The daemon reads again while no worker
// serves the socket: before the first is ready, after one exits, or while one has been silent for
// `SILENT_MS` (hung: it reports every second).
//
// Workers hold no state of their own: the daemon sends them the zone inputs after every rebuild
// and hands them every socket it serves on; they send back counters and the queries that need
// forwarding. A worker that dies is started again (backing off to 30 s); the daemon serves alone
// meanwhile. TCP stays in the daemon.

export type ToWorker =
  /**
   * `processes`: the daemon and its workers (each worker forwards with its part of `maxInFlight`,
   * forward.ts `inFlightShares`);
   * `udpReaders`: the processes reading UDP at once, the workers (each enforces its share of the
   * rate limit; default `processes`).
   */
  | { t: 'init'; cfg: DnsConfig; nodeName: string; logLevel: LevelWithSilent; processes: number; udpReaders?: number; zones: ZoneSetInput }
  | { t: 'zones'; zones: ZoneSetInput }
  /** Sent with the bound dgram.Socket as the handle. */
  | { t: 'serve'; address: string }
  | { t: 'unserve'; address: string }
  /** New forwarding-cache entries: upstream answers the daemon or another worker cached. */
  | { t: 'fill'; entries: WireEntry[] };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'counters'; values: Record<string, number> }
  /** Every 5 s. */
  | { t: 'memory'; memory: ProcessMemory }
  /** Upstream answers this worker cached (at most one message per SHARE_MESSAGE_MS): the daemon keeps them and passes them on. */
  | { t: 'cached'; entries: WireEntry[] }
  /** Acknowledges serve / unserve (the worker reads that socket from now on / no longer). */
  | { t: 'serving' | 'unserved'; address: string };

export interface UdpWorkersOptions {
  count: number;
  log: Logger;
  /** The init message for a new worker: current config and zones. */
  init: () => Extract<ToWorker, { t: 'init' }>;
  /** The sockets a new worker must serve on. */
  sockets: () => ReadonlyMap<string, dgram.Socket>;
  /** An upstream answer a worker cached (already passed on to the other workers). */
  onCached: (entry: WireEntry) => void;
  /** The daemon's forwarding cache as it stands: a worker gets it when it (re)starts. */
  cached?: () => WireEntry[];
  /**
   * The number of workers reading `address` changed (`readers`): the daemon reads the socket itself
   * exactly while none does.
   */
  onReaders?: (address: string) => void;
  /** For tests: the worker module to run. */
  module?: URL;
  /** How long a silent worker may stay so before it is killed (HUNG_MS unless set: tests). */
  hungMs?: number;
  /** How long a new worker has to get ready at first (READY_TIMEOUT_MS unless set: tests); doubled after each one killed for it. */
  readyTimeoutMs?: number;
  /** The workers' V8 flags (default: LANHA_DNS_WORKER_NODE_FLAGS or DNS_WORKER_NODE_FLAGS, lib/memory.ts). */
  nodeFlags?: readonly string[];
}

/**
 * New forwarding-cache entries one process passes to the others, at most, per second. Passing one
 * costs both sides more than a cache miss's own work but for the upstream round trip (IPC write,
 * a wake-up, deserialising, storing): ~65 us of CPU per miss under a flood of misses, a fifth of
 * the miss. A LAN asks far fewer new names a second than this, so the caches stay alike; under a
 * flood of unique names (nothing to share worth sharing) each process keeps what it fetched.
 */
export const SHARED_ENTRIES_PER_SECOND = 200;

/**
 * Shared entries leave a process in at most one IPC message per this long: the first after a quiet
 * spell at once (a LAN's lone miss reaches the other processes as fast as before), the ones that
 * follow within it together at its end. Each message costs the receiver a wake-up, a read and a
 * deserialisation, and the sender a serialisation and a write, whatever it carries: sent one per
 * turn of the event loop, which under a flood of misses is one per entry (every miss has a turn of
 * its own at 4,000 a second), the `SHARED_ENTRIES_PER_SECOND` messages cost the daemon 9-10 us of
 * CPU per miss of the whole flood (bench:dns, services/dns/README.md). Two processes asking the
 * same new name within this long may both ask upstream (as before within the IPC's own delay).
 */
export const SHARE_MESSAGE_MS = 50;

/**
 * When a process's queued shared entries go out (`SHARE_MESSAGE_MS`): `queued()` after each entry
 * queued calls `flush` at once when none went out for `intervalMs`, else once that long after the
 * last flush (one timer). Time and the timer are passed in.
 */
export class ShareThrottle {
  #lastMs = Number.NEGATIVE_INFINITY;
  #timer: unknown = null;
  readonly #flush: () => void;
  readonly #intervalMs: number;
  readonly #nowMs: () => number;
  readonly #later: (run: () => void, ms: number) => unknown;
  readonly #cancel: (timer: unknown) => void;
  readonly #run = (): void => { this.#timer = null; this.#now(); };

  constructor(flush: () => void, o: {
    intervalMs?: number; nowMs?: () => number;
    later?: (run: () => void, ms: number) => unknown; cancel?: (timer: unknown) => void;
  } = {}) {
    this.#flush = flush;
    this.#intervalMs = o.intervalMs ?? SHARE_MESSAGE_MS;
    this.#nowMs = o.nowMs ?? (() => performance.now());
    this.#later = o.later ?? ((run, ms) => setTimeout(run, ms).unref());
    this.#cancel = o.cancel ?? ((timer) => clearTimeout(timer as NodeJS.Timeout));
  }

  /** An entry was queued: flushed now, or at the end of the current interval. */
  queued(): void {
    if (this.#timer !== null) return;
    const waitMs = this.#lastMs + this.#intervalMs - this.#nowMs();
    if (waitMs <= 0) this.#now();
    else this.#timer = this.#later(this.#run, Math.ceil(waitMs));
  }

  /** Drops a pending flush (the process stops). */
  cancel(): void {
    if (this.#timer !== null) this.#cancel(this.#timer);
    this.#timer = null;
  }

  #now(): void {
    this.#lastMs = this.#nowMs();
    this.#flush();
  }
}

/** Token bucket for passing entries on: `SHARED_ENTRIES_PER_SECOND`, a second's worth of burst. Time is passed in. */
export class ShareBudget {
  #tokens: number;
  #last: number | null = null;
  readonly #rate: number;

  constructor(ratePerSecond = SHARED_ENTRIES_PER_SECOND) {
    this.#rate = ratePerSecond;
    this.#tokens = ratePerSecond;
  }

  /** Whether one more entry may be passed on at `nowMs` (takes a token if so). */
  take(nowMs: number): boolean {
    if (this.#last !== null) this.#tokens = Math.min(this.#rate, this.#tokens + ((nowMs - this.#last) * this.#rate) / 1000);
    this.#last = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * A new worker not ready within this long is killed and started again, with twice the wait (up to
 * READY_TIMEOUT_MAX_MS): on a machine too busy to start one in 10 s, a fixed wait killed every
 * worker just before it was ready, for good (the daemon served alone meanwhile). Reset once one is ready.
 */
const READY_TIMEOUT_MS = 10_000;
const READY_TIMEOUT_MAX_MS = 160_000;
const ACK_TIMEOUT_MS = 2_000;
/** At the stop: a worker still there this long after SIGTERM gets SIGKILL, waited for KILL_WAIT_MS more. */
const STOP_TIMEOUT_MS = 1_000;
const KILL_WAIT_MS = 500;
const RESPAWN_MIN_MS = 1_000;
/** A worker that could not be forked for want of file descriptors is tried again after this long (no back-off). */
const FD_RETRY_MS = 1_000;
const RESPAWN_MAX_MS = 30_000;
/** A worker that sent nothing for this long (it reports every second) no longer counts as reading. */
export const SILENT_MS = 3_000;
/**
 * One silent this long is hung (stopped, or in a loop that never yields, burning a core the daemon
 * needs): it is killed and started again, as after a crash.
 */
const HUNG_MS = 30_000;

interface Slot {
  index: number;
  child: ChildProcess | null;
  /** Initialised: takes zones and sockets. */
  ready: boolean;
  /** Ready and reading every socket the daemon had when it became ready. */
  serving: boolean;
  /** The live incarnation's last counter report. */
  counters: Record<string, number>;
  respawnMs: number;
  /** How long its next incarnation has to get ready. */
  readyWaitMs: number;
  timer: NodeJS.Timeout | null;
  waiters: Map<string, () => void>;
  memory: ProcessMemory | null;
  /** The addresses whose socket this worker acknowledged reading. */
  addresses: Set<string>;
  /** A zones message is being written to this worker: newer zones wait in `zonesPending` (only the latest). */
  zonesSending: boolean;
  zonesPending: ZoneSetInput | null;
  /** When its last message arrived (performance.now()). */
  heardMs: number;
  /** Silent for SILENT_MS: not counted as a reader until it speaks again. */
  silent: boolean;
}

export class UdpWorkers {
  readonly #o: UdpWorkersOptions;
  readonly #nodeFlags: readonly string[];
  readonly #slots: Slot[] = [];
  /** Counters of worker incarnations that ended, so totals never go backwards. */
  readonly #retired = new Map<string, number>();
  #stopping = false;
  /** Entries waiting to go out, each with the worker it came from (null: the daemon). */
  #fill: Array<{ entry: WireEntry; from: Slot | null }> = [];
  readonly #fillThrottle = new ShareThrottle(() => this.#flushFill());
  #budget = new ShareBudget();
  #watch: NodeJS.Timeout | null = null;
  #lastCheckMs = 0;
  readonly #fd: FdShortage;

  constructor(o: UdpWorkersOptions) {
    this.#o = o;
    this.#fd = new FdShortage({
      log: o.log, prefix: 'dns.workers', count: (name) => this.#count(name), nowMs: () => performance.now(),
      advice: 'the worker processes wait to start (the daemon reads their sockets meanwhile). Raise LimitNOFILE or find what holds them',
    });
    this.#nodeFlags = [...(o.nodeFlags ?? dnsWorkerNodeFlagsFromEnv())];
    for (let i = 0; i < o.count; i++) {
      this.#slots.push({
        index: i, child: null, ready: false, serving: false, counters: {}, respawnMs: RESPAWN_MIN_MS, readyWaitMs: this.#o.readyTimeoutMs ?? READY_TIMEOUT_MS, timer: null, waiters: new Map(), memory: null,
        addresses: new Set(), heardMs: 0, silent: false, zonesSending: false, zonesPending: null,
      });
    }
  }

  /** Starts every worker and waits until each is serving (or has failed: the daemon serves alone). */
  async start(): Promise<void> {
    this.#lastCheckMs = performance.now();
    this.#watch = setInterval(() => this.#checkSilent(performance.now()), 1000);
    this.#watch.unref();
    await Promise.all(this.#slots.map((s) => this.#spawn(s)));
  }

  /** Workers reading `address` now (acknowledged it, alive and not silent). */
  readers(address: string): number {
    let n = 0;
    for (const s of this.#slots) if (s.addresses.has(address) && !s.silent) n++;
    return n;
  }

  #readersChanged(addresses: Iterable<string>): void {
    for (const a of [...addresses]) this.#o.onReaders?.(a);
  }

  #checkSilent(nowMs: number): void {
    // A round that itself ran late (the daemon's loop was held up as long, the workers' reports
    // waiting in its queue) judges nobody.
    const late = nowMs - this.#lastCheckMs > 2_000;
    this.#lastCheckMs = nowMs;
    if (late) return;
    for (const s of this.#slots) {
      if (!s.ready || s.child === null) continue;
      const silentMs = nowMs - s.heardMs;
      if (s.silent && silentMs >= (this.#o.hungMs ?? HUNG_MS) && s.child.exitCode === null && s.child.signalCode === null) {
        this.#count('dns.workers.hung');
        this.#o.log.error({ event: 'dns.worker_hung', worker: s.child.pid, silentMs: Math.round(silentMs) },
          `DNS worker ${s.index} has sent nothing for ${Math.round(silentMs / 1000)} s (hung); killing it, it starts again`);
        s.child.kill('SIGKILL');
        continue;
      }
      if (s.silent || silentMs < SILENT_MS) continue;
      s.silent = true;
      this.#count('dns.workers.silent');
      this.#o.log.warn({ event: 'dns.worker_silent', worker: s.child.pid, silentMs: Math.round(silentMs) },
        `DNS worker ${s.index} has sent nothing for ${Math.round(silentMs)} ms; the daemon reads its sockets until it does`);
      this.#readersChanged(s.addresses);
    }
  }

  /** Adds to one of the workers' own counters (kept beside those of ended incarnations, `counters()`). */
  #count(name: string, n = 1): void {
    this.#retired.set(name, (this.#retired.get(name) ?? 0) + n);
  }

  get running(): number { return this.#slots.filter((s) => s.serving).length; }

  pids(): number[] { return this.#slots.flatMap((s) => (s.serving && s.child?.pid !== undefined ? [s.child.pid] : [])); }

  /** Each serving worker's memory as it last reported it. */
  memory(): ProcessMemory[] {
    return this.#slots.flatMap((s) => (s.serving && s.memory !== null ? [s.memory] : []));
  }

  /** The workers' counters summed (each reports at most once a second). */
  counters(): Map<string, number> {
    const sum = new Map(this.#retired);
    for (const s of this.#slots) for (const [k, v] of Object.entries(s.counters)) sum.set(k, (sum.get(k) ?? 0) + v);
    return sum;
  }

  /** A new forwarding-cache entry of the daemon's: every worker gets it (at most one message per `SHARE_MESSAGE_MS`). */
  cacheFill(entry: WireEntry): void {
    this.#queueFill(entry, null);
  }

  /**
   * The first entry after a quiet spell goes out at once, before the reply to its client (the
   * forwarder caches before it answers): that client's next question may reach another process
   * right after the reply and must find the entry there. Entries that follow within
   * `SHARE_MESSAGE_MS` (a flood) go together in one message at its end.
   */
  #queueFill(entry: WireEntry, from: Slot | null): void {
    if (this.#slots.length - (from === null ? 0 : 1) <= 0 || !this.#budget.take(performance.now())) return;
    this.#fill.push({ entry, from });
    this.#fillThrottle.queued();
  }

  #flushFill(): void {
    const fill = this.#fill;
    if (fill.length === 0) return;
    this.#fill = [];
    for (const s of this.#slots) {
      if (!s.ready) continue;
      const entries = fill.filter((f) => f.from !== s).map((f) => f.entry);
      if (entries.length > 0) this.#send(s, { t: 'fill', entries });
    }
  }

  /**
   * New zones to every worker. One zones message per worker is on its way at a time and only the
   * latest waits behind it: a burst of changes (10,000 `lanctl nodes import` adds, each a rebuild of
   * the whole zone set, a megabyte serialised) queued every version in the IPC channel, faster than
   * the worker could read them: 389 MiB of the daemon's memory at 10,000 names, held long after.
   */
  zones(zones: ZoneSetInput): void {
    for (const s of this.#slots) if (s.ready) this.#sendZones(s, zones);
  }

  #sendZones(s: Slot, zones: ZoneSetInput): void {
    if (s.zonesSending) { s.zonesPending = zones; return; }
    const child = s.child;
    if (child === null || !child.connected) return;
    s.zonesSending = true;
    try {
      child.send({ t: 'zones', zones } satisfies ToWorker, (err) => {
        if (s.child !== child) return; // a new incarnation: its init carried the zones of its time
        s.zonesSending = false;
        const next = s.zonesPending;
        s.zonesPending = null;
        if (err === null && next !== null && s.ready) this.#sendZones(s, next);
      });
    } catch (err) {
      s.zonesSending = false;
      this.#o.log.warn({ event: 'dns.worker_send_failed', worker: child.pid, err }, 'could not reach a DNS worker process');
    }
  }

  /**
   * Workers that may hold queries waiting upstream: running and reading a socket (a silent one
   * included: its queries still wait). The daemon's part of `forward.maxInFlight` is what they leave.
   */
  holding(): number {
    let n = 0;
    for (const s of this.#slots) if (s.child !== null && s.addresses.size > 0) n++;
    return n;
  }

  /** Every worker reads `socket` too, once this resolves. */
  async serve(address: string, socket: dgram.Socket): Promise<void> {
    await Promise.all(this.#slots.filter((s) => s.ready).map((s) => this.#ask(s, { t: 'serve', address }, socket)));
  }

  /** Every worker closes its copy of the socket for `address` (the VIP is going away). */
  async unserve(address: string): Promise<void> {
    await Promise.all(this.#slots.filter((s) => s.ready).map((s) => this.#ask(s, { t: 'unserve', address })));
  }

  /** Sends serve/unserve and waits for the worker's acknowledgement (or its exit, or a timeout). */
  #ask(s: Slot, m: Extract<ToWorker, { t: 'serve' | 'unserve' }>, handle?: dgram.Socket): Promise<void> {
    const key = `${m.t}:${m.address}`;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => { s.waiters.delete(key); resolve(); }, ACK_TIMEOUT_MS);
      s.waiters.set(key, () => { clearTimeout(timer); resolve(); });
      this.#send(s, m, handle);
    });
  }

  /**
   * Ends every worker: SIGTERM, SIGKILL for one still there STOP_TIMEOUT_MS later (a stopped or
   * hung process), each said; resolves once all have exited, or KILL_WAIT_MS after a SIGKILL that
   * was not seen to end one (said, and not waited for: the daemon's stop goes on).
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#watch !== null) clearInterval(this.#watch);
    this.#watch = null;
    this.#fillThrottle.cancel();
    await Promise.all(this.#slots.map(async (s) => {
      if (s.timer !== null) clearTimeout(s.timer);
      s.timer = null;
      const child = s.child;
      if (child === null || child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        let timer = setTimeout(() => {
          this.#o.log.warn({ event: 'dns.worker_stop_late', worker: child.pid, waitedMs: STOP_TIMEOUT_MS },
            `DNS worker ${s.index} (pid ${child.pid}) had not exited ${STOP_TIMEOUT_MS} ms after SIGTERM; killing it (SIGKILL)`);
          child.kill('SIGKILL');
          timer = setTimeout(() => {
            this.#o.log.warn({ event: 'dns.worker_kill_late', worker: child.pid, waitedMs: KILL_WAIT_MS },
              `DNS worker ${s.index} (pid ${child.pid}) was not seen to exit ${KILL_WAIT_MS} ms after SIGKILL; the stop goes on without it`);
            resolve();
          }, KILL_WAIT_MS);
        }, STOP_TIMEOUT_MS);
        child.once('exit', () => { clearTimeout(timer); resolve(); });
        child.kill('SIGTERM');
      });
    }));
  }

  #send(s: Slot, m: ToWorker, handle?: dgram.Socket): void {
    const child = s.child;
    if (child === null || !child.connected) return;
    try {
      if (handle === undefined) child.send(m);
      else child.send(m, handle as never);
    } catch (err) {
      this.#o.log.warn({ event: 'dns.worker_send_failed', worker: child.pid, err }, 'could not reach a DNS worker process');
    }
  }

  /**
   * A worker process that could not be started: its slot was left empty for good (only an 'exit'
   * started it again, and a failed fork has none). Tried again: out of descriptors after
   * FD_RETRY_MS, quietly (the shortage said rate-limited, lib/fd-exhaustion.ts), else after the
   * back-off of a crash. Meanwhile the daemon reads the sockets itself.
   */
  #spawnFailed(s: Slot, child: ChildProcess, err: Error): void {
    if (s.child !== child) return;
    s.child = null;
    if (this.#stopping) return;
    const short = isFdExhaustion(err);
    let delayMs = FD_RETRY_MS;
    if (short) this.#fd.refused('worker', err);
    else {
      delayMs = s.respawnMs;
      s.respawnMs = Math.min(RESPAWN_MAX_MS, s.respawnMs * 2);
      this.#count('dns.workers.spawn_failed');
      this.#o.log.warn({ event: 'dns.worker_spawn_failed', worker: s.index, err }, `DNS worker ${s.index} could not be started (${err.message}); trying again in ${delayMs} ms`);
    }
    s.timer = setTimeout(() => { s.timer = null; void this.#spawn(s); }, delayMs);
  }

  #spawn(s: Slot): Promise<void> {
    const module = this.#o.module ?? new URL('./udp-worker.js', import.meta.url);
    const child = fork(module, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...this.#nodeFlags] });
    s.child = child;
    s.ready = false;
    s.serving = false;
    s.zonesSending = false;
    s.zonesPending = null;
    s.counters = {};
    s.memory = null;
    s.heardMs = performance.now();
    s.silent = false;
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (): void => { if (!settled) { settled = true; clearTimeout(timer); resolve(); } };
      const waitMs = s.readyWaitMs;
      const timer = setTimeout(() => {
        s.readyWaitMs = Math.min(READY_TIMEOUT_MAX_MS, waitMs * 2);
        this.#o.log.error({ event: 'dns.worker_not_ready', worker: child.pid, waitMs, nextWaitMs: s.readyWaitMs },
          `DNS worker ${s.index} did not start within ${waitMs} ms; serving without it (the next one started gets ${s.readyWaitMs} ms)`);
        child.kill('SIGKILL');
        settle();
      }, waitMs);
      child.on('message', (m: FromWorker) => {
        s.heardMs = performance.now();
        if (s.silent) {
          s.silent = false;
          this.#o.log.warn({ event: 'dns.worker_heard', worker: child.pid }, `DNS worker ${s.index} speaks again; it reads its sockets alone`);
          this.#readersChanged(s.addresses);
        }
        switch (m.t) {
          case 'ready': {
            s.ready = true;
            s.respawnMs = RESPAWN_MIN_MS;
            s.readyWaitMs = this.#o.readyTimeoutMs ?? READY_TIMEOUT_MS;
            this.#fd.recovered();
            // Answers cached before this worker was ready (the daemon serves alone meanwhile).
            const entries = this.#o.cached?.() ?? [];
            if (entries.length > 0) this.#send(s, { t: 'fill', entries });
            void Promise.all([...this.#o.sockets()].map(([address, socket]) => this.#ask(s, { t: 'serve', address }, socket))).then(() => {
              if (s.child !== child || !s.ready) return;
              s.serving = true;
              this.#o.log.debug({ event: 'dns.worker_ready', worker: child.pid }, `DNS worker ${s.index} serving`);
              settle();
            });
            return;
          }
          case 'counters':
            s.counters = m.values;
            return;
          case 'memory':
            s.memory = { ...m.memory, role: `dns worker ${s.index}` };
            return;
          case 'cached':
            this.#count('dns.workers.shared_messages');
            this.#count('dns.workers.shared_entries', m.entries.length);
            for (const entry of m.entries) {
              this.#o.onCached(entry);
              this.#queueFill(entry, s);
            }
            return;
          case 'serving':
          case 'unserved': {
            const key = `${m.t === 'serving' ? 'serve' : 'unserve'}:${m.address}`;
            if (m.t === 'serving') s.addresses.add(m.address); else s.addresses.delete(m.address);
            this.#readersChanged([m.address]);
            s.waiters.get(key)?.();
            s.waiters.delete(key);
          }
        }
      });
      child.on('error', (err) => {
        // A fork that failed (EMFILE/ENFILE for its pipes, EAGAIN) has no pid and no 'exit' to follow.
        if (child.pid === undefined) { settle(); this.#spawnFailed(s, child, err); return; }
        this.#o.log.warn({ event: 'dns.worker_error', worker: child.pid, err }, `DNS worker ${s.index}: ${err.message}`);
      });
      child.on('exit', (code, signal) => {
        settle();
        for (const [k, v] of Object.entries(s.counters)) this.#count(k, v);
        s.counters = {};
        s.ready = false;
        s.serving = false;
        const read = [...s.addresses];
        s.addresses.clear();
        this.#readersChanged(read);
        for (const w of s.waiters.values()) w();
        s.waiters.clear();
        if (this.#stopping) return;
        this.#count('dns.workers.exited');
        this.#o.log.warn({ event: 'dns.worker_exited', worker: child.pid, code, signal },
          `DNS worker ${s.index} exited (${signal ?? `code ${code}`}); starting it again in ${s.respawnMs} ms`);
        s.timer = setTimeout(() => { s.timer = null; void this.#spawn(s); }, s.respawnMs);
        s.respawnMs = Math.min(RESPAWN_MAX_MS, s.respawnMs * 2);
      });
      this.#send(s, this.#o.init());
    });
  }
}
