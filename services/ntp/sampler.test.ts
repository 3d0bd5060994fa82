import t from 'tap';
import { createSocket } from 'node:dgram';
import { createLogger } from '../../lib/log.js';
import { seededRandom } from '../../lib/random.js';
import { createHrWallClock } from './hr-clock.js';
import { Sampler } from './sampler.js';

// An upstream the kernel will not connect to (no route at start on an isolated rack: ENETUNREACH;
// here 255.255.255.255 without SO_BROADCAST: EACCES) is a source that does not answer, polled again
// later, while the other sources are queried. Its first poll used to send on the unconnected socket,
// which took the callback for a port and threw out of the timer: both LAN nodes of the site example
// died two seconds after start.

t.test('an upstream that cannot be connected is a problem of that source, not the end of the process', async (t) => {
  const good = createSocket('udp4');
  let queries = 0;
  good.on('message', () => { queries++; });
  await new Promise<void>((resolve) => good.bind(0, '127.0.0.1', resolve));
  t.teardown(() => good.close());
  const sampler = new Sampler({
    targets: [{ kind: 'upstream', address: '255.255.255.255', port: 123 }, { kind: 'upstream', address: '127.0.0.1', port: good.address().port }],
    pollIntervalMs: 60_000, burstCount: 3, burstSpacingMs: 50, replyTimeoutMs: 40,
    clock: createHrWallClock(), monotonicMs: () => performance.now(), random: seededRandom(1),
    log: createLogger({ level: 'silent' }), onChange: () => undefined,
  });
  t.teardown(() => sampler.stop());
  await sampler.start();
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (queries < 3 || sampler.sources[0]!.lastProblem === null)) await new Promise((r) => setTimeout(r, 20));
  t.equal(sampler.sources[0]!.lastProblem, 'cannot send (EACCES)', 'the source that cannot be reached says why');
  t.equal(sampler.sources[0]!.reach, 0, 'and counts as not answering');
  t.ok(queries >= 3, `the reachable source got its burst (${queries} queries)`);
});
