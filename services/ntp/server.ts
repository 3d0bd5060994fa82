import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { RunningService, ServiceContext, ServiceStatus } from '../contract.js';
import { serviceAddresses } from '../../lib/listen.js';
import { literalLookup } from '../../lib/udp-lookup.js';
import { DatagramSender, SEND_FAILED, onDatagram } from '../../lib/udp-direct.js';
import { readUdpDrops } from '../../lib/udp-drops.js';
import { Counters } from '../../lib/counters.js';
import { LogLimiter } from '../../lib/log.js';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { HEADER_LENGTH, decodeNtp, referenceIdText, timestampFromUnixNs, unixNsFromTimestamp } from './wire.js';
import { admit, RateLimiter, DEFAULT_RATE_LIMIT } from './gate.js';
import { buildKissOfDeath, buildReply, replyLength, stampTransmit } from './responder.js';
import { decideReference, DEFAULT_WALL_FLOOR_UNIX_S, bestSample, type ReferenceDecision, type ReferenceSettings } from './reference.js';
import { createHrWallClock, type HrWallClock } from './hr-clock.js';
import { Sampler, type SamplerTarget } from './sampler.js';
import { combineWake, estimateWake, NO_CORRECTION, receiveCorrectionAt, type WakeCorrection } from './wake.js';
import { measureWake, PROBE_BUSY_MAX } from './wake-probe.js';
import type { NtpConfig } from './config.js';
import { parseEndpoint } from './endpoint.js';
import { CHILD_STOP_MS, KernelCapture, type CaptureState } from './capture.js';
import { stopStep } from '../../lib/stop-steps.js';
import { KernelStampTable, KERNEL_STAMP_WAIT_MS, TransmitLearner, type StampSource } from './kernel-stamps.js';
import { datagramKey, requestKey } from './pcap.js';

// The NTP service shell: one UDP socket per served address (never a wildcard: see lib/listen.ts),
// the sampler of upstreams, and a timer that re-decides the served reference every second (root
// dispersion grows with the age of the last sample). The per-packet path: receive timestamp first,
// decode, gate, build, transmit timestamp last, send. Hostile input is dropped silently and counted.

export interface NtpServiceOptions {
  /** Tests inject a clock; production uses the anchored high-resolution clock. */
  hrClock?: HrWallClock;
  /** Tests shorten the sampler's start burst. */
  burstSpacingMs?: number;
}

const REANCHOR_INTERVAL_MS = 10_000;
const REDECIDE_INTERVAL_MS = 1_000;
/**
 * Stamp-correction runs: soon after start (the first may catch start-up work and clients' first
 * burst, so two more follow quickly), then one every few minutes as the machine's load changes.
 */
const CORRECTION_FIRST_MS = [1_000, 10_000, 60_000];
const CORRECTION_INTERVAL_MS = 300_000;
/**
 * The spacings of a probe run (wake.ts): probes 1-2x `spacingMs` apart, shortest first so a
 * correction is served within a second of start; each level's figures are served as soon as it
 * ends. A run takes about 27 s (a thread asleep in Atomics.wait between probes).
 */
const WAKE_LEVELS = [{ spacingMs: 20, count: 24 }, { spacingMs: 150, count: 20 }, { spacingMs: 700, count: 20 }];
/**
 * Kernel stamps are bypassed (the capture child stopped) while requests come faster than this: the
 * loop is awake then, the estimate is good, and the child's per-packet wake-ups would cost CPU the
 * replies need (at 1,000/s offered on the 2-core test VM the capture cost 10 % of the replies).
 * 200/s is a rack of 12,800 clients polling every 64 s. Counted per quarter second in the
 * handler, so a flood stops it within 250 ms.
 */
const CAPTURE_BYPASS_PER_S = 200;
/** ... and restarted once two whole seconds in a row saw fewer than a quarter of that. */
const CAPTURE_RESUME_PER_S = CAPTURE_BYPASS_PER_S / 4;
const CAPTURE_RESUME_QUIET_S = 2;
/**
 * At most this many requests in the current quarter second make a request sparse: its reply's send
 * is cold (the loop slept), the case the learned transmit correction is for. Replies in a burst
 * send warm, a few us, and keep the probe's figure.
 */
