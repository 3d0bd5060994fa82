// Whether one engine thread polls for a lock-step ACK or sleeps for it (pure: times in
// microseconds are passed in).
//
// A lock-step transfer (windowsize 1) sends a DATA block and then waits one round trip for its
// ACK. Sleeping in epoll for that wait costs a sleep and a wake-up per block; on an idle CPU (more
// so on a virtual machine, where an idle vCPU halts) the wake-up is a large part of the round
// trip. Polling the loop without blocking for a short window after the send picks the ACK up at
// once; the engine (engine.ts LoopPoller) turns a window into a chain of setImmediate, which makes
// libuv poll with timeout 0. But a spinning thread takes a CPU that the client, or anything else on
// the machine, may need: on a loaded machine it makes the round trip longer, not shorter.
//
// So the choice is measured, not guessed. Each round trip (one DATA sent to the next, which
// includes both ends' work and this thread's wake-up when it slept) is a sample. Blocks go in epochs of
// EPOCH_BLOCKS; a cycle of CYCLE_EPOCHS epochs starts with one epoch sleeping and one polling,
// and the rest of the cycle does what had the lower mean round trip, polling only when it was at
// least POLL_GAIN_MIN better (it costs CPU). Bounds: a window is at most `maxUs`; polling only
// while exactly one transfer runs on the thread (with more, the loop has real work, and spinning
// for one client would delay the others; the epoch starts over when it is one again); a turn of the
// loop longer than PREEMPTED_US (the thread lost its CPU) ends the window at once.

/** Round trips per epoch (about 5-10 ms of a lock-step stream on loopback). */
export const EPOCH_BLOCKS = 128;
/** Epochs per cycle: a sleeping and a polling probe, then the better mode for the rest. */
export const CYCLE_EPOCHS = 8;
/** The longest cycle, after polling probes that lost. */
export const CYCLE_EPOCHS_MAX = 128;
/** Polling must shorten the mean round trip by this fraction to be chosen. */
export const POLL_GAIN_MIN = 0.05;
/** A round trip longer than this counts as this much (a lost ACK's retransmit is not the mode's doing). */
export const SAMPLE_MAX_US = 2_000;
/** One turn of the loop longer than this: the thread was descheduled; the window ends. */
export const PREEMPTED_US = 300;

export const enum TurnOutcome {
  /** Poll on: the ACK may still come in the window. */
  poll = 0,
  /** The window ended without the ACK: sleep as usual. */
  ended = 1,
  /** The thread was descheduled during the window: sleep as usual. */
  preempted = 2,
}

/** What a round trip's sample ended (BusyPoll.sample). */
export const enum EpochEnd {
  none = 0,
  slept = 1,
  polled = 2,
  /** The sleeping probe: its mean is sleepMeanUs. */
  sleepingProbe = 3,
  /** The polling probe: its mean is pollMeanUs. */
  pollingProbe = 4,
}

export class BusyPoll {
  /** The longest window (0: never poll). */
  readonly maxUs: number;
  /** Mean round trip of the last sleeping and polling probe epochs (0: not measured yet). */
  sleepMeanUs = 0;
  pollMeanUs = 0;
  /** Epochs polled and slept (probes included), windows that ended without their ACK, preemptions. */
  pollEpochs = 0;
  sleepEpochs = 0;
  misses = 0;
  preemptions = 0;
  /** The epoch within the cycle (0: the sleeping probe, 1: the polling probe). */
  #epoch = 0;
  /** Epochs in the current cycle. */
  cycleEpochs = CYCLE_EPOCHS;
  #samples = 0;
  #sumUs = 0;

  constructor(maxUs: number) {
    this.maxUs = maxUs;
  }

  /** Whether the current epoch polls. */
  get polling(): boolean {
    if (this.maxUs <= 0) return false;
    if (this.#epoch === 0) return false;
    if (this.#epoch === 1) return true;
    return this.pollWins;
  }

  /** Whether the last polling probe beat the last sleeping one by POLL_GAIN_MIN. */
  get pollWins(): boolean {
    return this.pollMeanUs > 0 && this.pollMeanUs <= this.sleepMeanUs * (1 - POLL_GAIN_MIN);
  }

  /**
   * A lock-step DATA went out at `nowUs` with `transfers` running on this thread: the end of the
   * window to poll in, or 0 to sleep as usual.
   */
  open(nowUs: number, transfers: number): number {
    if (transfers !== 1) {
      this.#restartEpoch();
      return 0;
    }
    return this.polling ? nowUs + this.maxUs : 0;
  }

  /** One lock-step round trip, one DATA sent to the next, `rttUs`, in the current epoch's mode. */
  sample(rttUs: number): EpochEnd {
    if (this.maxUs <= 0) return EpochEnd.none;
    this.#sumUs += Math.min(SAMPLE_MAX_US, Math.max(0, rttUs));
    if (++this.#samples < EPOCH_BLOCKS) return EpochEnd.none;
    const mean = this.#sumUs / this.#samples;
    let ended: EpochEnd;
    if (this.#epoch === 0) {
      this.sleepMeanUs = mean;
      this.sleepEpochs++;
      ended = EpochEnd.sleepingProbe;
    } else if (this.#epoch === 1) {
      this.pollMeanUs = mean;
      this.cycleEpochs = this.pollWins ? CYCLE_EPOCHS : Math.min(CYCLE_EPOCHS_MAX, this.cycleEpochs * 2);
      this.pollEpochs++;
      ended = EpochEnd.pollingProbe;
    } else if (this.polling) {
      this.pollEpochs++;
      ended = EpochEnd.polled;
    } else {
      this.sleepEpochs++;
      ended = EpochEnd.slept;
    }
    this.#epoch = (this.#epoch + 1) % this.cycleEpochs;
    this.#restartEpoch();
    return ended;
  }

  /**
   * One turn of the polling loop at `nowUs`, the previous one (or the send) at `lastUs`, the window
   * ending at `endUs`.
   */
  turn(nowUs: number, lastUs: number, endUs: number): TurnOutcome {
    if (nowUs - lastUs > PREEMPTED_US) {
      this.preemptions++;
      return TurnOutcome.preempted;
    }
    if (nowUs < endUs) return TurnOutcome.poll;
    this.misses++;
    return TurnOutcome.ended;
  }

  /** Samples from a mixed epoch (another transfer ran beside) do not count. */
  #restartEpoch(): void {
    this.#samples = 0;
    this.#sumUs = 0;
  }
}
