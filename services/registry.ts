import type { Logger } from '../lib/log.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { LanhaConfig } from '../lib/config.js';
import type { ApiRoutes } from '../lib/control-server.js';
import type { StateLog } from '../cluster/state-log.js';
import { startTftp } from './tftp/server.js';
import { startNtp } from './ntp/server.js';
import { startDhcp } from './dhcp/server.js';
import { startDns } from './dns/server.js';
import { startVip } from './vip/server.js';

// The services a node can run. Adding a service is one line in `serviceDefinitions`: the daemon
// starts each enabled one in this order and stops them in reverse.

export interface ServiceContext {
  readonly config: LanhaConfig;
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  /** The replicated state: leases, records, boot events. */
  readonly state: StateLog;
  /** The services started so far (the VIP service, started last, serves its address through them). */
  readonly services?: () => readonly RunningService[];
}

export interface ServiceStatus {
  /** "udp 127.0.0.1:53" and the like. */
  listening: string[];
  [detail: string]: unknown;
}

export interface RunningService {
  readonly name: string;
  status(): ServiceStatus;
  stop(): Promise<void>;
  /** Control API routes this service adds, e.g. "GET /v1/leases". */
  readonly routes?: ApiRoutes;
  /** Serve on one more address / stop serving on it: the VIP as it comes and goes (services/vip). */
  addAddress?(address: string): Promise<void>;
  removeAddress?(address: string): Promise<void>;
  /** Planned failover, before the VIP goes: end in-flight work so clients retry at once (TFTP ERROR). */
  handOver?(): Promise<void>;
}

export interface ServiceDefinition {
  readonly name: string;
  enabled(config: LanhaConfig): boolean;
  start(context: ServiceContext): Promise<RunningService>;
}

export const serviceDefinitions: ReadonlyArray<ServiceDefinition> = [
  // One line per service, e.g. { name: 'dns', enabled: (c) => c.dns !== undefined, start: startDns },
  { name: 'tftp', enabled: (c) => c.tftp !== undefined, start: startTftp },
  { name: 'ntp', enabled: (c) => c.ntp !== undefined, start: (context) => startNtp(context) },
  { name: 'dhcp', enabled: (c) => c.dhcp !== undefined && c.node.role !== 'witness', start: startDhcp },
  { name: 'dns', enabled: (c) => c.dns !== undefined && c.node.role !== 'witness', start: startDns },
  { name: 'vip', enabled: (c) => c.vip !== undefined && c.node.role !== 'witness', start: startVip }, // last: it serves through the others
];
