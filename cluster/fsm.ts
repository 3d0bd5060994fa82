import { createHash } from 'node:crypto';
import { appendBootEvent, bootEventOf, bootMacToDrop, BOOT_MACS_MAX, type BootEvent } from './boot-events.js';
import type { Command, StampedCommand } from './commands.js';
import { Inventory, isInventoryCommand, type InventorySnapshot } from './inventory.js';
import { RootfsState, isRootfsCommand, type RootfsSnapshot } from './rootfs-state.js';
import { mergeRecord } from './degraded.js';
import { sortInSlices, stringifyInSlices } from '../lib/slices.js';

// The replicated state machine: leases, DNS records set by operators, compute-node boot events.
// apply() is deterministic: it reads time only from the entry's stamp and never a local clock, so
// the same log gives the same state (and the same hash) on every replica.

export type LeaseState = 'bound' | 'released' | 'declined' | 'expired';

export interface Lease {
  ip: number;
  mac: string;
  clientId?: string;
  hostname?: string;
  subnet: string;
  state: LeaseState;
  /** Log time of the grant or last renewal. */
  grantedAt: number;
  /** Log time the binding ends (bound), or the quarantine ends (declined). */
  expiresAt: number;
  /** Log time of the last change of state. */
  changedAt: number;
  /** The log index of the grant or last renewal (absent in snapshots written before it was kept). */
  index?: number;
  /** The member that proposed that grant: the leader that sent the ACK (absent before it was recorded). */
  ackedBy?: string;
}

export interface DnsRecord {
  name: string;
  rrtype: string;
  ttl: number;
  data: string;
}

export type { BootEvent } from './boot-events.js';

export interface AppliedEntry {
  index: number;
  at: number;
  /** The member that proposed it, when the entry records it. */
  by?: string;
  /** Its Raft term: set on what `propose` resolves with (the embedded log only; etcd has no terms). */
  term?: number;
  /** Where its proposal's time went (set on what `propose` resolves with): see ProposalTiming. */
  timing?: ProposalTiming;
  command: Command;
}

/**
 * A proposal's way to applied, in ms on the monotonic clock: waiting for its batch's WAL write
 * (behind the fsync in flight), the write and fdatasync of that batch, then until it was applied
 * (the followers' acknowledgements in a cluster; the next turn of the host loop alone). On etcd:
 * queued behind the txn in flight, the txn (etcd's quorum fsync included), then until the watch
 * brought it back.
 */
export interface ProposalTiming {
  queuedMs: number;
  persistMs: number;
  commitMs: number;
  /** Of persistMs (the embedded log): waiting for the fdatasync in flight before one covering its batch was issued. */
  syncWaitMs?: number;
}

export type FsmListener = (entry: AppliedEntry) => void;


/**
 * Released and expired leases stay this long (log time) after their last change, so a returning
 * client gets its previous address back (RFC 2131 §4.3.1) and `lanctl leases --all` shows recent
 * history; then they are dropped, from memory and from the next snapshot. Kea holds reclaimed
 * leases an hour by default; a week covers a node switched off over a long weekend. Reservations
 * are the way to keep an address for longer. A constant, not configuration: every replica must
 * drop the same leases at the same entry.
 */
export const LEASE_HISTORY_MS = 7 * 24 * 3_600_000;

/** Compaction runs on the first entry whose log time is in a new hour: the same entry everywhere. */
const COMPACT_EVERY_MS = 3_600_000;

export interface FsmSnapshot {
  appliedIndex: number;
  lastAt: number;
  serial: number;
  leases: Lease[];
  records: DnsRecord[];
  nodes: Array<{ mac: string; events: BootEvent[] }>;
  /** The compute-node inventory (inventory.ts); absent when empty, so older snapshots restore and hash alike. */
  inventory?: InventorySnapshot;
  /** Rootfs generations and deploy jobs (cluster/rootfs-state.ts); absent in older snapshots and while empty. */
  rootfs?: RootfsSnapshot;
  /** Degraded journals merged (`lease.merge`), per member; absent in older snapshots and before the first merge. */
  degradedMerges?: Record<string, DegradedMerged>;
}

