import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync, type Dirent } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import type { StateLog } from '../state-log.js';
import type { Command } from '../commands.js';
import { proposable } from '../apply-level.js';
import type { Job } from '../rootfs-state.js';
import type { DeployConfig } from './config.js';
import { generationDir, isFakeSuper, treeBytes, verifyGeneration } from './store.js';
import { describeChanges, type ManifestChange } from './manifest.js';
import { BoundedOutput, CONTROL_IDLE_MS, PARTIAL_EXITS, PREPARE_SCRIPT, SWITCH_INSIDE_SCRIPT, SWITCH_SCRIPT, carryFilters, controlPathFor, describeFailure, fingerprint, nodeScriptCommand, parseHostKey, parsePrepared, knownHostsFile, masterArgs, parseProgress2, prepareArgs, parseStats, rootfsRsyncArgs, splitProgress, sshArgs, stagingPlans, type Progress2, type SshOptions, type StagingPlan } from './rsync.js';
import { hasOverlayDir, hostsFromTargets, overlayFiles, type ResolvedTarget, type TargetEntry } from './targets.js';
import { HostKeyMismatch, connectPinned, disconnect, fetchHostKey, pushToNode, stageSources, type PushFile } from './push.js';
import type { Client } from 'ssh2';

// Deploy jobs, run by the leader: each is a `deploy.job.start` entry, per-node `deploy.job.node`
// entries (running with bytes at most every PROGRESS_LOG_MS, then the result) and a
// `deploy.job.end`. The rsync children belong to this runner; cancel() and stop() end them by PID.
// A job the log shows running that no runner here owns (the leader that ran it died or lost
// leadership) is marked `interrupted` by the new leader; resume() completes it.

const PROGRESS_LOG_MS = 5000;
/** rsync exits that mean the connection went away (10 socket, 12 stream, 255 ssh): the node's ssh master may say why. */
const CONNECTION_EXITS = new Set([10, 12, 255]);
/** How long a failed node's result waits for its ssh master to exit and say why. */
const MASTER_WORDS_MS = 3000;
/** Waiters on a job (`lanctl deploy` following it) hear of live progress at most this often; of log entries at once. */
const LIVE_NOTIFY_MS = 250;
/** Finished jobs whose phase timings are kept in memory (`deploy jobs JOB --json`, bench:deploy). */
const TIMINGS_KEPT = 20;
/** Why a cancelled job's nodes stopped, unless the daemon or a lost leadership stopped it. */
const STOPPED_BY_OPERATOR = 'the job was stopped (`lanctl deploy cancel`, or Ctrl-C on the lanctl following it)';
/** How long a job waits for a node's host key when it checks a kept ssh connection (ssh's ConnectTimeout). */
const HOST_KEY_CHECK_MS = 10_000;
/** Characters kept of the start and of the end of an rsync child's stdout and of its stderr. */
const OUTPUT_KEPT = 64 * 1024;
/** Longest a node may take to prepare a staging directory or to switch it in (carrying excluded paths, removing the old tree). */
const NODE_SCRIPT_MS = 300_000;

/** Where a job's time went, per phase (ms, this leader's monotonic clock). */
export interface JobTimings {
  /** The leader's check of its copy of the generation against the manifest (rootfs jobs). */
  checkMs?: number;
  /** Until the `deploy.job.start` entry committed. */
  startEntryMs?: number;
  nodes: Record<string, NodeTimings>;
  /** From the request to the `deploy.job.end` entry committed. */
  totalMs?: number;
}

export interface NodeTimings {
  /** Writing the node's overlay tree. */
  overlayMs?: number;
  /** rsync (or the SFTP push) from spawn to exit, ssh login included. */
  transferMs?: number;
  /** True when the node's ssh master from an earlier job was still up (no new login). */
  sshReused?: boolean;
  /** Asking the node for its host key again before a kept ssh master is used (a key exchange, no login). */
  hostKeyCheckMs?: number;
  /** The leader's check of its copy against the manifest after rsync exited 0 (a stat walk while unchanged). */
  storeCheckMs?: number;
  /** Preparing the node's staging directory (and carrying excluded paths into it) before the transfer. */
  prepareMs?: number;
  /** Flushing the staged tree and renaming it into place, and removing the old one. */
  switchMs?: number;
  /**
   * Where the sync wrote: a staging directory switched in by a rename (`staging`), one inside a
   * destination that is a mount point whose top-level entries were switched (`inside`), or the live
   * tree itself (`in-place`).
   */
  mode?: 'staging' | 'inside' | 'in-place';
  /** Committing the node's result entries after the transfer. */
  entriesMs?: number;
}

export interface LiveProgress {
  node: string;
  phase: 'sync' | 'overlay';
  progress?: Progress2;
  at: number;
}

export interface JobContext {
  config: DeployConfig;
  /** Every node deploy knows (for the hosts file). */
  targets: () => TargetEntry[];
  clusterId: string;
  member: string;
  stateDir: string;
  state: StateLog;
  log: Logger;
  clock: Clock;
}

/** A job's hold on a node's ssh master. */
interface MasterHandle {
  path: string;
  /** Up from an earlier job (its key checked again for this one). */
  reused: boolean;
  release(): void;
  lastWords(ms: number): Promise<string>;
}

interface ActiveJob {
  id: string;
  /** The job's run (0, then one more per resume): every node and end entry carries it. */
  run: number;
  /** Monotonic ms when the request arrived. */
  t0: number;
  timings: JobTimings;
  children: Map<string, ChildProcess>;
  /** ssh2 connections of a push job, torn down on cancel. */
  connections: Map<string, Client>;
  cancelled: boolean;
  /** Who stopped it, for the nodes' results ("the job was stopped (`lanctl deploy cancel` ...)"). */
  stoppedBecause?: string;
  /** Rejects when the job is cancelled: SFTP calls in flight on a torn-down connection may never call back. */
  cancelSignal: Promise<never>;
  cancelNow: () => void;
  live: Map<string, LiveProgress>;
  done: Promise<void>;
}

export class JobRunner {
  #ctx: JobContext;
  #active = new Map<string, ActiveJob>();
  /**
   * Jobs whose work directory (node.stateDir/deploy/<job>/) is in use here: from the request that
   * starts or resumes them (a push stages its sources before its start entry) until the run ended.
   */
  #busy = new Set<string>();
  /**
   * The job each node is in, from the request that starts or resumes it until that run ends: a node
   * is in one job at a time. Two rsyncs into one tree share its `.~tmp~` holding directories and
   * each removes them under the other (both ended "failed" with rename errors, the tree a mix), and a
   * push and a sync would race the same way. Set before the first await, so two requests that arrive
   * together cannot both pass.
   */
  #nodeJobs = new Map<string, string>();
  #timings = new Map<string, JobTimings>();
  #versions = new Map<string, number>();
  #waiters = new Map<string, Set<() => void>>();
  #lastLiveNotify = new Map<string, number>();
  /** The ssh master per node (by control socket): children of this process, closed when idle or at stop. */
  #masters = new Map<string, SshMaster>();
  /** The store check running per generation (#checkStore), with the monotonic ms it started. */
  #storeChecks = new Map<string, { started: number; result: Promise<ManifestChange[]> }>();

  constructor(ctx: JobContext) {
    this.#ctx = ctx;
  }

