import dgram from 'node:dgram';
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { BootEventLimiter } from '../../cluster/boot-events.js';
import { Counters } from '../../lib/counters.js';
import { FdShortage, fdsShort, isFdExhaustion } from '../../lib/fd-exhaustion.js';
import { parseIpv4 } from '../../lib/ipv4.js';
import { serviceAddresses } from '../../lib/listen.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { InFlightWork, RunningService, ServiceContext, ServiceStatus } from '../contract.js';
import type { TftpConfig } from './config.js';
import { decodePacket, encodeError, ErrorCode, type RequestPacket } from './wire.js';
import { rootRelative, type ClientInfo } from './paths.js';
import { printable, TransferEngine, type ActiveTransfer, type IdleTime, type Peer, type RenderedFile, type StartOutcome, type TransferInfo } from './engine.js';
import { bootEventDetail, type BootFileSource } from '../boot/provider.js';
import type { FromWorker, ToWorker, WorkerData } from './worker.js';
import { hangFailpoint } from './failpoints.js';
import { allocateCache, type BlockCache } from './block-cache.js';
import { fileCache, type OpenedFile } from './files.js';
import { processLoopDelay, type LoopDelayProbe } from '../../lib/loop-delay.js';
import { stopStep, type StopSteps } from '../../lib/stop-steps.js';

// The TFTP shell: one listening socket per served address; admission (limits, duplicates, WRQ,
// malformed packets) and the client's lease on the main thread; the transfers themselves in
// `workers` worker threads (engine.ts), or on the main thread when `workers` is 0. Transfer log
// lines, counters and boot events are written here.

export type { TransferInfo } from './engine.js';

/** How often a worker reports its counters and its transfers' silence (worker.ts). */
const WORKER_REPORT_MS = 500;
/** A worker that stopped unasked is started again after this long, doubled per failure up to the maximum. */
const RESPAWN_MIN_MS = 100;
const RESPAWN_MAX_MS = 10_000;
/** A worker that ran this long before it stopped starts its next restart at the minimum again. */
const HEALTHY_RUN_MS = 30_000;
/**
 * A thread that could not start for want of file descriptors (EMFILE/ENFILE) is tried again after
 * this long, with no back-off and no error line (the shortage is said rate-limited): it is no crash,
 * and it should run again as soon as descriptors are free.
 */
const FD_RETRY_MS = 500;
/** A worker not heard from for this long gets no new transfers while another is heard from. */
const SILENT_MS = 3_000;
/** A worker not heard from for this long is hung (a loop that never yields): it is ended and started again. */
const HUNG_MS = 30_000;
/** How often the main thread looks for hung workers. */
const WATCH_MS = 1_000;
/** A thread asked to stop and not ended after this is terminated; one terminated and not ended after WORKER_TERMINATE_MS is left behind, said. */
const WORKER_STOP_MS = 500;
const WORKER_TERMINATE_MS = 500;
/**
 * Transfer threads run while there are transfers: they are started by the first request and ended
 * after this long without one. Each is a V8 isolate of its own, ~7.5 MiB resident idle (issue 14:
 * the daemon's memory with 1,000 leases and no TFTP traffic), and netboot comes in bursts.
 */
const THREADS_IDLE_MS = 60_000;
/**
 * A request held while the threads start is dropped if none is ready within this long: its client
 * has given up by then (firmware retries its RRQ for a few seconds). A thread starts in tens of ms,
 * but may take seconds on a loaded machine, and a request dropped then waits for its client's retry.
 */
const WAKE_WAIT_MS = 30_000;

export interface TftpServerOptions {
  config: TftpConfig;
  addresses: readonly string[];
  log: Logger;
  clock: Clock;
  /** Replicated state, for per-client names (the client's lease) and boot events. */
  state?: StateLog;
  /** Boot files rendered per client (services/boot), consulted before the disk. */
  bootFiles?: BootFileSource | undefined;
  /** When a worker counts as silent (routed around) and as hung (ended); SILENT_MS and HUNG_MS unless set (tests). */
  watch?: { silentMs: number; hungMs: number };
  /** How long the transfer threads outlive the last transfer (THREADS_IDLE_MS unless set: tests). */
  threadsIdleMs?: number;
}

interface WorkerSlot {
  index: number;
  /** The thread, or null while none runs (between a crash and the restart). */
  worker: Worker | null;
  /** The thread listens for work: only then is it given transfers. */
  ready: boolean;
  active: number;
  counters: Record<string, number>;
  startedMs: number;
  /** When the main thread last heard from it (any message; it reports every WORKER_REPORT_MS). */
  heardMs: number;
  respawnMs: number;
  timer: NodeJS.Timeout | null;
  /** Its last start failed for want of file descriptors: its exit is retried after FD_RETRY_MS, quietly. */
  fdShort: boolean;
}

interface Pending {
  id: number;
  key: string;
  peer: Peer;
  client: ClientInfo;
  requested: string;
  listener: dgram.Socket;
  worker: number;
  /** Set when the file was rendered for this client (services/boot) rather than read from disk. */
  rendered?: { stale: boolean; node?: string };
  startedMs: number;
  /** The engine started it (its first OACK or DATA went out): only then may its slot be reclaimed. */
  running: boolean;
  /** The client has acknowledged something (Transfer.confirmed): its slot is never reclaimed. */
  confirmed: boolean;
}

export interface EndedMessage {
  id: number;
  outcome: string;
  info: TransferInfo;
}

