import type { LanhaConfig } from '../config/index.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import { cryptoRandom, type Random } from '../lib/random.js';
import { RaftStateLog, memberFile, raftDir } from './raft-state-log.js';
import type { PeerLink } from './raft/types.js';
import type { ConfState } from './raft/types.js';
import { Transport, readKeyFile } from './raft/transport.js';
import { clusterTlsMaterial, formatTlsProblems, type TlsMaterial } from './raft/tls.js';
import { readFileSync } from 'node:fs';
import { ExitCode, LanhaError } from '../lib/errors.js';
import { linkLiveness, raftTimers } from './timers.js';
import type { StateLog } from './state-log.js';
import { EtcdClient } from './etcd/client.js';
import { etcdPrefix } from './etcd/prefix.js';
import { EtcdStateLog } from './etcd/state-log.js';

// Builds the daemon's StateLog from the config: no `cluster:` block = a one-member Raft on this
// node's disk (single-node mode); `backend: raft` = the members of the block, linked by the
// transport; `backend: etcd` = the state on an etcd v3 cluster (etcd/state-log.ts).

export interface OpenStateExtras {
  random?: Random;
  /** The peer transport; built from the config by the caller when a cluster block is present. */
  link?: (config: LanhaConfig, log: Logger) => Promise<PeerLink | undefined>;
}

export function bootstrapConf(config: LanhaConfig): ConfState {
  const members = config.cluster?.members;
  if (!members) return { voters: [config.node.name], learners: [], witnesses: [] };
  return {
    voters: members.map((m) => m.name),
    learners: [],
    witnesses: members.filter((m) => m.role === 'witness').map((m) => m.name),
  };
}

/** The authenticated TCP transport between the members of the `cluster:` block. */
export async function clusterTransport(config: LanhaConfig, log: Logger): Promise<PeerLink | undefined> {
  const cluster = config.cluster;
  if (!cluster || cluster.members.length === 1) return undefined;
  const self = cluster.members.find((m) => m.name === config.node.name);
  if (!self) throw new Error(`node.name ${config.node.name} is not among cluster.members`);
  let security: { tls: TlsMaterial } | { key: Uint8Array };
  if (cluster.tls !== undefined) {
    const read = clusterTlsMaterial(cluster, self.name, Date.now());
    // Exit status 2, as for any refused config: systemd does not restart into the same refusal.
    if (!read.ok) throw new LanhaError('config-invalid', `the peer links' TLS files (cluster.tls) are not usable:\n${formatTlsProblems(read.problems)}`, ExitCode.config);
    security = { tls: read.material };
  } else if (cluster.keyFile !== undefined) {
    security = { key: readKeyFile(cluster.keyFile, log) };
  } else {
    throw new Error('neither cluster.tls nor cluster.keyFile is set: members authenticate each other with certificates (lanctl init --tls) or a shared key file (lanctl init)');
  }
  return new Transport({
    self: self.name,
    clusterId: cluster.id,
    ...security,
    listen: { host: self.address, port: self.port },
    peers: Object.fromEntries(cluster.members.map((m) => [m.name, { host: m.address, port: m.port }])),
    log: log.child({ service: 'raft-transport' }),
    liveness: linkLiveness(raftTimers(cluster)),
  });
}

export async function openRaftState(config: LanhaConfig, log: Logger, clock: Clock, extras: OpenStateExtras = {}): Promise<RaftStateLog> {
  const cluster = config.cluster;
  const link = await (extras.link ?? clusterTransport)(config, log);
  return RaftStateLog.open({
    id: config.node.name,
    dir: raftDir(config.node.stateDir),
    ...(cluster !== undefined && cluster.members.length > 1 ? { memberFile: memberFile(config.node.stateDir) } : {}),
    conf: bootstrapConf(config),
    clock,
    random: extras.random ?? cryptoRandom,
    log: log.child({ service: 'raft' }),
    ...raftTimers(cluster),
    witnessFactor: cluster?.witnessElectionFactor ?? 3,
    snapshotEntries: cluster?.snapshotEntries ?? 10_000,
    serves: config.node.role !== 'witness',
    ...(link ? { link } : {}),
  });
}

/** The StateLog the config asks for: the embedded Raft log, or the state on etcd. */
export async function openState(config: LanhaConfig, log: Logger, clock: Clock, extras: OpenStateExtras = {}): Promise<StateLog> {
  if (config.cluster?.backend === 'etcd') return openEtcdState(config, log, clock);
  return openRaftState(config, log, clock, extras);
}

/** Reads a file the `cluster.etcd` block names; the error names the key path and the file. */
function readNamed(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new LanhaError('config-unreadable', `cluster.etcd.${key}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** An etcd client from the `cluster.etcd` block (TLS and password files read here). */
export function etcdClient(config: LanhaConfig): EtcdClient {
  const etcd = config.cluster?.etcd;
  if (!etcd) throw new LanhaError('config-invalid', 'cluster.etcd is not set');
  const tls = etcd.tls === undefined ? undefined : {
    ...(etcd.tls.ca !== undefined ? { ca: readNamed(etcd.tls.ca, 'tls.ca') } : {}),
    ...(etcd.tls.cert !== undefined ? { cert: readNamed(etcd.tls.cert, 'tls.cert') } : {}),
    ...(etcd.tls.key !== undefined ? { key: readNamed(etcd.tls.key, 'tls.key') } : {}),
  };
  const auth = etcd.username !== undefined && etcd.passwordFile !== undefined
    ? { username: etcd.username, password: readNamed(etcd.passwordFile, 'passwordFile').toString('utf8').trim() }
    : undefined;
  return new EtcdClient({ endpoints: etcd.endpoints, dialTimeoutMs: etcd.dialTimeout, requestTimeoutMs: etcd.requestTimeout, ...(tls ? { tls } : {}), ...(auth ? { auth } : {}) });
}

export async function openEtcdState(config: LanhaConfig, log: Logger, clock: Clock): Promise<EtcdStateLog> {
  const cluster = config.cluster!;
  const etcd = cluster.etcd!;
  return EtcdStateLog.open({
    id: config.node.name,
    client: etcdClient(config),
    prefix: etcdPrefix(etcd, cluster.id),
    clock,
    log: log.child({ service: 'etcd' }),
    leaseTtlMs: etcd.leaseTtl,
    serves: config.node.role !== 'witness',
    snapshotEntries: cluster.snapshotEntries,
  });
}
