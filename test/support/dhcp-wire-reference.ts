// The DHCP codec and reply builder as they were before the allocation cuts of services/dhcp/wire.ts
// and responder.ts (kept verbatim, renamed): the oracle their equivalence tests compare against.
// Test support only.
import { WireReader } from '../../lib/wire-reader.js';
import { WireWriter } from '../../lib/wire-writer.js';
import { failed, type Decoded } from '../../lib/result.js';
import { formatIpv4 } from '../../lib/ipv4.js';
import { DhcpOption, MessageType, textBytes, u32Bytes, u8Bytes } from '../../services/dhcp/options.js';
import { BootOp, HEADER_SIZE, OPTIONS_OFFSET, MAGIC_COOKIE, BOOTP_SIZE_MIN, emptyMessage, fieldBytes, type DhcpDecodeErrorCode, type DhcpMessage } from '../../services/dhcp/wire.js';
import type { ReplyInput } from '../../services/dhcp/responder.js';

const SNAME_SIZE = 64;
const FILE_SIZE = 128;
const CHADDR_SIZE = 16;
const OVERLOAD_FILE = 1;
const OVERLOAD_SNAME = 2;

/** Decodes one DHCP/BOOTP datagram. */
export function referenceDecodeDhcp(bytes: Uint8Array): Decoded<DhcpMessage, DhcpDecodeErrorCode> {
  if (bytes.length < OPTIONS_OFFSET) return failed('short-header', bytes.length);
  const r = new WireReader(bytes);
  const op = r.u8(), htype = r.u8(), hlen = r.u8(), hops = r.u8();
  const xid = r.u32(), secs = r.u16(), flags = r.u16();
  const ciaddr = r.u32(), yiaddr = r.u32(), siaddr = r.u32(), giaddr = r.u32();
  const chaddr = r.bytesView(CHADDR_SIZE).slice();
  const sname = r.bytesView(SNAME_SIZE).slice();
  const file = r.bytesView(FILE_SIZE).slice();
  if (hlen > CHADDR_SIZE) return failed('hlen-too-large', 2, `hlen ${hlen}`);
  if (r.u32() !== MAGIC_COOKIE) return failed('bad-cookie', HEADER_SIZE);

  const fragments: Array<[number, Uint8Array]> = [];
  const main = readOptionArea(bytes, OPTIONS_OFFSET, bytes.length, true, fragments);
  if (main !== null) return main;
  // RFC 2131 §4.1 / RFC 3396 §5: with overload, options continue in `file`, then `sname`.
  const overloadBytes = fragments.find(([code]) => code === DhcpOption.OptionOverload)?.[1];
  const overload = overloadBytes?.length === 1 ? overloadBytes[0]! : 0;
  if (overload & OVERLOAD_FILE) {
    const error = readOptionArea(bytes, 108, 108 + FILE_SIZE, false, fragments);
    if (error !== null) return error;
    file.fill(0);
  }
  if (overload & OVERLOAD_SNAME) {
    const error = readOptionArea(bytes, 44, 44 + SNAME_SIZE, false, fragments);
    if (error !== null) return error;
    sname.fill(0);
  }
  return {
    ok: true,
    value: { op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname, file, options: joinFragments(fragments) },
  };
}

/** Reads code/length/value triples up to END; returns an error or null. */
function readOptionArea(
  bytes: Uint8Array, start: number, end: number, endRequired: boolean, out: Array<[number, Uint8Array]>,
): { ok: false; error: { code: DhcpDecodeErrorCode; offset: number } } | null {
  let i = start;
  while (i < end) {
    const code = bytes[i]!;
    if (code === DhcpOption.Pad) { i++; continue; }
    if (code === DhcpOption.End) return null;
    const length = bytes[i + 1];
    if (length === undefined || i + 1 >= end || i + 2 + length > end) return failed('option-overrun', i);
    out.push([code, bytes.subarray(i + 2, i + 2 + length)]);
    i += 2 + length;
  }
  // RFC 2131 §3.1 (and RFC 2132 §3.2): the options field ends with END. In file/sname the field's
  // own end is tolerated, as real clients rarely fill them.
  return endRequired ? failed('missing-end', end) : null;
}

