import t from 'tap';
import { createSocket } from 'node:dgram';
import { getEventListeners } from 'node:events';
import { measureWake } from './wake-probe.js';
import { estimateWake } from './wake.js';

// A real probe run over loopback: the prober thread's probes reach our handler and each gives a
// positive delay or is left out (the loop was busy before it); forged probes (wrong token, or the right length from another port) are not
// counted; an aborted run ends early with what it has.

t.test('a probe run measures every probe, and no forged one', async (t) => {
  const forger = createSocket('udp4');
  await new Promise<void>((resolve) => forger.bind(0, '127.0.0.1', resolve));
  const forged = Buffer.alloc(24); // token-sized garbage + a stamp of 0: a huge delay if it counted
  try {
    const m = await measureWake({
      count: 20, spacingMs: 5,
      onBound: (port) => { for (let i = 0; i < 10; i++) forger.send(forged, port, '127.0.0.1'); },
    });
    t.equal(m.delaysNs.length + (m.busy ?? 0), 20, 'each probe counted or left out (busy loop, or the first: no interval before it), none of the 10 forged datagrams');
    t.ok((m.busy ?? 0) >= 1, 'the first probe is left out');
    t.ok(m.delaysNs.every((d) => d > 0 && d < 1e9), 'every delay positive and below 1 s');
    t.equal(m.proberSendNs.length, 20, 'the prober reports its send time per probe');
    t.ok(m.sendNs.length > 0 && m.sendNs.every((d) => d > 0), 'our own send times');
    t.equal(estimateWake(m).samples, m.delaysNs.length);
    t.equal(m.idleNs?.length, m.delaysNs.length, 'a time since the probe before for each counted probe');
    // The prober sleeps at least 5 ms after each send, but a probe read late (this thread waiting for a
    // CPU on a loaded machine, which the busy check does not see) shortens the gap to the next one:
    // each gap is positive, and most of them hold the spacing.
    const idle = [...m.idleNs!].sort((a, b) => a - b);
    t.ok(idle.every((d) => d > 0 && d < 1e9), 'each gap positive and below 1 s');
    t.ok(idle.length === 0 || idle[idle.length >> 1]! >= 4e6, `the median gap at least the 5 ms spacing (less timer slack): ${idle.map((d) => (d / 1e6).toFixed(1)).join(' ')} ms`);
  } finally {
    forger.close();
  }
});

t.test('an aborted run ends at once with the probes it has', async (t) => {
  const stop = new AbortController();
  const run = measureWake({ count: 1000, spacingMs: 50, signal: stop.signal });
  setTimeout(() => stop.abort(), 200);
  const m = await run;
  t.ok(m.delaysNs.length < 1000, `ended early with ${m.delaysNs.length} probes`);
});

// The service's stop aborts the run; one that came while the probe socket was being bound (before
// the run listened for the abort) was never heard: the run went on to its end, and the NTP stop
// waited for it (a daemon's SIGTERM stop past its 5 s limit at the 700 ms level: 20 probes, ~21 s).
t.test('a run aborted before it listens for the abort (its socket being bound) ends at once, with nothing', async (t) => {
  for (const when of ['before', 'bound'] as const) {
    const stop = new AbortController();
    if (when === 'before') stop.abort();
    // A whole run is 20 probes a minute apart: one that missed the abort does not end within the
    // hang guard however loaded the machine, and one that heard it ends at once.
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const m = await Promise.race([
      measureWake({ count: 20, spacingMs: 60_000, signal: stop.signal, onBound: () => stop.abort() }),
      new Promise<'hung'>((r) => { timer = setTimeout(() => r('hung'), 60_000); }),
    ]);
    clearTimeout(timer);
    const ms = performance.now() - started;
    t.not(m, 'hung', `aborted ${when === 'before' ? 'before it started' : 'while its socket was bound'}: ended (in ${ms.toFixed(0)} ms; a whole run: 20 min)`);
    if (m !== 'hung') t.same(m.delaysNs, [], 'no probes');
  }
});

// The NTP service gives every run its one stop signal, alive as long as the service: a run that
// ended left its abort listener on it, and with the listener the run (its thread, socket and
// samples, 8.6 KB of heap), three runs every 5 minutes for the daemon's whole life.
t.test('a run that ends leaves no listener on the signal it was given', async (t) => {
  const stop = new AbortController();
  for (let i = 0; i < 3; i++) await measureWake({ count: 2, spacingMs: 1, signal: stop.signal });
  t.equal(getEventListeners(stop.signal, 'abort').length, 0, 'no abort listener left after three runs');
});
