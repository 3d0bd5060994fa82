import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { Clock } from '../../lib/clock.js';
import type { Random } from '../../lib/random.js';
import type { Counters } from '../../lib/counters.js';
import { LogLimiter, type Logger } from '../../lib/log.js';
import { errorMessage } from '../../lib/errors.js';
import { formatIpv4, parseIpv4 } from '../../lib/ipv4.js';
import type { Mac } from '../../lib/mac.js';
import { decodeDhcp, encodeDhcp } from './wire.js';
import type { ClientRequest } from './request.js';
import {
  ROGUE_ENTRIES_MAX, RogueTable, classifyOffer, classifyRequest, neighbourMac, probeDiscover, rogueServerView, type OurServers, type ProbeId, type RogueServer, type Sighting,
} from './rogue.js';

// The shell of the rogue-server detector (rogue.ts holds the decisions). RogueWatch keeps the table
// of foreign servers and says so in the log; the DHCP handler feeds it clients' REQUESTs. RogueProbe
// runs, on the node serving DHCP, one probe round every `dhcp.rogueProbe.interval`: binds the client
// port (SO_REUSEADDR, so it never takes the port from a client on this host), broadcasts a DISCOVER
// from the probe MAC, collects the OFFERs for it, looks their senders up in the neighbour table.

/**
 * How long a round listens for OFFERs. dnsmasq (most home routers) pings an address before offering
 * it and waits 3 s for an answer (config.h PING_WAIT; the result is cached for 30 s, so at a 60 s
 * interval every probe waits): measured 3.15 s to the first OFFER, 0.08 s after. A 2 s window never
 * saw a dnsmasq. Capped at the interval.
 */
export const PROBE_WINDOW_MS = 4000;
/** Rounds a server may stay silent before it is dropped from the table. */
export const QUIET_ROUNDS = 3;
/** A server still there is warned about again this often. */
export const ROGUE_WARN_EVERY_MS = 3_600_000;
/** How long after poking a sender its neighbour entry is read again. */
const NEIGHBOUR_WAIT_MS = 300;

export function probeWindowMs(intervalMs: number): number {
  return intervalMs > 0 ? Math.min(PROBE_WINDOW_MS, intervalMs) : PROBE_WINDOW_MS;
}

/** Quiet time after which a server is dropped: QUIET_ROUNDS rounds (60 s rounds when the probe is off). */
export function rogueAgeOutMs(intervalMs: number): number {
  const every = intervalMs > 0 ? intervalMs : 60_000;
  return QUIET_ROUNDS * (every + probeWindowMs(intervalMs));
}

export interface RogueWatchOptions {
  servers: OurServers;
  /** The site's probe MAC (rogue.ts probeMacFor): the handler never serves it. */
  probeMac: Mac;
  clock: Pick<Clock, 'monotonicMs' | 'wallMs'>;
  log: Logger;
  /** The DHCP handler's counters: rogue.offers, rogue.requests, rogue.ignored. */
  counters: Counters;
  ageOutMs: number;
}

/** The foreign servers seen lately, and the warning about each. */
export class RogueWatch {
  readonly probeMac: Mac;
  readonly servers: OurServers;
  readonly #table: RogueTable;
  readonly #clock: Pick<Clock, 'monotonicMs' | 'wallMs'>;
  readonly #log: Logger;
  readonly #counters: Counters;
  /** Besides once per server per hour: at most 10 lines a minute in all (forged REQUESTs name made-up servers). */
  readonly #limiter = new LogLimiter(60_000, 10);

  constructor(options: RogueWatchOptions) {
    this.probeMac = options.probeMac;
    this.servers = options.servers;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#counters = options.counters;
    this.#table = new RogueTable({ ageOutMs: options.ageOutMs, warnEveryMs: ROGUE_WARN_EVERY_MS, entriesMax: ROGUE_ENTRIES_MAX });
  }

  /** A client's REQUEST (the handler, on the leader): counted when it took another server's offer. */
  onRequest(client: ClientRequest): void {
    const verdict = classifyRequest(client, this.servers);
    if (verdict.kind === 'foreign') this.record(verdict.sighting);
    else if (verdict.kind === 'ignored') this.#counters.inc('rogue.ignored');
  }

