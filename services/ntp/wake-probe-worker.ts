import { createSocket } from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { literalLookup } from '../../lib/udp-lookup.js';

// The prober thread of wake-probe.ts: sends `count` probes to the main thread's probe socket, each
// carrying the token and the monotonic time read just before its send, spaced so that each one
// finds the main event loop asleep (as a client's request does). Before each probe it times a send
// to its own sink (twice: the second on a warm path, as the probe's), which is the part of a probe's delay spent in this thread's send call. Then it
// reports those send times and exits. Loopback only.

export interface ProberData { port: number; token: Uint8Array; count: number; spacingMs: number }
export type ProberMessage = { type: 'bound'; port: number } | { type: 'done'; proberSendNs: number[] };

if (parentPort !== null) {
  const parent = parentPort;
  const { port, token, count, spacingMs } = workerData as ProberData;
  const socket = createSocket({ type: 'udp4', lookup: literalLookup(4) });
  const sink = createSocket({ type: 'udp4', lookup: literalLookup(4) });
  sink.on('message', () => undefined);
  const probe = Buffer.alloc(token.length + 8);
  probe.set(token, 0);
  const proberSendNs: number[] = [];
  // The prober sleeps in Atomics.wait between probes, not in its event loop: right after a send it
  // gives up its CPU at once, as a client blocked in recv does, so our wake-up never waits for it.
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const run = (): void => {
    const sinkPort = sink.address().port;
    for (let sent = 0; sent < count; sent++) {
      // Uneven spacing: never in step with the host's periodic timers (the Raft tick).
      Atomics.wait(sleeper, 0, 0, spacingMs + Math.floor(Math.random() * spacingMs));
      // Two sends to our own sink first: the probe's send then runs on a warm path (as a client's
      // kernel does), and the second one's time is what this thread's send adds to a probe's delay.
      socket.send(probe, sinkPort, '127.0.0.1');
      const t0 = process.hrtime.bigint();
      socket.send(probe, sinkPort, '127.0.0.1');
      proberSendNs.push(Number(process.hrtime.bigint() - t0));
      const at = process.hrtime.bigint(); // read last: the probe's delay starts here
      probe.writeBigUInt64BE(at, token.length);
      socket.send(probe, port, '127.0.0.1');
    }
    Atomics.wait(sleeper, 0, 0, spacingMs);
    parent.postMessage({ type: 'done', proberSendNs } satisfies ProberMessage);
    socket.close();
    sink.close();
  };
  sink.bind(0, '127.0.0.1', () => socket.bind(0, '127.0.0.1', () => {
    // Our source port first: the main thread takes probes from that port only.
    parent.postMessage({ type: 'bound', port: socket.address().port } satisfies ProberMessage);
    setTimeout(run, spacingMs);
  }));
}
