import type { Clock } from '../../lib/clock.js';
import type { ApiRoutes } from '../../lib/control-server.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import { formatDuration } from '../../lib/table.js';
import { parseMac } from '../../lib/mac.js';
import { errorMessage } from '../../lib/errors.js';
import { logNowMs, type StateLog } from '../../cluster/state-log.js';
import { LEASE_MS_INFINITE, type Command } from '../../cluster/commands.js';
import type { Lease } from '../../cluster/fsm.js';
import type { SubnetUse } from './allocator.js';
import { ITEMS_PER_SLICE, sortInSlices, turn } from '../../lib/slices.js';

// Control API for `lanctl leases`: list (GET /v1/leases?mac=&ip=&all=1, with pool use: used/total
// per pool and subnet) and release (POST /v1/leases/release {"target": IP|MAC}). Reads are local
// state; a release is a lease command through the StateLog, so only the leader accepts it. A listing
// is sorted and made a slice at a time with the event loop turning between slices (DHCP answers on
// the same loop), and so is its JSON text (lib/control-server.ts, lib/slices.ts jsonInSlices).

export interface LeaseRow {
  ip: string;
  mac: string;
  hostname: string | null;
  clientId: string | null;
  state: Lease['state'];
  expiresAt: string;
  expiresInS: number;
  /** A binding that never ends by itself (a BOOTP client's, LEASE_MS_INFINITE): `lanctl leases` shows "never" (absent from an older daemon's rows). */
  infinite?: boolean;
  subnet: string;
  /** The log index that committed the grant or last renewal (null for leases from older snapshots). */
  index: number | null;
  /**
   * The member that proposed that grant: the leader that sent the ACK (recorded in the log entry;
   * null for entries written before it was recorded, shown as "unknown").
   */
  ackedBy: string | null;
}

/** A row's "expires in" as `lanctl leases` and the ops page show it: "never (BOOTP)" for a binding without end. */
export function expiresInText(l: LeaseRow): string {
  if (l.infinite === true) return 'never (BOOTP)';
  return l.state === 'bound' || l.state === 'declined' ? formatDuration(l.expiresInS * 1000) : '-';
}

function row(lease: Lease, nowMs: number): LeaseRow {
  return {
    ip: formatIpv4(lease.ip),
    mac: lease.mac,
    hostname: lease.hostname ?? null,
    clientId: lease.clientId ?? null,
    // A bound lease whose time has passed but is not reclaimed yet is shown as what it is.
    state: lease.state === 'bound' && lease.expiresAt <= nowMs ? 'expired' : lease.state,
    expiresAt: new Date(lease.expiresAt).toISOString(),
    expiresInS: Math.round((lease.expiresAt - nowMs) / 1000),
    infinite: lease.state === 'bound' && lease.expiresAt - lease.grantedAt >= LEASE_MS_INFINITE,
    subnet: lease.subnet,
    index: lease.index ?? null,
    ackedBy: lease.ackedBy ?? null,
  };
}

/**
 * The rows of the leases `wanted` picks, in numeric address order, a slice at a time: the sort
 * (sortInSlices) and ITEMS_PER_SLICE rows per turn of the event loop; made in one block, 22,000
 * leases held the loop 50-70 ms before their JSON text. Sorted on the numeric address before the
 * rows are made: sorting the rows parsed two address strings per comparison (170-310 ms). The lease
 * objects are taken at the call (every apply puts a new one in the state). `stop`, asked after each
 * turn, gives null.
 */
async function leaseRows(state: StateLog, nowMs: number, wanted: (lease: Lease) => boolean, all: boolean, stop: () => boolean): Promise<LeaseRow[] | null> {
  const sorted = await sortInSlices([...state.fsm.leases()].filter(wanted), (a, b) => a.ip - b.ip, stop);
  if (sorted === null) return null;
  const rows: LeaseRow[] = [];
  for (let i = 0; i < sorted.length; i += ITEMS_PER_SLICE) {
    if (i > 0) {
      await turn();
      if (stop()) return null;
    }
    for (const lease of sorted.slice(i, i + ITEMS_PER_SLICE)) {
      const r = row(lease, nowMs);
      if (all || r.state === 'bound' || r.state === 'declined') rows.push(r);
    }
  }
  return rows;
}

/** `propose`: how a release is proposed (the DHCP handler's proposeLease, so no cached ACK races it). */
export function leaseRoutes(state: StateLog, clock: Clock, pools: (nowMs: number) => SubnetUse[] = () => [], propose: (command: Command) => Promise<unknown> = (command) => state.propose(command)): ApiRoutes {
  return {
    'GET /v1/leases': async ({ query, signal }) => {
      const nowMs = logNowMs(state, clock);
      const mac = query.get('mac');
      const ip = query.get('ip');
      const all = query.get('all') === '1' || query.get('all') === 'true';
      const macWanted = mac === null ? null : parseMac(mac);
      const ipWanted = ip === null ? null : parseIpv4(ip);
      if (mac !== null && macWanted === null) return { status: 400, body: { error: `--mac ${mac} is not a MAC address like 52:54:00:aa:bb:cc` } };
      if (ip !== null && ipWanted === null) return { status: 400, body: { error: `--ip ${ip} is not an IPv4 address` } };
      const gone = (): boolean => signal?.aborted === true;
      const rows = await leaseRows(state, nowMs, (l) => (macWanted === null || l.mac === macWanted) && (ipWanted === null || l.ip === ipWanted), all, gone);
      if (rows === null) return { status: 503, body: { error: 'the client went away before its answer' } };
      return { status: 200, body: { now: new Date(nowMs).toISOString(), leases: rows, pools: pools(nowMs) } };
    },
    'POST /v1/leases/release': async ({ body }) => {
      const target = typeof body === 'object' && body !== null ? (body as { target?: unknown }).target : undefined;
      if (typeof target !== 'string') return { status: 400, body: { error: 'give the lease to release: an IP address or a MAC' } };
      const ip = parseIpv4(target);
      const mac = parseMac(target);
      if (ip === null && mac === null) return { status: 400, body: { error: `${target} is neither an IPv4 address nor a MAC address` } };
      const leases = [...state.fsm.leases()].filter((l) => l.state === 'bound' && (ip !== null ? l.ip === ip : l.mac === mac));
      if (leases.length === 0) return { status: 404, body: { error: `no bound lease for ${target}` } };
      if (!state.isLeader()) return { status: 409, body: { error: 'this node is not the leader; run the command on the leader' } };
      try {
        for (const l of leases) await propose({ type: 'lease.release', ip: l.ip, mac: l.mac });
      } catch (error) {
        return { status: 503, body: { error: `release not committed: ${errorMessage(error)}` } };
      }
      return { status: 200, body: { released: leases.map((l) => ({ ip: formatIpv4(l.ip), mac: l.mac })) } };
    },
  };
}
