import { z } from 'zod';
import { port } from '../../lib/schema.js';

// The `deploy:` block: where binaries and the root filesystem go.

export const deployConfig = z.object({
  user: z.string().default('root'),
  identityFile: z.string().optional(),
  knownHosts: z.record(z.string(), z.string().regex(/^SHA256:[A-Za-z0-9+/=]{43,44}$/, { message: 'is not a SHA256 host-key fingerprint ("SHA256:...")' })).default({}),
  targets: z.array(z.object({
    name: z.string().min(1),
    host: z.string().min(1),
    port: port.default(22),
    groups: z.array(z.string()).default([]),
  }).strict()).default([]),
  rootfs: z.object({
    source: z.string().min(1),
    destination: z.string().min(1),
    exclude: z.array(z.string()).default([]),
  }).strict().optional(),
  parallel: z.number().int().min(1).max(64).default(8),
}).strict();

export type DeployConfig = z.output<typeof deployConfig>;
