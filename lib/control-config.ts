import { z } from 'zod';
import { OPERATOR_NAME, parseRemoteListen } from './remote-control.js';

// The `control:` block: the control API over HTTPS with mutual TLS for `lanctl --remote`
// (lib/remote-control.ts). Absent: the unix socket only. Apart from remote-control.ts so that
// lanctl's client commands do not load the schemas.

export const controlConfig = z.object({
  /** The address (and port, 7443 when left out) the remote control listener binds: a LAN address or the node's, never the VIP. */
  listen: z.string({ error: 'is not an address like "10.0.0.2:7443"' })
    .refine((s) => parseRemoteListen(s) !== null, { message: 'is not an IPv4 address with an optional port, like "10.0.0.2:7443"' })
    .transform((s) => parseRemoteListen(s)!),
  /** Operators allowed (their certificates' names); absent: any operator certificate the cluster CA signed. */
  operators: z.array(z.string().regex(OPERATOR_NAME, { message: 'is not an operator name (letters, digits, ".", "_", "-")' })).min(1, { message: 'is an empty list (leave the key out to allow every operator the cluster CA signed)' }).optional(),
  /** Connections open at once; more are closed at accept. */
  maxConnections: z.number().int().min(1).max(1024).default(16),
  /** Of those, open at once from one address (before any certificate is checked): one host cannot take every slot. */
  maxConnectionsPerSource: z.number().int().min(1).max(1024).default(4),
}).strict();

export type ControlConfig = z.output<typeof controlConfig>;

