import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { MCLT_DEFAULT_MS } from '../cluster/degraded.js';
import { MAX_IN_FLIGHT as DNS_MAX_IN_FLIGHT } from '../services/dns/bounds.js';
import type { LanhaConfig } from '../config/index.js';
import { loadConfigOffLoop, type OffLoopOptions } from '../config/load-off-loop.js';
import type { EarlySignals } from './early-signals.js';
import { configChanges } from '../config/changes.js';
import { configWarnings } from '../config/warnings.js';
import { chooseLogFormat, createLogger, type Logger } from '../lib/log.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { WallStepWatch } from '../lib/clock-step.js';
import { cryptoRandom, type Random } from '../lib/random.js';
import { ControlServer, type ApiRoutes } from '../lib/control-server.js';
import { systemdReady, type SystemdHandle } from '../lib/systemd.js';
import { ExitCode, LanhaError, errorMessage } from '../lib/errors.js';
import { bindError } from '../lib/bind-errors.js';
import { checkStateDir } from '../lib/state-dir.js';
import { serviceDefinitions } from '../services/registry.js';
import type { RunningService, ServiceContext, ServiceDefinition } from '../services/contract.js';
import type { StateLog } from '../cluster/state-log.js';
import { openState } from '../cluster/open-state.js';
import { clusterTlsMaterial, formatTlsProblems } from '../cluster/raft/tls.js';
import type { RaftStateLog } from '../cluster/raft-state-log.js';
import { BootFileIndex } from '../services/ops/boot-files.js';
import { nodeRoutes } from '../cluster/nodes-view.js';
import { inventoryContext, profilesKnownHere } from '../cluster/inventory-context.js';
import { inventoryRoutes, leaseHolderOf } from '../cluster/inventory-api.js';
import { powerRoutes } from '../cluster/power-api.js';
import { PowerRunner } from '../cluster/power-run.js';
import { missingPowerPrograms } from '../cluster/power-run.js';
import { startInventorySeeder } from '../cluster/inventory-seed.js';
import { VERSION } from './version.js';
import { APPLY_LEVEL, proposable, proposalCheck } from '../cluster/apply-level.js';
import { processMemory, watchPauses, type ProcessMemory } from '../lib/memory.js';
import { OpsTracker } from '../services/ops/tracker.js';
import type { LanhaMetrics } from '../services/ops/metrics.js';
import { findings, opsRoutes, pools, startOpsHttp, type OpsContext } from '../services/ops/ops.js';
import type { OpsHttpServer } from '../services/ops/http-server.js';
import { MemberStatusBoard, memberRows, type LocalReport } from '../cluster/member-status.js';
import { BootEventRelay, RELAY_HELD_MS, type BootCommand, type RelayedBootEvent } from '../cluster/boot-relay.js';
import { AckLedger, describeAckAudit, type AuditView } from '../cluster/ack-audit.js';
import { AckJournal, ackJournalAppender } from '../cluster/ack-journal.js';
import { startFailoverProbes } from '../services/ops/failover-probes.js';
import { StopSteps, describeStop, type StopReport } from '../lib/stop-steps.js';
import { killRunningChildren } from '../lib/child-runs.js';

// The composition root: the only place that wires real clocks, randomness, sockets and disks to the
// cores. Everything it starts it also stops: the VIP first, then the other services together, then the
// control socket and the replicated state.

export interface DaemonOptions {
  log?: Logger;
  clock?: Clock;
  random?: Random;
  /** Builds the replicated state; the default is the durable log of the cluster module. */
  openState?: (config: LanhaConfig, log: Logger, clock: Clock) => Promise<StateLog>;
  /** The file the config came from (absolute), shown in status so a client given another file can say so. */
  configFile?: string | undefined;
}

export interface Daemon {
  readonly config: LanhaConfig;
  readonly state: StateLog;
  readonly services: readonly RunningService[];
  /** The control API (its GET routes are what `lanctl` and the pages read). */
  readonly control: ControlServer;
  /** The read-only HTTP listener (null without an `http:` block). */
  readonly http: OpsHttpServer | null;
  stop(): Promise<void>;
  /** The steps of the stop so far: finished ones with their times, and those still running. */
  stopReport(): StopReport;
}

/**
 * Settings added after 0.1.0 (488a078) with a default, each with that default: while a config holds
 * the default, the setting is left out of the hash, so a file hashes the same on every version
 * (0.1.0 never heard of it) and doctor's cluster.config-differs stays quiet through a rolling
 * upgrade; set to anything else, it is hashed (two members running different settings differ).
 * A new setting with a default goes here, or `cluster/upgrade-golden.test.ts` fails: 0.1.0's
 * example files must hash as that release reported.
 */
const ADDED_WITH_DEFAULT: ReadonlyArray<{ path: readonly [string, string]; value: unknown }> = [
  { path: ['dhcp', 'degraded'], value: { enabled: false, mclt: MCLT_DEFAULT_MS } },
];

