import t from 'tap';
import { createSocket, Socket } from 'node:dgram';
import { parseConfig } from '../../config/index.js';
import { silentLogger } from '../../lib/log.js';
import { seededRandom } from '../../lib/random.js';
import { systemClock } from '../../lib/clock.js';
import { Fsm } from '../../cluster/fsm.js';
import { MemoryStateLog } from '../../cluster/state-log.js';
import { startNtp, samplerTargets, type NtpStatus } from '../../services/ntp/server.js';
import { decodeNtp, encodeNtp, timestampFromUnixNs, unixNsFromTimestamp, type NtpPacket, type NtpTimestamp } from '../../services/ntp/wire.js';
import { createHrWallClock, type HrWallClock } from '../../services/ntp/hr-clock.js';
import type { RunningService } from '../../services/contract.js';
import { seedFromEnv } from '../support/seeded.js';
import { runLanctl, scratchConfig, serveDaemon } from '../support/daemon.js';
import { ephemeralPorts, freePort } from '../support/ports.js';

// The NTP shell on loopback high ports, no root: with an injected clock the reply carries exactly
// the receive stamp taken on arrival and a later transmit stamp; bad packets get nothing and are
// counted; a second lanha follows the first as its upstream (stratum + 1, refid = its address),
// and flags itself unsynchronised (leap 3) when its own wall clock is stepped an hour away.

/** A clock that reads the real one plus a settable offset, so a test can step "this node's" wall time. */
function steppableClock(): HrWallClock & { stepNs: bigint } {
  const real = createHrWallClock();
  const clock = { stepNs: 0n, nowNs: () => real.nowNs() + clock.stepNs, reanchor: () => real.reanchor() };
  return clock;
}

async function start(yaml: string, hrClock: HrWallClock): Promise<RunningService> {
  const config = ephemeralPorts(parseConfig(`node: { name: t, address: 127.0.0.1, stateDir: /tmp/unused-lanha-ntp, controlSocket: /tmp/unused.sock }\n${yaml}`));
  return startNtp({
    config, log: silentLogger, clock: systemClock, random: seededRandom(seedFromEnv(5)),
    state: new MemoryStateLog(new Fsm(), systemClock),
  }, { hrClock, burstSpacingMs: 200 });
}

function portOf(service: RunningService): number {
  return Number(service.status().listening[0]!.split(':').pop());
}

async function exchange(port: number, packets: Uint8Array[], waitMs = 400): Promise<Buffer[]> {
  const socket = createSocket('udp4');
  const replies: Buffer[] = [];
  socket.on('message', (m) => replies.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  for (const p of packets) socket.send(p, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, waitMs));
  socket.close();
  return replies;
}

function clientRequest(overrides: Partial<NtpPacket> = {}): Uint8Array {
  return encodeNtp({
    leap: 0, version: 4, mode: 3, stratum: 0, poll: 6, precision: -20, rootDelay: 0, rootDispersion: 0, referenceId: 0,
    referenceTimestamp: { seconds: 0, fraction: 0 }, originTimestamp: { seconds: 0, fraction: 0 },
    receiveTimestamp: { seconds: 0, fraction: 0 }, transmitTimestamp: { seconds: 0x12345678, fraction: 0x9abcdef0 },
    extensions: [], mac: null, ...overrides,
  });
}

async function waitFor(service: RunningService, predicate: (s: NtpStatus) => boolean, ms: number): Promise<NtpStatus> {
  const end = Date.now() + ms;
  let s = service.status() as NtpStatus;
  while (!predicate(s) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    s = service.status() as NtpStatus;
  }
  return s;
}

/** A clock 1 us further on at every read, which records each read. */
function countingClock(): { clock: HrWallClock; stamps: bigint[] } {
  let fakeNs = BigInt(Date.UTC(2030, 0, 1)) * 1_000_000n;
  const stamps: bigint[] = [];
  return { clock: { nowNs: () => { fakeNs += 1000n; stamps.push(fakeNs); return fakeNs; }, reanchor: () => undefined }, stamps };
}

