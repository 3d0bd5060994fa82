import { formatIpv4, parseIpv4, type Ipv4 } from '../../lib/ipv4.js';
import { macFromBytes, macToBytes, parseMac, type Mac } from '../../lib/mac.js';
import { DhcpOption, MessageType, ipValue, textValue, u8Bytes } from './options.js';
import { BootOp, FLAG_BROADCAST, emptyMessage, fieldText, type DhcpMessage } from './wire.js';
import type { ClientRequest } from './request.js';

// Rogue DHCP servers (HA.md §3): which other servers answer on our segment. Two signals: the
// probe's DISCOVER (from a fixed probe MAC) and the OFFERs other servers send it; and, free, a
// client's broadcast REQUEST in SELECTING state naming another server (RFC 2131 §4.3.2: it took
// that server's offer). Pure: the probe message, the classification of what comes back, the
// bounded table of servers seen and its ageing; times come in. Sockets and timers: rogue-probe.ts.

export type SightingVia = 'probe' | 'request';

/** One sign of another DHCP server. */
export interface Sighting {
  serverId: Ipv4;
  via: SightingVia;
  /** The OFFER's source address (probe); absent for a client's REQUEST. */
  source?: Ipv4;
  /** The MAC of the OFFER's source, when the neighbour table knew it. */
  mac?: Mac;
  /** What the server offered (yiaddr), or the address the client asked of it (option 50). */
  offered?: Ipv4;
  /** The boot file and next server the OFFER named (option 67 or file; siaddr): wrong boot files are what hurts on a netboot LAN. */
  bootfile?: string;
  nextServer?: Ipv4;
  /** The client that took that server's offer (REQUEST). */
  client?: Mac;
}

/** The server ids that are this site's (server id, VIP, members, node address) and those the operator accepts. */
export interface OurServers {
  ours: ReadonlySet<Ipv4>;
  ignored: ReadonlySet<Ipv4>;
}

export type Verdict = { kind: 'not-ours-to-judge' } | { kind: 'ours' } | { kind: 'ignored'; serverId: Ipv4 } | { kind: 'foreign'; sighting: Sighting };

/** The probe's identity: a locally administered MAC fixed per site, and the xid of the round. */
export interface ProbeId {
  mac: Mac;
  xid: number;
}

/**
 * The site's probe MAC: locally administered (02:...), "lh" then three octets of an FNV-1a hash of
 * the site's name (cluster.id, else node.name). Fixed, so a rogue answering every probe keeps one
 * offer for it (no pool drained); per site, so two lanha sites on one segment answer each other's.
 */