// RFC 3396 §5: every instance of an option code is one value, concatenated in order of appearance.
function joinFragments(fragments: ReadonlyArray<[number, Uint8Array]>): Map<number, Uint8Array> {
  const parts = new Map<number, Uint8Array[]>();
  for (const [code, data] of fragments) {
    if (code === DhcpOption.OptionOverload) continue;
    const list = parts.get(code);
    if (list) list.push(data);
    else parts.set(code, [data]);
  }
  const out = new Map<number, Uint8Array>();
  for (const [code, list] of parts) {
    if (code === DhcpOption.RelayAgentInformation) continue;
    out.set(code, concat(list));
  }
  const relay = parts.get(DhcpOption.RelayAgentInformation);
  if (relay) out.set(DhcpOption.RelayAgentInformation, concat(relay)); // RFC 3046 §2.1: last
  return out;
}

function concat(list: readonly Uint8Array[]): Uint8Array {
  if (list.length === 1) return list[0]!.slice();
  const total = list.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of list) { out.set(b, at); at += b.length; }
  return out;
}

/** One option as it goes on the wire: code, length, data; longer values split per RFC 3396. */
interface Fragment { code: number; data: Uint8Array }

/**
 * Encodes a message in at most `sizeMax` octets (the client's maximum, option 57, or 548). When the
 * options do not fit and `file`/`sname` are empty, they carry the rest (option overload, RFC 2131
 * §4.1). Throws RangeError when even that is too small: the caller drops optional options.
 */
export function referenceEncodeDhcp(message: DhcpMessage, sizeMax: number): Uint8Array {
  const w = new WireWriter(Math.max(sizeMax, OPTIONS_OFFSET + 1));
  w.u8(message.op).u8(message.htype).u8(message.hlen).u8(message.hops);
  w.u32(message.xid).u16(message.secs).u16(message.flags);
  w.u32(message.ciaddr).u32(message.yiaddr).u32(message.siaddr).u32(message.giaddr);
  const snameAt = 44, fileAt = 108;
  w.bytes(fixed(message.chaddr, CHADDR_SIZE)).bytes(fixed(message.sname, SNAME_SIZE)).bytes(fixed(message.file, FILE_SIZE));
  w.u32(MAGIC_COOKIE);

  const ordered = [...message.options.entries()].filter(([code]) => code !== DhcpOption.RelayAgentInformation && code !== DhcpOption.OptionOverload);
  const relay = message.options.get(DhcpOption.RelayAgentInformation);
  if (relay) ordered.push([DhcpOption.RelayAgentInformation, relay]); // RFC 3046 §2.1: 82 goes last
  const mainRoom = sizeMax - OPTIONS_OFFSET - 1;
  const total = ordered.reduce((n, [, data]) => n + encodedSize(data.length), 0);

  if (total <= mainRoom) {
    for (const [code, data] of ordered) writeOption(w, code, data);
    w.u8(DhcpOption.End);
  } else {
    const fileFree = message.file.every((b) => b === 0), snameFree = message.sname.every((b) => b === 0);
    if (!fileFree && !snameFree) throw new RangeError(`options need ${total} octets; ${mainRoom} fit and file/sname are in use`);
    const areas: Array<{ room: number; frags: Fragment[]; at: number; flag: number }> = [{ room: mainRoom - 3, frags: [], at: -1, flag: 0 }];
    if (fileFree) areas.push({ room: FILE_SIZE - 1, frags: [], at: fileAt, flag: OVERLOAD_FILE });
    if (snameFree) areas.push({ room: SNAME_SIZE - 1, frags: [], at: snameAt, flag: OVERLOAD_SNAME });
    spill(ordered, areas);
    const used = areas.filter((a, i) => i > 0 && a.frags.length > 0).reduce((f, a) => f | a.flag, 0);
    writeOption(w, DhcpOption.OptionOverload, new Uint8Array([used]));
    for (const f of areas[0]!.frags) writeOption(w, f.code, f.data);
    w.u8(DhcpOption.End);
    const out = padded(w, sizeMax);
    for (const area of areas.slice(1)) {
      if (area.frags.length === 0) continue;
      const aw = new WireWriter(area.at === fileAt ? FILE_SIZE : SNAME_SIZE);
      for (const f of area.frags) writeOption(aw, f.code, f.data);
      aw.u8(DhcpOption.End);
      out.set(aw.finish(), area.at);
    }
    return out;
  }
  return padded(w, sizeMax);
}