  /** True while a run of the job is being set up or running on this member. */
  isActive(id: string): boolean { return this.#active.has(id) || this.#busy.has(id); }

  /** The phase timings of a job run here (kept for the last TIMINGS_KEPT jobs). */
  timings(id: string): JobTimings | undefined {
    return this.#active.get(id)?.timings ?? this.#timings.get(id);
  }

  /** A number that grows whenever the job changes (a log entry, live progress): what a follower waits on. */
  version(id: string): number { return this.#versions.get(id) ?? 0; }

  /** Tells the job's waiters it changed (service.ts calls it for every `deploy.job.*` entry applied). */
  changed(id: string): void {
    this.#versions.set(id, this.version(id) + 1);
    const waiters = this.#waiters.get(id);
    if (!waiters) return;
    this.#waiters.delete(id);
    for (const wake of waiters) wake();
  }

  /** Resolves when the job's version passes `after`, or after `waitMs`; returns the version then. */
  async waitChange(id: string, after: number, waitMs: number): Promise<number> {
    if (this.version(id) !== after) return this.version(id);
    let set = this.#waiters.get(id);
    if (!set) this.#waiters.set(id, set = new Set());
    const waiters = set;
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(timer); waiters.delete(done); resolve(); };
      const timer = setTimeout(done, waitMs);
      waiters.add(done);
    });
    if (this.#waiters.get(id)?.size === 0) this.#waiters.delete(id);
    return this.version(id);
  }

