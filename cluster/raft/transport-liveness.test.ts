import t from 'tap';
import { until, wait } from '../../test/support/poll.js';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { silentLogger } from '../../lib/log.js';
import { Transport, type TransportOptions } from './transport.js';
import { emptyMessage, type Message } from './types.js';
import { FEATURES, FrameKind, decodeHello, encodeFrame, encodeHello, proof, splitFrames, type Frame } from './wire.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { freePort, freePorts } from '../../test/support/ports.js';

// Liveness of the peer links (cluster/raft/link-watch.ts) on real loopback sockets, with the
// deadlines on a clock moved by hand: pings keep a healthy link up however far the clock goes, a
// silent link is closed after the deadline and not before, and a peer from before the pings
// (feature bit 0 in its hello) gets none and is never closed for silence.

const KEY = new Uint8Array(32).fill(1);
const LIVE = { pingMs: 40, deadMs: 400, dialMs: 300 };

const counters = (x: Transport): Record<string, number> => x.status()['counters'] as Record<string, number>;
const peerStatus = (x: Transport, id: string): { connected: boolean; connects: number; inbound: boolean } =>
  (x.status()['peers'] as Record<string, { connected: boolean; connects: number; inbound: boolean }>)[id]!;

/** Moves the clock in steps shorter than the ping interval, letting the real timers and sockets run between them. */
async function advance(clock: ManualClock, ms: number, step = 10): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    clock.advance(Math.min(step, ms - done));
    await wait(25);
  }
}

/** A TCP relay that can blackhole either direction (bytes dropped, closes not passed on while cut). */
async function relay(to: number): Promise<{ port: number; cut: { up: boolean; down: boolean }; close(): void }> {
  const cut = { up: false, down: false };
  const sockets: Socket[] = [];
  const server: Server = createServer((inner) => {
    const outer = connect(to, '127.0.0.1');
    sockets.push(inner, outer);
    inner.on('data', (d) => { if (!cut.up) outer.write(d); });
    outer.on('data', (d) => { if (!cut.down) inner.write(d); });
    inner.on('close', () => { if (!cut.up) outer.destroy(); });
    outer.on('close', () => { if (!cut.down) inner.destroy(); });
    inner.on('error', () => undefined);
    outer.on('error', () => undefined);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { port, cut, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

t.test('pings keep idle links up however far the clock moves; a blackholed link is closed at its deadline, the other link of the pair is not', async (t) => {
  const clock = new ManualClock();
  const [pa, pb] = await freePorts(2) as [number, number];
  const r = await relay(pb);
  // a dials b through the relay; b dials a directly: the pair has one link each way.
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pa }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: r.port } }, log: silentLogger, liveness: LIVE, clock });
  const b = new Transport({ self: 'b', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pb }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: pb } }, log: silentLogger, liveness: LIVE, clock });
  const atA: Message[] = [], atB: Message[] = [];
  await a.start((m) => atA.push(m));
  await b.start((m) => atB.push(m));
  t.teardown(async () => { r.close(); await a.close(); await b.close(); });
  t.ok(await until(() => peerStatus(a, 'b').connected && peerStatus(b, 'a').connected && peerStatus(a, 'b').inbound && peerStatus(b, 'a').inbound), 'both links up');

  await advance(clock, 3 * LIVE.deadMs);
  t.equal(counters(a)['link.dead'] ?? 0, 0, 'no Raft traffic, yet nothing closed: the pings were heard');
  t.equal(counters(b)['link.dead'] ?? 0, 0);
  t.ok((counters(a)['ping.received'] ?? 0) > 0 && (counters(b)['ping.received'] ?? 0) > 0, 'pings crossed both ways');
  t.equal(peerStatus(a, 'b').connects, 1, 'the links are the first ones');
  t.equal(peerStatus(b, 'a').connects, 1);

  // Blackhole a's link to b. b's link to a still carries pings both ways; they must not keep the cut one alive.
  r.cut.up = true;
  r.cut.down = true;
  await advance(clock, LIVE.deadMs - 2 * LIVE.pingMs);
  t.equal(counters(a)['link.dead'] ?? 0, 0, 'before the deadline: still up');
  await advance(clock, 4 * LIVE.pingMs);
  t.ok(await until(() => (counters(a)['link.dead.outbound'] ?? 0) >= 1 && (counters(b)['link.dead.inbound'] ?? 0) >= 1), `past it, both ends closed the cut link: ${JSON.stringify({ a: counters(a), b: counters(b) })}`);
  t.equal(counters(a)['link.dead.inbound'] ?? 0, 0, "b's link to a, which kept working, was not closed at a");
  t.equal(counters(b)['link.dead.outbound'] ?? 0, 0, 'nor at b');
  t.equal(peerStatus(b, 'a').connects, 1);

  // Heal: a redials (its dial timeout runs on the same clock) and Raft flows again.
  r.cut.up = false;
  r.cut.down = false;
  const ok = await (async () => {
    for (let i = 0; i < 200; i++) {
      if (peerStatus(a, 'b').connects >= 2 && peerStatus(a, 'b').connected) return true;
      await advance(clock, 10, 10);
    }
    return false;
  })();
  t.ok(ok, 'a redialled b once the path healed');
  a.send([emptyMessage('heartbeat', 'a', 'b', 9)]);
  t.ok(await until(() => atB.some((m) => m.term === 9)), 'and its Raft messages arrive');
});

