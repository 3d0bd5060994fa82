import type { Clock } from '../lib/clock.js';
import type { ApiRoutes } from '../lib/control-server.js';
import { formatIpv4, type Ipv4 } from '../lib/ipv4.js';
import { parseMac } from '../lib/mac.js';
import type { BootEvent, Fsm, Lease } from './fsm.js';
import type { InventoryNode } from './inventory.js';
import type { StateLog } from './state-log.js';

// `lanctl nodes`: the compute nodes as the replicated state knows them. A node is a MAC that is in
// the inventory, has a DHCP reservation, a lease, or boot events (TFTP fetches); its rows join them,
// so an operator sees at a glance which nodes booted, how far, and which reserved ones were never
// seen. Pure: the state, the reservations, the known profile names and the time come in.

export interface Reservation {
  mac?: string | undefined;
  ip: Ipv4;
  hostname?: string | undefined;
}

export interface NodeEvent {
  at: string;
  event: string;
  detail: string | null;
}

export interface NodeRow {
  mac: string;
  ip: string | null;
  hostname: string | null;
  reserved: boolean;
  /** Inventory fields (null when the MAC is no inventory node). */
  name: string | null;
  profile: string | null;
  /** The profile is named but no `profiles:` entry has that name (accepted, flagged). */
  profileUnknown: boolean;
  group: string | null;
  assignedGeneration: string | null;
  runningGeneration: string | null;
  /** The lease's state, 'expired' when a bound lease's time has passed, 'none' without a lease. */
  lease: Lease['state'] | 'none';
  leaseExpiresInS: number | null;
  /** The latest of: the lease's grant or renewal ("dhcp"), and the boot events. */
  last: NodeEvent | null;
  lastAgoS: number | null;
  /** Boot events kept for the node (the state keeps the last 32, at most 8 of one kind: cluster/boot-events.ts). */
  bootEvents: number;
}

export interface NodeDetail extends NodeRow {
  events: NodeEvent[];
}

function event(e: BootEvent): NodeEvent {
  return { at: new Date(e.at).toISOString(), event: e.event, detail: e.detail ?? null };
}

/** All events of a node, oldest first: its DHCP grant/renewal and its boot events. */
function eventsOf(lease: Lease | undefined, boot: readonly BootEvent[]): NodeEvent[] {
  const all: BootEvent[] = [...boot];
  if (lease !== undefined) all.push({ at: lease.grantedAt, event: 'dhcp', detail: `${lease.state === 'bound' ? 'lease' : lease.state} ${formatIpv4(lease.ip)}` });
  return all.sort((a, b) => a.at - b.at).map(event);
}

/** Profile names the config knows; null = no list to check against (nothing is flagged). */
export type KnownProfiles = ReadonlySet<string> | null;

export function nodeDetail(fsm: Fsm, reservations: readonly Reservation[], mac: string, nowMs: number, profiles: KnownProfiles = null): NodeDetail | null {
  return detailOf(fsm, reservations.find((r) => r.mac === mac), mac, nowMs, profiles);
}

function detailOf(fsm: Fsm, reservation: Reservation | undefined, mac: string, nowMs: number, profiles: KnownProfiles): NodeDetail | null {
  const lease = fsm.leaseByMac(mac);
  const boot = fsm.bootEvents(mac);
  const node: InventoryNode | undefined = fsm.inventory.byMac(mac);
  if (lease === undefined && boot.length === 0 && reservation === undefined && node === undefined) return null;
  const events = eventsOf(lease, boot);
  const last = events.at(-1) ?? null;
  const state = lease === undefined ? 'none' : lease.state === 'bound' && lease.expiresAt <= nowMs ? 'expired' : lease.state;
  const fixed = reservation?.ip ?? node?.ip;
  return {
    mac,
    ip: lease !== undefined && (state === 'bound' || fixed === undefined) ? formatIpv4(lease.ip) : fixed !== undefined ? formatIpv4(fixed) : null,
    hostname: reservation?.hostname ?? node?.name ?? lease?.hostname ?? null,
    reserved: fixed !== undefined,
    name: node?.name ?? null,
    profile: node?.profile ?? null,
    profileUnknown: node?.profile !== undefined && profiles !== null && !profiles.has(node.profile),
    group: node?.group ?? null,
    assignedGeneration: node?.assignedGeneration ?? null,
    runningGeneration: node?.runningGeneration ?? null,
    lease: state,
    leaseExpiresInS: lease !== undefined && state === 'bound' ? Math.round((lease.expiresAt - nowMs) / 1000) : null,
    last,
    lastAgoS: last === null ? null : Math.round((nowMs - Date.parse(last.at)) / 1000),
    bootEvents: boot.length,
    events,
  };
}

