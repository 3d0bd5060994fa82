import { z } from 'zod';
import { ipv4, logLevel, parsedValue } from '../lib/schema.js';
import { ConfigError, parseYamlConfig, readConfigText } from '../lib/config.js';
import { DEFAULT_CONTROL_SOCKET } from '../lib/config-peek.js';
import { formatIpv4 } from '../lib/ipv4.js';
import { serviceAddresses } from '../lib/listen.js';
import { dhcpConfig, siteAddressRoles } from '../services/dhcp/config.js';
import { dnsConfig } from '../services/dns/config.js';
import { tftpConfig } from '../services/tftp/config.js';
import { ntpConfig } from '../services/ntp/config.js';
import { vipConfig } from '../services/vip/config.js';
import { timerProblems } from '../cluster/timers.js';
import { clusterConfig } from '../cluster/config.js';
import { deployConfig } from '../cluster/deploy/config.js';
import { bootConfig, profilesConfig } from '../services/boot/config.js';
import { nodesConfig, nodesConfigIssues } from '../cluster/inventory-config.js';
import { powerConfig } from '../cluster/power-config.js';
import { httpConfig } from '../services/ops/config.js';
import { controlConfig } from '../lib/control-config.js';
import { nameLabel, zoneApexOwners } from '../services/names.js';

export { ConfigError };

// The composition root of the config: one YAML file, validated whole before anything starts. Each
// service owns the schema of its block; this file only puts them together and checks what spans
// blocks. An absent block = service off. The YAML reading and messages are lib/config.ts.

const nodeConfig = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/i, { message: 'is not a node name (letters, digits, "-")' }),
  role: z.enum(['server', 'witness']).default('server'),
  /** The node's own LAN address: services bind it besides loopback and the VIP. */
  address: ipv4.optional(),
  stateDir: z.string().min(1).default('/var/lib/lanha'),
  controlSocket: z.string().min(1).default(DEFAULT_CONTROL_SOCKET),
  logLevel: logLevel.default('info'),
}).strict();

const composed = z.object({
  node: nodeConfig,
  cluster: clusterConfig.optional(),
  vip: vipConfig.optional(),
  dhcp: dhcpConfig.optional(),
  dns: dnsConfig.optional(),
  tftp: tftpConfig.optional(),
  ntp: ntpConfig.optional(),
  deploy: deployConfig.optional(),
  profiles: profilesConfig.optional(),
  boot: bootConfig.optional(),
  /** Compute nodes that seed the replicated inventory (cluster/inventory-config.ts). */
  nodes: nodesConfig.optional(),
  /** How compute nodes are switched on, off and cycled (`lanctl nodes power`; cluster/power.ts). */
  power: powerConfig.optional(),
  http: httpConfig.optional(),
  /** The control API over HTTPS with mutual TLS, for `lanctl --remote` (lib/remote-control.ts). Absent: the unix socket only. */
  control: controlConfig.optional(),
}).strict();