t.test('a link whose other end pings but cannot hear is closed by that end; its own pings count for nothing there', async (t) => {
  const clock = new ManualClock();
  const [pa, pb] = await freePorts(2) as [number, number];
  const r = await relay(pb);
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pa }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: r.port } }, log: silentLogger, liveness: LIVE, clock });
  const b = new Transport({ self: 'b', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pb }, peers: { a: { host: '127.0.0.1', port: 1 }, b: { host: '127.0.0.1', port: pb } }, log: silentLogger, liveness: LIVE, clock });
  await a.start(() => undefined);
  await b.start(() => undefined);
  t.teardown(async () => { r.close(); await a.close(); await b.close(); });
  t.ok(await until(() => peerStatus(a, 'b').connected && peerStatus(b, 'a').inbound), 'up');
  r.cut.down = true; // b -> a dropped; a -> b still flows, so b hears a's pings
  await advance(clock, LIVE.deadMs + 4 * LIVE.pingMs);
  t.ok(await until(() => (counters(a)['link.dead.outbound'] ?? 0) >= 1), 'a, hearing nothing, closed its link');
  t.equal(counters(b)['link.dead'] ?? 0, 0, 'b heard a all along and did not call the link dead');
});

interface FakePeer { socket: Socket; frames: Frame[]; ready: () => boolean }

/** A dialler written out by hand: hello with `features` in its seq, then silence. */
function fakeDialler(t: { teardown(fn: () => void): void }, port: number, features: number): FakePeer {
  const socket = connect(port, '127.0.0.1');
  t.teardown(() => { socket.destroy(); });
  const nonceD = new Uint8Array(32).fill(9);
  const frames: Frame[] = [];
  let buf = Buffer.alloc(0);
  let stage: 'hello' | 'proof' | 'ready' = 'hello';
  let nonceL: Uint8Array = new Uint8Array(0);
  socket.on('connect', () => socket.write(encodeFrame(FrameKind.hello, features, encodeHello({ clusterId: 'c1', member: 'old', nonce: nonceD }), KEY)));
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    const { frames: got, used } = splitFrames(buf);
    buf = buf.subarray(used);
    for (const f of got) {
      if (stage === 'hello') { const h = decodeHello(f.payload); if (h.ok) nonceL = h.value.nonce; stage = 'proof'; }
      else if (stage === 'proof') { socket.write(encodeFrame(FrameKind.proof, 0, proof(KEY, 'c1', 'old', 'b', nonceD, nonceL), KEY)); stage = 'ready'; }
      else frames.push({ ...f, payload: Buffer.from(f.payload) });
    }
  });
  return { socket, frames, ready: () => stage === 'ready' };
}

