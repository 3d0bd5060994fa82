import type { Command } from './commands.js';

// The compute-node inventory: a pure sub-state of the replicated state machine (fsm.ts delegates
// every `node.*` command but `node.boot` here). One node record is the DHCP reservation, the DNS
// names, the boot profile and the deploy target. Unknown MACs that asked for boot files wait in a
// bounded pending list until an operator accepts them.
//
// apply() is deterministic and defensive: the leader validates before proposing (inventory-check.ts),
// but an entry that would make two nodes share a name, MAC or IP (a stale proposal, a hand-made log)
// is a no-op on every replica alike. Time comes only from the entry's stamp.

export interface InventoryNode {
  /** A DNS label, lower case: the node's host name (A/PTR, DHCP option 12) and its key. */
  name: string;
  /** Lower-case "aa:bb:cc:dd:ee:ff". */
  mac: string;
  /** Reserved address (uint32); absent = a pool address, still under the node's name. */
  ip?: number;
  /** Boot profile name (config `profiles:`); not checked here, flagged by `lanctl nodes` when unknown. */
  profile?: string;
  group?: string;
  /** Pinned ssh host key, OpenSSH "type base64". */
  hostKey?: string;
  assignedGeneration?: string;
  runningGeneration?: string;
  /** Log times. */
  addedAt: number;
  changedAt: number;
}

export interface PendingMac {
  mac: string;
  firstSeen: number;
  lastSeen: number;
  /** RFC 4578 client architecture (option 93), when sent. */
  arch?: number;
  vendorClass?: string;
  /** How many `node.seen` entries recorded it (at most one a minute). */
  count: number;
}

export interface InventorySnapshot {
  nodes: InventoryNode[];
  pending: PendingMac[];
  /** Names once seeded from the config's `nodes:` block: never seeded again (the log is the truth). */
  seeded: string[];
}

/** The inventory's bound (memory, DNS zone size): a `node.add` past it is refused (leader) or a no-op (apply). */
export const NODES_MAX = 10_000;
/** The pending list's bound: past it the MAC seen longest ago goes (least lastSeen, then MAC). */
export const PENDING_MAX = 1024;
/** Longest vendor class kept for a pending MAC (DHCP option 60 can be 255 octets of anything). */
export const VENDOR_CLASS_MAX = 64;

export type InventoryCommand = Extract<Command, { type: 'node.add' | 'node.set' | 'node.remove' | 'node.seen' | 'node.accept' | 'node.trust' | 'node.generation' }>;

const INVENTORY_TYPES: ReadonlySet<string> = new Set<InventoryCommand['type']>([
  'node.add', 'node.set', 'node.remove', 'node.seen', 'node.accept', 'node.trust', 'node.generation',
]);

export function isInventoryCommand(command: Command): command is InventoryCommand {
  return INVENTORY_TYPES.has(command.type);
}

/** Read access for services and views (DHCP reservations, DNS names, boot rendering, deploy). */
export interface InventoryView {
  byName(name: string): InventoryNode | undefined;
  byMac(mac: string): InventoryNode | undefined;
  byIp(ip: number): InventoryNode | undefined;
  all(): InventoryNode[];
  readonly size: number;
}

// The same shapes the leader checks (inventory-check.ts), checked again here: an entry may come from
// a hand-made log or an etcd key any etcd client can write, and these values go unescaped into DNS,
// boot scripts and ssh's known_hosts.
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** "type base64": one OpenSSH key type word and its base64 blob, nothing else (no comment, no line break). */
const HOST_KEY = /^[a-z0-9][a-z0-9.@-]{0,63} [A-Za-z0-9+/]{1,16000}={0,2}$/;
/** A generation id (64 hex digits) or a shorter name of the same characters. */
const GENERATION = /^[A-Za-z0-9._-]{1,128}$/;
const isMac = (v: unknown): v is string => typeof v === 'string' && MAC.test(v);
const isName = (v: unknown): v is string => typeof v === 'string' && LABEL.test(v);
const isIp = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isTag = (v: unknown): v is string => typeof v === 'string' && TAG.test(v);
const isGeneration = (v: unknown): v is string => typeof v === 'string' && GENERATION.test(v);
/** A pinned host key as the log holds it: "type base64", one line, no comment. */
export const isHostKeyText = (v: unknown): v is string => typeof v === 'string' && HOST_KEY.test(v);
const isKey = isHostKeyText;

