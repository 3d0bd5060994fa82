import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { formatIpv4, ipv4FromBytes, parseIpv4, type Ipv4 } from '../../lib/ipv4.js';
import { macToBytes } from '../../lib/mac.js';
import { BootOp, decodeDhcp, emptyMessage, encodeDhcp, type DhcpMessage } from './wire.js';
import { DhcpOption, MessageType, ipsBytes, u8Bytes } from './options.js';

// A built-in DHCP client for loopback demos and tests, where no broadcast can reach a real client:
// it speaks as a relay agent (giaddr = its own loopback address), so the server's unicast replies
// come back to it on the server port (RFC 2131 §4.1). Runs DISCOVER -> OFFER -> REQUEST -> ACK and
// reports what it got and how long each step took. Needs a server bound to one address
// (`dhcp.listen`), since it binds the same port on another loopback address.

export interface ProbeOptions {
  server: string;
  port: number;
  mac: string;
  /** The relay address the probe binds and puts in giaddr (default 127.0.0.2). */
  relay?: string;
  /** Option 12 as raw bytes (tests send hostile ones), or text. */
  hostname?: string | Uint8Array;
  clientId?: Uint8Array;
  timeoutMs?: number;
}

export interface ProbeResult {
  offered: string;
  acked: string;
  serverId: string | null;
  leaseSeconds: number | null;
  discoverToOfferMs: number;
  requestToAckMs: number;
}

function request(o: ProbeOptions, type: number, xid: number, extra: Map<number, Uint8Array>): Uint8Array {
  const m: DhcpMessage = emptyMessage();
  m.op = BootOp.Request;
  m.xid = xid;
  m.hops = 1;
  m.giaddr = parseIpv4(o.relay ?? '127.0.0.2')!;
  m.chaddr.set(macToBytes(o.mac), 0);
  m.options.set(DhcpOption.MessageType, u8Bytes(type));
  if (o.hostname !== undefined) m.options.set(DhcpOption.HostName, typeof o.hostname === 'string' ? new TextEncoder().encode(o.hostname) : o.hostname);
  if (o.clientId !== undefined) m.options.set(DhcpOption.ClientIdentifier, o.clientId);
  for (const [k, v] of extra) m.options.set(k, v);
  return encodeDhcp(m, 576);
}

export async function dhcpProbe(o: ProbeOptions): Promise<ProbeResult> {
  const relay = o.relay ?? '127.0.0.2';
  const socket = createSocket({ type: 'udp4', reuseAddr: false });
  const xid = randomInt(1, 0x7fffffff);
  const timeoutMs = o.timeoutMs ?? 3000;
  const replies: DhcpMessage[] = [];
  let wake: (() => void) | null = null;
  socket.on('message', (bytes) => {
    const d = decodeDhcp(bytes);
    if (d.ok && d.value.xid === xid && d.value.op === BootOp.Reply) { replies.push(d.value); wake?.(); }
  });
  const wait = async (type: number): Promise<DhcpMessage> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const i = replies.findIndex((r) => r.options.get(DhcpOption.MessageType)?.[0] === type || r.options.get(DhcpOption.MessageType)?.[0] === MessageType.Nak);
      if (i >= 0) {
        const reply = replies.splice(i, 1)[0]!;
        if (reply.options.get(DhcpOption.MessageType)?.[0] === MessageType.Nak) throw new Error(`the server answered NAK: ${new TextDecoder().decode(reply.options.get(DhcpOption.Message) ?? new Uint8Array())}`);
        return reply;
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${type === MessageType.Offer ? 'OFFER' : 'ACK'} from ${o.server}:${o.port} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, Math.min(left, 50)); });
    }
  };
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(o.port, relay, () => { socket.off('error', reject); resolve(); });
    }).catch((error: unknown) => { throw new Error(`the probe cannot bind ${relay}:${o.port}: ${(error as Error).message}`); });
    const send = (bytes: Uint8Array): Promise<void> => new Promise((resolve, reject) => socket.send(bytes, o.port, o.server, (e) => (e ? reject(e) : resolve())));
    const t0 = performance.now();
    await send(request(o, MessageType.Discover, xid, new Map()));
    const offer = await wait(MessageType.Offer);
    const t1 = performance.now();
    const serverId = offer.options.get(DhcpOption.ServerIdentifier);
    await send(request(o, MessageType.Request, xid, new Map([[DhcpOption.RequestedIpAddress, ipsBytes([offer.yiaddr])], ...(serverId ? [[DhcpOption.ServerIdentifier, serverId] as [number, Uint8Array]] : [])])));
    const ack = await wait(MessageType.Ack);
    const t2 = performance.now();
    const lease = ack.options.get(DhcpOption.IpAddressLeaseTime);
    return {
      offered: formatIpv4(offer.yiaddr), acked: formatIpv4(ack.yiaddr),
      serverId: serverId?.length === 4 ? formatIpv4(ipv4FromBytes(serverId) as Ipv4) : null,
      leaseSeconds: lease?.length === 4 ? ipv4FromBytes(lease) : null,
      discoverToOfferMs: Math.round((t1 - t0) * 10) / 10, requestToAckMs: Math.round((t2 - t1) * 10) / 10,
    };
  } finally {
    socket.close();
  }
}