t.test('the shell stamps with the injected clock and drops what it must', async (t) => {
  const { clock, stamps } = countingClock();
  const ntp = await start('ntp: { listen: [127.0.0.1], localStratum: 10, stampCorrection: false, kernelStamps: off }\n', clock);
  try {
    const port = portOf(ntp);
    stamps.length = 0;
    const [reply, ...extra] = await exchange(port, [clientRequest()]);
    t.equal(extra.length, 0);
    const d = decodeNtp(reply!);
    if (!d.ok) { t.fail('reply decodes'); return; }
    t.match(d.value, { mode: 4, version: 4, stratum: 10, leap: 0, poll: 6 });
    t.same(d.value.originTimestamp, { seconds: 0x12345678, fraction: 0x9abcdef0 }, 'origin = our transmit');
    t.same(d.value.receiveTimestamp, timestampFromUnixNs(stamps[0]!), 'receive = the first clock read on arrival');
    t.same(d.value.transmitTimestamp, timestampFromUnixNs(stamps[stamps.length - 1]!), 'transmit = the last clock read, before send');
    t.ok(stamps.length >= 2, 'two reads: on arrival and before send');

    const dropped = await exchange(port, [
      clientRequest({ mode: 6 }), clientRequest({ mode: 7 }), clientRequest({ mode: 1 }), clientRequest({ version: 0 }),
      clientRequest({ version: 5 }), new Uint8Array(47), new Uint8Array([...clientRequest(), 1, 2, 3]),
    ]);
    t.equal(dropped.length, 0, 'modes 6, 7, 1, versions 0 and 5, short and garbage-trailed packets: no reply');
    t.match((ntp.status() as NtpStatus).counters, { 'dropped.mode': 3, 'dropped.version': 2, 'dropped.malformed': 2, replies: 1 });
  } finally {
    await ntp.stop();
  }
});

t.test('requests come straight from the socket handle and replies go straight to it: no dgram emit or send between the stamps and the kernel', async (t) => {
  const { clock, stamps } = countingClock();
  const ntp = await start('ntp: { listen: [127.0.0.1], localStratum: 10, stampCorrection: false, kernelStamps: off }\n', clock);
  const proto = Socket.prototype as unknown as { emit: (...a: unknown[]) => boolean; send: (...a: unknown[]) => void };
  const { emit, send } = proto;
  const port = portOf(ntp);
  const serverCalls: string[] = [];
  const ownPort = (s: Socket): number => { try { return s.address().port; } catch { return -1; } };
  proto.emit = function (this: Socket, ...a: unknown[]) { if (a[0] === 'message' && ownPort(this) === port) serverCalls.push('emit'); return emit.apply(this, a); };
  proto.send = function (this: Socket, ...a: unknown[]) { if (ownPort(this) === port) serverCalls.push('send'); return send.apply(this, a); };
  try {
    stamps.length = 0;
    const replies = await exchange(port, [clientRequest(), clientRequest()]);
    t.equal(replies.length, 2, 'both answered');
    t.same(serverCalls, [], "the server's socket neither emitted 'message' nor called dgram's send");
    const d = decodeNtp(replies[0]!);
    t.ok(d.ok && d.value.receiveTimestamp.seconds > 0, 'with a receive stamp');
  } finally {
    proto.emit = emit;
    proto.send = send;
    await ntp.stop();
  }
});

