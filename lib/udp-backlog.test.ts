import t from 'tap';
import dgram from 'node:dgram';
import { READS_PER_TURN, UdpBacklog, type BacklogRule } from './udp-backlog.js';
import { seededRandom } from './random.js';
import { BACKLOG_RULE } from '../services/dns/answerer.js';

// The standing-queue rule over hand-fed turns (full turns for the interval = standing; one turn that
// drains every socket ends it; 32 reads spread over two sockets are not full; after a shed, the
// target), the rule the DNS answerer ships in a seeded simulation of its queue (4,000 misses a
// second with 20 ms stalls: never shed; a flood: shed, queue bounded), and libuv's reads per turn
// on a real loopback socket, which the rule relies on.

const RULE: BacklogRule = { intervalMs: 100, targetMs: 5, memoryMs: 1000 };

const turn = (b: UdpBacklog, reads: Array<[string, number]>, nowMs: number): number => {
  for (const [socket, n] of reads) for (let i = 0; i < n; i++) if (b.read(socket)) b.beginTurn(nowMs);
  return b.endTurn();
};

t.test('full turns for the interval make a standing queue; a draining turn ends it', async (t) => {
  const b = new UdpBacklog(RULE);
  t.ok(b.read('a'), 'the first read of a turn asks for its end');
  t.notOk(b.read('a'), 'later reads do not');
  b.endTurn();
  turn(b, [['a', 32]], 1);
  t.notOk(b.standing(6), 'full for 5 ms: a stall draining, not yet an overload');
  turn(b, [['a', 32]], 60);
  t.notOk(b.standing(99), 'full for 98 ms: not yet');
  t.equal(turn(b, [['a', 31]], 100), 99, 'a turn that drained the socket ends it and says how long it stood');
  t.notOk(b.standing(200), 'drained');
  t.equal(turn(b, [['a', 20], ['b', 20]], 201), -1, '40 reads over two sockets: each drained, nothing stood');
  turn(b, [['a', 5], ['b', 32]], 210);
  turn(b, [['b', 32]], 300);
  t.notOk(b.standing(309), 'one socket full for 99 ms: not yet');
  t.ok(b.standing(310), 'one socket full for 100 ms: standing');
});

t.test('within memoryMs of a shed, a queue standing for the target is an overload again', async (t) => {
  const b = new UdpBacklog(RULE);
  turn(b, [['a', 32]], 0);
  t.ok(b.standing(100), 'stood for the interval');
  turn(b, [['a', 3]], 110);
  turn(b, [['a', 32]], 200);
  t.notOk(b.standing(204), 'again, 4 ms: not yet');
  t.ok(b.standing(205), 'again 90 ms after the shed, 5 ms: the flood is still there');
  turn(b, [['a', 3]], 206);
  turn(b, [['a', 32]], 1300);
  t.notOk(b.standing(1310), 'more than a second after the last shed: the interval again');
  t.ok(b.standing(1400), 'stood for the interval');
});

interface Load {
  /** Queries a second, arriving in bursts of `burst`. */
  rate: number;
  burst: number;
  seconds: number;
  /** Stalls (the process runs nothing: a collection, the core taken): `stallMs` long, one every `stallEveryMs` on average. */
  stallMs: number;
  stallEveryMs: number;
  /** The process's CPU per miss asked upstream (both its halves: bench:dns measured ~118 us at 4,000/s), and per shed query. */
  missUs: number;
  shedUs: number;
}

interface Outcome {
  queries: number; shed: number; maxQueue: number; waitedOver50ms: number; lateQueueMax: number;
  /** Misses asked upstream a second after the first second (goodput), and the p99 of their wait in the queue (ms). */
  admittedPerSecond: number; admittedWaitP99: number;
}

/**
 * The answering process's socket queue in simulated time: datagrams arrive in bursts, the process
 * reads up to 32 a turn (libuv) and pays a miss's CPU for each, or a shed query's while the rule
 * says the queue stands; stalls stop it now and then (seeded). Counts what was shed, the longest
 * queue, and how many queries waited over 50 ms.
 */