/**
 * Settings whose default changed since 0.1.0 (488a078), with the default then and now. A config at
 * today's default is hashed with 0.1.0's, so a file that leaves the setting out hashes as that release
 * reported it (doctor's cluster.config-differs stays quiet through a rolling upgrade; the versions
 * behave apart there as they do in every other change between them). One holding 0.1.0's default by
 * hand is hashed as `{ set: value }`: it runs otherwise than one at today's default, so the two differ.
 * A changed default goes here, or `cluster/upgrade-golden.test.ts` fails.
 */
const CHANGED_DEFAULT: ReadonlyArray<{ path: readonly string[]; was: unknown; now: unknown }> = [
  // 150 split between the daemon and its UDP worker answered SERVFAIL on short stalls (services/dns/README.md, Bounds).
  { path: ['dns', 'forward', 'maxInFlight'], was: 150, now: DNS_MAX_IN_FLIGHT },
];

/**
 * A fingerprint of the running config without what may differ per member: the `node:` block, `http:`
 * (where each member's pages listen) and interface names (`dhcp.interface`, `vip.interface`: eth0 on
 * one board, end0 on another), nor settings added since 0.1.0 while they hold their defaults
 * (ADDED_WITH_DEFAULT), with changed defaults as 0.1.0 had them (CHANGED_DEFAULT). Equal on members
 * that run the same file, so doctor can compare them.
 */
export function configHash(config: LanhaConfig): string {
  const { node: _node, http: _http, ...shared } = config;
  const holderOf = (path: readonly string[]): unknown => path.reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), shared);
  const atDefault = (holder: unknown, key: string): boolean => ADDED_WITH_DEFAULT.some(({ path: [block, name], value }) =>
    name === key && holder === (shared as Record<string, unknown>)[block] && isDeepStrictEqual((holder as Record<string, unknown>)[key], value));
  const changed = (holder: unknown, key: string): (typeof CHANGED_DEFAULT)[number] | undefined =>
    CHANGED_DEFAULT.find(({ path }) => path.at(-1) === key && holder !== undefined && holder === holderOf(path.slice(0, -1)));
  return createHash('sha256').update(JSON.stringify(shared, function (this: unknown, key, value: unknown) {
    if (key === 'interface' || atDefault(this, key)) return undefined;
    const c = changed(this, key);
    if (c === undefined) return value;
    if (isDeepStrictEqual(value, c.now)) return c.was;
    return isDeepStrictEqual(value, c.was) ? { set: value } : value;
  })).digest('hex');
}

const BOOT_SCAN_MS = 60_000;
/**
 * The stop's own bounds, inside runDaemon's STOP_LIMIT_MS (5 s): the longest it waits for one
 * service (each kills what of its own does not end sooner: DNS worker processes, TFTP threads) or
 * for another step, all of them but the Raft log's close within STOP_BUDGET_MS of the start (a
 * step that starts later still gets STEP_MIN_MS), then the Raft log's close, RAFT_CLOSE_LIMIT_MS.
 */
const SERVICE_STEP_LIMIT_MS = 2000;
const STEP_LIMIT_MS = 1000;
const STOP_BUDGET_MS = 3500;
const STEP_MIN_MS = 100;
const RAFT_CLOSE_LIMIT_MS = 1000;

/** One field of a running service's status, when it has that type (null otherwise, or no such service). */
function serviceField<K extends 'number' | 'boolean'>(running: readonly RunningService[], service: string, key: string, type: K): (K extends 'number' ? number : boolean) | null {
  const v = running.find((s) => s.name === service)?.status()[key];
  return typeof v === type ? v as K extends 'number' ? number : boolean : null;
}

/** The boot tree this LAN node serves (tftp.root, and boot.root when it differs), for doctor's comparison. */
function bootFileIndex(config: LanhaConfig): BootFileIndex | null {
  if (config.node.role === 'witness' || config.tftp === undefined) return null;
  const roots = [{ dir: config.tftp.root, label: 'tftp' }];
  if (config.boot?.root !== undefined && config.boot.root !== config.tftp.root) roots.push({ dir: config.boot.root, label: 'boot' });
  return new BootFileIndex(roots);
}

/** The durable Raft log under node.stateDir/raft (a one-member cluster when there is no `cluster:` block), or the state on etcd. */
export async function defaultOpenState(config: LanhaConfig, log: Logger, clock: Clock): Promise<StateLog> {
  return openState(config, log, clock);
}

