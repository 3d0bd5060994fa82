import type { Command } from '../../cluster/commands.js';

// Helpers the StateLog tests share: a numbered lease grant, and a bounded wait for a condition.

/** A grant of 10.0.0.0 + i to MAC 02:00:00:00:hi:lo (i below 65536). */
export function grantCommand(i: number): Command {
  const hex = (v: number): string => v.toString(16).padStart(2, '0');
  return { type: 'lease.grant', ip: 0x0a000000 + i, mac: `02:00:00:00:${hex((i >> 8) & 0xff)}:${hex(i & 0xff)}`, subnet: '10.0.0.0/8', leaseMs: 3_600_000 };
}

/** Polls every 10 ms until `condition` holds; throws naming `what` after `ms`. */
export async function until(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
