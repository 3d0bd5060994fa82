import type { Logger } from '../lib/log.js';
import type { Clock } from '../lib/clock.js';
import type { Random } from '../lib/random.js';
import type { LanhaConfig } from '../config/index.js';
import type { ApiRoutes } from '../lib/control-server.js';
import type { StateLog } from '../cluster/state-log.js';
import type { AckRecord } from '../cluster/ack-audit.js';
import type { BootFileSource } from './boot/provider.js';
import type { ProcessMemory } from '../lib/memory.js';
import type { MemberView } from '../cluster/member-status.js';
import type { StopSteps } from '../lib/stop-steps.js';

// What a service is to the daemon: started with a ServiceContext, it hands back a RunningService.
// Services import this module; only registry.ts imports the services.

export interface ServiceContext {
  readonly config: LanhaConfig;
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  /** The replicated state: leases, records, boot events. */
  readonly state: StateLog;
  /** The services started so far (the VIP service, started last, serves its address through them). */
  readonly services?: () => readonly RunningService[];
  /** Latency observers for /metrics (services/ops/metrics.ts); absent when metrics are off. */
  readonly observe?: ServiceObservers;
  /** The other members' last reports (cluster/member-status.ts); absent without a cluster transport. */
  readonly members?: () => Record<string, MemberView>;
  /** This node's config hash, as the members compare it. */
  readonly configHash?: string;
  /**
   * Sends this member's report to the other members now rather than at the next report (a change a
   * leader waits on: the degraded VIP hand-back, HA.md 2.5); absent without a cluster transport.
   */
  readonly reportNow?: () => void;
  /** When this member, leading, first wrote `peer` a report saying so, and in which term (MemberStatusBoard.leadReportSent). */
  readonly leadReportSent?: (peer: string) => { term: number; monoMs: number } | null;
}

export interface ServiceObservers {
  /** DHCP: REQUEST received to ACK sent, including the commit, in seconds. */
  dhcpAckSeconds?(seconds: number): void;
  /** DHCP: an ACK went out, with its grant's log index and term (the ACK audit, cluster/ack-audit.ts). */
  dhcpAcked?(ack: AckRecord): void;
  /** VIP: `lanctl failover` deleted the VIP here; the release started at `startedMono` (monotonic ms). */
  vipFailoverRelease?(startedMono: number): void;
}

export interface ServiceStatus {
  /** "udp 127.0.0.1:53" and the like. */
  listening: string[];
  [detail: string]: unknown;
}

/** One piece of in-flight work (a TFTP transfer), as a planned failover sees it. */
export interface InFlightWork {
  /** "10.0.0.7:2071 Image for 3.2 s". */
  line: string;
  /** The client stopped answering: the work would only end by timing out, so nobody waits for it. */
  stalled: boolean;
}

export interface RunningService {
  readonly name: string;
  status(): ServiceStatus;
  /**
   * Ends everything the service started, each part bounded (a worker or child that does not end in
   * time is killed, with a warn line naming it); `steps` times its parts (`dns.workers`), for the
   * daemon's stopped and stop_timeout lines.
   */
  stop(steps?: StopSteps): Promise<void>;
  /** Control API routes this service adds, e.g. "GET /v1/leases". */
  readonly routes?: ApiRoutes;
  /** Serve on one more address / stop serving on it: the VIP as it comes and goes (services/vip). */
  addAddress?(address: string): Promise<void>;
  removeAddress?(address: string): Promise<void>;
  /**
   * Work a planned failover lets finish before the VIP goes, one short line each; empty when idle
   * (TFTP transfers). `stalled` work (a client that stopped answering) is not waited for.
   */
  inFlight?(): InFlightWork[];
  /** Planned failover, before the VIP goes: end in-flight work so clients retry at once (TFTP ERROR). */
  handOver?(): Promise<void>;
  /** Boot files rendered per client (the boot service), which TFTP serves before its disk. */
  readonly bootFiles?: BootFileSource;
  /** Child processes the service runs (DNS UDP workers) and their last reported memory. */
  processes?(): ProcessMemory[];
}

export interface ServiceDefinition {
  readonly name: string;
  enabled(config: LanhaConfig): boolean;
  start(context: ServiceContext): Promise<RunningService>;
  /**
   * The control API paths the service's routes live under (`/v1/deploy`): while it does not run, a
   * request there is answered "the service does not run on this node" and why, not "no such route".
   */
  readonly apiPaths?: readonly string[];
  /** The config block that turns the service on, for that answer (default: its name). */
  readonly configBlock?: string;
}