export async function startDaemon(config: LanhaConfig, options: DaemonOptions = {}): Promise<Daemon> {
  const log = options.log ?? createLogger({ level: config.node.logLevel, node: config.node.name });
  const clock = options.clock ?? systemClock;
  const random = options.random ?? cryptoRandom;
  const startedWall = clock.wallMs();
  const startedMono = clock.monotonicMs();
  // Leases run on log time and Raft, the VIP and every timer on monotonic time, so a step of the
  // wall clock moves none of them; it is still said, once per step (HA.md 2.6, "clock jump").
  const wallSteps = new WallStepWatch();
  wallSteps.observe(startedMono, startedWall);
  if (checkStateDir(config.node.stateDir) === 'read-only') {
    log.warn({ event: 'daemon.state_dir_read_only', dir: config.node.stateDir },
      `node.stateDir ${config.node.stateDir} is on a read-only file system: lanha starts on the state it can read, accepts no writes (DHCP silent; DNS, TFTP and NTP serve) and writes again by itself once it is remounted read-write`);
  }

  const state = await (options.openState ?? defaultOpenState)(config, log, clock).catch((error: unknown) => {
    throw bindError('the cluster transport', 'cluster', error) ?? error;
  });
  const running: RunningService[] = [];
  const control = new ControlServer(config.node.controlSocket, log.child({ service: 'control' }));
  let systemd: SystemdHandle | undefined;
  let seeder: { stop(): void } | undefined;
  let http: OpsHttpServer | null = null;
  const hash = configHash(config);
  const memberNames = config.cluster?.members.map((m) => m.name) ?? [config.node.name];
  const bootFiles = bootFileIndex(config);
  const bootScan = setInterval(() => void bootFiles?.refresh(), BOOT_SCAN_MS);
  bootScan.unref();
  void bootFiles?.refresh();
  // The ACKs this node sent, checked against the committed log after each leadership change.
  const acks = new AckLedger();
  const localReport = (): LocalReport => {
    const s = state.status();
    const storage = s['storage'] as { fsyncP99Ms?: number | null } | undefined;
    return {
      node: config.node.name, version: VERSION, configHash: hash, role: s.role, leader: s.leader, term: s.term, commitIndex: s.commitIndex, appliedIndex: s.appliedIndex,
      lastIndex: typeof s['lastIndex'] === 'number' ? s['lastIndex'] : null, walFsyncP99Ms: storage?.fsyncP99Ms ?? null, bootFiles: bootFiles?.digest() ?? null,
      dnsSerial: serviceField(running, 'dns', 'serial', 'number'), vipHeld: serviceField(running, 'vip', 'held', 'boolean'),
      stateHash: typeof s['stateHash'] === 'string' ? s['stateHash'] : null,
      ackAudit: config.dhcp === undefined ? null : ((a) => ({ lostTotal: a.lostTotal, audits: a.audits, checked: a.lastAudit?.checked ?? null }))(acks.summary()),
      applyLevel: APPLY_LEVEL,
      ...((d) => (d === undefined ? {} : {
        degradedJournal: d.journalReport(), poolSplit: d.poolSplit,
        // What a leader waits on before adding the VIP (cluster/degraded.ts handBackRefusal).
        degradedVip: { ...d.vipReport(), held: serviceField(running, 'vip', 'degraded', 'boolean') === true },
      }))((running.find((r) => r.name === 'dhcp') as { degraded?: { journalReport(): NonNullable<LocalReport['degradedJournal']> | null; vipReport(): { active: boolean; noQuorumMs: number }; readonly poolSplit: string } } | undefined)?.degraded),
    };
  };
  // Boot timeline events of a member that is not the leader (a `lanctl nodes power` run there) go
  // to the leader with this member's reports; the leader proposes them (cluster/boot-relay.ts).
  const relay = new BootEventRelay(config.node.name, Math.floor(clock.wallMs()));
  const relayLog = log.child({ service: 'cluster' });
  const proposeRelayed = (events: readonly RelayedBootEvent[]): void => {
    // With the event's own time while every member applies it (apply level 3), else as before.
    for (const command of relay.toPropose(events)) state.propose(proposable(command, state.proposalRefusal?.bind(state))).catch(() => relay.failed(command.relay!));
  };
  const recordBoot = (command: BootCommand): void => {
    if (!state.isLeader()) { relay.hold(command, clock.monotonicMs()); return; }
    state.propose(proposable(command, state.proposalRefusal?.bind(state))).catch(() => relay.hold(command, clock.monotonicMs()));
  };
  const relayedEvents = (): RelayedBootEvent[] => {
    const { events, expired } = relay.outgoing(clock.monotonicMs());
    for (const e of expired) relayLog.warn({ event: 'boot.relay_dropped', mac: e.mac, boot: e.event, detail: e.detail }, `the boot timeline event "${e.event}${e.detail === undefined ? '' : ` ${e.detail}`}" of ${e.mac} was not recorded: no leader took it in ${RELAY_HELD_MS / 60_000} minutes`);
    // A member that became the leader records what it held itself.
    if (events.length > 0 && state.isLeader()) proposeRelayed(events);
    return events;
  };
  // Reports go to the other members over the cluster transport; a backend without a feed leaves the board empty.
  const members = new MemberStatusBoard({
    self: config.node.name, clock, local: () => ({ ...localReport(), bootEvents: relayedEvents() }),
    onReport: (report) => {
      if (report.bootEvents !== undefined && report.bootEvents !== null && report.bootEvents.length > 0 && state.isLeader()) proposeRelayed(report.bootEvents);
      // A leader held back by its partner's degraded VIP looks at the report at once (HA.md 2.5, the hand-back).
      if (report.degradedVip != null) (running.find((s) => s.name === 'vip') as { partnerReported?(): void } | undefined)?.partnerReported?.();
    },
  });
  state.attachMemberStatus?.(members);
  // A command some member cannot apply is refused, not proposed (cluster/apply-level.ts): the
  // rows are worked out only for a command above the level every version applies.
  state.setProposalCheck?.(proposalCheck(() => memberRows(memberNames, localReport(), members.members())));
  const tracker = new OpsTracker();
  const unsubscribe = state.fsm.subscribe((entry) => {
    tracker.entry(entry);
    if (entry.command.type === 'node.boot' && entry.command.relay !== undefined) relay.applied(entry.command);
  });
  const vipHeld = (): boolean | null => {
    const vip = running.find((s) => s.name === 'vip');
    return vip === undefined ? null : vip.status()['held'] === true;
  };
  // Client-side probes of the VIP while a failover runs (nothing in steady state).
  const probes = startFailoverProbes({ config, state, clock, log: log.child({ service: 'vip' }), tracker, node: config.node.name });
  tracker.probing = probes !== null;
  // On disk too, so a node killed with kill -9 audits what it ACKed once it rejoins.
  const journal = config.dhcp !== undefined && config.node.role !== 'witness' ? openAckJournal(join(config.node.stateDir, 'acks.jsonl'), acks.capacity, log) : null;
  if (journal !== null) acks.load(journal.records);
  const auditLog = log.child({ service: 'dhcp' });
  const journalAppend = journal === null ? (): void => undefined : ackJournalAppender(journal, auditLog);

  const sampler = setInterval(() => {
    const step = wallSteps.observe(clock.monotonicMs(), clock.wallMs());
    if (step !== null) {
      log.warn({ event: 'daemon.clock_step', stepMs: step.stepMs, from: new Date(step.fromWallMs).toISOString(), to: new Date(step.toWallMs).toISOString() },
        `the wall clock stepped by ${step.stepMs > 0 ? '+' : ''}${(step.stepMs / 1000).toFixed(1)} s (${new Date(step.fromWallMs).toISOString()} -> ${new Date(step.toWallMs).toISOString()}); leases, Raft and the VIP run on log and monotonic time and are not moved`);
    }
    const s = state.status();
    tracker.observe({ role: s.role, leader: s.leader, term: s.term, vipHeld: vipHeld() }, clock.wallMs());
    const view: AuditView = { commitIndex: s.commitIndex, committedTerm: state.committedTerm?.bind(state), lease: (ip) => state.fsm.lease(ip) };
    const run = acks.observe(s, view, clock.wallMs());
    if (run === null) return;
    const text = describeAckAudit(acks.summary());
    const facts = { event: 'dhcp.ack.audit', leader: run.leader, term: run.term, checked: run.checked, kept: run.kept, superseded: run.superseded, lost: run.lost, pending: run.pending, unknown: run.unknown };
    if (run.newlyLost > 0) auditLog.error(facts, text);
    else auditLog.info(facts, text);
    tracker.add(clock.wallMs(), 'dhcp', text);
  }, 500);
  sampler.unref();
  // Filled in below, once the context exists; the collect callbacks only run at scrape time.
  let ops: OpsContext | undefined;
  // prom-client is loaded only when /metrics is served: it costs start-up time on a small board.
  const metrics: LanhaMetrics | null = config.http?.metrics === true ? (await import('../services/ops/metrics.js')).createMetrics({
    node: config.node.name,
    version: VERSION,
    cluster: () => state.status(),
    services: () => running.map((s) => ({ name: s.name, status: s.status() as Record<string, unknown> })),
    pools: () => (ops ? pools(ops) : []),
    leases: () => state.fsm.leases(),
    tracker,
    findings: () => (ops ? findings(ops) : []),
    ackAudit: () => acks.summary(),
    nowMs: () => clock.wallMs(),
    enabled: new Set(serviceDefinitions.filter((d) => d.enabled(config)).map((d) => d.name)),
    walFsync: (state as Partial<RaftStateLog>).walFsyncLatency?.() ?? null,
    members,
  }, { perClient: config.http.perClientMetrics }) : null;

  // Power commands run in process groups of their own: a stop ends those still running (no orphan).
  const power = config.power === undefined ? undefined : new PowerRunner(config.power.parallel);
  // Each step of the stop is timed (lib/stop-steps.ts): the stopped line lists them, and a stop that
  // runs out of time (runDaemon) names the steps it still waited for. Each step is bounded, so one
  // that hangs does not keep the steps after it, the Raft log's close last, from running.
  const steps = new StopSteps(() => clock.monotonicMs());
  const stopAll = async (): Promise<void> => {
    const stopFailed = (step: string) => (error: unknown): void => { log.error({ event: 'service.stop_failed', service: step, err: error }, `stopping ${step} failed: ${errorMessage(error)}`); };
    const budgetEnd = clock.monotonicMs() + STOP_BUDGET_MS;
    const bounded = async (step: string, ownLimitMs: number, fn: () => unknown): Promise<void> => {
      const limitMs = Math.round(Math.max(STEP_MIN_MS, Math.min(ownLimitMs, budgetEnd - clock.monotonicMs())));
      if (await steps.bounded(step, limitMs, fn, stopFailed(step)) !== 'late') return;
      log.warn({ event: 'daemon.stop_step_late', step, limitMs }, `stopping ${step} took over ${limitMs} ms; going on with the rest of the stop without it`);
    };
    systemd?.stopping();
    seeder?.stop();
    const ended = await steps.run('power', () => power?.stop() ?? 0);
    if (ended > 0) log.warn({ event: 'power.ended', commands: ended }, `${ended} power command${ended === 1 ? '' : 's'} still running ended with the daemon`);
    clearInterval(sampler);
    clearInterval(bootScan);
    probes?.stop();
    unsubscribe();
    await bounded('http', STEP_LIMIT_MS, () => http?.close());
    // The VIP first, alone: it leaves the address through the others (removeAddress). Then the rest
    // at once: each ends its own workers and children, and one after the other their waits added up
    // (DNS workers, then each TFTP thread in turn, then the capture child) on a loaded machine.
    const vip = running.filter((s) => s.name === 'vip');
    for (const service of vip) await bounded(service.name, SERVICE_STEP_LIMIT_MS, () => service.stop(steps));
    await Promise.all([...running].reverse().filter((s) => !vip.includes(s)).map((service) => bounded(service.name, SERVICE_STEP_LIMIT_MS, () => service.stop(steps))));
    // A service step given up at its limit may still wait for a command (`ip`, `arping`): it does not outlive the daemon.
    const leftBehind = killRunningChildren();
    if (leftBehind.length > 0) log.warn({ event: 'daemon.children_killed', children: leftBehind }, `stopping: killed ${leftBehind.map((c) => `${c.command} (pid ${c.pid}, ${c.ms} ms)`).join(', ')}, still running after the services stopped`);
    await bounded('control', STEP_LIMIT_MS, () => control.close());
    // After the services: an ACK committed while DHCP was stopping is still journaled before it
    // leaves (closed first, its append hit a closed descriptor: EBADF, or another file's).
    await steps.run('journal', () => journal?.close());
    // The Raft log's close failing (its WAL) fails the stop: exit status 1.
    let closeError: unknown;
    if (await steps.bounded('raft', RAFT_CLOSE_LIMIT_MS, () => state.close(steps), (error) => { closeError = error; }) === 'late') {
      log.warn({ event: 'daemon.stop_step_late', step: 'raft', limitMs: RAFT_CLOSE_LIMIT_MS }, `closing the Raft log took over ${RAFT_CLOSE_LIMIT_MS} ms; exiting without waiting for it`);
    }
    if (closeError !== undefined) throw closeError;
  };

  try {
    const context: ServiceContext = {
      config, log, clock, random, state, services: () => running, members: () => members.members(), configHash: hash, reportNow: () => members.sendNow(),
      leadReportSent: (peer) => members.leadReportSent(peer),
      observe: {
        ...(metrics ? { dhcpAckSeconds: (seconds: number) => metrics.observeDhcpAck(seconds) } : {}),
        dhcpAcked: (ack) => { acks.record(ack); journalAppend(ack); },
        ...(probes === null ? {} : { vipFailoverRelease: (startedMono: number) => probes.onFailoverRelease(startedMono) }),
      },
    };
    for (const definition of serviceDefinitions) {
      if (!definition.enabled(config)) {
        const why = serviceOffWords(definition, config);
        for (const path of definition.apiPaths ?? []) control.unavailable(path, why);
        continue;
      }
      const service = await definition.start({ ...context, log: log.child({ service: definition.name }) }).catch((error: unknown) => {
        throw bindError(definition.name, definition.configBlock ?? definition.name, error) ?? error;
      });
      running.push(service);
      if (service.routes) control.routes(withFailoverRecord(service.routes, tracker, clock, (ok) => probes?.onFailoverReply(ok)));
      log.info({ event: 'service.started', service: service.name, listening: service.status().listening }, `${service.name} started`);
    }

    const reservations = (config.dhcp?.subnets ?? []).flatMap((s) => s.reservations);
    const profiles = (): ReturnType<typeof profilesKnownHere> => profilesKnownHere(config);
    control.routes(nodeRoutes(state, reservations, clock, profiles));
    const operatorRecords = function* (): Iterable<string> { for (const r of state.fsm.records()) yield r.name; };
    control.routes(inventoryRoutes({ state, clock, reservations, profiles, context: () => inventoryContext(config, operatorRecords) }));
    control.routes(powerRoutes({ state, config: config.power, ...(power === undefined ? {} : { runner: power }), log: log.child({ service: 'power' }), wallMs: () => clock.wallMs(), recordBoot }));
    if (config.node.role !== 'witness' && (config.nodes?.length ?? 0) > 0) {
      seeder = startInventorySeeder({ state, nodes: config.nodes ?? [], log: log.child({ service: 'inventory' }), context: () => ({ ...inventoryContext(config, operatorRecords), leaseHolder: leaseHolderOf(state.fsm) }) });
    }
    control.route('GET /v1/status', async () => {
      // An operator's ask shows the state hash: worked out in slices first (Fsm.hashInSlices), in
      // one go only if the state changed meanwhile.
      await state.fsm.hashInSlices();
      const cluster = state.status();
      if (cluster['stateHash'] === null) cluster['stateHash'] = state.fsm.hash();
      return {
      status: 200,
      body: {
        node: config.node.name,
        role: config.node.role,
        version: VERSION,
        pid: process.pid,
        startedAt: new Date(startedWall).toISOString(),
        configHash: hash,
        configFile: options.configFile ?? null,
        // Monotonic: a wall-clock step back made it negative.
        uptimeSeconds: Math.round((clock.monotonicMs() - startedMono) / 1000),
        clock: wallSteps.report(clock.monotonicMs()),
        cluster,
        members: memberRows(memberNames, localReport(), members.members()),
        ackAudit: acks.summary(),
        warnings: configWarnings(config),
        control: control.status(),
        services: Object.fromEntries(running.map((s) => [s.name, s.status()])),
        memory: memoryStatus(running),
      },
      };
    });
    control.route('POST /v1/raft/snapshot', async () => {
      // `lanctl raft snapshot`: this member's own log (a node without one has nothing to snapshot).
      const raft = state as Partial<RaftStateLog>;
      if (raft.snapshotNow === undefined) return { status: 409, body: { error: 'this node keeps no Raft log of its own: nothing to snapshot' } };
      try {
        const taken = await raft.snapshotNow.call(state);
        log.info({ event: 'raft.snapshot_asked', ...taken }, taken.taken ? `snapshot at index ${taken.index} taken on an operator's ask` : `snapshot asked: already at the applied index ${taken.index}`);
        return { status: 200, body: taken };
      } catch (error) {
        return { status: 503, body: { error: `no snapshot taken: ${errorMessage(error)}` } };
      }
    });
    ops = { config, state, control, services: () => running, clock, log: log.child({ service: 'http' }), version: VERSION, configHash: hash, tracker, metrics, members, localReport };
    control.routes(opsRoutes(ops));
    await control.listen();
    if (config.control !== undefined) await listenRemoteControl(control, config, log);
    http = await startOpsHttp(ops);
  } catch (error) {
    await stopAll();
    throw error;
  }

  for (const warning of [...configWarnings(config), ...(config.power === undefined ? [] : missingPowerPrograms(config.power))]) log.warn({ event: 'config.warning' }, warning);
  systemd = systemdReady(log);
  log.info({ event: 'daemon.ready', socket: config.node.controlSocket, services: running.map((s) => s.name), ...(http ? { http: `http://${http.address}/` } : {}) }, `lanha ${VERSION} ready`);

  let stopped: Promise<void> | undefined;
  return {
    config,
    state,
    services: running,
    control,
    get http() { return http; },
    stop: () => (stopped ??= stopAll().then(() => {
      const report = steps.report();
      log.info({ event: 'daemon.stopped', stopMs: report.totalMs, steps: report.done, ...(report.running.length > 0 ? { unfinished: report.running } : {}) },
        `lanha stopped in ${report.totalMs} ms (${describeStop(report)})`);
    })),
    stopReport: () => steps.report(),
  };
}