  #liveChanged(id: string): void {
    const now = this.#ctx.clock.monotonicMs();
    if (now - (this.#lastLiveNotify.get(id) ?? -Infinity) < LIVE_NOTIFY_MS) return;
    this.#lastLiveNotify.set(id, now);
    this.changed(id);
  }

  live(id: string): LiveProgress[] {
    return [...(this.#active.get(id)?.live.values() ?? [])];
  }

  /** Starts a rootfs job (entries first, then the work in the background); returns the job id. */
  async startRootfs(generation: string, targets: readonly ResolvedTarget[], dryRun: boolean, request: { t0: number; checkMs?: number } = { t0: this.#ctx.clock.monotonicMs() }): Promise<string> {
    const id = newJobId(this.#ctx.clock);
    await this.#claim(id, targets, () => this.#proposeStart({ type: 'deploy.job.start', job: id, kind: 'rootfs', member: this.#ctx.member, nodes: targets.map((t) => t.node), generation, dryRun }));
    const timings: JobTimings = { nodes: {}, startEntryMs: this.#since(request.t0), ...(request.checkMs !== undefined ? { checkMs: request.checkMs } : {}) };
    this.#run(id, 0, targets, dryRun, request.t0, timings);
    return id;
  }

  #since(t0: number): number {
    return Math.round(this.#ctx.clock.monotonicMs() - t0);
  }

  /** Resumes an interrupted or failed rootfs job: the nodes not done run again. */
  async resume(job: Job, targets: readonly ResolvedTarget[]): Promise<void> {
    const t0 = this.#ctx.clock.monotonicMs();
    const run = (job.run ?? 0) + 1;
    const pending = targets.filter((t) => job.nodes.some((n) => n.name === t.node && n.state !== 'done'));
    await this.#claim(job.id, pending, () => this.#proposeStart({ type: 'deploy.job.resume', job: job.id, member: this.#ctx.member, run }, pending.map((t) => t.node)));
    this.#run(job.id, run, pending, job.dryRun, t0, { nodes: {}, startEntryMs: this.#since(t0) });
  }

  /**
   * Stops a job's children by PID; the job ends `interrupted`, each node stopped mid-sync saying
   * `why` (who stopped it). Resolves when it has ended.
   */
  async cancel(id: string, why = STOPPED_BY_OPERATOR): Promise<boolean> {
    const active = this.#active.get(id);
    if (!active) return false;
    if (!active.cancelled) active.stoppedBecause = why;
    active.cancelled = true;
    for (const child of active.children.values()) stopProcess(child);
    active.cancelNow();
    for (const connection of active.connections.values()) disconnect(connection);
    await active.done;
    return true;
  }

  /** Daemon stop: every running job ends `interrupted` (if the log still takes entries). */
  async stop(): Promise<void> {
    await Promise.all([...this.#active.keys()].map((id) => this.cancel(id, 'the daemon running the job stopped')));
    await Promise.all([...this.#masters.values()].map((m) => m.close()));
  }

  /**
   * Daemon start: ends the ssh masters a daemon that died left running (they are its children, but a
   * SIGKILL or an OOM kill does not take them along; each would hold its connection open for good),
   * through their control sockets (`ssh -O exit`), and removes the sockets. Nothing here uses one yet.
   */
  async endStaleMasters(): Promise<void> {
    const dir = join(this.#ctx.stateDir, 'deploy', 'ssh');
    await Promise.all(readdirSyncSafe(dir).map(async (entry) => {
      const path = join(dir, entry.name);
      const code = await runBounded('ssh', ['-O', 'exit', '-o', 'BatchMode=yes', '-o', `ControlPath=${path}`, 'lanha-stale-master'], 5000);
      rmSync(path, { force: true, recursive: true });
      if (code === 0) this.#ctx.log.info({ event: 'deploy.ssh.stale_master', path }, `ended the ssh master a stopped daemon left running (control socket ${path})`);
    }));
  }

  /**
   * This member no longer leads (a failover, `lanctl failover`, a partition that outlasted the
   * election timeout): its jobs' rsync children and ssh2
   * connections are stopped. The new leader marks those jobs interrupted within a second and a
   * resume there runs them again; a runner left going here would sync the same nodes at the same
   * time as that resume, from another member, into the same holding directories. Returns the jobs stopped.
   */
  async stopIfFollower(): Promise<string[]> {
    // The role, not isLeader(): a lease that lapsed for a moment on a loaded machine is no failover.
    if (this.#active.size === 0 || this.#ctx.state.status().role === 'leader') return [];
    const ids = [...this.#active.keys()];
    for (const id of ids) this.#ctx.log.warn({ event: 'deploy.job.leadership_lost', job: id }, `this member no longer leads: stopping deploy job ${id} here; the new leader shows it interrupted, and \`lanctl deploy resume ${id}\` there completes it`);
    await Promise.all(ids.map((id) => this.cancel(id, 'the member running the job stopped leading')));
    return ids;
  }

  /** Jobs the log shows running that nobody here runs: a failover or restart cut them off. */
  async markOrphans(): Promise<string[]> {
    if (!this.#ctx.state.isLeader()) return [];
    const orphans = this.#ctx.state.fsm.rootfs.jobs().filter((j) => j.state === 'running' && !this.isActive(j.id));
    for (const job of orphans) {
      this.#ctx.log.warn({ event: 'deploy.job.orphaned', job: job.id, member: job.member }, `deploy job ${job.id} was cut off (its leader ${job.member} stopped); marking it interrupted — \`lanctl deploy resume ${job.id}\` completes it`);
      await this.#propose({ type: 'deploy.job.end', job: job.id, state: 'interrupted', run: job.run ?? 0 }).catch(() => undefined);
    }
    return orphans.map((j) => j.id);
  }

  #run(id: string, run: number, targets: readonly ResolvedTarget[], dryRun: boolean, t0: number, timings: JobTimings): void {
    const active = this.#activate(id, run, t0, timings);
    active.done = this.#work(active, targets, (a, t, kh, wd) => this.#syncNode(a, t, this.#ctx.state.fsm.rootfs.job(id)!.generation!, kh, wd, dryRun)).catch((error) => {
      this.#ctx.log.error({ event: 'deploy.job.crashed', job: id, err: error }, `deploy job ${id} failed: ${errorMessage(error)}`);
    }).finally(() => this.#finish(active));
  }

  #activate(id: string, run: number, t0: number, timings: JobTimings): ActiveJob {
    let cancelNow = (): void => undefined;
    const cancelSignal = new Promise<never>((_resolve, reject) => { cancelNow = () => reject(new LanhaError('io', 'the job was stopped')); });
    cancelSignal.catch(() => undefined);
    const active: ActiveJob = { id, run, t0, timings, children: new Map(), connections: new Map(), cancelled: false, live: new Map(), done: Promise.resolve(), cancelSignal, cancelNow };
    this.#active.set(id, active);
    return active;
  }

  #finish(active: ActiveJob): void {
    this.#active.delete(active.id);
    this.#busy.delete(active.id);
    this.#releaseNodes(active.id);
    this.#lastLiveNotify.delete(active.id);
    this.#timings.set(active.id, active.timings);
    while (this.#timings.size > TIMINGS_KEPT) this.#timings.delete(this.#timings.keys().next().value!);
    while (this.#versions.size > TIMINGS_KEPT * 5) this.#versions.delete(this.#versions.keys().next().value!);
    this.changed(active.id);
  }

  /**
   * Starts a push job: the sources (paths on this member) to every target over ssh2 (SFTP), then
   * `then` on each. Each source is read once, into the job's own copy: what the start entry records
   * (name, path, sha256) and what every node gets are the same bytes.
   */
  async startPush(sources: readonly string[], targets: readonly ResolvedTarget[], dir: string, then: string | undefined, privateKey: Buffer): Promise<string> {
    const id = newJobId(this.#ctx.clock);
    const t0 = this.#ctx.clock.monotonicMs();
    const files = await this.#claim(id, targets, async () => {
      const staged = await stageSources(sources, this.#stageDir(id));
      await this.#proposeStart({
        type: 'deploy.job.start', job: id, kind: 'push', member: this.#ctx.member, nodes: targets.map((t) => t.node),
        files: staged.map((f) => f.name), sources: staged.map((f) => f.source), sha256: staged.map((f) => f.sha256), dest: dir, ...(then !== undefined ? { then } : {}),
      });
      return staged;
    });
    this.#runPush(this.#activate(id, 0, t0, { nodes: {}, startEntryMs: this.#since(t0) }), files, targets, dir, then, privateKey, new Map());
    return id;
  }

  /**
   * Resumes an interrupted or failed push job: each node not done gets only the files not yet in
   * place on it (the log's `installed`), then `then`. The sources are read once more, into the
   * job's copy, and refused when that read differs from what the job recorded: the nodes not done
   * must get the bytes the others got, and they get exactly the bytes this read checked.
   */
  async resumePush(job: Job, targets: readonly ResolvedTarget[], privateKey: Buffer): Promise<void> {
    const t0 = this.#ctx.clock.monotonicMs();
    const sources = job.sources ?? [];
    if (sources.length === 0 || sources.length !== (job.files ?? []).length) {
      throw new LanhaError('usage', `push job ${job.id} does not name its source files (started by an older version); start a new push`);
    }
    const run = (job.run ?? 0) + 1;
    const pending = targets.filter((t) => job.nodes.some((n) => n.name === t.node && n.state !== 'done'));
    const files = await this.#claim(job.id, pending, async () => {
      const staged = await stageSources(sources, this.#stageDir(job.id)).catch((error) => { throw new LanhaError('usage', `cannot resume push job ${job.id}: ${errorMessage(error)}; start a new push`); });
      const changed = staged.find((f, i) => job.sha256?.[i] !== undefined && f.sha256 !== job.sha256[i]);
      if (changed !== undefined) {
        const recorded = job.sha256![staged.indexOf(changed)]!;
        throw new LanhaError('usage', `cannot resume push job ${job.id}: ${changed.source} changed since the job started (sha256 ${changed.sha256.slice(0, 12)}, the job sent ${recorded.slice(0, 12)}); start a new push so every node gets the same file`);
      }
      await this.#proposeStart({ type: 'deploy.job.resume', job: job.id, member: this.#ctx.member, run }, pending.map((t) => t.node));
      return staged;
    });
    const installed = new Map(job.nodes.map((n) => [n.name, new Set(n.installed ?? [])]));
    this.#runPush(this.#activate(job.id, run, t0, { nodes: {}, startEntryMs: this.#since(t0) }), files, pending, job.dest ?? '/', job.then, privateKey, installed);
  }

  /**
   * Marks the job's work directory in use while `setup` (staging, the start or resume entry) runs;
   * when setup fails the directory goes and the claim ends. On success the run keeps the claim
   * until #work ends it.
   */
  async #claim<T>(id: string, targets: readonly ResolvedTarget[], setup: () => Promise<T>): Promise<T> {
    if (this.isActive(id)) throw new LanhaError('usage', `job ${id} is already running here`);
    this.#claimNodes(id, targets.map((t) => t.node));
    this.#busy.add(id);
    try {
      return await setup();
    } catch (error) {
      this.#busy.delete(id);
      this.#releaseNodes(id);
      try { rmSync(this.#workDir(id), { recursive: true, force: true }); } catch { /* the next sweep removes it */ }
      throw error;
    }
  }

  /** Puts `nodes` in job `id`, or throws naming each node's job when one is in another job. */
  #claimNodes(id: string, nodes: readonly string[]): void {
    const byJob = new Map<string, string[]>();
    for (const node of nodes) {
      const holder = this.#nodeJobs.get(node);
      if (holder !== undefined && holder !== id) byJob.set(holder, [...(byJob.get(holder) ?? []), node]);
    }
    if (byJob.size > 0) throw new LanhaError('conflict', nodesInJobsMessage(byJob));
    for (const node of nodes) this.#nodeJobs.set(node, id);
  }

  #releaseNodes(id: string): void {
    for (const [node, holder] of this.#nodeJobs) if (holder === id) this.#nodeJobs.delete(node);
  }

  #workDir(id: string): string {
    return join(this.#ctx.stateDir, 'deploy', id);
  }

  /**
   * Removes the work directories (node.stateDir/deploy/<job>/: a push job's copy of its sources, the
   * pinned known_hosts, the nodes' overlays) that no run here uses: a daemon that stopped mid-job
   * left them, or their removal failed. Run at daemon start, when nothing runs yet, and after each
   * run ends. A directory is needed only while a run of its job is set up or running on this member
   * (a resume reads the sources again into a fresh copy and checks them against the recorded sha256),
   * so an ended job, a job cut off by a crash, and a job the replicated state no longer holds (it keeps
   * the last 20) all lose theirs; a job running here never does. Logs each one with its size.
   */
  sweepWorkDirs(): Array<{ job: string; bytes: number; reason: string }> {
    const root = join(this.#ctx.stateDir, 'deploy');
    const swept: Array<{ job: string; bytes: number; reason: string }> = [];
    for (const entry of readdirSyncSafe(root)) {
      const reason = leftoverReason(entry.name, this.isActive(entry.name), this.#ctx.state.fsm.rootfs.job(entry.name)?.state);
      if (reason === undefined) continue;
      const path = join(root, entry.name);
      const bytes = treeBytes(path);
      try {
        rmSync(path, { recursive: true, force: true });
      } catch (error) {
        this.#ctx.log.warn({ event: 'deploy.workdir.unremovable', job: entry.name, path, err: error }, `cannot remove ${path}, the work directory of deploy job ${entry.name} (${reason}): ${errorMessage(error)}; remove it by hand`);
        continue;
      }
      this.#ctx.log.info({ event: 'deploy.workdir.swept', job: entry.name, path, bytes, reason }, `removed ${path} (${bytes} bytes), the work directory of deploy job ${entry.name}: ${reason}`);
      swept.push({ job: entry.name, bytes, reason });
    }
    return swept;
  }

  /** Where a push job's copies of its sources live while it runs (inside the job's work directory, removed at its end). */
  #stageDir(id: string): string {
    return join(this.#workDir(id), 'files');
  }

  #runPush(active: ActiveJob, files: readonly PushFile[], targets: readonly ResolvedTarget[], dir: string, then: string | undefined, privateKey: Buffer, installedBefore: ReadonlyMap<string, ReadonlySet<string>>): void {
    const id = active.id;
    const total = files.reduce((sum, f) => sum + f.size, 0);
    active.done = this.#work(active, targets, async (a, target) => {
      const installed = [...(installedBefore.get(target.node) ?? [])].filter((name) => files.some((f) => f.name === name));
      const toSend = files.filter((f) => !installed.includes(f.name));
      const already = files.filter((f) => installed.includes(f.name)).reduce((sum, f) => sum + f.size, 0);
      let sent = 0;
      const record = { job: id, node: target.node, total, run: a.run } as const;
      await this.#propose({ type: 'deploy.job.node', ...record, state: 'running', bytes: already, installed: [...installed] }).catch(() => undefined);
      const timing: NodeTimings = a.timings.nodes[target.node] = {};
      const t = this.#ctx.clock.monotonicMs();
      try {
        const connecting = connectPinned(target, target.hostKey, privateKey);
        connecting.then((c) => { if (a.cancelled) disconnect(c); }, () => undefined);
        const client = await Promise.race([connecting, a.cancelSignal]);
        a.connections.set(target.node, client);
        try {
          const onBytes = (bytes: number): void => {
            sent = bytes;
            const done = already + bytes;
            a.live.set(target.node, { node: target.node, phase: 'sync', progress: { bytes: done, percent: total === 0 ? 100 : Math.floor((done * 100) / total), rate: '', eta: '' }, at: this.#ctx.clock.wallMs() });
            this.#liveChanged(id);
          };
          // Each file in place is a log entry: a resume after a failover or Ctrl-C skips it.
          const onInstalled = async (name: string): Promise<void> => {
            installed.push(name);
            // A rename that lands after a cancel is still recorded (the file is in place), without reviving the node.
            await this.#propose({ type: 'deploy.job.node', ...record, state: a.cancelled ? 'interrupted' : 'running', bytes: already + sent, sent, installed: [...installed] }).catch(() => undefined);
          };
          const result = await Promise.race([pushToNode(client, target.node, toSend, dir, then, onBytes, onInstalled), a.cancelSignal]);
          timing.transferMs = this.#since(t);
          if (result.then !== undefined && result.then.code !== 0) {
            const error = `files installed; --then exited ${result.then.code ?? 'by a signal'}: ${result.then.output.trim().split('\n').slice(-2).join(' | ').slice(0, 300)}`;
            await this.#propose({ type: 'deploy.job.node', ...record, state: 'failed', bytes: already + result.bytes, sent: result.bytes, error, installed: [...installed] }).catch(() => undefined);
            return false;
          }
          await this.#propose({ type: 'deploy.job.node', ...record, state: 'done', bytes: already + result.bytes, sent: result.bytes, exit: 0, installed: [...installed] }).catch(() => undefined);
          return true;
        } finally {
          a.connections.delete(target.node);
          client.end();
        }
      } catch (error) {
        const state = a.cancelled ? 'interrupted' : 'failed';
        this.#ctx.log.warn({ event: 'deploy.push.failed', job: id, node: target.node, err: error }, `${target.node}: ${errorMessage(error)}`);
        await this.#propose({ type: 'deploy.job.node', ...record, state, error: errorMessage(error), sent, installed: [...installed] }).catch(() => undefined);
        return false;
      }
    }).catch((error) => {
      this.#ctx.log.error({ event: 'deploy.job.crashed', job: id, err: error }, `deploy job ${id} failed: ${errorMessage(error)}`);
    }).finally(() => this.#finish(active));
  }

  async #work(active: ActiveJob, targets: readonly ResolvedTarget[], perNode: (active: ActiveJob, target: ResolvedTarget, knownHosts: string, workDir: string) => Promise<boolean>): Promise<void> {
    const workDir = this.#workDir(active.id);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    const knownHosts = join(workDir, 'known_hosts');
    writeFileSync(knownHosts, knownHostsFile(targets.map((t) => ({ node: t.node, hostKey: t.hostKey }))), { mode: 0o600 });
    const results = new Map<string, boolean>();
    try {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < targets.length && !active.cancelled) {
          const target = targets[next++]!;
          // One node's unexpected error (its overlay unreadable, a full state disk) is that node's
          // result: the other nodes go on, and the job still gets its end entry.
          results.set(target.node, await perNode(active, target, knownHosts, workDir).catch(async (error: unknown) => {
            this.#ctx.log.error({ event: 'deploy.node.crashed', job: active.id, node: target.node, err: error }, `${target.node}: ${errorMessage(error)}`);
            await this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state: active.cancelled ? 'interrupted' : 'failed', error: errorMessage(error) }).catch(() => undefined);
            return false;
          }));
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.#ctx.config.parallel, targets.length) }, worker));
    } finally {
      this.#busy.delete(active.id);
      try {
        rmSync(workDir, { recursive: true, force: true });
      } catch (error) {
        this.#ctx.log.warn({ event: 'deploy.workdir.unremovable', job: active.id, path: workDir, err: error }, `cannot remove ${workDir}, the work directory of deploy job ${active.id}: ${errorMessage(error)}; the next sweep (after a job ends, at daemon start) tries again`);
      }
      this.sweepWorkDirs();
    }
    const allDone = [...results.values()].every((ok) => ok) && results.size === targets.length;
    const state = active.cancelled ? 'interrupted' : allDone ? 'done' : 'failed';
    this.#ctx.log.info({ event: `deploy.job.${state}`, job: active.id }, `deploy job ${active.id} ${state}`);
    await this.#propose({ type: 'deploy.job.end', job: active.id, state, run: active.run }).catch((error) => {
      this.#ctx.log.warn({ event: 'deploy.job.end_unrecorded', job: active.id, err: error }, `could not record the end of job ${active.id}: ${errorMessage(error)}`);
    });
    active.timings.totalMs = this.#since(active.t0);
  }

  async #syncNode(active: ActiveJob, target: ResolvedTarget, generation: string, knownHosts: string, workDir: string, dryRun: boolean): Promise<boolean> {
    const { config, log } = this.#ctx;
    const timing: NodeTimings = active.timings.nodes[target.node] = {};
    const destination = config.rootfs?.destination ?? '/';
    const direct = { knownHostsFile: knownHosts, ...(config.identityFile !== undefined ? { identityFile: config.identityFile } : {}) };
    // Not awaited: the entry commits while rsync logs in (entries keep their order; `done` waits for it).
    const running = this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state: 'running', bytes: 0 }).catch(() => undefined);
    let t = this.#ctx.clock.monotonicMs();
    let overlay: string;
    try {
      overlay = this.#buildOverlay(target.node, workDir, generationDir(this.#ctx.stateDir, generation));
    } catch (error) {
      await running;
      throw new LanhaError('io', `the overlay of ${target.node} could not be built${hasOverlayDir(config.overlayDir, target.node) ? ` from ${join(config.overlayDir, target.node)}` : ''}: ${errorMessage(error)}; nothing was sent`);
    }
    timing.overlayMs = this.#since(t);
    let lastLogged = this.#ctx.clock.monotonicMs();
    const onProgress = (p: Progress2): void => {
      active.live.set(target.node, { node: target.node, phase: 'sync', progress: p, at: this.#ctx.clock.wallMs() });
      this.#liveChanged(active.id);
      const now = this.#ctx.clock.monotonicMs();
      if (now - lastLogged >= PROGRESS_LOG_MS) {
        lastLogged = now;
        void this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state: 'running', bytes: p.bytes }).catch(() => undefined);
      }
    };
    t = this.#ctx.clock.monotonicMs();
    let master: MasterHandle | undefined;
    try {
      master = await this.#master(target, direct, timing);
    } catch (error) {
      if (!(error instanceof HostKeyMismatch)) throw error;
      await running;
      log.warn({ event: 'deploy.node.failed', job: active.id, node: target.node }, `${target.node}: ${error.message}`);
      await this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state: 'failed', error: error.message, sent: 0 }).catch(() => undefined);
      return false;
    }
    timing.sshReused = master?.reused ?? false;
    const ssh = master === undefined ? direct : { ...direct, controlPath: master.path };
    const exclude = config.rootfs?.exclude ?? [];
    // A dry run compares against the live tree; a sync goes into a staging directory when it can.
    let staging: StagingPlan | undefined;
    if (!dryRun) {
      const t1 = this.#ctx.clock.monotonicMs();
      const prepared = await this.#prepare(active, target, generation, destination, ssh, exclude);
      timing.prepareMs = this.#since(t1);
      if (typeof prepared === 'string') {
        await running;
        log.warn({ event: 'deploy.node.failed', job: active.id, node: target.node }, `${target.node}: ${prepared}`);
        await this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state: active.cancelled ? 'interrupted' : 'failed', error: prepared, sent: 0 }).catch(() => undefined);
        master?.release();
        return false;
      }
      staging = prepared.plan;
      timing.mode = staging === undefined ? 'in-place' : staging.layout === 'inside' ? 'inside' : 'staging';
    }
    const result = await this.#rsync(active, target.node, rootfsRsyncArgs({
      source: generationDir(this.#ctx.stateDir, generation), overlay, target, destination: staging?.staging ?? destination, ...(staging === undefined ? {} : { linkDest: staging.dest }),
      ssh, dryRun, exclude, fakeSuper: isFakeSuper(this.#ctx.stateDir, generation),
    }), onProgress);
    timing.transferMs = this.#since(t);
    t = this.#ctx.clock.monotonicMs();
    const drift = result.code === 0 && !active.cancelled && !dryRun ? await this.#storeDrift(active, target.node, generation, timing) : undefined;
    // The whole generation is in the staging directory and checked: it becomes the node's tree in one step.
    const switched = staging !== undefined && result.code === 0 && !active.cancelled && drift === undefined ? await this.#switch(active, target, staging, ssh, timing) : undefined;
    await running;
    const stats = parseStats(result.stdout);
    const sent = stats.sent ?? 0;
    const total = stats.transferred;
    try {
      if (result.code === 0 && !active.cancelled && drift === undefined && switched === undefined) {
        log.info({ event: 'deploy.node.done', job: active.id, node: target.node, sent, transferred: total }, `${target.node}: synced`);
        // Both in one commit round (group commit): the inventory mirror and the job's record.
        await Promise.all([
          !dryRun && this.#ctx.state.fsm.inventory.byName(target.node)
            ? this.#propose({ type: 'node.generation', name: target.node, assigned: generation, running: generation }).catch(() => undefined) : undefined,
          this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state: 'done', exit: 0, sent, ...(total !== undefined ? { bytes: total, total } : {}) }).catch(() => undefined),
          !dryRun ? this.#timeline(active, target.node, generation, 0, sent, true) : undefined,
        ]);
        return true;
      }
      const state = active.cancelled ? 'interrupted' : 'failed';
      // rsync's ssh ran over the node's master: when the connection died, the master, not rsync, says why.
      const why = master !== undefined && !active.cancelled && CONNECTION_EXITS.has(result.code) ? await master.lastWords(MASTER_WORDS_MS) : '';
      // A stopped job: rsync's "exit 20: stopped by a signal" only says that this daemon ended it.
      let error = active.cancelled
        ? `${active.stoppedBecause ?? STOPPED_BY_OPERATOR} while ${target.node} was syncing: its rsync was ended, and the node keeps its previous generation whole (what was sent waits aside for the resume); \`lanctl deploy resume ${active.id}\` completes it`
        : switched ?? drift ?? describeFailure(result.code, `${result.stderr}\n${why}`, target);
      if (staging !== undefined && !active.cancelled && switched === undefined) error = `${error}. ${untouched(target.node, staging, active.id)}`;
      log.warn({ event: 'deploy.node.failed', job: active.id, node: target.node, exit: result.code, stderr: result.stderr.slice(-2000) }, `${target.node}: ${error}`);
      if ((PARTIAL_EXITS.has(result.code) || drift !== undefined) && !dryRun && !active.cancelled && staging === undefined) {
        const back = await this.#putBack(active, target, generation, workDir, ssh, /Read-only file system/.test(result.stderr), drift === undefined ? undefined : storeFix(generation));
        if (back !== '') error = `${error}. ${back}`;
      }
      await Promise.all([
        this.#propose({ type: 'deploy.job.node', job: active.id, run: active.run, node: target.node, state, exit: result.code, error, sent }).catch(() => undefined),
        !dryRun ? this.#timeline(active, target.node, generation, result.code, sent, false) : undefined,
      ]);
      return false;
    } finally {
      timing.entriesMs = this.#since(t);
      master?.release();
    }
  }

  /**
   * Before a sync: where it writes. Returns the staging plan (undefined plan: in place, logged with
   * why), or the node's result when the node could not be prepared.
   */
  async #prepare(active: ActiveJob, target: ResolvedTarget, generation: string, destination: string, ssh: SshOptions, exclude: readonly string[]): Promise<{ plan: StagingPlan | undefined } | string> {
    const { log } = this.#ctx;
    const plans = stagingPlans(destination, generation);
    const inPlace = (why: string): { plan: undefined } => {
      log.warn({ event: 'deploy.node.in_place', job: active.id, node: target.node, destination, why }, `${target.node}: ${destination} is synced in place (${why}): a sync cut off can leave it a mix of two generations; a destination that is a directory or a mount point with no file system mounted below it changes all at once`);
      return { plan: undefined };
    };
    if (plans === undefined) return inPlace(`${destination} is not an absolute path`);
    // The node's running root: its tools and libraries are in the tree a switch would move.
    if (plans.beside === undefined) return inPlace(`${destination} is the node's running root, whose tree cannot be switched under it; sync its root partition mounted elsewhere (e.g. /mnt/root) for a switch all at once`);
    // The node's last verified sync was this generation: a sync repairs what drifted, and one cut
    // off leaves this generation's files (no second generation to mix with). Staging would rebuild
    // the whole tree as links and remove the old one: about twice the time of an unchanged sync.
    if (this.#ctx.state.fsm.rootfs.node(target.node)?.running === generation) {
      log.info({ event: 'deploy.node.in_place', job: active.id, node: target.node, destination, why: 'runs it already' }, `${target.node}: ${destination} already holds generation ${generation.slice(0, 12)} (its last verified sync): synced in place, which only repairs what differs`);
      return { plan: undefined };
    }
    const { beside, inside } = plans;
    const r = await this.#nodeScript(target, ssh, PREPARE_SCRIPT, prepareArgs(beside, inside, exclude), NODE_SCRIPT_MS);
    if (active.cancelled) return `${active.stoppedBecause ?? STOPPED_BY_OPERATOR} before ${target.node}'s sync started: nothing was sent`;
    const said = r.code === 0 ? parsePrepared(r.stdout) : undefined;
    if (said?.mode === 'staging') return { plan: beside };
    if (said?.mode === 'inside') return { plan: inside };
    if (said?.mode === 'in-place') return inPlace(said.why);
    if (r.code === 255 || r.code === -1) {
      const failure = r.code === -1 ? `${target.node} did not answer in ${NODE_SCRIPT_MS / 1000} s` : describeFailure(255, r.stderr, target);
      return /nothing was sent/.test(failure) ? failure : `${failure}; nothing was sent`;
    }
    // A node that runs no shell commands for the deploy user (a forced command) is still synced, in place.
    return inPlace(`preparing a staging directory failed (exit ${r.code}: ${r.stderr.trim().slice(-300) || 'no output'})`);
  }

  /** Makes the staging directory the node's tree (SWITCH_SCRIPT, or SWITCH_INSIDE_SCRIPT in a mount point); undefined when it did, else the node's result. */
  async #switch(active: ActiveJob, target: ResolvedTarget, plan: StagingPlan, ssh: SshOptions, timing: NodeTimings): Promise<string | undefined> {
    const t = this.#ctx.clock.monotonicMs();
    const r = await this.#nodeScript(target, ssh, plan.layout === 'inside' ? SWITCH_INSIDE_SCRIPT : SWITCH_SCRIPT, [plan.dest, plan.staging, plan.old], NODE_SCRIPT_MS);
    timing.switchMs = this.#since(t);
    if (r.code === 0) {
      if (r.stderr.trim() !== '') this.#ctx.log.warn({ event: 'deploy.node.old_tree_left', job: active.id, node: target.node, path: plan.old }, `${target.node}: ${r.stderr.trim().slice(-300)}`);
      return undefined;
    }
    const why = r.code === -1 ? `no answer in ${NODE_SCRIPT_MS / 1000} s` : r.code === 255 ? describeFailure(255, r.stderr, target) : `exit ${r.code}: ${r.stderr.trim().slice(-300) || 'no output'}`;
    this.#ctx.log.error({ event: 'deploy.node.switch_failed', job: active.id, node: target.node, exit: r.code, stderr: r.stderr.slice(-2000) }, `${target.node}: switching ${plan.staging} into ${plan.dest} failed: ${why}`);
    const failed = `the generation arrived whole in ${plan.staging} on ${target.node}, but making it ${plan.dest} failed (${why})`;
    // Inside a mount point the moves start once the marker is written: a cut after that is finished by the next deploy.
    if (plan.layout !== 'inside' || INSIDE_UNMOVED.has(r.code)) return failed;
    this.#ctx.log.error({ event: 'deploy.node.mixed', job: active.id, node: target.node, destination: plan.dest }, `${target.node}: the switch inside ${plan.dest} may have stopped partway`);
    return `${failed}: it may have stopped partway, so ${plan.dest} can hold top-level entries of both generations until the next deploy to ${target.node} finishes the switch, which it does first (${plan.dest}/.lanha/switch lists what is left); \`lanctl deploy resume ${active.id}\` does it now`;
  }

  /** Runs a sh script on the node over its ssh connection, bounded by `ms` (then killed: code -1). */
  #nodeScript(target: ResolvedTarget, ssh: SshOptions, script: string, args: readonly string[], ms: number): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('ssh', [...sshArgs(target, ssh), target.host, nodeScriptCommand(script, args)], { stdio: ['ignore', 'pipe', 'pipe'] });
      const stdout = new BoundedOutput(OUTPUT_KEPT), stderr = new BoundedOutput(OUTPUT_KEPT);
      child.stdout.on('data', (d: Buffer) => stdout.push(d.toString()));
      child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, ms);
      child.on('error', (error) => { clearTimeout(timer); resolve({ code: 127, stdout: '', stderr: `cannot run ssh: ${error.message}` }); });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: timedOut ? -1 : code ?? -1, stdout: stdout.text(), stderr: stderr.text() });
      });
    });
  }

  /**
   * A sync's result in an inventory node's boot timeline (`lanctl nodes show NAME --timeline`), as a
   * netbooting node's own pull reports it through the ssh gate: `rsync` with the generation, bytes,
   * exit and job, then `verified` when it was. A deploy.targets-only node has no MAC, so no timeline.
   */
  async #timeline(active: ActiveJob, node: string, generation: string, exit: number, sent: number, verified: boolean): Promise<void> {
    const mac = this.#ctx.state.fsm.inventory.byName(node)?.mac;
    if (mac === undefined) return;
    const gen = `gen=${generation.slice(0, 12)}`;
    await Promise.all([
      this.#propose({ type: 'node.boot', mac, event: 'rsync', detail: `${gen} bytes=${sent} exit=${exit}${active.cancelled ? ' stopped' : ''} job=${active.id}` }).catch(() => undefined),
      verified ? this.#propose({ type: 'node.boot', mac, event: 'verified', detail: gen }).catch(() => undefined) : undefined,
    ]);
  }

  /**
   * The leader's copy of the generation checked against its manifest once rsync exited 0, before the
   * node is recorded verified; undefined when it matches, else the node's result. rsync's exit 0
   * says the node got every file of its file list as the store held it: a store file deleted after
   * the deploy's check and before rsync listed the tree was not in the list (and --delete removed it
   * on the node), one changed in that time was sent changed. The check is the quick one of the
   * deploy's start (the tree's stat digest against the one recorded when it last matched: a stat
   * walk); anything touched is hashed again and named.
   */
  async #storeDrift(active: ActiveJob, node: string, generation: string, timing: NodeTimings): Promise<string | undefined> {
    const { stateDir, member, log } = this.#ctx;
    const t = this.#ctx.clock.monotonicMs();
    const changes = await this.#checkStore(generation, t);
    timing.storeCheckMs = this.#since(t);
    if (changes.length === 0) return undefined;
    const gen = generation.slice(0, 12);
    await this.#propose({ type: 'rootfs.verified', generation, member, ok: false, changed: changes.slice(0, 50).map((c) => c.path) }).catch(() => undefined);
    log.error({ event: 'deploy.node.store_changed', job: active.id, node, generation, changed: changes.slice(0, 50).map((c) => c.path) }, `${node}: generation ${gen} in this member's store no longer matches its manifest after the sync: ${describeChanges(changes)}`);
    return `generation ${gen} in ${member}'s store no longer matches its manifest (changed during the sync to ${node}, after the deploy's check): ${describeChanges(changes)}; rsync sent the store as it found it, so ${node} did not get the generation that was committed`;
  }

  /**
   * The store check of #storeDrift for a sync that ended at `endedAt`: nodes that finish while one
   * check runs share it when it started after their rsync ended (it saw the store as it was then or
   * later), so parallel nodes do not each walk the tree.
   */
  #checkStore(generation: string, endedAt: number): Promise<ManifestChange[]> {
    const running = this.#storeChecks.get(generation);
    if (running !== undefined && running.started >= endedAt) return running.result;
    const started = this.#ctx.clock.monotonicMs();
    const result = verifyGeneration(this.#ctx.stateDir, generation, { quick: true }).catch((error: unknown) => [{ path: '.', what: `unreadable: ${errorMessage(error)}` }]);
    this.#storeChecks.set(generation, { started, result });
    void result.finally(() => { if (this.#storeChecks.get(generation)?.result === result) this.#storeChecks.delete(generation); });
    return result;
  }

  /**
   * After a partial transfer (rsync exit 23/24, PARTIAL_EXITS) the node's tree is a mix: what arrived
   * was put in place, the rest is old. It is synced back to the generation last verified on it (the
   * one its boot files name), the way a deploy of that generation would: rsync's quick check leaves
   * alone what already matches it (a file that could not be replaced still holds it), rewrites what
   * changed and deletes what was new. Returns the sentence for the node's result.
   */
  async #putBack(active: ActiveJob, target: ResolvedTarget, generation: string, workDir: string, ssh: SshOptions, readOnly: boolean, storeChanged?: string): Promise<string> {
    const { config, log, stateDir } = this.#ctx;
    const destination = config.rootfs?.destination ?? '/';
    const fix = storeChanged ?? `fix what is named (on the node, or in the store: \`lanctl rootfs verify ${generation.slice(0, 12)}\`), then \`lanctl deploy resume ${active.id}\``;
    const previous = this.#ctx.state.fsm.rootfs.node(target.node)?.running;
    if (previous === undefined || previous === generation || !existsSync(generationDir(stateDir, previous))) {
      // A read-only destination took nothing (its result says so); there is nothing to undo.
      if (readOnly) return '';
      const why = previous === undefined ? 'no earlier generation was verified on it to put back'
        : previous === generation ? `it already ran generation ${generation.slice(0, 12)}, and the paths named now differ from it`
          : `generation ${previous.slice(0, 12)}, the last one verified on it, is not in this member's store to put back (lanctl rootfs list shows where it is)`;
      log.warn({ event: 'deploy.node.mixed', job: active.id, node: target.node, generation }, `${target.node}: the partial sync left ${destination} a mix, and ${why}`);
      return `The files that did arrive were put in place, and ${why}: ${target.node}'s tree under ${destination} is not a whole generation, so do not boot it from its disk; ${fix}`;
    }
    let code: number;
    let stderr = '';
    try {
      const overlay = this.#buildOverlay(target.node, workDir, generationDir(stateDir, previous));
      const back = await this.#rsync(active, target.node, rootfsRsyncArgs({
        source: generationDir(stateDir, previous), overlay, target, destination, ssh, exclude: config.rootfs?.exclude ?? [], fakeSuper: isFakeSuper(stateDir, previous),
      }), () => undefined);
      code = back.code;
      stderr = back.stderr;
    } catch (error) {
      code = -1;
      stderr = errorMessage(error);
    }
    if (code === 0) {
      log.warn({ event: 'deploy.node.put_back', job: active.id, node: target.node, generation, previous }, `${target.node}: put back to generation ${previous.slice(0, 12)} after the partial sync of ${generation.slice(0, 12)}`);
      return `${target.node} was put back to generation ${previous.slice(0, 12)}, the last one verified on it (what its boot files name): nothing of ${generation.slice(0, 12)} is left in use there; ${fix}`;
    }
    const again = code === -1 ? stderr : describeFailure(code, stderr, target);
    log.error({ event: 'deploy.node.mixed', job: active.id, node: target.node, generation, previous, exit: code, stderr: stderr.slice(-2000) }, `${target.node}: putting back generation ${previous.slice(0, 12)} failed too: ${again}`);
    return `Putting ${target.node} back to generation ${previous.slice(0, 12)} failed too (${again}): its tree under ${destination} is a mix of both generations, so do not boot it from its disk; ${fix}`;
  }

  /**
   * The node's ssh master, started on first use and kept for later jobs (closed after
   * CONTROL_IDLE_MS unused); undefined when it cannot be had (socket path too long, login failed):
   * rsync then connects by itself and reports what went wrong.
   */
  async #master(target: ResolvedTarget, options: SshOptions, timing: NodeTimings): Promise<MasterHandle | undefined> {
    const dir = join(this.#ctx.stateDir, 'deploy', 'ssh');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = controlPathFor(dir, target, target.hostKey, this.#ctx.config.identityFile);
    if (path === undefined) return undefined;
    let master = this.#masters.get(path);
    const reused = master !== undefined && master.ready;
    if (master === undefined) {
      master = new SshMaster(path, masterArgs(target, options, path), () => this.#masters.delete(path));
      this.#masters.set(path, master);
    }
    const m = master;
    m.hold();
    if (!(await m.whenReady((options.connectTimeoutS ?? 10) * 1000 + 2000))) {
      m.release();
      return undefined;
    }
    if (reused) {
      // The master's connection checked the pinned key when it logged in, up to CONTROL_IDLE_MS ago;
      // sessions over it exchange no keys. A key the node changed since would go unnoticed until the
      // master closed, so every job asks the node for its key again (a key exchange, no login).
      const t = this.#ctx.clock.monotonicMs();
      const checked = await this.#checkHostKey(target).catch((error: unknown) => error);
      timing.hostKeyCheckMs = this.#since(t);
      if (checked !== true) {
        m.release();
        await m.close();
        if (checked instanceof HostKeyMismatch) throw checked;
        // Not answered (sshd restarting, the node gone): rsync connects by itself, with OpenSSH's own check.
        this.#ctx.log.info({ event: 'deploy.ssh.key_unchecked', node: target.node, err: checked }, `${target.node}: its host key could not be fetched to check the kept ssh connection (${errorMessage(checked)}); connecting afresh`);
        return undefined;
      }
    }
    return { path, reused, release: () => m.release(), lastWords: (ms: number) => m.lastWords(ms) };
  }

  /** True when the node offers its pinned key now; throws HostKeyMismatch (both fingerprints) when it offers another. */
  async #checkHostKey(target: ResolvedTarget): Promise<true> {
    const pinned = parseHostKey(target.hostKey)!;
    const offered = parseHostKey(await fetchHostKey(target, HOST_KEY_CHECK_MS, pinned.type));
    if (offered === null) throw new LanhaError('io', `${target.node} offered no well-formed host key`);
    if (Buffer.compare(offered.blob, pinned.blob) === 0) return true;
    this.#ctx.log.warn({ event: 'deploy.hostkey.changed', node: target.node, fingerprint: fingerprint(offered.blob), pinned: fingerprint(pinned.blob) },
      `host key of ${target.node} changed while the daemon kept an ssh connection to it: it offers ${fingerprint(offered.blob)}, the pinned key is ${fingerprint(pinned.blob)}; the kept connection was closed and the job refused there`);
    throw new HostKeyMismatch(target.node, fingerprint(offered.blob), fingerprint(pinned.blob));
  }

  /**
   * Writes the node's overlay tree under workDir. Its directories take the generation's modes,
   * owners and times (the first source's directory entries win too), and each generated file an
   * mtime derived from its content, so an unchanged overlay is skipped by rsync's quick check and a
   * changed one is not.
   */
  #buildOverlay(node: string, workDir: string, generation: string): string {
    const dir = join(workDir, `overlay-${node}`);
    mkdirSync(join(dir, 'etc'), { recursive: true, mode: 0o755 });
    for (const f of overlayFiles(node, this.#ctx.clusterId, hostsFromTargets(this.#ctx.targets()))) {
      const path = join(dir, f.path);
      writeFileSync(path, f.content, { mode: f.mode });
      chmodSync(path, f.mode);
      const stamp = 946_684_800 + (parseInt(createHash('sha256').update(f.content).digest('hex').slice(0, 7), 16) % 100_000_000);
      utimesSync(path, stamp, stamp);
    }
    if (hasOverlayDir(this.#ctx.config.overlayDir, node)) {
      cpSync(join(this.#ctx.config.overlayDir, node), dir, { recursive: true, force: true, preserveTimestamps: true });
    }
    for (const rel of ['.', ...listDirs(dir)]) {
      try {
        const st = lstatSync(join(generation, rel));
        if (!st.isDirectory()) continue;
        chownSync(join(dir, rel), st.uid, st.gid);
        chmodSync(join(dir, rel), st.mode & 0o7777);
        utimesSync(join(dir, rel), st.atime, st.mtime);
      } catch { /* not in the generation: the overlay's own directory */ }
    }
    return dir;
  }

  #rsync(active: ActiveJob, node: string, args: string[], onProgress: (p: Progress2) => void): Promise<{ code: number; stdout: string; stderr: string }> {
    // Stopped while this node waited for its ssh master: nothing to start (exit 20, as a signal would give).
    if (active.cancelled) return Promise.resolve({ code: 20, stdout: '', stderr: 'the job was stopped before rsync started' });
    return new Promise((resolve) => {
      const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      active.children.set(node, child);
      const stdout = new BoundedOutput(OUTPUT_KEPT), stderr = new BoundedOutput(OUTPUT_KEPT);
      let rest = '';
      child.stdout.on('data', (d: Buffer) => {
        const text = d.toString();
        stdout.push(text);
        const split = splitProgress(rest, text);
        rest = split.rest;
        for (const line of split.lines) {
          const p = parseProgress2(line);
          if (p) onProgress(p);
        }
      });
      child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
      child.on('error', (error) => { active.children.delete(node); resolve({ code: 127, stdout: stdout.text(), stderr: `cannot run rsync: ${error.message}` }); });
      child.on('close', (code, signal) => {
        active.children.delete(node);
        resolve({ code: code ?? (signal ? 20 : 1), stdout: stdout.text(), stderr: stderr.text() });
      });
    });
  }

  async #propose(command: Command): Promise<void> {
    await this.#ctx.state.propose(command);
  }

  /**
   * Proposes a job's start or resume naming which of its nodes are inventory nodes now: the entry
   * is a no-op on every member when one of them was removed by an entry that committed first
   * (a `lanctl nodes remove` issued at the same moment), and this throws, nothing sent.
   */
  async #proposeStart(command: Extract<Command, { type: 'deploy.job.start' | 'deploy.job.resume' }>, nodes: readonly string[] = command.type === 'deploy.job.start' ? command.nodes : []): Promise<void> {
    const { state } = this.#ctx;
    const inventory = nodes.filter((n) => state.fsm.inventory.byName(n) !== undefined);
    await this.#propose(inventory.length === 0 ? command : proposable({ ...command, inventory }, state.proposalRefusal?.bind(state)));
    const job = state.fsm.rootfs.job(command.job);
    const applied = command.type === 'deploy.job.start' ? job !== undefined : job?.state === 'running' && (job.run ?? 0) === command.run;
    if (applied) return;
    const gone = inventory.filter((n) => state.fsm.inventory.byName(n) === undefined);
    throw new LanhaError('conflict', `${gone.length > 0 ? gone.join(', ') : 'a node of the job'} ${gone.length > 1 ? 'were' : 'was'} removed from the inventory (\`lanctl nodes remove\`) as the job ${command.type === 'deploy.job.start' ? 'started' : 'resumed'}, and the removal committed first: nothing was started or sent. \`lanctl nodes\` lists the nodes; run this again without ${gone.length > 1 ? 'them' : 'it'}`);
  }
}