export class Inventory implements InventoryView {
  #byName = new Map<string, InventoryNode>();
  #byMac = new Map<string, string>();
  #byIp = new Map<number, string>();
  #pending = new Map<string, PendingMac>();
  #seeded = new Set<string>();

  byName(name: string): InventoryNode | undefined { return this.#byName.get(name); }
  byMac(mac: string): InventoryNode | undefined {
    const name = this.#byMac.get(mac);
    return name === undefined ? undefined : this.#byName.get(name);
  }
  byIp(ip: number): InventoryNode | undefined {
    const name = this.#byIp.get(ip);
    return name === undefined ? undefined : this.#byName.get(name);
  }
  /** Every node, by name. */
  all(): InventoryNode[] { return [...this.#byName.values()].sort((a, b) => compare(a.name, b.name)); }
  get size(): number { return this.#byName.size; }
  pendingByMac(mac: string): PendingMac | undefined { return this.#pending.get(mac); }
  /** Pending MACs, most recently seen first. */
  pending(): PendingMac[] { return [...this.#pending.values()].sort((a, b) => b.lastSeen - a.lastSeen || compare(a.mac, b.mac)); }
  wasSeeded(name: string): boolean { return this.#seeded.has(name); }

  /**
   * Applies one inventory command at log time `at`. Returns true when a name, MAC or IP changed
   * (what DHCP and DNS serve), so the state machine bumps the zones' serial.
   */
  apply(command: InventoryCommand, at: number): boolean {
    switch (command.type) {
      case 'node.add':
        return this.#add(command, at, command.origin === 'config');
      case 'node.accept':
        return this.#add(command, at, false);
      case 'node.set':
        return this.#set(command, at);
      case 'node.remove': {
        const node = this.#byName.get(command.name);
        if (node === undefined) return false;
        this.#unindex(node);
        return true;
      }
      case 'node.seen':
        this.#seen(command, at);
        return false;
      case 'node.trust': {
        const node = this.#byName.get(command.name);
        if (node === undefined || (command.hostKey !== null && !isKey(command.hostKey))) return false;
        const next = { ...node, changedAt: at };
        if (command.hostKey === null) delete next.hostKey;
        else next.hostKey = command.hostKey;
        this.#byName.set(node.name, next);
        return false;
      }
      case 'node.generation': {
        const node = this.#byName.get(command.name);
        if (node === undefined) return false;
        const next = { ...node, changedAt: at };
        if (!setOptional(next, 'assignedGeneration', command.assigned) || !setOptional(next, 'runningGeneration', command.running)) return false;
        this.#byName.set(node.name, next);
        return false;
      }
    }
  }

  #add(command: Extract<InventoryCommand, { type: 'node.add' | 'node.accept' }>, at: number, fromConfig: boolean): boolean {
    const { name, mac, ip } = command;
    if (!isName(name) || !isMac(mac) || (ip !== undefined && !isIp(ip))) return false;
    if (this.#byName.has(name) || this.#byMac.has(mac) || (ip !== undefined && this.#byIp.has(ip))) return false;
    if (this.#byName.size >= NODES_MAX) return false;
    // A config node seeded once is never seeded again, even by a proposal a new leader made before it
    // applied the removal: `lanctl nodes remove` sticks.
    if (fromConfig && this.#seeded.has(name)) return false;
    const node: InventoryNode = { name, mac, addedAt: at, changedAt: at };
    if (ip !== undefined) node.ip = ip;
    if (isTag(command.profile)) node.profile = command.profile;
    if (isTag(command.group)) node.group = command.group;
    this.#index(node);
    this.#pending.delete(mac);
    if (fromConfig) this.#seeded.add(name);
    return true;
  }

  #set(command: Extract<InventoryCommand, { type: 'node.set' }>, at: number): boolean {
    const node = this.#byName.get(command.name);
    if (node === undefined) return false;
    const next: InventoryNode = { ...node, changedAt: at };
    if (command.mac !== undefined) {
      if (!isMac(command.mac)) return false;
      const holder = this.#byMac.get(command.mac);
      if (holder !== undefined && holder !== node.name) return false;
      next.mac = command.mac;
    }
    if (command.ip !== undefined && command.ip !== null) {
      if (!isIp(command.ip)) return false;
      const holder = this.#byIp.get(command.ip);
      if (holder !== undefined && holder !== node.name) return false;
    }
    if (!setOptional(next, 'ip', command.ip) || !setOptional(next, 'profile', command.profile) || !setOptional(next, 'group', command.group)) return false;
    this.#unindex(node);
    this.#index(next);
    this.#pending.delete(next.mac);
    return next.mac !== node.mac || next.ip !== node.ip;
  }

  #seen(command: Extract<InventoryCommand, { type: 'node.seen' }>, at: number): void {
    const { mac } = command;
    if (!isMac(mac) || this.#byMac.has(mac)) return;
    const entry: PendingMac = this.#pending.get(mac) ?? { mac, firstSeen: at, lastSeen: at, count: 0 };
    const next: PendingMac = { mac, firstSeen: entry.firstSeen, lastSeen: at, count: entry.count + 1 };
    const arch = isIp(command.arch) && command.arch <= 0xffff ? command.arch : entry.arch;
    if (arch !== undefined) next.arch = arch;
    const vendorClass = typeof command.vendorClass === 'string' && command.vendorClass.length > 0 ? printable(command.vendorClass.slice(0, VENDOR_CLASS_MAX)) : entry.vendorClass;
    if (vendorClass !== undefined) next.vendorClass = vendorClass;
    this.#pending.set(mac, next);
    if (this.#pending.size > PENDING_MAX) {
      // The oldest by content (not by map order, which a restore does not keep): same on every replica.
      let oldest: PendingMac | undefined;
      for (const p of this.#pending.values()) {
        if (oldest === undefined || p.lastSeen < oldest.lastSeen || (p.lastSeen === oldest.lastSeen && p.mac < oldest.mac)) oldest = p;
      }
      if (oldest !== undefined) this.#pending.delete(oldest.mac);
    }
  }

  #index(node: InventoryNode): void {
    this.#byName.set(node.name, node);
    this.#byMac.set(node.mac, node.name);
    if (node.ip !== undefined) this.#byIp.set(node.ip, node.name);
  }

  #unindex(node: InventoryNode): void {
    this.#byName.delete(node.name);
    if (this.#byMac.get(node.mac) === node.name) this.#byMac.delete(node.mac);
    if (node.ip !== undefined && this.#byIp.get(node.ip) === node.name) this.#byIp.delete(node.ip);
  }

  /** Canonical: sorted, fixed key order, so equal states give equal bytes (and hashes). */
  snapshot(): InventorySnapshot {
    return {
      nodes: this.all().map(canonicalNode),
      pending: [...this.#pending.values()].sort((a, b) => compare(a.mac, b.mac)).map(canonicalPending),
      seeded: [...this.#seeded].sort(compare),
    };
  }

  get empty(): boolean { return this.#byName.size === 0 && this.#pending.size === 0 && this.#seeded.size === 0; }

  restore(snapshot: InventorySnapshot | undefined): void {
    this.#byName.clear();
    this.#byMac.clear();
    this.#byIp.clear();
    this.#pending.clear();
    this.#seeded.clear();
    if (snapshot === undefined) return;
    // A snapshot is read with the checks apply() makes: it may come from an etcd key any client can
    // write, and a name goes on to DNS, boot scripts and the power command's arguments ("-rf", "a;b").
    // What fails them is left out (a field) or dropped (a node), alike on every replica.
    for (const n of snapshot.nodes) {
      const node = checkedNode(n);
      if (node === null || this.#byName.has(node.name) || this.#byMac.has(node.mac) || (node.ip !== undefined && this.#byIp.has(node.ip))) continue;
      this.#index(node);
    }
    for (const p of snapshot.pending) if (isMac(p.mac)) this.#pending.set(p.mac, canonicalPending(p));
    for (const s of snapshot.seeded) if (isName(s)) this.#seeded.add(s);
  }
}

/** Sets (value), clears (null) or keeps (undefined) an optional field; false when the value is malformed. */
function setOptional<K extends 'ip' | 'profile' | 'group' | 'assignedGeneration' | 'runningGeneration'>(node: InventoryNode, key: K, value: InventoryNode[K] | null | undefined): boolean {
  if (value === undefined) return true;
  if (value === null) {
    delete node[key];
    return true;
  }
  const valid = key === 'ip' ? isIp(value) : key === 'profile' || key === 'group' ? isTag(value) : isGeneration(value);
  if (!valid) return false;
  node[key] = value;
  return true;
}

function canonicalNode(n: InventoryNode): InventoryNode {
  const out: InventoryNode = { name: n.name, mac: n.mac, addedAt: n.addedAt, changedAt: n.changedAt };
  if (n.ip !== undefined) out.ip = n.ip;
  if (n.profile !== undefined) out.profile = n.profile;
  if (n.group !== undefined) out.group = n.group;
  if (n.hostKey !== undefined) out.hostKey = n.hostKey;
  if (n.assignedGeneration !== undefined) out.assignedGeneration = n.assignedGeneration;
  if (n.runningGeneration !== undefined) out.runningGeneration = n.runningGeneration;
  return out;
}

/** A snapshot's node as apply() would have made it, or null when its name or MAC is not one; other malformed fields are left out. */
function checkedNode(n: InventoryNode): InventoryNode | null {
  if (!isName(n.name) || !isMac(n.mac)) return null;
  const out = canonicalNode(n);
  if (out.ip !== undefined && !isIp(out.ip)) delete out.ip;
  if (out.profile !== undefined && !isTag(out.profile)) delete out.profile;
  if (out.group !== undefined && !isTag(out.group)) delete out.group;
  if (out.hostKey !== undefined && !isKey(out.hostKey)) delete out.hostKey;
  if (out.assignedGeneration !== undefined && !isGeneration(out.assignedGeneration)) delete out.assignedGeneration;
  if (out.runningGeneration !== undefined && !isGeneration(out.runningGeneration)) delete out.runningGeneration;
  return out;
}

function canonicalPending(p: PendingMac): PendingMac {
  const out: PendingMac = { mac: p.mac, firstSeen: p.firstSeen, lastSeen: p.lastSeen, count: p.count };
  if (p.arch !== undefined) out.arch = p.arch;
  if (p.vendorClass !== undefined) out.vendorClass = p.vendorClass;
  return out;
}

/** Control characters and non-ASCII (a terminal escape in `lanctl nodes pending`) as "?". */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A node's address as DNS names it: its reserved IP, else the IP of each of its live leases. */
export interface NodeAddress {
  node: InventoryNode;
  ip: number;
  /** True when the address comes from a lease (the node has no reserved IP). */
  leased: boolean;
}

/**
 * Every node with an address, by name. `leases` gives the replicated leases of a MAC (any state);
 * a lease counts while bound and not past its end at log time `nowMs`. A node without a reserved IP
 * bound in two subnets (behind two relays) has an address in each: the MAC's newest lease alone
 * named only one, and none at all once that one ended while the older still ran.
 */
export function nodeAddresses(inventory: InventoryView, leases: (mac: string) => Iterable<{ ip: number; state: string; expiresAt: number }>, nowMs: number): NodeAddress[] {
  const out: NodeAddress[] = [];
  for (const node of inventory.all()) {
    if (node.ip !== undefined) { out.push({ node, ip: node.ip, leased: false }); continue; }
    for (const l of leases(node.mac)) if (l.state === 'bound' && l.expiresAt > nowMs) out.push({ node, ip: l.ip, leased: true });
  }
  return out;
}
