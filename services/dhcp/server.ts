import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { DEGRADED_INDEX, DegradedStateLog } from './degraded-state.js';
import { ownershipOf } from './degraded-config.js';
import { DNS_STATUS_QUERY, NTP_CLIENT_REQUEST, partnerPorts, type Knock } from './partner-ports.js';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import { ChildRuns, type CommandResult } from '../../lib/child-runs.js';
import { AlreadySaidError, LanhaError, errorMessage } from '../../lib/errors.js';
import { broadcastOf, cidrContains, formatIpv4, parseIpv4, prefixMask, type Ipv4 } from '../../lib/ipv4.js';
import type { ApiRoutes } from '../../lib/control-server.js';
import { logNowMs, type StateLog } from '../../cluster/state-log.js';
import type { Command } from '../../cluster/commands.js';
import type { AppliedEntry } from '../../cluster/fsm.js';
import type { AckRecord } from '../../cluster/ack-audit.js';
import type { RunningService, ServiceContext, ServiceStatus } from '../contract.js';
import { decodeBootp, decodeDhcp, type DhcpMessage } from './wire.js';
import { readRequest, type ClientRequest } from './request.js';
import { DhcpOption } from './options.js';
import {
  Allocator, formatRange, normalizeClientId, poolSubnet, poolUse, reusableLease, sameClient, sanitizeHostname, type Decision, type LeaseCacheSettings, type LeaseGrant, type PoolSubnet, type SubnetUse,
} from './allocator.js';
import { inventoryOwners, leaseOwners, memberNameOwners, memberNames, nameHeldBy, nameLabel, recordOwners, refusedLabelOwners, reservationOwners, staticRecordNames, targetOwners, zoneApexOwners, zoneTargets, operatorTargets, type NameHolder, type NameOwners } from '../names.js';
import { planBoot, type BootRule } from './netboot.js';
import { ReplyTooLargeError, buildReply, encodeReply, remainingLease, replyDestination, replySizeMax, subnetReplyOptions, unknownPoolReplyOptions, withoutVendorArea, type Destination, type ReplyInput, type SubnetReplyOptions } from './responder.js';
import type { DhcpConfig } from './config.js';
import { siteAddressesOf } from './site-addresses.js';
import { leaseRoutes } from './leases-api.js';
import { broadcastSources, fromInterface, ipv4Addresses, resolveInterface, type InterfaceAddress } from './interface.js';
import { SeenLimiter, bindingEvent, seenCommand } from './inventory-hooks.js';
import { AckStages } from './ack-stages.js';
import type { SubnetClients } from './pool-text.js';
import { MacBuckets } from './rate-limit.js';
import { RogueWatch, rogueAgeOutMs, startRogueProbe, type RogueProbe } from './rogue-probe.js';
import { probeMacFor, rogueServerView } from './rogue.js';
import type { Mac } from '../../lib/mac.js';
import type { Random } from '../../lib/random.js';
import { stopStep, type StopSteps } from '../../lib/stop-steps.js';

// The DHCP shell: one UDP socket, rate limits, the allocator, the StateLog. An ACK goes out only
// after its lease command is durable and applied (propose resolved): a crash after the ACK can
// never lose a lease the client was told it has. Requests are handled concurrently, so a burst of
// REQUESTs shares one fsync (group commit) instead of queueing one proposal behind another.

export interface Reply {
  bytes: Uint8Array;
  destination: Destination;
  kind: ReplyInput['kind'];
}

export interface DhcpHandlerOptions {
  config: DhcpConfig;
  state: StateLog;
  /** The address the server is reached at when no serverId is configured. */
  nodeAddress?: Ipv4 | undefined;
  /** The VIP (vip.address): the server id when neither dhcp.serverId nor dhcp.listen is set, so renewals follow the leader. */
  vipAddress?: Ipv4 | undefined;
  /** The site's own addresses besides the server id and node address (VIP, members): never handed out. */
  siteAddresses?: readonly Ipv4[] | undefined;
  /** The addresses of `dhcp.interface` (interface.ts): they pick the local subnet and filter sources. */
  interfaceAddresses?: readonly InterfaceAddress[] | undefined;
  /**
   * Who else holds host names, asked after the reservations and before other clients' leases
   * (services/names.ts): DNS records, inventory nodes. A name one of them holds is not given out.
   */
  nameOwners?: readonly NameOwners[] | undefined;
  /**
   * Read (monotonic) when a request comes in and once its commit is done, to state in the ACK only
   * the lease time left of the committed binding (see #act). Without it nothing is taken off.
   */
  clock?: Pick<Clock, 'monotonicMs'> | undefined;
  /** Told of every ACK sent, with the log index and term of its grant (the ACK audit, cluster/ack-audit.ts). */
  onAck?: ((ack: AckRecord) => void) | undefined;
  /**
   * The rogue-server watch (rogue-probe.ts): the site's probe MAC, whose DISCOVERs are never served,
   * and the clock its table runs on. Without it no REQUEST is looked at for another server.
   */
  rogue?: { probeMac: Mac; clock: Pick<Clock, 'monotonicMs' | 'wallMs'> } | undefined;
  log: Logger;
}

/** The counter of each message type received (named once, not built per packet). */
const RECEIVED: Readonly<Record<ClientRequest['type'], string>> = {
  discover: 'received.discover', offer: 'received.offer', request: 'received.request', decline: 'received.decline',
  ack: 'received.ack', nak: 'received.nak', release: 'received.release', inform: 'received.inform', bootp: 'received.bootp',
};

/**
 * The reply that tells a client its grant: a BOOTREPLY to a BOOTP client, an ACK with option 80
 * to a DISCOVER (Rapid Commit, RFC 4039 §4: the only DISCOVER that gets a grant), else an ACK.
 */
function ackOf(client: ClientRequest): Pick<ReplyInput, 'kind' | 'rapidCommit'> {
  if (client.type === 'bootp') return { kind: 'bootp' };
  return client.type === 'discover' ? { kind: 'ack', rapidCommit: true } : { kind: 'ack' };
}

/** How a grant reached its client, for the `dhcp.lease.granted` line. */
function ackVia(client: ClientRequest): { via?: 'bootp' | 'rapid-commit' } {
  if (client.type === 'bootp') return { via: 'bootp' };
  return client.type === 'discover' ? { via: 'rapid-commit' } : {};
}

/** The protocol logic without sockets: bytes in, replies out (`handle`), so tests need no network. */
export class DhcpHandler {
  readonly counters = new Counters();
  /** Where each ACK's time went (ack-stages.ts). */
  readonly stages = new AckStages();
  readonly allocator: Allocator;
  readonly serverId: Ipv4;
  /** Other DHCP servers seen (rogue-probe.ts); undefined without `rogue` options. */
  readonly rogue: RogueWatch | undefined;
  #config: DhcpConfig;
  #state: StateLog;
  #log: Logger;
  #clock: Pick<Clock, 'monotonicMs'> | undefined;
  #onAck: ((ack: AckRecord) => void) | undefined;
  #limiter = new LogLimiter();
  #local: PoolSubnet | undefined;
  #interface: readonly InterfaceAddress[] | undefined;
  /** Per pool (a subnet's own, or its unknownPool): the options its replies carry. */
  #replyOptions = new Map<PoolSubnet, SubnetReplyOptions>();
  /** Per known-only subnet: unknown clients ignored (`clients: known`, no unknownPool). */
  #ignoredUnknown = new Map<string, number>();
  #boot: BootRule[];
  /** Where non-relayed broadcasts go: the local subnet's broadcast address until limitedBroadcast(). */
  #broadcast = '255.255.255.255';
  /** The local subnet's broadcast address: the rogue probe's target, and replies' without an address to send 255.255.255.255 from. */
  #subnetBroadcast = '255.255.255.255';
  /** node.address and the VIP: broadcastFrom's choice and what it avoids. */
  #nodeAddress: Ipv4 | undefined;
  #vipAddress: Ipv4 | undefined;
  #perMac: MacBuckets;
  #global = { start: 0, count: 0 };
  #seen = new SeenLimiter();
  /** Names of grants proposed but not yet applied: two clients asking at once cannot both win. */
  #namesInFlight = new Map<string, NameHolder>();
  #nameOwners: readonly NameOwners[];
  /** Lease caching (dhcp.cacheThreshold, 0.25 unless set, dhcp.cacheMaxAge): null when off. */
  #cache: LeaseCacheSettings | null;
  /** Lease commands proposed and not yet settled, per address: a cached ACK never races one. */
  #leaseCommandsInFlight = new Map<Ipv4, number>();