export class TftpServer {
  readonly config: TftpConfig;
  readonly log: Logger;
  readonly clock: Clock;
  readonly counters = new Counters();
  readonly #addresses: readonly string[];
  readonly #state: StateLog | undefined;
  readonly #bootEvents = new BootEventLimiter();
  readonly #bootFiles: BootFileSource | undefined;
  readonly #limiter = new LogLimiter();
  /** Out of file descriptors: transfers and thread starts put off, counted, said rate-limited (lib/fd-exhaustion.ts). */
  readonly #fd: FdShortage;
  /** Failed-transfer lines left out by the limiter since the last one written, per kind. */
  readonly #suppressed = new Map<string, number>();
  #lag: LoopDelayProbe | null = null;
  #rootReal = '';
  #listeners: Array<{ address: string; socket: dgram.Socket }> = [];
  /** Every admitted transfer, starting or running, by id and by client address:port. */
  #active = new Map<number, Pending>();
  #byKey = new Map<string, number>();
  #perClient = new Map<string, number>();
  #nextId = 1;
  #stopped = false;
  /** In-process transfers (workers: 0). */
  #engine: TransferEngine | null = null;
  #workers: WorkerSlot[] = [];
  readonly #silentMs: number;
  readonly #hungMs: number;
  #watch: NodeJS.Timeout | null = null;
  #lastWatchMs = 0;
  readonly #threadsIdleMs: number;
  /** No transfer thread runs (none started yet, or ended after THREADS_IDLE_MS without transfers): a request starts them. */
  #asleep = false;
  /** Woken, and no thread is ready yet. */
  #waking = false;
  /** The exits of threads being ended for idleness: a wake waits for them (a thread's exit releases its index's cache pins). */
  #settling: Promise<unknown> = Promise.resolve();
  /** When a transfer last ran (or the threads were woken). */
  #busyMs = 0;
  /** Requests that came while the threads start, by client address:port, replayed once one is ready. */
  #waiting = new Map<string, { local: string; listener: dgram.Socket; msg: Buffer; rinfo: dgram.RemoteInfo; atMs: number }>();
  /** Counters of worker threads that stopped (folded in so the totals never go backwards). */
  readonly #retired = new Counters();
  /**
   * The one block cache of every transfer thread (block-cache.ts), in a SharedArrayBuffer allocated
   * here; this handle reads its stats and releases a stopped worker's pins.
   */
  #cache: BlockCache<OpenedFile> | null = null;
  /** The workers' last word on each running transfer's silence, and when it came. */
  #idle = new Map<number, IdleTime & { at: number }>();

