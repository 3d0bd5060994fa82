import t from 'tap';
import { MacBuckets } from './rate-limit.js';

// The per-MAC bucket: a burst at once, then the refill rate; a netboot chain passes whole, a looping
// client is held to the rate, and a flood of forged MACs keeps the table bounded.

const A = '52:54:00:00:00:01';

function admitted(b: MacBuckets, mac: string, times: readonly number[]): number {
  let n = 0;
  for (const at of times) if (b.admit(mac, at)) n++;
  return n;
}

t.test('a burst, then the refill rate', async (t) => {
  const b = new MacBuckets(20, 10_000);
  t.equal(admitted(b, A, Array.from({ length: 30 }, () => 1000)), 20, 'twenty at once, the rest dropped');
  t.notOk(b.admit(A, 1400), 'under one token earned after 400 ms (2 per second)');
  t.ok(b.admit(A, 1500), 'one token earned after 500 ms');
  t.equal(admitted(b, A, Array.from({ length: 30 }, () => 11_500)), 20, 'a full window later, the whole burst again (never more)');
  t.ok(b.admit('52:54:00:00:00:02', 11_500), 'each MAC has its own bucket');
});

t.test('a netbooting machine is never dropped; a looping one is held to the rate', async (t) => {
  const b = new MacBuckets(20, 10_000);
  // PXE ROM (a DISCOVER retransmitted, proxy round, REQUEST), iPXE, an operator's `dhcp` twice at a
  // prompt, the kernel's ip=dhcp, the OS client: 14 packets in 12 s.
  const chain = [0, 1000, 4000, 4100, 6000, 6100, 8000, 8100, 8500, 8600, 10_000, 10_100, 12_000, 12_100];
  t.equal(admitted(b, A, chain), chain.length, 'every packet of the chain admitted');
  const loop = new MacBuckets(20, 10_000);
  const every100ms = Array.from({ length: 600 }, (_, i) => i * 100);
  const n = admitted(loop, A, every100ms);
  t.ok(n >= 20 + 2 * 59 && n <= 20 + 2 * 60 + 1, `a client sending 10 a second for 60 s: ${n} admitted (the burst + 2 a second)`);
});

t.test('time that goes backwards earns nothing', async (t) => {
  const b = new MacBuckets(2, 10_000);
  t.equal(admitted(b, A, [5000, 5000, 5000]), 2);
  t.notOk(b.admit(A, 0), 'an earlier time is no refill');
  t.ok(b.admit(A, 10_000), 'half a window after the last, a token');
});

t.test('a flood of forged MACs keeps the table bounded', async (t) => {
  const b = new MacBuckets(20, 10_000);
  let most = 0;
  for (let i = 0; i < 200_000; i++) {
    b.admit(`02:00:${(i >>> 24) & 255}:${(i >>> 16) & 255}:${(i >>> 8) & 255}:${i & 255}`, i / 2);
    most = Math.max(most, b.size);
  }
  t.ok(most <= 50_001, `at most ~50,000 buckets held (${most})`);
  t.ok(b.admit(A, 1e9), 'a real client is admitted after the flood');
});
