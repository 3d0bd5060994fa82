import { createSocket, type RemoteInfo } from 'node:dgram';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { literalLookup } from '../../lib/udp-lookup.js';
import { DatagramSender, onDatagram } from '../../lib/udp-direct.js';
import type { WakeMeasurement } from './wake.js';
import type { ProberData, ProberMessage } from './wake-probe-worker.js';

// Measures how late this event loop reads a datagram that arrives while it sleeps (the lateness of
// an NTP receive stamp), and what our own send call costs (the earliness of a transmit stamp): a
// short-lived thread (wake-probe-worker.ts) sends stamped probes over loopback to a socket of ours,
// and the delay from its stamp to our handler's first statement is what a request's stamp pays.
// Probes carry a random token and must come from the prober's loopback socket: nobody else can
// feed the estimate. The thread exits when the run ends (a run takes about count x 1.5 x spacing).
// Shell code; the arithmetic is in wake.ts.

/**
 * A probe counts only if the event loop was idle for most of the time since the previous one: a
 * probe that queued behind other work (a request flood, start-up) measures that work, not the
 * wake-up, and would overcorrect the quiet hours after it.
 */
export const PROBE_BUSY_MAX = 0.2;

export interface WakeProbeOptions {
  count?: number;
  spacingMs?: number;
  /** Ends the run early (the service stops). */
  signal?: AbortSignal;
  /** Tests: the probe socket's port, once bound (to send it forged probes). */
  onBound?: (port: number) => void;
}

const SEND_SAMPLES = 32;

/** One probe run; resolves with whatever was measured (fewer probes when the run timed out). */
export async function measureWake(options: WakeProbeOptions = {}): Promise<WakeMeasurement> {
  const nothing = (): WakeMeasurement => ({ delaysNs: [], proberSendNs: [], sendNs: [], busy: 0, idleNs: [] });
  const aborted = (): boolean => options.signal?.aborted === true;
  if (aborted()) return nothing();
  const count = options.count ?? 48;
  const spacingMs = options.spacingMs ?? 20;
  const token = randomBytes(16);
  const delaysNs: number[] = [];
  const idleNs: number[] = [];
  let lastAt = -1n;
  let busy = 0;
  let lastElu: EventLoopUtilization | null = null;
  let proberPort = -1;
  const socket = createSocket({ type: 'udp4', lookup: literalLookup(4) });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  // The same path as a client's request (server.ts): straight from the socket's handle, and our
  // sends through the handle with a reused request (lib/udp-direct.ts), or dgram's where it falls back.
  onDatagram(socket, (msg: Buffer, rinfo: RemoteInfo) => {
    const at = process.hrtime.bigint(); // first statement, as in the NTP handler
    if (msg.length !== token.length + 8 || rinfo.address !== '127.0.0.1' || rinfo.port !== proberPort) return;
    if (!timingSafeEqual(msg.subarray(0, token.length), token)) return;
    const delay = at - msg.readBigUInt64BE(token.length);
    const idle = lastAt < 0n ? 0 : Number(at - lastAt); // the time since the datagram before, as for a request
    lastAt = at;
    const elu = performance.eventLoopUtilization();
    const since = lastElu === null ? null : performance.eventLoopUtilization(elu, lastElu);
    lastElu = elu;
    if (since === null || since.utilization > PROBE_BUSY_MAX) { busy++; return; } // the first has no interval before it
    if (delay >= 0n && delay < 1_000_000_000n) { delaysNs.push(Number(delay)); idleNs.push(idle); }
  });
  options.onBound?.(socket.address().port);
  try {
    // Ended while the socket was bound: an abort listener added now would never be called, and the
    // run would have held the service's stop for the whole run (up to 31 s at the 700 ms level).
    if (aborted()) return nothing();
    const sendNs = measureSends(new DatagramSender(socket), socket.address().port);
    const worker = new Worker(new URL('./wake-probe-worker.js', import.meta.url), {
      workerData: { port: socket.address().port, token, count, spacingMs } satisfies ProberData,
      // A small thread: no inherited loaders or flags (a test runner's hooks outgrow its heap).
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 },
    });
    // The abort listener goes with the run: the signal is the NTP service's, alive as long as it is,
    // and each listener left on it kept its run (the thread, the socket, the samples: 8.6 KB of heap)
    // for good, three runs every 5 minutes: 7.4 MB a day.
    let onAbort: (() => void) | undefined;
    const report = await new Promise<number[] | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), count * spacingMs * 2 + 3000);
      worker.on('message', (m: ProberMessage) => {
        if (m.type === 'bound') { proberPort = m.port; return; }
        clearTimeout(timer);
        resolve(m.proberSendNs);
      });
      worker.once('error', () => { clearTimeout(timer); resolve(null); });
      onAbort = () => { clearTimeout(timer); resolve(null); };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      worker.once('exit', () => { clearTimeout(timer); resolve(null); });
    });
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort);
    await terminated(worker);
    return { delaysNs, proberSendNs: report ?? [], sendNs, busy, idleNs };
  } finally {
    socket.close();
  }
}

/** How long the run waits for the prober thread to end once terminated; past it the run ends without it. */
const TERMINATE_WAIT_MS = 500;

function terminated(worker: Worker): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([worker.terminate().then(() => undefined, () => undefined), new Promise<void>((ok) => { timer = setTimeout(ok, TERMINATE_WAIT_MS); })])
    .then(() => clearTimeout(timer));
}

/**
 * What a 48-byte send call costs on this thread, as the NTP handler makes it (a reply in the
 * sender's scratch area, `DatagramSender.send`): stamp to return, to our own probe port (the handler
 * drops them: wrong length).
 */
function measureSends(sender: DatagramSender, port: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < SEND_SAMPLES; i++) {
    const reply = sender.buffer(48);
    reply.fill(0);
    const t0 = process.hrtime.bigint();
    sender.send(reply, port, '127.0.0.1');
    out.push(Number(process.hrtime.bigint() - t0));
  }
  return out;
}