  constructor(options: DhcpHandlerOptions) {
    const config = options.config;
    this.#config = config;
    this.#state = options.state;
    this.#log = options.log;
    this.#clock = options.clock;
    this.#onAck = options.onAck;
    this.#perMac = new MacBuckets(config.rateLimit.perMac, config.rateLimit.perMacWindow);
    // The VIP before this node's own address: a client renews by unicast to its server id, and after
    // a failover only the VIP reaches the leader (with the node address, renewals went to a follower,
    // which stays silent, until the client's broadcast at T2). `listen` narrows the socket to one
    // address, which is then the only one a unicast can reach.
    const serverId = config.serverId ?? config.listen ?? options.vipAddress ?? options.nodeAddress;
    if (serverId === undefined) throw new LanhaError('config-invalid', 'dhcp.serverId: is not set, and neither dhcp.listen nor node.address gives one');
    this.serverId = serverId;
    const site = [serverId, ...(config.listen === undefined ? [] : [config.listen]), ...(options.nodeAddress === undefined ? [] : [options.nodeAddress]),
      ...(options.siteAddresses ?? []), ...(options.interfaceAddresses ?? []).map((a) => a.address)];
    // "Ours" for the rogue watch: every address the site answers from (server id, VIP, members,
    // node, listen, the interface's); an OFFER or a client's choice naming one is not another server.
    this.rogue = options.rogue === undefined ? undefined : new RogueWatch({
      servers: { ours: new Set(site), ignored: new Set(config.rogueProbe.ignore) }, probeMac: options.rogue.probeMac, clock: options.rogue.clock,
      log: options.log, counters: this.counters, ageOutMs: rogueAgeOutMs(config.rogueProbe.interval),
    });
    const subnets = config.subnets.map((s) => {
      const pool = poolSubnet(s, site);
      const inPools = [...new Set([...pool.siteAddresses, ...pool.optionAddresses])].filter((ip) => pool.ranges.some((r) => ip >= r.first && ip <= r.last));
      if (inPools.length > 0) {
        this.#log.warn({ event: 'dhcp.pool.site_addresses', subnet: pool.id, addresses: inPools.map(formatIpv4) },
          `the pools of ${pool.id} hold the site's own ${inPools.map(formatIpv4).join(', ')} (VIP, servers, router, DNS or NTP); they are never given to a client`);
      }
      this.#replyOptions.set(pool, subnetReplyOptions(s, pool.id));
      if (pool.unknownPool) this.#replyOptions.set(pool.unknownPool, unknownPoolReplyOptions(s, pool.id, pool.unknownPool.leaseMs));
      return pool;
    });
    this.allocator = new Allocator(subnets, {
      offerTtlMs: config.offerTtl,
      declineQuarantineMs: config.declineQuarantine,
      reuseGraceMs: config.reuseGrace,
      authoritative: config.authoritative,
      offersMax: 65_536,
    });
    this.#interface = options.interfaceAddresses;
    this.#nodeAddress = options.nodeAddress;
    this.#vipAddress = options.vipAddress;
    const ifaceAddresses = (options.interfaceAddresses ?? []).map((a) => a.address);
    const anchor = [...ifaceAddresses, config.listen, options.nodeAddress, serverId].find((a) => a !== undefined && subnets.some((s) => cidrContains(s.cidr, a)));
    this.#local = anchor === undefined ? undefined : subnets.find((s) => cidrContains(s.cidr, anchor));
    this.#boot = config.boot;
    // 0 in either setting is off (as in Kea): then no request looks at the cache at all.
    this.#cache = config.cacheThreshold === 0 || config.cacheMaxAge === 0 ? null : { threshold: config.cacheThreshold, maxAgeMs: config.cacheMaxAge };
    const inFlight: NameOwners = { kind: 'pending', holdersOf: (label) => { const h = this.#namesInFlight.get(label); return h === undefined ? [] : [h]; } };
    // Reservations, then inventory nodes (a node's name is its own), then what the caller plugs in.
    this.#nameOwners = [reservationOwners(config.subnets, normalizeClientId), inventoryOwners(options.state.fsm.inventory), refusedLabelOwners(), ...(options.nameOwners ?? []), leaseOwners(options.state.fsm), inFlight];
    const localConfig = config.subnets.find((c) => this.#local !== undefined && cidrContains(c.subnet, this.#local.cidr.network));
    if (this.#local && localConfig && config.listen === undefined) this.#broadcast = this.#subnetBroadcast = formatIpv4(localConfig.broadcast ?? broadcastOf(this.#local.cidr));
  }

  /** One datagram in; zero or one reply out. Never throws for anything the network sends. */
  async handle(bytes: Uint8Array, peer: string, nowMs: number): Promise<Reply[]> {
    const startedAt = performance.now();
    this.counters.inc('packets.received');
    let decoded = decodeDhcp(bytes);
    let vendorArea: 'rfc1048' | 'other' = 'rfc1048';
    if (!decoded.ok && decoded.error.code === 'bad-cookie') {
      // A BOOTP client whose vendor area is not RFC 1048's (RFC 951: a vendor's own, or zeros).
      const bootp = decodeBootp(bytes);
      if (bootp.ok) { decoded = bootp; vendorArea = 'other'; }
    }
    if (!decoded.ok) {
      this.#drop(`malformed.${decoded.error.code}`, nowMs, { peer, offset: decoded.error.offset });
      return [];
    }
    const read = readRequest(decoded.value, vendorArea);
    if (!read.ok) {
      this.#drop(`malformed.${read.problem}`, nowMs, { peer });
      return [];
    }
    const client = read.value;
    if (client.mac === this.rogue?.probeMac) {
      // Our own probe's DISCOVER (rogue-probe.ts), heard through the broadcast: never a client (no
      // offer, no pending netboot node, no rate-limit bucket).
      this.counters.inc('rogue.own-probe-heard');
      return [];
    }
    if (client.fqdn === undefined && decoded.value.options.has(DhcpOption.ClientFqdn)) {
      // Served without it (no name from it, no option 81 back), as a client without option 81.
      this.counters.inc('option.fqdn-malformed');
      if (this.#log.isLevelEnabled('debug') && this.#limiter.allow('fqdn-malformed', nowMs)) this.#log.debug({ event: 'dhcp.option.malformed', option: DhcpOption.ClientFqdn, peer, mac: client.mac }, 'option 81 (client FQDN) does not decode; ignored');
    }
    const decodedAt = performance.now();
    if (this.#interface !== undefined && decoded.value.giaddr === 0) {
      // A direct packet whose source lies outside dhcp.interface's networks came in elsewhere.
      const source = parseIpv4(peer.slice(0, peer.lastIndexOf(':')));
      if (source !== null && !fromInterface(source, this.#interface)) {
        this.#drop('other-interface', nowMs, { peer, mac: client.mac });
        return [];
      }
    }
    // Rate windows are durations: on the monotonic clock, which no wall-clock step moves (a step
    // back of an hour kept every MAC over its limit for that hour when they ran on nowMs).
    if (!this.#admit(client.mac, this.#clock?.monotonicMs() ?? nowMs)) return [];
    if (!this.#state.isLeader()) {
      // Only the leader answers DHCP (HA.md): a follower's offer could not be committed anyway.
      this.counters.inc('dropped.not-leader');
      return [];
    }
    this.counters.inc(RECEIVED[client.type]);
    // A client's choice of another server (a SELECTING REQUEST naming it) costs nothing to notice.
    if (client.type === 'request') this.rogue?.onRequest(client);
    this.#recordSeen(client, nowMs);
    const decision = this.#decide(client, nowMs);
    let replies: Reply[];
    try {
      replies = await this.#act(decision, decoded.value, client, nowMs, this.#clock?.monotonicMs(), { startedAt, decodedAt });
    } catch (error) {
      if (!(error instanceof ReplyTooLargeError)) throw error;
      this.#drop('reply-too-large', nowMs, { peer, mac: client.mac });
      return [];
    }
    // Gated again at the end (HA.md §2.5: a resumed stale leader sends nothing): a leader paused
    // (SIGSTOP, a long stall) between the request and the commit may run on after another member
    // won; its ACK would then reach the client seconds after the entry's log time. The entry is
    // committed either way; the client retries and the new leader answers from the same binding.
    if (replies.length > 0 && !this.#state.isLeader()) {
      this.counters.inc('dropped.lease-lost-before-reply');
      return [];
    }
    return replies;
  }

  /** An unknown MAC whose firmware asks to netboot: onto the inventory's pending list (once a minute at most). */
  #recordSeen(client: ClientRequest, nowMs: number): void {
    const command = seenCommand(client, this.allocator.isKnown(client, this.#state.fsm));
    if (command === null || !this.#seen.allow(client.mac, nowMs)) return;
    this.counters.inc('inventory.seen');
    this.#state.propose(command).catch((error: unknown) => {
      this.#log.debug({ event: 'dhcp.seen.failed', mac: client.mac, err: errorMessage(error) }, 'pending MAC not recorded');
    });
  }

  /** A new binding of an inventory node: a step of its boot timeline (firmware or OS DHCP). */
  #recordBinding(client: ClientRequest, ip: Ipv4): void {
    if (this.#state.fsm.inventory.byMac(client.mac) === undefined) return;
    const command = bindingEvent(client, ip);
    if (command === null) return;
    this.#state.propose(command).catch((error: unknown) => {
      this.#log.debug({ event: 'dhcp.boot_event.failed', mac: client.mac, err: errorMessage(error) }, 'boot event not recorded');
    });
  }

  #decide(client: ClientRequest, nowMs: number): Decision {
    const fsm = this.#state.fsm;
    const subnet = this.allocator.selectSubnet(client, this.#local);
    // A relay of no network we serve (giaddr in no subnet, not a listed relay): say nothing, as to a
    // DISCOVER from there. A NAK would go to whatever giaddr the packet names, ours or not.
    if (client.giaddr !== 0 && subnet === undefined && (client.type === 'request' || client.type === 'inform')) {
      return { kind: 'silent', reason: 'relayed from a network we do not serve' };
    }
    switch (client.type) {
      case 'discover':
        if (!subnet) return { kind: 'silent', reason: 'no subnet for this network' };
        return client.rapidCommit === true ? this.allocator.onDiscoverCommit(client, subnet, [this.serverId], fsm, nowMs) : this.allocator.onDiscover(client, subnet, fsm, nowMs);
      case 'bootp':
        if (!subnet) return { kind: 'silent', reason: 'no subnet for this network' };
        return this.allocator.onBootp(client, subnet, [this.serverId], fsm, nowMs, this.#config.bootp.dynamic);
      case 'request': return this.allocator.onRequest(client, subnet, [this.serverId], fsm, nowMs);
      case 'release': return this.allocator.onRelease(client, fsm);
      case 'decline': return this.allocator.onDecline(client, fsm, nowMs);
      // RFC 2131 §4.4.3: a client may unicast its INFORM; from a relayed subnet it arrives routed
      // (giaddr 0) and its ciaddr, not the server's own subnet, says which network's options it needs.
      case 'inform': return this.allocator.onInform(client, client.giaddr === 0 && client.ciaddr !== 0 ? this.allocator.subnets.find((s) => cidrContains(s.cidr, client.ciaddr)) : subnet, fsm);
      default: return { kind: 'silent', reason: `${client.type} is a server message` };
    }
  }

  /** `receivedMono`: the monotonic time the request came in (undefined without a clock). */
  async #act(decision: Decision, request: DhcpMessage, client: ClientRequest, nowMs: number, receivedMono: number | undefined, at: { startedAt: number; decodedAt: number }): Promise<Reply[]> {
    const facts = { mac: client.mac, xid: client.xid, clientId: client.clientId };
    switch (decision.kind) {
      case 'silent':
        if (decision.ignored === 'bootp-unknown') {
          // dnsmasq answers BOOTP only for its dhcp-host entries unless bootp-dynamic: the same here.
          this.counters.inc('ignored.bootp-unknown');
          if (this.#log.isLevelEnabled('debug') && this.#limiter.allow('bootp-unknown', nowMs)) this.#log.debug({ event: 'dhcp.bootp.ignored', mac: client.mac, xid: client.xid }, 'BOOTP client without a reserved address; no reply (dhcp.bootp.dynamic is off)');
          return [];
        } else if (decision.ignored !== undefined && decision.subnet !== undefined) {
          this.#ignoreUnknown(decision.subnet, client, nowMs);
        } else if (decision.failure !== undefined) {
          // Not the generic `silent`: an operator must see a full pool (issue 12).
          this.counters.inc(`allocation-failed.${decision.failure}`);
          if (decision.failure === 'decline-limit' && this.#limiter.allow('declines ignored', nowMs)) {
            this.#log.warn({ event: 'dhcp.decline.ignored', mac: client.mac, ip: formatIpv4(client.requestedIp ?? 0), reason: decision.reason },
              `${client.mac} declines address after address (${decision.reason}); its DECLINE is ignored so that it cannot empty the pool: look for a host answering ARP for the pool (proxy ARP, a static address)`);
          }
          if (decision.failure === 'pool-exhausted' && decision.subnet !== undefined && this.#limiter.allow(`exhausted ${decision.subnet.id}`, nowMs)) {
            this.#log.warn({
              event: 'dhcp.pool.exhausted', subnet: decision.subnet.id, pools: decision.subnet.ranges.map(formatRange), mac: client.mac,
            }, `no free address in subnet ${decision.subnet.id} (pools ${decision.subnet.ranges.map(formatRange).join(', ')}); the client gets no offer`);
          }
        } else {
          this.counters.inc('silent');
        }
        if (this.#log.isLevelEnabled('debug') && decision.ignored === undefined) this.#log.debug({ event: 'dhcp.silent', ...facts, type: client.type, reason: decision.reason }, 'no reply');
        return [];
      case 'offer':
        this.counters.inc('sent.offer');
        if (decision.reclaimed !== undefined) {
          // The pool was dry and an older outstanding offer was taken back for this client (allocator.ts #reclaim).
          this.counters.inc('offer.reclaimed');
          if (this.#limiter.allow(`reclaimed ${decision.subnet.id}`, nowMs)) {
            this.#log.warn({
              event: 'dhcp.offer.reclaimed', subnet: decision.subnet.id, ip: formatIpv4(decision.ip), mac: client.mac, offeredTo: decision.reclaimed.clientKey,
              offerAgeMs: nowMs - decision.reclaimed.madeMs,
            }, `subnet ${decision.subnet.id} has no free address: an unanswered offer was taken back for a new client (a DISCOVER flood, or a pool too small)`);
          }
        }
        return [this.#reply({ kind: 'offer', request, client, serverId: this.serverId, ip: decision.ip, ...this.#extras(decision.subnet, client, decision.hostname), published: this.#offeredName(decision.hostname, client, nowMs) })];
      case 'nak':
        this.counters.inc('sent.nak');
        this.#log.info({ event: 'dhcp.nak', ...facts, reason: decision.reason }, 'NAK');
        return [this.#reply({ kind: 'nak', request, client, serverId: this.serverId, message: decision.reason })];
      case 'inform':
        this.counters.inc('sent.inform-ack');
        return [this.#reply({ kind: 'inform', request, client, serverId: this.serverId, ...this.#extras(decision.subnet, client, undefined) })];
      case 'release':
      case 'decline':
        await this.#commit(decision.propose, client);
        this.#log.info({ event: `dhcp.lease.${decision.kind}d`, ...facts, ip: formatIpv4(request.ciaddr || (client.requestedIp ?? 0)) }, decision.kind);
        return [];
      case 'ack': {
        const cached = this.#cachedAck(decision, request, client, nowMs, facts);
        if (cached !== null) return [cached];
        const label = this.#claimName(decision.propose, nowMs);
        const proposedAt = performance.now();
        let committed: AppliedEntry | null;
        try {
          committed = await this.#commit(decision.propose, client);
        } finally {
          if (label !== undefined) this.#namesInFlight.delete(label);
        }
        if (committed === null) return [];
        const resumedAt = performance.now();
        const lease = this.#state.fsm.lease(decision.ip);
        if (!lease || lease.state !== 'bound' || !sameClient(lease, client)) {
          // A DISCOVER (Rapid Commit) or a BOOTREQUEST gets no NAK (RFC 2131 §4.3.1: none to a
          // DISCOVER; BOOTP has none): it retries and is offered another address.
          if (client.type === 'discover' || client.type === 'bootp') {
            this.counters.inc('dropped.grant-refused');
            return [];
          }
          this.counters.inc('sent.nak');
          return [this.#reply({ kind: 'nak', request, client, serverId: this.serverId, message: 'address taken' })];
        }
        // The committed binding runs from the entry's log time; the ACK leaves only after the
        // commit, which takes seconds when the one member left to make a majority is slow (the
        // witness during an A-B cut or with the other server down, on a loaded machine). A client
        // that counts its lease from the ACK (busybox udhcpc does, RFC 2131 §4.4.1 says from the
        // REQUEST) would hold the address that long past the cluster's expiry, when the address
        // may go to someone else. So the whole seconds since the request came in (monotonic: the
        // log time was stamped after it, and a wall-clock step must not count) come off the times
        // the ACK states.
        const lateMs = receivedMono === undefined ? 0 : Math.max(0, this.#clock!.monotonicMs() - receivedMono);
        const lateS = Math.floor(lateMs / 1000);
        if (lease.expiresAt - lease.grantedAt - lateMs < 1000) {
          // Nothing left to give: the client's retry gets a fresh grant.
          this.counters.inc('dropped.lease-over-before-reply');
          this.#log.warn({ event: 'dhcp.ack.too_late', ...facts, ip: formatIpv4(decision.ip), lateMs }, 'the lease ran out while its commit ran; no ACK sent');
          return [];
        }
        if (lateS > 0) {
          this.counters.inc('sent.ack-shortened');
          this.#log.info({ event: 'dhcp.ack.shortened', ...facts, ip: formatIpv4(decision.ip), lateMs }, `the commit took ${lateMs} ms; the ACK states ${lateS} s less lease time`);
        }
        this.counters.inc(client.type === 'bootp' ? 'sent.bootp' : 'sent.ack');
        if (client.type === 'discover') this.counters.inc('rapid-commit.acked');
        const extras = this.#extras(decision.subnet, client, decision.hostname, lateS);
        // Granted less than the pool's lease time (degraded mode's MCLT caps, degraded-state.ts): the
        // ACK states what the grant holds, never more.
        const grantedMs = lease.expiresAt - committed.at;
        const full = this.#replyOptions.get(decision.subnet);
        if (extras.subnet !== undefined && full !== undefined && grantedMs < full.leaseMs - 1000) extras.subnet = remainingLease(full, Math.max(1000, grantedMs - lateS * 1000));
        this.#recordBinding(client, decision.ip);
        this.#onAck?.({ index: committed.index, term: committed.term ?? null, ip: decision.ip, mac: client.mac, at: committed.at, sentAt: nowMs });
        // The boot rule is logged so an operator can see why a netbooting client got its file.
        const boot = extras.boot ? { boot: extras.boot.rule, bootfile: extras.boot.bootfile } : {};
        if (this.#log.isLevelEnabled('info')) this.#log.info({ event: 'dhcp.lease.granted', ...facts, ip: formatIpv4(decision.ip), hostname: lease.hostname, expiresAt: lease.expiresAt, ...boot, ...ackVia(client) }, 'lease granted');
        const ack = this.#reply({ ...ackOf(client), request, client, serverId: this.serverId, ip: decision.ip, ...extras, published: lease.hostname });
        this.#recordStages(at.startedAt, at.decodedAt, proposedAt, resumedAt, committed);
        return [ack];
      }
    }
  }

  /**
   * Lease caching: the ACK of a REQUEST whose grant would change nothing in its client's lease,
   * granted or renewed recently enough (allocator.ts reusableLease), sent from the committed lease
   * with the lease time left and no log entry; null when the grant must go through the log. Read
   * only from a current state (StateLog.stateCurrent: no older leader's entry still to apply) and
   * never while another command on the address is in flight: either could change the lease.
   */
  #cachedAck(decision: Extract<Decision, { kind: 'ack' }>, request: DhcpMessage, client: ClientRequest, nowMs: number, facts: Record<string, unknown>): Reply | null {
    const grant = decision.propose;
    // A BOOTP grant is never cached: its lease is infinite and its reply no ACK.
    if (this.#cache === null || client.type === 'bootp' || grant.type !== 'lease.grant' || this.#leaseCommandsInFlight.has(grant.ip) || this.#state.stateCurrent?.() !== true) return null;
    const lease = this.#state.fsm.lease(grant.ip);
    const reuse = lease === undefined ? null : reusableLease(lease, this.#grantAsNamed(grant, nowMs), this.#cache, nowMs);
    if (lease === undefined || reuse === null) return null;
    this.allocator.settle(client.clientKey);
    this.counters.inc('sent.ack');
    if (client.type === 'discover') this.counters.inc('rapid-commit.acked');
    this.counters.inc('lease.reused');
    this.#recordBinding(client, grant.ip);
    if (lease.index !== undefined) this.#onAck?.({ index: lease.index, term: this.#state.committedTerm?.(lease.index) ?? null, ip: grant.ip, mac: client.mac, at: lease.changedAt, sentAt: nowMs });
    const subnet = this.#replyOptions.get(decision.subnet);
    const extras = this.#extras(decision.subnet, client, decision.hostname);
    if (subnet !== undefined) extras.subnet = remainingLease(subnet, reuse.remainingMs);
    // Logged like a grant (with the boot rule: a netbooting client's second DHCP, iPXE's after the
    // ROM's, is answered from here), so the log still shows every ACK and why it carried its file.
    if (this.#log.isLevelEnabled('info')) {
      const boot = extras.boot ? { boot: extras.boot.rule, bootfile: extras.boot.bootfile } : {};
      this.#log.info({ event: 'dhcp.lease.reused', ...facts, ip: formatIpv4(grant.ip), hostname: lease.hostname, expiresAt: lease.expiresAt, remainingMs: reuse.remainingMs, ...boot }, 'lease reused (cached ACK)');
    }
    return this.#reply({ ...ackOf(client), request, client, serverId: this.serverId, ip: grant.ip, ...extras, published: lease.hostname });
  }

  /** The grant as the full path would propose it: without its host name when someone else owns the name. */
  #grantAsNamed(grant: LeaseGrant, nowMs: number): LeaseGrant {
    if (grant.hostname === undefined || nameHeldBy(grant.hostname, grant, this.#nameOwners, nowMs) === undefined) return grant;
    const { hostname: _refused, ...rest } = grant;
    return rest;
  }

  /** One ACK's stage times (ack-stages.ts); the log's part comes from the entry's timing when it has one. */
  #recordStages(startedAt: number, decodedAt: number, proposedAt: number, resumedAt: number, entry: AppliedEntry): void {
    const end = performance.now();
    const s = this.stages;
    s.record('decode', decodedAt - startedAt);
    s.record('decide', proposedAt - decodedAt);
    const waited = resumedAt - proposedAt;
    const t = entry.timing;
    if (t !== undefined) {
      s.record('queue', t.queuedMs);
      s.record('persist', t.persistMs);
      if (t.syncWaitMs !== undefined) {
        s.record('persist_wait', t.syncWaitMs);
        s.record('persist_sync', t.persistMs - t.syncWaitMs);
      }
      s.record('commit', t.commitMs);
    }
    s.record('resume', t === undefined ? waited : waited - t.queuedMs - t.persistMs - t.commitMs);
    s.record('reply', end - resumedAt);
    s.record('total', end - startedAt);
  }

  /** The name an OFFER tells back in option 81: the one we give, else the client's own if the grant would keep it. */
  #offeredName(given: string | undefined, client: ClientRequest, nowMs: number): string | undefined {
    if (given !== undefined || client.fqdn === undefined) return given;
    const own = sanitizeHostname(client.hostname);
    return own === undefined || nameHeldBy(own, client, this.#nameOwners, nowMs) !== undefined ? undefined : own;
  }

  /**
   * A lease name never takes over a name someone else holds (services/names.ts): the grant goes
   * ahead without one, and the refusal is logged with both clients. Returns the label now in flight.
   */
  #claimName(propose: Command, nowMs: number): string | undefined {
    if (propose.type !== 'lease.grant' || propose.hostname === undefined) return undefined;
    const holder = nameHeldBy(propose.hostname, propose, this.#nameOwners, nowMs);
    if (holder !== undefined) {
      this.counters.inc('name.refused');
      this.#log.info({
        event: 'dhcp.name.refused', name: propose.hostname, mac: propose.mac, ip: formatIpv4(propose.ip),
        holder: holder.what, holderKind: holder.kind, ...(holder.mac === undefined ? {} : { holderMac: holder.mac }),
      }, `host name ${propose.hostname} asked by ${propose.mac} belongs to ${holder.mac ?? holder.what}; lease granted without a name`);
      delete propose.hostname;
      return undefined;
    }
    const label = nameLabel(propose.hostname);
    this.#namesInFlight.set(label, { kind: 'pending', mac: propose.mac, clientId: propose.clientId, ip: propose.ip, what: `the grant in flight to ${propose.mac}` });
    return label;
  }

  /**
   * Every lease command goes through here (the handler's, the expiry sweep's, `lanctl leases
   * release`): while one is in flight its address gets no cached ACK, which would be read from the
   * lease before the command applies.
   */
  async proposeLease(command: Command): Promise<AppliedEntry> {
    const ip = command.type === 'lease.grant' || command.type === 'lease.release' || command.type === 'lease.decline' || command.type === 'lease.expire' ? command.ip : undefined;
    if (ip === undefined) return this.#state.propose(command);
    this.#leaseCommandsInFlight.set(ip, (this.#leaseCommandsInFlight.get(ip) ?? 0) + 1);
    try {
      return await this.#state.propose(command);
    } finally {
      const left = (this.#leaseCommandsInFlight.get(ip) ?? 1) - 1;
      if (left > 0) this.#leaseCommandsInFlight.set(ip, left);
      else this.#leaseCommandsInFlight.delete(ip);
    }
  }

  /** Proposes and waits until durable and applied: the entry, or null (no reply) when the log refused. */
  async #commit(command: Command, client: ClientRequest): Promise<AppliedEntry | null> {
    try {
      return await this.proposeLease(command);
    } catch (error) {
      this.counters.inc('propose.failed');
      // A cause said once where it arose (the degraded journal out of descriptors) is not said again per request.
      const level = error instanceof AlreadySaidError ? 'debug' : 'warn';
      this.#log[level]({ event: 'dhcp.propose.failed', mac: client.mac, err: errorMessage(error) }, 'lease change not committed; no reply sent');
      return null;
    } finally {
      this.allocator.settle(client.clientKey);
    }
  }

  /**
   * `lateS`: whole seconds the lease has already run (an ACK sent late); they come off T1, T2 and the
   * lease time. An unknownPool's replies carry no boot file: an unknown machine must not boot a node's image.
   */
  #extras(pool: PoolSubnet, client: ClientRequest, hostname: string | undefined, lateS = 0): Pick<ReplyInput, 'subnet' | 'boot' | 'hostname'> {
    const out: Pick<ReplyInput, 'subnet' | 'boot' | 'hostname'> = { boot: pool.unknownClients === true ? null : planBoot(client, this.#boot, this.serverId) };
    const subnet = this.#replyOptions.get(pool);
    if (subnet) out.subnet = lateS > 0 ? shortened(subnet, lateS * 1000) : subnet;
    if (hostname !== undefined) out.hostname = hostname;
    return out;
  }

  #reply(input: ReplyInput): Reply {
    const { message, requested } = buildReply(input);
    const bytes = encodeReply(message, requested, replySizeMax(input.client));
    return {
      bytes: input.kind === 'bootp' && input.client.bootpVendor === 'other' ? withoutVendorArea(bytes) : bytes,
      destination: replyDestination(input.request, input.kind, this.#config.port, this.#config.clientPort, this.#broadcast),
      kind: input.kind,
    };
  }

  /** An unknown client of a known-only subnet got nothing: counted (in all and per subnet), logged at debug at a bounded rate. */
  #ignoreUnknown(subnet: PoolSubnet, client: ClientRequest, nowMs: number): void {
    this.counters.inc('ignored.unknown-client');
    this.#ignoredUnknown.set(subnet.id, (this.#ignoredUnknown.get(subnet.id) ?? 0) + 1);
    if (this.#log.isLevelEnabled('debug') && this.#limiter.allow('unknown-client', nowMs)) {
      this.#log.debug({ event: 'dhcp.client.ignored', mac: client.mac, clientId: client.clientId, type: client.type, subnet: subnet.id }, 'unknown client on a subnet for known clients only; no reply');
    }
  }

  /** Per subnet: who it serves (`clients`), the unknownPool, and how many unknown clients it ignored (`lanctl status`, metrics). */
  clientModes(): SubnetClients[] {
    return this.allocator.subnets.map((s) => ({
      subnet: s.id, clients: s.knownOnly === true ? 'known' : 'all',
      unknownPool: s.unknownPool === undefined ? null : s.unknownPool.ranges.map(formatRange).join(', '),
      ignored: this.#ignoredUnknown.get(s.id) ?? 0,
    }));
  }

  /** Per-MAC (rate-limit.ts) and global rate limits: excess packets are dropped and counted. */
  #admit(mac: string, nowMs: number): boolean {
    const limits = this.#config.rateLimit;
    if (nowMs - this.#global.start >= 1000) this.#global = { start: nowMs, count: 0 };
    if (++this.#global.count > limits.global) {
      this.#drop('rate-limited.global', nowMs, {});
      return false;
    }
    if (!this.#perMac.admit(mac, nowMs)) {
      this.#drop('rate-limited.mac', nowMs, { mac });
      return false;
    }
    return true;
  }

  #drop(kind: string, nowMs: number, facts: Record<string, unknown>): void {
    this.counters.inc(`dropped.${kind}`);
    if (this.#log.isLevelEnabled('debug') && this.#limiter.allow(kind, nowMs)) {
      this.#log.debug({ event: kind.startsWith('malformed') ? 'dhcp.packet.malformed' : 'dhcp.packet.dropped', code: kind, ...facts }, 'packet dropped');
    }
  }

  /**
   * Where the rogue probe's DISCOVER goes: the local subnet's broadcast address; null with
   * `dhcp.listen` (one address, no broadcasts: loopback demos and tests must not probe a real LAN)
   * or without a local subnet.
   */
  get probeAddress(): string | null {
    return this.#config.listen === undefined && this.#local !== undefined ? this.#subnetBroadcast : null;
  }

  /** Where broadcast replies go now: 255.255.255.255 or the local subnet's broadcast address. */
  get broadcastTo(): string { return this.#broadcast; }

  /**
   * The addresses of this node (`host`: os.networkInterfaces()) to try sending 255.255.255.255 from
   * so it leaves by the local subnet's link (interface.ts broadcastSources); none with `dhcp.listen`
   * (its socket is bound already) or without a local subnet.
   */
  broadcastFrom(host: readonly Ipv4[]): Ipv4[] {
    if (this.#config.listen !== undefined || this.#local === undefined) return [];
    return broadcastSources(this.#local.cidr, host, [...(this.#interface ?? []).map((a) => a.address), this.#nodeAddress], this.#vipAddress);
  }

  /**
   * The shell sends 255.255.255.255 from one of broadcastFrom()'s addresses (true): broadcast replies
   * go there from now on; or it has none any more (false): they go to the local subnet's broadcast.
   */
  limitedBroadcast(on = true): void {
    this.#broadcast = on ? '255.255.255.255' : this.#subnetBroadcast;
  }

  /** How full each subnet's pools are now (`lanctl status`, `lanctl leases`). */
  poolUse(nowMs: number): SubnetUse[] {
    return poolUse(this.allocator.subnets, this.#state.fsm.leases(), nowMs);
  }

  /** Leader housekeeping: forget stale offers, reclaim expired leases and quarantines. */
  async sweep(nowMs: number): Promise<number> {
    this.allocator.purge(nowMs);
    if (!this.#state.isLeader()) return 0;
    const commands = this.allocator.expiredLeases(this.#state.fsm.leases(), nowMs, 256);
    await Promise.all(commands.map(async (command) => {
      try {
        await this.proposeLease(command);
        this.counters.inc('lease.expired');
      } catch (error) {
        this.#log.warn({ event: 'dhcp.expire.failed', err: errorMessage(error) }, 'could not reclaim an expired lease');
      }
    }));
    if (commands.length > 0) this.#log.info({ event: 'dhcp.lease.expired', count: commands.length }, 'expired leases reclaimed');
    return commands.length;
  }
}

export interface DhcpServerOptions {
  config: DhcpConfig;
  state: StateLog;
  clock: Clock;
  log: Logger;
  nodeAddress?: Ipv4 | undefined;
  vipAddress?: Ipv4 | undefined;
  siteAddresses?: readonly Ipv4[] | undefined;
  sweepIntervalMs?: number;
  nameOwners?: readonly NameOwners[] | undefined;
  /** REQUEST received -> ACK handed to the socket, commit included (lanha_dhcp_ack_duration_seconds). */
  observeAckSeconds?: ((seconds: number) => void) | undefined;
  onAck?: ((ack: AckRecord) => void) | undefined;
  /** The rogue-server watch and probe: the site's name (its probe MAC) and the xids' randomness. */
  rogue?: { site: string; random: Random } | undefined;
  /** How often the 255.255.255.255 socket checks this node's addresses (BROADCAST_CHECK_MS). */
  broadcastCheckMs?: number;
  /** This node's IPv4 addresses now (os.networkInterfaces()); tests give their own. */
  hostAddresses?: () => Ipv4[];
}

/**
 * A subnet's reply times with `byMs` of the lease already gone: the lease time, T1 and T2 all end
 * when they would have counted from the entry's log time; a T1 or T2 already past becomes the RFC
 * 2131 default share of what is left (0.5, 0.875).
 */
function shortened(subnet: SubnetReplyOptions, byMs: number): SubnetReplyOptions {
  const leaseMs = Math.max(1000, subnet.leaseMs - byMs);
  const renewMs = subnet.renewMs - byMs >= 1000 ? subnet.renewMs - byMs : Math.floor(leaseMs / 2);
  const rebindMs = subnet.rebindMs - byMs > renewMs ? subnet.rebindMs - byMs : Math.max(renewMs, Math.floor(leaseMs * 0.875));
  return { ...subnet, leaseMs, renewMs, rebindMs };
}

/** Every IPv4 address of this node. */
function hostAddresses(): Ipv4[] {
  return Object.values(networkInterfaces()).flatMap((infos) => ipv4Addresses(infos ?? []).map((a) => a.address));
}

/** Binds `socket` to address:port, closing it and failing with bind-failed when it cannot. */
async function bindUdp(socket: Socket, port: number, address: string): Promise<Socket> {
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => {
    socket.close();
    throw new LanhaError('bind-failed', `cannot bind DHCP to udp ${address}:${port}: ${errorMessage(error)}`);
  });
  return socket;
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => socket.close(() => resolve()));
}

/** How often the socket sending 255.255.255.255 checks that its address is still this node's. */
export const BROADCAST_CHECK_MS = 5000;

/** Whether `address` is this node's now: a socket can be bound to it (no netlink in Node). */
async function isLocalAddress(address: Ipv4): Promise<boolean> {
  const probe = createSocket('udp4');
  return new Promise<boolean>((resolve) => {
    probe.once('error', () => { probe.close(); resolve(false); });
    probe.bind(0, formatIpv4(address), () => { probe.close(); resolve(true); });
  });
}

interface BroadcastSourceOptions {
  handler: DhcpHandler;
  port: number;
  serve: (bytes: Buffer, rinfo: RemoteInfo) => void;
  log: Logger;
  intervalMs: number;
  hostAddresses: () => Ipv4[];
}

/**
 * The socket replies to 255.255.255.255 leave from: bound to this node's address on the DHCP
 * subnet, so Linux sends them out of that address's link (interface.ts broadcastSources). It follows
 * the host's addresses: every `intervalMs` (and at once when a send from it fails) it checks its
 * address is still this node's; one removed, changed or on a link gone down is let go and the next
 * candidate bound, and one added after start is taken up. Without one, replies go to the subnet's
 * broadcast address (counted as broadcast.to_subnet; `lanctl doctor` says so while boot rules are
 * served). Each change is one log line; checks cost a bind, no netlink.
 */
class BroadcastSource {
  socket: Socket | undefined;
  from: Ipv4 | undefined;
  readonly #o: BroadcastSourceOptions;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** What the last check found, to log changes only: undefined before the first. */
  #logged: string | undefined;

  constructor(o: BroadcastSourceOptions) {
    this.#o = o;
  }

  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => { void this.check(); }, this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Checks now (one at a time; a call during a check runs one more after it). */
  check(): Promise<void> {
    if (this.#checking !== undefined) {
      this.#again = true;
      return this.#checking;
    }
    this.#checking = this.#check().finally(() => {
      this.#checking = undefined;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        void this.check();
      }
    });
    return this.#checking;
  }

  async #check(): Promise<void> {
    const { handler, log } = this.#o;
    if (this.#stopped) return;
    const lost = this.from;
    if (this.socket !== undefined && this.from !== undefined) {
      if (await isLocalAddress(this.from)) return;
      const socket = this.socket;
      this.socket = undefined;
      this.from = undefined;
      handler.limitedBroadcast(false);
      handler.counters.inc('broadcast.source_lost');
      await closeSocket(socket);
    }
    for (const candidate of handler.broadcastFrom(this.#o.hostAddresses())) {
      if (this.#stopped) return;
      const bound = createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: 4 << 20 });
      // Unicasts to this address (renewals to node.address) arrive here, not at the wildcard: the
      // same handler answers them. Broadcasts still arrive at the wildcard only.
      bound.on('message', this.#o.serve);
      bound.on('error', (error) => log.error({ event: 'dhcp.socket.error', err: errorMessage(error) }, 'DHCP broadcast socket error'));
      try {
        await bindUdp(bound, this.#o.port, formatIpv4(candidate));
      } catch (error) {
        if (this.#logged === undefined) log.warn({ event: 'dhcp.broadcast.unbound', from: formatIpv4(candidate), err: errorMessage(error) }, 'cannot send 255.255.255.255 from this address');
        continue;
      }
      if (this.#stopped) { await closeSocket(bound); return; }
      bound.setBroadcast(true);
      this.socket = bound;
      this.from = candidate;
      handler.limitedBroadcast(true);
      if (this.#logged !== undefined) handler.counters.inc('broadcast.source_bound');
      this.#say(lost);
      return;
    }
    this.#say(lost);
  }

  /** One log line per change of where broadcast replies go. */
  #say(lost: Ipv4 | undefined): void {
    const { handler, log } = this.#o;
    const now = this.from === undefined ? handler.broadcastTo : `255.255.255.255 from ${formatIpv4(this.from)}`;
    if (now === this.#logged) return;
    const first = this.#logged === undefined;
    this.#logged = now;
    const facts = { event: 'dhcp.broadcast_to', to: handler.broadcastTo, ...(this.from === undefined ? {} : { from: formatIpv4(this.from) }), ...(lost === undefined ? {} : { lost: formatIpv4(lost) }) };
    const was = lost === undefined ? '' : `${formatIpv4(lost)} is no longer this node's address (removed, changed or its link down): `;
    if (this.from !== undefined) log.info(facts, `${was}replies to clients without an address go to 255.255.255.255 from ${formatIpv4(this.from)}`);
    else if (first || lost !== undefined) {
      log[first ? 'info' : 'warn'](facts, `${was}replies to clients without an address go to ${handler.broadcastTo}: this node has no address of its DHCP subnet to send 255.255.255.255 from (checked every ${this.#o.intervalMs / 1000} s); UEFI PXE and HTTP boot firmware ignores them`);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#checking;
    if (this.socket !== undefined) await closeSocket(this.socket);
    this.socket = undefined;
  }
}

/** Binds the socket and runs the handler until stop(). */
export async function startDhcpServer(options: DhcpServerOptions): Promise<RunningService & { handler: DhcpHandler }> {
  const { config, clock, log } = options;
  let interfaceAddresses: InterfaceAddress[] | undefined;
  if (config.interface !== undefined) {
    const resolved = resolveInterface(config.interface, networkInterfaces(), config.subnets.map((s) => s.subnet));
    if (!resolved.ok) throw new LanhaError('bind-failed', resolved.error);
    interfaceAddresses = resolved.value;
  }
  const probeMac = options.rogue === undefined ? undefined : probeMacFor(options.rogue.site);
  const handler = new DhcpHandler({ ...options, interfaceAddresses, rogue: probeMac === undefined ? undefined : { probeMac, clock } });
  // The wildcard hears broadcasts; a socket bound to a unicast address would not (DESIGN.md
  // "Sockets and addresses"). `listen` narrows it, for loopback-only tests and demos.
  const address = config.listen === undefined ? '0.0.0.0' : formatIpv4(config.listen);
  // Beside the wildcard, a second socket bound to this node's address on the DHCP subnet sends the
  // replies to 255.255.255.255: Linux sends a limited broadcast from a bound socket out of the
  // device owning its address, not by the default route (interface.ts broadcastSource). Both need
  // SO_REUSEADDR to share the port; an exclusive bind first keeps "port taken" an error.
  const sendLogLimiter = new LogLimiter();
  // Filled in below: the socket sending 255.255.255.255, which follows this node's addresses.
  let broadcast: BroadcastSource | undefined;
  const serve = (bytes: Buffer, rinfo: RemoteInfo): void => {
    const peer = `${rinfo.address}:${rinfo.port}`;
    const receivedMs = clock.monotonicMs();
    // Lease expiries are log time, stamped by the leader: "now" for the allocator and the sweep is
    // log time too, so a step of this node's wall clock neither expires every lease (forward) nor
    // keeps expired ones (back).
    handler.handle(bytes, peer, logNowMs(options.state, clock)).then((replies) => {
      for (const reply of replies) {
        if (reply.kind === 'ack') options.observeAckSeconds?.((clock.monotonicMs() - receivedMs) / 1000);
        const sendAt = performance.now();
        const limited = reply.destination.address === '255.255.255.255';
        const bound = limited ? broadcast?.socket : undefined;
        if (!limited && reply.destination.address === handler.probeAddress && handler.probeAddress !== null) handler.counters.inc('broadcast.to_subnet');
        (bound ?? socket).send(reply.bytes, reply.destination.port, reply.destination.address, (error) => {
          if (!error) return;
          handler.counters.inc('send.failed');
          if (sendLogLimiter.allow('send', clock.wallMs())) log.warn({ event: 'dhcp.send.failed', to: reply.destination.address, err: errorMessage(error) }, 'reply not sent');
          // The address it was sent from may be gone (removed, changed, link down): look now.
          if (bound !== undefined) broadcast?.check();
        });
        if (reply.kind === 'ack') handler.stages.record('send', performance.now() - sendAt);
      }
    }, (error: unknown) => {
      // A bug, not bad input (decoding never throws): keep serving, say so loudly, but at a bounded
      // rate: if a datagram can trigger it, a stream of them must not flood the log.
      handler.counters.inc('handler.failed');
      if (sendLogLimiter.allow('handler', clock.monotonicMs())) log.error({ event: 'dhcp.handler.failed', peer, err: errorMessage(error) }, 'DHCP handler failed');
    });
  };
  // SO_REUSEADDR whenever a broadcast socket may join later (an address added after start); an
  // exclusive bind first keeps "port taken" an error.
  const shared = handler.probeAddress !== null;
  if (shared && config.port !== 0) await bindUdp(createSocket('udp4'), config.port, address).then(closeSocket);
  // A deep receive buffer absorbs bursts (a rack powering on) while the event loop waits on a commit.
  const socket: Socket = createSocket({ type: 'udp4', reuseAddr: shared, recvBufferSize: 4 << 20 });
  socket.on('message', serve);
  socket.on('error', (error) => log.error({ event: 'dhcp.socket.error', err: errorMessage(error) }, 'DHCP socket error'));
  await bindUdp(socket, config.port, address);
  socket.setBroadcast(true);
  const port = socket.address().port;
  if (handler.probeAddress !== null) {
    broadcast = new BroadcastSource({ handler, port, serve, log, intervalMs: options.broadcastCheckMs ?? BROADCAST_CHECK_MS, hostAddresses: options.hostAddresses ?? hostAddresses });
    await broadcast.start();
  }
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    void handler.sweep(logNowMs(options.state, clock)).finally(() => { sweeping = false; });
  }, options.sweepIntervalMs ?? 5000);
  timer.unref();
  const probe = startProbe(options, handler);
  log.info({ event: 'dhcp.listening', address, port, serverId: formatIpv4(handler.serverId), ...(config.interface === undefined ? {} : { interface: config.interface }) }, 'DHCP listening');
  const routes: ApiRoutes = leaseRoutes(options.state, clock, (nowMs) => handler.poolUse(nowMs), (command) => handler.proposeLease(command));
  return {
    name: 'dhcp',
    handler,
    routes,
    status(): ServiceStatus {
      return {
        listening: [`udp ${address}:${port}`], serverId: formatIpv4(handler.serverId), broadcastTo: handler.broadcastTo,
        ...(broadcast === undefined ? {} : { broadcastFrom: broadcast.from === undefined ? null : formatIpv4(broadcast.from) }), offers: handler.allocator.offerCount,
        pools: handler.poolUse(logNowMs(options.state, clock)), clients: handler.clientModes(), counters: handler.counters.toJSON(), ackStages: handler.stages.summary(),
        ...(handler.rogue === undefined ? {} : { rogue: { probe: probe?.status() ?? null, servers: handler.rogue.list().map(rogueServerView) } }),
      };
    },
    async stop(steps?: StopSteps) {
      clearInterval(timer);
      await stopStep(steps, 'dhcp.rogue_probe', () => probe?.stop());
      await stopStep(steps, 'dhcp.socket', () => closeSocket(socket));
      await stopStep(steps, 'dhcp.broadcast', () => broadcast?.stop());
    },
  };
}

/** The rogue probe of a handler with a rogue watch (off, and saying why, when there is nothing to probe). */
function startProbe(options: DhcpServerOptions, handler: DhcpHandler): RogueProbe | undefined {
  if (handler.rogue === undefined || options.rogue === undefined) return undefined;
  const { config } = options;
  const address = handler.probeAddress;
  return startRogueProbe({
    watch: handler.rogue, intervalMs: config.rogueProbe.interval, clientPort: config.clientPort,
    target: address === null ? null : { address, port: config.port },
    off: config.rogueProbe.interval === 0 ? 'dhcp.rogueProbe.interval is 0' : config.listen !== undefined ? 'dhcp.listen narrows DHCP to one address: no broadcasts' : 'no subnet of dhcp.subnets holds this node\'s address',
    clock: options.clock, random: options.rogue.random, log: options.log, counters: handler.counters,
    isServing: () => options.state.isLeader(),
  });
}

/** The registry's entry point. */
export async function startDhcp(context: ServiceContext): Promise<RunningService> {
  const config = context.config.dhcp;
  if (config === undefined) throw new LanhaError('config-invalid', 'dhcp: is not configured');
  // Lease names land in the `leases: true` zones; a static or operator record there keeps its name,
  // and so does a zone of ours whose apex the name would be.
  const dns = context.config.dns;
  const leaseZones = (dns?.zones ?? []).filter((z) => z.leases).map((z) => z.name);
  const staticNames = staticRecordNames(dns?.zones ?? []);
  const records = recordOwners(() => leaseZones, function* () {
    yield* staticNames;
    for (const r of context.state.fsm.records()) yield r.name;
  });
  // Names our zones point at (NS, SOA primary, MX, SRV, CNAME, PTR targets): no client may claim one.
  const zoneNames = (dns?.zones ?? []).map((z) => z.name);
  const staticTargets = zoneTargets(dns?.zones ?? []);
  const targets = targetOwners(() => leaseZones, function* () {
    yield* staticTargets;
    yield* operatorTargets(zoneNames, context.state.fsm.records());
  });
  // Degraded split-pool mode (dhcp.degraded, degraded-state.ts): DHCP's view of the state log, over the cluster's.
  const ownership = ownershipOf(context.config);
  const vip = context.config.vip;
  const vipNet = vip === undefined ? null : { network: (vip.address.address & prefixMask(vip.address.prefixLength)) >>> 0, prefixLength: vip.address.prefixLength };
  // The probes' arping processes: the stop ends and waits for them (SIGTERM, SIGKILL 300 ms later).
  const arpings = new ChildRuns(ARP_PROBE_TIMEOUT_MS, () => context.clock.monotonicMs());
  const degraded = ownership === null || context.config.cluster?.backend !== 'raft' ? null : new DegradedStateLog({
    inner: context.state, self: context.config.node.name, ownership, mcltMs: config.degraded.mclt, stateDir: context.config.node.stateDir,
    members: context.members ?? (() => ({})), clock: context.clock, log: context.log, reportNow: context.reportNow, leadReportSent: context.leadReportSent,
    probeVip: vip === undefined ? null : () => probeArp(arpings.run, vip.address.address, vip.interface),
    probePartner: ((address) => (vip === undefined || address === null ? null : {
      address: formatIpv4(address), probe: () => probeArp(arpings.run, address, vip.interface),
      // Both members' addresses on the VIP's subnet: an ARP answer from the partner would come on this LAN.
      onVipLan: [address, memberAddress(context.config, context.config.node.name)].every((a) => a !== null && vipNet !== null && cidrContains(vipNet, a)),
      ...((ports) => (ports === null ? {} : { ports: () => partnerPorts(formatIpv4(address), ports) }))(partnerServicePorts(context.config, ownership)),
    }))(partnerAddress(context.config, ownership)),
  });
  const acked = context.observe?.dhcpAcked;
  const running = await startDhcpServer({ config, state: degraded ?? context.state, clock: context.clock, log: context.log, nodeAddress: context.config.node.address, nameOwners: [memberNameOwners(memberNames(context.config)), zoneApexOwners(() => leaseZones, zoneNames), records, targets],
    vipAddress: context.config.vip?.address.address,
    siteAddresses: siteAddressesOf(context.config),
    // A degraded ACK is in the journal, not the log: the ACK audit checks committed grants only.
    observeAckSeconds: context.observe?.dhcpAckSeconds, onAck: acked === undefined ? undefined : (ack) => { if (ack.index !== DEGRADED_INDEX) acked(ack); },
    rogue: { site: context.config.cluster?.id ?? context.config.node.name, random: context.random },
  });
  if (degraded === null) return running;
  degraded.start((policy) => running.handler.allocator.setPolicy(policy));
  const withDegraded: RunningService & { degraded: DegradedStateLog } = {
    ...running,
    degraded,
    status: () => ({ ...running.status(), degraded: degraded.view() }),
    async stop(steps?: StopSteps) {
      degraded.stop();
      // A probe's arping waits up to 1 s for a reply nobody needs any more: ended, not left behind.
      const probes = stopStep(steps, 'dhcp.arp_probes', async () => {
        for (const c of await arpings.close(ARP_PROBE_STOP_MS)) {
          context.log.warn({ event: 'dhcp.degraded.probe_killed', pid: c.pid, command: c.command, ms: c.ms, outcome: c.outcome }, `stopping: ${c.command} (pid ${c.pid}) did not end on SIGTERM; killed${c.outcome === 'left' ? ', and not seen to end' : ''}`);
        }
      });
      await Promise.all([probes, running.stop(steps)]);
    },
  };
  return withDegraded;
}

/** The partner's LAN address (its cluster.members entry), when it is an IPv4 address: degraded mode ARP-probes it. */
function partnerAddress(config: ServiceContext['config'], ownership: ReturnType<typeof ownershipOf>): Ipv4 | null {
  if (ownership === null) return null;
  return memberAddress(config, ownership.partnerOf(config.node.name));
}

/**
 * The partner's cluster port and a second port its lanha serves, knocked to tell its lanha down on a
 * machine that is up from a cut cluster link (partner-ports.ts): its DNS port over TCP (`dns.tcp`,
 * the default), else its DNS port over UDP (a STATUS query: NOTIMP at once, nothing forwarded), else
 * its NTP port (a client request); the partner's config is taken to match this one's, as for the
 * cluster. Null without a second port: one port resetting might be a firewall's rule, so no knock.
 */
export function partnerServicePorts(config: ServiceContext['config'], ownership: ReturnType<typeof ownershipOf>): Knock[] | null {
  if (ownership === null) return null;
  const partner = config.cluster?.members.find((m) => m.name === ownership.partnerOf(config.node.name));
  if (partner === undefined) return null;
  const second: Knock | null = config.dns !== undefined ? (config.dns.tcp ? { proto: 'tcp', port: config.dns.port } : { proto: 'udp', port: config.dns.port, payload: DNS_STATUS_QUERY })
    : config.ntp !== undefined ? { proto: 'udp', port: config.ntp.port, payload: NTP_CLIENT_REQUEST } : null;
  return second === null ? null : [{ proto: 'tcp', port: partner.port }, second];
}

/** A member's cluster.members address, when it is an IPv4 address. */
function memberAddress(config: ServiceContext['config'], name: string): Ipv4 | null {
  return parseIpv4(config.cluster?.members.find((m) => m.name === name)?.address ?? '');
}


/** One probe's arping is killed after this long (it waits 1 s for a reply). */
const ARP_PROBE_TIMEOUT_MS = 3000;
/** At the stop, a probe's arping has this long after SIGTERM before SIGKILL. */
const ARP_PROBE_STOP_MS = 300;

/**
 * Three ARP probes for an address (the VIP, the partner's), 100 ms apart, in duplicate-address-detection mode (arping -D: no
 * source address, so no neighbour learns this node for it), each waiting up to 1 s for a reply:
 * 'answered' when some host replied to any. iputils arping takes whole seconds only (its -i 0.1 is
 * refused), so the three are three processes started 100 ms apart.
 */
function probeArp(run: (program: string, args: readonly string[]) => Promise<CommandResult>, address: Ipv4, device: string | undefined): Promise<'answered' | 'silent' | { failed: string }> {
  const args = ['-D', '-q', '-c', '1', '-w', '1', ...(device === undefined ? [] : ['-I', device]), formatIpv4(address)];
  const one = (delayMs: number): Promise<'answered' | 'silent' | { failed: string }> => new Promise((resolve) => {
    setTimeout(() => void run('arping', args).then((r) => {
      if (r.code === 0) resolve('silent');
      else if (r.code === 1) resolve('answered');
      else resolve({ failed: `arping ${args.join(' ')}: ${r.stderr.trim()}` });
    }), delayMs);
  });
  return Promise.all([one(0), one(100), one(200)]).then((r) => r.find((x) => typeof x !== 'string') ?? (r.includes('answered') ? 'answered' : 'silent'));
}
