import type { ServiceDefinition } from './contract.js';
import { startTftp } from './tftp/server.js';
import { startNtp } from './ntp/server.js';
import { startDhcp } from './dhcp/server.js';
import { startDns } from './dns/server.js';
import { startVip } from './vip/server.js';
import { startBoot } from './boot/server.js';
import { startDeploy } from '../cluster/deploy/service.js';

// The services a node can run: the one module that knows every service (their contract is in
// contract.ts). Adding a service is one line in `serviceDefinitions`: the daemon starts each enabled
// one in this order and stops them in reverse.

export const serviceDefinitions: ReadonlyArray<ServiceDefinition> = [
  // One line per service, e.g. { name: 'dns', enabled: (c) => c.dns !== undefined, start: startDns },
  // Before TFTP: TFTP serves the boot files this service renders per client.
  { name: 'boot', enabled: (c) => c.boot !== undefined && c.node.role !== 'witness', start: startBoot, apiPaths: ['/v1/boot'] },
  { name: 'tftp', enabled: (c) => c.tftp !== undefined, start: startTftp, apiPaths: ['/v1/tftp'] },
  { name: 'ntp', enabled: (c) => c.ntp !== undefined, start: (context) => startNtp(context), apiPaths: ['/v1/ntp'] },
  { name: 'dhcp', enabled: (c) => c.dhcp !== undefined && c.node.role !== 'witness', start: startDhcp, apiPaths: ['/v1/leases'] },
  { name: 'dns', enabled: (c) => c.dns !== undefined && c.node.role !== 'witness', start: startDns, apiPaths: ['/v1/dns'] },
  { name: 'deploy', enabled: (c) => c.deploy !== undefined && c.node.role !== 'witness', start: startDeploy, apiPaths: ['/v1/deploy', '/v1/rootfs', '/v1/rollback'] },
  { name: 'vip', enabled: (c) => c.vip !== undefined && c.node.role !== 'witness', start: startVip, apiPaths: ['/v1/vip', '/v1/failover'] }, // last: it serves through the others
];