export const lanhaConfig = composed.superRefine((c, ctx) => {
  if (c.cluster && !c.cluster.members.some((m) => m.name === c.node.name)) {
    ctx.addIssue({ code: 'custom', path: ['node', 'name'], message: `is not among cluster.members (${c.cluster.members.map((m) => m.name).join(', ')})` });
  }
  if (c.dhcp?.degraded.enabled === true) {
    // Two LAN members share the pools in halves; a single node or an etcd site has no one to split with.
    const servers = c.cluster?.members.filter((m) => m.role !== 'witness') ?? [];
    if (c.cluster === undefined || c.cluster.backend !== 'raft' || servers.length !== 2) {
      ctx.addIssue({ code: 'custom', path: ['dhcp', 'degraded', 'enabled'], message: `is true, but degraded mode splits the pools between two LAN members of an embedded Raft cluster (cluster.backend raft, two members that are not witnesses); this config has ${c.cluster === undefined ? 'no cluster' : c.cluster.backend !== 'raft' ? `cluster.backend ${c.cluster.backend}` : `${servers.length} such members`}` });
    }
  }
  if (c.cluster && c.cluster.backend === 'raft') {
    for (const p of timerProblems(c.cluster, c.cluster.pauseTolerance, c.vip !== undefined)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
  }
  if (c.node.role === 'witness') {
    for (const block of ['dhcp', 'dns', 'tftp', 'ntp', 'vip', 'boot'] as const) {
      if (c[block] !== undefined) ctx.addIssue({ code: 'custom', path: [block], message: 'is set on a witness (a witness runs Raft only; remove the block)' });
    }
  }
  if (c.boot !== undefined && c.boot.root === undefined && c.tftp === undefined) {
    ctx.addIssue({ code: 'custom', path: ['boot', 'root'], message: 'is not set and there is no tftp: block to take the root from (give boot.root)' });
  }
  if (c.boot?.defaultProfile !== undefined && !Object.hasOwn(c.profiles ?? {}, c.boot.defaultProfile)) {
    ctx.addIssue({ code: 'custom', path: ['boot', 'defaultProfile'], message: `is not a profile in the profiles: block (${Object.keys(c.profiles ?? {}).join(', ') || 'none defined'})` });
  }
  for (const issue of nodesConfigIssues(c.nodes ?? [], c.dhcp?.subnets ?? [])) ctx.addIssue({ code: 'custom', ...issue });
  c.dhcp?.subnets.forEach((s, i) => {
    if (!parsedValue(s.subnet)) return;
    s.pools.forEach((p, j) => {
      if (!parsedValue(p)) return;
      const mask = s.subnet.prefixLength === 0 ? 0 : (0xffffffff << (32 - s.subnet.prefixLength)) >>> 0;
      if (((p.first & mask) >>> 0) !== s.subnet.network || ((p.last & mask) >>> 0) !== s.subnet.network) {
        ctx.addIssue({ code: 'custom', path: ['dhcp', 'subnets', i, 'pools', j], message: 'is outside its subnet' });
      }
    });
  });
  if (c.control !== undefined) {
    if (c.cluster?.tls === undefined) {
      ctx.addIssue({ code: 'custom', path: ['control'], message: 'is set but cluster.tls is not: the remote control listener speaks mutual TLS with the cluster CA (make it with `lanctl init --tls`, or remove the block)' });
    }
    if (c.vip !== undefined && c.control.listen.host === formatIpv4(c.vip.address.address)) {
      ctx.addIssue({ code: 'custom', path: ['control', 'listen'], message: `is the VIP (${c.control.listen.host}): the listener binds at start and the VIP comes and goes; give this node's own address` });
    }
  }
  checkSockets(c, ctx);
  // The allocator never gives the site's own addresses to a client: a reservation of one would
  // leave its client without an address, so say so here.
  const site = siteAddressRoles(c);
  const own = (ip: number | undefined, path: PropertyKey[]): void => {
    const what = ip === undefined ? undefined : site.get(ip);
    if (what !== undefined) ctx.addIssue({ code: 'custom', path, message: `is ${what}, the site's own address: never a client's (give the client another address)` });
  };
  c.dhcp?.subnets.forEach((s, i) => s.reservations.forEach((r, j) => own(r.ip, ['dhcp', 'subnets', i, 'reservations', j, 'ip'])));
  c.nodes?.forEach((n, i) => own(n.ip, ['nodes', i, 'ip']));
  checkReservationNames(c, ctx);
});

/**
 * A reservation's host name goes into the `leases: true` zones (its subnet's `domain` alone when that
 * is one of them): one that is the apex of another zone of ours would never be published (DNS skips
 * it with a warning at every rebuild), so say so here.
 */
function checkReservationNames(c: z.output<typeof composed>, ctx: z.RefinementCtx): void {
  const zones = c.dns?.zones ?? [];
  const key = (name: string): string => name.toLowerCase().replace(/\.$/, '');
  const leaseZones = zones.filter((z) => z.leases).map((z) => key(z.name));
  c.dhcp?.subnets.forEach((s, i) => {
    const domain = s.domain === undefined ? undefined : key(s.domain);
    const into = domain !== undefined && leaseZones.includes(domain) ? [domain] : leaseZones;
    const apexes = zoneApexOwners(() => into, zones.map((z) => z.name));
    s.reservations.forEach((r, j) => {
      if (r.hostname === undefined) return;
      for (const holder of apexes.holdersOf(nameLabel(r.hostname), 0)) {
        ctx.addIssue({ code: 'custom', path: ['dhcp', 'subnets', i, 'reservations', j, 'hostname'], message: `would be ${holder.what}: never published (give the reservation another host name)` });
        return;
      }
    });
  });
}

interface Binding { proto: 'udp' | 'tcp'; address: string; port: number; path: PropertyKey[]; key: string }

const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * Two services on one UDP (or TCP) address and port: `serve` would stop with EADDRINUSE. The
 * addresses are those each service binds (services/*: listen, else loopback + node.address; the VIP
 * while held; DHCP the wildcard unless dhcp.listen narrows it; Raft the member's own address).
 */
function checkSockets(c: z.output<typeof composed>, ctx: z.RefinementCtx): void {
  const bindings: Binding[] = [];
  const vip = c.vip === undefined ? [] : [formatIpv4(c.vip.address.address)];
  if (c.dhcp) bindings.push({ proto: 'udp', address: c.dhcp.listen === undefined ? '0.0.0.0' : formatIpv4(c.dhcp.listen), port: c.dhcp.port, path: ['dhcp', 'port'], key: 'dhcp.port' });
  for (const block of ['dns', 'tftp', 'ntp'] as const) {
    const b = c[block];
    if (b === undefined) continue;
    const addresses = [...new Set([...serviceAddresses(c, b.listen), ...vip])];
    const protos: Array<'udp' | 'tcp'> = block === 'dns' && c.dns?.tcp === true ? ['udp', 'tcp'] : ['udp'];
    for (const proto of protos) for (const address of addresses) bindings.push({ proto, address, port: b.port, path: [block, 'port'], key: `${block}.port` });
  }
  if (c.boot !== undefined && c.boot.http !== false) {
    for (const address of [...new Set([...serviceAddresses(c, c.boot.http.listen), ...vip])]) {
      bindings.push({ proto: 'tcp', address, port: c.boot.http.port, path: ['boot', 'http', 'port'], key: 'boot.http.port' });
    }
  }
  if (c.cluster?.backend === 'raft') c.cluster.members.forEach((m, i) => {
    if (m.name === c.node.name) bindings.push({ proto: 'tcp', address: m.address, port: m.port, path: ['cluster', 'members', i, 'port'], key: `cluster.members[${i}].port` });
  });
  if (c.http !== undefined) bindings.push({ proto: 'tcp', address: c.http.listen.host, port: c.http.listen.port, path: ['http', 'listen'], key: 'http.listen' });
  if (c.control !== undefined) bindings.push({ proto: 'tcp', address: c.control.listen.host, port: c.control.listen.port, path: ['control', 'listen'], key: 'control.listen' });
  const reported = new Set<string>();
  bindings.forEach((b, j) => {
    const a = bindings.find((o, i) => i < j && o.key !== b.key && o.proto === b.proto && o.port === b.port
      && (o.address === b.address || WILDCARDS.has(o.address) || WILDCARDS.has(b.address)));
    if (a === undefined || reported.has(`${a.key}|${b.key}`)) return;
    reported.add(`${a.key}|${b.key}`);
    ctx.addIssue({ code: 'custom', path: b.path, message: `is also ${a.key}: both would bind ${b.proto} ${WILDCARDS.has(a.address) ? a.address : b.address}:${b.port} (give one of them another port or address)` });
  });
}

export type LanhaConfig = z.output<typeof lanhaConfig>;
export type NodeConfig = LanhaConfig['node'];

/** Parses and validates YAML text; throws ConfigError with one line per problem. */
export function parseConfig(text: string, file = '<config>'): LanhaConfig {
  return parseYamlConfig(lanhaConfig, text, file);
}

export function loadConfig(file: string): LanhaConfig {
  return parseConfig(readConfigText(file), file);
}