/** What the log merged of one member's degraded journals: the last journal and record, and totals. */
export interface DegradedMerged {
  journal: string;
  upTo: number;
  merges: number;
  records: number;
  /** Records that overlapped another client's binding (never applied): 0 by construction. */
  conflicts: number;
}

export class Fsm {
  #leases = new Map<number, Lease>();
  #leaseByMac = new Map<string, number>();
  #leaseByClientId = new Map<string, number>();
  /** Every address the log holds a lease of (any state) per MAC: derived, rebuilt on restore, never hashed. */
  #ipsByMac = new Map<string, Set<number>>();
  #records = new Map<string, DnsRecord>();
  #nodes = new Map<string, BootEvent[]>();
  #merged = new Map<string, DegradedMerged>();
  #appliedIndex = 0;
  #lastAt = 0;
  /** Bumped by every apply and restore: hash() is computed again only after a change. */
  #version = 0;
  #hashed: { version: number; hash: string } | null = null;
  /** Bumped on every change DNS can see (lease names, records): the zones' SOA serial follows it. */
  #serial = 1;
  #listeners = new Set<FsmListener>();
  /** Compute nodes (name, MAC, IP, profile, ...) and the pending unknown MACs: the `node.*` commands but `node.boot`. */
  readonly inventory = new Inventory();
  /** `rootfs.*` and `deploy.*` commands are applied by this sub-state. */
  readonly rootfs = new RootfsState();

