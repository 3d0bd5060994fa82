import { formatIpv4, parseIpv4, prefixMask, broadcastOf, type Ipv4 } from '../../lib/ipv4.js';
import {
  DhcpOption, FqdnFlag, MessageType, clientFqdnBytes, configOptionBytes, domainsBytes, ipsBytes, routesBytes, textBytes, textValue, u32Bytes, u8Bytes,
} from './options.js';
import { BootOp, DEFAULT_MESSAGE_SIZE_MAX, HEADER_SIZE, encodeDhcp, fieldBytes, type DhcpMessage } from './wire.js';
import type { ClientRequest } from './request.js';
import type { BootPlan } from './netboot.js';
import type { DhcpSubnetConfig } from './config.js';

// Builds replies (RFC 2131 §4.3, table 3): which header fields and options an OFFER, ACK, NAK or
// INFORM-ACK carries, in the order the client asked for (option 55), within the size it accepts
// (option 57), and where the reply goes. Pure: bytes out, no sockets.

/** The options a subnet always serves, encoded once at start-up. */
export interface SubnetReplyOptions {
  subnetId: string;
  options: Map<number, Uint8Array>;
  leaseMs: number;
  renewMs: number;
  rebindMs: number;
}

/** Pre-encodes a subnet's options: 1, 3, 6, 15, 28, 42, 119, 121 and the extra ones by code. */
export function subnetReplyOptions(subnet: DhcpSubnetConfig, subnetId: string): SubnetReplyOptions {
  const o = new Map<number, Uint8Array>();
  o.set(DhcpOption.SubnetMask, u32Bytes(prefixMask(subnet.subnet.prefixLength)));
  if (subnet.router?.length) o.set(DhcpOption.Router, ipsBytes(subnet.router));
  if (subnet.dns?.length) o.set(DhcpOption.DomainNameServer, ipsBytes(subnet.dns));
  if (subnet.domain !== undefined) o.set(DhcpOption.DomainName, textBytes(subnet.domain));
  o.set(DhcpOption.BroadcastAddress, u32Bytes(subnet.broadcast ?? broadcastOf(subnet.subnet)));
  if (subnet.ntp?.length) o.set(DhcpOption.NtpServers, ipsBytes(subnet.ntp));
  if (subnet.search?.length) o.set(DhcpOption.DomainSearch, domainsBytes(subnet.search));
  if (subnet.routes?.length) {
    o.set(DhcpOption.ClasslessStaticRoute, routesBytes(subnet.routes.map((r) => ({ destination: r.destination.network, prefixLength: r.destination.prefixLength, gateway: r.gateway }))));
  }
  for (const [codeText, value] of Object.entries(subnet.options ?? {})) {
    const bytes = configOptionBytes(Number(codeText), value, parseIpv4);
    if (typeof bytes !== 'string') o.set(Number(codeText), bytes);
  }
  const leaseMs = subnet.leaseTime;
  return {
    subnetId,
    options: o,
    leaseMs,
    // RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease.
    renewMs: subnet.renewTime ?? Math.floor(leaseMs / 2),
    rebindMs: subnet.rebindTime ?? Math.floor(leaseMs * 0.875),
  };
}

/**
 * Options that point a client at a boot file, as codes: 43 (PXE menus, the Raspberry Pi ROM), 66 and
 * 67 (TFTP server, bootfile), 150 (TFTP server address), 175 (iPXE), 208-211 (PXELINUX).
 */
const NETBOOT_OPTIONS: readonly number[] = [DhcpOption.VendorSpecific, DhcpOption.TftpServerName, DhcpOption.BootfileName, 150, 175, 208, 209, 210, 211];

/**
 * The options of a subnet's unknownPool: the subnet's, with the pool's lease time (T1 and T2 at 0.5
 * and 0.875 of it) and without any boot option set in `options`: an unknown machine must not boot
 * a node's image.
 */
export function unknownPoolReplyOptions(subnet: DhcpSubnetConfig, subnetId: string, leaseMs: number): SubnetReplyOptions {
  const out = subnetReplyOptions({ ...subnet, leaseTime: leaseMs, renewTime: undefined, rebindTime: undefined }, subnetId);
  for (const code of NETBOOT_OPTIONS) out.options.delete(code);
  return out;
}

/**
 * A subnet's reply times for a binding with `remainingMs` left (a cached lease, allocator.ts
 * reusableLease): the lease time (51) is what is left, and T1 (58) and T2 (59) keep their share of
 * the lease time (Kea does the same for a reused lease), so T1 < T2 < lease time still holds.
 */
