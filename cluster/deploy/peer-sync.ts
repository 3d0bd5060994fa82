import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';
import type { Clock } from '../../lib/clock.js';
import { errorMessage } from '../../lib/errors.js';
import type { StateLog } from '../state-log.js';
import type { DeployConfig } from './config.js';
import { fakeSuperPath, generationDir, isFakeSuper, manifestPath, runRsync, storeDir } from './store.js';
import { describeFailure, knownHostsFile, shellQuote, sshArgs } from './rsync.js';
import { pinnedKey } from './targets.js';

// Both LAN members hold every kept generation: the leader copies each new one to the other
// serving members (`rsync -aHAX --numeric-ids --delete` of the tree, then the manifest, into the
// same node.stateDir/rootfs on the peer), then compares the copy with a checksum dry run
// (`-c -n --itemize-changes`: no line = every file, owner, mode, link and xattr equal to this
// member's copy, which was verified against the manifest) and records `rootfs.verified` for the peer.
// A peer is reached like a node: an entry in deploy.targets under its member name, with a pinned key.

export interface PeerSyncContext {
  deploy: DeployConfig;
  stateDir: string;
  member: string;
  members: readonly string[];
  state: StateLog;
  log: Logger;
  clock: Clock;
}

export class PeerSync {
  #ctx: PeerSyncContext;
  #running: Promise<void> | undefined;
  #again = false;
  #warned = new Set<string>();

  constructor(ctx: PeerSyncContext) {
    this.#ctx = ctx;
  }

  /** Copies what is missing, once at a time; a kick while running schedules one more round. */
  kick(): void {
    if (this.#ctx.members.length === 0) return;
    if (this.#running) { this.#again = true; return; }
    this.#running = this.#round().catch((error) => {
      this.#ctx.log.warn({ event: 'rootfs.peer_sync_failed', err: error }, `copying generations to the peer failed: ${errorMessage(error)}`);
    }).finally(() => {
      this.#running = undefined;
      if (this.#again) { this.#again = false; this.kick(); }
    });
  }

  async stop(): Promise<void> {
    this.#again = false;
    await this.#running;
  }

  async #round(): Promise<void> {
    const { state, deploy, members } = this.#ctx;
    const rootfs = state.fsm.rootfs;
    for (const peer of members) {
      const target = deploy.targets.find((t) => t.name === peer);
      const key = pinnedKey(deploy, state.fsm, peer);
      if (!target || key === undefined) {
        if (!this.#warned.has(peer)) {
          this.#warned.add(peer);
          this.#ctx.log.warn({ event: 'rootfs.peer_unreachable', peer }, `generations are not copied to ${peer}: add it to deploy.targets and pin its host key (lanctl nodes trust ${peer})`);
        }
        continue;
      }
      for (const g of [...rootfs.generations()].reverse()) {
        if (!state.isLeader()) return;
        if (rootfs.verifiedOn(g.id).includes(peer) || !rootfs.verifiedOn(g.id).includes(this.#ctx.member)) continue;
        const ok = await this.#copy(g.id, { node: peer, host: target.host, port: target.port, user: deploy.user }, key);
        await state.propose({ type: 'rootfs.verified', generation: g.id, member: peer, ok });
      }
    }
  }

  async #copy(id: string, target: { node: string; host: string; port: number; user: string }, hostKey: string): Promise<boolean> {
    const work = join(storeDir(this.#ctx.stateDir), `.peer-${target.node}`);
    mkdirSync(work, { recursive: true, mode: 0o700 });
    const knownHosts = join(work, 'known_hosts');
    writeFileSync(knownHosts, knownHostsFile([{ node: target.node, hostKey }]), { mode: 0o600 });
    const ssh = ['ssh', ...sshArgs(target, { knownHostsFile: knownHosts, ...(this.#ctx.deploy.identityFile !== undefined ? { identityFile: this.#ctx.deploy.identityFile } : {}) })].map(shellQuote).join(' ');
    const remote = (path: string): string => `${target.host.includes(':') ? `[${target.host}]` : target.host}:${path}`;
    try {
      // A store kept with --fake-super is read so here and written so on the peer (the same daemon user there).
      const fake = isFakeSuper(this.#ctx.stateDir, id) ? ['--fake-super', '-M--fake-super'] : [];
      const tree = await runRsync(['-aHAX', '--sparse', '--numeric-ids', ...fake, '--delete', '--mkpath', '--timeout=60', '-e', ssh, `${generationDir(this.#ctx.stateDir, id)}/`, remote(`${generationDir(this.#ctx.stateDir, id)}/`)]);
      const besides = [manifestPath(this.#ctx.stateDir, id), ...(fake.length > 0 ? [fakeSuperPath(this.#ctx.stateDir, id)] : [])];
      const manifest = tree.code === 0 ? await runRsync(['-a', '--timeout=60', '-e', ssh, ...besides, remote(`${storeDir(this.#ctx.stateDir)}/`)]) : tree;
      const check = manifest.code === 0 ? await runRsync(['-aHAX', '--numeric-ids', ...fake, '--delete', '-c', '-n', '--itemize-changes', '--timeout=60', '-e', ssh, `${generationDir(this.#ctx.stateDir, id)}/`, remote(`${generationDir(this.#ctx.stateDir, id)}/`)]) : manifest;
      const differing = check.stdout.split('\n').filter((l) => l.trim() !== '');
      const ok = check.code === 0 && differing.length === 0;
      this.#ctx.log[ok ? 'info' : 'warn']({ event: ok ? 'rootfs.peer_verified' : 'rootfs.peer_differs', peer: target.node, generation: id, exit: check.code, differing: differing.slice(0, 20), stderr: check.stderr.slice(-500) },
        ok ? `generation ${id.slice(0, 12)} copied to ${target.node} and verified`
          : `generation ${id.slice(0, 12)} on ${target.node} is not verified (${check.code === 0 ? `${differing.length} paths differ` : describeFailure(check.code, check.stderr, { node: target.node, hostKey })}); the leader copies it again within 30 s`);
      return ok;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}
