import type { Command } from './commands.js';
import { isHostKeyText } from './inventory.js';

// The replicated part of deploy: rootfs generations (committed, verified on which LAN member),
// per-node generations (assigned by the operator, last verified sync = running), pinned host keys
// until the inventory holds them, and deploy jobs with their per-node progress. A pure sub-state:
// Fsm hands it every `rootfs.*` and `deploy.*` command with the entry's log time; no clock, no disk.
// The shell (cluster/deploy/service.ts) deletes the trees of generations dropped here.

export type RootfsCommand = Extract<Command, { type: `rootfs.${string}` | `deploy.${string}` }>;

/** Generations kept besides those a node still boots, runs or is assigned. */
export const GENERATIONS_KEPT = 3;
const JOBS_KEPT = 20;

export interface Generation {
  id: string;
  committedAt: number;
  /** The LAN member that committed it (and holds the first copy). */
  member: string;
  source: string;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
}

export interface SyncRecord {
  generation: string;
  /** 'running' while a deploy job moves it; 'verified' after a clean sync; else why not. */
  state: 'running' | 'verified' | 'failed' | 'interrupted';
  at: number;
  job?: string;
  exit?: number;
}

export interface NodeGenerations {
  name: string;
  assigned?: string;
  /** The generation of the node's last verified sync. */
  running?: string;
  /** The latest sync attempt per generation. */
  syncs: SyncRecord[];
}

export type JobState = 'running' | 'done' | 'failed' | 'interrupted';
export type NodeJobState = 'pending' | 'running' | 'done' | 'failed' | 'interrupted';

export interface JobNode {
  name: string;
  state: NodeJobState;
  bytes?: number;
  total?: number;
  /** Bytes that went over the wire (rsync --stats "Total bytes sent"). */
  sent?: number;
  exit?: number;
  error?: string;
  /** Push jobs: the files in place on this node (kept across a resume, which sends only the others). */
  installed?: string[];
  /** The inventory removed the node while the job ran: its progress still shows, but its generation record is not made again. */
  removed?: true;
  at: number;
}

export interface Job {
  id: string;
  kind: 'rootfs' | 'push';
  state: JobState;
  member: string;
  startedAt: number;
  endedAt?: number;
  generation?: string;
  dryRun: boolean;
  files?: string[];
  /** Push jobs: the leader's paths of `files` and their sha256, for `deploy resume`. */
  sources?: string[];
  sha256?: string[];
  dest?: string;
  then?: string;
  /** Resumes so far (absent before the first): node and end entries of an earlier run change nothing. */
  run?: number;
  nodes: JobNode[];
}

export interface RootfsSnapshot {
  generations: Generation[];
  verified: Array<{ generation: string; members: string[] }>;
  nodes: NodeGenerations[];
  hostKeys: Array<{ node: string; key: string }>;
  jobs: Job[];
}

export class RootfsState {
  #generations: Generation[] = [];
  #verified = new Map<string, Set<string>>();
  #nodes = new Map<string, NodeGenerations>();
  #hostKeys = new Map<string, string>();
  #jobs: Job[] = [];