export function remainingLease(subnet: SubnetReplyOptions, remainingMs: number): SubnetReplyOptions {
  const leaseMs = Math.min(subnet.leaseMs, remainingMs);
  const share = leaseMs / subnet.leaseMs;
  return { ...subnet, leaseMs, renewMs: Math.floor(subnet.renewMs * share), rebindMs: Math.floor(subnet.rebindMs * share) };
}

export interface ReplyInput {
  /** `bootp`: a BOOTREPLY (RFC 951) to a BOOTP client: no option 53, 54 or lease times unasked. */
  kind: 'offer' | 'ack' | 'nak' | 'inform' | 'bootp';
  request: DhcpMessage;
  client: ClientRequest;
  serverId: Ipv4;
  ip?: Ipv4;
  subnet?: SubnetReplyOptions;
  boot?: BootPlan | null;
  /** Host name the server assigns (a reservation's): sent as option 12. */
  hostname?: string;
  /**
   * The label DNS publishes for this client (undefined: none): told back in option 81 (with the
   * subnet's domain) when the client sent option 81.
   */
  published?: string | undefined;
  message?: string;
  /** RFC 4039 §4: an ACK to a DISCOVER carries option 80. */
  rapidCommit?: boolean;
}

/** Option 53 of each reply kind, shared by every reply (the encoder only reads it). */
const TYPE_OPTION = {
  offer: u8Bytes(MessageType.Offer), ack: u8Bytes(MessageType.Ack), nak: u8Bytes(MessageType.Nak), inform: u8Bytes(MessageType.Ack),
} as const;
const RAPID_COMMIT = new Uint8Array(0);
/** The zeroed sname and file of every reply without a boot file: read by the encoder, never written. */
const ZERO_SNAME = new Uint8Array(64);
const ZERO_FILE = new Uint8Array(128);

/**
 * The reply message (not yet encoded) and the client's requested option codes (option 55, for
 * encodeReply). The message shares bytes with the request and with the subnet's pre-encoded
 * options: encode it, never write into its arrays.
 */
export function buildReply(input: ReplyInput): { message: DhcpMessage; requested: readonly number[] } {
  const { request, client, kind } = input;
  const o = new Map<number, Uint8Array>();
  const m: DhcpMessage = {
    op: BootOp.Reply, htype: request.htype, hlen: request.hlen, hops: 0, xid: request.xid, secs: 0, flags: request.flags,
    // RFC 2131 table 3: ciaddr is echoed in ACKs (renewing, inform), zero in OFFER and NAK.
    ciaddr: kind === 'ack' || kind === 'inform' || kind === 'bootp' ? request.ciaddr : 0,
    yiaddr: kind === 'offer' || kind === 'ack' || kind === 'bootp' ? input.ip ?? 0 : 0,
    siaddr: 0, giaddr: request.giaddr, chaddr: request.chaddr, sname: ZERO_SNAME, file: ZERO_FILE, options: o,
  };
  if (kind === 'bootp') return { message: bootpReply(m, input), requested: client.parameterRequest };
  o.set(DhcpOption.MessageType, TYPE_OPTION[kind]);
  o.set(DhcpOption.ServerIdentifier, u32Bytes(input.serverId));
  if (input.rapidCommit === true) o.set(DhcpOption.RapidCommit, RAPID_COMMIT);
  const clientId = request.options.get(DhcpOption.ClientIdentifier);
  if (clientId) o.set(DhcpOption.ClientIdentifier, clientId); // RFC 6842: echo option 61
  if (kind === 'nak') {
    if (input.message !== undefined) o.set(DhcpOption.Message, textBytes(input.message));
  } else {
    const subnet = input.subnet;
    if (subnet && kind !== 'inform') {
      // RFC 2131 §4.3.5: no lease time in a reply to INFORM.
      o.set(DhcpOption.IpAddressLeaseTime, u32Bytes(Math.floor(subnet.leaseMs / 1000)));
      o.set(DhcpOption.RenewalTime, u32Bytes(Math.floor(subnet.renewMs / 1000)));
      o.set(DhcpOption.RebindingTime, u32Bytes(Math.floor(subnet.rebindMs / 1000)));
    }
    // What we serve: the subnet's options, with the host name and boot options over them (most
    // replies have neither, and then the subnet's table is read as it is, not copied).
    const base = subnet?.options;
    let over: Map<number, Uint8Array> | null = null;
    if (input.hostname !== undefined) (over ??= new Map()).set(DhcpOption.HostName, textBytes(input.hostname));
    if (client.fqdn !== undefined && kind !== 'inform') (over ??= new Map()).set(DhcpOption.ClientFqdn, fqdnReply(client.fqdn.flags, input.published, base?.get(DhcpOption.DomainName)));
    const boot = input.boot;
    if (boot) {
      m.siaddr = boot.nextServer;
      m.file = fieldBytes(boot.bootfile, 128);
      over ??= new Map();
      over.set(DhcpOption.TftpServerName, textBytes(formatIpv4(boot.nextServer)));
      over.set(DhcpOption.BootfileName, textBytes(boot.bootfile));
      if (boot.pxeClient) over.set(DhcpOption.VendorClassIdentifier, textBytes('PXEClient'));
      else if (boot.httpClient === true) over.set(DhcpOption.VendorClassIdentifier, textBytes('HTTPClient'));
      if (boot.vendorSpecific) over.set(DhcpOption.VendorSpecific, boot.vendorSpecific);
    }
    const served = (code: number): Uint8Array | undefined => over?.get(code) ?? base?.get(code);
    // RFC 2131 §4.3.1: requested options first, in the client's order; then the rest we serve.
    const mask = served(DhcpOption.SubnetMask);
    if (mask) o.set(DhcpOption.SubnetMask, mask);
    for (const code of client.parameterRequest) {
      const value = served(code);
      if (value && !o.has(code)) o.set(code, value);
    }
    if (base) for (const [code, value] of base) if (!o.has(code)) o.set(code, over?.get(code) ?? value);
    if (over) for (const [code, value] of over) if (!o.has(code)) o.set(code, value);
  }
  const relay = request.options.get(DhcpOption.RelayAgentInformation);
  if (relay) o.set(DhcpOption.RelayAgentInformation, relay); // RFC 3046 §2.2: echo unchanged, last
  return { message: m, requested: client.parameterRequest };
}