t.test('with stamp correction on, the measured wake-up for the time since the previous datagram comes off the receive stamp and half a send onto the transmit stamp', async (t) => {
  const { clock, stamps } = countingClock();
  const ntp = await start('ntp: { listen: [127.0.0.1], localStratum: 10, kernelStamps: off }\n', clock);
  try {
    const measured = await waitFor(ntp, (s) => s.stampCorrection?.measuredAgoS !== null, 15_000);
    const c = measured.stampCorrection!;
    t.match(c, { probes: Number, problem: null }, 'a probe run ended');
    t.ok(c.receiveUs >= 0 && c.receiveUs <= 1000, `receive correction ${c.receiveUs} us within 0..1000`);
    t.ok(c.transmitUs >= 0 && c.transmitUs <= 25, `transmit correction ${c.transmitUs} us within 0..25`);
    t.ok(c.byIdle.length >= 1 && c.byIdle[0]!.receiveUs === c.receiveUs, 'the curve starts at the shortest spacing');
    stamps.length = 0;
    const [reply] = await exchange(portOf(ntp), [clientRequest()]);
    const d = reply && decodeNtp(reply);
    if (!d || !d.ok) { t.fail('reply decodes'); return; }
    const applied = (ntp.status() as NtpStatus).stampCorrection!.lastReceiveUs;
    const curve = c.byIdle.map((p) => p.receiveUs);
    t.ok(applied >= Math.min(...curve) && applied <= Math.max(...curve), `the request's correction ${applied} us is on the measured curve ${curve.join(', ')}`);
    // Other timers (the 1 s re-decision) may read the clock before the request comes or after the
    // send: look for the reads the two stamps came from.
    const same = (a: NtpTimestamp, b: NtpTimestamp): boolean => a.seconds === b.seconds && a.fraction === b.fraction;
    const rxAt = stamps.findIndex((s) => same(timestampFromUnixNs(s - BigInt(Math.round(applied * 1000))), d.value.receiveTimestamp));
    t.ok(rxAt >= 0, 'receive = a read less the correction applied');
    const txAt = stamps.findIndex((s) => same(timestampFromUnixNs(s + BigInt(Math.round(c.transmitUs * 1000))), d.value.transmitTimestamp));
    t.ok(txAt > rxAt, 'transmit = a later read plus the transmit correction');
  } finally {
    await ntp.stop();
  }
});

t.test('a flood beyond what the event loop reads is shed by the kernel and counted, and other clients are still answered', async (t) => {
  const { clock } = countingClock();
  // The default rate limit (8 in a burst per client): the flood's own source is limited too.
  const ntp = await start('ntp: { listen: [127.0.0.1], localStratum: 10, stampCorrection: false, kernelStamps: off }\n', clock);
  const flooder = createSocket('udp4');
  const good = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => flooder.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => good.bind(0, '127.0.0.2', resolve));
    const port = portOf(ntp);
    const answers: Buffer[] = [];
    good.on('message', (m) => answers.push(m));
    // Sent in one synchronous run: the server (this event loop) reads nothing meanwhile, so its
    // socket's queue fills and the kernel drops the rest (a flood far beyond capacity).
    const request = clientRequest();
    const flood = 20_000;
    for (let i = 0; i < flood; i++) flooder.send(request, port, '127.0.0.1');
    good.send(clientRequest(), port, '127.0.0.1');
    const s = await waitFor(ntp, (x) => (x.counters.requests ?? 0) + (x.counters['dropped.queue_full'] ?? 0) >= flood + 1, 10_000);
    const c = s.counters;
    t.ok((c['dropped.queue_full'] ?? 0) > 0, `the kernel shed part of the flood, counted (${c['dropped.queue_full']})`);
    t.equal((c.requests ?? 0) + (c['dropped.queue_full'] ?? 0), flood + 1, 'every datagram sent is read or counted as shed');
    t.ok((c['dropped.rate'] ?? 0) > 0, `the flood's source is rate-limited (${c['dropped.rate']} dropped)`);
    // The good client's first request may have been shed too; the next ones, after the flood, are answered.
    for (let i = 0; i < 5 && answers.length === 0; i++) {
      good.send(clientRequest(), port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 200));
    }
    t.ok(answers.length >= 1, 'another client is answered');
    const d = decodeNtp(answers[0]!);
    t.ok(d.ok && d.value.stratum === 10, 'with the time, not a KoD');
  } finally {
    flooder.close();
    good.close();
    await ntp.stop();
  }
});