  /** Kept generations, oldest first. */
  generations(): readonly Generation[] { return this.#generations; }
  generation(id: string): Generation | undefined { return this.#generations.find((g) => g.id === id); }
  newest(): Generation | undefined { return this.#generations[this.#generations.length - 1]; }
  verifiedOn(id: string): readonly string[] { return [...(this.#verified.get(id) ?? [])].sort(); }
  node(name: string): NodeGenerations | undefined { return this.#nodes.get(name); }
  nodes(): NodeGenerations[] { return [...this.#nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)); }
  hostKey(node: string): string | undefined { return this.#hostKeys.get(node); }
  jobs(): readonly Job[] { return this.#jobs; }
  job(id: string): Job | undefined { return this.#jobs.find((j) => j.id === id); }

  /**
   * The running job that has not finished with `node` yet (the node pending or syncing in its
   * current run), or undefined: `node.remove` waits for it.
   */
  unfinishedJob(node: string): string | undefined {
    return this.#jobs.find((j) => j.state === 'running' && j.nodes.some((n) => n.name === node && (n.state === 'pending' || n.state === 'running')))?.id;
  }

  /** The generation before `id` among the kept ones, if any. */
  previous(id: string): Generation | undefined {
    const i = this.#generations.findIndex((g) => g.id === id);
    return i > 0 ? this.#generations[i - 1] : undefined;
  }

  /**
   * Where `lanctl rollback` takes a node from its current generation (assigned, else what it boots):
   * the newest kept generation before it that was verified on that node, so that its boot files never
   * name a tree it has not held (the generation just before in the store may never have reached it).
   * A node with no verified sync at all (a diskless node not booted yet) gets the one just before.
   */
  rollbackTarget(nodeName: string): { from: string; to: string } | { from?: string; why: string } {
    const node = this.#nodes.get(nodeName);
    const from = node?.assigned ?? this.bootGeneration(nodeName);
    if (from === undefined) return { why: 'no generation is committed' };
    const at = this.#generations.findIndex((g) => g.id === from);
    const older = this.#generations.slice(0, Math.max(0, at)).reverse();
    const verified = new Set((node?.syncs ?? []).filter((s) => s.state === 'verified').map((s) => s.generation));
    if (older[0] === undefined) return { from, why: 'no earlier generation is kept' };
    if (verified.size === 0) return { from, to: older[0].id };
    const to = older.find((g) => verified.has(g.id));
    if (to !== undefined) return { from, to: to.id };
    return { from, why: `no earlier generation kept was verified on it (${older.map((g) => g.id.slice(0, 12)).join(', ')} never reached it): \`lanctl deploy rootfs GEN --to ${nodeName}\` sends one` };
  }

  /**
   * The generation a node's boot files name: its assigned one (default: the newest), unless a sync
   * of that generation to the node was attempted and not verified (running, failed, interrupted):
   * then the one it last verified, else the one before. A node never synced (a diskless node that
   * pulls at boot) gets the assigned one: its boot-time report is what verifies it.
   */
  bootGeneration(nodeName: string): string | undefined {
    const node = this.#nodes.get(nodeName);
    const assigned = node?.assigned !== undefined && this.generation(node.assigned) ? node.assigned : this.newest()?.id;
    if (assigned === undefined) return undefined;
    const sync = node?.syncs.find((s) => s.generation === assigned);
    if (!sync || sync.state === 'verified') return assigned;
    if (node?.running !== undefined && node.running !== assigned && this.generation(node.running)) return node.running;
    return this.previous(assigned)?.id ?? assigned;
  }

  apply(command: RootfsCommand, at: number): void {
    // The leader proposes only ids it computed (sha256 of a manifest); an entry it never made (a
    // hand-made log, an etcd key) must not name a path: ids become store paths (peer copies with
    // --delete, pruning) and boot file paths.
    if (!wellFormed(command)) return;
    switch (command.type) {
      case 'rootfs.commit': {
        if (!this.generation(command.generation)) {
          this.#generations.push({
            id: command.generation, committedAt: at, member: command.member, source: command.source,
            files: command.files, dirs: command.dirs, symlinks: command.symlinks, hardlinks: command.hardlinks, bytes: command.bytes,
          });
        }
        this.#markVerified(command.generation, command.member, true);
        this.#prune();
        return;
      }
      case 'rootfs.verified':
        if (this.generation(command.generation)) this.#markVerified(command.generation, command.member, command.ok);
        return;
      case 'rootfs.assign':
        if (!this.generation(command.generation)) return;
        for (const name of command.nodes) this.#node(name).assigned = command.generation;
        return;
      case 'deploy.trust':
        if (this.#hostKeys.has(command.node) || this.#hostKeys.size < NODES_TRACKED_MAX) this.#hostKeys.set(command.node, command.hostKey);
        return;
      case 'deploy.synced':
        this.#recordSync(command.node, command.generation, command.ok ? 'verified' : 'failed', at, undefined, command.exit);
        return;
      case 'deploy.job.start': {
        // A replayed start (a duplicated entry) must not wipe the job's progress.
        if (this.job(command.job)) return;
        const job: Job = {
          id: command.job, kind: command.kind, state: 'running', member: command.member, startedAt: at, dryRun: command.dryRun === true,
          nodes: command.nodes.map((name) => ({ name, state: 'pending', at })),
        };
        if (command.generation !== undefined) job.generation = command.generation;
        if (command.files !== undefined) job.files = [...command.files];
        if (command.sources !== undefined) job.sources = [...command.sources];
        if (command.sha256 !== undefined) job.sha256 = [...command.sha256];
        if (command.dest !== undefined) job.dest = command.dest;
        if (command.then !== undefined) job.then = command.then;
        this.#jobs.push(job);
        if (this.#jobs.length > JOBS_KEPT) this.#jobs.splice(0, this.#jobs.length - JOBS_KEPT);
        if (job.kind === 'rootfs' && job.generation !== undefined && !job.dryRun && this.generation(job.generation)) {
          // Assigned now, but booted only once verified: a queued node counts as a sync in progress.
          for (const name of command.nodes) {
            this.#node(name).assigned = job.generation;
            this.#recordSync(name, job.generation, 'running', at, job.id);
          }
        }
        return;
      }
      case 'deploy.job.resume': {
        const job = this.job(command.job);
        if (!job) return;
        const run = command.run ?? (job.run ?? 0) + 1;
        if (run <= (job.run ?? 0)) return; // a replayed resume: that run already started
        job.run = run;
        job.state = 'running';
        job.member = command.member;
        delete job.endedAt;
        for (const n of job.nodes) if (n.state !== 'done') { n.state = 'pending'; n.at = at; delete n.error; delete n.exit; }
        return;
      }
      case 'deploy.job.node': {
        const job = this.job(command.job);
        const node = job?.nodes.find((n) => n.name === command.node);
        if (!job || !node) return;
        // A file in place stays in place: whatever run or order the entry comes in, its files count.
        if (Array.isArray(command.installed)) {
          const named = command.installed.filter((f) => typeof f === 'string' && (job.files ?? []).includes(f));
          node.installed = [...new Set([...(node.installed ?? []), ...named])];
        }
        // States only move forward (pending -> running -> done | failed | interrupted) within the
        // job's current run: an entry that arrives late (after the node's result, after the job's
        // end, from a run a resume replaced, or a duplicate) must not show a node running forever.
        if (job.state !== 'running' || (command.run ?? job.run ?? 0) !== (job.run ?? 0)) return;
        if (isTerminal(node.state)) {
          // The same result twice (a cancel races the node's own failure): fill in only what is missing.
          if (command.state === node.state) {
            if (node.error === undefined && command.error !== undefined) node.error = command.error;
            if (node.exit === undefined && command.exit !== undefined) node.exit = command.exit;
          }
          return;
        }
        if (command.state === 'running' && node.state === 'running' && command.bytes !== undefined && command.bytes < (node.bytes ?? 0)) return; // older progress
        node.state = command.state;
        node.at = at;
        if (command.bytes !== undefined) node.bytes = command.bytes;
        if (command.total !== undefined) node.total = command.total;
        if (command.sent !== undefined) node.sent = command.sent;
        if (command.exit !== undefined) node.exit = command.exit; else delete node.exit;
        if (command.error !== undefined) node.error = command.error; else delete node.error;
        if (job.kind === 'rootfs' && !job.dryRun && job.generation !== undefined && node.removed !== true) {
          const state = command.state === 'done' ? 'verified' : command.state;
          this.#recordSync(command.node, job.generation, state, at, job.id, command.exit);
        }
        return;
      }
      case 'deploy.job.end': {
        const job = this.job(command.job);
        // An end is final for its run: a duplicate, or the end of a run a resume replaced, changes nothing.
        if (!job || job.state !== 'running' || (command.run ?? job.run ?? 0) !== (job.run ?? 0)) return;
        job.state = command.state;
        job.endedAt = at;
        for (const n of job.nodes) {
          if (n.state === 'running' || (n.state === 'pending' && command.state !== 'done')) {
            n.state = command.state === 'done' ? 'done' : 'interrupted';
            n.at = at;
            if (job.kind === 'rootfs' && !job.dryRun && job.generation !== undefined && n.state === 'interrupted') {
              this.#recordSync(n.name, job.generation, 'interrupted', at, job.id);
            }
          }
        }
        return;
      }
    }
  }

  /** Drops a node's record (assigned, running, syncs): the inventory removed it. Its pinned key stays. */
  forgetNode(name: string): void {
    this.#nodes.delete(name);
    // A job still syncing to it reports later (its run ends with the node's result): that report
    // must not make the record again and pin the generation for a board that is gone.
    for (const job of this.#jobs) {
      if (job.state !== 'running') continue;
      for (const n of job.nodes) if (n.name === name) n.removed = true;
    }
  }

  #node(name: string): NodeGenerations {
    let node = this.#nodes.get(name);
    if (!node) {
      node = { name, syncs: [] };
      // Bounded like the inventory: past NODES_TRACKED_MAX a new name's record is not kept.
      if (this.#nodes.size < NODES_TRACKED_MAX) this.#nodes.set(name, node);
    }
    return node;
  }

  #recordSync(name: string, generation: string, state: SyncRecord['state'], at: number, job?: string, exit?: number): void {
    const node = this.#node(name);
    const record: SyncRecord = { generation, state, at };
    if (job !== undefined) record.job = job;
    if (exit !== undefined) record.exit = exit;
    node.syncs = node.syncs.filter((s) => s.generation !== generation && this.generation(s.generation) !== undefined);
    node.syncs.push(record);
    if (state === 'verified') node.running = generation;
  }

  #markVerified(id: string, member: string, ok: boolean): void {
    const set = this.#verified.get(id) ?? new Set<string>();
    if (ok) set.add(member); else set.delete(member);
    this.#verified.set(id, set);
  }

  /** Drops generations beyond the newest GENERATIONS_KEPT that no node boots, runs or is assigned. */
  #prune(): void {
    if (this.#generations.length <= GENERATIONS_KEPT) return;
    const pinned = new Set<string>();
    for (const node of this.#nodes.values()) {
      for (const id of [node.assigned, node.running, this.bootGeneration(node.name)]) if (id !== undefined) pinned.add(id);
    }
    const recent = new Set(this.#generations.slice(-GENERATIONS_KEPT).map((g) => g.id));
    const dropped = this.#generations.filter((g) => !recent.has(g.id) && !pinned.has(g.id));
    if (dropped.length === 0) return;
    const gone = new Set(dropped.map((g) => g.id));
    this.#generations = this.#generations.filter((g) => !gone.has(g.id));
    for (const id of gone) this.#verified.delete(id);
    for (const node of this.#nodes.values()) node.syncs = node.syncs.filter((s) => !gone.has(s.generation));
  }

  snapshot(): RootfsSnapshot {
    return {
      generations: this.#generations.map((g) => ({ ...g })),
      verified: [...this.#verified.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([generation, members]) => ({ generation, members: [...members].sort() })),
      nodes: this.nodes().map((n) => ({ ...n, syncs: n.syncs.map((s) => ({ ...s })) })),
      hostKeys: [...this.#hostKeys.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([node, key]) => ({ node, key })),
      jobs: this.#jobs.map((j) => structuredClone(j)),
    };
  }

  restore(snapshot: RootfsSnapshot | undefined): void {
    this.#generations = (snapshot?.generations ?? []).map((g) => ({ ...g }));
    this.#verified = new Map((snapshot?.verified ?? []).map((v) => [v.generation, new Set(v.members)]));
    this.#nodes = new Map((snapshot?.nodes ?? []).map((n) => [n.name, { ...n, syncs: n.syncs.map((s) => ({ ...s })) }]));
    this.#hostKeys = new Map((snapshot?.hostKeys ?? []).map((k) => [k.node, k.key]));
    this.#jobs = (snapshot?.jobs ?? []).map((j) => structuredClone(j));
  }

  isEmpty(): boolean {
    return this.#generations.length === 0 && this.#nodes.size === 0 && this.#hostKeys.size === 0 && this.#jobs.length === 0;
  }
}

const isTerminal = (state: NodeJobState): boolean => state === 'done' || state === 'failed' || state === 'interrupted';

const GENERATION_ID = /^[0-9a-f]{64}$/;
/** Node and member names as config and inventory allow them (no "/", no leading "." or "-"). */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Nodes one entry may name (an assignment or a job), and nodes with generations or a pinned key kept. */
export const NODES_PER_COMMAND_MAX = 10_000;
export const NODES_TRACKED_MAX = 10_000;

const isId = (v: unknown): boolean => typeof v === 'string' && GENERATION_ID.test(v);
const isNodeName = (v: unknown): boolean => typeof v === 'string' && NODE_NAME.test(v);
const isNodeList = (v: unknown): boolean => Array.isArray(v) && v.length <= NODES_PER_COMMAND_MAX && v.every(isNodeName);

const NODE_RESULTS: ReadonlySet<unknown> = new Set(['running', 'done', 'failed', 'interrupted']);
const JOB_RESULTS: ReadonlySet<unknown> = new Set(['done', 'failed', 'interrupted']);
const isRun = (v: unknown): boolean => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0);
const isCount = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0);

/** Generation ids, node and member names, states and counts of an entry are what the leader would have made. */
function wellFormed(command: RootfsCommand): boolean {
  switch (command.type) {
    case 'rootfs.commit':
    case 'rootfs.verified':
      return isId(command.generation) && isNodeName(command.member);
    case 'rootfs.assign':
      return isId(command.generation) && isNodeList(command.nodes);
    case 'deploy.trust':
      return isNodeName(command.node) && isHostKeyText(command.hostKey);
    case 'deploy.synced':
      return isId(command.generation) && isNodeName(command.node);
    case 'deploy.job.start':
      return (command.generation === undefined || isId(command.generation)) && isNodeList(command.nodes) && isNodeName(command.member);
    case 'deploy.job.resume':
      return isNodeName(command.member) && isRun(command.run);
    case 'deploy.job.node':
      return NODE_RESULTS.has(command.state) && isRun(command.run) && isCount(command.bytes) && isCount(command.total) && isCount(command.sent);
    case 'deploy.job.end':
      return JOB_RESULTS.has(command.state) && isRun(command.run);
    default:
      return true;
  }
}

/** The command types this sub-state owns (Fsm delegates them by prefix). */
export function isRootfsCommand(command: Command): command is RootfsCommand {
  return command.type.startsWith('rootfs.') || command.type.startsWith('deploy.');
}
