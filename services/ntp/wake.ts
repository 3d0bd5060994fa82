// The corrections the NTP shell applies to its two stamps, from probe measurements (wake-probe.ts).
// Node has no kernel receive timestamps: a request's receive stamp is read when the JS handler runs,
// which is after the kernel queued the datagram by the wake-up of the sleeping event loop (scheduler,
// epoll, libuv, the JS dispatch). The transmit stamp is read before the send call, which puts the
// datagram on the wire part-way through. A client's offset error is (receive lateness - transmit
// earliness) / 2, so both are estimated from measurements and taken off, each bounded.
// The wake-up costs more the longer the loop slept (measured on the 2-core VM: a first quartile of
// ~0.1 ms 20 ms after the previous datagram, ~0.2 ms after 0.3 s, ~0.55 ms after 1-2 s; the
// scheduler's run-queue wait a small part of it): probe runs at a few spacings give a curve, and each
// request's receive stamp is corrected by the curve at the time since the datagram before it.
// Pure: the numbers come in, the corrections go out. No clock, no sockets.

/** Never take more than this off a receive stamp (a probe run on a machine stalled for seconds). */
export const RECEIVE_CORRECTION_MAX_NS = 1_000_000;
/** Never add more than this to a transmit stamp. */
export const TRANSMIT_CORRECTION_MAX_NS = 25_000;
/** Fewer probes than this: no correction (the estimate would be noise). */
export const WAKE_SAMPLES_MIN = 16;
/**
 * The quantile of probe delays used. Each of a client's samples paid a wake-up of its own, and
 * clients favour their least-delayed samples (ntpdate keeps the best of 4, chronyd weights its
 * regression against samples delayed more than the least): a low quantile, not the median.
 */
export const WAKE_DELAY_QUANTILE = 0.25;

export interface WakeMeasurement {
  /** Per probe: ns from the prober's stamp (just before its send) to the first statement of our handler. */
  delaysNs: readonly number[];
  /** ns a send() call takes on the prober's thread (the part of a probe's delay that is not ours). */
  proberSendNs: readonly number[];
  /** ns a send() call of a 48-byte reply takes on our thread (stamp to the call's return). */
  sendNs: readonly number[];
  /** Probes left out: the event loop was busy before they came (they measure the work, not the wake-up). */
  busy?: number;
  /** Per counted probe: ns since the datagram before it (the idle time the curve is indexed by). */
  idleNs?: readonly number[];
}

/** One point of the curve: `idleNs` after the previous datagram, `receiveNs` comes off a receive stamp. */
export interface WakePoint { idleNs: number; receiveNs: number }

export interface WakeCorrection {
  /** Taken off every receive stamp. */
  receiveNs: number;
  /** Added to every transmit stamp. */
  transmitNs: number;
  /** The probe delay quantile the receive correction came from (ns), and the probes behind it. */
  delayNs: number;
  samples: number;
  /** Why there is no correction (too few probes), or null. */
  problem: string | null;
  /** The receive correction by idle time, shortest idle first (one point per probed level). */
  curve: readonly WakePoint[];
}

export const NO_CORRECTION: WakeCorrection = { receiveNs: 0, transmitNs: 0, delayNs: 0, samples: 0, problem: 'not measured yet', curve: [] };

/** The quantile q (0..1) of values (nearest rank on a sorted copy); NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))]!;
}

const clamp = (v: number, max: number): number => (Number.isFinite(v) ? Math.round(Math.min(max, Math.max(0, v))) : 0);

/**
 * The corrections a probe run supports. Receive: the low quantile of probe delays less the prober's
 * own cheapest send (its stamp is read before its send call, so part of each delay is the prober's
 * send and not our wake-up). Transmit: half our cheapest send call (the datagram is handed on
 * somewhere inside the call; half is the unbiased guess). Both bounded, both 0 on too few probes.
 */
export function estimateWake(m: WakeMeasurement): WakeCorrection {
  const delays = m.delaysNs.filter((v) => Number.isFinite(v) && v >= 0);
  if (delays.length < WAKE_SAMPLES_MIN) {
    const busy = m.busy === undefined || m.busy === 0 ? '' : `, ${m.busy} more came while the event loop was busy`;
    return { ...NO_CORRECTION, samples: delays.length, problem: `${delays.length} probes answered on an idle event loop (at least ${WAKE_SAMPLES_MIN} needed${busy})` };
  }
  const delayNs = quantile(delays, WAKE_DELAY_QUANTILE);
  const proberSend = m.proberSendNs.length > 0 ? Math.min(...m.proberSendNs) : 0;
  const ownSend = m.sendNs.length > 0 ? Math.min(...m.sendNs) : 0;
  const receiveNs = clamp(delayNs - proberSend, RECEIVE_CORRECTION_MAX_NS);
  const idle = quantile(m.idleNs ?? [], 0.5);
  return {
    receiveNs,
    transmitNs: clamp(ownSend / 2, TRANSMIT_CORRECTION_MAX_NS),
    delayNs: Math.round(delayNs),
    samples: delays.length,
    problem: null,
    curve: [{ idleNs: Number.isFinite(idle) && idle > 0 ? Math.round(idle) : 0, receiveNs }],
  };
}

/**
 * One correction from the runs at several idle levels: the curve of every run that measured
 * enough probes, by idle time; the transmit correction and the figures of the shortest idle (the
 * least a request pays). The problem of the first run when none measured enough.
 */
export function combineWake(runs: readonly WakeCorrection[]): WakeCorrection {
  const good = runs.filter((r) => r.problem === null && r.curve.length > 0);
  if (good.length === 0) return runs[0] ?? NO_CORRECTION;
  const curve = good.flatMap((r) => r.curve).sort((a, b) => a.idleNs - b.idleNs);
  const first = good.reduce((a, b) => (b.curve[0]!.idleNs < a.curve[0]!.idleNs ? b : a));
  return { ...first, receiveNs: curve[0]!.receiveNs, samples: good.reduce((n, r) => n + r.samples, 0), curve };
}

/**
 * What comes off a receive stamp `idleNs` after the previous datagram: the curve, linear in the
 * logarithm of the idle time between its points, its first point below them, its last above them
 * (never extrapolated). 0 for no curve; always within 0..RECEIVE_CORRECTION_MAX_NS.
 */
export function receiveCorrectionAt(curve: readonly WakePoint[], idleNs: number): number {
  if (curve.length === 0) return 0;
  const first = curve[0]!;
  const last = curve[curve.length - 1]!;
  if (!(idleNs > first.idleNs) || first.idleNs <= 0) return first.receiveNs;
  if (idleNs >= last.idleNs) return last.receiveNs;
  let i = 1;
  while (curve[i]!.idleNs < idleNs) i++;
  const a = curve[i - 1]!;
  const b = curve[i]!;
  if (b.idleNs <= a.idleNs) return b.receiveNs;
  const f = Math.log(idleNs / a.idleNs) / Math.log(b.idleNs / a.idleNs);
  return clamp(a.receiveNs + f * (b.receiveNs - a.receiveNs), RECEIVE_CORRECTION_MAX_NS);
}
