import { broadcastOf, cidrContains, formatCidr, formatIpv4, type Cidr, type Ipv4, type Ipv4Range } from '../../lib/ipv4.js';
import { LEASE_MS_INFINITE, type Command } from '../../cluster/commands.js';
import type { Lease } from '../../cluster/fsm.js';
import type { InventoryView } from '../../cluster/inventory.js';
import type { ClientRequest } from './request.js';

// The lease allocator: which address a client gets and which lease commands that needs (RFC 2131
// §4.3). Pure core: time comes in as `nowMs` (wall ms, the clock lease stamps use), replicated
// leases are read through LeaseView, nothing is logged or sent. Offers live only here, in memory,
// with a TTL, one per client: a DISCOVER flood never reaches the log or the disk.

export interface Reservation {
  mac?: string;
  clientId?: string;
  ip: Ipv4;
  hostname?: string;
}

export interface PoolSubnet {
  /** "10.0.0.0/24": the name leases carry. */
  id: string;
  cidr: Cidr;
  ranges: readonly Ipv4Range[];
  reservations: readonly Reservation[];
  relays: readonly Ipv4[];
  leaseMs: number;
  /**
   * Addresses of the site itself inside this subnet (the VIP, the members' own addresses, the
   * server id): never given to a client, even where a pool or a reservation covers them (a client
   * on the VIP takes every client's DHCP, DNS and NTP).
   */
  siteAddresses: ReadonlySet<Ipv4>;
  /**
   * The subnet's router, DNS and NTP servers (options 3, 6, 42) inside it: never given from a pool,
   * but a reservation may hold one (the router or time server that takes its own address by DHCP).
   */
  optionAddresses: ReadonlySet<Ipv4>;
  /**
   * `clients: known` (inventory mode): only known clients (a config reservation names them by MAC
   * or client id, or they are an inventory node) get an address from `ranges`.
   */
  knownOnly?: boolean;
  /**
   * `unknownPool` of a known-only subnet: where its unknown clients get addresses instead, with
   * their own lease time and no boot file. Same id as the subnet (leases name the subnet).
   */
  unknownPool?: PoolSubnet;
  /** Set on an unknownPool: replies from it carry no boot options. */
  unknownClients?: boolean;
  /** RFC 4039 (`rapidCommit`): a DISCOVER with option 80 is answered by an ACK of a committed lease. */
  rapidCommit?: boolean;
}

export interface AllocatorSettings {
  offerTtlMs: number;
  declineQuarantineMs: number;
  /** An expired or released address goes to another client only this long after it ended. */
  reuseGraceMs: number;
  /** Answer NAK to INIT-REBOOT requests we hold no record of (RFC 2131 §4.3.2, "authoritative"). */
  authoritative: boolean;
  /** Upper bound on pending offers (a flood of new MACs cannot grow memory without bound). */
  offersMax: number;
  /**
   * A DISCOVER that finds its pool dry takes over the oldest outstanding offer of the subnet made at
   * least this long ago (a flood of DISCOVERs from made-up MACs would otherwise hold every free
   * address for offerTtl and starve real clients). Younger offers are left alone: a client's REQUEST
   * follows its OFFER within a round trip plus the client's own think time. Unset: 250 ms. The floor
   * trades the two sides of a sustained flood: offers are taken back after pool size / flood rate
   * seconds, or after this floor when that is shorter (and then new DISCOVERs go unanswered until an
   * offer reaches it, the flood's and real clients' alike).
   */
  offerReclaimAfterMs?: number;
}

/**
 * Split-pool ownership (cluster/degraded.ts) as the allocator applies it: a new binding takes a pool
 * address only where `mayAllocate` allows (a member alone: its own half; a leader whose partner is
 * away: its own half, borrowing nothing), trying `prefers` first (a leader: its own half first), and
 * another client's address only `reuseAfterMs` after its binding or quarantine ended (MCLT).
 */
export interface AllocationPolicy {
  mayAllocate(ip: Ipv4): boolean;
  prefers(ip: Ipv4): boolean;
  /** Where mayAllocate says no: may the client's own binding `lease` still be renewed now? */
  keeps(lease: Lease, nowMs: number): boolean;
  reuseAfterMs: number;
}

/** The default of AllocatorSettings.offerReclaimAfterMs. */
export const OFFER_RECLAIM_AFTER_MS = 250;

/** Read access to the replicated leases and compute-node inventory (cluster/fsm.ts). */
export interface LeaseView {
  lease(ip: Ipv4): Lease | undefined;
  leaseByMac(mac: string): Lease | undefined;
  leaseByClientId(clientId: string): Lease | undefined;
  /**
   * Changes whenever any of the above may have (cluster/fsm.ts bumps it on every apply). Without it
   * every DISCOVER of a dry pool scans the pool again.
   */
  readonly version?: number;
  /**
   * Inventory nodes: a node with an IP is a reservation (by MAC) in the subnet holding the IP, beside
   * the config's (which win on a conflict); every node's name is its host name, never a client's.
   */
  readonly inventory?: Pick<InventoryView, 'byMac' | 'byIp' | 'byName'>;
}

export interface Offer {
  ip: Ipv4;
  clientKey: string;
  subnetId: string;
  /** The pool it holds an address of (poolKey): the subnet's own, or its unknownPool. */
  poolKey: string;
  /** When it was made (log time). */
  madeMs: number;
  expiresMs: number;
  /** Held for a grant being committed (a REQUEST's), not a DISCOVER's offer: never reclaimed. */
  granting: boolean;
}