/** The `control:` listener: the control API over mutual TLS with this member's certificate (config check made sure cluster.tls is set). */
async function listenRemoteControl(control: ControlServer, config: LanhaConfig, log: Logger): Promise<void> {
  const remote = config.control!;
  const read = clusterTlsMaterial(config.cluster!, config.node.name, Date.now());
  if (!read.ok) throw new LanhaError('config-invalid', `the remote control listener (control:) needs cluster.tls, whose files are not usable:\n${formatTlsProblems(read.problems)}`, ExitCode.config);
  const address = await control.listenRemote(remote, read.material).catch((error: unknown) => {
    throw bindError('the remote control listener', 'control.listen', error) ?? error;
  });
  log.info({ event: 'control.remote_listening', address, operators: remote.operators ?? 'any the cluster CA signed' }, `remote control (mutual TLS) on ${address}`);
}

/** The ACK journal, or null (with a warning) when the state directory cannot hold it. */
function openAckJournal(path: string, capacity: number, log: Logger): AckJournal | null {
  try {
    return AckJournal.open(path, capacity);
  } catch (error) {
    log.warn({ event: 'dhcp.ack.journal_failed', path, err: errorMessage(error) }, `the ACK journal ${path} cannot be opened (${errorMessage(error)}); the audit keeps its ring in memory only`);
    return null;
  }
}

