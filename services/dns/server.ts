import dgram from 'node:dgram';
import net from 'node:net';
import { availableParallelism } from 'node:os';
import type { LanhaConfig } from '../../config/index.js';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import { systemClock, type Clock } from '../../lib/clock.js';
import type { Random } from '../../lib/random.js';
import type { Counters } from '../../lib/counters.js';
import { serviceAddresses } from '../../lib/listen.js';
import { keepListening, listenOn } from '../../lib/stream-listen.js';
import { literalLookup } from '../../lib/udp-lookup.js';
import { setReading } from '../../lib/udp-reading.js';
import { cidrContains, formatCidr, formatIpv4, type Cidr } from '../../lib/ipv4.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { ApiRoutes } from '../../lib/control-server.js';
import type { RunningService, ServiceContext, ServiceStatus } from '../contract.js';
import type { DnsConfig } from './config.js';
import { tcpShare } from './bounds.js';
import type { ProcessMemory } from '../../lib/memory.js';
import { DnsAnswerer, type ForwardQuery, type Reply } from './answerer.js';
import { Forwarder, forwardWith, inFlightShares } from './forward.js';
import { missTrace } from './miss-trace.js';
import { wireOf } from './cache.js';
import { Notifier } from './notify.js';
import { recordRoutes } from './records-api.js';
import { UdpWorkers } from './udp-workers.js';
import { buildZoneSet, type LeaseName, type ZoneSet, type ZoneSetInput } from './zone.js';
import { nodeAddresses } from '../../cluster/inventory.js';
import { memberNameOwners, memberNames, nameHeldBy, refusedLabelOwners, reservationOwners } from '../names.js';
import { normalizeClientId } from '../dhcp/allocator.js';
import { stopStep, type StopSteps } from '../../lib/stop-steps.js';

// The DNS shell: one UDP socket and one TCP listener per served address (never a wildcard: Node
// cannot choose a reply's source address), UDP worker processes reading those sockets (the daemon
// reads a UDP socket itself only while no worker does: one reader, one wake-up per datagram), the zone
// store rebuilt from config + replicated state, forwarding, counters and logs. Answering itself
// (prebuilt answers, rate limiting) is in answerer.ts, shared with the workers.

export interface DnsServiceOptions {
  config: LanhaConfig;
  log: Logger;
  clock: Clock;
  random: Random;
  state: StateLog;
}

const PER_CONNECTION_PENDING_MAX = 64;
/**
 * Answers queued in user space for one TCP connection past which the daemon stops reading it until
 * the client has taken them: a client that pipelines queries and never reads its answers would
 * otherwise grow the daemon's memory without bound (each answer is queued whole once the kernel's
 * send buffer is full).
 */
export const TCP_WRITE_BACKLOG_MAX = 64 * 1024;
/** Inventory commands that change a node's name or address. */
const NAME_COMMANDS: ReadonlySet<string> = new Set(['node.add', 'node.set', 'node.remove', 'node.accept']);
const REBUILD_SPACING_MS = 100;
/** The most a change waits for its rebuild, however long rebuilds take. */
const REBUILD_SPACING_MAX_MS = 2000;

export class DnsServer implements RunningService {
  readonly name = 'dns';
  readonly counters: Counters;
  #cfg: DnsConfig;
  #config: LanhaConfig;
  #log: Logger;
  #clock: Clock;
  #state: StateLog;
  #zoneInput: ZoneSetInput;
  #answerer: DnsAnswerer;
  #workerCount: number;
  #workers: UdpWorkers | null = null;
  /** Served address -> its UDP socket and TCP listener. */
  #bound = new Map<string, { udp: dgram.Socket; tcp: net.Server | null; port: number; reading: boolean }>();
  #connections = new Set<net.Socket>();
  /** Open TCP connections per source address (the per-source share of maxTcpConnections). */
  #perSource = new Map<string, number>();
  #forwarder: Forwarder | null = null;
  #notifier: Notifier | null = null;
  #limiter = new LogLimiter();
  #unsubscribe: (() => void) | null = null;
  #rebuildTimer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  #lastRebuild = -Infinity;
  /** How long the last rebuild took (ms): the spacing of the next follows it. */
  #lastRebuildMs = 0;
  #lastWarnings = new Set<string>();