function padded(w: WireWriter, sizeMax: number): Uint8Array {
  const minimum = Math.min(BOOTP_SIZE_MIN, sizeMax);
  if (w.offset < minimum) w.zeros(minimum - w.offset);
  return w.finish();
}

function encodedSize(length: number): number {
  return length === 0 ? 2 : length + 2 * Math.ceil(length / 255);
}

function writeOption(w: WireWriter, code: number, data: Uint8Array): void {
  if (data.length === 0) { w.u8(code).u8(0); return; }
  // RFC 3396 §6: a value longer than 255 octets is split into consecutive instances of the code.
  for (let at = 0; at < data.length; at += 255) {
    const part = data.subarray(at, Math.min(at + 255, data.length));
    w.u8(code).u8(part.length).bytes(part);
  }
}

/** Fills the areas in order with fragments; an option may continue from one area into the next. */
function spill(options: ReadonlyArray<[number, Uint8Array]>, areas: Array<{ room: number; frags: Fragment[] }>): void {
  let index = 0;
  for (const [code, data] of options) {
    let at = 0;
    do {
      let area = areas[index];
      while (area && area.room < (data.length === 0 ? 2 : 3)) area = areas[++index];
      if (!area) throw new RangeError('options do not fit even with file and sname overloaded');
      const take = Math.min(255, data.length - at, area.room - 2);
      area.frags.push({ code, data: data.subarray(at, at + take) });
      area.room -= take + 2;
      at += take;
    } while (at < data.length);
  }
}

function fixed(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.length === size) return bytes;
  const out = new Uint8Array(size);
  out.set(bytes.subarray(0, size));
  return out;
}

const TYPE_BYTE = { offer: MessageType.Offer, ack: MessageType.Ack, nak: MessageType.Nak, inform: MessageType.Ack } as const;

/** The reply message (not yet encoded). */
export function referenceBuildReply(input: ReplyInput & { kind: 'offer' | 'ack' | 'nak' | 'inform' }): { message: DhcpMessage; requested: Set<number> } {
  const { request, client, kind } = input;
  const m = emptyMessage();
  m.op = BootOp.Reply;
  m.htype = request.htype;
  m.hlen = request.hlen;
  m.xid = request.xid;
  m.flags = request.flags;
  m.giaddr = request.giaddr;
  m.chaddr = request.chaddr.slice();
  // RFC 2131 table 3: ciaddr is echoed in ACKs (renewing, inform), zero in OFFER and NAK.
  if (kind === 'ack' || kind === 'inform') m.ciaddr = request.ciaddr;
  if (kind === 'offer' || kind === 'ack') m.yiaddr = input.ip ?? 0;

  const o = m.options;
  o.set(DhcpOption.MessageType, u8Bytes(TYPE_BYTE[kind]));
  o.set(DhcpOption.ServerIdentifier, u32Bytes(input.serverId));
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
    const served = new Map<number, Uint8Array>(subnet?.options ?? []);
    if (input.hostname !== undefined) served.set(DhcpOption.HostName, textBytes(input.hostname));
    const boot = input.boot;
    if (boot) {
      m.siaddr = boot.nextServer;
      m.file = fieldBytes(boot.bootfile, 128);
      served.set(DhcpOption.TftpServerName, textBytes(formatIpv4(boot.nextServer)));
      served.set(DhcpOption.BootfileName, textBytes(boot.bootfile));
      if (boot.pxeClient) served.set(DhcpOption.VendorClassIdentifier, textBytes('PXEClient'));
      if (boot.vendorSpecific) served.set(DhcpOption.VendorSpecific, boot.vendorSpecific);
    }
    // RFC 2131 §4.3.1: requested options first, in the client's order; then the rest we serve.
    const mask = served.get(DhcpOption.SubnetMask);
    if (mask) o.set(DhcpOption.SubnetMask, mask);
    for (const code of client.parameterRequest) {
      const value = served.get(code);
      if (value && !o.has(code)) o.set(code, value);
    }
    for (const [code, value] of served) if (!o.has(code)) o.set(code, value);
  }
  const relay = request.options.get(DhcpOption.RelayAgentInformation);
  if (relay) o.set(DhcpOption.RelayAgentInformation, relay); // RFC 3046 §2.2: echo unchanged, last
  return { message: m, requested: new Set(client.parameterRequest) };
}

