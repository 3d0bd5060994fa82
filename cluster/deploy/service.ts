import type { ApiRequest, ApiResponse, ApiRoutes } from '../../lib/control-server.js';
import { LanhaError, errorMessage } from '../../lib/errors.js';
import type { ServiceContext, RunningService } from '../../services/contract.js';
import { NotLeaderError } from '../state-log.js';
import type { DeployConfig } from './config.js';
import { storeFakeSuper } from './fake-super.js';
import { describeChanges } from './manifest.js';
import { commitTree, pruneStore, storeDir, storedGenerations, sweepStoreLeftovers, verifyGeneration } from './store.js';
import { PeerSync } from './peer-sync.js';
import { JobRunner } from './jobs.js';
import { fleetTargets, pinnedKey, refuseMembers, resolveNames, resolveTargets } from './targets.js';
import { fingerprint, parseHostKey } from './rsync.js';
import { destinationDir, fetchHostKey } from './push.js';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { formatIpv4 } from '../../lib/ipv4.js';

// The deploy service in the daemon: rootfs commit/list/verify, rollback, deploy jobs (run here
// while this node leads) and pinned host keys, over the control API. Generations dropped from the
// replicated state are deleted from this member's store as their entries apply.

const ORPHAN_CHECK_MS = 1000;
/** Longest a follower's long poll on a job is held open. */
const WAIT_MAX_MS = 25_000;
/** How often the leader retries copying generations to a LAN member that lacks a verified copy. */
const PEER_RETRY_MS = 30_000;