/** What the server should do with a request. `propose` must commit before the reply goes out. */
export type Decision =
  /** `hostname`: the name the server gives (option 12), a reservation's or the inventory node's. */
  | { kind: 'offer'; ip: Ipv4; subnet: PoolSubnet; reservation?: Reservation; hostname?: string; reclaimed?: Offer }
  | { kind: 'ack'; ip: Ipv4; subnet: PoolSubnet; reservation?: Reservation; hostname?: string; propose: Command }
  | { kind: 'nak'; reason: string; subnet?: PoolSubnet }
  | { kind: 'inform'; subnet: PoolSubnet }
  | { kind: 'release'; propose: Command }
  | { kind: 'decline'; propose: Command }
  | { kind: 'silent'; reason: string; failure?: AllocationFailure; subnet?: PoolSubnet; ignored?: 'unknown-client' | 'bootp-unknown' };

/** Why a DISCOVER found no address: each has its own counter (`allocation-failed.<failure>`). */
export type AllocationFailure = 'pool-exhausted' | 'reserved-in-use' | 'offers-full' | 'decline-limit';

/**
 * How many addresses one MAC may hold in decline quarantine at once. A client that sees a conflict
 * on every address (a proxy-ARP router, a static host answering for the range) would otherwise
 * quarantine the whole pool, for every client, for declineQuarantine. Past the limit its DECLINE
 * is ignored: it keeps the address it has and fails alone.
 */
export const DECLINES_PER_MAC_MAX = 4;

interface ReservationIndex {
  byMac: Map<string, number>;
  byClientId: Map<string, number>;
}

export class Allocator {
  readonly subnets: readonly PoolSubnet[];
  readonly settings: AllocatorSettings;
  #offersByClient = new Map<string, Offer>();
  #offersByIp = new Map<Ipv4, Offer>();
  /**
   * Per subnet, the offers a dry pool may take back (#reclaim): DISCOVER offers of addresses no
   * reservation owns, oldest first, so a reclaim looks at its own subnet's candidates only and stops
   * at the first one too young.
   */
  #reclaimable = new Map<string, Map<string, Offer>>();
  #cursor = new Map<string, number>();
  #reservedIps = new Map<Ipv4, Reservation>();
  /** MACs and client ids of config reservations, in any subnet: known clients (inventory mode). */
  #reservedMacs = new Set<string>();
  #reservedClientIds = new Set<string>();
  /** Per MAC, when each of its running decline quarantines ends (bounded like the offers). */
  #declines = new Map<string, number[]>();
  #reservationIndexes = new WeakMap<PoolSubnet, ReservationIndex>();
  /**
   * A whole scan of a subnet's pools found nothing for a client without a lease: no address can turn
   * free before `untilMs` (the first end of an offer, quarantine or binding the scan met) unless the
   * replicated state (`version`) or the offers (`offersEpoch`) change first. Without it a DISCOVER
   * flood on a dry pool scanned every address per packet: 6 ms a DISCOVER on a /16, more than the
   * global rate limit's 2,000/s could ever be given, with Raft's heartbeats behind them in the loop.
   */
  #dry = new Map<string, { version: number; offersEpoch: number; untilMs: number }>();
  /** Bumped whenever an offer that held an address is dropped (the address may be free now). */
  #offersEpoch = 0;
  /** Split-pool ownership (setPolicy); null: every pool address is this server's to give. */
  #policy: AllocationPolicy | null = null;

  constructor(subnets: readonly PoolSubnet[], settings: AllocatorSettings) {
    this.subnets = subnets;
    this.settings = settings;
    for (const s of subnets) {
      for (const r of s.reservations) {
        this.#reservedIps.set(r.ip, r);
        if (r.mac !== undefined) this.#reservedMacs.add(r.mac);
        if (r.clientId !== undefined) this.#reservedClientIds.add(r.clientId);
      }
    }
  }

  /**
   * A known client (inventory mode, dnsmasq's `known` tag, Kea's KNOWN class): a config reservation
   * names it by MAC or client id, in any subnet, or it is a node of the replicated inventory (read
   * per request, so a node added or removed through the log counts at once).
   */
  isKnown(request: Pick<ClientRequest, 'mac' | 'clientId'>, leases: LeaseView): boolean {
    return this.#reservedMacs.has(request.mac) || (request.clientId !== undefined && this.#reservedClientIds.has(request.clientId))
      || leases.inventory?.byMac(request.mac) !== undefined;
  }

  /** Where the client may get an address in `subnet`: the subnet's pools, its unknownPool (an unknown client of a known-only subnet), or nowhere. */
  poolFor(request: Pick<ClientRequest, 'mac' | 'clientId'>, subnet: PoolSubnet, leases: LeaseView): PoolSubnet | undefined {
    if (subnet.knownOnly !== true || this.isKnown(request, leases)) return subnet;
    return subnet.unknownPool;
  }

