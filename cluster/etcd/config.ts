import { z } from 'zod';
import { duration } from '../../lib/schema.js';

// The `cluster.etcd:` block: where an existing etcd v3 cluster is and how to talk to it, used when
// `cluster.backend: etcd`. Files (TLS, password) are named here and read at start-up, so a wrong
// path fails `serve` with the key named, not the config check.

const endpoint = z.string({ error: 'is not an etcd endpoint (text like "http://10.0.0.5:2379")' })
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && (u.pathname === '/' || u.pathname === '') && u.search === '' && u.username === '';
    } catch {
      return false;
    }
  }, { message: 'is not an etcd client URL like "http://10.0.0.5:2379" or "https://etcd1:2379" (scheme, host, port; no path)' });

const prefix = z.string().regex(/^\/[\x21-\x7e]*\/$/, { message: 'is not a key prefix: it starts and ends with "/" and holds printable ASCII without spaces' });

export const etcdConfig = z.object({
  /** Client URLs of the etcd members; tried in order, the next one when one fails. */
  endpoints: z.array(endpoint).min(1),
  /** Every key of this site lives under it; default `/lanha/<cluster.id>/`. */
  prefix: prefix.optional(),
  tls: z.object({
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
  }).strict().optional(),
  username: z.string().min(1).optional(),
  /** A file holding the etcd user's password (one line; mode 0600). */
  passwordFile: z.string().min(1).optional(),
  /** How long to wait for a TCP (and TLS) connection to one endpoint before trying the next. */
  dialTimeout: duration.default(2000),
  /** How long one request may take before the endpoint counts as failed. */
  requestTimeout: duration.default(5000),
  /** The TTL of the leadership lease: the longest a dead or cut-off leader can keep others from leading. */
  leaseTtl: duration.default(2000),
}).strict().superRefine((c, ctx) => {
  if (c.leaseTtl % 1000 !== 0 || c.leaseTtl < 1000 || c.leaseTtl > 60_000) {
    ctx.addIssue({ code: 'custom', path: ['leaseTtl'], message: 'is not a whole number of seconds from 1s to 60s (etcd leases count whole seconds)' });
  }
  if (c.dialTimeout < 100) ctx.addIssue({ code: 'custom', path: ['dialTimeout'], message: 'is shorter than 100ms' });
  if (c.requestTimeout < 200) ctx.addIssue({ code: 'custom', path: ['requestTimeout'], message: 'is shorter than 200ms' });
  if ((c.tls?.cert === undefined) !== (c.tls?.key === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['tls', c.tls?.cert === undefined ? 'cert' : 'key'], message: 'is missing: a client certificate needs both tls.cert and tls.key' });
  }
  if ((c.username === undefined) !== (c.passwordFile === undefined)) {
    ctx.addIssue({ code: 'custom', path: [c.username === undefined ? 'username' : 'passwordFile'], message: 'is missing: etcd authentication needs both username and passwordFile' });
  }
  const schemes = new Set(c.endpoints.map((e) => e.split(':')[0]));
  if (schemes.size > 1) ctx.addIssue({ code: 'custom', path: ['endpoints'], message: 'mixes http:// and https:// endpoints (use one scheme for all)' });
  if (c.tls !== undefined && schemes.has('http')) {
    c.endpoints.forEach((e, i) => {
      if (e.startsWith('http:')) ctx.addIssue({ code: 'custom', path: ['endpoints', i], message: 'is plain http while tls: is set (use https://)' });
    });
  }
});

export type EtcdConfig = z.output<typeof etcdConfig>;

// etcdPrefix lives in prefix.ts (no schema there: the daemon's services import it without loading
// zod); kept here for the config's other readers.
export { etcdPrefix } from './prefix.js';
