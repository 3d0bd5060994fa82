import type { LanhaConfig } from '../../config/index.js';
import { timerDelayMs, type Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { LogLimiter } from '../../lib/log.js';
import { Counters } from '../../lib/counters.js';
import { errorMessage, LanhaError } from '../../lib/errors.js';
import type { StateLog } from '../../cluster/state-log.js';
import type { RunningService, ServiceContext, ServiceStatus } from '../contract.js';
import type { VipConfig } from './config.js';
import { GUARD_MARGIN_MS } from '../../cluster/timers.js';
import { GUARD_WORK_MS } from '../../cluster/timers.js';
import { initialVipState, onAcquireFailed, onGuardExpired, onStop, onTick, vipTimings, type DegradedClaim, type VipAction, type VipState, type VipTimings } from './core.js';
import { execRunner, garpArgs, releaseAddress, releaseOutcome, replaceArgs, vipAddress, vipCidr, type CommandRunner } from './address.js';
import { failoverRoutes } from './failover.js';
import { guardUnavailable, startGuard, type VipGuard } from './guard.js';
import { formatParts, takeoverReport, type AcquireMarks, type TakeoverReport } from './takeover.js';
import type { RaftTimeline } from '../../cluster/raft-state-log.js';
import { DEGRADED_HOLD_MS } from '../../cluster/degraded.js';
import { stopStep, type StopSteps } from '../../lib/stop-steps.js';
import { ChildRuns, type EndedChild } from '../../lib/child-runs.js';

// The VIP shell: on each tick it asks the StateLog "leader with a valid lease?", feeds the answer
// to the core (core.ts) and carries out its actions: `ip addr replace|del`, `arping -U`, and serving
// DNS/TFTP/NTP on the VIP through their addAddress/removeAddress. Actions run one batch at a time, in
// order, so a release never overtakes the acquire before it.
//
// A holder in its steady state (the lease renewed by heartbeats, nothing to bind, no failover) does
// not tick every TICK_MS: its timer sleeps until the next thing that can happen, the next renewal,
// the next gratuitous ARP or the end of the lease as known now (nextDueMs), and the events that
// change the picture tick at once: a role change, a lease gained, a guard expiry. The guard's
// deadline follows the lease as acknowledgements extend it (onLeaseExtended), not on a timer. An
// idle leader woke 50 times a second here and wrote the guard a hold each time (bench:idle).

export const TICK_MS = 20;
/**
 * The tick while this member neither leads nor holds the VIP: its ticks do nothing then (no lease,
 * nothing held), and becoming leader (onRoleChange) or gaining the lease (onLeaseGained) ticks at
 * once and brings back TICK_MS. A follower woke 50 times a second for nothing (bench:idle).
 */
export const IDLE_TICK_MS = 1000;
/** GARPs run beside the tick (arping waits a second after sending); more than this at once are skipped. */
const GARPS_IN_FLIGHT_MAX = 6;
export { GUARD_MARGIN_MS };
/**
 * With a guard, the VIP is taken only while at least this much of the lease is left: the guard's
 * margin, its work (GUARD_WORK_MS) and one tick. With less, the guard would delete the address again
 * before DNS, TFTP and NTP had bound it (a lease renewed by a late heartbeat answer: the re-acquire
 * storm seen in bench:failover, with EADDRNOTAVAIL binds); the next answer in time brings a whole lease.
 */
export const ACQUIRE_LEASE_MIN_MS = GUARD_MARGIN_MS + GUARD_WORK_MS + TICK_MS;

/** Any one `ip` or `arping` the service runs itself is killed after this long. */
const COMMAND_TIMEOUT_MS = 5000;
/**
 * At the stop: how long the tick in progress (an `ip addr replace` of an acquire or renewal) and
 * then the release's `ip addr del` may take before the command is killed by PID (each then waits
 * up to KILL_WAIT_MS for its exit), and how long a GARP's `arping` has after its SIGTERM. Together
 * well inside the daemon's 2 s for the VIP's stop step (bin/daemon.ts).
 */
const STOP_BUSY_MS = 400;
const STOP_RELEASE_MS = 800;
const STOP_GARP_MS = 300;

/** A degraded holding's guard deadline (cluster/degraded.ts). */
export { DEGRADED_HOLD_MS };
/** The tick while degraded mode could claim the VIP and this member does not hold it. */
const DEGRADED_IDLE_TICK_MS = 250;

/** The DHCP service's degraded mode as the VIP sees it (services/dhcp/degraded-state.ts vipClaim). */
interface DegradedSource {
  vipClaim(): DegradedClaim;
  /** Why this member, as leader, does not add the VIP yet: a partner may still hold it degraded (null: it may). */
  leaderHeldBack?(): string | null;
  /** This member leads and holds the VIP (not degraded): keeps the hand-back's ARP probe fresh where a lapse would wait for one. */
  leaderHolding?(): void;
}

export interface VipServiceOptions {
  config: LanhaConfig;
  vip: VipConfig;
  state: StateLog;
  clock: Clock;
  log: Logger;
  /** The other running services, to serve on the VIP while it is held. */
  services: () => readonly RunningService[];
  run?: CommandRunner;
  tickMs?: number;
  /** Tests inject a recorder; null runs without a guard. Default: the bash guard (guard.ts). */
  guard?: VipGuard | null;
  /** `lanctl failover` deleted the VIP here (the release's start, monotonic ms): the failover probes start (services/ops/gap-probe.ts). */
  onFailoverRelease?: ((startedMono: number) => void) | undefined;
  /**
   * Sends this member's report now (ServiceContext.reportNow): called once a degraded holding's
   * `ip addr del` returned, so the leader waiting for it hears at once, not at the next report.
   */
  reportNow?: (() => void) | undefined;
}

interface LeaseClock {
  leaseRemainingMs(): number;
}

interface LeaseEvents {
  onLeaseGained(listener: () => void): () => void;
  /** The leader's lease end moved later (an acknowledgement): RaftStateLog.onLeaseExtended. */
  onLeaseExtended(listener: () => void): () => void;
}

interface RoleEvents {
  onRoleChange(listener: (role: string, atMs: number) => void): () => void;
}

export class VipService implements RunningService {
  readonly name = 'vip';
  readonly counters = new Counters();
  readonly vip: VipConfig;
  readonly routes;
  #o: VipServiceOptions;
  #run: CommandRunner;
  /** The `ip` commands this process runs itself (none when a test injects `run`): the stop waits for them, kills what overruns. */
  #commands: ChildRuns | null = null;
  /** The `arping`s of GARPs this process runs itself: ended at the stop. */
  #garps: ChildRuns | null = null;
  #timings: VipTimings;
  #core: VipState = initialVipState;
  #timer: NodeJS.Timeout | undefined;
  /** This member leads (from the state log's role events); null when it tells no roles: always TICK_MS. */
  #leading: boolean | null = null;
  #busy: Promise<void> | null = null;
  #holdOff = false;
  #stopped = false;
  #garpsInFlight = 0;
  #sinceWall: number | null = null;
  #limiter = new LogLimiter();
  /** Marks of the acquire in progress, until its first GARP is out. */
  #marks: Partial<AcquireMarks> | null = null;
  #guard: VipGuard | null = null;
  #guardExpired = false;
  /** Services whose addAddress failed while the VIP was held: retried every tick until bound. */
  #unbound = new Set<string>();
  #lastTakeover: (TakeoverReport & { at: string }) | null = null;
  /** When a VIP this node held was last deleted (release or guard expiry; monotonic ms): a re-acquire counts from there. */
  #lostAt: number | null = null;
  #unsubscribe: (() => void) | null = null;
  #unsubscribeRole: (() => void) | null = null;
  #unsubscribeExtend: (() => void) | null = null;
  /** When the armed timer is due (monotonic ms). */
  #dueAt = Infinity;
  /** Held degraded, from the acquire's decision until the release's `ip addr del` returned: what this member's report says. */
  #degradedHeld = false;
  /** Why this leader does not add the VIP yet (the hand-back from a degraded holder), and since when (monotonic ms). */
  #heldBack: { reason: string; since: number } | null = null;

  constructor(o: VipServiceOptions) {
    this.#o = o;
    this.vip = o.vip;
    if (o.run === undefined) {
      this.#commands = new ChildRuns(COMMAND_TIMEOUT_MS, () => o.clock.monotonicMs());
      this.#garps = new ChildRuns(COMMAND_TIMEOUT_MS, () => o.clock.monotonicMs());
    }
    this.#run = o.run ?? this.#commands?.run ?? execRunner;
    this.#timings = vipTimings(o.vip.mode, o.vip.lifetimeSeconds);
    this.routes = {
      'GET /v1/vip': () => ({ status: 200, body: this.status() }),
      ...failoverRoutes({ vip: this, state: o.state, config: o.config, clock: o.clock, log: o.log, services: o.services, onRelease: o.onFailoverRelease }),
    };
  }

  get held(): boolean { return this.#core.held; }

  async start(): Promise<void> {
    // A previous process may have died holding it (kill -9): never start out holding a stale VIP.
    await this.#release('start');
    this.#guard = this.#o.guard !== undefined ? this.#o.guard : this.#startGuard();
    const roles = (this.#o.state as Partial<RoleEvents>).onRoleChange;
    if (typeof roles === 'function') {
      this.#leading = this.#o.state.status().role === 'leader';
      // Any change: a new leader looks for its lease at once, one stepping down lets go at once.
      this.#unsubscribeRole = roles.call(this.#o.state, (role) => {
        this.#leading = role === 'leader';
        queueMicrotask(() => { void this.tick(); });
      });
    }
    // A new leader's lease turns valid on a message: take the VIP then, not on the next tick.
    this.#unsubscribe = (this.#o.state as Partial<LeaseEvents>).onLeaseGained?.(() => { queueMicrotask(() => { void this.tick(); }); }) ?? null;
    this.#unsubscribeExtend = (this.#o.state as Partial<LeaseEvents>).onLeaseExtended?.(() => this.#onLeaseExtended()) ?? null;
    this.tick();
  }

  /**
   * An acknowledgement moved the lease's end later: the guard's deadline follows at once (what is
   * left of the lease less its margin), as the tick's hold does. Only while the VIP is held and no
   * release is decided; a lease this member may no longer use (a transfer started) ticks instead.
   */
  #onLeaseExtended(): void {
    if (this.#stopped || this.#guard === null || !this.#core.held || this.#holdOff) return;
    const holdMs = this.#leaseRemainingMs() - GUARD_MARGIN_MS;
    if (holdMs <= 0) { void this.tick(); return; }
    this.#guard.hold(holdMs);
  }

  /**
   * A member report came in: a leader holding back for its partner (the hand-back) looks at it at
   * once, so the VIP is added as the report saying the partner let go arrives.
   */
  partnerReported(): void {
    if (this.#heldBack !== null) void this.tick();
  }

  /** One pass of the loop; skipped while the previous batch of actions still runs. */
  tick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#busy ??= this.#step().finally(() => { this.#busy = null; this.#arm(); });
    return this.#busy;
  }

  /**
   * How long the timer may sleep from now: TICK_MS while anything can change from one tick to the
   * next (leading without the VIP yet, a failover's hold-off, services to bind, a guard expiry to
   * handle, or a state log that tells no roles or lease), IDLE_TICK_MS while this member neither
   * leads nor holds. A holder sleeps until its next renewal, its next GARP or the end of its lease
   * as known now; acknowledgements extend the lease meanwhile, and the tick at the old end finds
   * it valid and sleeps again. A lease that really ends is let go on that tick, as a TICK_MS tick did
   * (role changes, a lease gained and a guard expiry tick at once, whatever the timer says).
   */
  nextDueMs(): number {
    const tickMs = this.#o.tickMs ?? TICK_MS;
    const core = this.#core;
    if (this.#holdOff || this.#unbound.size > 0 || this.#guardExpired || this.#leading === null) return tickMs;
    // Held degraded: every tick reads the quorum and the ARP watch, so it yields within a tick.
    if (core.held && core.degraded) return tickMs;
    if (!core.held && !this.#leading && this.#degradedSource() !== null) return Math.max(tickMs, DEGRADED_IDLE_TICK_MS);
    if (!core.held) return this.#leading ? tickMs : Math.max(tickMs, IDLE_TICK_MS);
    const leaseMs = this.#leaseRemainingMs();
    if (leaseMs <= 0 || core.since === null) return tickMs;
    const now = this.#o.clock.monotonicMs();
    const renewMs = core.renewedAt + this.#timings.renewEveryMs - now;
    const garpMs = core.since + core.nextGarpOffsetMs - now;
    return Math.max(1, Math.min(leaseMs, renewMs, garpMs, IDLE_TICK_MS));
  }

  /** Arms the timer for nextDueMs() from now, unless it is armed for then or earlier. */
  #arm(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.monotonicMs();
    const dueAt = now + this.nextDueMs();
    if (this.#timer !== undefined && this.#dueAt <= dueAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#dueAt = dueAt;
    this.#timer = setTimeout(() => { this.#timer = undefined; this.#dueAt = Infinity; void this.tick(); }, timerDelayMs(dueAt, now));
    this.#timer.unref();
  }

  /** Planned failover: give the VIP up now and do not take it back until resume(). */
  async holdOff(): Promise<void> {
    this.#holdOff = true;
    await this.#busy;
    await this.tick();
  }

  resume(): void {
    this.#holdOff = false;
  }

  async stop(steps?: StopSteps): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#unsubscribeRole?.();
    this.#unsubscribeExtend?.();
    // GARPs still waiting for their arping are of no use once the VIP goes: ended now, waited for below.
    const garps = this.#garps?.close(STOP_GARP_MS) ?? Promise.resolve([]);
    // Every command is waited for, and killed by PID when it overruns: a daemon that exits first
    // leaves the child behind (a stopped `ip addr del` for good) and the VIP on the link.
    await stopStep(steps, 'vip.busy', () => this.#bounded(STOP_BUSY_MS, this.#busy));
    const [next, actions] = onStop(this.#core);
    this.#core = next;
    await stopStep(steps, 'vip.release', () => this.#bounded(STOP_RELEASE_MS, this.#execute(actions)));
    this.#degradedHeld = false;
    this.#heldBack = null;
    this.#guard?.drop();
    await stopStep(steps, 'vip.garps', async () => this.#killed(await garps));
    await stopStep(steps, 'vip.guard', () => this.#guard?.stop());
    await this.#commands?.close(0, 'SIGKILL');
  }

  /** Waits for `work` at most `limitMs`, then kills by PID the `ip` commands it still waits for and says so. */
  async #bounded(limitMs: number, work: Promise<unknown> | null): Promise<void> {
    if (this.#commands === null) { await work; return; }
    this.#killed(await this.#commands.within(limitMs, work));
  }

  #killed(ended: readonly EndedChild[]): void {
    for (const c of ended) {
      this.counters.inc('stop.killed');
      this.#o.log.warn({ event: 'vip.stop_command_killed', pid: c.pid, command: c.command, ms: c.ms, outcome: c.outcome },
        `stopping: ${c.command} (pid ${c.pid}) had not ended after ${c.ms} ms; killed${c.outcome === 'left' ? ', and not seen to end' : ''}`);
    }
  }

  /** The DHCP service's degraded mode, when dhcp.degraded is on (else null: the leader path alone). */
  #degradedSource(): DegradedSource | null {
    const dhcp = this.#o.services().find((svc) => svc.name === 'dhcp') as (RunningService & { degraded?: Partial<DegradedSource> }) | undefined;
    const d = dhcp?.degraded;
    return d !== undefined && typeof d.vipClaim === 'function' ? d as DegradedSource : null;
  }

  /**
   * Whether this leader holds back from adding the VIP (dhcp.degraded on): its partner may still
   * hold it degraded. Said once when the wait starts and once when it ends, with how long it took.
   */
  #handBack(source: DegradedSource | null, leaseValid: boolean, nowMs: number): boolean {
    const reason = source !== null && leaseValid && !this.#core.held ? source.leaderHeldBack?.() ?? null : null;
    if (source !== null && leaseValid && this.#core.held && !this.#core.degraded) source.leaderHolding?.();
    if (reason !== null && this.#heldBack === null) {
      this.counters.inc('heldBack');
      this.#o.log.info({ event: 'vip.held_back', reason }, `not adding the VIP yet: ${reason}`);
    } else if (reason === null && this.#heldBack !== null && leaseValid) {
      this.#o.log.info({ event: 'vip.hand_back', waitedMs: Math.round(nowMs - this.#heldBack.since) }, `the partner let the VIP go: adding it after ${Math.round(nowMs - this.#heldBack.since)} ms`);
    }
    this.#heldBack = reason === null ? null : { reason, since: this.#heldBack?.since ?? nowMs };
    return reason !== null;
  }

  /** The bash guard, when this node can run one and its StateLog tells the lease's end. */
  #startGuard(): VipGuard | null {
    if (typeof (this.#o.state as Partial<LeaseClock>).leaseRemainingMs !== 'function') return null; // single node: nobody to overlap with
    // No cluster: block, so a one-member log that no other member can ever join: nobody can take
    // the VIP over, and a guard would only delete it on every stall past the lease (a loaded Pi's
    // VIP flapped several times a second). The kernel lifetime still ends it for a hung process.
    if (this.#o.config.cluster === undefined) {
      this.#o.log.info({ event: 'vip.guard_not_needed' }, 'no VIP guard: a single node with no cluster: block has nobody to share the VIP with');
      return null;
    }
    const missing = guardUnavailable();
    if (missing !== null) {
      this.#o.log.warn({ event: 'vip.guard_unavailable', reason: missing }, `no VIP guard (${missing}): a hung or killed daemon keeps the VIP up to lifetimeSeconds`);
      return null;
    }
    return startGuard(vipCidr(this.vip), this.vip.interface, {
      expired: () => {
        this.counters.inc('guard.expired');
        this.#guardExpired = true;
        void this.tick();
      },
      renewFailed: () => {
        this.counters.inc('renew.failed');
        if (this.#limiter.allow('renew', this.#o.clock.monotonicMs())) this.#o.log.warn({ event: 'vip.renew_failed', address: vipCidr(this.vip) }, 'the guard could not renew the VIP');
      },
      wedged: (command, ms) => {
        this.counters.inc('guard.wedged');
        this.#o.log.warn({ event: 'vip.guard_wedged', command, ms }, `the VIP guard did not answer a${command === 'acquire' ? 'n' : ''} ${command} within ${ms} ms (an ip command stuck?); killed, ${command === 'release' ? 'this process deletes the VIP itself' : 'the acquire counts as failed'}, the guard starts again`);
      },
      exited: (code, signal) => {
        this.counters.inc('guard.exited');
        if (this.#limiter.allow('guard', this.#o.clock.monotonicMs())) {
          this.#o.log.warn({ event: 'vip.guard_exited', code, signal }, 'the VIP guard process ended; restarting it');
        }
      },
    });
  }

  status(): ServiceStatus {
    const leader = this.#o.state.status().leader;
    return {
      listening: this.#core.held ? [`vip ${vipCidr(this.vip)} dev ${this.vip.interface}${this.#core.degraded ? ' (degraded)' : ''}`] : [],
      address: vipCidr(this.vip),
      interface: this.vip.interface,
      mode: this.vip.mode,
      lifetimeSeconds: this.vip.lifetimeSeconds,
      held: this.#core.held,
      /** Held without a leader lease: this member is in degraded DHCP mode (HA.md 2.5, DEGRADED-SOLO). */
      degraded: this.#degradedHeld,
      /** This leader waits to add the VIP: a partner may still hold it degraded (HA.md 2.5, the hand-back). */
      heldBack: this.#heldBack?.reason ?? null,
      holder: this.#core.held ? this.#o.config.node.name : (leader === this.#o.config.node.name ? null : leader),
      since: this.#sinceWall === null ? null : new Date(this.#sinceWall).toISOString(),
      acquisitions: this.#core.acquisitions,
      renewals: this.#core.renewals,
      garps: this.#core.garps,
      releases: this.#core.releases,
      lastTakeover: this.#lastTakeover,
      counters: this.counters.toJSON(),
    };
  }

  async #step(): Promise<void> {
    if (this.#guardExpired) {
      this.#guardExpired = false;
      const [next, actions] = onGuardExpired(this.#core);
      this.#core = next;
      if (actions.length > 0) this.#o.log.warn({ event: 'vip.guard_expired', address: vipCidr(this.vip) }, 'the VIP guard deleted the VIP: this process could not renew its lease in time (paused or stalled)');
      await this.#execute(actions);
    }
    for (let pass = 0; pass < 2; pass++) {
      const leaseValid = !this.#holdOff && this.#o.state.isLeader()
        && (this.#core.held || this.#guard === null || this.#leaseRemainingMs() >= ACQUIRE_LEASE_MIN_MS);
      const nowMs = this.#o.clock.monotonicMs();
      const source = this.#degradedSource();
      const degraded = source === null ? undefined : source.vipClaim();
      const heldBack = this.#handBack(source, leaseValid, nowMs);
      const [next, actions] = onTick(this.#core, degraded === undefined ? { nowMs, leaseValid } : { nowMs, leaseValid, degraded, heldBack }, this.#timings);
      this.#core = next;
      if (next.held && next.degraded) this.#degradedHeld = true;
      // Arm the guard before any `ip addr replace`: the address never outlives the lease, even if
      // this process stops right after. A degraded holding has no lease: the hold is a short
      // deadline each tick that finds this member still degraded moves on.
      if (this.#guard !== null && next.held && leaseValid) this.#guard.hold(this.#leaseRemainingMs() - GUARD_MARGIN_MS);
      else if (this.#guard !== null && next.held && next.degraded) this.#guard.hold(DEGRADED_HOLD_MS);
      // A degraded holding is no failover: no takeover report (nor a log to record it in).
      if (actions.some((a) => a.kind === 'acquire') && !next.degraded) this.#marks = { decidedAt: nowMs };
      // A release runs in the guard (#release): after every renewal written to it before, so the
      // report below that this member let go is never followed by a renewal that adds it back.
      await this.#execute(actions);
      if (this.#guard !== null && !next.held) this.#guard.drop(); // after our own ip addr del
      const letGo = this.#degradedHeld && !next.held;
      if (!next.held || !next.degraded) this.#degradedHeld = false;
      // The report saying so leaves now: the leader adds the VIP on it (HA.md 2.5, the hand-back).
      if (letGo) this.#o.reportNow?.();
      // An `ip` call can take long on a loaded machine, and it just gave the address a fresh
      // lifetime: if the lease ran out meanwhile, let go now rather than one tick later.
      if (!actions.some((a) => a.kind === 'acquire' || a.kind === 'renew')) break;
    }
    if (this.#core.held && this.#unbound.size > 0) await this.#serve('addAddress', this.#unbound);
  }

  async #execute(actions: readonly VipAction[]): Promise<void> {
    for (const action of actions) {
      switch (action.kind) {
        case 'acquire': await this.#acquire(action.lifetimeS); break;
        case 'renew': await this.#renew(action.lifetimeS); break;
        case 'garp': if (this.#core.held) this.#garp(); break; // not after a failed acquire
        case 'release': await this.#release(action.reason); break;
      }
    }
  }

  async #acquire(lifetimeS: number): Promise<void> {
    // The guard (armed just before, with the lease) runs `ip` without a fork of this large process.
    const r = await (this.#guard?.acquire?.(lifetimeS) ?? this.#run('ip', replaceArgs(this.vip, lifetimeS)));
    if (r.code !== 0) {
      this.counters.inc('acquire.failed');
      // Retried every second (a NIC that is not up yet): say so once in a while, not every time.
      if (this.#limiter.allow('acquire', this.#o.clock.monotonicMs())) this.#o.log.warn({ event: 'vip.acquire_failed', address: vipCidr(this.vip), interface: this.vip.interface, code: r.code, stderr: r.stderr.trim() },
        `could not add the VIP ${vipCidr(this.vip)} to ${this.vip.interface}: ${r.stderr.trim()}`);
      const [next, actions] = onAcquireFailed(this.#core, this.#o.clock.monotonicMs());
      this.#core = next;
      await this.#execute(actions);
      return;
    }
    this.#sinceWall = this.#o.clock.wallMs();
    if (this.#marks) this.#marks.addressAt = this.#o.clock.monotonicMs();
    this.counters.inc('acquired');
    const degraded = this.#core.degraded;
    this.#o.log.info({ event: 'vip.acquired', address: vipCidr(this.vip), interface: this.vip.interface, lifetimeS, mode: this.vip.mode, degraded },
      degraded ? `holding the VIP ${vipCidr(this.vip)} degraded: no quorum, the partner silent, nobody answering ARP for it (yielded when a quorum is back or another MAC answers)` : `holding the VIP ${vipCidr(this.vip)}`);
    await this.#serve('addAddress');
    if (this.#marks) this.#marks.boundAt = this.#o.clock.monotonicMs();
  }

  #leaseRemainingMs(): number {
    return (this.#o.state as Partial<LeaseClock>).leaseRemainingMs?.() ?? 0;
  }

  /** The first GARP of a holding is out: report how this takeover went (log, status, replicated). */
  #takeoverDone(marks: AcquireMarks): void {
    const timeline = (this.#o.state as Partial<{ timeline(): RaftTimeline }>).timeline?.();
    if (timeline === undefined) return; // single node: no takeover to speak of
    const report = takeoverReport(timeline, marks, this.#lostAt);
    this.#lastTakeover = { ...report, at: new Date(this.#o.clock.wallMs()).toISOString() };
    this.#o.log.info({ event: 'vip.takeover', trigger: report.trigger, parts: Object.fromEntries(report.parts), totalMs: report.totalMs },
      `took the VIP over (${report.trigger}): ${formatParts(report.parts, report.totalMs)}`);
    // A re-acquire is no failover (the leader stays): nothing for the old holder or the failover figures.
    if (report.trigger === 're-acquire') return;
    // Replicated so the old holder's `lanctl failover` can print the whole gap; best effort.
    const term = this.#o.state.status().term;
    this.#o.state.propose({ type: 'vip.takeover', node: this.#o.config.node.name, term, trigger: report.trigger, parts: report.parts, totalMs: report.totalMs }).catch(() => undefined);
  }

  async #renew(lifetimeS: number): Promise<void> {
    // The guard renews while the hold it was just given runs (no fork from this process).
    if (this.#guard?.renew(lifetimeS) === true) return;
    const r = await this.#run('ip', replaceArgs(this.vip, lifetimeS));
    if (r.code === 0) return;
    this.counters.inc('renew.failed');
    if (this.#limiter.allow('renew', this.#o.clock.monotonicMs())) {
      this.#o.log.warn({ event: 'vip.renew_failed', address: vipCidr(this.vip), code: r.code, stderr: r.stderr.trim() }, `could not renew the VIP: ${r.stderr.trim()}`);
    }
  }

  #garp(): void {
    if (this.#guard?.garp() === true) {
      // The guard forks arping; whether it went out is in arping's exit, which the guard does not wait for.
      this.counters.inc('garp.sent');
      this.#garpSent();
      return;
    }
    if (this.#garpsInFlight >= GARPS_IN_FLIGHT_MAX) { this.counters.inc('garp.skipped'); return; }
    this.#garpsInFlight++;
    const releases = this.#core.releases;
    void (this.#garps?.run ?? this.#run)('arping', garpArgs(this.vip)).then((r) => {
      this.#garpsInFlight--;
      if (this.#stopped || this.#core.releases !== releases) return; // ended by the stop, or by a release (#release)
      this.counters.inc(r.code === 0 ? 'garp.sent' : 'garp.failed');
      if (r.code !== 0 && this.#limiter.allow('garp', this.#o.clock.monotonicMs())) {
        this.#o.log.warn({ event: 'vip.garp_failed', code: r.code, stderr: r.stderr.trim() }, `gratuitous ARP failed: ${r.stderr.trim()}`);
      }
    });
    this.#garpSent();
  }

  /** arping was started just now and sends at once: the end of a takeover as clients see it. */
  #garpSent(): void {
    const marks = this.#marks;
    if (marks?.decidedAt !== undefined && marks.addressAt !== undefined && marks.boundAt !== undefined) {
      this.#marks = null;
      this.#takeoverDone({ decidedAt: marks.decidedAt, addressAt: marks.addressAt, boundAt: marks.boundAt, garpAt: this.#o.clock.monotonicMs() });
    }
  }

  async #release(reason: string): Promise<void> {
    // Only a VIP that was up (its ip addr replace succeeded) is lost; the guard deleted it a moment before its callback.
    if (this.#sinceWall !== null) this.#lostAt = this.#o.clock.monotonicMs();
    // A GARP's arping this process started and that has not sent yet would announce the VIP after
    // it is gone (the LAN's caches then point here): ended by PID first (the guard does the same with its own).
    const garps = await this.#garps?.killRunning() ?? [];
    if (garps.length > 0) this.counters.inc('garp.killed', garps.length);
    for (const g of garps) {
      const record = { event: 'vip.garp_killed', reason, pid: g.pid, command: g.command, ms: g.ms, outcome: g.outcome };
      if (g.outcome === 'killed') this.#o.log.info(record, `releasing the VIP: GARP ${g.command} (pid ${g.pid}, running ${g.ms} ms) killed first, so it cannot announce the VIP once it is gone`);
      else this.#o.log.warn(record, `releasing the VIP: GARP ${g.command} (pid ${g.pid}, running ${g.ms} ms) did not end after SIGKILL; it may still announce the VIP`);
    }
    let outcome: string;
    try {
      // The guard deletes it (its small bash forks `ip` far sooner than this process does), after
      // the renewals written to it before: one queued there cannot add the address back after this
      // returns. A guard not running, or ended before it answered: this process deletes it.
      const inGuard = this.#guard?.release?.() ?? null;
      const r = inGuard === null ? null : await inGuard;
      outcome = r === null || r.code === -1 ? await releaseAddress(this.vip, this.#run) : releaseOutcome(this.vip, r);
    } catch (error) {
      this.counters.inc('release.failed');
      this.#o.log.error({ event: 'vip.release_failed', reason, err: error }, `could not delete the VIP: ${errorMessage(error)} (the kernel drops it within ${this.vip.lifetimeSeconds} s)`);
      outcome = 'failed';
    }
    if (reason !== 'start' || outcome === 'released') {
      this.counters.inc('released');
      this.#o.log.info({ event: 'vip.released', address: vipCidr(this.vip), reason, outcome }, `released the VIP ${vipCidr(this.vip)} (${reason})`);
    }
    this.#sinceWall = null;
    if (reason !== 'start') await this.#serve('removeAddress');
  }

  /**
   * Serve on the VIP (or stop) in every service that serves per address (or only those in `only`);
   * one failure does not stop the rest. A failed addAddress (EADDRNOTAVAIL: the address went again
   * between `ip addr replace` and the bind, e.g. the guard deleted it) is retried every tick while
   * the VIP is held, so a holder never stays without its services on the VIP.
   */
  async #serve(method: 'addAddress' | 'removeAddress', only?: ReadonlySet<string>): Promise<void> {
    const address = vipAddress(this.vip);
    if (method === 'removeAddress') this.#unbound.clear();
    for (const service of this.#o.services()) {
      if (service === this || (only !== undefined && !only.has(service.name))) continue;
      const call = service[method];
      if (call === undefined) continue;
      try {
        await call.call(service, address);
        if (method === 'addAddress' && this.#unbound.delete(service.name)) {
          this.#o.log.info({ event: 'vip.serve_retried', service: service.name, address }, `${service.name} serves on the VIP ${address} after a failed bind`);
        }
      } catch (error) {
        this.counters.inc(`serve.${service.name}.failed`);
        if (method === 'addAddress') this.#unbound.add(service.name);
        if (only === undefined || this.#limiter.allow(`serve.${service.name}`, this.#o.clock.monotonicMs())) {
          this.#o.log.warn({ event: 'vip.serve_failed', service: service.name, method, address, err: error }, `${service.name}: ${method}(${address}) failed: ${errorMessage(error)}${method === 'addAddress' ? ' (retried every tick while the VIP is held)' : ''}`);
        }
      }
    }
  }
}

export async function startVip(context: ServiceContext): Promise<RunningService> {
  const vip = context.config.vip;
  if (vip === undefined) throw new LanhaError('config-invalid', 'vip service started without a vip: block');
  const service = new VipService({
    config: context.config, vip, state: context.state, clock: context.clock, log: context.log,
    services: context.services ?? (() => []),
    onFailoverRelease: context.observe?.vipFailoverRelease, reportNow: context.reportNow,
  });
  await service.start();
  return service;
}
