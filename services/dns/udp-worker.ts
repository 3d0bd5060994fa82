import type dgram from 'node:dgram';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { cryptoRandom } from '../../lib/random.js';
import { DnsAnswerer, type ForwardQuery } from './answerer.js';
import { ShareBudget, ShareThrottle, type FromWorker, type ToWorker } from './udp-workers.js';
import { wireOf, type CacheEntry, type WireEntry } from './cache.js';
import { buildZoneSet } from './zone.js';
import { Forwarder, forwardWith, inFlightShares } from './forward.js';
import { processMemory, watchPauses } from '../../lib/memory.js';
import { answerLookupsAtOnce } from '../../lib/udp-lookup.js';
import { missTrace } from './miss-trace.js';

// A UDP worker process (udp-workers.ts starts it): it reads the daemon's own UDP sockets, handed
// over the IPC channel, and answers from zones built from the same inputs as the daemon's.
// Forwarded names are answered from the worker's own copy of the forwarding cache; a miss is asked
// upstream from here (its share of `forward.maxInFlight`), and the answers it caches are sent to the
// daemon (at most one message per SHARE_MESSAGE_MS, within SHARED_ENTRIES_PER_SECOND), which keeps them too and passes them
// to the other workers (and sends this worker theirs and its own: 'fill'). The worker has no state of its own that matters: when the daemon goes, the IPC
// channel closes and the worker exits.

if (process.send === undefined) {
  process.stderr.write('udp-worker.js is started by the lanha daemon (services/dns/udp-workers.ts), not by hand\n');
  process.exit(2);
}

const post = (m: FromWorker): void => { if (process.connected) process.send!(m); };
let answerer: DnsAnswerer | null = null;
const sockets = new Map<string, dgram.Socket>();
let forwarder: Forwarder | null = null;
let forward: ForwardQuery = () => undefined;
/** `forward` as it is when a query comes (it is set by 'init', the sockets may be served before). */
const current: ForwardQuery = (q, query, transport, send, raw, chain) => forward(q, query, transport, send, raw, chain);
current.udp = (msg, fq, to, out, port, address) => forward.udp?.(msg, fq, to, out, port, address);
/**
 * Entries cached here go to the daemon (within the share budget), in at most one message per
 * SHARE_MESSAGE_MS: the first after a quiet spell at once, before its client's reply leaves (that
 * client's next question may reach the daemon), those that follow within it together at its end.
 */
let cached: WireEntry[] = [];
const budget = new ShareBudget();
const throttle = new ShareThrottle(() => {
  if (cached.length === 0) return;
  const entries = cached;
  cached = [];
  post({ t: 'cached', entries });
});
const share = (entry: CacheEntry): void => {
  if (!budget.take(systemClock.monotonicMs())) return;
  cached.push(wireOf(entry));
  throttle.queued();
};

// The terminal's Ctrl-C reaches the whole process group: the daemon decides when a worker stops.
process.on('SIGINT', () => undefined);
process.on('disconnect', () => { forwarder?.close(); process.exit(0); });

// Every second, changed or not: the report is also how the daemon knows this worker still reads
// its sockets (udp-workers.ts SILENT_MS; the daemon reads them itself while this one is silent).
const report = (): void => {
  if (answerer !== null) post({ t: 'counters', values: answerer.snapshot() });
};
setInterval(report, 1000).unref();
watchPauses();
const reportMemory = (): void => post({ t: 'memory', memory: processMemory('dns worker') });
setInterval(reportMemory, 5000).unref();

process.on('message', (m: ToWorker, handle: unknown) => {
  switch (m.t) {
    case 'init': {
      const log = createLogger({ level: m.logLevel, node: m.nodeName }).child({ service: 'dns', worker: process.pid });
      answerer = new DnsAnswerer({ cfg: m.cfg, nodeName: m.nodeName, zones: buildZoneSet(m.zones), clock: systemClock, log, processes: m.udpReaders ?? m.processes, trace: missTrace() });
      const f = m.cfg.forward;
      if (f !== undefined) {
        forwarder = new Forwarder({
          upstreams: f.upstreams, domains: f.domains, timeoutMs: f.timeout, cache: answerer.forwardCache!,
          maxInFlight: inFlightShares(f.maxInFlight, Math.max(1, m.processes - 1)).worker, clock: systemClock, random: cryptoRandom, counters: answerer.counters, log,
          onCached: share, busy: () => answerer!.backlogged(), trace: missTrace(),
        });
        forward = forwardWith(forwarder, m.nodeName, systemClock);
      }
      post({ t: 'ready' });
      reportMemory();
      return;
    }
    case 'zones':
      answerer?.setZones(buildZoneSet(m.zones));
      answerer?.counters.inc('dns.zones_updates');
      return;
    case 'fill': {
      const cache = answerer?.forwardCache;
      if (cache != null) {
        const now = systemClock.monotonicMs();
        for (const e of m.entries) cache.insertWire(e, now);
      }
      return;
    }
    case 'serve': {
      const socket = handle as dgram.Socket;
      answerLookupsAtOnce(socket); // replies go to the literal address asked from
      const a = answerer!;
      const local = m.address;
      sockets.get(local)?.close();
      sockets.set(local, socket);
      socket.on('error', () => a.counters.inc('dns.udp.send_failed'));
      a.serve(socket, current);
      post({ t: 'serving', address: local });
      return;
    }
    case 'unserve': {
      const socket = sockets.get(m.address);
      sockets.delete(m.address);
      const done = (): void => { report(); post({ t: 'unserved', address: m.address }); };
      if (socket === undefined) done();
      else socket.close(done);
    }
  }
});
