import type { Command } from './commands.js';

// Compute-node boot progress (`node.boot`): what the replicated timeline keeps, and how often the
// serving shells (TFTP, boot HTTP) may propose an event. Every bound is here: a client that fetches
// one file in a loop, or a flood of clients with fresh MACs, costs a few log entries a minute and a
// fixed amount of memory, and cannot push a node's firmware DHCP out of its own timeline.
// Pure: apply-side helpers take the state they change, the limiter takes the time.

export interface BootEvent {
  at: number;
  event: string;
  detail?: string;
}

/** Events kept per MAC (newest), and at most this many of one kind among them. */
export const BOOT_EVENTS_KEPT = 32;
export const BOOT_EVENTS_PER_KIND = 8;
/** MACs with a timeline; past it the one whose last event is oldest goes (inventory nodes last). */
export const BOOT_MACS_MAX = 4096;
/** Longest detail kept (a file name and its size); control characters become "?". */
export const BOOT_DETAIL_MAX = 200;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const EVENT = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/**
 * How far before its entry's log time an event's own time (`node.boot` `at`) is taken: a member
 * holds an event for the leader at most 10 minutes (boot-relay.ts RELAY_HELD_MS), and clocks differ
 * a little. Earlier is taken as this bound; later than the log time as the log time.
 */
export const BOOT_EVENT_EARLIEST_MS = 11 * 60_000;

/** The time a `node.boot` entry at log time `logAt` records: its own `at`, within [logAt - BOOT_EVENT_EARLIEST_MS, logAt]. */
export function bootEventTime(command: Extract<Command, { type: 'node.boot' }>, logAt: number): number {
  const own = command.at;
  if (typeof own !== 'number' || !Number.isFinite(own)) return logAt;
  return Math.min(logAt, Math.max(logAt - BOOT_EVENT_EARLIEST_MS, Math.round(own)));
}

/** The event a `node.boot` entry records at log time `at`, or null when the entry is malformed. */
export function bootEventOf(command: Extract<Command, { type: 'node.boot' }>, at: number): { mac: string; event: BootEvent } | null {
  if (typeof command.mac !== 'string' || !MAC.test(command.mac) || typeof command.event !== 'string' || !EVENT.test(command.event)) return null;
  const event: BootEvent = { at: bootEventTime(command, at), event: command.event };
  if (typeof command.detail === 'string') event.detail = command.detail.slice(0, BOOT_DETAIL_MAX).replace(/[^\x20-\x7e]/g, '?');
  return { mac: command.mac, event };
}

/**
 * Adds `event` to a MAC's events (oldest first) in place, after every event not later than it (an
 * event relayed from another member can be older than the last one recorded): its own kind's oldest
 * goes first past BOOT_EVENTS_PER_KIND, then the oldest past BOOT_EVENTS_KEPT.
 */
export function appendBootEvent(events: BootEvent[], event: BootEvent): void {
  let sameKind = 0;
  let oldestOfKind = -1;
  for (let i = 0; i < events.length; i++) {
    if (events[i]!.event !== event.event) continue;
    if (oldestOfKind < 0) oldestOfKind = i;
    sameKind++;
  }
  if (sameKind >= BOOT_EVENTS_PER_KIND) events.splice(oldestOfKind, 1);
  let at = events.length;
  while (at > 0 && events[at - 1]!.at > event.at) at--;
  events.splice(at, 0, event);
  if (events.length > BOOT_EVENTS_KEPT) events.splice(0, events.length - BOOT_EVENTS_KEPT);
}

/**
 * The MAC whose timeline goes when there are more than BOOT_MACS_MAX: not an inventory node if any
 * other is left, then the least recent last event, then the least MAC. By content only, so every
 * replica (and a restored one) drops the same.
 */
export function bootMacToDrop(timelines: ReadonlyMap<string, readonly BootEvent[]>, isNode: (mac: string) => boolean): string | undefined {
  let drop: { mac: string; node: boolean; last: number } | undefined;
  for (const [mac, events] of timelines) {
    const candidate = { mac, node: isNode(mac), last: events[events.length - 1]?.at ?? -Infinity };
    if (drop === undefined || Number(candidate.node) < Number(drop.node)
      || (candidate.node === drop.node && (candidate.last < drop.last || (candidate.last === drop.last && candidate.mac < drop.mac)))) drop = candidate;
  }
  return drop?.mac;
}

export interface BootEventLimits {
  /** Per MAC: at most `perMac` events in a window of `intervalMs`. */
  intervalMs: number;
  perMac: number;
  /** All MACs together, per second. */
  perSecond: number;
  /** MACs tracked at once; past it (inside their windows) new MACs are refused. */
  max: number;
}

/** A boot fetches a handful of files in seconds (pxelinux.0, ldlinux, menu, kernel, initrd): room for two boots a minute. */
export const BOOT_EVENT_LIMITS: BootEventLimits = { intervalMs: 60_000, perMac: 16, perSecond: 20, max: 4096 };

/**
 * Whether a served file becomes a `node.boot` proposal: a client that fetches in a loop, or many
 * clients at once, would otherwise make one log entry (an fsync on a majority) per fetch.
 */
export class BootEventLimiter {
  readonly #limits: BootEventLimits;
  readonly #windows = new Map<string, { start: number; count: number }>();
  #second = { start: -Infinity, count: 0 };

  constructor(limits: Partial<BootEventLimits> = {}) {
    this.#limits = { ...BOOT_EVENT_LIMITS, ...limits };
  }

  allow(mac: string, nowMs: number): boolean {
    const { intervalMs, perMac, perSecond, max } = this.#limits;
    let window = this.#windows.get(mac);
    if (window !== undefined && nowMs - window.start >= intervalMs) {
      this.#windows.delete(mac);
      window = undefined;
    }
    if (window !== undefined && window.count >= perMac) return false;
    if (nowMs - this.#second.start >= 1000) this.#second = { start: nowMs, count: 0 };
    if (this.#second.count >= perSecond) return false;
    if (window === undefined && this.#windows.size >= max) {
      for (const [m, w] of this.#windows) if (nowMs - w.start >= intervalMs) this.#windows.delete(m);
      if (this.#windows.size >= max) return false;
    }
    this.#second.count++;
    if (window === undefined) this.#windows.set(mac, { start: nowMs, count: 1 });
    else window.count++;
    return true;
  }

  get size(): number { return this.#windows.size; }
}
