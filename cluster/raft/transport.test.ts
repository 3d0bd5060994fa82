import t from 'tap';
import { connect } from 'node:net';
import { silentLogger } from '../../lib/log.js';
import { HANDSHAKES_MAX, HANDSHAKES_PER_SOURCE_MAX, Transport } from './transport.js';
import { emptyMessage, type Message } from './types.js';
import { FrameKind, decodeHello, encodeFrame, encodeHello, encodeMessage, proof, sessionKey, splitFrames } from './wire.js';
import { MemberStatusBoard } from '../member-status.js';
import { systemClock } from '../../lib/clock.js';
import { freePort, freePorts } from '../../test/support/ports.js';

const KEY = new Uint8Array(32).fill(1);
const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pair(t: { teardown(fn: () => Promise<void>): void }, bKey = KEY, bCluster = 'c1') {
  const [pa, pb] = await freePorts(2) as [number, number];
  const peers = { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: pb } };
  const a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: peers.a, peers, log: silentLogger });
  const b = new Transport({ self: 'b', clusterId: bCluster, key: bKey, listen: peers.b, peers, log: silentLogger });
  const atA: Message[] = [], atB: Message[] = [];
  await a.start((m) => atA.push(m));
  await b.start((m) => atB.push(m));
  t.teardown(async () => { await a.close(); await b.close(); });
  return { a, b, atA, atB, peers };
}

async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond() && performance.now() < end) await wait(5);
  return cond();
}

t.test('members with the same key exchange messages both ways', async (t) => {
  const { a, b, atA, atB } = await pair(t);
  await until(() => (a.status()['peers'] as Record<string, { connected: boolean }>)['b']!.connected && (b.status()['peers'] as Record<string, { connected: boolean }>)['a']!.connected);
  const m = { ...emptyMessage('append', 'a', 'b', 3), index: 7, entries: [{ term: 3, index: 8, type: 0 as const, data: new Uint8Array([1, 2]) }] };
  a.send([m, { ...m, index: 8 }]);
  b.send([emptyMessage('append-resp', 'b', 'a', 3)]);
  t.ok(await until(() => atB.length === 2 && atA.length === 1), 'delivered');
  t.equal(atB[0]!.entries[0]!.index, 8);
  t.same([...atB[0]!.entries[0]!.data], [1, 2]);
});

t.test('a member with another key is refused and nothing it sends is delivered', async (t) => {
  const { a, b, atA, atB } = await pair(t, new Uint8Array(32).fill(2));
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  await wait(300);
  b.send([emptyMessage('heartbeat', 'b', 'a', 1)]);
  await wait(300);
  t.equal(atA.length + atB.length, 0, 'no message crossed');
  const rejected = { ...(a.status()['counters'] as Record<string, number>), ...(b.status()['counters'] as Record<string, number>) };
  t.ok(Object.keys(rejected).some((k) => k.startsWith('rejected.bad-')), `refusals counted: ${JSON.stringify(rejected)}`);
});

t.test('another cluster id is refused', async (t) => {
  const { a, atB } = await pair(t, KEY, 'c2');
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  await wait(300);
  t.equal(atB.length, 0);
  t.ok(Object.keys(a.status()['counters'] as object).some((k) => k.includes('wrong')), 'counted on the dialling side');
});

t.test('garbage and forged frames on the port are dropped without harm', async (t) => {
  const { a, b, atB, peers } = await pair(t);
  for (const junk of [Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.alloc(100, 0xff), Buffer.from([0, 0, 0, 60, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, ...new Array(56).fill(0)])]) {
    await new Promise<void>((resolve) => {
      const s = connect(peers.b.port, '127.0.0.1', () => s.write(junk));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      setTimeout(() => { s.destroy(); resolve(); }, 1000).unref();
    });
  }
  const counters = b.status()['counters'] as Record<string, number>;
  t.ok(Object.entries(counters).some(([k, v]) => k.startsWith('rejected.') && v >= 2), `rejections counted: ${JSON.stringify(counters)}`);
  await until(() => (a.status()['peers'] as Record<string, { connected: boolean }>)['b']!.connected);
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  t.ok(await until(() => atB.length === 1), 'the real peer still gets through');
});

