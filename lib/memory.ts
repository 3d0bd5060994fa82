// Memory of the daemon's processes, for `lanctl status` and the benches: where the resident memory
// goes (V8 heap, buffers outside it, the rest: code, stacks, the binary's pages), and the pauses
// that make a latency tail (garbage collection, a late event loop).

import { LanhaError } from './errors.js';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { processLoopDelay, type LoopDelayProbe } from './loop-delay.js';

/**
 * V8 flags of the daemon (the systemd unit's ExecStart; the benches start it the same way): V8's
 * young generation grows to 2 x 16 MiB under load by default. 8 MiB semi-spaces keep what a request
 * holds while it waits for its fsync (a DHCP exchange, ~100 ms on a busy disk) dying young: with
 * 1 MiB, GC took ~1 ms per DHCPACK (everything in flight was promoted to the old generation), with 4
 * MiB 0.33 ms, with 8 MiB 0.19 ms, with the default 0.16 ms (services/dhcp/README.md).
 * --heap-growing-percent=20: after each full collection V8 lets the old generation grow by 20 %
 * before the next, instead of up to 4x under a high allocation rate. After three floods of DNS hits
 * and forwarding misses the daemon kept a 91 MiB heap (79 MiB of it garbage) without it, 46 MiB
 * with it (daemon + worker 152 -> 96 MiB); under bench:dhcp GC per ACK stayed at 0.05-0.08 ms
 * either way (services/dns/README.md, Memory).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=20'];

/**
 * V8 flags of the DNS UDP worker processes: they hold nothing for long (an answer is sent in the same
 * turn; a forwarded miss waits one upstream round trip), so 2 MiB semi-spaces cost little GC and
 * keep ~25 MiB less resident per worker under load than the default. Not for the daemon: it caps the
 * young generation, which DHCP needs (see DAEMON_NODE_FLAGS). --no-parallel-scavenge: a scavenge of
 * a young generation this small gains nothing from helper threads, and on a busy machine it waits for
 * them (scavenges of 1.5-1.6 ms instead of 2.3-5.2 ms, bench:dns pauses, three A/B pairs;
 * services/dns/README.md); marking and sweeping the old generation may still use them.
 * No --optimize-for-size (shipped until session 13): it held the young generation at 1 MiB whatever
 * the semi-space flags say and collected the old one more eagerly, and under a flood of forwarding
 * misses the worker's collections were what the slowest misses waited on: every one of the slowest
 * 1 % overlapped a collection (bench:dns miss trace, LANHA_DNS_MISS_TRACE). Without it, per 10,000
 * misses in one process (bench/dns-miss-alloc.js, three interleaved rounds): 28-31 scavenges and 1-2
 * old-generation pauses against 59 and 5, GC 117-368 against 332-607 ms, CPU per miss 68-70 against
 * 86-101 us; in bench:dns GC took a third less of the worker's time for ~12 MiB more resident after
 * the floods (services/dns/README.md, session 13).
 */
export const DNS_WORKER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--no-parallel-scavenge'];

/**
 * V8 flags an operator (or a benchmark's A/B) may give the DNS UDP workers instead of
 * DNS_WORKER_NODE_FLAGS: the young and old generation's sizes and the collector's and the lazy
 * compiler's trade-offs, nothing that loads code, opens a port or writes a file.
 */
const WORKER_FLAG_NAMES = new Set([
  'max-semi-space-size', 'min-semi-space-size', 'semi-space-growth-factor', 'max-old-space-size', 'heap-growing-percent',
  'optimize-for-size', 'single-threaded-gc', 'parallel-scavenge', 'concurrent-marking', 'lazy-feedback-allocation', 'max-lazy',
]);
const WORKER_FLAG = /^--(no-)?([a-z][a-z-]*)(=(\d+(\.\d+)?))?$/;

/**
 * LANHA_DNS_WORKER_NODE_FLAGS (environment): the V8 flags of the DNS UDP worker processes, separated
 * by spaces, in place of DNS_WORKER_NODE_FLAGS (unset or blank: those). Only the flags in
 * WORKER_FLAG_NAMES (also as --no-<name>), values plain numbers; anything else is refused by name,
 * so a typo stops the start instead of running the workers with V8's defaults.
 */
export function dnsWorkerNodeFlagsFromEnv(text = process.env['LANHA_DNS_WORKER_NODE_FLAGS']): readonly string[] {
  if (text === undefined || text.trim() === '') return DNS_WORKER_NODE_FLAGS;
  const flags = text.trim().split(/\s+/);
  for (const flag of flags) {
    const m = WORKER_FLAG.exec(flag);
    if (m === null || !WORKER_FLAG_NAMES.has(m[2]!) || (m[1] !== undefined && m[3] !== undefined)) {
      throw new LanhaError('config-invalid', `LANHA_DNS_WORKER_NODE_FLAGS: ${JSON.stringify(flag)} is not one of the DNS worker's V8 flags `
        + `(--[no-]NAME or --NAME=NUMBER, NAME one of ${[...WORKER_FLAG_NAMES].join(', ')})`);
    }
  }
  return flags;
}

