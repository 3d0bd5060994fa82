// How late a process's event loop runs its timers (the pauses that make a latency tail), measured
// without waking an idle process a hundred times a second.
//
// perf_hooks.monitorEventLoopDelay at a 10 ms resolution woke every daemon and DNS worker 100 times
// a second, idle or not: on a Raspberry Pi most of the idle CPU and wake-ups (bench:idle). Here one
// probe timer measures its own lateness, every 10 ms while the loop is busy (more than
// BUSY_UTILIZATION of its time in use over the last second: then the samples are what a request
// waits) and every second while idle (nothing waits then; a stall of an idle loop still shows when
// it holds up a probe, and GC pauses are counted on their own, lib/memory.ts). The mode is decided
// again every second from the event loop's utilisation, so a burst of work gets fine samples within
// a second of starting.

import { createHistogram, performance, type EventLoopUtilization, type RecordableHistogram } from 'node:perf_hooks';

export const BUSY_SAMPLE_MS = 10;
export const IDLE_SAMPLE_MS = 1000;
/** Share of the last second the loop spent running code above which it counts as busy. */
export const BUSY_UTILIZATION = 0.05;

export interface LoopDelayReading {
  /** Lateness percentiles and maximum since the start, ms. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Samples taken (both modes), and whether the probe runs at the busy rate now. */
  samples: number;
  busy: boolean;
}

/** Lateness statistics of the samples since the last `takeWindow` (a scrape), ms; zeros without samples. */
export interface LoopDelayWindow { minMs: number; maxMs: number; meanMs: number; stddevMs: number; p50Ms: number; p90Ms: number; p99Ms: number; samples: number }

export class LoopDelayProbe {
  readonly #lateness: RecordableHistogram = createHistogram();
  readonly #window: RecordableHistogram = createHistogram();
  #timer: NodeJS.Timeout | null = null;
  #dueAt = 0;
  #busy = false;
  #decidedAt = 0;
  #elu: EventLoopUtilization = performance.eventLoopUtilization();

  start(): void {
    if (this.#timer !== null) return;
    this.#decidedAt = performance.now();
    this.#arm(IDLE_SAMPLE_MS);
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  get running(): boolean { return this.#timer !== null; }

  reading(): LoopDelayReading {
    const h = this.#lateness;
    const ms = (us: number): number => (h.count === 0 ? 0 : Math.max(0, us - 1) / 1000);
    return { p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max), samples: h.count, busy: this.#busy };
  }

  /** The samples since the last call, then forgets them (Prometheus' nodejs_eventloop_lag_* gauges, per scrape). */
  takeWindow(): LoopDelayWindow {
    const h = this.#window;
    const ms = (us: number): number => (h.count === 0 ? 0 : Math.max(0, us - 1) / 1000);
    const out = {
      minMs: ms(h.min), maxMs: ms(h.max), meanMs: ms(h.mean), stddevMs: h.count === 0 ? 0 : h.stddev / 1000,
      p50Ms: ms(h.percentile(50)), p90Ms: ms(h.percentile(90)), p99Ms: ms(h.percentile(99)), samples: h.count,
    };
    h.reset();
    return out;
  }

  #arm(afterMs: number): void {
    this.#dueAt = performance.now() + afterMs;
    this.#timer = setTimeout(() => this.#fire(), afterMs);
    this.#timer.unref();
  }

  #fire(): void {
    const now = performance.now();
    // Stored in µs + 1 (a recordable histogram takes integers >= 1).
    const us = Math.max(1, Math.round((now - this.#dueAt) * 1000) + 1);
    this.#lateness.record(us);
    this.#window.record(us);
    if (now - this.#decidedAt >= IDLE_SAMPLE_MS) {
      const elu = performance.eventLoopUtilization();
      this.#busy = performance.eventLoopUtilization(elu, this.#elu).utilization > BUSY_UTILIZATION;
      this.#elu = elu;
      this.#decidedAt = now;
    }
    if (this.#timer !== null) this.#arm(this.#busy ? BUSY_SAMPLE_MS : IDLE_SAMPLE_MS);
  }
}

let shared: LoopDelayProbe | null = null;

/** This process's probe, started on first use (the daemon's memory report and TFTP status share it). */
export function processLoopDelay(): LoopDelayProbe {
  shared ??= new LoopDelayProbe();
  shared.start();
  return shared;
}