  record(s: Sighting): void {
    this.#counters.inc(s.via === 'probe' ? 'rogue.offers' : 'rogue.requests');
    const now = this.#clock.monotonicMs();
    const { server, warn } = this.#table.observe(s, now, this.#clock.wallMs());
    if (!warn || !this.#limiter.allow('rogue', now)) return;
    const view = rogueServerView(server);
    const what = s.via === 'probe'
      ? `another DHCP server answers on this network: server id ${view['serverId']} (from ${view['source']}${server.mac === undefined ? '' : `, MAC ${server.mac}`}) offered ${view['offered']}${server.bootfile === undefined ? '' : ` with boot file ${server.bootfile}`} to the probe`
      : `client ${s.client} took an offer from another DHCP server, server id ${view['serverId']}${s.offered === undefined ? '' : ` (address ${view['offered']})`}`;
    this.#log.warn({ event: 'dhcp.rogue_server', ...view },
      `${what}: find the device by its MAC or address and turn its DHCP server off, or list ${view['serverId']} in dhcp.rogueProbe.ignore if it belongs there`);
  }

  /** The servers seen within the age-out time (older ones are dropped first). */
  list(): RogueServer[] {
    for (const gone of this.#table.age(this.#clock.monotonicMs())) {
      this.#log.info({ event: 'dhcp.rogue_server.gone', serverId: formatIpv4(gone.serverId), lastSeen: new Date(gone.lastSeenWallMs).toISOString() },
        `DHCP server ${formatIpv4(gone.serverId)} has not been seen for a while; dropped from the list`);
    }
    return this.#table.list();
  }
}

export type ProbeState = 'off' | 'standby' | 'probing' | 'failing';

export interface RogueProbeOptions {
  watch: RogueWatch;
  intervalMs: number;
  /** Where the DISCOVER goes: the DHCP interface's broadcast address and the server port; null: no probe (why: `off`). */
  target: { address: string; port: number } | null;
  /** Why there is no target, for status. */
  off?: string;
  clientPort: number;
  clock: Clock;
  random: Random;
  log: Logger;
  counters: Counters;
  /** Only the node serving DHCP probes. */
  isServing: () => boolean;
  /** The kernel's neighbour table text (/proc/net/arp); tests pass their own. */
  readNeighbours?: () => string;
}

export interface RogueProbe {
  status(): Record<string, unknown>;
  /** One round now (tests; the timer calls it every interval). */
  round(): Promise<void>;
  stop(): Promise<void>;
}

function readArp(): string {
  try {
    return readFileSync('/proc/net/arp', 'utf8');
  } catch {
    return '';
  }
}