  get appliedIndex(): number { return this.#appliedIndex; }
  /** The newest log time applied: "now" as far as replicated state knows. */
  get lastAt(): number { return this.#lastAt; }
  get serial(): number { return this.#serial; }
  /** Changes with every apply and restore: what a reader derived from the state is good while it stays. */
  get version(): number { return this.#version; }

  lease(ip: number): Lease | undefined { return this.#leases.get(ip); }

  /** The most recent lease (any state) for a MAC. */
  leaseByMac(mac: string): Lease | undefined {
    const ip = this.#leaseByMac.get(mac);
    return ip === undefined ? undefined : this.#leases.get(ip);
  }

  /**
   * The MAC's live binding (bound, not past its end at `nowMs`), the most recently granted when it
   * holds several (one MAC behind two relays has one per subnet). leaseByMac gives the newest lease
   * in any state: once that one was released or expired, the MAC looked addressless while its older
   * binding in the other subnet still ran.
   */
  liveLeaseByMac(mac: string, nowMs: number): Lease | undefined {
    const newest = this.leaseByMac(mac);
    if (newest !== undefined && newest.state === 'bound' && newest.expiresAt > nowMs) return newest;
    let best: Lease | undefined;
    for (const ip of this.#ipsByMac.get(mac) ?? []) {
      const l = this.#leases.get(ip);
      if (l !== undefined && l.mac === mac && l.state === 'bound' && l.expiresAt > nowMs && (best === undefined || l.grantedAt > best.grantedAt)) best = l;
    }
    return best;
  }

  /** Every live binding of a MAC (at most one per subnet unless it moved inside one without releasing). */
  liveLeasesByMac(mac: string, nowMs: number): Lease[] {
    const out: Lease[] = [];
    for (const ip of this.#ipsByMac.get(mac) ?? []) {
      const l = this.#leases.get(ip);
      if (l !== undefined && l.mac === mac && l.state === 'bound' && l.expiresAt > nowMs) out.push(l);
    }
    return out;
  }

  #indexMac(mac: string, ip: number): void {
    const ips = this.#ipsByMac.get(mac);
    if (ips === undefined) this.#ipsByMac.set(mac, new Set([ip])); else ips.add(ip);
  }

  #unindexMac(mac: string, ip: number): void {
    const ips = this.#ipsByMac.get(mac);
    if (ips !== undefined && ips.delete(ip) && ips.size === 0) this.#ipsByMac.delete(mac);
  }

  /** The most recent lease (any state) for a DHCP client identifier (option 61, hex). */
  leaseByClientId(clientId: string): Lease | undefined {
    const ip = this.#leaseByClientId.get(clientId);
    return ip === undefined ? undefined : this.#leases.get(ip);
  }

  leases(): IterableIterator<Lease> { return this.#leases.values(); }
  records(): IterableIterator<DnsRecord> { return this.#records.values(); }
  bootEvents(mac: string): readonly BootEvent[] { return this.#nodes.get(mac) ?? []; }
  nodes(): IterableIterator<[string, BootEvent[]]> { return this.#nodes.entries(); }
  /** What the log merged of `node`'s degraded journals (undefined: nothing yet). */
  degradedMerged(node: string): DegradedMerged | undefined { return this.#merged.get(node); }
  degradedMerges(): IterableIterator<[string, DegradedMerged]> { return this.#merged.entries(); }

  subscribe(listener: FsmListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * `sameIndex`: the entry shares the index of the one applied just before it (etcd: several
   * commands committed in one txn share its revision); the caller knows it is not a replay.
   */
  apply(index: number, stamped: StampedCommand, sameIndex = false): void {
    if (index < this.#appliedIndex || (index === this.#appliedIndex && !sameIndex)) return; // replay of an entry already applied
    this.#version++;
    const at = Math.max(this.#lastAt, stamped.at);
    this.#applyCommand(stamped.command, at, index, stamped.by);
    if (Math.floor(at / COMPACT_EVERY_MS) > Math.floor(this.#lastAt / COMPACT_EVERY_MS)) this.#compact(at);
    this.#appliedIndex = index;
    this.#lastAt = at;
    const entry: AppliedEntry = { index, at, ...(stamped.by === undefined ? {} : { by: stamped.by }), command: stamped.command };
    for (const listener of this.#listeners) listener(entry);
  }

  #applyCommand(command: Command, at: number, index: number, by: string | undefined): void {
    // A node removal and a deploy job naming the node, proposed at the same moment: whichever
    // committed second is a no-op on every member (the proposer sees it did not apply and says why).
    if (command.type === 'node.remove' && command.unlessInJob === true && this.rootfs.unfinishedJob(command.name) !== undefined) return;
    if ((command.type === 'deploy.job.start' || command.type === 'deploy.job.resume') && Array.isArray(command.inventory)
      && command.inventory.some((name) => typeof name !== 'string' || this.inventory.byName(name) === undefined)) return;
    if (isInventoryCommand(command)) {
      if (this.inventory.apply(command, at)) {
        this.#serial++; // names and addresses DNS serves
        // A removed node's generations go with it: they no longer keep old generations in the store
        // or describe a board later added under the same name.
        if (command.type === 'node.remove') this.rootfs.forgetNode(command.name);
      }
      return;
    }
    if (isRootfsCommand(command)) {
      this.rootfs.apply(command, at);
      return;
    }
    switch (command.type) {
      case 'lease.grant': {
        const previous = this.#leases.get(command.ip);
        // Never two clients on one address: a grant over another client's live binding (a stale
        // proposal, a race between nodes) is a no-op; the proposer sees it and NAKs.
        if (previous && previous.state === 'bound' && previous.expiresAt > at && previous.mac !== command.mac) return;
        const oldIp = this.#leaseByMac.get(command.mac);
        if (oldIp !== undefined && oldIp !== command.ip) {
          const old = this.#leases.get(oldIp);
          // A client moving to a new address in the same subnet gives up the old one. In another
          // subnet the old binding stays until it ends: the same MAC behind two relays may be two
          // machines (cloned VMs, a MAC on two VLANs), and releasing the first one's address let it
          // go to a third client while the first still used it.
          if (old && old.mac === command.mac && old.state === 'bound' && old.subnet === command.subnet) this.#leases.set(oldIp, { ...old, state: 'released', changedAt: at, expiresAt: at });
        }
        if (previous && previous.mac !== command.mac) {
          // The previous holder's indexes must not point at a lease that is now someone else's.
          this.#unindexMac(previous.mac, command.ip);
          if (this.#leaseByMac.get(previous.mac) === command.ip) this.#leaseByMac.delete(previous.mac);
          if (previous.clientId !== undefined && previous.clientId !== command.clientId && this.#leaseByClientId.get(previous.clientId) === command.ip) this.#leaseByClientId.delete(previous.clientId);
        }
        const lease: Lease = {
          ip: command.ip,
          mac: command.mac,
          subnet: command.subnet,
          state: 'bound',
          grantedAt: at,
          expiresAt: at + command.leaseMs,
          changedAt: at,
          index,
        };
        if (command.clientId !== undefined) lease.clientId = command.clientId;
        if (command.hostname !== undefined) lease.hostname = command.hostname;
        if (by !== undefined) lease.ackedBy = by;
        this.#leases.set(command.ip, lease);
        this.#leaseByMac.set(command.mac, command.ip);
        this.#indexMac(command.mac, command.ip);
        if (command.clientId !== undefined) this.#leaseByClientId.set(command.clientId, command.ip);
        if (lease.hostname !== undefined || previous?.hostname !== undefined) this.#serial++;
        return;
      }
      case 'lease.release': {
        const lease = this.#leases.get(command.ip);
        if (!lease || lease.mac !== command.mac || lease.state !== 'bound') return;
        this.#leases.set(command.ip, { ...lease, state: 'released', expiresAt: at, changedAt: at });
        if (lease.hostname !== undefined) this.#serial++;
        return;
      }
      case 'lease.decline': {
        const lease = this.#leases.get(command.ip);
        if (lease && lease.mac !== command.mac && lease.state === 'bound' && lease.expiresAt > at) return; // someone else's live lease
        if (lease && lease.mac !== command.mac) this.#unindexMac(lease.mac, command.ip);
        this.#indexMac(command.mac, command.ip);
        this.#leases.set(command.ip, {
          ip: command.ip, mac: command.mac, subnet: lease?.subnet ?? '', state: 'declined',
          grantedAt: at, expiresAt: at + command.quarantineMs, changedAt: at,
        });
        if (lease?.hostname !== undefined) this.#serial++;
        return;
      }
      case 'lease.expire': {
        const lease = this.#leases.get(command.ip);
        if (!lease || lease.expiresAt > at) return;
        if (lease.state === 'bound') {
          this.#leases.set(command.ip, { ...lease, state: 'expired', changedAt: at });
          if (lease.hostname !== undefined) this.#serial++;
        } else if (lease.state === 'declined') {
          this.#forget(lease);
        }
        return;
      }
      case 'lease.merge': {
        const done = this.#merged.get(command.node);
        const sameJournal = done !== undefined && done.journal === command.journal;
        const skip = sameJournal ? Math.max(0, done.upTo - command.from + 1) : 0;
        if (skip >= command.records.length) return; // a replay: every record is merged already
        const sum: DegradedMerged = { journal: command.journal, upTo: command.upTo, merges: (done?.merges ?? 0) + 1, records: done?.records ?? 0, conflicts: done?.conflicts ?? 0 };
        for (const r of command.records.slice(skip)) {
          const outcome = mergeRecord(this.#leases.get(r.ip), r, index, command.node);
          sum.records++;
          if (outcome.kind === 'conflict') sum.conflicts++;
          if (outcome.kind !== 'set') continue;
          this.#setLease(outcome.lease);
        }
        this.#merged.set(command.node, sum);
        return;
      }
      case 'dns.set':
        this.#records.set(recordKey(command.name, command.rrtype, command.data), {
          name: command.name.toLowerCase(), rrtype: command.rrtype.toUpperCase(), ttl: command.ttl, data: command.data,
        });
        this.#serial++;
        return;
      case 'dns.delete': {
        const name = command.name.toLowerCase();
        let changed = false;
        for (const [key, r] of this.#records) {
          if (r.name === name && (command.rrtype === undefined || r.rrtype === command.rrtype.toUpperCase()) && (command.data === undefined || r.data === command.data)) {
            this.#records.delete(key);
            changed = true;
          }
        }
        if (changed) this.#serial++;
        return;
      }
      case 'node.boot': {
        const boot = bootEventOf(command, at);
        if (boot === null) return;
        const events = this.#nodes.get(boot.mac) ?? [];
        appendBootEvent(events, boot.event);
        this.#nodes.set(boot.mac, events);
        if (this.#nodes.size > BOOT_MACS_MAX) {
          const drop = bootMacToDrop(this.#nodes, (mac) => this.inventory.byMac(mac) !== undefined);
          if (drop !== undefined) this.#nodes.delete(drop);
        }
        return;
      }
      default:
        return;
    }
  }

  /** Drops released and expired leases whose last change is LEASE_HISTORY_MS old at log time `at`. */
  #compact(at: number): void {
    for (const lease of [...this.#leases.values()]) {
      if ((lease.state === 'released' || lease.state === 'expired') && lease.changedAt + LEASE_HISTORY_MS <= at) this.#forget(lease);
    }
  }

  /** Puts `lease` on its address, keeping the client indexes right (a merged degraded binding). */
  #setLease(lease: Lease): void {
    const previous = this.#leases.get(lease.ip);
    if (previous !== undefined && previous.mac !== lease.mac) {
      this.#unindexMac(previous.mac, lease.ip);
      if (this.#leaseByMac.get(previous.mac) === lease.ip) this.#leaseByMac.delete(previous.mac);
      if (previous.clientId !== undefined && this.#leaseByClientId.get(previous.clientId) === lease.ip) this.#leaseByClientId.delete(previous.clientId);
    }
    this.#leases.set(lease.ip, lease);
    this.#indexMac(lease.mac, lease.ip);
    const newest = this.#leaseByMac.get(lease.mac);
    if (newest === undefined || (this.#leases.get(newest)?.changedAt ?? 0) <= lease.changedAt) this.#leaseByMac.set(lease.mac, lease.ip);
    if (lease.clientId !== undefined) this.#leaseByClientId.set(lease.clientId, lease.ip);
    if (lease.hostname !== undefined || previous?.hostname !== undefined) this.#serial++;
  }

  /** Removes a lease and the client indexes that still point at its address. */
  #forget(lease: Lease): void {
    this.#leases.delete(lease.ip);
    this.#unindexMac(lease.mac, lease.ip);
    if (this.#leaseByMac.get(lease.mac) === lease.ip) this.#leaseByMac.delete(lease.mac);
    if (lease.clientId !== undefined && this.#leaseByClientId.get(lease.clientId) === lease.ip) this.#leaseByClientId.delete(lease.clientId);
  }

  snapshot(): FsmSnapshot {
    return this.#snapshotWith([...this.#leases.values()].sort(byIp).map((l) => ({ ...l })));
  }

  /**
   * snapshot() as the state is at the call, its leases sorted a slice at a time (sortInSlices) with
   * the loop turning between: the Raft snapshot taken every `snapshotEntries` entries sorted 40,000
   * leases in one block. The rest and the lease objects are taken at the call (a lease object is
   * never changed once in the map: every apply puts a new one).
   */
  async snapshotInSlices(): Promise<FsmSnapshot> {
    const leases = [...this.#leases.values()];
    const frame = this.#snapshotWith([]);
    return { ...frame, leases: (await sortInSlices(leases, byIp))! };
  }

  /** The snapshot with `leases` in place of the leases (the rest copied as snapshot() copies it). */
  #snapshotWith(leases: Lease[]): FsmSnapshot {
    return {
      appliedIndex: this.#appliedIndex,
      lastAt: this.#lastAt,
      serial: this.#serial,
      leases,
      records: [...this.#records.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => ({ ...r })),
      nodes: [...this.#nodes.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([mac, events]) => ({ mac, events: events.map((e) => ({ ...e })) })),
      ...(this.inventory.empty ? {} : { inventory: this.inventory.snapshot() }),
      ...(this.rootfs.isEmpty() ? {} : { rootfs: this.rootfs.snapshot() }),
      ...(this.#merged.size === 0 ? {} : { degradedMerges: Object.fromEntries([...this.#merged.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, { ...v }])) }),
    };
  }

  restore(snapshot: FsmSnapshot): void {
    this.#version++;
    this.#leases.clear();
    this.#leaseByMac.clear();
    this.#leaseByClientId.clear();
    this.#ipsByMac.clear();
    this.#records.clear();
    this.#nodes.clear();
    this.#merged.clear();
    for (const [node, m] of Object.entries(snapshot.degradedMerges ?? {})) this.#merged.set(node, { ...m });
    for (const lease of snapshot.leases) {
      this.#leases.set(lease.ip, { ...lease });
      this.#indexMac(lease.mac, lease.ip);
      const current = this.#leaseByMac.get(lease.mac);
      if (current === undefined || (this.#leases.get(current)?.changedAt ?? 0) <= lease.changedAt) this.#leaseByMac.set(lease.mac, lease.ip);
      if (lease.clientId !== undefined) {
        const byId = this.#leaseByClientId.get(lease.clientId);
        if (byId === undefined || (this.#leases.get(byId)?.changedAt ?? 0) <= lease.changedAt) this.#leaseByClientId.set(lease.clientId, lease.ip);
      }
    }
    for (const r of snapshot.records) this.#records.set(recordKey(r.name, r.rrtype, r.data), { ...r });
    for (const n of snapshot.nodes) this.#nodes.set(n.mac, n.events.map((e) => ({ ...e })));
    this.inventory.restore(snapshot.inventory);
    this.rootfs.restore(snapshot.rootfs);
    this.#appliedIndex = snapshot.appliedIndex;
    this.#lastAt = snapshot.lastAt;
    this.#serial = snapshot.serial;
  }

  /**
   * SHA-256 over the canonical snapshot without the applied index: equal on replicas that applied
   * the same log, and unchanged by entries that change nothing (a new leader's empty entry).
   */
  hash(): string {
    // Kept until the next change. In one go on the event loop: with 40,000 leases 250-500 ms at load 8-12, so
    // what runs beside DHCP asks hashSoon() or hashInSlices() instead.
    if (this.#hashed?.version === this.#version) return this.#hashed.hash;
    const { appliedIndex: _index, ...state } = this.snapshot();
    const hash = createHash('sha256').update(JSON.stringify(state)).digest('hex');
    this.#hashed = { version: this.#version, hash };
    return hash;
  }

  /**
   * hash() of the state as it is now if it is known (null if not), for what asks often (status():
   * the daemon's twice-a-second sampler, each member report, the VIP's polls): it never works the
   * hash out itself. Asked twice with no change in between (the state is quiet), it starts
   * hashInSlices(), so an idle state has its hash by the next ask or so. While the state changes
   * (leases at 100/s), no hash is worked out: it would be out of date before it was done. Before,
   * each of these asks hashed the whole state on the event loop: with 40,000 leases changing,
   * each 250-500 ms (load 8-12), twice a second (the DHCP ACK's p99 at 100 DORA/s: 98 ms).
   */
  hashSoon(): string | null {
    if (this.#hashed?.version === this.#version) return this.#hashed.hash;
    if (this.#hashAsked === this.#version && this.#hashing === null) void this.hashInSlices();
    this.#hashAsked = this.#version;
    return null;
  }

  /** The version hashSoon() last saw. */
  #hashAsked = -1;
  /** The hashInSlices() in progress. */
  #hashing: Promise<string | null> | null = null;

  /**
   * hash() worked out a slice of leases at a time, with a turn of the event loop between slices
   * (each a few ms). Resolves with it, or null when the state changed meanwhile (then nothing is
   * kept). The leases are taken as they are at the call: a lease object is never changed once in
   * the map (every apply puts a new one), and an apply bumps the version, so a hash finished on a
   * changed state is dropped.
   */
  hashInSlices(): Promise<string | null> {
    if (this.#hashed?.version === this.#version) return Promise.resolve(this.#hashed.hash);
    if (this.#hashing !== null) return this.#hashing;
    const version = this.#version;
    const leases = [...this.#leases.values()];
    const { appliedIndex: _index, ...frame } = this.#snapshotWith([]);
    const run = (async (): Promise<string | null> => {
      const sha = createHash('sha256');
      const stop = (): boolean => this.#version !== version;
      // Sorted in slices too: one sort of 40,000 leases held the loop ~25 ms (103 ms at load 10-20).
      const sorted = await sortInSlices(leases, byIp, stop);
      if (sorted === null) return null;
      await stringifyInSlices((items) => ({ ...frame, leases: items }), sorted, (part) => { sha.update(part); }, stop);
      if (this.#version !== version) return null;
      const hash = sha.digest('hex');
      this.#hashed = { version, hash };
      return hash;
    })().finally(() => { this.#hashing = null; });
    this.#hashing = run;
    return run;
  }
}

function byIp(a: Lease, b: Lease): number {
  return a.ip - b.ip;
}

function recordKey(name: string, rrtype: string, data: string): string {
  return `${name.toLowerCase()}\u0000${rrtype.toUpperCase()}\u0000${data}`;
}