  /** Ownership of pool halves from now on (null: none). A change forgets the dry-pool memos. */
  setPolicy(policy: AllocationPolicy | null): void {
    if (policy === this.#policy) return;
    this.#policy = policy;
    this.#dry.clear();
  }

  get policy(): AllocationPolicy | null { return this.#policy; }

  get offerCount(): number { return this.#offersByClient.size; }
  offerFor(clientKey: string): Offer | undefined { return this.#offersByClient.get(clientKey); }

  /**
   * The subnet a request belongs to: the relay's (giaddr inside it, or listed in `relays`), else the
   * one the server sits on (`local`), else the client's own ciaddr's.
   */
  selectSubnet(request: Pick<ClientRequest, 'giaddr' | 'ciaddr'>, local: PoolSubnet | undefined): PoolSubnet | undefined {
    if (request.giaddr !== 0) return this.subnets.find((s) => cidrContains(s.cidr, request.giaddr) || s.relays.includes(request.giaddr));
    if (local) return local;
    if (request.ciaddr !== 0) return this.subnets.find((s) => cidrContains(s.cidr, request.ciaddr));
    return this.subnets[0];
  }

  /**
   * DISCOVER -> OFFER (RFC 2131 §4.3.1), from the pool the client may use: an unknown client of a
   * known-only subnet without an unknownPool gets nothing (no OFFER, and no NAK: a DISCOVER has none).
   */
  onDiscover(request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): Decision {
    const pool = this.poolFor(request, subnet, leases);
    return pool === undefined ? ignoreUnknown(subnet) : this.#offer(request, pool, leases, nowMs);
  }

  /** The address choice in the order the RFC gives. */
  #offer(request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): Decision {
    const reservation = this.#reservationFor(request, subnet, leases);
    let ip: Ipv4 | undefined;
    if (reservation) ip = this.#usable(reservation.ip, request, subnet, leases, nowMs) ? reservation.ip : undefined;
    if (ip === undefined && !reservation) ip = this.#previousAddress(request, subnet, leases, nowMs);
    if (ip === undefined && request.requestedIp !== undefined && this.#usable(request.requestedIp, request, subnet, leases, nowMs)) ip = request.requestedIp;
    if (ip === undefined && !reservation) ip = this.#nextFree(request, subnet, leases, nowMs);
    let reclaimed: Offer | undefined;
    if (ip === undefined && !reservation) {
      reclaimed = this.#reclaim(request, subnet, leases, nowMs);
      ip = reclaimed?.ip;
    }
    if (ip === undefined) {
      return reservation
        ? { kind: 'silent', reason: 'reserved address in use', failure: 'reserved-in-use', subnet }
        : { kind: 'silent', reason: 'pool exhausted', failure: 'pool-exhausted', subnet };
    }
    if (!this.#offersByClient.has(request.clientKey) && this.#offersByClient.size >= this.settings.offersMax) {
      this.purge(nowMs);
      if (this.#offersByClient.size >= this.settings.offersMax) return { kind: 'silent', reason: 'too many pending offers', failure: 'offers-full', subnet };
    }
    this.#hold(request.clientKey, ip, subnet, nowMs, false);
    const hostname = reservation?.hostname ?? leases.inventory?.byMac(request.mac)?.name;
    return { kind: 'offer', ip, subnet, ...(reservation ? { reservation } : {}), ...(hostname === undefined ? {} : { hostname }), ...(reclaimed ? { reclaimed } : {}) };
  }

  /**
   * DISCOVER with Rapid Commit (RFC 4039 §4): on a subnet that allows it, the address the OFFER
   * would carry is granted at once, as a SELECTING REQUEST naming it would be (the ACK leaves after
   * the grant commits); elsewhere an ordinary OFFER (§4: the server MAY ignore option 80).
   */
  onDiscoverCommit(request: ClientRequest, subnet: PoolSubnet, serverIds: readonly Ipv4[], leases: LeaseView, nowMs: number): Decision {
    const offer = this.onDiscover(request, subnet, leases, nowMs);
    if (offer.kind !== 'offer' || subnet.rapidCommit !== true) return offer;
    return this.#take(request, offer.ip, subnet, serverIds, leases, nowMs);
  }

  /**
   * BOOTREQUEST (RFC 951, RFC 1542): a client with a reserved address (a reservation, an inventory
   * node's) gets it; any other only with `dynamic` (dnsmasq's bootp-dynamic), from the pool. The
   * grant never ends by itself (LEASE_MS_INFINITE): BOOTP has no lease, renewal or release.
   */
  onBootp(request: ClientRequest, subnet: PoolSubnet, serverIds: readonly Ipv4[], leases: LeaseView, nowMs: number, dynamic: boolean): Decision {
    const pool = this.poolFor(request, subnet, leases);
    if (!dynamic && (pool === undefined || this.#reservationFor(request, pool, leases) === undefined)) {
      return { kind: 'silent', reason: 'BOOTP client without a reserved address (dhcp.bootp.dynamic is off)', ignored: 'bootp-unknown', subnet };
    }
    const offer = this.onDiscover(request, subnet, leases, nowMs);
    if (offer.kind !== 'offer') return offer;
    const grant = this.#take(request, offer.ip, subnet, serverIds, leases, nowMs);
    if (grant.kind === 'ack' && grant.propose.type === 'lease.grant') grant.propose.leaseMs = LEASE_MS_INFINITE;
    return grant;
  }

  /**
   * The offer of `ip` taken as a SELECTING REQUEST (server id ours, requested address `ip`) takes it;
   * a refusal is silence, not a NAK (RFC 2131 §4.3.1: a DISCOVER gets none; BOOTP has none).
   */
  #take(request: ClientRequest, ip: Ipv4, subnet: PoolSubnet, serverIds: readonly Ipv4[], leases: LeaseView, nowMs: number): Decision {
    const taken = this.onRequest({ ...request, requestedIp: ip, ...(serverIds[0] === undefined ? {} : { serverId: serverIds[0] }) }, subnet, serverIds, leases, nowMs);
    return taken.kind === 'nak' ? { kind: 'silent', reason: taken.reason, ...(taken.subnet ? { subnet: taken.subnet } : {}) } : taken;
  }

  /** REQUEST in SELECTING, INIT-REBOOT, RENEWING or REBINDING (RFC 2131 §4.3.2). */
  onRequest(request: ClientRequest, subnet: PoolSubnet | undefined, serverIds: readonly Ipv4[], leases: LeaseView, nowMs: number): Decision {
    if (request.serverId !== undefined) {
      // SELECTING: the client chose a server. Not us: forget our offer, say nothing.
      if (!serverIds.includes(request.serverId)) {
        this.#drop(request.clientKey);
        return { kind: 'silent', reason: 'client selected another server' };
      }
      const ip = request.requestedIp ?? (request.ciaddr !== 0 ? request.ciaddr : undefined);
      if (ip === undefined || !subnet) return { kind: 'nak', reason: 'selecting without requested address' };
      return this.#grant(request, subnet, ip, leases, nowMs);
    }
    if (request.requestedIp !== undefined && request.ciaddr === 0) {
      // INIT-REBOOT: wrong network -> NAK; our record of another client -> NAK; no record -> NAK if authoritative.
      const ip = request.requestedIp;
      if (subnet && this.poolFor(request, subnet, leases) === undefined) return refuseUnknown(subnet, ip);
      if (!subnet || !cidrContains(subnet.cidr, ip)) return { kind: 'nak', reason: 'requested address is not on this network' };
      const known = this.#clientLease(request, leases);
      if (known?.ip === ip || this.#offersByClient.get(request.clientKey)?.ip === ip) return this.#grant(request, subnet, ip, leases, nowMs);
      const holder = leases.lease(ip);
      if (holder && holder.state === 'bound' && !sameClient(holder, request)) return { kind: 'nak', reason: 'address belongs to another client', subnet };
      // The log binds the address to this client though its index points at a later binding in
      // another subnet (one MAC behind two relays: cluster/fsm.ts keeps both).
      if (holder && holder.state === 'bound' && holder.subnet === subnet.id && holder.expiresAt > nowMs) return this.#grant(request, subnet, ip, leases, nowMs);
      if (!this.settings.authoritative) return { kind: 'silent', reason: 'init-reboot for an unknown client' };
      return { kind: 'nak', reason: 'no record of this client', subnet };
    }
    if (request.ciaddr !== 0) {
      // RENEWING (unicast) or REBINDING (broadcast): extend the binding of ciaddr.
      // RFC 2131 §4.3.2: check ciaddr. A relay selects one subnet (config check), so through a relay
      // a ciaddr outside it is a client that moved to the relay's network: NAK, it starts over there
      // (an ACK left it holding an address that does not route on its new network). Unrelayed, a
      // unicast renewal from a routed subnet arrives with giaddr 0: ciaddr's subnet decides.
      if (request.giaddr !== 0 && subnet && !cidrContains(subnet.cidr, request.ciaddr)) return { kind: 'nak', reason: 'ciaddr is not on the relay\'s network', subnet };
      const found = subnet && cidrContains(subnet.cidr, request.ciaddr) ? subnet : this.subnets.find((s) => cidrContains(s.cidr, request.ciaddr));
      if (!found) return { kind: 'nak', reason: 'ciaddr is not on any of our networks' };
      return this.#grant(request, found, request.ciaddr, leases, nowMs);
    }
    return { kind: 'silent', reason: 'request without server id, requested address or ciaddr' };
  }

  /** RELEASE (RFC 2131 §4.3.4): free the client's binding of ciaddr. */
  onRelease(request: ClientRequest, leases: LeaseView): Decision {
    this.#drop(request.clientKey);
    const lease = leases.lease(request.ciaddr);
    if (!lease || lease.state !== 'bound' || !sameClient(lease, request)) return { kind: 'silent', reason: 'release of an address the client does not hold' };
    return { kind: 'release', propose: { type: 'lease.release', ip: lease.ip, mac: lease.mac } };
  }

  /** DECLINE (RFC 2131 §4.3.3): the address is in use on the wire; quarantine it. */
  onDecline(request: ClientRequest, leases: LeaseView, nowMs: number): Decision {
    const offer = this.#offersByClient.get(request.clientKey);
    const ip = request.requestedIp;
    if (ip === undefined || !this.subnets.some((s) => cidrContains(s.cidr, ip))) {
      this.#drop(request.clientKey);
      return { kind: 'silent', reason: 'decline without a requested address of ours' };
    }
    const lease = leases.lease(ip);
    const ours = (lease !== undefined && sameClient(lease, request)) || offer?.ip === ip;
    if (!ours) {
      this.#drop(request.clientKey);
      return { kind: 'silent', reason: 'decline of an address not given to this client' };
    }
    const running = (this.#declines.get(request.mac) ?? []).filter((endMs) => endMs > nowMs);
    if (running.length >= DECLINES_PER_MAC_MAX) {
      const subnet = this.subnets.find((s) => cidrContains(s.cidr, ip));
      return { kind: 'silent', reason: `${running.length} addresses declined by this MAC are in quarantine`, failure: 'decline-limit', ...(subnet ? { subnet } : {}) };
    }
    this.#drop(request.clientKey);
    this.#declines.delete(request.mac);
    this.#declines.set(request.mac, [...running, nowMs + this.settings.declineQuarantineMs]);
    if (this.#declines.size > this.settings.offersMax) this.#declines.delete(this.#declines.keys().next().value!);
    return { kind: 'decline', propose: { type: 'lease.decline', ip, mac: request.mac, quarantineMs: this.settings.declineQuarantineMs } };
  }

  /**
   * INFORM (RFC 2131 §4.3.5): configuration only, no address. An unknown client of a known-only
   * subnet gets the unknownPool's (no boot file), or nothing when there is none.
   */
  onInform(request: Pick<ClientRequest, 'mac' | 'clientId'>, subnet: PoolSubnet | undefined, leases: LeaseView): Decision {
    if (!subnet) return { kind: 'silent', reason: 'inform from an unknown network' };
    const pool = this.poolFor(request, subnet, leases);
    return pool === undefined ? ignoreUnknown(subnet) : { kind: 'inform', subnet: pool };
  }

  /** The proposal for `clientKey` committed or failed: the address no longer needs holding. */
  settle(clientKey: string): void { this.#drop(clientKey); }

  /**
   * Drops offers past their TTL. They sit in the map in the order they were made (#hold re-inserts)
   * and all live offerTtlMs, so the walk stops at the first one still live: a DISCOVER that finds the
   * offer table full does not walk all of it. (A wall clock stepped back can leave an expired offer
   * behind a live one until that one ends; #usable drops expired offers it meets as well.)
   */
  purge(nowMs: number): number {
    let dropped = 0;
    for (const [key, offer] of this.#offersByClient) {
      if (offer.expiresMs > nowMs) break;
      this.#drop(key);
      dropped++;
    }
    return dropped;
  }

  /** Lease commands that reclaim bindings and quarantines whose time has passed (leader only). */
  expiredLeases(leases: Iterable<Lease>, nowMs: number, limit: number): Command[] {
    const out: Command[] = [];
    for (const lease of leases) {
      if (out.length >= limit) break;
      if ((lease.state === 'bound' || lease.state === 'declined') && lease.expiresAt <= nowMs) out.push({ type: 'lease.expire', ip: lease.ip });
    }
    return out;
  }

  #grant(request: ClientRequest, subnetOfRequest: PoolSubnet, ip: Ipv4, leases: LeaseView, nowMs: number): Decision {
    // An address outside the pool the client may use is NAKed below (#usable): a lease an unknown
    // client holds in the subnet's pools since before `clients: known`, or a removed node's.
    const subnet = this.poolFor(request, subnetOfRequest, leases);
    if (subnet === undefined) return refuseUnknown(subnetOfRequest, ip);
    const reservation = this.#reservationFor(request, subnet, leases);
    if (reservation && reservation.ip !== ip) return { kind: 'nak', reason: 'client has a reservation for another address', subnet };
    if (!this.#usable(ip, request, subnet, leases, nowMs)) return { kind: 'nak', reason: 'address not available to this client', subnet };
    this.#hold(request.clientKey, ip, subnet, nowMs, true); // held until the grant commits (settle)
    // The name we give (option 12): a reservation's or the inventory node's; else the client's own goes in
    // the lease, unless someone else owns it: the server's ownership check (services/names.ts) drops it then.
    const given = reservation?.hostname ?? leases.inventory?.byMac(request.mac)?.name;
    const hostname = given ?? sanitizeHostname(request.hostname);
    const propose: Command = { type: 'lease.grant', ip, mac: request.mac, subnet: subnet.id, leaseMs: subnet.leaseMs };
    if (request.clientId !== undefined) propose.clientId = request.clientId;
    if (hostname !== undefined) propose.hostname = hostname;
    return { kind: 'ack', ip, subnet, ...(reservation ? { reservation } : {}), ...(given === undefined ? {} : { hostname: given }), propose };
  }

  /** The config's reservation for the client in this subnet, else its inventory node's address if the subnet holds it. */
  #reservationFor(request: ClientRequest, subnet: PoolSubnet, leases: LeaseView): Reservation | undefined {
    const index = this.#reservationIndex(subnet);
    const byMac = index.byMac.get(request.mac);
    const byId = request.clientId === undefined ? undefined : index.byClientId.get(request.clientId);
    // The first in config order that names the client by either, as a walk of the list finds it.
    const at = byMac === undefined ? byId : byId === undefined ? byMac : Math.min(byMac, byId);
    const configured = at === undefined ? undefined : subnet.reservations[at];
    if (configured !== undefined) return configured;
    const node = leases.inventory?.byMac(request.mac);
    if (node?.ip === undefined || !cidrContains(subnet.cidr, node.ip) || this.#reservedIps.has(node.ip)) return undefined;
    return { mac: node.mac, ip: node.ip, hostname: node.name };
  }

  /** Where each MAC and client id first appears in the subnet's reservations: a lookup per request, not a walk. */
  #reservationIndex(subnet: PoolSubnet): ReservationIndex {
    let index = this.#reservationIndexes.get(subnet);
    if (index === undefined) {
      index = { byMac: new Map(), byClientId: new Map() };
      subnet.reservations.forEach((r, at) => {
        if (r.mac !== undefined && !index!.byMac.has(r.mac)) index!.byMac.set(r.mac, at);
        if (r.clientId !== undefined && !index!.byClientId.has(r.clientId)) index!.byClientId.set(r.clientId, at);
      });
      this.#reservationIndexes.set(subnet, index);
    }
    return index;
  }

  #clientLease(request: ClientRequest, leases: LeaseView): Lease | undefined {
    const byId = request.clientId !== undefined ? leases.leaseByClientId(request.clientId) : undefined;
    return byId ?? leases.leaseByMac(request.mac);
  }

  /** RFC 2131 §4.3.1: the client's current or previous address, if it is still free for it. */
  #previousAddress(request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): Ipv4 | undefined {
    const offered = this.#offersByClient.get(request.clientKey);
    if (offered && offered.poolKey === poolKey(subnet) && offered.expiresMs > nowMs) return offered.ip;
    const lease = this.#clientLease(request, leases);
    if (lease && lease.state !== 'declined' && lease.subnet === subnet.id && this.#usable(lease.ip, request, subnet, leases, nowMs)) return lease.ip;
    return undefined;
  }

  #nextFree(request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): Ipv4 | undefined {
    // The dry memo holds for clients with no binding anywhere: a client's own binding is usable to it
    // alone, and one without any cannot have had a different answer from the scan that failed.
    const version = leases.version;
    const leaseless = version !== undefined && leases.leaseByMac(request.mac) === undefined
      && (request.clientId === undefined || leases.leaseByClientId(request.clientId) === undefined);
    const key = poolKey(subnet);
    const dry = this.#dry.get(key);
    if (leaseless && dry !== undefined && dry.version === version && dry.offersEpoch === this.#offersEpoch && nowMs < dry.untilMs) return undefined;
    const size = subnet.ranges.reduce((n, r) => n + (r.last - r.first + 1), 0);
    let untilMs = Infinity;
    // With pool halves, this server's own half first (HA.md 2.4, normal rule 1), then the rest.
    const policy = this.#policy;
    for (const pass of policy === null ? [null] : [true, false]) {
      let index = this.#cursor.get(key) ?? 0;
      for (let tried = 0; tried < size; tried++, index = (index + 1) % size) {
        const ip = addressAt(subnet.ranges, index);
        if (pass !== null && policy!.prefers(ip) !== pass) continue;
        const from = this.#usableFrom(ip, request, subnet, leases, nowMs);
        if (from <= nowMs) {
          this.#cursor.set(key, (index + 1) % size);
          return ip;
        }
        if (from < untilMs) untilMs = from;
      }
    }
    if (leaseless) this.#dry.set(key, { version, offersEpoch: this.#offersEpoch, untilMs });
    return undefined;
  }

  /**
   * The pool is dry: the oldest outstanding offer of this subnet made at least offerReclaimAfterMs
   * ago (never a grant being committed, never a reservation's or inventory node's address, which
   * only their owner may have) is withdrawn and its address goes to this client. Its client's
   * REQUEST is then NAKed like any for an address held by another. Offers sit in the map in the
   * order they were made (#hold re-inserts), so the scan stops at the first one too young.
   */
  #reclaim(request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): Offer | undefined {
    const youngest = nowMs - (this.settings.offerReclaimAfterMs ?? OFFER_RECLAIM_AFTER_MS);
    const candidates = this.#reclaimable.get(poolKey(subnet));
    if (candidates === undefined) return undefined;
    for (const offer of candidates.values()) {
      if (offer.madeMs > youngest) break;
      // The inventory may have given the address to a node since the offer was made.
      if (offer.clientKey === request.clientKey || leases.inventory?.byIp(offer.ip) !== undefined) continue;
      // Frees nothing: the address goes to this client, or is another's binding already.
      this.#drop(offer.clientKey, false);
      // Still free apart from the offer (a lease may have been bound to the address since by the
      // other server's grant: then the offer was stale and is gone for good, rightly).
      if (this.#usable(offer.ip, request, subnet, leases, nowMs)) return offer;
    }
    return undefined;
  }

  /** May `ip` go to this client now? Pool or own reservation, not the subnet's network/broadcast, not held by anyone else. */
  #usable(ip: Ipv4, request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): boolean {
    return this.#usableFrom(ip, request, subnet, leases, nowMs) <= nowMs;
  }

  /**
   * From when `ip` may go to this client (#usable: now or earlier). Otherwise no earlier than the end
   * of the offer, quarantine or binding that holds it, or never (Infinity) for an address that is
   * not the client's to have (outside the pools, another's reservation or node).
   */
  #usableFrom(ip: Ipv4, request: ClientRequest, subnet: PoolSubnet, leases: LeaseView, nowMs: number): number {
    if (!cidrContains(subnet.cidr, ip) || ip === subnet.cidr.network || ip === broadcastOf(subnet.cidr)) return Infinity;
    if (subnet.siteAddresses.has(ip)) return Infinity;
    const reserved = this.#reservedIps.get(ip);
    const node = reserved === undefined ? leases.inventory?.byIp(ip) : undefined;
    if (reserved) {
      if (!((reserved.mac !== undefined && reserved.mac === request.mac) || (reserved.clientId !== undefined && reserved.clientId === request.clientId))) return Infinity;
    } else if (node) {
      if (node.mac !== request.mac) return Infinity;
    } else if (subnet.optionAddresses.has(ip) || !subnet.ranges.some((r) => ip >= r.first && ip <= r.last)) {
      return Infinity;
    }
    const lease = leases.lease(ip);
    // The other member's half of the pool: only the client's own binding there (a renewal).
    if (this.#policy !== null && !reserved && !node && !this.#policy.mayAllocate(ip) && !(lease !== undefined && lease.state === 'bound' && sameClient(lease, request) && this.#policy.keeps(lease, nowMs))) return Infinity;
    const offer = this.#offersByIp.get(ip);
    if (offer && offer.clientKey !== request.clientKey) {
      // The log's binding of this very client (within its end plus the grace, when no other client
      // could have been offered the address) outranks an offer in memory: such an offer can only be
      // a stale one, made by this server in an earlier term and never committed (the address went to
      // this client through the other server meanwhile). Honouring it NAKed a client out of its
      // committed address on its renewal.
      const ownBinding = lease !== undefined && lease.state === 'bound' && sameClient(lease, request) && lease.expiresAt + this.settings.reuseGraceMs > nowMs;
      if (offer.expiresMs > nowMs && !ownBinding) return offer.expiresMs;
      this.#drop(offer.clientKey);
    }
    if (!lease) return -Infinity;
    const mclt = this.#policy?.reuseAfterMs ?? 0;
    if (lease.state === 'declined') return lease.expiresAt + mclt;
    if (sameClient(lease, request)) return -Infinity;
    // Someone else's: only once the binding ended, plus the grace (RFC 2131 §4.3.1 prefers reuse
    // last), and with pool halves not before MCLT after it (the partner may have renewed it alone).
    return lease.expiresAt + Math.max(this.settings.reuseGraceMs, mclt);
  }

  #hold(clientKey: string, ip: Ipv4, subnet: PoolSubnet, nowMs: number, granting: boolean): void {
    // The same client's offer of the same address made again frees nothing: no new dry-pool scan.
    const previous = this.#offersByClient.get(clientKey);
    this.#drop(clientKey, previous?.ip !== ip);
    const offer: Offer = { ip, clientKey, subnetId: subnet.id, poolKey: poolKey(subnet), madeMs: nowMs, expiresMs: nowMs + this.settings.offerTtlMs, granting };
    this.#offersByClient.set(clientKey, offer);
    this.#offersByIp.set(ip, offer);
    if (!granting && !this.#reservedIps.has(ip)) {
      let candidates = this.#reclaimable.get(offer.poolKey);
      if (candidates === undefined) this.#reclaimable.set(offer.poolKey, candidates = new Map());
      candidates.set(clientKey, offer);
    }
  }

  #drop(clientKey: string, frees = true): void {
    const offer = this.#offersByClient.get(clientKey);
    if (!offer) return;
    this.#offersByClient.delete(clientKey);
    if (this.#offersByIp.get(offer.ip) === offer) this.#offersByIp.delete(offer.ip);
    this.#reclaimable.get(offer.poolKey)?.delete(clientKey);
    if (frees) this.#offersEpoch++;
  }
}

/** The allocator's key of a pool (cursor, dry-pool memo, reclaimable offers): a subnet's unknownPool has its own. */
function poolKey(pool: PoolSubnet): string {
  return pool.unknownClients === true ? `${pool.id} unknownPool` : pool.id;
}

/** An unknown client of a known-only subnet without an unknownPool: no reply, counted by the shell. */
function ignoreUnknown(subnet: PoolSubnet): Decision {
  return { kind: 'silent', reason: 'unknown client on a subnet for known clients only (clients: known)', ignored: 'unknown-client', subnet };
}

/**
 * A REQUEST of an unknown client of a known-only subnet without an unknownPool. For an address of
 * the subnet's pools (a lease granted before `clients: known`, or to a node removed since) a NAK,
 * as Kea sends for an address in a pool the client's classes may not use (dhcp4_srv.cc
 * assignLease: "not allowed for this client"): the client stops using it now, not at the lease's
 * end. For any other address silence, as for its DISCOVER.
 */
function refuseUnknown(subnet: PoolSubnet, ip: Ipv4): Decision {
  if (subnet.ranges.some((r) => ip >= r.first && ip <= r.last)) return { kind: 'nak', reason: 'client is not known on this subnet (clients: known)', subnet };
  return ignoreUnknown(subnet);
}

/**
 * Lease caching (Kea's `cache-threshold` / `cache-max-age`): a REQUEST whose grant would write
 * nothing new is answered from the committed lease. `threshold`: the lease's age limit as a
 * fraction of its lease time; `maxAgeMs`: an age limit. Each applies when set, and 0 turns caching
 * off (as in Kea); with neither set it is off.
 */
export interface LeaseCacheSettings {
  threshold?: number | undefined;
  maxAgeMs?: number | undefined;
}

export type LeaseGrant = Extract<Command, { type: 'lease.grant' }>;

/**
 * May `grant` (what the full path would propose for this request) be answered from `lease`, the
 * committed binding, without a log entry? Only when the grant would change nothing the lease
 * records (address, MAC, client id, host name, subnet, and the lease time: a config change of it
 * goes through the log), the binding is live, and it was granted or last renewed less than
 * `threshold` x its lease time ago (and less than `maxAgeMs`). Returns the lease time left, which
 * is what the ACK states: the expiry the client is told is the committed one, never later. Pure.
 */
export function reusableLease(lease: Lease | undefined, grant: LeaseGrant, cache: LeaseCacheSettings, nowMs: number): { remainingMs: number } | null {
  const { threshold, maxAgeMs } = cache;
  if (threshold === undefined && maxAgeMs === undefined) return null;
  if (threshold !== undefined && !(threshold > 0 && threshold < 1)) return null;
  if (lease === undefined || lease.state !== 'bound') return null;
  if (lease.ip !== grant.ip || lease.mac !== grant.mac || lease.clientId !== grant.clientId || lease.hostname !== grant.hostname || lease.subnet !== grant.subnet) return null;
  const lifetimeMs = lease.expiresAt - lease.grantedAt;
  if (lifetimeMs !== grant.leaseMs) return null;
  const ageMs = nowMs - lease.grantedAt;
  if (!(ageMs >= 0)) return null; // a clock behind the grant: nothing to measure the age by
  if (threshold !== undefined && !(ageMs < threshold * lifetimeMs)) return null;
  if (maxAgeMs !== undefined && !(ageMs < maxAgeMs)) return null;
  const remainingMs = lease.expiresAt - nowMs;
  // Option 51 carries whole seconds: under one second left there is nothing to state.
  return remainingMs >= 1000 ? { remainingMs } : null;
}

/** A lease belongs to the request's client: same client id when both have one, else same MAC. */
export function sameClient(lease: Lease, request: Pick<ClientRequest, 'mac' | 'clientId'>): boolean {
  if (lease.clientId !== undefined && request.clientId !== undefined) return lease.clientId === request.clientId;
  return lease.mac === request.mac;
}

export interface PoolUse {
  /** "10.0.0.10-10.0.0.99". */
  range: string;
  used: number;
  total: number;
}

export interface SubnetUse {
  subnet: string;
  used: number;
  total: number;
  pools: PoolUse[];
  /** The unknownPool of a `clients: known` subnet (not in `used` and `total`). */
  unknownPool?: PoolUse;
}

/** "10.0.0.10-10.0.0.99" (one address: just it). */
export function formatRange(r: Ipv4Range): string {
  return r.first === r.last ? formatIpv4(r.first) : `${formatIpv4(r.first)}-${formatIpv4(r.last)}`;
}

/**
 * How full each pool is: addresses of the pool held by a live binding or a running decline
 * quarantine, out of the pool's addresses (the subnet's network and broadcast addresses and the
 * site's own addresses never count).
 */
export function poolUse(subnets: readonly PoolSubnet[], leases: Iterable<Lease>, nowMs: number): SubnetUse[] {
  const held: Ipv4[] = [];
  for (const l of leases) if ((l.state === 'bound' || l.state === 'declined') && l.expiresAt > nowMs) held.push(l.ip);
  return subnets.map((s) => {
    const pools = s.ranges.map((r) => rangeUse(s, r, held));
    const use: SubnetUse = { subnet: s.id, used: pools.reduce((n, p) => n + p.used, 0), total: pools.reduce((n, p) => n + p.total, 0), pools };
    // Apart from the subnet's totals: its addresses are for unknown clients only.
    if (s.unknownPool !== undefined) use.unknownPool = rangeUse(s.unknownPool, s.unknownPool.ranges[0]!, held);
    return use;
  });
}

function rangeUse(s: PoolSubnet, r: Ipv4Range, held: readonly Ipv4[]): PoolUse {
  const network = s.cidr.network, broadcast = broadcastOf(s.cidr);
  const never = (ip: Ipv4): boolean => (s.cidr.prefixLength < 31 && (ip === network || ip === broadcast)) || s.siteAddresses.has(ip) || s.optionAddresses.has(ip);
  let total = r.last - r.first + 1;
  for (const ip of new Set([network, broadcast, ...s.siteAddresses, ...s.optionAddresses])) if (ip >= r.first && ip <= r.last && never(ip)) total--;
  const used = held.filter((ip) => ip >= r.first && ip <= r.last && !never(ip)).length;
  return { range: formatRange(r), used, total };
}

function addressAt(ranges: readonly Ipv4Range[], index: number): Ipv4 {
  let rest = index;
  for (const r of ranges) {
    const size = r.last - r.first + 1;
    if (rest < size) return (r.first + rest) >>> 0;
    rest -= size;
  }
  return ranges[0]!.first;
}

/**
 * A client-sent host name as a DNS label: the first label, lower case, letters/digits/hyphens
 * (others become "-"), no leading/trailing hyphen, at most 63 octets. Undefined when nothing is left.
 */
export function sanitizeHostname(name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const label = (name.split('.')[0] ?? '').toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+/, '').slice(0, 63).replace(/-+$/, '');
  return label.length > 0 ? label : undefined;
}

interface ReservationConfig { mac?: string | undefined; clientId?: string | undefined; ip: Ipv4; hostname?: string | undefined }

/** Client ids in config are hex of option 61 ("01:52:54:00:aa:bb:cc" or "01525400aabbcc"). */
export function normalizeClientId(text: string): string {
  return text.toLowerCase().replace(/[^0-9a-f]/g, '');
}

interface SubnetConfig {
  subnet: Cidr;
  pools: readonly Ipv4Range[];
  reservations: readonly ReservationConfig[];
  relays?: readonly Ipv4[] | undefined;
  leaseTime: number;
  router?: readonly Ipv4[] | undefined;
  dns?: readonly Ipv4[] | undefined;
  ntp?: readonly Ipv4[] | undefined;
  clients?: 'all' | 'known' | undefined;
  unknownPool?: Ipv4Range | undefined;
  unknownLeaseTime?: number | undefined;
  rapidCommit?: boolean | undefined;
}

/** How long an unknownPool's leases last unless `unknownLeaseTime` says: short, the machine is a guest. */
export const UNKNOWN_LEASE_MS = 10 * 60_000;

/**
 * Builds the allocator's view of a configured subnet. `site` lists the site's own addresses (VIP,
 * members, server id): never handed out; the subnet's router, DNS and NTP servers only by reservation.
 */
export function poolSubnet(config: SubnetConfig, site: readonly Ipv4[] = []): PoolSubnet {
  const subnet = subnetView(config, site);
  if (config.clients !== 'known') return subnet;
  subnet.knownOnly = true;
  if (config.unknownPool !== undefined) {
    subnet.unknownPool = { ...subnet, ranges: [config.unknownPool], reservations: [], leaseMs: config.unknownLeaseTime ?? UNKNOWN_LEASE_MS, knownOnly: false, unknownClients: true };
  }
  return subnet;
}

function subnetView(config: SubnetConfig, site: readonly Ipv4[]): PoolSubnet {
  const inside = (ips: readonly Ipv4[]): Set<Ipv4> => new Set(ips.filter((ip) => cidrContains(config.subnet, ip)));
  return {
    id: formatCidr(config.subnet),
    cidr: config.subnet,
    ranges: config.pools,
    reservations: config.reservations.map((r) => {
      const out: Reservation = { ip: r.ip };
      if (r.mac !== undefined) out.mac = r.mac;
      if (r.clientId !== undefined) out.clientId = normalizeClientId(r.clientId);
      if (r.hostname !== undefined) out.hostname = r.hostname;
      return out;
    }),
    relays: config.relays ?? [],
    leaseMs: config.leaseTime,
    siteAddresses: inside(site),
    optionAddresses: inside([...(config.router ?? []), ...(config.dns ?? []), ...(config.ntp ?? [])]),
    ...(config.rapidCommit === true ? { rapidCommit: true } : {}),
  };
}