export function probeMacFor(site: string): Mac {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(site)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  const bytes = [0x02, 0x6c, 0x68, (hash >>> 16) & 0xff, (hash >>> 8) & 0xff, hash & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

const PROBE_HOSTNAME = new TextEncoder().encode('lanha-rogue-probe');

/**
 * The probe's DISCOVER. The broadcast flag asks every server to broadcast its OFFER (RFC 2131
 * §4.1): a unicast OFFER to the probe MAC, which no interface has, would never be heard. Option 12
 * names the probe in the other server's log; option 55 asks for the boot options it would give.
 */
export function probeDiscover(probe: ProbeId): DhcpMessage {
  const m = emptyMessage();
  m.op = BootOp.Request;
  m.xid = probe.xid;
  m.flags = FLAG_BROADCAST;
  m.chaddr.set(macToBytes(probe.mac), 0);
  m.options.set(DhcpOption.MessageType, u8Bytes(MessageType.Discover));
  m.options.set(DhcpOption.HostName, PROBE_HOSTNAME);
  m.options.set(DhcpOption.ParameterRequestList, Uint8Array.from([DhcpOption.SubnetMask, DhcpOption.Router, DhcpOption.TftpServerName, DhcpOption.BootfileName]));
  return m;
}

function judge(serverId: Ipv4, servers: OurServers, sighting: () => Sighting): Verdict {
  if (servers.ours.has(serverId)) return { kind: 'ours' };
  if (servers.ignored.has(serverId)) return { kind: 'ignored', serverId };
  return { kind: 'foreign', sighting: sighting() };
}

/**
 * A reply heard on the client port during a probe round: an OFFER for this round's probe (xid and
 * chaddr) is some server's answer, ours or not; anything else (other clients' OFFERs and ACKs) is
 * not the probe's. A server id missing (RFC 2131 §4.3.1 says an OFFER MUST carry one) is taken from
 * the source address.
 */
export function classifyOffer(message: DhcpMessage, source: Ipv4, probe: ProbeId, servers: OurServers): Verdict {
  if (message.op !== BootOp.Reply || message.xid !== probe.xid || message.hlen !== 6 || macFromBytes(message.chaddr, 0, 6) !== probe.mac) return { kind: 'not-ours-to-judge' };
  if (message.options.get(DhcpOption.MessageType)?.[0] !== MessageType.Offer) return { kind: 'not-ours-to-judge' };
  const option54 = message.options.get(DhcpOption.ServerIdentifier);
  const serverId = (option54 === undefined ? null : ipValue(option54)) ?? source;
  return judge(serverId, servers, () => {
    const s: Sighting = { serverId, via: 'probe', source, offered: message.yiaddr };
    const file = message.options.get(DhcpOption.BootfileName);
    const bootfile = file !== undefined && file.length > 0 ? textValue(file) : fieldText(message.file);
    if (bootfile !== '') s.bootfile = bootfile;
    if (message.siaddr !== 0) s.nextServer = message.siaddr;
    return s;
  });
}

/**
 * A client's REQUEST: in SELECTING state (server id set, ciaddr 0, RFC 2131 §4.3.2) and sent
 * directly (giaddr 0: a relay forwards to the servers it was told of, which the operator chose), it
 * names the server whose offer the client took.
 */
export function classifyRequest(client: ClientRequest, servers: OurServers): Verdict {
  if (client.type !== 'request' || client.serverId === undefined || client.ciaddr !== 0 || client.giaddr !== 0) return { kind: 'not-ours-to-judge' };
  const serverId = client.serverId;
  return judge(serverId, servers, () => {
    const s: Sighting = { serverId, via: 'request', client: client.mac };
    if (client.requestedIp !== undefined) s.offered = client.requestedIp;
    return s;
  });
}

/** A server seen, as `lanctl status` shows it: the latest facts of its sightings, merged. */
export interface RogueServer extends Omit<Sighting, 'via'> {
  via: SightingVia[];
  offers: number;
  requests: number;
  firstSeenWallMs: number;
  lastSeenWallMs: number;
  /** Monotonic: what ageing and the warning limit run on. */
  lastSeenMs: number;
  lastWarnMs: number;
}

export interface RogueTableSettings {
  /** A server not seen for this long is dropped (a few quiet probe intervals). */
  ageOutMs: number;
  /** At most one warning per server this often (the first sighting always warns). */
  warnEveryMs: number;
  /** Servers kept; past it the one seen longest ago goes (forged REQUESTs cannot grow it). */
  entriesMax: number;
}

export const ROGUE_ENTRIES_MAX = 64;

/** The servers seen lately, bounded; `observe` says whether this sighting should be warned about. */
export class RogueTable {
  readonly #servers = new Map<Ipv4, RogueServer>();
  readonly #settings: RogueTableSettings;

  constructor(settings: RogueTableSettings) {
    this.#settings = settings;
  }

  /** Records a sighting at (monotonic, wall) ms; `warn` is true for a new server and then at most once per warnEveryMs. */
  observe(s: Sighting, nowMs: number, wallMs: number): { server: RogueServer; warn: boolean; isNew: boolean } {
    let server = this.#servers.get(s.serverId);
    const isNew = server === undefined;
    if (server === undefined) {
      if (this.#servers.size >= this.#settings.entriesMax) this.#evictOldest();
      server = { serverId: s.serverId, via: [], offers: 0, requests: 0, firstSeenWallMs: wallMs, lastSeenWallMs: wallMs, lastSeenMs: nowMs, lastWarnMs: nowMs };
      this.#servers.set(s.serverId, server);
    }
    server.lastSeenMs = Math.max(server.lastSeenMs, nowMs);
    server.lastSeenWallMs = wallMs;
    if (!server.via.includes(s.via)) server.via.push(s.via);
    if (s.via === 'probe') server.offers += 1;
    else server.requests += 1;
    for (const key of ['source', 'mac', 'offered', 'bootfile', 'nextServer', 'client'] as const) {
      if (s[key] !== undefined) (server as unknown as Record<string, unknown>)[key] = s[key];
    }
    const warn = isNew || nowMs - server.lastWarnMs >= this.#settings.warnEveryMs;
    if (warn) server.lastWarnMs = nowMs;
    return { server, warn, isNew };
  }

  /** Drops the servers quiet for ageOutMs; returns them. */
  age(nowMs: number): RogueServer[] {
    const gone: RogueServer[] = [];
    for (const [id, server] of this.#servers) {
      if (nowMs - server.lastSeenMs >= this.#settings.ageOutMs) {
        this.#servers.delete(id);
        gone.push(server);
      }
    }
    return gone;
  }

  list(): RogueServer[] {
    return [...this.#servers.values()].sort((a, b) => b.lastSeenMs - a.lastSeenMs);
  }

  get size(): number { return this.#servers.size; }

  #evictOldest(): void {
    let oldest: RogueServer | undefined;
    for (const s of this.#servers.values()) if (oldest === undefined || s.lastSeenMs < oldest.lastSeenMs) oldest = s;
    if (oldest !== undefined) this.#servers.delete(oldest.serverId);
  }
}

/** ATF_COM in /proc/net/arp's flags: the entry is resolved. */
const ARP_COMPLETE = 0x2;

/**
 * The MAC the kernel's neighbour table (`/proc/net/arp`: "IP address  HW type  Flags  HW address
 * Mask  Device") holds for `ip`, when resolved; null otherwise.
 */
export function neighbourMac(arpTable: string, ip: Ipv4): Mac | null {
  for (const line of arpTable.split('\n').slice(1)) {
    const [address, , flags, hw] = line.trim().split(/\s+/);
    if (address === undefined || flags === undefined || hw === undefined || parseIpv4(address) !== ip) continue;
    if ((Number.parseInt(flags, 16) & ARP_COMPLETE) === 0) continue;
    return parseMac(hw);
  }
  return null;
}

/** A server as `lanctl status --json` shows it: addresses as text, times as ISO. */
export function rogueServerView(s: RogueServer): Record<string, unknown> {
  const ip = (v: Ipv4 | undefined): string | null => (v === undefined ? null : formatIpv4(v));
  return {
    serverId: formatIpv4(s.serverId), source: ip(s.source), mac: s.mac ?? null, offered: ip(s.offered),
    bootfile: s.bootfile ?? null, nextServer: ip(s.nextServer), client: s.client ?? null, via: [...s.via],
    offers: s.offers, requests: s.requests,
    firstSeen: new Date(s.firstSeenWallMs).toISOString(), lastSeen: new Date(s.lastSeenWallMs).toISOString(),
  };
}

