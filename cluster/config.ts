import { z } from 'zod';
import { duration, hostname, port, refuseDuplicates } from '../lib/schema.js';
import { etcdConfig } from './etcd/config.js';

// The `cluster:` block: the members and where the replicated state lives: the embedded Raft log
// (`backend: raft`, the default) or an existing etcd v3 cluster (`backend: etcd` + `etcd:`).
// Absent = a one-member Raft cluster (single-node mode).

const member = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/i, { message: 'is not a member name (letters, digits, "-")' }),
  address: z.string().min(1),
  port: port.default(7400),
  role: z.enum(['server', 'witness']).default('server'),
  /** With cluster.tls: the SHA-256 of this member's certificate (hex, colons allowed); its links accept no other. */
  certSha256: z.string().regex(/^(?:[0-9a-f]{64}|[0-9a-f]{2}(?::[0-9a-f]{2}){31})$/i, { message: 'is not a SHA-256 fingerprint (64 hex digits, colons between pairs allowed)' }).optional(),
}).strict();

/** Mutual TLS for the Raft peer links: PEM files, made by `lanctl init --tls` (cluster/raft/tls.ts checks them). */
const clusterTls = z.object({
  /** The cluster CA's certificate: a peer's certificate must be signed by it. */
  ca: z.string().min(1),
  /** This member's certificate (its DNS SAN is the member name). */
  cert: z.string().min(1),
  /** This member's ECDSA P-256 private key, mode 0600. */
  key: z.string().min(1),
}).strict();

export const clusterConfig = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/i, { message: 'is not a cluster id (letters, digits, ".", "_", "-")' }),
  members: z.array(member).min(1),
  /** A file holding the shared cluster key (32+ random bytes, hex or base64); mode 0600. */
  keyFile: z.string().optional(),
  /** Mutual TLS 1.3 for the peer links instead of keyFile (giving both is an error). */
  tls: clusterTls.optional(),
  /** Raft heartbeat (default 100 ms); derived from failoverBudget when that is given (cluster/timers.ts). */
  heartbeat: duration.optional(),
  /** Minimum Raft election timeout (default 500 ms); derived from failoverBudget when that is given. */
  electionTimeout: duration.optional(),
  /** The longest unplanned VIP gap accepted: heartbeat, election timeout and leader lease follow from it. */
  failoverBudget: duration.optional(),
  /** Daemon pauses (GC, SD-card stalls) the timers must ride out without a failover. */
  pauseTolerance: duration.default(100),
  witnessElectionFactor: z.number().min(1).max(10).default(3),
  snapshotEntries: z.number().int().min(10).default(10_000),
  /** Where the replicated state lives: the embedded Raft log, or an etcd v3 cluster (the `etcd:` block). */
  backend: z.enum(['raft', 'etcd']).default('raft'),
  etcd: etcdConfig.optional(),
}).strict().superRefine((c, ctx) => {
  if (c.backend === 'etcd' && c.etcd === undefined) ctx.addIssue({ code: 'custom', path: ['etcd'], message: 'is missing: cluster.backend is etcd (give etcd.endpoints)' });
  if (c.backend === 'raft' && c.etcd !== undefined) ctx.addIssue({ code: 'custom', path: ['etcd'], message: 'is set but cluster.backend is raft (set backend: etcd, or remove the block)' });
  if (c.backend === 'etcd') {
    c.members.forEach((m, i) => {
      if (m.role === 'witness') ctx.addIssue({ code: 'custom', path: ['members', i, 'role'], message: 'is witness, but with backend etcd the etcd members vote (remove the witness)' });
    });
  }
  if (c.tls !== undefined && c.keyFile !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'is set and so is cluster.tls: give one (tls for a new site; keyFile stays for sites that run with it; all members alike)' });
  }
  if (c.tls !== undefined && c.backend === 'etcd') ctx.addIssue({ code: 'custom', path: ['tls'], message: 'secures the Raft peer links, but cluster.backend is etcd (use cluster.etcd.tls)' });
  c.members.forEach((m, i) => {
    if (m.certSha256 !== undefined && c.tls === undefined) ctx.addIssue({ code: 'custom', path: ['members', i, 'certSha256'], message: 'is set but cluster.tls is not (pins apply to TLS certificates)' });
  });
  refuseDuplicates(ctx, c.members.map((m, i) => ({ key: m.name, path: ['members', i, 'name'] })), ['cluster'], 'is a duplicate member name: also');
  refuseDuplicates(ctx, c.members.map((m, i) => ({ key: `${m.address}:${m.port}`, path: ['members', i, 'address'] })), ['cluster'], 'is, with the same port, the address of another member:');
});

export type ClusterConfig = z.output<typeof clusterConfig>;
export type ClusterMemberConfig = ClusterConfig['members'][number];
export { hostname };