/**
 * RFC 1497 vendor extensions of a BOOTREPLY: subnet mask, routers, DNS servers, host name, domain
 * name. A client asking for more (option 55 in its RFC 1048 area) gets those it asks for too.
 */
const BOOTP_OPTIONS: readonly number[] = [DhcpOption.SubnetMask, DhcpOption.Router, DhcpOption.DomainNameServer, DhcpOption.HostName, DhcpOption.DomainName];

/**
 * The BOOTREPLY (RFC 951 §3, RFC 1542 §3.3): yiaddr, the boot parameters in the header (siaddr,
 * file, and the next server in sname), and the RFC 1497 options: no message type or server id (a
 * BOOTP client would not know them), a lease time only when the client asks for one (it is
 * infinite: a BOOTP address has no lease). A vendor area not in RFC 1048 form gets none of them
 * (withoutVendorArea): the client reads it in its own format.
 */
function bootpReply(m: DhcpMessage, input: ReplyInput): DhcpMessage {
  const { client } = input;
  const boot = input.boot;
  if (boot) {
    m.siaddr = boot.nextServer;
    m.file = fieldBytes(boot.bootfile, 128);
    m.sname = fieldBytes(formatIpv4(boot.nextServer), 64);
  }
  if (client.bootpVendor === 'other') return m;
  const base = input.subnet?.options;
  const served = (code: number): Uint8Array | undefined => {
    if (code === DhcpOption.HostName) return input.hostname === undefined ? undefined : textBytes(input.hostname);
    if (code === DhcpOption.IpAddressLeaseTime) return INFINITE_LEASE;
    return base?.get(code);
  };
  for (const code of [...BOOTP_OPTIONS, ...client.parameterRequest]) {
    const value = served(code);
    if (value !== undefined && !m.options.has(code)) m.options.set(code, value);
  }
  return m;
}

/** RFC 2131 §3.3: 0xffffffff seconds is an infinite lease. */
const INFINITE_LEASE = u32Bytes(0xffffffff);

/** A BOOTREPLY to a client whose vendor area is not RFC 1048's: the vendor area all zeros (no cookie). */
export function withoutVendorArea(bytes: Uint8Array): Uint8Array {
  bytes.fill(0, HEADER_SIZE);
  return bytes;
}

/**
 * RFC 4702 §4 option 81 of a reply: S when we publish a name for the client (O too when it asked to
 * do its A update itself: we publish anyway), N when we publish none (the client asked for none, or
 * its name belongs to someone else); E as the client sent it; the name we publish under.
 */
function fqdnReply(clientFlags: number, label: string | undefined, domain: Uint8Array | undefined): Uint8Array {
  const encoded = clientFlags & FqdnFlag.Encoded;
  if (label === undefined) return clientFqdnBytes(encoded | FqdnFlag.NoUpdate, '');
  const override = (clientFlags & FqdnFlag.ServerUpdate) === 0 ? FqdnFlag.Override : 0;
  const suffix = domain === undefined ? '' : textValue(domain).replace(/\.$/, '');
  return clientFqdnBytes(encoded | FqdnFlag.ServerUpdate | override, suffix === '' ? label : `${label}.${suffix}`);
}

