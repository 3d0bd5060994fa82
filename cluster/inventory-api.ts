import type { Clock } from '../lib/clock.js';
import type { ApiResponse, ApiRoutes } from '../lib/control-server.js';
import { errorMessage } from '../lib/errors.js';
import { formatIpv4 } from '../lib/ipv4.js';
import { parseMac } from '../lib/mac.js';
import { archName } from '../services/dhcp/arch.js';
import { proposable } from './apply-level.js';
import type { Command } from './commands.js';
import type { Fsm } from './fsm.js';
import type { InventoryNode, PendingMac } from './inventory.js';
import { checkAccept, checkAdd, checkRemove, checkSet, checkTrust, type Checked, type InventoryContext } from './inventory-check.js';
import { nodeDetail, nodeTimeline, type KnownProfiles, type NodeDetail, type Reservation, type TimelineStep } from './nodes-view.js';
import type { StateLog } from './state-log.js';

// Control API for the inventory (`lanctl nodes add/set/remove/accept/pending/show`, and the deploy
// module's `node.trust`). A write is validated here (a specific error naming the clash), proposed
// on the leader only (a follower names the leader), and checked after it applied: a concurrent
// change that took the name, MAC or IP first makes the entry a no-op, which is reported, not hidden.

export interface NodeJson {
  name: string;
  mac: string;
  ip: string | null;
  profile: string | null;
  group: string | null;
  hostKey: string | null;
  assignedGeneration: string | null;
  runningGeneration: string | null;
  addedAt: string;
  changedAt: string;
}

export function nodeJson(n: InventoryNode): NodeJson {
  return {
    name: n.name, mac: n.mac, ip: n.ip === undefined ? null : formatIpv4(n.ip), profile: n.profile ?? null, group: n.group ?? null,
    hostKey: n.hostKey ?? null, assignedGeneration: n.assignedGeneration ?? null, runningGeneration: n.runningGeneration ?? null,
    addedAt: new Date(n.addedAt).toISOString(), changedAt: new Date(n.changedAt).toISOString(),
  };
}

/** `arch` is the RFC 4578 number the firmware sent, `archName` its IANA name (null when unassigned or not sent). */
export interface PendingJson { mac: string; firstSeen: string; lastSeen: string; arch: number | null; archName: string | null; vendorClass: string | null; count: number }

export function pendingJson(p: PendingMac): PendingJson {
  return {
    mac: p.mac, firstSeen: new Date(p.firstSeen).toISOString(), lastSeen: new Date(p.lastSeen).toISOString(),
    arch: p.arch ?? null, archName: p.arch === undefined ? null : archName(p.arch) ?? null, vendorClass: p.vendorClass ?? null, count: p.count,
  };
}

export interface ShowJson {
  node: NodeJson;
  profileUnknown: boolean;
  detail: NodeDetail | null;
  timeline: TimelineStep[];
}

export interface InventoryApiOptions {
  state: StateLog;
  clock: Clock;
  /** Validation context: DHCP subnets and config reservations (lease holders are read from the state). */
  context: () => Omit<InventoryContext, 'leaseHolder'>;
  reservations: readonly Reservation[];
  profiles?: () => KnownProfiles;
}

function field(body: unknown, key: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined;
}

/** The MAC holding a live lease on `ip`, for validation. */
export function leaseHolderOf(fsm: Fsm): (ip: number) => string | undefined {
  return (ip) => {
    const l = fsm.lease(ip);
    return l !== undefined && l.state === 'bound' && l.expiresAt > fsm.lastAt ? l.mac : undefined;
  };
}