function bindSocket(socket: Socket, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '0.0.0.0', () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

function send(socket: Socket, bytes: Uint8Array, port: number, address: string): Promise<void> {
  return new Promise<void>((resolve, reject) => socket.send(bytes, port, address, (error) => (error ? reject(error) : resolve())));
}

/** Starts the timer (nothing runs while the interval is 0 or there is no target). */
export function startRogueProbe(o: RogueProbeOptions): RogueProbe {
  const windowMs = probeWindowMs(o.intervalMs);
  const readNeighbours = o.readNeighbours ?? readArp;
  let problem: string | null = null;
  let running: Promise<void> | null = null;
  let rounds = 0;
  let lastRoundWallMs: number | null = null;
  let stopped = false;
  const sockets = new Set<Socket>();
  /** Ends the wait in progress (stop() does not wait out a window). */
  let wake: (() => void) | null = null;
  const pause = (ms: number): Promise<void> => new Promise<void>((resolve) => {
    const t = setTimeout(() => { wake = null; resolve(); }, ms);
    wake = () => { clearTimeout(t); wake = null; resolve(); };
  });
  const close = (socket: Socket): void => {
    if (!sockets.delete(socket)) return;
    try { socket.close(); } catch { /* closed already */ }
  };
  const enabled = o.intervalMs > 0 && o.target !== null;

  async function resolveMacs(sightings: Sighting[]): Promise<void> {
    const missing = (): Sighting[] => sightings.filter((s) => s.mac === undefined && s.source !== undefined);
    const fill = (): void => {
      const table = readNeighbours();
      for (const s of missing()) {
        const mac = neighbourMac(table, s.source!);
        if (mac !== null) s.mac = mac;
      }
    };
    fill();
    if (missing().length === 0) return;
    // A broadcast OFFER leaves no neighbour entry: one empty datagram to the discard port makes the
    // kernel resolve the sender's address (on this segment), and the entry then names its MAC.
    const poke = createSocket('udp4');
    sockets.add(poke);
    try {
      await Promise.all(missing().map((s) => send(poke, new Uint8Array(0), 9, formatIpv4(s.source!)).catch(() => undefined)));
      await pause(NEIGHBOUR_WAIT_MS);
      fill();
    } finally {
      close(poke);
    }
  }

  async function round(): Promise<void> {
    if (!enabled || stopped) return;
    const target = o.target!;
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    sockets.add(socket);
    const heard: Sighting[] = [];
    try {
      try {
        await bindSocket(socket, o.clientPort);
      } catch (error) {
        const text = `cannot listen on udp 0.0.0.0:${o.clientPort} for OFFERs: ${errorMessage(error)}`;
        if (problem !== text) {
          o.log.warn({ event: 'dhcp.rogue_probe.cannot_listen', port: o.clientPort, err: errorMessage(error) }, `${text}; the rogue-server probe is idle (clients' REQUESTs naming another server are still counted)`);
        }
        problem = text;
        return;
      }
      if (problem !== null) o.log.info({ event: 'dhcp.rogue_probe.listening', port: o.clientPort }, 'the rogue-server probe listens again');
      problem = null;
      socket.setBroadcast(true);
      const probe: ProbeId = { mac: o.watch.probeMac, xid: (o.random.int(0x7fffffff) + 1) >>> 0 };
      socket.on('message', (bytes, rinfo) => {
        const decoded = decodeDhcp(bytes);
        const source = parseIpv4(rinfo.address);
        if (!decoded.ok || source === null) return;
        const verdict = classifyOffer(decoded.value, source, probe, o.watch.servers);
        if (verdict.kind === 'foreign') heard.push(verdict.sighting);
        else if (verdict.kind === 'ours') o.counters.inc('rogue.own-offers');
        else if (verdict.kind === 'ignored') o.counters.inc('rogue.ignored');
      });
      try {
        await send(socket, encodeDhcp(probeDiscover(probe), 576), target.port, target.address);
      } catch (error) {
        o.counters.inc('rogue.probe.send-failed');
        problem = `cannot send the probe to ${target.address}:${target.port}: ${errorMessage(error)}`;
        return;
      }
      o.counters.inc('rogue.probes');
      rounds += 1;
      lastRoundWallMs = o.clock.wallMs();
      await pause(windowMs);
    } finally {
      close(socket);
    }
    if (stopped) return;
    await resolveMacs(heard);
    for (const s of heard) o.watch.record(s);
    o.watch.list();
  }

  const timer = enabled ? setInterval(() => {
    if (running !== null || stopped || !o.isServing()) return;
    running = round().catch((error: unknown) => {
      o.log.error({ event: 'dhcp.rogue_probe.failed', err: errorMessage(error) }, 'rogue-server probe round failed');
    }).finally(() => { running = null; });
  }, o.intervalMs) : null;
  timer?.unref();

  return {
    round,
    status() {
      const state: ProbeState = !enabled ? 'off' : problem !== null ? 'failing' : o.isServing() ? 'probing' : 'standby';
      return {
        state, intervalMs: o.intervalMs, windowMs, probeMac: o.watch.probeMac, rounds,
        lastRound: lastRoundWallMs === null ? null : new Date(lastRoundWallMs).toISOString(),
        problem: !enabled ? (o.off ?? 'dhcp.rogueProbe.interval is 0') : problem,
        target: o.target === null ? null : `${o.target.address}:${o.target.port}`,
      };
    },
    async stop() {
      stopped = true;
      if (timer !== null) clearInterval(timer);
      wake?.();
      for (const socket of [...sockets]) close(socket);
      await running;
    },
  };
}