  constructor(o: DnsServiceOptions) {
    if (o.config.dns === undefined) throw new Error('dns is not configured');
    this.#cfg = o.config.dns;
    this.#config = o.config;
    this.#log = o.log;
    this.#clock = o.clock;
    this.#state = o.state;
    this.routes = recordRoutes(o.state, () => this.zones);
    this.#workerCount = this.#cfg.workers ?? (availableParallelism() >= 2 ? 1 : 0);
    this.#zoneInput = this.#zoneSetInput();
    this.#answerer = new DnsAnswerer({
      cfg: this.#cfg, nodeName: o.config.node.name, zones: this.#buildZones(this.#zoneInput), clock: o.clock, log: o.log,
      // The daemon reads UDP only while no worker does: then it alone answers, with the whole rate.
      processes: 1, trace: o.clock === systemClock ? missTrace() : null,
    });
    this.counters = this.#answerer.counters;
    if (this.#cfg.forward !== undefined) {
      this.#forwarder = new Forwarder({
        upstreams: this.#cfg.forward.upstreams, domains: this.#cfg.forward.domains, timeoutMs: this.#cfg.forward.timeout,
        // The whole bound until a worker serves (#shareInFlight).
        cache: this.#answerer.forwardCache!, maxInFlight: inFlightShares(this.#cfg.forward.maxInFlight, this.#workerCount).daemonWith(0),
        clock: o.clock, random: o.random, counters: this.counters, log: o.log.child({ service: 'dns' }),
        onCached: (entry) => this.#workers?.cacheFill(wireOf(entry)), busy: () => this.#answerer.backlogged(),
        trace: o.clock === systemClock ? missTrace() : null,
      });
      this.#forward = forwardWith(this.#forwarder, o.config.node.name, this.#clock);
    }
    const notify = this.#cfg.transfer?.notify ?? [];
    if (notify.length > 0) this.#notifier = new Notifier({ targets: notify, random: o.random, log: o.log, counters: this.counters });
  }

  get zones(): ZoneSet { return this.#answerer.zones; }

  async start(): Promise<void> {
    this.#unsubscribe = this.#state.fsm.subscribe((entry) => {
      const t = entry.command.type;
      if (t.startsWith('lease.') || t.startsWith('dns.') || NAME_COMMANDS.has(t)) this.#scheduleRebuild();
    });
    try {
      for (const address of serviceAddresses(this.#config, this.#cfg.listen)) await this.addAddress(address);
      if (this.#workerCount > 0) {
        this.#workers = new UdpWorkers({
          count: this.#workerCount,
          log: this.#log,
          init: () => ({
            t: 'init', cfg: this.#cfg, nodeName: this.#config.node.name, logLevel: this.#config.node.logLevel,
            processes: 1 + this.#workerCount, udpReaders: this.#workerCount, zones: this.#zoneInput,
          }),
          onReaders: (address) => { this.#readByDaemon(address); this.#shareInFlight(); },
          sockets: () => new Map([...this.#bound].map(([a, b]) => [a, b.udp])),
          onCached: (entry) => this.#answerer.forwardCache?.insertWire(entry, this.#clock.monotonicMs()),
          cached: () => this.#answerer.forwardCache?.snapshot(this.#clock.monotonicMs()) ?? [],
        });
        await this.#workers.start();
      }
      // Secondaries may hold an older copy from before this start.
      this.#notifier?.notify(this.zones.zones.map((z) => z.origin), this.zones.serial);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  status(): ServiceStatus {
    const counters = new Map(Object.entries(this.#answerer.snapshot()));
    for (const [k, v] of this.#workers?.counters() ?? []) counters.set(k, (counters.get(k) ?? 0) + v);
    return {
      listening: [...this.#bound].flatMap(([a, b]) => [`udp ${a}:${b.port}`, ...(b.tcp ? [`tcp ${a}:${b.port}`] : [])]),
      /** Served addresses whose UDP socket the daemon reads itself (no worker reads it now). */
      daemonReads: [...this.#bound].filter(([, b]) => b.reading).map(([a]) => a),
      serial: this.zones.serial,
      zones: this.zones.zones.map((z) => z.origin),
      /** Worker processes answering UDP beside the daemon (counters include theirs, up to a second old). */
      workers: { configured: this.#workerCount, running: this.#workers?.running ?? 0, pids: this.#workers?.pids() ?? [] },
      counters: Object.fromEntries([...counters].sort(([a], [b]) => a.localeCompare(b))),
      tcpConnections: this.#connections.size,
      /** Answer bytes queued in the daemon for TCP clients that have not read them yet. */
      tcpBacklogBytes: [...this.#connections].reduce((sum, c) => sum + c.writableLength, 0),
      /** The daemon's forwarding cache (each worker holds a copy fed from it) and the queries waiting upstream. */
      forwardCache: this.#forwarder === null ? null : {
        entries: this.#forwarder.cache.size, bytes: this.#forwarder.cache.bytes,
        maxEntries: this.#forwarder.cache.limits.entries, maxBytes: this.#forwarder.cache.limits.bytes,
        inFlight: this.#forwarder.inFlight, maxInFlight: this.#cfg.forward!.maxInFlight, daemonMaxInFlight: this.#forwarder.maxInFlight,
      },
    };
  }

  readonly routes: ApiRoutes;

  /**
   * The daemon's part of `forward.maxInFlight`: what the workers holding flights (serving a socket,
   * silent ones included) leave (`inFlightShares`), so the whole daemon stays within the bound.
   */
  #shareInFlight(): void {
    if (this.#forwarder === null) return;
    this.#forwarder.setMaxInFlight(inFlightShares(this.#cfg.forward!.maxInFlight, this.#workerCount).daemonWith(this.#workers?.holding() ?? 0));
  }

  /** The daemon reads `address`'s UDP socket exactly while no worker does. */
  #readByDaemon(address: string): void {
    const b = this.#bound.get(address);
    if (b === undefined) return;
    const read = (this.#workers?.readers(address) ?? 0) === 0;
    if (read === b.reading) return;
    if (setReading(b.udp, read)) b.reading = read;
    else if (!read && this.#limiter.allow('pause-read', this.#clock.monotonicMs())) {
      this.#log.warn({ event: 'dns.udp_pause_unsupported', address }, 'this Node cannot stop reading a UDP socket: daemon and worker both read it (each datagram wakes both)');
    }
  }

  processes(): ProcessMemory[] {
    return this.#workers?.memory() ?? [];
  }

  async stop(steps?: StopSteps): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#rebuildTimer !== null) { clearTimeout(this.#rebuildTimer as NodeJS.Timeout); clearImmediate(this.#rebuildTimer as NodeJS.Immediate); this.#rebuildTimer = null; }
    const workers = this.#workers;
    this.#workers = null;
    await stopStep(steps, 'dns.workers', () => workers?.stop());
    this.#forwarder?.close();
    this.#notifier?.close();
    for (const c of this.#connections) c.destroy();
    this.#connections.clear();
    await stopStep(steps, 'dns.sockets', () => Promise.all([...this.#bound.keys()].map((a) => this.removeAddress(a))));
  }

  /**
   * Starts serving on one more address (UDP + TCP): the VIP when this node takes it. Binding the
   * address itself, never a wildcard, is what makes replies leave from the address asked.
   */
  async addAddress(address: string): Promise<void> {
    if (this.#bound.has(address)) return;
    // Port 0 (in-process tests) lets the kernel pick the UDP port; TCP then needs that same number,
    // which another process's TCP socket may hold: pick again, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
      const udp = await this.#bindUdp(address);
      const port = udp.address().port;
      let tcp: net.Server | null = null;
      try {
        if (this.#cfg.tcp) tcp = await this.#listenTcp(address, port);
      } catch (error) {
        udp.close();
        if (this.#cfg.port === 0 && (error as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 20) continue;
        throw error;
      }
      this.#bound.set(address, { udp, tcp, port, reading: true });
      break;
    }
    const udp = this.#bound.get(address)!.udp;
    await this.#workers?.serve(address, udp);
  }

  /** Stops serving on an address (the VIP when this node gives it up); open TCP connections to it end. */
  async removeAddress(address: string): Promise<void> {
    const b = this.#bound.get(address);
    if (b === undefined) return;
    this.#bound.delete(address);
    await this.#workers?.unserve(address);
    for (const c of this.#connections) if (c.localAddress === address || c.localAddress === `::ffff:${address}`) c.destroy();
    await Promise.all([
      new Promise<void>((resolve) => { try { b.udp.close(() => resolve()); } catch { resolve(); } }),
      b.tcp === null ? Promise.resolve() : new Promise<void>((resolve) => b.tcp!.close(() => resolve())),
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Zones

  /** What the zones are built from: config and the replicated state (plain data, also sent to the workers). */
  #zoneSetInput(): ZoneSetInput {
    const fsm = this.#state.fsm;
    const reservations = new Map<string, string>();
    const reverseSubnets: Cidr[] = [];
    const domains = new Map<string, string>();
    for (const s of this.#config.dhcp?.subnets ?? []) {
      if (this.#cfg.reverseZones) reverseSubnets.push(s.subnet);
      if (s.domain !== undefined) domains.set(formatCidr(s.subnet), s.domain);
      for (const r of s.reservations) if (r.hostname !== undefined) {
        if (r.mac !== undefined) reservations.set(`mac:${r.mac}`, r.hostname);
        reservations.set(`ip:${r.ip}`, r.hostname);
      }
    }
    if (this.#cfg.reverseZones) reverseSubnets.push(...this.#cfg.subnets);
    // Inventory nodes: A + PTR under their subnet's domain, for a reserved IP or a live lease.
    const leaseNames: LeaseName[] = [];
    const subnets = this.#config.dhcp?.subnets ?? [];
    // Every live binding of a MAC (one MAC behind two relays holds one per subnet).
    for (const { node, ip } of nodeAddresses(fsm.inventory, (mac) => fsm.liveLeasesByMac(mac, fsm.lastAt), fsm.lastAt)) {
      const domain = subnets.find((s) => cidrContains(s.subnet, ip))?.domain;
      leaseNames.push({ ip, hostname: node.name, grantedAt: node.addedAt, source: 'inventory', domain, owner: node.mac });
    }
    const warnings: string[] = [];
    // A reservation's name belongs to its client, even over a lease granted before the
    // reservation existed (DHCP refuses such names at grant time: services/names.ts).
    // (Inventory nodes' names are ranked first per zone by buildZoneSet; leases of nodes are skipped below.)
    const owners = [reservationOwners(this.#config.dhcp?.subnets ?? [], normalizeClientId), refusedLabelOwners(), memberNameOwners(memberNames(this.#config))];
    for (const l of fsm.leases()) {
      if (l.state !== 'bound' || l.expiresAt <= fsm.lastAt) continue;
      if (fsm.inventory.byMac(l.mac) !== undefined) continue; // named by the inventory above
      const reserved = reservations.get(`mac:${l.mac}`) ?? reservations.get(`ip:${l.ip}`);
      const domain = domains.get(l.subnet);
      const hostname = l.hostname ?? reserved;
      if (hostname === undefined) continue;
      const holder = nameHeldBy(hostname, l, owners, fsm.lastAt);
      if (holder !== undefined) {
        warnings.push(`lease ${formatIpv4(l.ip)} of ${l.mac}: name ${hostname} belongs to ${holder.what} (${holder.mac ?? holder.clientId ?? ''}); not published`);
        continue;
      }
      const source = l.hostname === undefined || reserved === hostname ? 'reservation' : 'lease';
      leaseNames.push({ ip: l.ip, hostname, grantedAt: l.grantedAt, source, domain, owner: l.clientId ?? l.mac });
    }
    return { zones: this.#cfg.zones, reverseSubnets, leaseNames, operatorRecords: [...fsm.records()], serial: fsm.serial, warnings };
  }

  #buildZones(input: ZoneSetInput): ZoneSet {
    const zones = buildZoneSet(input);
    for (const w of zones.warnings) {
      if (!this.#lastWarnings.has(w)) this.#log.warn({ event: 'dns.zone_warning' }, w);
    }
    this.#lastWarnings = new Set(zones.warnings);
    return zones;
  }

  /**
   * A change is served at once (the next turn of the event loop) unless the zones were rebuilt in
   * the last REBUILD_SPACING_MS; then it waits out the rest, so a burst of leases costs a few
   * rebuilds a second rather than one per lease (a rebuild of a few thousand names takes ~15 ms).
   */
  #scheduleRebuild(): void {
    if (this.#rebuildTimer !== null) return;
    // At least ten times what the last rebuild took: with 10,000 names a rebuild takes tens of ms,
    // and a burst of changes (a 10,000-line `lanctl nodes import`) spent most of the event loop on
    // rebuilds at the fixed spacing.
    const spacing = Math.min(REBUILD_SPACING_MAX_MS, Math.max(REBUILD_SPACING_MS, 10 * this.#lastRebuildMs));
    const wait = Math.max(0, this.#lastRebuild + spacing - this.#clock.monotonicMs());
    const run = (): void => {
      this.#rebuildTimer = null;
      this.rebuild();
    };
    this.#rebuildTimer = wait === 0 ? setImmediate(run) : setTimeout(run, wait);
  }

  /** Rebuilds the zones from config + replicated state now and forgets every prebuilt answer. */
  rebuild(): void {
    const before = this.zones.serial;
    this.#lastRebuild = this.#clock.monotonicMs();
    const started = performance.now();
    this.#zoneInput = this.#zoneSetInput();
    this.#answerer.setZones(this.#buildZones(this.#zoneInput));
    this.#workers?.zones(this.#zoneInput);
    this.#lastRebuildMs = performance.now() - started;
    if (this.zones.serial !== before) this.#notifier?.notify(this.zones.zones.map((z) => z.origin), this.zones.serial);
    this.#log.debug({ event: 'dns.zones_rebuilt', serial: this.zones.serial, before }, 'zones rebuilt');
  }

  // -------------------------------------------------------------------------------------------
  // Sockets

  async #bindUdp(address: string): Promise<dgram.Socket> {
    const family = net.isIPv6(address) ? 6 : 4;
    // A larger receive buffer rides out bursts (the kernel caps it at net.core.rmem_max).
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family), recvBufferSize: 4 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => { socket.close(); reject(err); });
      socket.bind(this.#cfg.port, address, () => { socket.removeAllListeners('error'); resolve(); });
    });
    socket.on('error', (err) => {
      this.counters.inc('dns.udp.send_failed');
      if (this.#limiter.allow('udp-error', this.#clock.monotonicMs())) this.#log.warn({ event: 'dns.udp_error', address, err }, 'UDP socket error');
    });
    this.#answerer.serve(socket, this.#forward);
    return socket;
  }

  async #listenTcp(address: string, port: number): Promise<net.Server> {
    const server = net.createServer((conn) => this.#onTcp(conn));
    server.maxConnections = this.#cfg.maxTcpConnections;
    server.on('drop', () => this.counters.inc('dns.tcp.refused'));
    await listenOn(server, { port, host: address, exclusive: true });
    keepListening(server, {
      log: this.#log, count: () => this.counters.inc('dns.tcp.accept_failed'), event: 'dns.tcp.accept_failed',
      what: `DNS TCP on ${address}:${port}`, limiter: this.#limiter, nowMs: () => this.#clock.monotonicMs(),
    });
    return server;
  }

  /** Asks upstream (through the cache) for a query our zones do not answer; set when forwarding is on. */
  #forward: ForwardQuery = () => undefined;

  #onTcp(conn: net.Socket): void {
    const address = conn.remoteAddress ?? '';
    const source = address.startsWith('::ffff:') ? address.slice(7) : address;
    const held = this.#perSource.get(source) ?? 0;
    if (held >= tcpShare(this.#cfg)) {
      // One source must not take every connection (issue 12): the others keep theirs.
      this.counters.inc('dns.tcp.refused_per_source');
      if (this.#limiter.allow('tcp-per-source', this.#clock.monotonicMs())) {
        this.#log.warn({ event: 'dns.tcp_source_limit', source, connections: held }, `TCP connection from ${source} refused: it holds its share (${held})`);
      }
      conn.destroy();
      return;
    }
    this.#perSource.set(source, held + 1);
    this.#connections.add(conn);
    conn.setNoDelay(true);
    // A deadline per message, not an idle timer: socket.setTimeout restarts on every byte, so a client
    // sending one byte every few seconds would hold the connection forever. The deadline moves only
    // when a whole message has arrived.
    let deadline: NodeJS.Timeout | null = null;
    const arm = (): void => {
      if (deadline !== null) clearTimeout(deadline);
      deadline = setTimeout(() => { this.counters.inc('dns.tcp.idle_closed'); conn.destroy(); }, this.#cfg.tcpIdleTimeout);
    };
    arm();
    conn.on('error', () => conn.destroy());
    conn.on('close', () => {
      if (deadline !== null) clearTimeout(deadline);
      this.#connections.delete(conn);
      const n = (this.#perSource.get(source) ?? 1) - 1;
      if (n <= 0) this.#perSource.delete(source); else this.#perSource.set(source, n);
    });
    let buf: Buffer | null = null;
    let pending = 0;
    const write: Reply = (bytes, more) => {
      if (more !== true) pending--;
      if (conn.destroyed) return;
      const frame = Buffer.allocUnsafe(bytes.length + 2);
      frame[0] = bytes.length >> 8;
      frame[1] = bytes.length & 0xff;
      frame.set(bytes, 2);
      conn.write(frame);
      readMore();
    };
    // Reading pauses while many queries wait upstream or many answers wait for the client to read
    // them, and resumes once both are below their bounds (an answer sent, or the kernel took the backlog).
    const backlogged = (): boolean => conn.writableLength > TCP_WRITE_BACKLOG_MAX;
    const readMore = (): void => {
      if (conn.isPaused() && pending < PER_CONNECTION_PENDING_MAX && !backlogged()) conn.resume();
    };
    conn.on('drain', readMore);
    conn.on('data', (chunk: Buffer) => {
      buf = buf === null || buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let p = 0;
      while (buf.length - p >= 2) {
        const n = (buf[p]! << 8) | buf[p + 1]!;
        if (buf.length - p - 2 < n) break;
        const msg = buf.subarray(p + 2, p + 2 + n);
        p += 2 + n;
        pending++;
        // A dropped message (a response, a broken header) gets no write to count it down.
        if (!this.#answerer.tcp(msg, address, write, this.#forward)) pending--;
      }
      if (p > 0) arm();
      buf = p === buf.length ? null : buf.subarray(p);
      // Many forwarded queries in flight on one connection: stop reading until some are answered.
      if (pending >= PER_CONNECTION_PENDING_MAX) conn.pause();
      else if (backlogged()) {
        this.counters.inc('dns.tcp.paused_unread');
        conn.pause();
      }
    });
  }
}

export async function startDns(context: ServiceContext): Promise<RunningService> {
  const server = new DnsServer(context);
  await server.start();
  return server;
}
