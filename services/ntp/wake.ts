// The corrections the NTP shell applies to its two stamps, from probe measurements (wake-probe.ts).
// Node has no kernel receive timestamps: a request's receive stamp is read when the JS handler runs,
// which is after the kernel queued the datagram by the wake-up of the sleeping event loop (scheduler,
// epoll, libuv, the JS dispatch). The transmit stamp is read before the send call, which puts the
// datagram on the wire part-way through. A client's offset error is (receive lateness - transmit
// earliness) / 2, so both are estimated from measurements and taken off, each bounded.
// Pure: the numbers come in, the corrections go out. No clock, no sockets.

/** Never take more than this off a receive stamp (a probe run on a machine stalled for seconds). */
export const RECEIVE_CORRECTION_MAX_NS = 250_000;
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
}

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
}

export const NO_CORRECTION: WakeCorrection = { receiveNs: 0, transmitNs: 0, delayNs: 0, samples: 0, problem: 'not measured yet' };

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
  return {
    receiveNs: clamp(delayNs - proberSend, RECEIVE_CORRECTION_MAX_NS),
    transmitNs: clamp(ownSend / 2, TRANSMIT_CORRECTION_MAX_NS),
    delayNs: Math.round(delayNs),
    samples: delays.length,
    problem: null,
  };
}
