import { z } from 'zod';
import { port, refuseDuplicates } from '../../lib/schema.js';

// The `deploy:` block: where binaries and the root filesystem go, and how to reach the nodes.

const hostKey = z.string().regex(/^(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+ [A-Za-z0-9+/]+={0,2}( .*)?$/, { message: 'is not an OpenSSH public key ("ssh-ed25519 AAAA...")' });

/** A target or group name: also a file name (the peer's work directory, the per-node overlay). */
const targetName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { message: 'is not a name of 1-63 letters, digits, ".", "_" or "-" (no "/", not starting with "." or "-")' });

export const deployConfig = z.object({
  /** Passed to ssh as `-l USER`: a login name, never an option. */
  user: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, { message: 'is not a login name (letters, digits, "_", "." and "-", not starting with "-")' }).default('root'),
  identityFile: z.string().optional(),
  /** Expected fingerprints: a key fetched by `lanctl nodes trust` must match when one is given. */
  knownHosts: z.record(z.string(), z.string().regex(/^SHA256:[A-Za-z0-9+/=]{43,44}$/, { message: 'is not a SHA256 host-key fingerprint ("SHA256:...")' })).default({}),
  /** Full pinned host keys seeded from the config (the log's `lanctl nodes trust` keys win). */
  hostKeys: z.record(z.string(), hostKey).default({}),
  targets: z.array(z.object({
    name: targetName,
    /** A host name or address: ssh and rsync take it as an argument, so no leading "-", no spaces. */
    host: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.:-]*)$/, { message: 'is not a host name or address (letters, digits, ".", ":" and "-", not starting with "-")' }),
    port: port.default(22),
    groups: z.array(targetName).default([]),
  }).strict()).default([]),
  rootfs: z.object({
    source: z.string().min(1).optional(),
    destination: z.string().min(1),
    exclude: z.array(z.string()).default([]),
  }).strict().optional(),
  parallel: z.number().int().min(1).max(64).default(8),
  /** Per-node files laid over the rootfs (e.g. <overlayDir>/<node>/etc/ssh/ssh_host_ed25519_key). */
  overlayDir: z.string().min(1).optional(),
  /** `lanctl deploy push --dest DIR` must stay under this directory on the nodes. */
  pushRoot: z.string().min(1).default('/'),
  /** The local user compute nodes pull generations as (`lanctl internal ssh-gate`). */
  syncUser: z.string().default('lanha-sync'),
  /**
   * Keep owners, set-id modes and device files of the generation store in xattrs (rsync
   * --fake-super) instead of on the files: what a daemon that is not root needs. 'auto': when the
   * daemon does not run as root.
   */
  fakeSuper: z.union([z.boolean(), z.literal('auto')]).default('auto'),
}).strict().superRefine((c, ctx) => {
  refuseDuplicates(ctx, c.targets.map((t, i) => ({ key: t.name, path: ['targets', i, 'name'] })), ['deploy'], 'is the name of another target:');
});

export type DeployConfig = z.output<typeof deployConfig>;

// storeFakeSuper lives in fake-super.ts (no schema there: the daemon's services import it without loading
// zod); kept here for the config's other readers.
export { storeFakeSuper } from './fake-super.js';
