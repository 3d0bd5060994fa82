import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, lstatSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync, type Dirent } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { errorMessage } from '../../lib/errors.js';
import type { StateLog } from '../state-log.js';
import type { Command } from '../commands.js';
import type { Job } from '../rootfs-state.js';
import type { DeployConfig } from './config.js';
import { generationDir } from './store.js';
import { knownHostsFile, parseProgress2, parseStats, rootfsRsyncArgs, rsyncExitWords, splitProgress, type Progress2 } from './rsync.js';
import { hasOverlayDir, hostsFromTargets, overlayFiles, type ResolvedTarget, type TargetEntry } from './targets.js';
import { connectPinned, pushToNode, type PushFile } from './push.js';

// Deploy jobs, run by the leader: each is a `deploy.job.start` entry, per-node `deploy.job.node`
// entries (running with bytes at most every PROGRESS_LOG_MS, then the result) and a
// `deploy.job.end`. The rsync children belong to this runner; cancel() and stop() end them by PID.
// A job the log shows running that no runner here owns (the leader that ran it died or lost
// leadership) is marked `interrupted` by the new leader; resume() completes it.

const PROGRESS_LOG_MS = 5000;

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

interface ActiveJob {
  id: string;
  children: Map<string, ChildProcess>;
  /** ssh2 connections of a push job, ended on cancel. */
  connections: Map<string, { end(): void }>;
  cancelled: boolean;
  live: Map<string, LiveProgress>;
  done: Promise<void>;
}

export class JobRunner {
  #ctx: JobContext;
  #active = new Map<string, ActiveJob>();

  constructor(ctx: JobContext) {
    this.#ctx = ctx;
  }

