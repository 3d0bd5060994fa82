import type { LanhaConfig } from '../config/index.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import { cryptoRandom, type Random } from '../lib/random.js';
import { RaftStateLog, raftDir } from './raft-state-log.js';
import type { PeerLink } from './raft/types.js';
import type { ConfState } from './raft/types.js';
import { Transport, readKeyFile } from './raft/transport.js';
import { LanhaError } from '../lib/errors.js';
import { raftTimers } from './timers.js';

// Builds the daemon's StateLog from the config: no `cluster:` block = a one-member Raft on this
// node's disk (single-node mode); otherwise the members of the block, linked by the transport.

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
  if (cluster.keyFile === undefined) {
    throw new Error('cluster.keyFile is not set: members authenticate each other with a shared key file (32+ random bytes, hex or base64, mode 0600)');
  }
  const key = readKeyFile(cluster.keyFile, log);
  const self = cluster.members.find((m) => m.name === config.node.name);
  if (!self) throw new Error(`node.name ${config.node.name} is not among cluster.members`);
  return new Transport({
    self: self.name,
    clusterId: cluster.id,
    key,
    listen: { host: self.address, port: self.port },
    peers: Object.fromEntries(cluster.members.map((m) => [m.name, { host: m.address, port: m.port }])),
    log: log.child({ service: 'raft-transport' }),
  });
}

export async function openRaftState(config: LanhaConfig, log: Logger, clock: Clock, extras: OpenStateExtras = {}): Promise<RaftStateLog> {
  const cluster = config.cluster;
  if (cluster?.backend === 'etcd') throw new LanhaError('unavailable', 'cluster.backend: etcd is not served by this build yet (only its config and client are); use backend: raft');
  const link = await (extras.link ?? clusterTransport)(config, log);
  return RaftStateLog.open({
    id: config.node.name,
    dir: raftDir(config.node.stateDir),
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