/** The end of a staged sync's failure: the node's tree was not touched, and where what arrived waits. */
/** SWITCH_INSIDE_SCRIPT's exits before its marker is written: nothing of the destination moved. */
const INSIDE_UNMOVED = new Set([46, 48, 51, 53]);

function untouched(node: string, plan: StagingPlan, job: string): string {
  return `${node}'s ${plan.dest} was not touched: it keeps its previous generation whole (nothing, before its first deploy), and what arrived waits in ${plan.staging} for \`lanctl deploy resume ${job}\``;
}

/** What to do when the store's copy of a generation changed under a sync: a resume would send the same copy. */
function storeFix(generation: string): string {
  const gen = generation.slice(0, 12);
  return `\`lanctl rootfs verify ${gen}\` names every changed path; commit the tree again (\`lanctl rootfs commit DIR\`) and deploy the generation it gives (a resume would send the changed copy again)`;
}

/** "c4 is in deploy job J (...)": the refusal of a job whose nodes are in other jobs, with the commands that follow or stop each. */
export function nodesInJobsMessage(byJob: ReadonlyMap<string, readonly string[]>): string {
  const parts = [...byJob].map(([job, nodes]) => `${nodes.join(', ')} ${nodes.length === 1 ? 'is' : 'are'} in deploy job ${job}, still running (\`lanctl deploy jobs ${job}\` follows it, \`lanctl deploy cancel ${job}\` stops it)`);
  return `${parts.join('; ')}. A node takes one job at a time: two at once write the same tree and undo each other's renames. Nothing was started; run this again once that job has ended`;
}

