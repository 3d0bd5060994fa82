import type dgram from 'node:dgram';
import { createLogger } from '../../lib/log.js';
import { systemClock } from '../../lib/clock.js';
import { DnsAnswerer, type ForwardQuery } from './answerer.js';
import type { FromWorker, ToWorker } from './udp-workers.js';
import { buildZoneSet } from './zone.js';
import { forwardedReply } from './handler.js';
import { RCODE } from './wire.js';

// A UDP worker process (udp-workers.ts starts it): it reads the daemon's own UDP sockets, handed
// over the IPC channel, and answers from zones built from the same inputs as the daemon's. A query
// that must be forwarded goes back to the daemon, which asks upstream; the daemon sends every
// answer it caches to each worker ('fill'), so cache hits are answered here. At most
// `forward.maxInFlight` of this worker's forwards wait in the daemon at once (the IPC queue stays
// bounded); past it the worker answers SERVFAIL itself. The worker has no state of its own: when
// the daemon goes, the IPC channel closes and the worker exits.

if (process.send === undefined) {
  process.stderr.write('udp-worker.js is started by the lanha daemon (services/dns/udp-workers.ts), not by hand\n');
  process.exit(2);
}

const post = (m: FromWorker): void => { if (process.connected) process.send!(m); };
let answerer: DnsAnswerer | null = null;
const sockets = new Map<string, dgram.Socket>();
let lastReported = -1;
/** Forwards handed to the daemon and not yet answered. */
let forwarding = 0;
let forwardMax = 0;
let nodeName = '';

// The terminal's Ctrl-C reaches the whole process group: the daemon decides when a worker stops.
process.on('SIGINT', () => undefined);
process.on('disconnect', () => process.exit(0));

const report = (): void => {
  if (answerer === null || answerer.queries === lastReported) return;
  lastReported = answerer.queries;
  post({ t: 'counters', values: answerer.snapshot() });
};
setInterval(report, 1000).unref();

process.on('message', (m: ToWorker, handle: unknown) => {
  switch (m.t) {
    case 'init': {
      const log = createLogger({ level: m.logLevel, node: m.nodeName }).child({ service: 'dns', worker: process.pid });
      answerer = new DnsAnswerer({ cfg: m.cfg, nodeName: m.nodeName, zones: buildZoneSet(m.zones), clock: systemClock, log, processes: m.processes });
      forwardMax = m.cfg.forward?.maxInFlight ?? 0;
      nodeName = m.nodeName;
      post({ t: 'ready' });
      return;
    }
    case 'zones':
      answerer?.setZones(buildZoneSet(m.zones));
      return;
    case 'fill': {
      forwarding = Math.max(0, forwarding - m.done);
      const cache = answerer?.forwardCache;
      if (cache != null) {
        const now = systemClock.monotonicMs();
        for (const e of m.entries) cache.insertWire(e, now);
      }
      return;
    }
    case 'serve': {
      const socket = handle as dgram.Socket;
      const a = answerer!;
      const local = m.address;
      let from: dgram.RemoteInfo | null = null;
      // Called synchronously from inside a.udp() for the datagram in `from`.
      const forward: ForwardQuery = (query, transport, send) => {
        const peer = from!;
        if (forwarding >= forwardMax || !process.connected) {
          a.counters.inc('dns.forward.overload');
          send(forwardedReply(query, { nodeName, transport }, RCODE.SERVFAIL, [], [], []));
          return;
        }
        forwarding++;
        post({ t: 'forward', local, query, peer: { address: peer.address, port: peer.port, family: peer.family, size: peer.size } });
      };
      sockets.get(local)?.close();
      sockets.set(local, socket);
      socket.on('error', () => a.counters.inc('dns.udp.send_failed'));
      socket.on('message', (msg, rinfo) => { from = rinfo; a.udp(socket, msg, rinfo, forward); });
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