export interface ProcessMemory {
  pid: number;
  /** What the process is: "daemon" or e.g. "dns worker 0". */
  role: string;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  /** Memory of Buffers and other C++ objects tied to JS objects (arrayBuffers included). */
  externalMiB: number;
  /**
   * Where the main thread's V8 heap is (resident pages per space): the young generation (new: both
   * semi-spaces, sized by --max-semi-space-size under load), the old one (objects that survived, the
   * modules' functions and bytecode among them), compiled code, and objects too large for a page.
   * Worker threads' heaps are not in it (they are in rssMiB).
   */
  heapSpacesMiB?: HeapSpaces;
  /** Pauses since the process started (null until `watchPauses` ran in it). */
  pauses?: Pauses | null;
}

/** What stopped the process's event loop: V8's collections and how late the loop ran. */
export interface Pauses {
  /** Young-generation collections (scavenges): count, total and longest pause. */
  minorCount: number;
  minorMs: number;
  minorMaxMs: number;
  /** Old-generation collections (mark-compact, incremental marking steps and weak callbacks). */
  majorCount: number;
  majorMs: number;
  majorMaxMs: number;
  /** How late the loop ran a timer (lib/loop-delay.ts: sampled every 10 ms while busy, every second while idle): p99 and max since start. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

/** Resident MiB of the main thread's V8 heap spaces (ProcessMemory.heapSpacesMiB). */
export interface HeapSpaces {
  new: number;
  old: number;
  code: number;
  largeObject: number;
}

let pauses: Pauses | null = null;
let loopDelay: LoopDelayProbe | null = null;

/**
 * Starts counting this process's GC pauses and event-loop delay (once per process; cheap: one
 * entry per collection, one probe timer: every 10 ms while the loop is busy, every second while it
 * is idle, lib/loop-delay.ts). `processMemory` reports them from then on.
 */
export function watchPauses(): void {
  if (pauses !== null) return;
  const p: Pauses = { minorCount: 0, minorMs: 0, minorMaxMs: 0, majorCount: 0, majorMs: 0, majorMaxMs: 0, loopDelayP99Ms: 0, loopDelayMaxMs: 0 };
  pauses = p;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } | null }).detail?.kind;
      if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        p.minorCount++; p.minorMs += e.duration; if (e.duration > p.minorMaxMs) p.minorMaxMs = e.duration;
      } else {
        p.majorCount++; p.majorMs += e.duration; if (e.duration > p.majorMaxMs) p.majorMaxMs = e.duration;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  loopDelay = processLoopDelay();
}

const ms2 = (ms: number): number => Math.round(ms * 100) / 100;

function pausesNow(): Pauses | null {
  if (pauses === null) return null;
  const d = loopDelay!.reading();
  const p = pauses;
  return {
    minorCount: p.minorCount, minorMs: ms2(p.minorMs), minorMaxMs: ms2(p.minorMaxMs),
    majorCount: p.majorCount, majorMs: ms2(p.majorMs), majorMaxMs: ms2(p.majorMaxMs),
    loopDelayP99Ms: ms2(d.p99Ms), loopDelayMaxMs: ms2(d.maxMs),
  };
}

const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

let lastRss = 0;

/**
 * This process's memory, from process.memoryUsage(). That reads the resident size from /proc and
 * throws EMFILE while the process is out of file descriptors, exactly when an operator runs
 * `lanctl status` to see why: the heap figures then come from V8 and the resident size is the last
 * one read.
 */
export function processMemory(role: string): ProcessMemory {
  let m: { rss: number; heapUsed: number; heapTotal: number; external: number };
  try {
    m = process.memoryUsage();
    lastRss = m.rss;
  } catch {
    const h = getHeapStatistics();
    m = { rss: lastRss, heapUsed: h.used_heap_size, heapTotal: h.total_heap_size, external: h.external_memory };
  }
  return { pid: process.pid, role, rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), heapTotalMiB: mib(m.heapTotal), externalMiB: mib(m.external), heapSpacesMiB: heapSpaces(), pauses: pausesNow() };
}

/** The main thread's heap spaces, resident MiB (read from V8, no file: answers when out of descriptors too). */
export function heapSpaces(): HeapSpaces {
  const s: HeapSpaces = { new: 0, old: 0, code: 0, largeObject: 0 };
  for (const space of getHeapSpaceStatistics()) {
    const name = space.space_name;
    const bytes = space.physical_space_size;
    if (name === 'new_space') s.new += bytes;
    else if (name === 'code_space' || name === 'code_large_object_space') s.code += bytes;
    else if (name.endsWith('large_object_space')) s.largeObject += bytes;
    else s.old += bytes; // old, map (older V8), read-only, shared
  }
  return { new: mib(s.new), old: mib(s.old), code: mib(s.code), largeObject: mib(s.largeObject) };
}
