import type { LanhaConfig } from './index.js';
import { formatIpv4, parseIpv4 } from '../lib/ipv4.js';

// Settings that are valid but that an operator almost certainly did not mean: printed by `lanctl
// config check`, logged at start and listed in `lanctl status`. Pure.

/** Every warning for a config, most damaging first. */
export function configWarnings(config: LanhaConfig): string[] {
  return [...clusterWarnings(config), ...addressWarnings(config), ...dhcpWarnings(config), ...nodeProfileWarnings(config)];
}

/**
 * A config node whose profile no `profiles:` entry has: accepted as `lanctl nodes add` accepts one
 * (flagged "(unknown!)" there), but its boot files cannot be rendered, so the node gets TFTP
 * ERROR for them; in the same file as the profiles, that is most likely a typo.
 */
export function nodeProfileWarnings(config: LanhaConfig): string[] {
  if (config.node.role === 'witness') return []; // it renders no boot files
  const known = Object.keys(config.profiles ?? {});
  return (config.nodes ?? []).flatMap((n, i) => (n.profile === undefined || known.includes(n.profile) ? []
    : [`nodes[${i}].profile: ${JSON.stringify(n.profile)} (${n.name}) is not in the profiles: block (${known.join(', ') || 'none defined'}): its boot files cannot be rendered until it is`]));
}

export function clusterWarnings(config: LanhaConfig): string[] {
  const members = config.cluster?.members ?? [];
  if (config.cluster?.backend === 'etcd') return []; // etcd's own members vote
  const voters = members.length;
  const witnesses = members.filter((m) => m.role === 'witness').length;
  if (voters === 2 && witnesses === 0) {
    return ['two-member cluster without a witness: if either node fails, no leader can be elected and DHCP allocations stop; add a witness member'];
  }
  return [];
}

/**
 * A server id that is not the VIP on a site with one: clients renew by unicast to their server id,
 * so after a failover renewals reach a follower, which stays silent, until the client broadcasts
 * at T2 (7/8 of the lease).
 */
function dhcpWarnings(config: LanhaConfig): string[] {
  const vip = config.vip?.address.address;
  const serverId = config.dhcp?.serverId;
  if (vip === undefined || serverId === undefined || serverId === vip || config.dhcp?.listen !== undefined) return [];
  return [`dhcp.serverId ${formatIpv4(serverId)} is not the VIP ${formatIpv4(vip)}: clients renew by unicast to the server id, so after a failover their renewals go unanswered until they broadcast at T2; leave dhcp.serverId unset (it defaults to the VIP) or set it to the VIP`];
}

/**
 * This node's own member entry names another address than node.address: the peers dial the member
 * address, the services serve on node.address. Meant with a separate replication network; a typo
 * or a moved node otherwise (the peers dial the old address).
 */
function addressWarnings(config: LanhaConfig): string[] {
  const own = config.cluster?.members.find((m) => m.name === config.node.name);
  const address = config.node.address;
  // A host name there is resolved by the peers: nothing to compare.
  if (own === undefined || address === undefined || parseIpv4(own.address) === null || parseIpv4(own.address) === address) return [];
  return [`node.address ${formatIpv4(address)} is not this node's cluster member address ${own.address} (cluster.members, ${own.name}): the other members dial ${own.address}; if the members talk over a network of their own that is right, else correct one of them`];
}