function newJobId(clock: Clock): string {
  const d = new Date(clock.wallMs());
  const stamp = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}-${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}`;
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/**
 * One ssh master (`ssh -M -N`), a child of the daemon: ready once its control socket exists, held
 * by the jobs using it, stopped by PID after CONTROL_IDLE_MS without a holder, at stop, or when its
 * connection dies (it exits; the next job starts a new one).
 */
class SshMaster {
  readonly #path: string;
  readonly #child: ChildProcess;
  #holders = 0;
  #idle: NodeJS.Timeout | undefined;
  #exited = false;
  #ready = false;
  readonly #exit: Promise<void>;
  /** The end of what ssh printed (why it exited: "Timeout, server ... not responding.", a refused login). */
  #stderr = '';
  /** Resolves once ssh exited and all it printed was read. */
  readonly #closed: Promise<void>;

  constructor(path: string, args: string[], onExit: () => void) {
    this.#path = path;
    rmSync(path, { force: true }); // a socket left by a crash; ssh refuses to bind over it
    this.#child = spawn('ssh', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child.stderr!.on('data', (d: Buffer) => { this.#stderr = (this.#stderr + d.toString()).slice(-4096); });
    this.#exit = new Promise((resolve) => {
      const done = (): void => { this.#exited = true; this.#ready = false; clearTimeout(this.#idle); onExit(); resolve(); };
      this.#child.once('exit', done);
      this.#child.once('error', done);
    });
    this.#closed = new Promise((resolve) => {
      this.#child.once('close', () => resolve());
      this.#child.once('error', () => resolve());
    });
  }

  /**
   * What ssh printed, once it exited (waiting at most `ms`: a master whose connection died exits at
   * about the time rsync's session over it ends), or '' while it is still up.
   */
  async lastWords(ms: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([this.#closed.then(() => true), new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); })]);
    clearTimeout(timer);
    return exited ? this.#stderr : '';
  }

  get ready(): boolean { return this.#ready && !this.#exited; }

  /** Waits (bounded) for the control socket; false when the master exited or took too long. */
  async whenReady(timeoutMs: number): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (!this.#exited && performance.now() < until) {
      if (existsSync(this.#path)) { this.#ready = true; return true; }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!this.#exited && !this.#ready) void this.close();
    return this.ready;
  }

  hold(): void {
    this.#holders++;
    clearTimeout(this.#idle);
  }

  release(): void {
    this.#holders = Math.max(0, this.#holders - 1);
    if (this.#holders > 0 || this.#exited) return;
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => { void this.close(); }, CONTROL_IDLE_MS);
    this.#idle.unref();
  }

  async close(): Promise<void> {
    clearTimeout(this.#idle);
    if (!this.#exited) stopProcess(this.#child);
    await this.#exit;
    rmSync(this.#path, { force: true });
  }
}

function stopProcess(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); }, 2000);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

/** Every directory below root (relative paths), deepest last. */
function listDirs(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSyncSafe(join(root, rel))) {
    if (!entry.isDirectory()) continue;
    const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
    out.push(path, ...listDirs(root, path));
  }
  return out;
}

function readdirSyncSafe(dir: string): Dirent[] {
  try { return readdirSync(dir, { withFileTypes: true }); } catch { return []; }
}

/** A job id as newJobId makes them: what a work directory under node.stateDir/deploy/ is named. */
const JOB_ID = /^\d{8}-\d{6}-[0-9a-f]{4}$/;

/**
 * Why a directory under node.stateDir/deploy/ is a leftover to remove, or undefined to keep it:
 * anything not named like a job (the ssh masters' sockets in `ssh/`) and the directory of a job set
 * up or running here are kept. `recorded` is the job's state in the replicated log, if it holds it.
 */
export function leftoverReason(name: string, live: boolean, recorded: Job['state'] | undefined): string | undefined {
  if (!JOB_ID.test(name) || live) return undefined;
  if (recorded === undefined) return 'the job is no longer in the replicated state (it keeps the last 20 jobs)';
  if (recorded === 'running') return 'the job was cut off mid-run (the daemon running it stopped); a resume makes a fresh copy of its sources';
  return `the job ended (${recorded})${recorded === 'done' ? '' : '; a resume makes a fresh copy of its sources'}`;
}

/** Runs a command to its end (at most `ms`, then SIGKILL); its exit code, or -1. */
function runBounded(command: string, args: readonly string[], ms: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('error', () => { clearTimeout(timer); resolve(-1); });
    child.once('close', (code) => { clearTimeout(timer); resolve(code ?? -1); });
  });
}
