import type { Command } from './commands.js';

// Boot timeline events that happen on a member that is not the leader (`lanctl nodes power` runs
// on any member, so a node without quorum can still cycle the stuck ones) reach the log through the
// leader: the member holds each event and sends it with its member report (cluster/member-status.ts,
// once a second over the Raft transport or etcd), the leader proposes it as a `node.boot` entry
// carrying the event's id (`relay`), and the member stops sending it once that entry applied here.
// A leader that changes meanwhile proposes it again at most once (the entry came, or it did not).
// An event carries the wall-clock time it happened on its member (`at`), which the timeline keeps
// instead of the later log time of the leader's entry. Pure: time comes in as monotonic ms.

/** A held event as it travels in a member report. */
export interface RelayedBootEvent {
  /** "<member>-<n>-<start>": unique per member and daemon start. */
  id: string;
  mac: string;
  event: string;
  detail?: string;
  /** Wall-clock ms when it happened on the member that holds it (absent from an older member: the leader's log time). */
  at?: number;
}

export type BootCommand = Extract<Command, { type: 'node.boot' }>;

/** Events held at most (the oldest go first), and for how long an unrecorded one is kept. */
export const RELAY_HELD_MAX = 256;
export const RELAY_HELD_MS = 10 * 60_000;
/** Ids a leader remembers having proposed (a member resends until the entry applies there). */
const PROPOSED_KEPT = 4096;

export class BootEventRelay {
  readonly #self: string;
  readonly #start: number;
  #next = 0;
  /** Held here for the leader: id -> event and when it was held. */
  #held = new Map<string, { event: RelayedBootEvent; heldAt: number }>();
  /** Ids this member proposed as leader, oldest first. */
  #proposed = new Set<string>();

  constructor(self: string, start: number) {
    this.#self = self;
    this.#start = start;
  }

  get size(): number { return this.#held.size; }

  /** Holds an event for the leader (`now`: monotonic ms); returns its id. */
  hold(command: BootCommand, now: number): string {
    const id = `${this.#self}-${this.#next++}-${this.#start}`;
    this.#held.set(id, { event: { id, mac: command.mac, event: command.event, ...(command.detail === undefined ? {} : { detail: command.detail }), ...(command.at === undefined ? {} : { at: command.at }) }, heldAt: now });
    while (this.#held.size > RELAY_HELD_MAX) this.#held.delete(this.#held.keys().next().value!);
    return id;
  }

  /** What the member report carries: the held events, oldest first; those held past RELAY_HELD_MS are dropped and returned apart. */
  outgoing(now: number): { events: RelayedBootEvent[]; expired: RelayedBootEvent[] } {
    const expired: RelayedBootEvent[] = [];
    for (const [id, h] of this.#held) {
      if (now - h.heldAt <= RELAY_HELD_MS) continue;
      this.#held.delete(id);
      expired.push(h.event);
    }
    return { events: [...this.#held.values()].map((h) => h.event), expired };
  }

  /** An applied `node.boot` entry: the event it carried is recorded; stop sending it. */
  applied(command: BootCommand): void {
    if (typeof command.relay === 'string') this.#held.delete(command.relay);
  }

  /** On the leader: the events (a member's, or its own held ones) not yet proposed here, as commands; each is marked proposed. */
  toPropose(events: readonly RelayedBootEvent[]): BootCommand[] {
    const out: BootCommand[] = [];
    for (const e of events) {
      if (this.#proposed.has(e.id)) continue;
      this.#proposed.add(e.id);
      if (this.#proposed.size > PROPOSED_KEPT) this.#proposed.delete(this.#proposed.values().next().value!);
      out.push({ type: 'node.boot', mac: e.mac, event: e.event, ...(e.detail === undefined ? {} : { detail: e.detail }), relay: e.id, ...(e.at === undefined ? {} : { at: e.at }) });
    }
    return out;
  }

  /** A proposal that failed (leadership lost before it committed): it may be proposed again. */
  failed(id: string): void {
    this.#proposed.delete(id);
  }
}

const ID = /^[A-Za-z0-9._-]{1,63}-\d{1,15}-\d{1,20}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const EVENT = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/** The `bootEvents` of a member report: null when absent, undefined when malformed. */
export function decodeRelayed(v: unknown): RelayedBootEvent[] | null | undefined {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length > RELAY_HELD_MAX) return undefined;
  const out: RelayedBootEvent[] = [];
  for (const x of v as unknown[]) {
    const e = x as Partial<Record<keyof RelayedBootEvent, unknown>> | null;
    if (e === null || typeof e !== 'object' || typeof e.id !== 'string' || !ID.test(e.id) || typeof e.mac !== 'string' || !MAC.test(e.mac)
      || typeof e.event !== 'string' || !EVENT.test(e.event) || (e.detail !== undefined && (typeof e.detail !== 'string' || e.detail.length > 200))
      || (e.at !== undefined && (typeof e.at !== 'number' || !Number.isFinite(e.at)))) return undefined;
    out.push({ id: e.id, mac: e.mac, event: e.event, ...(e.detail === undefined ? {} : { detail: e.detail as string }), ...(e.at === undefined ? {} : { at: e.at as number }) });
  }
  return out;
}