const SPARSE_REQUESTS_MAX = 8;
const LEARNABLE_MAX = 256;

export interface NtpStatus extends ServiceStatus {
  synchronised: boolean;
  mode: ReferenceDecision['mode'];
  stratum: number;
  leap: number;
  referenceId: string;
  source: string | null;
  offsetMs: number | null;
  reason: string;
  rootDelayMs: number;
  rootDispersionMs: number;
  sources: Array<{ name: string; kind: string; reach: string; offsetMs: number | null; delayMs: number | null; stratum: number | null; problem: string | null }>;
  rateLimit: { enabled: boolean; clients: number };
  /** What the stamps are corrected by (µs), from the last probe run (wake.ts); null when turned off. */
  stampCorrection: {
    receiveUs: number; transmitUs: number; probeDelayUs: number; probes: number; measuredAgoS: number | null; problem: string | null;
    /** The receive correction by how long the loop slept before a request (ms asleep, us taken off). */
    byIdle: Array<{ idleMs: number; receiveUs: number }>;
    /** What came off the last request's receive stamp (us). */
    lastReceiveUs: number;
  } | null;
  /**
   * Receive stamps from the kernel (capture.ts): the capture child's state and why, and which stamp
   * each reply's receive time came from. null when `kernelStamps: off`.
   */
  kernelStamps: {
    state: CaptureState; problem: string | null; command: string; captured: number; starts: number;
    /** Replies by receive-stamp source: the kernel's (at once or after a wait) or the estimate's. */
    used: Record<StampSource, number>;
    /** What is added to transmit stamps while the capture runs (us), learned from our replies' kernel stamps, and from how many. */
    transmitUs: number; transmitSamples: number;
  } | null;
  counters: Record<string, number>;
}