function simulate(rule: BacklogRule, load: Load, seed: number, all = false): Outcome {
  const random = seededRandom(seed);
  const b = new UdpBacklog(rule);
  const endMs = load.seconds * 1000;
  const arrivals: number[] = [];
  const gapMs = (1000 * load.burst) / load.rate;
  for (let at = 0; at < endMs; at += gapMs) for (let i = 0; i < load.burst; i++) arrivals.push(at);
  const stalls: Array<[number, number]> = [];
  for (let at = random.float() * load.stallEveryMs; at < endMs; at += load.stallEveryMs * (0.5 + random.float())) stalls.push([at, at + load.stallMs]);
  let stall = 0;
  /** `ms` of work from `now`, any stall that starts meanwhile added. */
  const run = (now: number, ms: number): number => {
    let end = now + ms;
    while (stall < stalls.length && stalls[stall]![0] < end) { end = Math.max(end, stalls[stall]![0]) + load.stallMs; stall++; }
    return end;
  };
  const out: Outcome = { queries: arrivals.length, shed: 0, maxQueue: 0, waitedOver50ms: 0, lateQueueMax: 0, admittedPerSecond: 0, admittedWaitP99: 0 };
  const waits: number[] = [];
  let lateAdmitted = 0;
  let now = 0;
  let next = 0;
  let arrived = 0;
  while (next < arrivals.length) {
    if (arrivals[next]! > now) now = run(arrivals[next]!, 0);
    while (arrived < arrivals.length && arrivals[arrived]! <= now) arrived++;
    const queued = arrived - next;
    out.maxQueue = Math.max(out.maxQueue, queued);
    if (now > 1000) out.lateQueueMax = Math.max(out.lateQueueMax, queued);
    const reads = Math.min(queued, READS_PER_TURN);
    for (let i = 0; i < reads; i++, next++) {
      if (b.read('socket')) b.beginTurn(now);
      if (now - arrivals[next]! > 50) out.waitedOver50ms++;
      const shed = all ? b.standing(now) : b.shed(now); // all: every miss while it stands (before 2026-12-05)
      if (shed) out.shed++;
      else if (now > 1000) { lateAdmitted++; waits.push(now - arrivals[next]!); }
      now = run(now, (shed ? load.shedUs : load.missUs) / 1000);
    }
    b.endTurn();
  }
  out.admittedPerSecond = Math.round(lateAdmitted / (load.seconds - 1));
  waits.sort((x, y) => x - y);
  out.admittedWaitP99 = waits.length === 0 ? 0 : waits[Math.min(waits.length - 1, Math.floor(waits.length * 0.99))]!;
  return out;
}

const QUIET: Load = { rate: 4000, burst: 40, seconds: 30, stallMs: 20, stallEveryMs: 200, missUs: 118, shedUs: 15 };

t.test('4,000 misses a second in bursts, a 20 ms stall every 200 ms or so: never shed (the shipped rule)', async (t) => {
  for (const seed of [1, 2, 3]) {
    const o = simulate(BACKLOG_RULE, QUIET, seed);
    t.equal(o.shed, 0, `seed ${seed}: ${o.shed} of ${o.queries} shed (longest queue ${o.maxQueue})`);
    t.ok(o.maxQueue >= 80, `seed ${seed}: the stalls did leave queues (${o.maxQueue})`);
  }
  // What the rule was: a queue standing for 5 ms shed misses after every such stall.
  const before = simulate({ intervalMs: 5, targetMs: 5, memoryMs: 0 }, QUIET, 1);
  t.ok(before.shed > 0, `a 5 ms rule sheds here (${before.shed})`);
});