t.test('connections that never finish a handshake are bounded per source and in all; members still connect', async (t) => {
  const [pa, pb] = await freePorts(2) as [number, number];
  const peers = { a: { host: '127.0.0.1', port: pa }, b: { host: '127.0.0.1', port: pb } };
  const b = new Transport({ self: 'b', clusterId: 'c1', key: KEY, listen: peers.b, peers, log: silentLogger, handshakeTimeoutMs: 60_000 });
  const atB: Message[] = [];
  await b.start((m) => atB.push(m));
  const idle: import('node:net').Socket[] = [];
  let a: Transport | undefined;
  t.teardown(async () => { for (const s of idle) s.destroy(); await a?.close(); await b.close(); });
  const open = async (local: string): Promise<void> => {
    const s = connect({ port: pb, host: '127.0.0.1', localAddress: local });
    s.on('error', () => undefined);
    idle.push(s);
    await new Promise((r) => { s.once('connect', r); s.once('close', r); });
  };
  // One host holds 100 connections open and says nothing; 30 more hosts hold 5 each.
  for (let i = 0; i < 100; i++) await open('127.0.0.9');
  for (let h = 10; h < 40; h++) for (let i = 0; i < 5; i++) await open(`127.0.0.${h}`);
  const counters = (): Record<string, number> => b.status()['counters'] as Record<string, number>;
  t.ok(await until(() => (counters()['rejected.handshakes-per-source'] ?? 0) > 0 && (counters()['rejected.handshakes-full'] ?? 0) > 0), `refusals counted: ${JSON.stringify(counters())}`);
  t.equal(b.status()['handshaking'], HANDSHAKES_MAX, 'at most HANDSHAKES_MAX connections wait in their handshake');
  const stillOpen = (): number => idle.filter((s) => !s.destroyed && !s.closed).length;
  t.ok(await until(() => stillOpen() === HANDSHAKES_MAX), `the rest were closed (${idle.length} opened, ${stillOpen()} open, at most ${HANDSHAKES_PER_SOURCE_MAX} per source)`);
  // The many-host flood ends; the one noisy host keeps its share. A member dialling now gets through.
  for (const s of idle.filter((x) => x.localAddress !== '127.0.0.9')) s.destroy();
  t.ok(await until(() => b.status()['handshaking'] === HANDSHAKES_PER_SOURCE_MAX), 'only the noisy host\'s share is left');
  a = new Transport({ self: 'a', clusterId: 'c1', key: KEY, listen: peers.a, peers, log: silentLogger });
  await a.start(() => undefined);
  t.ok(await until(() => (a!.status()['peers'] as Record<string, { connected: boolean }>)['b']!.connected), 'a member connects while a host holds its share');
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  t.ok(await until(() => atB.length === 1), 'and its messages are delivered');
});

t.test('member reports flow back to each dialler, and a member without reports still talks Raft both ways', async (t) => {
  const { a, b, atA, atB } = await pair(t);
  const reports = (name: string, term: number) => new MemberStatusBoard({
    self: name, clock: systemClock, intervalMs: 50,
    local: () => ({ node: name, version: '9.9.9', configHash: `h-${name}`, role: 'follower', leader: null, term, commitIndex: 3, appliedIndex: 3, lastIndex: 3, walFsyncP99Ms: null, bootFiles: null }),
  });
  const boardA = reports('a', 7);
  a.attachMemberStatus(boardA); // b has no board: like a member older than the reports
  t.ok(await until(() => (a.status()['peers'] as Record<string, { connected: boolean }>)['b']!.connected && (b.status()['peers'] as Record<string, { connected: boolean }>)['a']!.connected), 'connected');
  await wait(200);
  a.send([emptyMessage('heartbeat', 'a', 'b', 1)]);
  b.send([emptyMessage('heartbeat-resp', 'b', 'a', 1)]);
  t.ok(await until(() => atA.length === 1 && atB.length === 1), 'Raft crosses both ways while a sends b its reports');
  t.same(boardA.members(), {}, 'nothing heard from a member that sends no reports');
  t.ok(((b.status()['counters'] as Record<string, number>)['received'] ?? 0) >= 1);
  const boardB = reports('b', 8);
  b.attachMemberStatus(boardB);
  t.ok(await until(() => boardA.members()['b'] !== undefined && boardB.members()['a'] !== undefined), 'each hears the other once both report');
  t.equal(boardA.members()['b']!.report.term, 8);
  t.equal(boardA.members()['b']!.report.configHash, 'h-b');
  t.ok(await until(() => boardA.members()['b']!.offsetMethod === 'round-trip'), 'the offset uses both directions');
  t.ok(Math.abs(boardA.members()['b']!.clockOffsetMs) < 1000, 'one clock: the offset is small');
  a.send([emptyMessage('heartbeat', 'a', 'b', 2)]);
  t.ok(await until(() => atB.length === 2), 'Raft still flows');
  const rejected = Object.keys({ ...(a.status()['counters'] as object), ...(b.status()['counters'] as object) }).filter((k) => k.startsWith('rejected.'));
  t.same(rejected, [], 'no connection was refused on the way');
});