/** Wraps POST /v1/failover so the status page and /metrics remember the last measured gap. */
/** Why a service does not run on this node, for requests to its API paths. */
export function serviceOffWords(definition: ServiceDefinition, config: LanhaConfig): string {
  const block = definition.configBlock ?? definition.name;
  const off = `the ${definition.name} service does not run on ${config.node.name}`;
  // A witness may not have the service blocks at all: "add one" would send the operator to a config it refuses.
  if (config.node.role === 'witness') {
    const servers = (config.cluster?.members ?? []).filter((m) => m.role !== 'witness').map((m) => m.name);
    return `${off}: a witness runs no services; ask a LAN-service member${servers.length > 0 ? ` (${servers.join(', ')})` : ''}`;
  }
  return `${off}: its config has no ${block}: block (add one and restart the daemon, or ask a member that runs it)`;
}

function withFailoverRecord(routes: ApiRoutes, tracker: OpsTracker, clock: Clock, done: (ok: boolean) => void): ApiRoutes {
  const failover = routes['POST /v1/failover'];
  if (failover === undefined) return routes;
  return {
    ...routes,
    'POST /v1/failover': async (request) => {
      const reply = await failover(request);
      if (reply.status === 200 && typeof reply.body === 'object' && reply.body !== null) tracker.failover(reply.body as Record<string, unknown>, clock.wallMs());
      done(reply.status === 200);
      return reply;
    },
  };
}