t.test('a flood of 20,000 misses a second (the process does ~8,500): shed, the queue stays short, and about as many asked upstream as the process can do (the shipped rule)', async (t) => {
  const flood: Load = { ...QUIET, rate: 20_000, burst: 100, seconds: 10 };
  for (const seed of [1, 2]) {
    const o = simulate(BACKLOG_RULE, flood, seed);
    t.ok(o.shed > o.queries / 2, `seed ${seed}: ${o.shed} of ${o.queries} shed`);
    // An unshed queue would grow by ~11,500 a second (past a 4 MiB receive buffer's ~10,000 within a second).
    t.ok(o.maxQueue < 3000, `seed ${seed}: longest queue ${o.maxQueue} (the first 100 ms)`);
    t.ok(o.lateQueueMax < 600, `seed ${seed}: after the first second at most ${o.lateQueueMax} queued (the 5 ms target)`);
    t.ok(o.waitedOver50ms < o.queries / 100, `seed ${seed}: ${o.waitedOver50ms} of ${o.queries} waited over 50 ms`);
    // Goodput: shedding the rest costs 15 us a query (0.3 s a second here) and the stalls a tenth,
    // so ~5,800 misses a second is what the process can ask upstream. Shedding every miss while the
    // queue stood (the rule before 2026-12-05) asked ~3,700.
    const all = simulate(BACKLOG_RULE, flood, seed, true);
    t.ok(o.admittedPerSecond >= 5000, `seed ${seed}: ${o.admittedPerSecond} misses a second asked upstream (shedding all while it stands: ${all.admittedPerSecond})`);
    t.ok(o.admittedPerSecond > 1.3 * all.admittedPerSecond, `seed ${seed}: more than 1.3 x the all-or-nothing shed's`);
    t.ok(o.admittedWaitP99 < 50, `seed ${seed}: the admitted waited ${o.admittedWaitP99.toFixed(1)} ms at p99 in the queue (the 20 ms stalls; all-or-nothing: ${all.admittedWaitP99.toFixed(1)})`);
  }
  const half: Load = { ...flood, rate: 10_000 };
  const o = simulate(BACKLOG_RULE, half, 1);
  const all = simulate(BACKLOG_RULE, half, 1, true);
  t.ok(o.admittedPerSecond >= 6000, `10,000 a second: ${o.admittedPerSecond} asked upstream a second (all-or-nothing: ${all.admittedPerSecond}; ~7,300 possible)`);
  const unshed = simulate({ intervalMs: Infinity, targetMs: Infinity, memoryMs: 0 }, { ...flood, seconds: 2 }, 1);
  t.ok(unshed.maxQueue > 15_000, `never shedding, the queue grows (${unshed.maxQueue} after 2 s)`);
});

t.test('while the queue stands, shed admits a fraction: falling every target period it stands, rising with each turn that drains', async (t) => {
  const b = new UdpBacklog(RULE);
  const admittedOf = (n: number, nowMs: number): number => { let a = 0; for (let i = 0; i < n; i++) if (!b.shed(nowMs)) a++; return a; };
  turn(b, [['a', 32]], 0);
  t.equal(admittedOf(10, 50), 10, 'not standing yet: all admitted');
  turn(b, [['a', 32]], 100);
  t.equal(b.admitted, 0.5, 'stood for the whole interval: half');
  t.equal(admittedOf(10, 101), 5, 'every second miss admitted');
  turn(b, [['a', 32]], 103);
  t.equal(b.admitted, 0.5, 'within the target period of the last cut: unchanged');
  turn(b, [['a', 32]], 105);
  t.equal(b.admitted, 0.25, 'another target period standing: half again (still past the interval)');
  turn(b, [['a', 4]], 106);
  t.equal(b.admitted, 0.375, 'a turn that drains the queue: 1/8 more');
  turn(b, [['a', 32]], 200);
  turn(b, [['a', 32]], 205);
  t.equal(b.admitted, 0.375 * 0.8, 'a queue standing for the target again, within a second of the shed: a fifth fewer');
  t.equal(admittedOf(10, 205), 3, 'three of ten admitted');
  for (let i = 0; i < 8; i++) turn(b, [['a', 1]], 300 + i);
  t.equal(b.admitted, 1, 'drained turns bring it back to all');
  t.equal(admittedOf(10, 400), 10, 'and nothing stands: all admitted');
});

t.test(`libuv reads ${READS_PER_TURN} datagrams per socket per turn`, async (t) => {
  const receiver = dgram.createSocket('udp4');
  const sender = dgram.createSocket('udp4');
  await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', r));
  const counts: number[] = [];
  let n = 0;
  let sent = 0;
  const done = new Promise<void>((resolve) => {
    receiver.on('message', () => {
      if (n++ === 0) setImmediate(() => { counts.push(n); n = 0; if (counts.length >= 2) resolve(); });
      const until = performance.now() + 0.2;
      while (performance.now() < until); // slow enough that the queue builds
    });
  });
  const burst = (): void => { for (let i = 0; i < 200 && sent < 2000; i++, sent++) sender.send(Buffer.alloc(20), receiver.address().port, '127.0.0.1'); };
  burst();
  const timer = setInterval(burst, 5);
  await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
  clearInterval(timer);
  receiver.close();
  sender.close();
  t.equal(Math.max(...counts), READS_PER_TURN, `reads per turn under a flood: ${counts.slice(0, 8).join(' ')}`);
});
