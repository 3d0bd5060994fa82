import { cidrContains, formatCidr, formatIpv4, type Cidr, type Ipv4, type Ipv4Range } from '../../lib/ipv4.js';
import type { Lease } from '../../cluster/fsm.js';

// How full each pool is, from the config and the replicated leases: the numbers behind the /leases
// pool bars, the lanha_dhcp_pool_* metrics and doctor's pool findings. Reservations outside the
// dynamic ranges are counted apart (they never use pool space; kea-exporter#46 mixed them in). A
// known-only subnet's unknownPool (the quarantine range its unknown clients get) is a pool of its
// own here, marked `unknownPool`: when it fills, guests get nothing, which an operator wants told as
// any full pool is. Pure.

export interface PoolUsage {
  subnet: string;
  /** "10.0.0.100-10.0.0.199" */
  pool: string;
  size: number;
  /** Bound, unexpired leases inside the range. */
  assigned: number;
  /** Declined addresses still in quarantine inside the range. */
  declined: number;
  /** Reservations whose address is inside this range (they take pool space). */
  reservedInside: number;
  /** assigned / size, 0..1. */
  ratio: number;
  /** The subnet's unknownPool (`clients: known`), not one of its `pools`. */
  unknownPool?: true;
}

export interface SubnetUsage {
  subnet: string;
  pools: PoolUsage[];
  /** Reservations in the subnet but outside every pool. */
  reservedOutside: number;
  reservations: number;
  /** Bound leases per state, all addresses of the subnet. */
  leases: Record<'bound' | 'declined' | 'released' | 'expired', number>;
}

export interface SubnetShape {
  subnet: Cidr;
  pools: readonly Ipv4Range[];
  reservations: ReadonlyArray<{ ip: Ipv4 }>;
  unknownPool?: Ipv4Range | undefined;
}

export function rangeText(r: Ipv4Range): string {
  return `${formatIpv4(r.first)}-${formatIpv4(r.last)}`;
}

/** Usage per subnet and pool at wall time `nowMs`. */
export function poolUsage(subnets: readonly SubnetShape[], leases: Iterable<Lease>, nowMs: number): SubnetUsage[] {
  const all = [...leases];
  return subnets.map((s) => {
    const id = formatCidr(s.subnet);
    const inSubnet = all.filter((l) => cidrContains(s.subnet, l.ip));
    const counts = { bound: 0, declined: 0, released: 0, expired: 0 };
    for (const l of inSubnet) counts[l.state === 'bound' && l.expiresAt <= nowMs ? 'expired' : l.state]++;
    const usage = (r: Ipv4Range): PoolUsage => {
      const inRange = (ip: Ipv4): boolean => ip >= r.first && ip <= r.last;
      const size = r.last - r.first + 1;
      const assigned = inSubnet.filter((l) => inRange(l.ip) && l.state === 'bound' && l.expiresAt > nowMs).length;
      const declined = inSubnet.filter((l) => inRange(l.ip) && l.state === 'declined' && l.expiresAt > nowMs).length;
      return { subnet: id, pool: rangeText(r), size, assigned, declined, reservedInside: s.reservations.filter((x) => inRange(x.ip)).length, ratio: size > 0 ? assigned / size : 0 };
    };
    const pools = s.pools.map(usage);
    if (s.unknownPool !== undefined) pools.push({ ...usage(s.unknownPool), unknownPool: true });
    const reservedOutside = s.reservations.filter((x) => !s.pools.some((r) => x.ip >= r.first && x.ip <= r.last)).length;
    return { subnet: id, pools, reservedOutside, reservations: s.reservations.length, leases: counts };
  });
}

/** The colour band of a pool bar: orange at 80 %, red at 90 % (Stork's thresholds). */
export function usageLevel(ratio: number): 'ok' | 'warn' | 'full' {
  return ratio >= 0.9 ? 'full' : ratio >= 0.8 ? 'warn' : 'ok';
}
