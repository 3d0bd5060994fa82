import t from 'tap';
import dgram from 'node:dgram';
import { READS_PER_TURN, UdpBacklog } from './udp-backlog.js';

// The standing-queue rule over hand-fed turns (full turns for standingMs = standing; one turn that
// drains every socket ends it; 32 reads spread over two sockets are not full), and libuv's reads
// per turn on a real loopback socket, which the rule relies on.

const turn = (b: UdpBacklog, reads: Array<[string, number]>, nowMs: number): void => {
  for (const [socket, n] of reads) for (let i = 0; i < n; i++) if (b.read(socket)) b.beginTurn(nowMs);
  b.endTurn();
};

t.test('full turns for standingMs make a standing queue; a draining turn ends it', async (t) => {
  const b = new UdpBacklog(5);
  t.ok(b.read('a'), 'the first read of a turn asks for its end');
  t.notOk(b.read('a'), 'later reads do not');
  b.endTurn();
  turn(b, [['a', 32]], 1);
  t.notOk(b.standing(3), 'full for 2 ms: not yet');
  turn(b, [['a', 32]], 4);
  t.ok(b.standing(6), 'full turns since 1 ms, now 6 ms: standing');
  turn(b, [['a', 31]], 7);
  t.notOk(b.standing(7), 'a turn that drained the socket ends it');
  turn(b, [['a', 20], ['b', 20]], 8);
  t.notOk(b.standing(100), '40 reads over two sockets: each drained');
  turn(b, [['a', 5], ['b', 32]], 10);
  turn(b, [['b', 32]], 20);
  t.ok(b.standing(20), 'one socket full for 10 ms');
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
