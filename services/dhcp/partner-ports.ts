import { connect } from 'node:net';
import type { PartnerPorts } from '../../cluster/degraded.js';

// What the partner's ports say (cluster/degraded.ts PartnerPorts), for degraded mode's look at a
// partner whose reports are silent while its address answers ARP: its machine is up, and either its
// lanha is down (nothing listens: the kernel resets a connect at once) or the cluster link failed
// while it runs (a cut drops the connect: no answer; a port that accepts: it runs). A paused lanha's
// kernel still accepts, so a reset means no process at all. Two ports must reset: the cluster port
// and the DNS port, so a firewall resetting the cluster port alone never passes for a dead lanha.

/** One TCP connect: `refused` on a reset, `open` when accepted (closed again at once), `silent` on a timeout or any other error. */
export function knock(host: string, port: number, timeoutMs: number): Promise<PartnerPorts> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (r: PartnerPorts): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('silent'), timeoutMs);
    socket.once('connect', () => done('open'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ECONNREFUSED' ? 'refused' : 'silent'));
  });
}

/** How long a knock waits for an answer: a reset or an accept on a LAN comes in well under a millisecond. */
export const KNOCK_TIMEOUT_MS = 500;

/** The partner's ports together: `refused` only when every one reset; `open` when any accepted; else `silent`. */
export async function partnerPorts(host: string, ports: readonly number[], timeoutMs = KNOCK_TIMEOUT_MS): Promise<PartnerPorts> {
  const answers = await Promise.all(ports.map((port) => knock(host, port, timeoutMs)));
  if (answers.length >= 2 && answers.every((a) => a === 'refused')) return 'refused';
  return answers.includes('open') ? 'open' : 'silent';
}