  isActive(id: string): boolean { return this.#active.has(id); }

  live(id: string): LiveProgress[] {
    return [...(this.#active.get(id)?.live.values() ?? [])];
  }

  /** Starts a rootfs job (entries first, then the work in the background); returns the job id. */
  async startRootfs(generation: string, targets: readonly ResolvedTarget[], dryRun: boolean): Promise<string> {
    const id = newJobId(this.#ctx.clock);
    await this.#propose({ type: 'deploy.job.start', job: id, kind: 'rootfs', member: this.#ctx.member, nodes: targets.map((t) => t.node), generation, dryRun });
    this.#run(id, targets, dryRun);
    return id;
  }

  /** Resumes an interrupted or failed rootfs job: the nodes not done run again. */
  async resume(job: Job, targets: readonly ResolvedTarget[]): Promise<void> {
    await this.#propose({ type: 'deploy.job.resume', job: job.id, member: this.#ctx.member });
    const pending = targets.filter((t) => job.nodes.some((n) => n.name === t.node && n.state !== 'done'));
    this.#run(job.id, pending, job.dryRun);
  }

  /** Stops a job's children by PID; the job ends `interrupted`. Resolves when it has ended. */
  async cancel(id: string): Promise<boolean> {
    const active = this.#active.get(id);
    if (!active) return false;
    active.cancelled = true;
    for (const child of active.children.values()) stopProcess(child);
    for (const connection of active.connections.values()) connection.end();
    await active.done;
    return true;
  }

  /** Daemon stop: every running job ends `interrupted` (if the log still takes entries). */
  async stop(): Promise<void> {
    await Promise.all([...this.#active.keys()].map((id) => this.cancel(id)));
  }

  /** Jobs the log shows running that nobody here runs: a failover or restart cut them off. */
  async markOrphans(): Promise<string[]> {
    if (!this.#ctx.state.isLeader()) return [];
    const orphans = this.#ctx.state.fsm.rootfs.jobs().filter((j) => j.state === 'running' && !this.#active.has(j.id));
    for (const job of orphans) {
      this.#ctx.log.warn({ event: 'deploy.job.orphaned', job: job.id, member: job.member }, `deploy job ${job.id} was cut off (its leader ${job.member} stopped); marking it interrupted — \`lanctl deploy resume ${job.id}\` completes it`);
      await this.#propose({ type: 'deploy.job.end', job: job.id, state: 'interrupted' }).catch(() => undefined);
    }
    return orphans.map((j) => j.id);
  }

  #run(id: string, targets: readonly ResolvedTarget[], dryRun: boolean): void {
    const active: ActiveJob = { id, children: new Map(), connections: new Map(), cancelled: false, live: new Map(), done: Promise.resolve() };
    this.#active.set(id, active);
    active.done = this.#work(active, targets, (a, t, kh, wd) => this.#syncNode(a, t, this.#ctx.state.fsm.rootfs.job(id)!.generation!, kh, wd, dryRun)).catch((error) => {
      this.#ctx.log.error({ event: 'deploy.job.crashed', job: id, err: error }, `deploy job ${id} failed: ${errorMessage(error)}`);
    }).finally(() => this.#active.delete(id));
  }

  /** Starts a push job: files to every target over ssh2 (SFTP), then `then` on each. */
  async startPush(files: readonly PushFile[], targets: readonly ResolvedTarget[], dir: string, then: string | undefined, privateKey: Buffer): Promise<string> {
    const id = newJobId(this.#ctx.clock);
    await this.#propose({ type: 'deploy.job.start', job: id, kind: 'push', member: this.#ctx.member, nodes: targets.map((t) => t.node), files: files.map((f) => f.name), dest: dir, ...(then !== undefined ? { then } : {}) });
    const active: ActiveJob = { id, children: new Map(), connections: new Map(), cancelled: false, live: new Map(), done: Promise.resolve() };
    this.#active.set(id, active);
    const total = files.reduce((sum, f) => sum + f.size, 0);
    active.done = this.#work(active, targets, async (a, target) => {
      await this.#propose({ type: 'deploy.job.node', job: id, node: target.node, state: 'running', bytes: 0, total }).catch(() => undefined);
      try {
        const client = await connectPinned(target, target.hostKey, privateKey);
        a.connections.set(target.node, client);
        try {
          const result = await pushToNode(client, target.node, files, dir, then, (bytes) => {
            a.live.set(target.node, { node: target.node, phase: 'sync', progress: { bytes, percent: total === 0 ? 100 : Math.floor((bytes * 100) / total), rate: '', eta: '' }, at: this.#ctx.clock.wallMs() });
          });
          if (result.then !== undefined && result.then.code !== 0) {
            const error = `files installed; --then exited ${result.then.code ?? 'by a signal'}: ${result.then.output.trim().split('\n').slice(-2).join(' | ').slice(0, 300)}`;
            await this.#propose({ type: 'deploy.job.node', job: id, node: target.node, state: 'failed', bytes: result.bytes, total, sent: result.bytes, error }).catch(() => undefined);
            return false;
          }
          await this.#propose({ type: 'deploy.job.node', job: id, node: target.node, state: 'done', bytes: result.bytes, total, sent: result.bytes, exit: 0 }).catch(() => undefined);
          return true;
        } finally {
          a.connections.delete(target.node);
          client.end();
        }
      } catch (error) {
        const state = a.cancelled ? 'interrupted' : 'failed';
        this.#ctx.log.warn({ event: 'deploy.push.failed', job: id, node: target.node, err: error }, `${target.node}: ${errorMessage(error)}`);
        await this.#propose({ type: 'deploy.job.node', job: id, node: target.node, state, error: errorMessage(error) }).catch(() => undefined);
        return false;
      }
    }).catch((error) => {
      this.#ctx.log.error({ event: 'deploy.job.crashed', job: id, err: error }, `deploy job ${id} failed: ${errorMessage(error)}`);
    }).finally(() => this.#active.delete(id));
    return id;
  }

  async #work(active: ActiveJob, targets: readonly ResolvedTarget[], perNode: (active: ActiveJob, target: ResolvedTarget, knownHosts: string, workDir: string) => Promise<boolean>): Promise<void> {
    const workDir = join(this.#ctx.stateDir, 'deploy', active.id);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
    const knownHosts = join(workDir, 'known_hosts');
    writeFileSync(knownHosts, knownHostsFile(targets.map((t) => ({ node: t.node, hostKey: t.hostKey }))), { mode: 0o600 });
    const results = new Map<string, boolean>();
    try {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < targets.length && !active.cancelled) {
          const target = targets[next++]!;
          results.set(target.node, await perNode(active, target, knownHosts, workDir));
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.#ctx.config.parallel, targets.length) }, worker));
    } finally {
      rmSync(workDir, { recursive: true, force: true });
    }
    const allDone = [...results.values()].every((ok) => ok) && results.size === targets.length;
    const state = active.cancelled ? 'interrupted' : allDone ? 'done' : 'failed';
    this.#ctx.log.info({ event: `deploy.job.${state}`, job: active.id }, `deploy job ${active.id} ${state}`);
    await this.#propose({ type: 'deploy.job.end', job: active.id, state }).catch((error) => {
      this.#ctx.log.warn({ event: 'deploy.job.end_unrecorded', job: active.id, err: error }, `could not record the end of job ${active.id}: ${errorMessage(error)}`);
    });
  }

  async #syncNode(active: ActiveJob, target: ResolvedTarget, generation: string, knownHosts: string, workDir: string, dryRun: boolean): Promise<boolean> {
    const { config, log } = this.#ctx;
    const destination = config.rootfs?.destination ?? '/';
    const ssh = { knownHostsFile: knownHosts, ...(config.identityFile !== undefined ? { identityFile: config.identityFile } : {}) };
    const overlay = this.#buildOverlay(target.node, workDir, generationDir(this.#ctx.stateDir, generation));
    await this.#propose({ type: 'deploy.job.node', job: active.id, node: target.node, state: 'running', bytes: 0 }).catch(() => undefined);
    let lastLogged = this.#ctx.clock.monotonicMs();
    const onProgress = (p: Progress2): void => {
      active.live.set(target.node, { node: target.node, phase: 'sync', progress: p, at: this.#ctx.clock.wallMs() });
      const now = this.#ctx.clock.monotonicMs();
      if (now - lastLogged >= PROGRESS_LOG_MS) {
        lastLogged = now;
        void this.#propose({ type: 'deploy.job.node', job: active.id, node: target.node, state: 'running', bytes: p.bytes }).catch(() => undefined);
      }
    };
    const result = await this.#rsync(active, target.node, rootfsRsyncArgs({
      source: generationDir(this.#ctx.stateDir, generation), overlay, target, destination, ssh, dryRun, exclude: config.rootfs?.exclude ?? [],
    }), onProgress);
    const stats = parseStats(result.stdout);
    const sent = stats.sent ?? 0;
    const total = stats.transferred;
    if (result.code === 0 && !active.cancelled) {
      log.info({ event: 'deploy.node.done', job: active.id, node: target.node, sent, transferred: total }, `${target.node}: synced`);
      if (!dryRun && this.#ctx.state.fsm.inventory.byName(target.node)) {
        await this.#propose({ type: 'node.generation', name: target.node, assigned: generation, running: generation }).catch(() => undefined);
      }
      await this.#propose({ type: 'deploy.job.node', job: active.id, node: target.node, state: 'done', exit: 0, sent, ...(total !== undefined ? { bytes: total, total } : {}) }).catch(() => undefined);
      return true;
    }
    const state = active.cancelled ? 'interrupted' : 'failed';
    const error = describeFailure(result.code, result.stderr);
    log.warn({ event: 'deploy.node.failed', job: active.id, node: target.node, exit: result.code, stderr: result.stderr.slice(-2000) }, `${target.node}: ${error}`);
    await this.#propose({ type: 'deploy.job.node', job: active.id, node: target.node, state, exit: result.code, error, sent }).catch(() => undefined);
    return false;
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
    return new Promise((resolve) => {
      const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      active.children.set(node, child);
      let stdout = '', stderr = '', rest = '';
      child.stdout.on('data', (d: Buffer) => {
        const text = d.toString();
        if (stdout.length < 1 << 20) stdout += text;
        const split = splitProgress(rest, text);
        rest = split.rest;
        for (const line of split.lines) {
          const p = parseProgress2(line);
          if (p) onProgress(p);
        }
      });
      child.stderr.on('data', (d: Buffer) => { if (stderr.length < 1 << 20) stderr += d.toString(); });
      child.on('error', (error) => { active.children.delete(node); resolve({ code: 127, stdout, stderr: `cannot run rsync: ${error.message}` }); });
      child.on('close', (code, signal) => {
        active.children.delete(node);
        resolve({ code: code ?? (signal ? 20 : 1), stdout, stderr });
      });
    });
  }

  async #propose(command: Command): Promise<void> {
    await this.#ctx.state.propose(command);
  }
}

/** The node's result in words: the exit code explained, and the host-key case named. */
export function describeFailure(code: number, stderr: string): string {
  const tail = stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-2).join(' | ');
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i.test(stderr)) {
    return `host key mismatch: the node's ssh host key is not the pinned one; nothing was sent (rsync exit ${code}). If the node was reinstalled, check it and run \`lanctl nodes trust NAME\` again`;
  }
  if (/No space left on device/i.test(stderr)) return `the node's disk is full (No space left on device), rsync exit ${code}: ${rsyncExitWords(code)}`;
  return `rsync exit ${code}: ${rsyncExitWords(code)}${tail === '' ? '' : ` — ${tail.slice(0, 300)}`}`;
}

function newJobId(clock: Clock): string {
  const d = new Date(clock.wallMs());
  const stamp = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}-${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}`;
  return `${stamp}-${randomBytes(2).toString('hex')}`;
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
