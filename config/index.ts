import { z } from 'zod';
import { ipv4, logLevel } from '../lib/schema.js';
import { ConfigError, parseYamlConfig, readConfigText } from '../lib/config.js';
import { dhcpConfig } from '../services/dhcp/config.js';
import { dnsConfig } from '../services/dns/config.js';
import { tftpConfig } from '../services/tftp/config.js';
import { ntpConfig } from '../services/ntp/config.js';
import { vipConfig } from '../services/vip/config.js';
import { clusterConfig } from '../cluster/config.js';
import { deployConfig } from '../cluster/deploy/config.js';
import { bootConfig, profilesConfig } from '../services/boot/config.js';
import { nodesConfig, nodesConfigIssues } from '../cluster/inventory-config.js';

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
  controlSocket: z.string().min(1).default('/run/lanha/lanha.sock'),
  logLevel: logLevel.default('info'),
}).strict();

export const lanhaConfig = z.object({
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
}).strict().superRefine((c, ctx) => {
  if (c.cluster && !c.cluster.members.some((m) => m.name === c.node.name)) {
    ctx.addIssue({ code: 'custom', path: ['node', 'name'], message: `is not among cluster.members (${c.cluster.members.map((m) => m.name).join(', ')})` });
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
    s.pools.forEach((p, j) => {
      const mask = s.subnet.prefixLength === 0 ? 0 : (0xffffffff << (32 - s.subnet.prefixLength)) >>> 0;
      if (((p.first & mask) >>> 0) !== s.subnet.network || ((p.last & mask) >>> 0) !== s.subnet.network) {
        ctx.addIssue({ code: 'custom', path: ['dhcp', 'subnets', i, 'pools', j], message: 'is outside its subnet' });
      }
    });
  });
});

export type LanhaConfig = z.output<typeof lanhaConfig>;
export type NodeConfig = LanhaConfig['node'];

/** Parses and validates YAML text; throws ConfigError with one line per problem. */
export function parseConfig(text: string, file = '<config>'): LanhaConfig {
  return parseYamlConfig(lanhaConfig, text, file);
}

export function loadConfig(file: string): LanhaConfig {
  return parseConfig(readConfigText(file), file);
}