t.test('a second lanha follows the first as its upstream, and refuses when its own clock is stepped', async (t) => {
  const upstream = await start('ntp: { listen: [127.0.0.1], localStratum: 7, rateLimit: { enabled: false } }\n', steppableClock());
  const ownClock = steppableClock();
  const follower = await start(`ntp: { listen: [127.0.0.1], upstreams: ["127.0.0.1:${portOf(upstream)}"], pollInterval: 1s, rateLimit: { enabled: false } }\n`, ownClock);
  try {
    const synced = await waitFor(follower, (s) => s.synchronised, 5000);
    t.match(synced, { synchronised: true, mode: 'source', stratum: 8, referenceId: '127.0.0.1', leap: 0 }, synced.reason);
    const up = synced.sources[0]!;
    // One host clock: the true offset is 0, a measurement is off by at most half its round trip.
    t.ok(Math.abs(up.offsetMs ?? 99) <= (up.delayMs ?? 0) / 2 + 1, `offset ${up.offsetMs} ms within its bound (delay ${up.delayMs} ms)`);
    const [reply] = await exchange(portOf(follower), [clientRequest()]);
    const d = reply && decodeNtp(reply);
    t.ok(d && d.ok && d.value.stratum === 8 && d.value.referenceId === 0x7f000001, 'served: stratum 8, refid 127.0.0.1');
    if (d && d.ok) {
      const refAgeS = Number(BigInt(Date.now()) * 1_000_000n - unixNsFromTimestamp(d.value.referenceTimestamp, BigInt(Date.now()) * 1_000_000n)) / 1e9;
      t.ok(refAgeS >= 0 && refAgeS < 5, `reference timestamp is the recent sample (${refAgeS.toFixed(3)} s ago)`);
    }

    ownClock.stepNs = 3600n * 1_000_000_000n; // someone ran `date -s` an hour ahead on this node
    const stepped = await waitFor(follower, (s) => !s.synchronised, 5000);
    t.match(stepped, { synchronised: false, leap: 3, stratum: 16 }, `after the step: ${stepped.reason}`);
    t.ok((stepped.offsetMs ?? 0) < -3_599_000, 'the offset to the upstream shows the hour');
    const [after] = await exchange(portOf(follower), [clientRequest()]);
    const a = after && decodeNtp(after);
    t.ok(a && a.ok && a.value.leap === 3, 'clients now get leap 3');
  } finally {
    await follower.stop();
    await upstream.stop();
  }
});

t.test('the other LAN node is sampled as a peer; witnesses and this node are not', async (t) => {
  const config = parseConfig(`node: { name: lan-a, address: 10.20.0.2 }
cluster:
  id: rack
  members:
    - { name: lan-a, address: 10.20.0.2 }
    - { name: lan-b, address: 10.20.0.3 }
    - { name: w, address: 10.20.0.9, role: witness }
ntp: { port: 1123, upstreams: ["192.0.2.1", "192.0.2.2:11123"] }
`);
  t.same(samplerTargets({ config }, config.ntp!), [
    { kind: 'upstream', address: '192.0.2.1', port: 123 },
    { kind: 'upstream', address: '192.0.2.2', port: 11123 },
    { kind: 'peer', address: '10.20.0.3', port: 1123 },
  ]);
  const off = parseConfig(`node: { name: lan-a, address: 10.20.0.2 }
cluster: { id: rack, members: [{ name: lan-a, address: 10.20.0.2 }, { name: lan-b, address: 10.20.0.3 }] }
ntp: { samplePeer: false }
`);
  t.same(samplerTargets({ config: off }, off.ntp!), [], 'samplePeer: false');
});

t.test('lanctl ntp status and lanctl status against a real daemon', async (t) => {
  const scratch = scratchConfig(`node: { name: solo, address: 127.0.0.1, stateDir: "{{dir}}/state", controlSocket: "{{dir}}/lanha.sock" }
ntp: { port: ${await freePort()}, listen: [127.0.0.1], localStratum: 10, upstreams: ["127.0.0.1:9"] }
`);
  const daemon = await serveDaemon(scratch.file);
  try {
    const socket = `${scratch.dir}/lanha.sock`;
    const text = await runLanctl(['ntp', 'status', '--socket', socket]);
    t.equal(text.code, 0, text.stderr);
    t.match(text.stdout, /^ntp: synchronised \(no usable source; serving local stratum 10\), stratum 10, refid LOCL/);
    t.match(text.stdout, /127\.0\.0\.1:9\s+upstream/, 'the upstream is listed');
    const json = await runLanctl(['ntp', 'status', '--json', '--socket', socket]);
    const body = JSON.parse(json.stdout) as NtpStatus;
    t.match(body, { synchronised: true, mode: 'local', stratum: 10, referenceId: 'LOCL', sources: [{ name: '127.0.0.1:9', kind: 'upstream' }] });
    const status = await runLanctl(['status', '--socket', socket]);
    t.match(status.stdout, /ntp: synchronised .* stratum 10, refid LOCL/, 'lanctl status carries the NTP line');
  } finally {
    await daemon.stop();
    scratch.cleanup();
  }
});