  constructor(options: TftpServerOptions) {
    this.config = options.config;
    this.log = options.log;
    this.clock = options.clock;
    this.#addresses = options.addresses;
    this.#state = options.state;
    this.#bootFiles = options.bootFiles;
    this.#silentMs = options.watch?.silentMs ?? SILENT_MS;
    this.#hungMs = options.watch?.hungMs ?? HUNG_MS;
    this.#threadsIdleMs = options.threadsIdleMs ?? THREADS_IDLE_MS;
    this.#fd = new FdShortage({
      log: this.log, prefix: 'tftp', count: (name) => this.counters.inc(name), nowMs: () => this.clock.monotonicMs(),
      advice: 'new transfers are not answered (clients retry) and transfer threads wait to start; running transfers go on. Raise LimitNOFILE or find what holds them',
    });
  }

  async start(): Promise<void> {
    this.#rootReal = await realpath(resolve(this.config.root));
    this.#lag = processLoopDelay();
    const layout = allocateCache(this.config.cacheMiB * 1048576, Math.max(1, this.config.workers));
    this.#cache = fileCache(layout, this.config.workers === 0 ? 0 : -1);
    try {
      if (this.config.workers === 0) {
        this.#engine = new TransferEngine(this.config, this.#rootReal, {
          clock: this.clock,
          counters: this.counters,
          error: (fields, message) => this.#errorLine(fields, message),
          transferEnded: (transfer: ActiveTransfer, outcome: string) => {
            this.#engine?.forget(transfer.id);
            this.#ended({ id: transfer.id, outcome, info: transfer.info() });
          },
          transferConfirmed: (transfer: ActiveTransfer) => this.#confirmed(transfer.id),
        }, this.#cache);
      } else {
        // The threads start with the first request (#wake), not here.
        this.#asleep = true;
        for (let i = 0; i < this.config.workers; i++) {
          this.#workers.push({ index: i, worker: null, ready: false, active: 0, counters: {}, startedMs: 0, heardMs: 0, respawnMs: RESPAWN_MIN_MS, timer: null, fdShort: false });
        }
        if (hangFailpoint() !== undefined) this.log.warn({ event: 'tftp.failpoints', failpoints: process.env['LANHA_FAILPOINTS'] }, 'tftp failpoints are on (LANHA_FAILPOINTS): for tests only');
        this.#lastWatchMs = this.clock.monotonicMs();
        this.#watch = setInterval(() => this.#watchWorkers(), WATCH_MS);
        this.#watch.unref();
      }
      for (const address of this.#addresses) await this.addAddress(address);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Starts listening on one more address (the VIP when this node takes it). */
  async addAddress(address: string): Promise<void> {
    if (this.#listeners.some((l) => l.address === address)) return;
    const socket = dgram.createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
    await new Promise<void>((ok, fail) => {
      socket.once('error', fail);
      socket.bind(this.config.port, address, () => { socket.off('error', fail); ok(); });
    }).catch((error: unknown) => {
      try { socket.close(); } catch { /* never bound */ }
      throw error;
    });
    socket.on('message', (msg, rinfo) => this.#onRequest(address, socket, msg, rinfo));
    socket.on('error', (error) => this.log.warn({ event: 'tftp.socket_error', address, err: error }, 'tftp listening socket error'));
    this.#listeners.push({ address, socket });
  }

  /** Stops listening on an address (the VIP when this node gives it up); running transfers go on. */
  async removeAddress(address: string): Promise<void> {
    const listener = this.#listeners.find((l) => l.address === address);
    if (listener === undefined) return;
    this.#listeners = this.#listeners.filter((l) => l !== listener);
    await new Promise<void>((ok) => { try { listener.socket.close(() => ok()); } catch { ok(); } });
  }

  /** Starts the thread of `slot`; resolves once it listens for work (rejects if it stops first). */
  async #startWorker(slot: WorkerSlot): Promise<void> {
    const index = slot.index;
    const workerData: WorkerData = { config: this.config, rootReal: this.#rootReal, cache: this.#cache!.layout, thread: index };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData });
    slot.worker = worker;
    slot.ready = false;
    slot.startedMs = this.clock.monotonicMs();
    worker.on('message', (m: FromWorker) => {
      if (slot.worker !== worker) return;
      slot.heardMs = this.clock.monotonicMs();
      switch (m.type) {
        case 'outcome': this.#outcome(m.id, m.outcome); break;
        case 'ended': this.#ended(m.ended); break;
        case 'confirmed': this.#confirmed(m.id); break;
        case 'counters': {
          slot.counters = m.counters;
          const at = this.clock.monotonicMs();
          for (const idle of m.idle) if (this.#active.has(idle.id)) this.#idle.set(idle.id, { ...idle, at });
          break;
        }
        case 'error': this.#errorLine({ ...m.fields, worker: index }, m.message); break;
        case 'ready': break;
      }
    });
    worker.on('error', (error) => {
      // Out of descriptors at its start (ERR_WORKER_INIT_FAILED: EMFILE, or a module file it could not
      // open, which Node reports as ERR_MODULE_NOT_FOUND): no crash; retried (#workerExited).
      if (!slot.ready && (isFdExhaustion(error) || fdsShort())) { slot.fdShort = true; this.#fd.refused('thread', error); return; }
      this.log.error({ event: 'tftp.worker_failed', worker: index, err: error }, 'a tftp worker failed');
    });
    worker.on('exit', (code) => this.#workerExited(slot, worker, code));
    // Ready once its modules are loaded and it listens for work.
    await new Promise<void>((ok, fail) => {
      const onMessage = (m: FromWorker): void => {
        if (m.type !== 'ready') return;
        done();
        slot.ready = true;
        slot.fdShort = false;
        slot.heardMs = this.clock.monotonicMs();
        ok();
        this.#replayWaiting();
      };
      const onExit = (code: number): void => { done(); fail(new Error(`tftp worker ${index} exited (code ${code}) before it was ready`)); };
      const done = (): void => { worker.off('message', onMessage); worker.off('error', fail); worker.off('exit', onExit); };
      worker.on('message', onMessage);
      worker.once('error', fail);
      worker.once('exit', onExit);
    });
  }

  /**
   * A worker thread stopped. Asked to (stop()), nothing more happens. Otherwise (an exception nothing
   * caught, out of memory, a fault drill) its transfers are gone with it: their sockets closed with
   * the thread, and their clients, hearing nothing more, retry their RRQ, which the other workers (or
   * this one, started again) take. Their slots are freed at once so those retries are admitted, the
   * thread's shared-cache pins and loads are given back, and its counters are kept. It is started
   * again after RESPAWN_MIN_MS, doubling per failure up to RESPAWN_MAX_MS; until then requests go to
   * the workers still running, or wait for the client's retry when none is.
   */
  #workerExited(slot: WorkerSlot, worker: Worker, code: number): void {
    // A worker that stopped, for whatever reason, holds nothing in the shared cache: its pins go, and
    // the chunks it was loading are given back so the threads waiting for them read them themselves.
    this.#cache?.releaseThread(slot.index);
    if (slot.worker !== worker) return;
    slot.worker = null;
    slot.ready = false;
    for (const [k, v] of Object.entries(slot.counters)) this.#retired.inc(k, v);
    slot.counters = {};
    if (this.#stopped) return;
    const lost: string[] = [];
    for (const p of [...this.#active.values()]) {
      if (p.worker !== slot.index) continue;
      this.#release(p.id);
      lost.push(`${p.key} ${printable(p.requested)}`);
    }
    slot.active = 0;
    if (slot.fdShort) {
      // It never ran: no transfers lost, no crash to back off from; tried again soon, quietly.
      slot.fdShort = false;
      this.counters.inc('tftp.workers_start_put_off');
      slot.timer = setTimeout(() => { slot.timer = null; void this.#restartWorker(slot, false); }, FD_RETRY_MS);
      return;
    }
    this.counters.inc('tftp.workers_exited');
    this.counters.inc('tftp.transfers_lost', lost.length);
    const ranMs = this.clock.monotonicMs() - slot.startedMs;
    if (ranMs >= HEALTHY_RUN_MS) slot.respawnMs = RESPAWN_MIN_MS;
    const delayMs = slot.respawnMs;
    slot.respawnMs = Math.min(RESPAWN_MAX_MS, slot.respawnMs * 2);
    this.log.error({ event: 'tftp.worker_exited', worker: slot.index, code, ranMs: Math.round(ranMs), lost: lost.length, transfers: lost.slice(0, 8), restartInMs: delayMs },
      `tftp worker ${slot.index} stopped (code ${code}) with ${lost.length} transfer(s), whose clients retry; starting it again in ${delayMs} ms`);
    slot.timer = setTimeout(() => { slot.timer = null; void this.#restartWorker(slot); }, delayMs);
  }

  /** `crashed`: started again after a crash (said); false: after a start put off for want of descriptors. */
  async #restartWorker(slot: WorkerSlot, crashed = true): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#startWorker(slot);
    } catch (error) {
      // It stopped before it was ready: its exit, handled as any other, has set the next try (or
      // the service stops, and ended it). A shortage of descriptors is said by #fd.
      if (this.#stopped || slot.fdShort || isFdExhaustion(error)) return;
      this.log.error({ event: 'tftp.worker_restart_failed', worker: slot.index, err: error }, `tftp worker ${slot.index} could not be started again`);
      return;
    }
    this.#fd.recovered();
    if (!crashed) return;
    this.counters.inc('tftp.workers_restarted');
    this.log.warn({ event: 'tftp.worker_restarted', worker: slot.index }, `tftp worker ${slot.index} started again`);
  }

  /**
   * Ends a worker that has said nothing for HUNG_MS (it reports every WORKER_REPORT_MS, so its loop
   * has not turned: a transfer stuck in a loop that never yields). Its transfers are lost as in a
   * crash, and it is started again the same way. A round that itself ran late (this thread was held
   * up as long: the workers' reports wait in its queue) judges nobody.
   */
  #watchWorkers(): void {
    const now = this.clock.monotonicMs();
    const late = now - this.#lastWatchMs > 2 * WATCH_MS;
    this.#lastWatchMs = now;
    if (this.#stopped) return;
    if (this.#active.size > 0) this.#busyMs = now;
    for (const [key, w] of this.#waiting) {
      if (now - w.atMs < WAKE_WAIT_MS) continue;
      this.#waiting.delete(key);
      this.#drop('no-worker', w.rinfo, 'threads starting');
    }
    if (!this.#asleep && this.#active.size === 0 && this.#waiting.size === 0 && now - this.#busyMs >= this.#threadsIdleMs
      && this.#workers.every((slot) => slot.ready)) {
      this.#sleep();
      return;
    }
    if (late) return;
    for (const slot of this.#workers) {
      const worker = slot.worker;
      if (worker === null || !slot.ready || now - slot.heardMs < this.#hungMs) continue;
      slot.ready = false;
      this.counters.inc('tftp.workers_hung');
      this.log.error({ event: 'tftp.worker_hung', worker: slot.index, silentMs: Math.round(now - slot.heardMs), transfers: slot.active },
        `tftp worker ${slot.index} has not been heard from for ${Math.round((now - slot.heardMs) / 1000)} s (hung); ending it`);
      void worker.terminate();
    }
  }

  /** Ends worker `index` abruptly, as a crash would (fault drills and tests); it is started again as after any crash. */
  async crashWorker(index: number): Promise<boolean> {
    const worker = this.#workers[index]?.worker;
    if (!worker) return false;
    await worker.terminate();
    return true;
  }

  /** How many transfer threads run now (those being started again after a crash are not counted). */
  get workersRunning(): number { return this.#workers.filter((s) => s.ready).length; }

  /** No transfer thread runs because none was needed yet, or none for THREADS_IDLE_MS: the next request starts them. */
  get workersAsleep(): boolean { return this.#asleep && this.#workers.length > 0; }

  /** Starts every transfer thread (after the exits of those ended for idleness); requests held meanwhile go to the first ready. */
  #wake(): void {
    this.#asleep = false;
    this.#waking = true;
    this.#busyMs = this.clock.monotonicMs();
    void this.#settling.then(async () => {
      await Promise.all(this.#workers.map(async (slot) => {
        if (this.#stopped || slot.worker !== null) return;
        try {
          await this.#startWorker(slot);
        } catch (error) {
          // It stopped before it was ready: its exit, handled as a crash, has set the next try (or
          // the service stops, and ended it). A shortage of descriptors is said by #fd.
          if (this.#stopped || slot.fdShort || isFdExhaustion(error)) return;
          this.log.error({ event: 'tftp.worker_start_failed', worker: slot.index, err: error }, `tftp worker ${slot.index} could not be started`);
        }
      }));
      // None became ready: requests are dropped as while crashed threads restart, and clients retry.
      this.#waking = false;
    });
  }

  /** Ends every transfer thread, none having had a transfer for THREADS_IDLE_MS; their counters are kept. */
  #sleep(): void {
    this.#asleep = true;
    const exits: Array<Promise<unknown>> = [];
    for (const slot of this.#workers) {
      const worker = slot.worker;
      if (worker === null) continue;
      for (const [k, v] of Object.entries(slot.counters)) this.#retired.inc(k, v);
      slot.counters = {};
      slot.worker = null; // its exit is then no crash (#workerExited)
      slot.ready = false;
      exits.push(new Promise((ok) => { worker.once('exit', ok); void worker.terminate(); }));
    }
    this.#settling = Promise.all(exits);
    this.log.info({ event: 'tftp.workers.idle', workers: exits.length, idleMs: this.#threadsIdleMs },
      `tftp transfer threads ended after ${Math.round(this.#threadsIdleMs / 1000)} s without transfers; the next request starts them again`);
  }

  /** The requests held while the threads started, handled now that one is ready. */
  #replayWaiting(): void {
    this.#waking = false;
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of waiting) this.#onRequest(w.local, w.listener, w.msg, w.rinfo);
  }

  listening(): string[] {
    return this.#listeners.map(({ socket }) => {
      const a = socket.address();
      return `udp ${a.address}:${a.port}`;
    });
  }

  /** The port actually bound (tests use port 0). */
  port(): number {
    const first = this.#listeners[0];
    return first ? first.socket.address().port : this.config.port;
  }

  async stop(steps?: StopSteps): Promise<void> {
    this.#stopped = true;
    this.#waiting.clear();
    if (this.#watch !== null) clearInterval(this.#watch);
    this.#watch = null;
    this.#engine?.stop();
    const listeners = this.#listeners;
    this.#listeners = [];
    await stopStep(steps, 'tftp.sockets', () => Promise.all(listeners.map(({ socket }) => new Promise<void>((ok) => { try { socket.close(() => ok()); } catch { ok(); } }))));
    const slots = this.#workers;
    this.#workers = [];
    // All at once, each bounded: one after the other, two threads slow to end under load took 2 s.
    await stopStep(steps, 'tftp.workers', () => Promise.all([...slots.map((slot) => this.#stopWorker(slot)), this.#settled()]));
  }

  /**
   * Asks the thread of `slot` to stop (it sends its clients an ERROR first); one that has not ended
   * WORKER_STOP_MS later is terminated, with a warn line naming it. Resolves once it ended, or
   * WORKER_TERMINATE_MS after the terminate (a thread stuck in native code: said, not waited for).
   */
  #stopWorker(slot: WorkerSlot): Promise<void> {
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    const worker = slot.worker;
    if (worker === null) return Promise.resolve();
    worker.postMessage({ type: 'stop' } satisfies ToWorker);
    return new Promise<void>((ok) => {
      let timer = setTimeout(() => {
        this.log.warn({ event: 'tftp.worker_stop_late', worker: slot.index, waitedMs: WORKER_STOP_MS, transfers: slot.active },
          `tftp worker ${slot.index} had not ended ${WORKER_STOP_MS} ms after it was asked to stop; terminating it`);
        timer = setTimeout(() => {
          this.log.warn({ event: 'tftp.worker_terminate_late', worker: slot.index, waitedMs: WORKER_TERMINATE_MS },
            `tftp worker ${slot.index} had not ended ${WORKER_TERMINATE_MS} ms after it was terminated; the stop goes on without it`);
          ok();
        }, WORKER_TERMINATE_MS);
        void worker.terminate().catch(() => undefined);
      }, WORKER_STOP_MS);
      worker.once('exit', () => { clearTimeout(timer); ok(); });
    });
  }

  /** The threads ended for idleness (#sleep) have ended, or WORKER_TERMINATE_MS has passed. */
  #settled(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([this.#settling, new Promise<void>((ok) => { timer = setTimeout(ok, WORKER_TERMINATE_MS); })]).then(() => clearTimeout(timer));
  }

  status(): ServiceStatus {
    const counters = new Counters();
    for (const [k, v] of Object.entries(this.counters.toJSON())) counters.inc(k, v);
    for (const [k, v] of Object.entries(this.#retired.toJSON())) counters.inc(k, v);
    for (const slot of this.#workers) for (const [k, v] of Object.entries(slot.counters)) counters.inc(k, v);
    return {
      listening: this.listening(),
      root: this.#rootReal,
      workers: this.config.workers,
      workersRunning: this.workersRunning,
      workersAsleep: this.workersAsleep,
      transfers: this.#engine
        ? this.#engine.transfers()
        : [...this.#active.values()].map((p) => ({ client: p.key, requested: printable(p.requested), worker: p.worker })),
      counters: counters.toJSON(),
      cache: this.#cache?.stats() ?? { bytes: 0, chunks: 0, hits: 0, misses: 0, pinned: 0 },
      eventLoopLagMs: this.#lagNow(),
    };
  }

  /** How late this process's loop ran its timers (lib/loop-delay.ts), ms; zeros before start. */
  #lagNow(): { p50: number; p99: number; max: number } {
    const d = this.#lag?.reading();
    return { p50: d?.p50Ms ?? 0, p99: d?.p99Ms ?? 0, max: d?.maxMs ?? 0 };
  }

  get activeTransfers(): number { return this.#active.size; }

  /**
   * The transfers running now, one line each ("10.0.0.7:2071 Image for 3.2 s"): what a planned
   * failover waits for, except those marked stalled (no ACK progress for two retransmit intervals).
   */
  inFlight(): InFlightWork[] {
    const now = this.clock.monotonicMs();
    const idle = new Map<number, IdleTime & { at: number }>();
    if (this.#engine) for (const i of this.#engine.idleTimes()) idle.set(i.id, { ...i, at: now });
    else for (const [id, i] of this.#idle) idle.set(id, i);
    return [...this.#active.values()].map((p) => {
      const i = idle.get(p.id);
      // A worker reports every 500 ms: the silence grew by the time since, but never by more than
      // one report interval (a worker starved of CPU must not make every transfer look stalled).
      const silentMs = i === undefined ? 0 : i.idleMs + Math.min(now - i.at, WORKER_REPORT_MS);
      const stalled = i !== undefined && silentMs >= i.stallAfterMs;
      const line = `${p.key} ${printable(p.requested)} for ${((now - p.startedMs) / 1000).toFixed(1)} s${stalled ? ` (no ACK for ${(silentMs / 1000).toFixed(1)} s)` : ''}`;
      return { line, stalled };
    });
  }

  #onRequest(local: string, listener: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.#stopped) return;
    // Source port 0 is no port a reply can go to (a forged datagram): each one reached a transfer
    // thread, failed its first send and was an ERROR line ("starting a transfer failed").
    if (rinfo.port === 0) {
      this.#drop('source-port-zero', rinfo, 'no reply can go to port 0');
      return;
    }
    const decoded = decodePacket(msg);
    if (!decoded.ok) {
      this.#drop('malformed', rinfo, decoded.error.code);
      return;
    }
    const packet = decoded.value;
    if (packet.op === 'wrq') {
      // Read-only server (RFC 1350 §5 code 2).
      this.counters.inc('tftp.wrq_refused');
      this.#refuse(listener, rinfo, ErrorCode.accessViolation, 'read-only server: writes are refused', 'wrq', packet.filename);
      return;
    }
    if (packet.op !== 'rrq') {
      // DATA/ACK/OACK/ERROR to the listening port belong to no transfer.
      this.#drop('not-a-request', rinfo, packet.op);
      return;
    }
    const key = `${rinfo.address}:${rinfo.port}`;
    if (this.#asleep || this.#waking) {
      // No transfer thread runs yet: this request waits for the first one ready (tens of ms), then is
      // handled from the top. Its retransmissions meanwhile are the same request.
      if (!this.#waiting.has(key) && this.#waiting.size < this.config.maxTransfers) {
        this.#waiting.set(key, { local, listener, msg, rinfo, atMs: this.clock.monotonicMs() });
      }
      if (this.#asleep) this.#wake();
      return;
    }
    if (this.#byKey.has(key)) {
      // A retransmitted RRQ while its transfer runs: the transfer answers for it.
      this.counters.inc('tftp.duplicate_request');
      return;
    }
    if ((this.#perClient.get(rinfo.address) ?? 0) >= this.config.perClientTransfers && !this.#reclaim(rinfo, rinfo.address)) {
      this.#drop('client-busy', rinfo, 'perClientTransfers');
      this.counters.inc('tftp.client_busy');
      return;
    }
    if (this.#active.size >= this.config.maxTransfers && !this.#reclaim(rinfo)) {
      // Silent drop: the client's own RRQ retry comes back when a slot is free (an ERROR would make firmware give up).
      this.#drop('busy', rinfo, 'maxTransfers');
      this.counters.inc('tftp.busy');
      return;
    }
    const peer = { address: rinfo.address, port: rinfo.port };
    const client = this.clientInfo(peer.address);
    // A boot file for this client (services/boot) comes before the disk.
    let rendered: RenderedFile | undefined;
    let renderedInfo: Pending['rendered'];
    const boot = this.#bootFiles?.lookup(rootRelative(packet.filename), peer.address, local);
    if (boot !== undefined && boot.kind === 'error') {
      this.counters.inc('tftp.refused.render-failed');
      // Code 0 with a short text: the reason goes to the server log (boot.render.failed), not to the LAN.
      this.#refuse(listener, rinfo, ErrorCode.notDefined, 'boot file for this node could not be rendered (see the server log)', 'render-failed', packet.filename);
      return;
    }
    if (boot !== undefined && boot.kind === 'file') {
      rendered = { name: boot.name, bytes: boot.bytes };
      renderedInfo = { stale: boot.stale, ...(boot.node === undefined ? {} : { node: boot.node }) };
      if (boot.mac !== undefined && client.mac === undefined) client.mac = boot.mac;
    }
    const id = this.#nextId++;
    // The least busy running worker takes it; one silent for SILENT_MS only when none has been heard from.
    let worker = -1;
    const now = this.clock.monotonicMs();
    for (let pass = 0; pass < 2 && worker < 0; pass++) {
      for (let i = 0; i < this.#workers.length; i++) {
        const w = this.#workers[i]!;
        if (!w.ready || (pass === 0 && now - w.heardMs >= this.#silentMs)) continue;
        if (worker < 0 || w.active < this.#workers[worker]!.active) worker = i;
      }
    }
    if (worker < 0 && this.#engine === null) {
      // Every worker is being started again after a crash: the client's RRQ retry comes back to one.
      this.#drop('no-worker', rinfo, 'workers restarting');
      return;
    }
    const pending: Pending = {
      id, key, peer, client, requested: packet.filename, listener, worker, startedMs: this.clock.monotonicMs(), running: false, confirmed: false, ...(renderedInfo === undefined ? {} : { rendered: renderedInfo }),
    };
    this.#active.set(id, pending);
    this.#byKey.set(key, id);
    this.#perClient.set(peer.address, (this.#perClient.get(peer.address) ?? 0) + 1);
    if (worker >= 0) {
      this.#workers[worker]!.active++;
      this.#workers[worker]!.worker!.postMessage({ type: 'start', id, local, request: packet, peer, client, ...(rendered === undefined ? {} : { rendered }) } satisfies ToWorker);
      return;
    }
    void this.#engine!.start(id, local, packet, peer, client, rendered).then(
      (outcome) => this.#outcome(id, outcome),
      (error: unknown) => {
        this.#errorLine({ event: 'tftp.transfer_start_failed', client: key, err: error }, 'starting a transfer failed');
        this.#outcome(id, { kind: 'stopped' });
      },
    );
  }

  /**
   * A slot for `rinfo`'s request, taken from the oldest running transfer (of `address` only, when
   * given) whose client has acknowledged nothing for a whole retransmit interval (tftp.timeout): a
   * spoofed or dead source that has cost nothing yet, while a live client answers the first OACK or
   * DATA within a round trip. Without this, such transfers held their slots for the whole retransmit
   * chain (timeout x retries with back-off, ~15 s at the defaults) and real clients were turned
   * away. The transfer ends with an ERROR; false when there is none to take.
   */
  #reclaim(rinfo: dgram.RemoteInfo, address?: string): boolean {
    const oldest = this.clock.monotonicMs() - this.config.timeout;
    for (const p of this.#active.values()) {
      if (p.startedMs > oldest) break; // in admission order: the rest are younger
      if (!p.running || p.confirmed || (address !== undefined && p.peer.address !== address)) continue;
      this.#release(p.id);
      const message = 'no ACK: this transfer\'s slot went to another request';
      if (this.#engine) this.#engine.reclaim(p.id, message);
      else this.#workers[p.worker]?.worker?.postMessage({ type: 'reclaim', id: p.id, message } satisfies ToWorker);
      this.counters.inc(address === undefined ? 'tftp.reclaimed_unconfirmed' : 'tftp.reclaimed_unconfirmed_own');
      if (this.#limiter.allow('reclaimed', this.clock.monotonicMs())) {
        this.log.warn({
          event: 'tftp.transfer.reclaimed', client: p.key, requested: printable(p.requested), ageMs: Math.round(this.clock.monotonicMs() - p.startedMs),
          for: `${rinfo.address}:${rinfo.port}`, limit: address === undefined ? 'maxTransfers' : 'perClientTransfers',
        }, 'a transfer never acknowledged gave its slot to a new request (spoofed or dead sources filling the table)');
      }
      return true;
    }
    return false;
  }

  #confirmed(id: number): void {
    const pending = this.#active.get(id);
    if (pending) pending.confirmed = true;
  }

  /** A start request came back: refused (answer with the ERROR here) or never started. */
  #outcome(id: number, outcome: StartOutcome): void {
    if (outcome.kind === 'started') {
      this.#fd.recovered();
      this.counters.inc('tftp.transfers_started');
      const pending = this.#active.get(id);
      if (pending) pending.running = true;
      return;
    }
    const pending = this.#release(id);
    if (outcome.kind === 'exhausted') {
      // Out of descriptors: silence, as for maxTransfers (an ERROR makes firmware give up); the
      // client's RRQ retry comes back once some are free. Counted, said rate-limited.
      this.counters.inc('tftp.dropped.fd-exhausted');
      this.#fd.refused(outcome.what === 'file' ? 'file' : 'socket', { code: outcome.code });
      return;
    }
    if (!pending || outcome.kind === 'stopped') return;
    this.counters.inc(outcome.reason === 'mode' ? 'tftp.bad_mode' : `tftp.refused.${outcome.reason}`);
    this.#refuse(pending.listener, pending.peer, outcome.code, outcome.message, outcome.reason, pending.requested);
  }

  #release(id: number): Pending | undefined {
    const pending = this.#active.get(id);
    if (!pending) return undefined;
    this.#active.delete(id);
    this.#idle.delete(id);
    this.#byKey.delete(pending.key);
    this.#busyMs = this.clock.monotonicMs();
    const n = (this.#perClient.get(pending.peer.address) ?? 1) - 1;
    if (n <= 0) this.#perClient.delete(pending.peer.address);
    else this.#perClient.set(pending.peer.address, n);
    const slot = this.#workers[pending.worker];
    if (slot) slot.active--;
    return pending;
  }

  #drop(kind: string, rinfo: dgram.RemoteInfo, detail: string): void {
    this.counters.inc(`tftp.dropped.${kind}`);
    if (this.log.isLevelEnabled('debug') && this.#limiter.allow(kind, this.clock.monotonicMs())) {
      this.log.debug({ event: 'tftp.dropped', kind, client: `${rinfo.address}:${rinfo.port}`, detail }, 'tftp packet dropped');
    }
  }

  #refuse(listener: dgram.Socket, rinfo: dgram.RemoteInfo | Peer, code: number, message: string, kind: string, file: string): void {
    try {
      listener.send(encodeError(code, message), rinfo.port, rinfo.address);
    } catch {
      // Its address went away while the request was looked up (the VIP released): nothing to answer
      // from; the client retries on the new holder. A closed socket throws here, synchronously.
      this.counters.inc('tftp.refusal_unsent');
      return;
    }
    if (this.#limiter.allow(`refused.${kind}`, this.clock.monotonicMs())) {
      this.log.info({ event: 'tftp.refused', client: `${rinfo.address}:${rinfo.port}`, file: printable(file), reason: kind, code }, `tftp request refused: ${kind}`);
    }
  }

  /** The client's lease (MAC, hostname) from the replicated state, when it has a bound one. */
  clientInfo(address: string): ClientInfo {
    const info: ClientInfo = { ip: address };
    const ip = parseIpv4(address);
    const lease = ip === null ? undefined : this.#state?.fsm.lease(ip);
    if (lease && lease.state === 'bound') {
      info.mac = lease.mac;
      if (lease.hostname !== undefined) info.hostname = lease.hostname;
    }
    return info;
  }

  /**
   * The log line of a transfer that did not complete, at most a burst per outcome per window (a
   * flood of failing requests, spoofed or not, is as many transfers as it sends); the next line
   * written says how many were left out, and the counters have every one. An ERROR from a client
   * that has taken no data is the client declining (RFC 2347 §5: it refuses our OACK; PXE ROMs ask
   * for tsize and end there on every boot): info, not a warning.
   */
  #failedLine(line: Record<string, unknown>, outcome: string, declined: boolean): void {
    if (declined) this.counters.inc('tftp.transfers_declined');
    const facts = this.#limited(declined ? 'declined' : `ended.${outcome}`, line);
    if (facts === null) return;
    if (declined) this.log.info({ ...facts, event: 'tftp.transfer.declined' }, 'tftp transfer declined by the client before any data (option refusal or size probe)');
    else this.log.warn(facts, `tftp transfer ended: ${outcome}`);
  }

  /**
   * An error of one transfer (a start or a read that failed: out of descriptors, a disk error), at
   * most a burst per event per window: when the cause is the machine's, every request fails the
   * same way and would write a line each. The next line written says how many were left out; the
   * counter `tftp.errors` has every one.
   */
  #errorLine(fields: Record<string, unknown>, message: string): void {
    this.counters.inc('tftp.errors');
    const facts = this.#limited(`error.${String(fields['event'] ?? 'other')}`, fields);
    if (facts !== null) this.log.error(facts, message);
  }

  /** A line's fields if the limiter lets a line of `kind` out now (with how many it left out before), else null (counted). */
  #limited(kind: string, fields: Record<string, unknown>): Record<string, unknown> | null {
    if (!this.#limiter.allow(kind, this.clock.monotonicMs())) {
      this.#suppressed.set(kind, (this.#suppressed.get(kind) ?? 0) + 1);
      return null;
    }
    const suppressed = this.#suppressed.get(kind);
    if (suppressed === undefined) return fields;
    this.#suppressed.delete(kind);
    return { ...fields, suppressed };
  }

  /** A transfer ended, whatever the outcome: one log line, counters, a boot event. */
  #ended(ended: EndedMessage): void {
    const pending = this.#release(ended.id);
    if (!pending) return;
    const { info, outcome } = ended;
    const ok = outcome === 'done';
    // A client that declined before any data (a size probe, an OACK refusal) is no failed transfer:
    // UEFI PXE does it on every boot, and a failure counter rising per boot hides real failures.
    if (ok) this.counters.inc('tftp.transfers_done');
    else if (!declinedBeforeData(outcome, info.bytes)) this.counters.inc('tftp.transfers_failed');
    if (ok) this.counters.inc('tftp.bytes_sent', info.size);
    const mac = pending.client.mac;
    const line = {
      event: ok ? 'tftp.transfer.done' : 'tftp.transfer.failed', ...info, requested: printable(info.requested), outcome,
      ...(mac ? { mac } : {}), ...(pending.rendered ? { rendered: true, ...pending.rendered } : {}),
    };
    if (ok) this.log.info(line, 'tftp transfer done');
    else this.#failedLine(line, outcome, declinedBeforeData(outcome, info.bytes));
    // Compute-node boot progress: "fetched this file" goes into the replicated log (leader only).
    // Bounded: a client fetching in a loop must not make one log entry (a majority fsync) per file.
    if (ok && mac !== undefined && this.#state?.isLeader() && this.#bootEvents.allow(mac, this.clock.monotonicMs())) {
      this.#state.propose({ type: 'node.boot', mac, event: 'tftp', detail: bootEventDetail(info.file, info.size, info.ms) }).catch(() => undefined);
    }
  }

  /** Ends every transfer with an ERROR so clients retry at once (planned failover). */
  cancelAll(message: string): void {
    this.#engine?.cancelAll(message);
    for (const slot of this.#workers) slot.worker?.postMessage({ type: 'cancel', message } satisfies ToWorker);
  }
}

export async function startTftp(context: ServiceContext): Promise<RunningService> {
  const config = context.config.tftp!;
  const server = new TftpServer({
    config,
    addresses: serviceAddresses(context.config, config.listen),
    log: context.log,
    clock: context.clock,
    state: context.state,
    // The boot service starts before TFTP (services/registry.ts) and renders boot files per client.
    bootFiles: context.services?.().find((s) => s.bootFiles !== undefined)?.bootFiles,
  });
  await server.start();
  return {
    name: 'tftp',
    status: () => server.status(),
    stop: (steps) => server.stop(steps),
    addAddress: (address) => server.addAddress(address),
    removeAddress: (address) => server.removeAddress(address),
    inFlight: () => server.inFlight(),
    handOver: async () => { server.cancelAll('server handing over to its partner; retry'); },
    routes: {
      'GET /v1/tftp': () => ({ status: 200, body: server.status() }),
    },
  };
}

/**
 * An ERROR from a client that has taken no data: it declined the transfer (RFC 2347 §5: it refuses
 * our OACK; UEFI and BIOS PXE ask for `tsize` alone and end there on every boot).
 */
function declinedBeforeData(outcome: string, bytes: number): boolean {
  return outcome === 'peer-error' && bytes === 0;
}
