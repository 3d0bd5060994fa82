import type { LanhaConfig } from '../../config/index.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import type { StateLog } from '../../cluster/state-log.js';
import { GapProber, type GapProbeTargets } from './gap-probe.js';
import type { ProbeWindowResult } from './gap-window.js';
import type { OpsTracker } from './tracker.js';

// When this node probes the VIP, and which probe windows become the last failover's measured gaps.
// A planned failover (`lanctl failover` run here): the window opens once the VIP is deleted here
// and counts from the release's start; it is kept when the command succeeded. An election: the
// window opens the moment this LAN node stops following its leader (pre-candidate or candidate;
// not when it was asked to take over by a planned transfer) and counts from when it last heard the
// leader; it is kept only if a VIP takeover after an election followed, so a failed pre-vote with
// the old leader still serving does not pass for a failover.

interface RoleEvents {
  onRoleChange(listener: (role: string, atMs: number) => void): () => void;
  timeline(): { heardLeaderAt: number | null; timeoutNowAt: number | null };
}

/** What this node can probe on the VIP, or null (a witness, no VIP, no node address, no VIP service to probe). */
export function probeTargets(config: LanhaConfig): GapProbeTargets | null {
  if (config.node.role === 'witness' || config.vip === undefined || config.node.address === undefined) return null;
  const zone = config.dns?.zones[0]?.name;
  const targets: GapProbeTargets = {
    vip: config.vip.address.address,
    from: config.node.address,
    dns: config.dns !== undefined && zone !== undefined ? { port: config.dns.port, zone } : undefined,
    ntp: config.ntp === undefined ? undefined : { port: config.ntp.port },
    tftp: config.tftp === undefined ? undefined : { port: config.tftp.port },
  };
  return targets.dns === undefined && targets.ntp === undefined && targets.tftp === undefined ? null : targets;
}

const TAKEOVER_WAIT_MS = 3000;

export interface FailoverProbes {
  /** Hand to the VIP service: `lanctl failover` deleted the VIP here. */
  onFailoverRelease(startedMono: number): void;
  /** The failover command's outcome (200 or not). */
  onFailoverReply(ok: boolean): void;
  stop(): void;
}

export function startFailoverProbes(o: { config: LanhaConfig; state: StateLog; clock: Clock; log: Logger; tracker: OpsTracker; node: string; windowMs?: number }): FailoverProbes | null {
  const targets = probeTargets(o.config);
  if (targets === null) return null;
  let transfer: { result: ProbeWindowResult | null; ok: boolean | null } | null = null;
  let takeoverAtStart: unknown = null;
  let waiting: NodeJS.Timeout | undefined;
  const settleTransfer = (): void => {
    if (transfer === null || transfer.result === null || transfer.ok === null) return;
    if (transfer.ok) o.tracker.probed = { ...o.tracker.probed, transfer: transfer.result };
    transfer = null;
  };
  const settleElection = (result: ProbeWindowResult, retry: boolean): void => {
    const t = o.tracker.lastTakeover;
    if (t !== null && t !== takeoverAtStart && t.trigger === 'election') {
      o.tracker.probed = { ...o.tracker.probed, election: result };
    } else if (retry) {
      waiting = setTimeout(() => settleElection(result, false), TAKEOVER_WAIT_MS);
      waiting.unref();
    } else {
      o.log.info({ event: 'failover.probe.dropped' }, 'failover probes closed without a VIP takeover after an election: not a failover, not recorded');
    }
  };
  const prober = new GapProber({
    node: o.node, targets, clock: o.clock, log: o.log, ...(o.windowMs === undefined ? {} : { windowMs: o.windowMs }),
    onResult: (result) => {
      if (result.trigger === 'transfer') {
        if (transfer !== null) transfer.result = result;
        settleTransfer();
      } else {
        settleElection(result, true);
      }
    },
  });
  const events = o.state as Partial<RoleEvents>;
  const unsubscribe = events.onRoleChange?.((role, atMs) => {
    if (role !== 'pre-candidate' && role !== 'candidate') return;
    const timeline = events.timeline!();
    // Asked to take over by a planned transfer: the old holder measures that one.
    if (timeline.timeoutNowAt !== null && atMs - timeline.timeoutNowAt < 1000) return;
    takeoverAtStart = o.tracker.lastTakeover;
    prober.start('election', timeline.heardLeaderAt ?? atMs, 'this node last heard the old leader');
  });
  return {
    onFailoverRelease(startedMono) {
      if (prober.running) prober.stop();
      transfer = { result: null, ok: null };
      if (!prober.start('transfer', startedMono, 'VIP released here')) transfer = null;
    },
    onFailoverReply(ok) {
      if (transfer === null) return;
      transfer.ok = ok;
      settleTransfer();
    },
    stop() {
      unsubscribe?.();
      if (waiting !== undefined) clearTimeout(waiting);
      prober.stop();
    },
  };
}