/**
 * The answer to SIGHUP (`systemctl reload lanha`): the config file is read and checked again and
 * the log says whether it is invalid (the error, with its key path), the same as what runs, or
 * valid and different, naming the changed settings: lanha applies its config at start, so those
 * need a restart. Nothing running changes. Without a handler, SIGHUP would end the daemon, and
 * systemd counts a SIGHUP death as clean: Restart=on-failure would not start it again. The file is
 * read and checked in a child process of its own (config/load-off-loop.ts), never on the event loop.
 */
export async function reviewConfigFile(file: string, running: LanhaConfig, log: Logger, options: OffLoopOptions = {}): Promise<'invalid' | 'unchanged' | 'changed'> {
  const loaded = await loadConfigOffLoop(file, options);
  if (!loaded.ok) {
    log.warn({ event: 'daemon.reload_invalid', file, err: loaded.message }, `SIGHUP: ${file} is not valid; the running config stays: ${loaded.message}`);
    return 'invalid';
  }
  // The peer links' TLS files are read at start only: a bad one copied in (a rotation step, a
  // renewal) is said now, before the restart that would be refused for it.
  const cluster = loaded.config.cluster;
  if (cluster?.tls !== undefined) {
    const tls = clusterTlsMaterial(cluster, loaded.config.node.name, Date.now());
    if (!tls.ok) {
      log.warn({ event: 'daemon.reload_tls_unusable', file, problems: tls.problems },
        `SIGHUP: the peer links' TLS files are not usable now; the running links keep what they read at start, but a restart would be refused:\n${formatTlsProblems(tls.problems)}`);
    }
  }
  const changed = configChanges(running, loaded.config);
  if (changed.length === 0) {
    log.info({ event: 'daemon.reload_unchanged', file }, `SIGHUP: ${file} is valid and the same as the running config`);
    return 'unchanged';
  }
  log.warn({ event: 'daemon.reload_needs_restart', file, changed },
    `SIGHUP: ${file} is valid and differs from the running config in ${changed.join(', ')}; lanha applies its config at start: restart it to apply (systemctl restart lanha)`);
  return 'changed';
}