export function inventoryRoutes(o: InventoryApiOptions): ApiRoutes {
  const { state } = o;
  const ctx = (): InventoryContext => ({ ...o.context(), leaseHolder: leaseHolderOf(state.fsm) });

  const notLeader = (): ApiResponse => {
    const leader = state.status().leader;
    return { status: 409, body: { error: leader === null ? 'this node is not the leader and no leader is known right now; try again in a few seconds' : `this node is not the leader; the leader is ${leader}: run the command there` } };
  };

  /** Validate, then (unless a dry run) propose on the leader and confirm it applied. */
  const write = async <C extends Command>(checked: Checked<C>, dryRun: boolean, applied: (fsm: Fsm) => boolean): Promise<ApiResponse> => {
    if (!checked.ok) return { status: 400, body: { error: checked.error } };
    if (dryRun) return { status: 200, body: { dryRun: true, command: checked.command } };
    if (!state.isLeader()) return notLeader();
    try {
      await state.propose(checked.command);
    } catch (error) {
      return { status: 503, body: { error: `not committed: ${errorMessage(error)}` } };
    }
    if (!applied(state.fsm)) return { status: 409, body: { error: 'not applied: a change made at the same moment took the name, MAC or IP first; run the command again to see the clash' } };
    return { status: 200, body: { command: checked.command } };
  };

  const nodeBody = (name: string): unknown => {
    const n = state.fsm.inventory.byName(name);
    return n === undefined ? null : nodeJson(n);
  };

  return {
    'GET /v1/nodes/inventory': () => ({ status: 200, body: { nodes: state.fsm.inventory.all().map(nodeJson) } }),

    'GET /v1/nodes/pending': () => ({ status: 200, body: { now: new Date(o.clock.wallMs()).toISOString(), pending: state.fsm.inventory.pending().map(pendingJson) } }),

    'GET /v1/nodes/show': ({ query }) => {
      const name = (query.get('name') ?? '').toLowerCase();
      const mac = parseMac(name);
      const node = state.fsm.inventory.byName(name) ?? (mac === null ? undefined : state.fsm.inventory.byMac(mac));
      if (node === undefined) return { status: 404, body: { error: `no node named ${name} (lanctl nodes lists them; lanctl nodes --mac M shows a MAC that is no inventory node)` } };
      const profiles = o.profiles?.() ?? null;
      const show: ShowJson = {
        node: nodeJson(node),
        profileUnknown: node.profile !== undefined && profiles !== null && !profiles.has(node.profile),
        detail: nodeDetail(state.fsm, o.reservations, node.mac, o.clock.wallMs(), profiles),
        timeline: nodeTimeline(state.fsm.bootEvents(node.mac)),
      };
      return { status: 200, body: show };
    },

    'POST /v1/nodes/add': async ({ body }) => {
      const checked = checkAdd(state.fsm.inventory, { name: field(body, 'name'), mac: field(body, 'mac'), ip: field(body, 'ip'), profile: field(body, 'profile'), group: field(body, 'group') }, ctx());
      const reply = await write(checked, field(body, 'dryRun') === true, (fsm) => checked.ok && fsm.inventory.byName(checked.command.name)?.mac === checked.command.mac);
      return reply.status === 200 && checked.ok && field(body, 'dryRun') !== true ? { status: 200, body: { node: nodeBody(checked.command.name) } } : reply;
    },

    'POST /v1/nodes/set': async ({ body }) => {
      const fields: Record<string, unknown> = { name: field(body, 'name') };
      for (const key of ['mac', 'ip', 'profile', 'group']) if (field(body, key) !== undefined) fields[key] = field(body, key);
      const checked = checkSet(state.fsm.inventory, fields, ctx());
      const reply = await write(checked, field(body, 'dryRun') === true, (fsm) => {
        if (!checked.ok) return false;
        const n = fsm.inventory.byName(checked.command.name);
        const c = checked.command;
        return n !== undefined && (c.mac === undefined || n.mac === c.mac) && (c.ip === undefined || (n.ip ?? null) === c.ip);
      });
      return reply.status === 200 && checked.ok && field(body, 'dryRun') !== true ? { status: 200, body: { node: nodeBody(checked.command.name) } } : reply;
    },

    'POST /v1/nodes/remove': async ({ body }) => {
      const checked = checkRemove(state.fsm.inventory, field(body, 'name'));
      const job = checked.ok ? unfinishedJobOf(state.fsm, checked.command.name) : undefined;
      if (job !== undefined && checked.ok) return { status: 409, body: { error: removeRefusal(checked.command.name, job) } };
      const before = checked.ok ? nodeBody(checked.command.name) : null;
      // In the log too: a job started at the same moment that commits first makes this entry a no-op on every member.
      const guarded = checked.ok ? { ...checked, command: proposable({ ...checked.command, unlessInJob: true as const }, state.proposalRefusal?.bind(state)) } : checked;
      const reply = await write(guarded, field(body, 'dryRun') === true, (fsm) => checked.ok && fsm.inventory.byName(checked.command.name) === undefined);
      const crossed = reply.status === 409 && checked.ok ? unfinishedJobOf(state.fsm, checked.command.name) : undefined;
      if (crossed !== undefined && checked.ok) return { status: 409, body: { error: removeRefusal(checked.command.name, crossed) } };
      return reply.status === 200 && field(body, 'dryRun') !== true ? { status: 200, body: { removed: before } } : reply;
    },

    'POST /v1/nodes/accept': async ({ body }) => {
      const checked = checkAccept(state.fsm.inventory, { name: field(body, 'name'), mac: field(body, 'mac'), ip: field(body, 'ip'), profile: field(body, 'profile'), group: field(body, 'group') }, ctx());
      const reply = await write(checked, field(body, 'dryRun') === true, (fsm) => checked.ok && fsm.inventory.byName(checked.command.name)?.mac === checked.command.mac);
      return reply.status === 200 && checked.ok && field(body, 'dryRun') !== true ? { status: 200, body: { node: nodeBody(checked.command.name) } } : reply;
    },

    /** The deploy module's `lanctl nodes trust`: pin (or, with hostKey null, forget) a node's ssh host key. */
    'POST /v1/nodes/trust': async ({ body }) => {
      const checked = checkTrust(state.fsm.inventory, field(body, 'name'), field(body, 'hostKey'));
      const reply = await write(checked, field(body, 'dryRun') === true, (fsm) => checked.ok && (fsm.inventory.byName(checked.command.name)?.hostKey ?? null) === checked.command.hostKey);
      return reply.status === 200 && checked.ok && field(body, 'dryRun') !== true ? { status: 200, body: { node: nodeBody(checked.command.name) } } : reply;
    },
  };
}

/**
 * The running deploy job that has not finished with `node` yet (the node pending or syncing in
 * it), or undefined. A node removed mid-job used to keep syncing to the end, its result then
 * unrecorded: the job wrote a tree the inventory no longer knew.
 */
export function unfinishedJobOf(fsm: Fsm, node: string): string | undefined {
  return fsm.rootfs.unfinishedJob(node);
}

/** The refusal of `lanctl nodes remove` for a node a running deploy job has not finished with. */
export function removeRefusal(node: string, job: string): string {
  return `${node} is in deploy job ${job}, still running (\`lanctl deploy jobs ${job}\` follows it, \`lanctl deploy cancel ${job}\` stops it; ${node} then keeps its previous generation whole). Nothing was removed; run this again once that job has ended`;
}
