import { macFromBytes, type Mac } from '../../lib/mac.js';
import type { Ipv4 } from '../../lib/ipv4.js';
import {
  DhcpOption, FqdnFlag, archValues, clientFqdnValue, ipValue, messageTypeName, textValue, u16Value, userClassValues, type MessageTypeName,
} from './options.js';
import { BootOp, FLAG_BROADCAST, type DhcpMessage } from './wire.js';

// The client's view of a request: the decoded message read into the facts the allocator, netboot
// policy and responder decide on (identity, requested address, classes, arch). Pure.

/**
 * What a request is: a DHCP message type (option 53), or `bootp` for a BOOTREQUEST without option
 * 53 (RFC 951, RFC 1542: a BOOTP client; a DHCP message always carries 53, RFC 2131 §3).
 */
export type RequestType = MessageTypeName | 'bootp';

export interface ClientRequest {
  type: RequestType;
  xid: number;
  mac: Mac;
  /** RFC 2132 §9.14 client identifier as hex, when the client sent one. */
  clientId?: string;
  /** The identity leases are keyed by: "id:<hex>" (option 61), else "mac:<mac>" (RFC 2131 §4.2). */
  clientKey: string;
  ciaddr: Ipv4;
  giaddr: Ipv4;
  broadcast: boolean;
  requestedIp?: Ipv4;
  serverId?: Ipv4;
  /** Option 12, else the name of option 81 (unless its N flag asks for no DNS update). */
  hostname?: string;
  /** RFC 4702 option 81 as the client sent it (flags, dotted name); the reply carries it back. */
  fqdn?: { flags: number; name: string };
  vendorClass?: string;
  userClasses: string[];
  /** RFC 4578 §2.1: first architecture type (0 x86 BIOS, 7/9 x64 UEFI, 11 arm64 UEFI, ...). */
  arch?: number;
  parameterRequest: number[];
  /** RFC 2132 §9.10: the largest DHCP message the client accepts (IP datagram size). */
  maxMessageSize?: number;
  relayAgent?: Uint8Array;
  /** RFC 4039: the DISCOVER carries option 80 (the client takes an ACK at once). */
  rapidCommit?: boolean;
  /**
   * A BOOTP client's vendor area (RFC 951 `vend`): `rfc1048` when it starts with the magic cookie
   * (options: the reply carries RFC 1497 options), `other` for a vendor's own format or zeros.
   */
  bootpVendor?: 'rfc1048' | 'other';
}

/** Stands for an absent option (one shared empty array, not one allocation per lookup). */
const NONE = new Uint8Array(0);

export type RequestProblem = 'not-a-request' | 'no-message-type' | 'bad-hardware-address';

/**
 * Reads a decoded message as a client request; null fields mean the option was absent or malformed.
 * `vendorArea`: how the datagram's vendor area was read (wire.ts decodeBootp: `other`, no options).
 */
export function readRequest(message: DhcpMessage, vendorArea: 'rfc1048' | 'other' = 'rfc1048'): { ok: true; value: ClientRequest } | { ok: false; problem: RequestProblem } {
  if (message.op !== BootOp.Request) return { ok: false, problem: 'not-a-request' };
  // Ethernet only: htype 1 must come with hlen 6 and a non-zero, non-broadcast/multicast chaddr.
  if (message.htype !== 1 || message.hlen !== 6) return { ok: false, problem: 'bad-hardware-address' };
  const hw = message.chaddr;
  if ((hw[0]! | hw[1]! | hw[2]! | hw[3]! | hw[4]! | hw[5]!) === 0 || (hw[0]! & 1) === 1) return { ok: false, problem: 'bad-hardware-address' };
  const typeBytes = message.options.get(DhcpOption.MessageType);
  // No option 53 at all is a BOOTP client (RFC 1542 §2); a 53 that names no type is broken.
  const type = typeBytes === undefined ? 'bootp' : typeBytes.length === 1 ? messageTypeName(typeBytes[0]!) : null;
  if (type === null) return { ok: false, problem: 'no-message-type' };
  const o = message.options;
  const mac = macFromBytes(message.chaddr, 0, 6);
  const request: ClientRequest = {
    type, xid: message.xid, mac, clientKey: `mac:${mac}`,
    ciaddr: message.ciaddr, giaddr: message.giaddr, broadcast: (message.flags & FLAG_BROADCAST) !== 0,
    userClasses: [], parameterRequest: [],
  };
  const clientId = o.get(DhcpOption.ClientIdentifier);
  if (clientId && clientId.length > 0) {
    request.clientId = hexOf(clientId);
    request.clientKey = `id:${request.clientId}`;
  }
  const requested = ipValue(o.get(DhcpOption.RequestedIpAddress) ?? NONE);
  if (requested !== null) request.requestedIp = requested;
  const serverId = ipValue(o.get(DhcpOption.ServerIdentifier) ?? NONE);
  if (serverId !== null) request.serverId = serverId;
  const hostname = o.get(DhcpOption.HostName);
  if (hostname && hostname.length > 0) request.hostname = textValue(hostname);
  // RFC 4702: systemd-networkd and NetworkManager send a host name that is a FQDN as option 81
  // only (a client sending 81 must not send 12, §3.1); without this such hosts had no DNS name.
  const fqdnBytes = o.get(DhcpOption.ClientFqdn);
  const fqdn = fqdnBytes === undefined ? null : clientFqdnValue(fqdnBytes);
  if (fqdn !== null) {
    request.fqdn = fqdn;
    if (request.hostname === undefined && fqdn.name.length > 0 && (fqdn.flags & FqdnFlag.NoUpdate) === 0) request.hostname = fqdn.name;
  }
  const vendor = o.get(DhcpOption.VendorClassIdentifier);
  if (vendor && vendor.length > 0) request.vendorClass = textValue(vendor);
  const user = o.get(DhcpOption.UserClass);
  if (user && user.length > 0) request.userClasses = userClassValues(user);
  const arch = archValues(o.get(DhcpOption.ClientSystemArchitecture) ?? NONE);
  if (arch !== null) request.arch = arch[0]!;
  const prl = o.get(DhcpOption.ParameterRequestList);
  if (prl !== undefined && prl.length > 0) request.parameterRequest = Array.from(prl);
  const maxSize = u16Value(o.get(DhcpOption.MaximumMessageSize) ?? NONE);
  if (maxSize !== null) request.maxMessageSize = maxSize;
  const relay = o.get(DhcpOption.RelayAgentInformation);
  if (relay) request.relayAgent = relay;
  if (type === 'discover' && o.has(DhcpOption.RapidCommit)) request.rapidCommit = true;
  if (type === 'bootp') request.bootpVendor = vendorArea;
  return { ok: true, value: request };
}

export function hexOf(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}