/** Starts the NTP service the config's `ntp:` block describes. */
export async function startNtp(context: ServiceContext, options: NtpServiceOptions = {}): Promise<RunningService> {
  const config = context.config.ntp;
  if (config === undefined) throw new LanhaError('config-invalid', 'ntp service started without an ntp: block');
  const { log, clock: msClock, random } = context;
  const hr = options.hrClock ?? createHrWallClock();
  const counters = new Counters();
  const logLimit = new LogLimiter();
  const debug = log.isLevelEnabled('debug');

  const rate = config.rateLimit ?? { enabled: true, ...DEFAULT_RATE_LIMIT };
  const limiter = rate.enabled ? new RateLimiter({ interval: rate.interval, burst: rate.burst, leak: rate.leak }) : null;

  const ownAddresses = new Set<number>();
  const addresses = serviceAddresses(context.config, config.listen);
  for (const a of addresses) { const ip = parseIpv4(a); if (ip !== null) ownAddresses.add(ip); }
  if (context.config.node.address !== undefined) ownAddresses.add(context.config.node.address);

  const settings: ReferenceSettings = {
    localStratum: config.localStratum,
    maxOffsetS: config.maxOffset / 1000,
    sampleMaxAgeMs: Math.max(8 * config.pollInterval, 60_000),
    ownAddresses,
    wallFloorUnixS: DEFAULT_WALL_FLOOR_UNIX_S,
  };

  const sampler = new Sampler({
    targets: samplerTargets(context, config),
    pollIntervalMs: config.pollInterval,
    ...(options.burstSpacingMs === undefined ? {} : { burstSpacingMs: options.burstSpacingMs }),
    clock: hr,
    monotonicMs: () => msClock.monotonicMs(),
    random,
    log,
    onChange: () => redecide(),
  });

  let decision = decideReference(sampler.sources, settings, msClock.monotonicMs(), hr.nowNs());
  let served = decision.served;
  const redecide = (): void => {
    const next = decideReference(sampler.sources, settings, msClock.monotonicMs(), hr.nowNs());
    if (next.mode !== decision.mode || next.source !== decision.source || next.served.stratum !== decision.served.stratum) {
      const level = next.synchronised ? 'info' : 'warn';
      log[level]({ event: 'ntp.reference.changed', mode: next.mode, stratum: next.served.stratum, source: next.source, reason: next.reason }, `NTP: ${next.reason}`);
    }
    decision = next;
    served = next.served;
  };
  log[decision.synchronised ? 'info' : 'warn']({ event: 'ntp.reference.changed', mode: decision.mode, stratum: served.stratum, source: null, reason: decision.reason }, `NTP: ${decision.reason}`);

  // The stamp corrections (wake.ts): the receive stamp is read when the handler runs, after the
  // event loop woke up; the transmit stamp before the send call hands the datagram on.
  let correction: WakeCorrection = NO_CORRECTION;
  let correctionAt: number | null = null;
  let receiveCorrectionNs = 0n;
  let transmitCorrectionNs = 0n;
  // A request that comes longer after the previous datagram than the shortest probed spacing gets
  // the curve's correction for that time, unless the loop was busy meanwhile (as a probe after
  // busy time does not count, wake-probe.ts: that request met a loop awake, not one to wake).
  // In a flood every request takes the fast path: one subtraction.
  let slowPathNs = Number.POSITIVE_INFINITY;
  let lastRxNs = hr.nowNs();
  let lastElu: EventLoopUtilization = performance.eventLoopUtilization();
  let lastReceiveNs = 0n;

  // Per datagram, the cheapest refusal first: the header byte and the rate limiter are asked before
  // anything is decoded, so a flood the gate refuses (a wrong mode, a rate-limited client) costs a
  // read, a byte test and a table lookup, and makes no objects. The two counters every datagram
  // bumps are plain numbers (status() merges them in).
  let requests = 0;
  let replies = 0;
  const head = { version: 0, mode: 0 };
  const dropped = (reason: string, msg: Buffer, rinfo: RemoteInfo): void => {
    counters.inc(`dropped.${reason}`);
    if (debug && logLimit.allow(reason, msClock.monotonicMs())) {
      log.debug({ event: reason === 'malformed' ? 'ntp.packet.malformed' : 'ntp.packet.dropped', reason, length: msg.length, mode: msg.length > 0 ? msg[0]! & 7 : null, peer: rinfo.address }, `NTP packet dropped: ${reason}`);
    }
  };
  const onMessage = (out: DatagramSender, msg: Buffer, rinfo: RemoteInfo): void => {
    const readNs = hr.nowNs(); // first statement: dgram gives no kernel receive stamp, every µs here is error (the capture's stamp, below, replaces it when it has one)
    const gapNs = Number(readNs - lastRxNs);
    lastRxNs = readNs;
    let wakeNs = receiveCorrectionNs;
    if (gapNs > slowPathNs) {
      const elu = performance.eventLoopUtilization();
      const busy = performance.eventLoopUtilization(elu, lastElu).utilization > PROBE_BUSY_MAX;
      lastElu = elu;
      if (!busy) wakeNs = BigInt(receiveCorrectionAt(correction.curve, gapNs));
    }
    lastReceiveNs = wakeNs;
    let rxNs = readNs - wakeNs;
    requests++;
    // Source port 0 is no port a reply can go to (a forged datagram): each was answered and counted
    // as send_failed, the server's own failure.
    if (rinfo.port === 0) { dropped('source-port-zero', msg, rinfo); return; }
    if (msg.length < HEADER_LENGTH) { dropped('malformed', msg, rinfo); return; }
    head.version = (msg[0]! >>> 3) & 7;
    head.mode = msg[0]! & 7;
    const verdict = admit(head, rinfo.address, msClock.monotonicMs(), limiter, random);
    if (verdict.kind === 'drop') { dropped(verdict.reason, msg, rinfo); return; }
    if (capture !== null && capture.active) {
      // The kernel's stamp of this datagram, if the capture has it or brings it within a bound.
      if (readNs - windowStartNs > CAPTURE_WINDOW_NS) { windowStartNs = readNs; windowRequests = 0; }
      if (++windowRequests > CAPTURE_BYPASS_PER_S / 4) {
        capture.bypass(`more than ${CAPTURE_BYPASS_PER_S} requests/s: the estimate serves while the loop is busy`);
      } else {
        const key = datagramKey(rinfo.address, rinfo.port, msg);
        if (key !== null) {
          const held: Held = { out, msg: Buffer.from(msg), port: rinfo.port, address: rinfo.address, kod: verdict.kind === 'kod', estimateNs: rxNs };
          const found = stampTable.onRequest(key, held, msClock.monotonicMs());
          if (found.kind === 'wait') { holdFor(key); return; }
          if (found.kind === 'kernel') { rxNs = found.kernelNs; stampUsed.kernel++; } else stampUsed.estimate_busy++;
        }
      }
    }
    answer(out, msg, rinfo.port, rinfo.address, verdict.kind === 'kod', rxNs);
  };
  /** Decode, build, stamp and send a reply whose receive stamp is `rxNs` (the gate let it through). */
  const answer = (out: DatagramSender, msg: Buffer, port: number, address: string, kod: boolean, rxNs: bigint): void => {
    const request = decodeNtp(msg);
    if (!request.ok) { counters.inc('dropped.malformed'); return; }
    const rx = timestampFromUnixNs(rxNs);
    // Written into the sender's scratch area: it has left (or been copied) before the next is written.
    const bytes = out.buffer(replyLength(request.value));
    let reply: Uint8Array;
    if (kod) {
      reply = buildKissOfDeath(request.value, rx, undefined, bytes);
      counters.inc('kod');
    } else {
      reply = buildReply(request.value, rx, served, bytes);
      replies++;
    }
    // The last thing before the send. A reply to a sparse request (the loop slept before it) with
    // kernel stamps running: the correction learned from the kernel's stamps of such replies (their
    // send is cold, tens of us); else half a warm send call (the probe's).
    const sparse = capture !== null && capture.active && windowRequests <= SPARSE_REQUESTS_MAX;
    const transmit = timestampFromUnixNs(hr.nowNs() + (sparse ? learnedTransmitNs : transmitCorrectionNs));
    stampTransmit(reply, transmit);
    if (out.send(reply, port, address) === SEND_FAILED) counters.inc('send_failed');
    if (sparse) {
      learnable.add(`${transmit.seconds}|${transmit.fraction}`);
      if (learnable.size > LEARNABLE_MAX) learnable.delete(learnable.values().next().value!);
    }
  };

  // Kernel receive stamps (capture.ts, kernel-stamps.ts). A request whose stamp has not come yet is
  // held (a copy of its bytes) for at most KERNEL_STAMP_WAIT_MS, by one timer of its own: its reply's
  // transmit stamp is read at send, so the hold adds round-trip delay, not error.
  interface Held { out: DatagramSender; msg: Buffer; port: number; address: string; kod: boolean; estimateNs: bigint }
  const stampTable = new KernelStampTable<Held>();
  const stampUsed: Record<StampSource, number> = { kernel: 0, kernel_waited: 0, estimate_timeout: 0, estimate_busy: 0 };
  const CAPTURE_WINDOW_NS = 250_000_000n;
  let windowStartNs = 0n;
  let windowRequests = 0;
  let quietSeconds = 0;
  let requestsAtTick = 0;
  const finish = (h: Held, rxNs: bigint, source: StampSource): void => {
    stampUsed[source]++;
    answer(h.out, h.msg, h.port, h.address, h.kod, rxNs);
  };
  const holdFor = (key: string): void => {
    setTimeout(() => {
      const h = stampTable.giveUp(key);
      if (h !== null) finish(h, h.estimateNs, 'estimate_timeout');
    }, KERNEL_STAMP_WAIT_MS);
  };
  const onCaptured = (key: string, kernelNs: bigint): void => {
    const done = stampTable.onCaptured(key, kernelNs, msClock.monotonicMs());
    if (done !== null) finish(done.token, done.kernelNs, 'kernel_waited');
  };
  const transmitLearner = new TransmitLearner();
  let learnedTransmitNs = 0n;
  // The transmit stamps of replies the learner may learn from (sparse ones, above), oldest first.
  const learnable = new Set<string>();
  const onCapturedReply = (kernelNs: bigint, hi: number, lo: number): void => {
    if (!learnable.delete(`${hi}|${lo}`)) return; // a reply in a burst: its send was warm
    const residual = Number(kernelNs - unixNsFromTimestamp({ seconds: hi, fraction: lo }, kernelNs));
    const next = transmitLearner.onReply(residual);
    if (next !== null) learnedTransmitNs = BigInt(next);
  };
  let capture: KernelCapture | null = null;
  let loggedCapture = '';
  const onCaptureState = (state: CaptureState, detail: string): void => {
    if (state !== 'running') {
      for (const h of stampTable.drainWaiters()) finish(h, h.estimateNs, 'estimate_timeout');
      stampTable.clearStamps();
    }
    if (closed) return;
    // One line per change worth an operator's eye; a failing child's retries repeat the same reason.
    const reason = detail.replace(/; again in [0-9.]+ s$/, '');
    const line = `${state}|${reason}`;
    if (line === loggedCapture || state === 'starting') return;
    loggedCapture = line;
    if (state === 'running') log.info({ event: 'ntp.kernel_stamps.on', detail }, `NTP receive stamps from the kernel (${detail})`);
    else if (state === 'bypassed') log.info({ event: 'ntp.kernel_stamps.bypassed', reason: detail }, `NTP kernel receive stamps paused: ${detail}`);
    else log.warn({ event: 'ntp.kernel_stamps.off', state, reason: detail }, `NTP receive stamps estimated, not from the kernel: ${detail}`);
  };
  const checkCaptureRate = (): void => {
    const perS = requests - requestsAtTick;
    requestsAtTick = requests;
    if (capture === null || capture.state !== 'bypassed') { quietSeconds = 0; return; }
    quietSeconds = perS < CAPTURE_RESUME_PER_S ? quietSeconds + 1 : 0;
    if (quietSeconds >= CAPTURE_RESUME_QUIET_S) { quietSeconds = 0; windowRequests = 0; capture.resume(`${perS} requests/s`); }
  };

  const sockets: Socket[] = [];
  const listening: string[] = [];
  const timers: NodeJS.Timeout[] = [];
  let closed = false;
  let correcting: Promise<void> | null = null;
  const stopProbe = new AbortController();
  const correct = (): void => {
    if (correcting === null && !closed) correcting = renewCorrection().finally(() => { correcting = null; });
  };
  // The last good run of each idle level: a level that fails keeps its previous figures.
  const levels: WakeCorrection[] = WAKE_LEVELS.map(() => NO_CORRECTION);
  const renewCorrection = async (): Promise<void> => {
    for (const [i, level] of WAKE_LEVELS.entries()) {
      try {
        const run = estimateWake(await measureWake({ ...level, signal: stopProbe.signal }));
        if (closed) return;
        if (run.problem !== null) {
          if (levels[i]!.problem === null || i === 0) log.warn({ event: 'ntp.stamp_correction.failed', problem: run.problem, spacingMs: level.spacingMs }, `NTP stamp correction not renewed: ${run.problem}`);
          if (levels[i]!.problem === null) continue; // keep the last good one
        }
        levels[i] = run;
        const next = combineWake(levels);
        if (next.problem !== null) continue;
        correction = next;
        correctionAt = msClock.monotonicMs();
        receiveCorrectionNs = BigInt(next.receiveNs);
        transmitCorrectionNs = BigInt(next.transmitNs);
        slowPathNs = next.curve[0]!.idleNs;
        const byIdle = next.curve.map((p) => `${(p.idleNs / 1e6).toFixed(0)} ms: -${(p.receiveNs / 1000).toFixed(1)} us`).join(', ');
        log.info({ event: 'ntp.stamp_correction', receiveUs: next.receiveNs / 1000, transmitUs: next.transmitNs / 1000, probeDelayUs: next.delayNs / 1000, probes: next.samples, levels: next.curve.length, byIdle: statusCurve(next) },
          `NTP stamps corrected: receive by idle time ${byIdle}; transmit +${(next.transmitNs / 1000).toFixed(1)} us`);
      } catch (error) {
        if (closed) return;
        log.warn({ event: 'ntp.stamp_correction.failed', err: errorMessage(error) }, 'NTP stamp correction not measured');
      }
    }
  };
  /** Closes everything; resolves once the capture child has gone (said when it had to be killed). */
  const closeAll = async (): Promise<void> => {
    closed = true;
    stopProbe.abort();
    for (const t of timers) { clearInterval(t); clearTimeout(t); }
    const pid = capture?.pid ?? null;
    const ended = capture?.stop();
    sampler.stop();
    for (const s of sockets) { try { s.close(); } catch { /* already closed */ } }
    const outcome = await ended;
    if (outcome === 'killed' || outcome === 'left') {
      log.warn({ event: 'ntp.kernel_stamps.stop_late', pid, outcome, waitedMs: CHILD_STOP_MS },
        `the capture child ${capture?.commandLine()[0] ?? ''} (pid ${pid}) had not exited ${CHILD_STOP_MS} ms after SIGTERM; ${outcome === 'killed' ? 'killed it (SIGKILL)' : `sent SIGKILL and it had not exited ${CHILD_STOP_MS} ms later either; the stop goes on`}`);
    }
  };
  const bound = new Map<string, Socket>();
  const addAddress = async (address: string): Promise<void> => {
    if (bound.has(address)) return;
    const family = address.includes(':') ? 6 : 4;
    // Replies go to the literal source address: no deferred lookup between the transmit stamp and
    // the send. The receive buffer stays at the kernel default (as chrony's): a deeper queue would
    // only hold requests long enough that their receive stamps are late by the time we read them.
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family) });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(config.port, address, () => { socket.off('error', reject); resolve(); });
    }).catch((error: unknown) => {
      try { socket.close(); } catch { /* never bound */ }
      throw new LanhaError('bind-failed', `ntp could not bind udp ${address}:${config.port}: ${errorMessage(error)}`);
    });
    // Datagrams straight from the socket's handle and replies straight to it (lib/udp-direct.ts):
    // the receive stamp is read before dgram's emit would even start, the transmit stamp right
    // before the handle's send. Bound first: an unbound socket has no handle callback to take over.
    const out = new DatagramSender(socket);
    onDatagram(socket, (msg, rinfo) => onMessage(out, msg, rinfo));
    socket.on('error', (error) => log.warn({ event: 'ntp.socket.error', address, err: error }, 'NTP socket error'));
    sockets.push(socket);
    bound.set(address, socket);
    listening.push(`udp ${address}:${socket.address().port}`);
  };
  /** Stops answering on an address (the VIP when this node gives it up). */
  const removeAddress = async (address: string): Promise<void> => {
    const socket = bound.get(address);
    if (socket === undefined) return;
    queueDropsClosed += queueDrops(address);
    bound.delete(address);
    sockets.splice(sockets.indexOf(socket), 1);
    const i = listening.findIndex((l) => l.startsWith(`udp ${address}:`));
    if (i >= 0) listening.splice(i, 1);
    await new Promise<void>((resolve) => { try { socket.close(() => resolve()); } catch { resolve(); } });
  };
  try {
    for (const address of addresses) await addAddress(address);
    await sampler.start();
  } catch (error) {
    await closeAll();
    throw error;
  }
  const reanchor = setInterval(() => hr.reanchor(), REANCHOR_INTERVAL_MS);
  const tick = setInterval(() => { redecide(); checkCaptureRate(); }, REDECIDE_INTERVAL_MS);
  reanchor.unref();
  tick.unref();
  timers.push(reanchor, tick);
  if (config.kernelStamps !== 'off') {
    capture = new KernelCapture({
      port: config.port,
      onRequest: (r) => onCaptured(requestKey(r.address, r.port, r.transmitHi, r.transmitLo), r.kernelNs),
      onReply: (r) => onCapturedReply(r.kernelNs, r.transmitHi, r.transmitLo),
      isOwnAddress: (a) => bound.has(a),
      onState: onCaptureState,
    });
    capture.start();
  }
  if (config.stampCorrection) {
    for (const ms of CORRECTION_FIRST_MS) timers.push(setTimeout(correct, ms).unref());
    timers.push(setInterval(correct, CORRECTION_INTERVAL_MS).unref());
  }

  /**
   * Requests the kernel dropped because a socket's receive queue was full (more came than we read):
   * the shedding of a flood beyond capacity, which costs us nothing per datagram, counted from the
   * kernel's per-socket figure, plus what sockets closed since (a VIP given up) had counted.
   */
  let queueDropsClosed = 0;
  const queueDrops = (address: string): number => {
    try {
      const socket = bound.get(address);
      return socket === undefined ? 0 : readUdpDrops(address, socket.address().port) ?? 0;
    } catch {
      return 0; // closed meanwhile
    }
  };
  const countersNow = (): Record<string, number> => {
    let queueFull = queueDropsClosed;
    for (const address of bound.keys()) queueFull += queueDrops(address);
    const all: Record<string, number> = { ...counters.toJSON(), replies, requests, 'dropped.queue_full': queueFull };
    return Object.fromEntries(Object.entries(all).filter(([, v]) => v > 0).sort(([a], [b]) => a.localeCompare(b)));
  };
  const status = (): NtpStatus => {
    const now = msClock.monotonicMs();
    return {
      listening,
      synchronised: decision.synchronised,
      mode: decision.mode,
      stratum: served.stratum,
      leap: served.leap,
      referenceId: decision.mode === 'local' ? 'LOCL' : referenceIdText(served.referenceId, served.stratum),
      source: decision.source,
      offsetMs: decision.offsetS === null ? null : round3(decision.offsetS * 1000),
      reason: decision.reason,
      rootDelayMs: round3(served.rootDelayS * 1000),
      rootDispersionMs: round3(served.rootDispersionS * 1000),
      sources: sampler.sources.map((s) => {
        const best = bestSample(s, settings, now);
        return {
          name: s.name,
          kind: s.kind,
          reach: s.reach.toString(8).padStart(3, '0'),
          offsetMs: best === null ? null : round3(best.offsetS * 1000),
          delayMs: best === null ? null : round3(best.delayS * 1000),
          stratum: best === null ? null : best.stratum,
          problem: s.lastProblem,
        };
      }),
      rateLimit: { enabled: limiter !== null, clients: limiter?.clientCount ?? 0 },
      stampCorrection: config.stampCorrection ? {
        receiveUs: correction.receiveNs / 1000, transmitUs: correction.transmitNs / 1000, probeDelayUs: correction.delayNs / 1000,
        probes: correction.samples, measuredAgoS: correctionAt === null ? null : Math.round((now - correctionAt) / 1000), problem: correction.problem,
        byIdle: statusCurve(correction), lastReceiveUs: Number(lastReceiveNs) / 1000,
      } : null,
      kernelStamps: capture === null ? null : {
        state: capture.state, problem: capture.problem, command: capture.commandLine().join(' '),
        captured: capture.captured, starts: capture.starts, used: { ...stampUsed },
        transmitUs: transmitLearner.correctionNs / 1000, transmitSamples: transmitLearner.samples,
      },
      counters: countersNow(),
    };
  };

  return {
    name: 'ntp',
    status,
    stop: async (steps) => {
      await stopStep(steps, 'ntp.capture', closeAll);
      await stopStep(steps, 'ntp.stamp_probe', () => correcting);
    },
    addAddress,
    removeAddress,
    routes: { 'GET /v1/ntp': () => ({ status: 200, body: status() }) },
  };
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** The configured upstreams, plus the other LAN-service node(s) of the cluster as peers. */
export function samplerTargets(context: Pick<ServiceContext, 'config'>, config: NtpConfig): SamplerTarget[] {
  const targets: SamplerTarget[] = [];
  for (const text of config.upstreams) {
    const e = parseEndpoint(text);
    if (e !== null) targets.push({ kind: 'upstream', address: e.address, port: e.port });
  }
  if (config.samplePeer) {
    const self = context.config.node;
    for (const m of context.config.cluster?.members ?? []) {
      if (m.name === self.name || m.role !== 'server' || parseIpv4(m.address) === null) continue;
      if (self.address !== undefined && formatIpv4(self.address) === m.address) continue;
      targets.push({ kind: 'peer', address: m.address, port: config.port });
    }
  }
  return targets;
}

/** The correction curve as status shows it: ms asleep, us taken off. */
function statusCurve(c: WakeCorrection): Array<{ idleMs: number; receiveUs: number }> {
  return c.curve.map((p) => ({ idleMs: Math.round(p.idleNs / 1e4) / 100, receiveUs: p.receiveNs / 1000 }));
}