/** Every known node, most recently active first; nodes never seen come last (by name, then MAC). */
export function nodeRows(fsm: Fsm, reservations: readonly Reservation[], nowMs: number, profiles: KnownProfiles = null): NodeRow[] {
  const macs = new Set<string>();
  for (const n of fsm.inventory.all()) macs.add(n.mac);
  for (const r of reservations) if (r.mac !== undefined) macs.add(r.mac);
  for (const l of fsm.leases()) if (l.state === 'bound') macs.add(l.mac);
  for (const [mac] of fsm.nodes()) macs.add(mac);
  // The first reservation of each MAC, as nodeDetail's search finds it: one search per MAC made a
  // listing grow with the square of the reservations (720 ms of CPU at 10,000).
  const reservationOf = new Map<string, Reservation>();
  for (const r of reservations) if (r.mac !== undefined && !reservationOf.has(r.mac)) reservationOf.set(r.mac, r);
  const rows: NodeRow[] = [];
  for (const mac of macs) {
    const d = detailOf(fsm, reservationOf.get(mac), mac, nowMs, profiles);
    if (d === null) continue;
    const { events: _events, ...row } = d;
    rows.push(row);
  }
  return rows.sort((a, b) => (a.lastAgoS ?? Infinity) - (b.lastAgoS ?? Infinity) || (a.name ?? '\uffff').localeCompare(b.name ?? '\uffff') || a.mac.localeCompare(b.mac));
}

/** Control API for `lanctl nodes`: GET /v1/nodes, and GET /v1/nodes?mac=M for one node's events. */
export function nodeRoutes(state: StateLog, reservations: readonly Reservation[], clock: Clock, profiles: () => KnownProfiles = () => null): ApiRoutes {
  return {
    'GET /v1/nodes': ({ query }) => {
      const now = clock.wallMs();
      const text = query.get('mac');
      if (text === null) return { status: 200, body: { now: new Date(now).toISOString(), nodes: nodeRows(state.fsm, reservations, now, profiles()) } };
      const mac = parseMac(text);
      if (mac === null) return { status: 400, body: { error: `--mac ${text} is not a MAC address like 52:54:00:aa:bb:cc` } };
      const node = nodeDetail(state.fsm, reservations, mac, now, profiles());
      if (node === null) return { status: 404, body: { error: `no node ${mac}: no inventory entry, reservation, lease or boot event has that MAC` } };
      return { status: 200, body: { now: new Date(now).toISOString(), node } };
    },
  };
}

export interface TimelineStep {
  at: string;
  /** Milliseconds since the step before (null for the first), and since this boot began. */
  deltaMs: number | null;
  sinceBootMs: number;
  /** "firmware DHCP", "file", "OS DHCP", "rsync", "generation verified", or the raw event name. */
  step: string;
  event: string;
  detail: string | null;
}

const STEP_NAMES: Readonly<Record<string, string>> = {
  'dhcp.firmware': 'firmware DHCP',
  'dhcp.os': 'OS DHCP',
  tftp: 'file (TFTP)',
  http: 'file (HTTP)',
  rsync: 'rsync',
  verified: 'generation verified',
  'generation.verified': 'generation verified',
};

/** A switch that starts a boot: `lanctl nodes power on|cycle` that succeeded (detail "cycle ok"). */
function powersOn(e: BootEvent): boolean {
  return e.event === 'power' && /^(on|cycle) ok\b/.test(e.detail ?? '');
}

/**
 * A node's boot timeline from its `node.boot` events, oldest first: each step with the time since
 * the one before and since its boot began: a successful power on or cycle starts a boot, and so
 * does a firmware DHCP unless it follows such a switch (then the boot is counted from the switch).
 */
export function nodeTimeline(events: readonly BootEvent[]): TimelineStep[] {
  const out: TimelineStep[] = [];
  let bootStart: number | null = null;
  let previous: number | null = null;
  let last: BootEvent | null = null;
  for (const e of [...events].sort((a, b) => a.at - b.at)) {
    if (bootStart === null || powersOn(e) || (e.event === 'dhcp.firmware' && (last === null || !powersOn(last)))) bootStart = e.at;
    last = e;
    out.push({
      at: new Date(e.at).toISOString(),
      deltaMs: previous === null ? null : e.at - previous,
      sinceBootMs: e.at - bootStart,
      step: STEP_NAMES[e.event] ?? e.event,
      event: e.event,
      detail: e.detail ?? null,
    });
    previous = e.at;
  }
  return out;
}