/** A listener written out by hand: answers the handshake with `features` in its hello's seq, then collects frames. */
async function fakeListener(t: { teardown(fn: () => void): void }, features: number): Promise<{ port: number; peers: FakePeer[]; sessions: () => number; mute: { on: boolean } }> {
  const peers: FakePeer[] = [];
  const mute = { on: false };
  let sessions = 0;
  const server = createServer((socket) => {
    const nonceL = new Uint8Array(32).fill(7);
    const frames: Frame[] = [];
    let buf = Buffer.alloc(0);
    let stage: 'hello' | 'proof' | 'ready' = 'hello';
    let nonceD: Uint8Array = new Uint8Array(0);
    peers.push({ socket, frames, ready: () => stage === 'ready' });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (mute.on) return;
      buf = Buffer.concat([buf, chunk]);
      const { frames: got, used } = splitFrames(buf);
      buf = buf.subarray(used);
      for (const f of got) {
        if (stage === 'hello') {
          const h = decodeHello(f.payload);
          if (h.ok) nonceD = h.value.nonce;
          socket.write(Buffer.concat([
            encodeFrame(FrameKind.hello, features, encodeHello({ clusterId: 'c1', member: 'b', nonce: nonceL }), KEY),
            encodeFrame(FrameKind.proof, 0, proof(KEY, 'c1', 'b', 'a', nonceL, nonceD), KEY),
          ]));
          stage = 'proof';
        } else if (stage === 'proof') { stage = 'ready'; sessions++; }
        else frames.push({ ...f, payload: Buffer.from(f.payload) });
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  t.teardown(() => { for (const p of peers) p.socket.destroy(); server.close(); });
  return { port, peers, sessions: () => sessions, mute };
}

/** Member b listening on a free port, with one peer, `old`, that the tests' fake diallers play. */
async function listenerB(extra: Partial<TransportOptions>): Promise<{ b: Transport; pb: number }> {
  const pb = await freePort();
  const b = new Transport({ self: 'b', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pb }, peers: { old: { host: '127.0.0.1', port: 1 }, b: { host: '127.0.0.1', port: pb } }, log: silentLogger, ...extra });
  await b.start(() => undefined);
  return { b, pb };
}

t.test('a listener closes a silent dialler that offered pings after the deadline, not before', async (t) => {
  const clock = new ManualClock();
  const { b, pb } = await listenerB({ liveness: LIVE, clock });
  t.teardown(() => b.close());
  const d = fakeDialler(t, pb, FEATURES);
  t.ok(await until(() => d.ready() && peerStatus(b, 'old').inbound), 'handshake done');
  await advance(clock, LIVE.deadMs); // exactly the deadline: not past it
  await wait(100);
  t.equal(d.socket.destroyed || d.socket.readableEnded, false, 'at the deadline the link is still open');
  t.ok(d.frames.some((f) => f.kind === FrameKind.ping), 'and b pinged it meanwhile');
  t.equal(counters(b)['link.dead'] ?? 0, 0);
  clock.advance(1);
  t.ok(await until(() => (counters(b)['link.dead.inbound'] ?? 0) === 1 && !peerStatus(b, 'old').inbound), 'one ms past it, b closed the link');
  t.ok(await until(() => d.socket.readableEnded || d.socket.destroyed), 'the dialler sees the close');
});

t.test('a dialler from before the pings (feature bits 0) gets none and is never closed for silence', async (t) => {
  const clock = new ManualClock();
  const { b, pb } = await listenerB({ liveness: LIVE, clock });
  t.teardown(() => b.close());
  const d = fakeDialler(t, pb, 0);
  t.ok(await until(() => d.ready() && peerStatus(b, 'old').inbound), 'handshake done');
  await advance(clock, 3 * LIVE.deadMs, 100);
  t.ok(peerStatus(b, 'old').inbound, 'still connected long past the deadline');
  t.same(d.frames.filter((f) => f.kind === FrameKind.ping), [], 'no ping frame (an older dialler ends the connection on an unknown kind)');
  t.equal(counters(b)['link.dead'] ?? 0, 0);
});

t.test('a dialler gives a listener from before the pings none, and closes nothing for silence', async (t) => {
  const clock = new ManualClock();
  const l = await fakeListener(t, 0);
  const pa = await freePort();
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pa }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: l.port } }, log: silentLogger, liveness: LIVE, clock });
  await a.start(() => undefined);
  t.teardown(() => a.close());
  t.ok(await until(() => peerStatus(a, 'b').connected), 'handshake done');
  await advance(clock, 3 * LIVE.deadMs, 100);
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  t.ok(await until(() => l.peers[0]!.frames.length === 1), 'a Raft frame arrives');
  t.same(l.peers[0]!.frames.map((f) => f.kind), [FrameKind.raft], 'and nothing else: no ping');
  t.equal(l.peers[0]!.frames[0]!.seq, 1, 'on the same sequence as before');
  t.equal(peerStatus(a, 'b').connects, 1, 'never redialled');
  t.equal(l.sessions(), 1);
});