export async function startDeploy(context: ServiceContext): Promise<RunningService> {
  const { config, state, log, clock } = context;
  const deploy = config.deploy as DeployConfig;
  const stateDir = config.node.stateDir;
  const member = config.node.name;
  const rootfs = state.fsm.rootfs;
  const fakeSuper = storeFakeSuper(deploy);
  const runner = new JobRunner({ config: deploy, targets: () => fleetTargets(deploy, state.fsm), clusterId: config.cluster?.id ?? config.node.name, member, stateDir, state, log, clock });

  // Runs as entries apply and at start: a tree it cannot remove is logged, never thrown, or one
  // undeletable directory would fail every commit's entry and then every daemon start.
  const prune = (): void => {
    const keep = new Set(rootfs.generations().map((g) => g.id));
    let dropped: string[];
    try {
      dropped = pruneStore(stateDir, keep);
    } catch (error) {
      log.warn({ event: 'rootfs.prune_failed', err: error }, `cannot drop old generations from the store ${storeDir(stateDir)}: ${errorMessage(error)}; the next commit tries again`);
      return;
    }
    for (const id of dropped) log.info({ event: 'rootfs.dropped', generation: id }, `generation ${id.slice(0, 12)} dropped from the store`);
  };
  const peers = new PeerSync({ deploy, stateDir, member, state, log, clock, members: (config.cluster?.members ?? []).filter((m) => m.role !== 'witness' && m.name !== member).map((m) => m.name) });
  const unsubscribe = state.fsm.subscribe((entry) => {
    const command = entry.command;
    if (command.type === 'deploy.job.start' || command.type === 'deploy.job.resume' || command.type === 'deploy.job.node' || command.type === 'deploy.job.end') runner.changed(command.job);
    if (entry.command.type === 'rootfs.commit') {
      prune();
      if (state.isLeader()) peers.kick();
    }
  });
  const peerTimer = setInterval(() => { if (state.isLeader()) peers.kick(); }, PEER_RETRY_MS);
  peerTimer.unref();
  const orphanTimer = setInterval(() => {
    void runner.markOrphans().catch(() => undefined);
    void runner.stopIfFollower().catch(() => undefined);
  }, ORPHAN_CHECK_MS);
  orphanTimer.unref();

  const fleet = () => fleetTargets(deploy, state.fsm);
  const targetsFor = (names: readonly string[]) => resolveTargets(fleet(), (n) => pinnedKey(deploy, state.fsm, n), deploy.user, names);
  /** The inventory shows assigned/running generations too (`lanctl nodes`): keep it in step for its nodes. */
  const mirror = async (node: string, fields: { assigned?: string; running?: string }): Promise<void> => {
    if (state.fsm.inventory.byName(node)) await state.propose({ type: 'node.generation', name: node, ...fields }).catch(() => undefined);
  };
  const leaderOnly = (): void => {
    if (!state.isLeader()) throw new NotLeaderError(state.status().leader);
  };

  const routes: ApiRoutes = {
    'POST /v1/rootfs/commit': handle(async ({ body }) => {
      leaderOnly();
      const dir = field(body, 'dir');
      const result = await commitTree(dir, stateDir, { fakeSuper });
      await state.propose({ type: 'rootfs.commit', generation: result.id, member, source: dir, ...result.counts, files: result.counts.files });
      log.info({ event: 'rootfs.committed', generation: result.id, ...result.counts, source: dir }, `generation ${result.id.slice(0, 12)} committed from ${dir}`);
      return { status: 200, body: { generation: result.id, created: result.created, counts: result.counts } };
    }),
    'GET /v1/rootfs': handle(() => ({ status: 200, body: rootfsView() })),
    'POST /v1/rootfs/verify': handle(async ({ body }) => {
      const id = generationArg(optionalField(body, 'generation'));
      const changes = await verifyGeneration(stateDir, id);
      const ok = changes.length === 0;
      if (state.isLeader()) await state.propose({ type: 'rootfs.verified', generation: id, member, ok, ...(ok ? {} : { changed: changes.slice(0, 50).map((c) => c.path) }) });
      return { status: 200, body: { generation: id, member, ok, changes } };
    }),
    'POST /v1/rollback': handle(async ({ body }) => {
      leaderOnly();
      const names = resolveNames(fleet(), field(body, 'to'));
      const assigned: Array<{ node: string; from: string; to: string; running: string | null }> = [];
      const refused: Array<{ node: string; why: string }> = [];
      for (const node of names) {
        const target = rootfs.rollbackTarget(node);
        if (!('to' in target)) { refused.push({ node, why: target.why }); continue; }
        await state.propose({ type: 'rootfs.assign', nodes: [node], generation: target.to });
        await mirror(node, { assigned: target.to });
        assigned.push({ node, from: target.from, to: target.to, running: rootfs.node(node)?.running ?? null });
      }
      return { status: 200, body: { assigned, refused } };
    }),
    'POST /v1/deploy/rootfs': handle(async ({ body }) => {
      leaderOnly();
      const t0 = clock.monotonicMs();
      if (deploy.rootfs === undefined) throw new LanhaError('usage', 'deploy.rootfs.destination is not set in the config: where on the nodes the tree goes');
      const id = generationArg(optionalField(body, 'generation'));
      const to = field(body, 'to');
      refuseMembers(fleet(), to, (config.cluster?.members ?? []).map((m) => m.name), member, deploy.rootfs.destination);
      const targets = targetsFor(resolveNames(fleet(), to));
      const changes = await verifyGeneration(stateDir, id, { quick: true });
      const checkMs = Math.round(clock.monotonicMs() - t0);
      if (changes.length > 0) {
        await state.propose({ type: 'rootfs.verified', generation: id, member, ok: false, changed: changes.slice(0, 50).map((c) => c.path) });
        throw new LanhaError('io', `generation ${id.slice(0, 12)} on ${member} no longer matches its manifest, refusing to send it: ${describeChanges(changes)}. Commit the tree again (lanctl rootfs commit DIR)`);
      }
      const job = await runner.startRootfs(id, targets, body !== null && typeof body === 'object' && (body as { dryRun?: unknown }).dryRun === true, { t0, checkMs });
      return { status: 202, body: { job } };
    }),
    'POST /v1/deploy/resume': handle(async ({ body }) => {
      leaderOnly();
      const wanted = optionalField(body, 'job');
      const candidates = rootfs.jobs().filter((j) => (j.state === 'interrupted' || j.state === 'failed') && !runner.isActive(j.id));
      const job = wanted !== undefined ? rootfs.job(wanted) : candidates[candidates.length - 1];
      if (!job) throw new LanhaError('not-found', wanted !== undefined ? `no job ${wanted}` : 'no interrupted or failed job to resume');
      if (job.state === 'done') throw new LanhaError('usage', `job ${job.id} is already done`);
      if (runner.isActive(job.id)) throw new LanhaError('usage', `job ${job.id} is running here`);
      const targets = targetsFor(job.nodes.filter((n) => n.state !== 'done').map((n) => n.name));
      if (job.kind === 'push') {
        await runner.resumePush(job, targets, await identity());
      } else {
        await runner.resume(job, targets);
      }
      return { status: 202, body: { job: job.id } };
    }),
    // `?job=ID&after=V&waitMs=M` is a long poll: the answer comes when the job changes past version V
    // (an entry applied, or live progress), or after M ms (at most WAIT_MAX_MS). `lanctl deploy` follows jobs so.
    'GET /v1/deploy/jobs': handle(async ({ query }) => {
      const id = query.get('job');
      if (id !== null) {
        if (!rootfs.job(id)) return { status: 404, body: { error: `no job ${id}` } };
        const after = Number(query.get('after') ?? 'NaN');
        const waitMs = Math.min(WAIT_MAX_MS, Math.max(0, Number(query.get('waitMs') ?? 0) || 0));
        if (Number.isInteger(after) && waitMs > 0 && (runner.isActive(id) || rootfs.job(id)!.state === 'running')) await runner.waitChange(id, after, waitMs);
        const job = rootfs.job(id);
        if (!job) return { status: 404, body: { error: `no job ${id}` } };
        const timings = runner.timings(id);
        return { status: 200, body: { job, live: runner.live(id), active: runner.isActive(id), version: runner.version(id), ...(timings ? { timings } : {}) } };
      }
      return { status: 200, body: { jobs: rootfs.jobs() } };
    }),
    'POST /v1/deploy/cancel': handle(async ({ body }) => {
      const id = field(body, 'job');
      const cancelled = await runner.cancel(id);
      if (!cancelled) {
        const job = rootfs.job(id);
        if (job === undefined) throw new LanhaError('not-found', `no deploy job ${id} (lanctl deploy jobs lists them)`);
        if (job.state !== 'running') throw new LanhaError('usage', `job ${id} already ended: ${job.state}`);
        throw new LanhaError('not-found', `job ${id} is not run by ${member} but by ${job.member}: run the command there`);
      }
      return { status: 200, body: { job: rootfs.job(id) } };
    }),
    'POST /v1/rootfs/report': handle(async ({ body }) => {
      leaderOnly();
      const ip = field(body, 'ip');
      const generation = generationArg(field(body, 'generation'));
      const b = body as { exit?: unknown; bytes?: unknown; ok?: unknown };
      const exit = typeof b.exit === 'number' ? b.exit : -1;
      const bytes = typeof b.bytes === 'number' ? b.bytes : 0;
      const ok = b.ok === true && exit === 0;
      const lease = [...state.fsm.leases()].find((l) => formatIpv4(l.ip) === ip && l.state === 'bound');
      const node = fleet().find((t) => t.host === ip)?.name ?? (lease ? state.fsm.inventory.byMac(lease.mac)?.name : undefined);
      if (node === undefined) throw new LanhaError('not-found', `no node has address ${ip} (inventory, deploy.targets)`);
      if (lease) {
        await state.propose({ type: 'node.boot', mac: lease.mac, event: 'rsync', detail: `gen=${generation.slice(0, 12)} bytes=${bytes} exit=${exit}` });
        if (ok) await state.propose({ type: 'node.boot', mac: lease.mac, event: 'verified', detail: `gen=${generation.slice(0, 12)}` });
      }
      await state.propose({ type: 'deploy.synced', node, generation, ok, exit, bytes });
      if (ok) await mirror(node, { running: generation });
      log.info({ event: 'deploy.sync.reported', node, ip, generation, ok, exit, bytes }, `${node} reports its pull of ${generation.slice(0, 12)}: ${ok ? 'verified' : 'NOT verified'}`);
      return { status: 200, body: { node, generation, ok, boot: rootfs.bootGeneration(node) } };
    }),
    'POST /v1/deploy/push': handle(async ({ body }) => {
      leaderOnly();
      const raw = body !== null && typeof body === 'object' ? (body as { files?: unknown }).files : undefined;
      if (!Array.isArray(raw) || raw.length === 0 || !raw.every((f) => typeof f === 'string')) throw new LanhaError('usage', 'the request needs "files": a list of paths');
      const names = new Set<string>();
      for (const path of raw as string[]) {
        const name = basename(path);
        if (names.has(name)) throw new LanhaError('usage', `two files are named ${name}; they would land on the same path`);
        names.add(name);
      }
      const dir = destinationDir(deploy.pushRoot, optionalField(body, 'dest'));
      const targets = targetsFor(resolveNames(fleet(), field(body, 'to')));
      const job = await runner.startPush(raw as string[], targets, dir, optionalField(body, 'then'), await identity());
      return { status: 202, body: { job } };
    }),
    'POST /v1/deploy/fetch-key': handle(async ({ body }) => {
      const node = field(body, 'node');
      const t = fleet().find((x) => x.name === node);
      if (!t) throw new LanhaError('not-found', `unknown node ${node}, or it has no address yet (inventory, deploy.targets)`);
      const current = pinnedKey(deploy, state.fsm, node);
      const pinned = current === undefined ? null : parseHostKey(current);
      const target = { node, host: t.host, port: t.port, user: deploy.user };
      // With a key pinned, ask for its type first (a node has several); a node that no longer has one
      // of that type offers what it has, and is told apart as changed.
      const offered = pinned === null ? await fetchHostKey(target) : await fetchHostKey(target, 10_000, pinned.type).catch(() => fetchHostKey(target));
      const key = parseHostKey(offered);
      if (key === null) throw new LanhaError('io', `${node} offered a host key lanha cannot pin (${offered.split(' ')[0]}); it pins ssh-ed25519, ecdsa-sha2-* and ssh-rsa keys`);
      const status = pinned === null ? 'new' : pinned.base64 === key.base64 ? 'same' : 'changed';
      if (status === 'changed') log.warn({ event: 'deploy.hostkey.changed', node, fingerprint: fingerprint(key.blob), pinned: fingerprint(pinned!.blob) }, `host key of ${node} changed`);
      return { status: 200, body: { node, host: t.host, port: t.port, hostKey: offered, fingerprint: fingerprint(key.blob), status, ...(pinned ? { pinnedFingerprint: fingerprint(pinned.blob) } : {}) } };
    }),
    'POST /v1/deploy/trust': handle(async ({ body }) => {
      leaderOnly();
      const node = field(body, 'node');
      // Only a node deploy can reach (deploy.targets, LAN peers among them) or an inventory node
      // (one without an address yet may be pinned ahead of its first boot): a key pinned for any
      // other name would wait there for a node to be given that name later.
      if (!state.fsm.inventory.byName(node) && !fleet().some((t) => t.name === node)) {
        throw new LanhaError('not-found', `unknown node ${node}: it is neither in the inventory nor in deploy.targets; add it first, then pin its key`);
      }
      const key = parseHostKey(field(body, 'hostKey'));
      if (!key) throw new LanhaError('usage', 'hostKey is not an OpenSSH public key ("ssh-ed25519 AAAA...")');
      const fp = fingerprint(key.blob);
      const expected = deploy.knownHosts[node];
      if (expected !== undefined && expected.replace(/=+$/, '') !== fp) {
        log.warn({ event: 'deploy.hostkey.mismatch', node, fingerprint: fp, expected }, `host key of ${node} is not the one deploy.knownHosts expects`);
        throw new LanhaError('usage', `the key of ${node} (${fp}) is not the one deploy.knownHosts.${node} expects (${expected}); refused`);
      }
      const current = pinnedKey(deploy, state.fsm, node);
      const replace = body !== null && typeof body === 'object' && (body as { replace?: unknown }).replace === true;
      if (current !== undefined && parseHostKey(current)?.base64 !== key.base64 && !replace) {
        log.warn({ event: 'deploy.hostkey.changed', node, fingerprint: fp, pinned: fingerprint(parseHostKey(current)!.blob) }, `host key of ${node} changed; refused`);
        throw new LanhaError('usage', `the host key of ${node} changed: pinned ${fingerprint(parseHostKey(current)!.blob)}, offered ${fp}. Refused; if the node was reinstalled, check it and pass --replace`);
      }
      const hostKey = `${key.type} ${key.base64}`;
      // The inventory holds the keys of its nodes; LAN members and deploy.targets-only nodes stay here.
      if (state.fsm.inventory.byName(node)) await state.propose({ type: 'node.trust', name: node, hostKey });
      else await state.propose({ type: 'deploy.trust', node, hostKey });
      return { status: 200, body: { node, fingerprint: fp } };
    }),
  };

  /** The private key deploy logs in with (push jobs; ssh2 needs it in memory). */
  async function identity(): Promise<Buffer> {
    const file = deploy.identityFile;
    if (file === undefined) throw new LanhaError('usage', 'deploy.identityFile is not set: the private key deploy logs in with');
    return readFile(file).catch((error) => { throw new LanhaError('io', `cannot read deploy.identityFile ${file}: ${errorMessage(error)}`); });
  }

  function rootfsView(): unknown {
    const stored = new Set(storedGenerations(stateDir));
    return {
      member,
      generations: rootfs.generations().map((g) => ({ ...g, verifiedOn: rootfs.verifiedOn(g.id), storedHere: stored.has(g.id) })),
      nodes: fleet().map((t) => {
        const n = rootfs.node(t.name);
        return { name: t.name, assigned: n?.assigned ?? null, running: n?.running ?? null, boot: rootfs.bootGeneration(t.name) ?? null, pinned: pinnedKey(deploy, state.fsm, t.name) !== undefined };
      }),
    };
  }

  function generationArg(text: string | undefined): string {
    if (text === undefined) {
      const newest = rootfs.newest();
      if (!newest) throw new LanhaError('not-found', 'no rootfs generation committed yet: lanctl rootfs commit DIR');
      return newest.id;
    }
    const matches = rootfs.generations().filter((g) => g.id.startsWith(text.toLowerCase()));
    if (text.length < 4 || matches.length === 0) throw new LanhaError('not-found', `no generation ${text} (lanctl rootfs list shows them)`);
    if (matches.length > 1) throw new LanhaError('usage', `${text} names more than one generation; give more characters`);
    return matches[0]!.id;
  }

  prune();
  // What a daemon that stopped mid-commit, mid-copy or mid-job left: nothing of this daemon runs yet.
  let leftovers: Array<{ path: string; bytes: number }> = [];
  try {
    leftovers = sweepStoreLeftovers(stateDir);
  } catch (error) {
    // A read-only or failing state file system must not stop the daemon's start (DNS, TFTP, NTP).
    log.warn({ event: 'rootfs.leftover_unremovable', err: error }, `cannot remove what a cut-off commit or copy left in the store ${storeDir(stateDir)}: ${errorMessage(error)}; the next start tries again`);
  }
  for (const { path, bytes } of leftovers) {
    log.info({ event: 'rootfs.leftover_swept', path, bytes }, `removed ${path} (${bytes} bytes), left in the generation store by a commit, a copy to the peer member or a write that was cut off`);
  }
  runner.sweepWorkDirs();
  await runner.endStaleMasters();
  return {
    name: 'deploy',
    routes,
    status: () => ({ listening: [], generations: rootfs.generations().length, runningJobs: rootfs.jobs().filter((j) => j.state === 'running').length }),
    async stop() {
      clearInterval(orphanTimer);
      clearInterval(peerTimer);
      await peers.stop();
      unsubscribe();
      await runner.stop();
    },
  };
}

function handle(fn: (request: ApiRequest) => Promise<ApiResponse> | ApiResponse): (request: ApiRequest) => Promise<ApiResponse> {
  return async (request) => {
    try {
      return await fn(request);
    } catch (error) {
      if (error instanceof NotLeaderError) return { status: 409, body: { error: `${error.message}: run the command there (deploy jobs run on the leader)` } };
      if (error instanceof LanhaError) return { status: error.code === 'not-found' ? 404 : 400, body: { error: error.message } };
      return { status: 500, body: { error: errorMessage(error) } };
    }
  };
}

function field(body: unknown, name: string): string {
  const value = optionalField(body, name);
  if (value === undefined) throw new LanhaError('usage', `the request needs "${name}"`);
  return value;
}

function optionalField(body: unknown, name: string): string | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

