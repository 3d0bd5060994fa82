import { z } from 'zod';
import { duration, hostname, port, refuseDuplicates } from '../lib/schema.js';

// The `cluster:` block: the Raft membership. Absent = a one-member cluster (single-node mode).

const member = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/i, { message: 'is not a member name (letters, digits, "-")' }),
  address: z.string().min(1),
  port: port.default(7400),
  role: z.enum(['server', 'witness']).default('server'),
}).strict();

export const clusterConfig = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/i, { message: 'is not a cluster id (letters, digits, ".", "_", "-")' }),
  members: z.array(member).min(1),
  /** A file holding the shared cluster key (32+ random bytes, hex or base64); mode 0600. */
  keyFile: z.string().optional(),
  heartbeat: duration.default(100),
  electionTimeout: duration.default(500),
  witnessElectionFactor: z.number().min(1).max(10).default(3),
  snapshotEntries: z.number().int().min(10).default(10_000),
}).strict().superRefine((c, ctx) => {
  refuseDuplicates(ctx, c.members.map((m, i) => ({ key: m.name, path: ['members', i, 'name'] })), ['cluster'], 'is a duplicate member name: also');
  refuseDuplicates(ctx, c.members.map((m, i) => ({ key: `${m.address}:${m.port}`, path: ['members', i, 'address'] })), ['cluster'], 'is, with the same port, the address of another member:');
});

export type ClusterConfig = z.output<typeof clusterConfig>;
export type ClusterMemberConfig = ClusterConfig['members'][number];
export { hostname };