/** Options never dropped to fit the client's size limit. */
const ESSENTIAL: ReadonlySet<number> = new Set([
  DhcpOption.MessageType, DhcpOption.ServerIdentifier, DhcpOption.IpAddressLeaseTime, DhcpOption.RenewalTime,
  DhcpOption.RebindingTime, DhcpOption.SubnetMask, DhcpOption.ClientIdentifier, DhcpOption.RelayAgentInformation,
]);

/** Largest reply the client accepts: option 57 is an IP datagram size (RFC 2132 §9.10), minus IP+UDP headers. */
export function replySizeMax(client: ClientRequest): number {
  if (client.maxMessageSize === undefined || client.maxMessageSize < 576) return DEFAULT_MESSAGE_SIZE_MAX;
  return Math.min(client.maxMessageSize, 1500) - 28;
}

/**
 * Encodes within the client's limit. When everything does not fit, the essential options stay and
 * the others are taken back in by priority while they fit: the client's requested ones in the order
 * of its option 55 (RFC 2131 §4.3.1: the client lists them by preference), then the unrequested
 * ones. Dropping every requested option at once left a client without its router and DNS servers
 * because its search list did not fit.
 */
export function encodeReply(message: DhcpMessage, requested: readonly number[], sizeMax: number): Uint8Array {
  const whole = tryEncode(message, sizeMax);
  if (whole !== null) return whole;
  const rank = new Map<number, number>();
  requested.forEach((code, i) => { if (!rank.has(code)) rank.set(code, i); });
  const optional = [...message.options.keys()].filter((code) => !ESSENTIAL.has(code))
    .sort((a, b) => (rank.get(a) ?? requested.length) - (rank.get(b) ?? requested.length));
  const kept = new Set([...message.options.keys()].filter((code) => ESSENTIAL.has(code)));
  const withKept = (): DhcpMessage => ({ ...message, options: new Map([...message.options].filter(([code]) => kept.has(code))) });
  let best = tryEncode(withKept(), sizeMax);
  if (best === null) throw new ReplyTooLargeError(sizeMax);
  for (const code of optional) {
    kept.add(code);
    const bytes = tryEncode(withKept(), sizeMax);
    if (bytes === null) kept.delete(code);
    else best = bytes;
  }
  return best;
}

/**
 * Not even the essential options fit the client's limit: the options echoed as they came (a long
 * client id, a long relay option 82) leave no room. Input the network sent, not a bug.
 */
export class ReplyTooLargeError extends Error {
  constructor(sizeMax: number) {
    super(`the reply's essential options and the echoed client id and relay option do not fit ${sizeMax} octets`);
    this.name = 'ReplyTooLargeError';
  }
}

/** encodeDhcp, or null when the message does not fit in `sizeMax`. */
function tryEncode(message: DhcpMessage, sizeMax: number): Uint8Array | null {
  try {
    return encodeDhcp(message, sizeMax);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return null;
  }
}

export interface Destination {
  address: string;
  port: number;
  why: 'relay' | 'ciaddr' | 'broadcast';
}

/**
 * Where a reply goes (RFC 2131 §4.1): to the relay (giaddr, server port) when relayed; to ciaddr
 * when the client has an address (renewing, inform) and this is no NAK; otherwise broadcast.
 * The RFC would unicast an OFFER/ACK to yiaddr at the client's MAC when the broadcast bit is clear,
 * but that needs an ARP entry the kernel does not have yet, and Node's dgram cannot add one (no
 * raw sockets, no SIOCSARP): a unicast to yiaddr would sit in ARP resolution and be lost. Every
 * client accepts a broadcast (the RFC's own fallback). `broadcast` is 255.255.255.255 when the
 * server can send it out of the local subnet's link (interface.ts broadcastSource), else the
 * subnet's broadcast address: UEFI PXE (EDK2: OVMF and most server firmware) drops an OFFER sent
 * to the latter (with no address yet its IP layer takes only 255.255.255.255, as RFC 2131 §4.1
 * asks); iPXE, U-Boot and Linux clients take either.
 */
export function replyDestination(request: DhcpMessage, kind: ReplyInput['kind'], serverPort: number, clientPort: number, broadcast = '255.255.255.255'): Destination {
  if (request.giaddr !== 0) return { address: formatIpv4(request.giaddr), port: serverPort, why: 'relay' };
  if (request.ciaddr !== 0 && kind !== 'nak') return { address: formatIpv4(request.ciaddr), port: clientPort, why: 'ciaddr' };
  return { address: broadcast, port: clientPort, why: 'broadcast' };
}
