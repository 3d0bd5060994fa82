import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../../lib/clock.js';
import { Counters } from '../../lib/counters.js';
import type { TftpConfig } from './config.js';
import type { RequestPacket } from './wire.js';
import type { ClientInfo } from './paths.js';
import { TransferEngine, type IdleTime, type Peer, type RenderedFile, type StartOutcome } from './engine.js';
import type { EndedMessage } from './server.js';
import type { CacheLayout } from './block-cache.js';
import { fileCache } from './files.js';
import { hangFailpoint } from './failpoints.js';

// A TFTP worker thread: runs the transfers the main thread hands it (engine.ts), so the ACK/DATA
// traffic of a boot storm never delays the event loop that DHCP and DNS answer on.

export type ToWorker =
  | { type: 'start'; id: number; local: string; request: RequestPacket; peer: Peer; client: ClientInfo; rendered?: RenderedFile }
  | { type: 'cancel'; message: string }
  | { type: 'reclaim'; id: number; message: string }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'outcome'; id: number; outcome: StartOutcome }
  | { type: 'ended'; ended: EndedMessage }
  | { type: 'confirmed'; id: number }
  | { type: 'counters'; counters: Record<string, number>; idle: IdleTime[] }
  | { type: 'error'; fields: Record<string, unknown>; message: string }
  | { type: 'ready' };

export interface WorkerData {
  config: TftpConfig;
  rootReal: string;
  /** The block cache every transfer thread shares (server.ts allocates it), and this worker's pin column in it. */
  cache: CacheLayout;
  thread: number;
}

/** Also the main thread's WORKER_REPORT_MS (server.ts). */
const COUNTERS_EVERY_MS = 500;


if (parentPort !== null) {
  const port = parentPort;
  const post = (m: FromWorker): void => port.postMessage(m);
  const { config, rootReal, cache, thread } = workerData as WorkerData;
  const counters = new Counters();
  const engine: TransferEngine = new TransferEngine(config, rootReal, {
    clock: systemClock,
    counters,
    error: (fields, message) => post({ type: 'error', fields, message }),
    transferEnded: (transfer, outcome) => {
      engine.forget(transfer.id);
      post({ type: 'ended', ended: { id: transfer.id, outcome, info: transfer.info() } });
    },
    transferConfirmed: (transfer) => post({ type: 'confirmed', id: transfer.id }),
  }, fileCache(cache, thread));
  const flush = (): void => post({ type: 'counters', counters: counters.toJSON(), idle: engine.idleTimes() });
  const timer = setInterval(flush, COUNTERS_EVERY_MS);
  const hangOn = hangFailpoint();
  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'start':
        if (hangOn !== undefined && m.request.filename === hangOn) for (;;) { /* the failpoint: never yield */ }
        engine.start(m.id, m.local, m.request, m.peer, m.client, m.rendered).then(
          (outcome) => post({ type: 'outcome', id: m.id, outcome }),
          (error: unknown) => {
            post({ type: 'error', fields: { event: 'tftp.transfer_start_failed', err: String(error) }, message: 'starting a transfer failed' });
            post({ type: 'outcome', id: m.id, outcome: { kind: 'stopped' } });
          },
        );
        break;
      case 'cancel':
        engine.cancelAll(m.message);
        break;
      case 'reclaim':
        engine.reclaim(m.id, m.message);
        break;
      case 'stop':
        engine.stop();
        clearInterval(timer);
        flush();
        // Let the ERROR packets leave, then end the thread.
        setTimeout(() => port.close(), 50);
        break;
    }
  });
  post({ type: 'ready' });
}