t.test('a dialler closes and redials a silent listener that offered pings, and a dial that never completes is retried', async (t) => {
  const clock = new ManualClock();
  const l = await fakeListener(t, FEATURES);
  const pa = await freePort();
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pa }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: l.port } }, log: silentLogger, liveness: LIVE, clock });
  await a.start(() => undefined);
  t.teardown(() => a.close());
  t.ok(await until(() => peerStatus(a, 'b').connected), 'handshake done');
  await advance(clock, LIVE.deadMs);
  t.ok(l.peers[0]!.frames.length > 0 && l.peers[0]!.frames.every((f) => f.kind === FrameKind.ping), 'a pinged the idle link');
  t.same(l.peers[0]!.frames.map((f) => f.seq), l.peers[0]!.frames.map((_, i) => i + 1), 'pings take the Raft sequence');
  t.equal(counters(a)['link.dead'] ?? 0, 0, 'not closed at the deadline');
  clock.advance(1);
  t.ok(await until(() => (counters(a)['link.dead.outbound'] ?? 0) === 1), 'closed just past it');
  t.ok(await until(() => l.sessions() === 2), 'and redialled');
  // The listener stops answering handshakes (a hello lost in a cut): the dial is given up after the deadline and retried.
  l.mute.on = true;
  const dials = l.peers.length;
  for (const p of l.peers) p.socket.destroy();
  t.ok(await until(() => l.peers.length > dials), 'a dialled again');
  await advance(clock, LIVE.dialMs - 20, 20);
  t.equal(counters(a)['dial-timeout'] ?? 0, 0, 'the dial waits dialMs');
  await advance(clock, 60, 20);
  t.ok(await until(() => (counters(a)['dial-timeout'] ?? 0) >= 1), `then it is given up: ${JSON.stringify(counters(a))}`);
  t.ok(await until(() => l.peers.length > dials + 1), 'and dialled once more');
});

t.test('close() ends every accepted connection, also one still in its handshake', async (t) => {
  const { b, pb } = await listenerB({ handshakeTimeoutMs: 120_000 });
  const raw = connect(pb, '127.0.0.1');
  t.teardown(() => raw.destroy());
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
  await wait(100); // accepted by b, no hello sent: its handshake waits (120 s)
  const closed = await Promise.race([b.close().then(() => true), wait(10_000).then(() => false)]);
  t.ok(closed, 'close() returned without waiting for the handshake to time out');
  t.ok(await until(() => raw.readableEnded || raw.destroyed), 'the half-open connection was ended');
});

t.test('the liveness timer sleeps until a ping or a deadline is due: no polling while nothing is', async (t) => {
  // The clock stands still while real time passes: nothing can fall due, so nothing should run. A
  // poll every pingMs / 2 (1 s of real time here) ran once per member in the 1.5 s wait.
  const clock = new ManualClock();
  const [pa, pb] = await freePorts(2) as [number, number];
  const live = { pingMs: 2000, deadMs: 8000, dialMs: 5000 };
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pa }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: pb } }, log: silentLogger, liveness: live, clock });
  const b = new Transport({ self: 'b', clusterId: 'c1', key: KEY, listen: { host: '127.0.0.1', port: pb }, peers: { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: pb } }, log: silentLogger, liveness: live, clock });
  await a.start(() => undefined);
  await b.start(() => undefined);
  t.teardown(async () => { await a.close(); await b.close(); });
  t.ok(await until(() => peerStatus(a, 'b').connected && peerStatus(b, 'a').connected && peerStatus(a, 'b').inbound && peerStatus(b, 'a').inbound), 'both links up');
  const checks = (x: Transport): number => counters(x)['liveness.checks'] ?? 0;
  await wait(1500);
  t.equal(checks(a) + checks(b), 0, 'no liveness check while nothing was due');
  t.equal(counters(a)['ping.sent'] ?? 0, 0, 'and no ping');
  clock.advance(live.pingMs + 10);
  t.ok(await until(() => (counters(a)['ping.sent'] ?? 0) >= 2 && (counters(b)['ping.sent'] ?? 0) >= 2), 'once due, each idle link end pinged');
  t.equal(counters(a)['link.dead'] ?? 0, 0, 'and no link was closed');
});