t.test('a report asked for now (sendNow) reaches the dialler at once, not at the next interval', async (t) => {
  const { a, b } = await pair(t);
  let term = 1;
  const board = (name: string, local: () => number) => new MemberStatusBoard({
    self: name, clock: systemClock, intervalMs: 60_000,
    local: () => ({ node: name, version: 'v', configHash: 'h', role: 'follower', leader: null, term: local(), commitIndex: 0, appliedIndex: 0, lastIndex: 0, walFsyncP99Ms: null, bootFiles: null }),
  });
  const boardA = board('a', () => 1);
  const boardB = board('b', () => term);
  a.attachMemberStatus(boardA);
  b.attachMemberStatus(boardB);
  t.ok(await until(() => boardA.members()['b']?.report.term === 1), 'the first report on the new connection');
  term = 2;
  await wait(200);
  t.equal(boardA.members()['b']!.report.term, 1, 'the next one would come a minute later');
  boardB.sendNow();
  boardB.sendNow(); // asked twice in one turn: one report
  t.ok(await until(() => boardA.members()['b']!.report.term === 2, 1000), 'sent now: the change arrives at once');
  t.equal((b.status()['counters'] as Record<string, number>)['status.sent-now'], 1, 'one report for the two asks');
});

t.test('a dialler that predates member reports (reads nothing after the handshake) keeps its connection', async (t) => {
  const [pb] = [await freePort()];
  const peers = { old: { host: '127.0.0.1', port: 1 }, b: { host: '127.0.0.1', port: pb } };
  const b = new Transport({ self: 'b', clusterId: 'c1', key: KEY, listen: peers.b, peers, log: silentLogger });
  const atB: Message[] = [];
  await b.start((m) => atB.push(m));
  b.attachMemberStatus(new MemberStatusBoard({ self: 'b', clock: systemClock, intervalMs: 20, local: () => ({ node: 'b', version: 'v', configHash: 'h', role: 'leader', leader: 'b', term: 1, commitIndex: 0, appliedIndex: 0, lastIndex: 0, walFsyncP99Ms: null, bootFiles: null }) }));
  t.teardown(() => b.close());
  // The old dialler's side of the handshake, as members before the reports did it.
  const socket = connect(pb, '127.0.0.1');
  t.teardown(() => { socket.destroy(); });
  const nonceD = new Uint8Array(32).fill(9);
  let received = 0;
  let sessionOut: Uint8Array | null = null;
  let buf = Buffer.alloc(0);
  let stage: 'hello' | 'proof' | 'ready' = 'hello';
  let nonceL: Uint8Array = new Uint8Array(0);
  socket.on('connect', () => socket.write(encodeFrame(FrameKind.hello, 0, encodeHello({ clusterId: 'c1', member: 'old', nonce: nonceD }), KEY)));
  socket.on('data', (chunk: Buffer) => {
    if (stage === 'ready') { received += chunk.length; return; } // the old code: `return` unread
    buf = Buffer.concat([buf, chunk]);
    const { frames, used } = splitFrames(buf, 4096);
    buf = buf.subarray(used);
    for (const f of frames) {
      if (stage === 'hello') {
        const h = decodeHello(f.payload);
        if (h.ok) nonceL = h.value.nonce;
        stage = 'proof';
      }
      else if (stage === 'proof') {
        socket.write(encodeFrame(FrameKind.proof, 0, proof(KEY, 'c1', 'old', 'b', nonceD, nonceL), KEY));
        sessionOut = sessionKey(KEY, 'c1', 'old', nonceD, nonceL);
        stage = 'ready';
      }
    }
  });
  t.ok(await until(() => stage === 'ready' && received > 0), 'b sends its reports to the old dialler');
  for (let seq = 1; seq <= 3; seq++) {
    socket.write(encodeFrame(FrameKind.raft, seq, encodeMessage(emptyMessage('heartbeat-resp', 'old', 'b', seq)), sessionOut!));
    await wait(60);
  }
  t.ok(await until(() => atB.length === 3), 'and still takes every Raft frame it sends');
  t.equal(socket.destroyed, false, 'the connection stays up');
});
