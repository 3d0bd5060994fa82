import { z } from 'zod';
import { duration, listenAddress, port, refuseRepeats } from '../../lib/schema.js';
import { linearRegExpProblem } from '../../lib/linear-regexp.js';

// The `tftp:` block.

export const tftpConfig = z.object({
  port: port.default(69),
  listen: z.array(listenAddress).optional(),
  root: z.string().min(1, { message: 'is empty (give the directory to serve)' }),
  blksizeMax: z.number().int().min(8).max(65464).default(1468),
  windowsizeMax: z.number().int().min(1).max(64).default(16),
  maxTransfers: z.number().int().min(1).default(64),
  perClientTransfers: z.number().int().min(1).default(4),
  timeout: duration.default(1000),
  retries: z.number().int().min(1).max(50).default(5),
  idleTimeout: duration.default(60_000),
  /** Worker threads that run the transfers (0: on the main thread). */
  workers: z.number().int().min(0).max(16).default(2),
  /**
   * The block cache for files many clients read at once, ONE for all transfer threads (a
   * SharedArrayBuffer: its pages become resident only as chunks are read into them). 64 MiB holds
   * kernels and initramfs images; past it, chunks come from the kernel's page cache again (one read
   * per 1 MiB).
   */
  cacheMiB: z.number().int().min(1).max(4096).default(64),
  /**
   * After a lock-step transfer sends a block, poll for its ACK without sleeping for at most this
   * many microseconds (busy-poll.ts); 0 turns it off. Only while one transfer runs on a thread.
   */
  busyPollUs: z.number().int({ message: 'is not a whole number of microseconds' }).min(0).max(2000).default(200),
  remap: z.array(z.object({
    match: z.string().superRefine((s, ctx) => {
      const problem = linearRegExpProblem(s);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
    }),
    replace: z.string(),
  }).strict()).default([]),
}).strict().superRefine((c, ctx) => {
  refuseRepeats(ctx, c.listen, ['listen'], ['tftp']);
});

export type TftpConfig = z.output<typeof tftpConfig>;