/**
 * A SIGHUP handler that runs one review at a time: signals during a review make one more review
 * after it (the file may have changed again), never a thread per signal.
 */
export function hangupReviewer(review: () => Promise<unknown>): () => void {
  let running = false;
  let again = false;
  const run = (): void => {
    running = true;
    void review().catch(() => undefined).finally(() => {
      running = false;
      if (again) { again = false; run(); }
    });
  };
  return () => { if (running) again = true; else run(); };
}

/** How long a stopped daemon's process may take to end by itself before it exits anyway. */
const EXIT_GRACE_MS = 2000;
/** The longest a stop may take (SIGTERM to exit); systemd's TimeoutStopSec is above it. */
const STOP_LIMIT_MS = 5000;

/** Starts the daemon and runs it until SIGTERM/SIGINT (SIGHUP: reviewConfigFile); returns the exit code. */
export async function runDaemon(config: LanhaConfig, options: { logFormat?: string | undefined; configFile?: string | undefined; early?: EarlySignals } = {}): Promise<number> {
  const format = chooseLogFormat(options.logFormat, process.stdout.isTTY === true);
  process.env['LANHA_LOG_FORMAT'] = format; // DNS worker processes inherit it
  const log = createLogger({ level: config.node.logLevel, node: config.node.name, format });
  watchPauses();
  let daemon: Daemon;
  try {
    daemon = await startDaemon(config, { log, configFile: options.configFile === undefined ? undefined : resolve(options.configFile) });
  } catch (error) {
    log.fatal({ event: 'daemon.start_failed', err: error }, `lanha could not start: ${errorMessage(error)}`);
    process.stderr.write(`lanctl serve: could not start: ${errorMessage(error)}\n`);
    // A refusal that is the config's (exit status 2, e.g. unusable cluster.tls files) keeps its status: systemd does not restart into it.
    return error instanceof LanhaError && error.exitCode === ExitCode.config ? ExitCode.config : 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (code: number): void => {
      if (stopping) return;
      stopping = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.off('SIGHUP', onHangup);
      const force = setTimeout(() => {
        const report = daemon.stopReport();
        // The commands the services still wait for (`ip addr del`, `arping`) do not outlive the daemon.
        const killed = killRunningChildren();
        const killedText = killed.length === 0 ? '' : `; killed ${killed.map((c) => `${c.command} (pid ${c.pid}, ${c.ms} ms)`).join(', ')}`;
        log.error({ event: 'daemon.stop_timeout', unfinished: report.running, steps: report.done, late: report.late, killed },
          `stopping took over ${STOP_LIMIT_MS / 1000} s; exiting anyway (${describeStop(report)}${killedText})`);
        finish(1);
      }, STOP_LIMIT_MS);
      force.unref();
      daemon.stop().then(() => { clearTimeout(force); finish(code); }, () => { clearTimeout(force); finish(1); });
    };
    // Stopped (or given up on), the process ends once nothing holds its event loop. Whatever still
    // does (a peer's socket that never closes, a stop left hanging, a child's pipe) must not keep a
    // stopped daemon alive until the service manager's SIGKILL: after EXIT_GRACE_MS it exits anyway,
    // naming what held it.
    let finished = false;
    const finish = (exitCode: number): void => {
      if (finished) return;
      finished = true;
      resolve(exitCode);
      setTimeout(() => {
        const held = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
        log.warn({ event: 'daemon.exit_held', resources: held }, `stopped, but the process was still held ${EXIT_GRACE_MS} ms later (${held.join(', ') || 'nothing named'}); exiting`);
        process.exit(exitCode);
      }, EXIT_GRACE_MS).unref();
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ event: 'daemon.signal', signal }, `received ${signal}, stopping`);
      stop(0);
    };
    const configFile = options.configFile;
    const onHangup = configFile === undefined
      ? (): void => { log.info({ event: 'daemon.signal', signal: 'SIGHUP' }, 'received SIGHUP; no config file to read again'); }
      : hangupReviewer(() => reviewConfigFile(configFile, config, log));
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', onHangup);
    // What came while starting (bin/early-signals.ts) is acted on now.
    const early = options.early;
    early?.release();
    if (early?.stop) {
      log.info({ event: 'daemon.signal', signal: early.stop }, `received ${early.stop} while starting, stopping`);
      stop(0);
    } else if (early?.hangup === true) {
      onHangup();
    }
    // The replicated state's storage failed for good (cluster/raft/README.md, "Failures"): exit
    // non-zero so that the service manager starts lanha again from what is on the disk
    // (systemd/lanha.service: Restart=on-failure).
    daemon.state.onFatal?.((error) => {
      log.fatal({ event: 'daemon.storage_broken', err: error }, `stopping with exit status 1 for the service manager to restart lanha: the storage of the replicated state failed: ${errorMessage(error)}`);
      process.stderr.write(`lanctl serve: the storage of the replicated state failed, exiting to be restarted: ${errorMessage(error)}\n`);
      stop(1);
    });
  });
}

/**
 * The daemon's memory: this process (TFTP worker threads are inside it) and the child processes
 * services run (DNS UDP workers), as each last reported; `rssMiB` sums them (pages shared between
 * them, like the node binary's, are counted in each).
 */
function memoryStatus(running: readonly RunningService[]): { rssMiB: number; processes: ProcessMemory[] } {
  const processes = [processMemory('daemon'), ...running.flatMap((s) => s.processes?.() ?? [])];
  return { rssMiB: Math.round(processes.reduce((n, p) => n + p.rssMiB, 0) * 10) / 10, processes };
}
