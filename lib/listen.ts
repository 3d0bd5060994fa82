import { formatIpv4, type Ipv4 } from './ipv4.js';

// Which addresses a UDP/TCP service binds. Node's dgram cannot read or set a packet's local address,
// so a wildcard socket on a node that also holds the VIP would answer from the wrong source: each
// service binds one socket per address instead. The default is the node address plus loopback; the
// VIP is added and removed as leadership moves.
export function serviceAddresses(config: { readonly node: { readonly address?: Ipv4 | undefined } }, listen: readonly string[] | undefined): string[] {
  if (listen !== undefined && listen.length > 0) return [...new Set(listen)];
  const out = ['127.0.0.1'];
  if (config.node.address !== undefined) out.push(formatIpv4(config.node.address));
  return [...new Set(out)];
}
